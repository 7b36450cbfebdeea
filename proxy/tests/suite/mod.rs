mod forward;
mod harness;
mod leaks;
mod load;
mod sandbox;
mod tls;
