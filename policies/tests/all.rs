//! Integration tests of cordon-policy: one binary, one module per concern.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod suite;
