mod filesystem;
mod harness;
mod kernel;
mod limits;
mod network;
mod smoke;
