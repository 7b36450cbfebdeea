mod harness;
mod filesystem;
mod smoke;
