//! `cargo xtask milvus start|stop|status` (to be filled in by the Milvus work).
use anyhow::{bail, Result};

pub fn main(_args: &[String]) -> Result<()> {
    bail!("milvus tasks are not implemented yet")
}
