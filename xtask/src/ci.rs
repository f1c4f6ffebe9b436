//! `cargo xtask ci` and `cargo xtask bench`.
use anyhow::Result;

use crate::util::{cargo, run};

pub fn ci(_args: &[String]) -> Result<()> {
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args(["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"]))?;
    run(cargo().args(["test", "--workspace", "--all-features"]))?;
    Ok(())
}

pub fn bench(_args: &[String]) -> Result<()> {
    anyhow::bail!("benchmarks are not implemented yet")
}
