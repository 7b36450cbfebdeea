mod harness;
mod kernel;
mod network;
mod filesystem;
mod smoke;
