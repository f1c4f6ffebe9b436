//! Integration tests of the Milvus backend against a real Milvus server.
//!
//! The server comes from the environment: `SIMILE_TEST_MILVUS_URI` (and `SIMILE_TEST_MILVUS_USER`,
//! `SIMILE_TEST_MILVUS_PASSWORD` for an instance with authentication). `cargo xtask ci` starts one
//! and sets them; by hand: `cargo xtask milvus start --auth` and export what it prints.
#![allow(clippy::unwrap_used)]

mod behaviour;
mod common;
mod conformance;
mod errors;
mod interop;
mod oracle;
mod restart;
