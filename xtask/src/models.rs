//! `cargo xtask models ...` (to be filled in by the CLIP work).
use anyhow::{bail, Result};

pub fn main(_args: &[String]) -> Result<()> {
    bail!("model tasks are not implemented yet")
}
