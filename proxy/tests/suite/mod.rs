mod forward;
mod git;
mod harness;
mod leaks;
mod load;
mod sandbox;
mod tls;
mod websocket;
