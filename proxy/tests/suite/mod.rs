mod forward;
mod harness;
mod leaks;
mod sandbox;
mod tls;
