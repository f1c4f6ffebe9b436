//! The browser the App's tests drive: Debian's `chromium` and `chromium-driver` (the driver is
//! built for that browser version). Installed with apt when missing and running as root (as CI
//! does); otherwise the task fails and says how to install them.
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::util::run;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Paths of chromium and chromedriver, installing them first when needed.
pub fn ensure_browser() -> Result<(PathBuf, PathBuf)> {
    let present = || PathBuf::from(CHROMIUM).exists() && PathBuf::from(CHROMEDRIVER).exists();
    if !present() {
        let root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        if !root {
            bail!(
                "the App's browser tests need Debian's chromium and chromium-driver: \
                 run `sudo apt-get install --no-install-recommends chromium chromium-driver`"
            );
        }
        eprintln!("xtask: installing chromium and chromium-driver (apt, once per machine)");
        run(Command::new("apt-get").args(["update", "-q"]))
            .context("apt-get update (for chromium)")?;
        run(Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args([
                "install",
                "-y",
                "-q",
                "--no-install-recommends",
                "chromium",
                "chromium-driver",
            ]))
        .context("installing chromium and chromium-driver")?;
        if !present() {
            bail!("chromium or chromedriver is still missing after apt-get install");
        }
    }
    Ok((CHROMIUM.into(), CHROMEDRIVER.into()))
}

/// `cargo xtask browser`: installs the browser and prints where it is.
pub fn main(_args: &[String]) -> Result<()> {
    let (chromium, driver) = ensure_browser()?;
    println!(
        "chromium: {}\nchromedriver: {}",
        chromium.display(),
        driver.display()
    );
    Ok(())
}
