//! The spec's Python recipes (milvus-integration.rst) that need neither Milvus nor a model,
//! as Rust twins through the `simile` facade, on the embedded default backend.
#![allow(clippy::unwrap_used)]

mod architecture;
mod clip;
mod doctor;
mod duplicates;
mod errors;
mod fuzz;
mod load;
mod milvus;
mod patches;
mod recipes;
mod reliability;
mod resume;
mod runs;
mod streaming;
mod views;
