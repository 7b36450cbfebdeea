mod filesystem;
mod hardening;
mod harness;
mod kernel;
mod limits;
mod network;
mod smoke;
