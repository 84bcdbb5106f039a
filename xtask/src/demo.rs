//! `cargo xtask demo`: the main job, shown end to end in the lab.

use anyhow::{bail, Result};

use crate::build;
use crate::lab::{self, initramfs::GUEST_BIN};

pub fn run() -> Result<()> {
    let artifacts = build::all()?;
    let status = lab::run_in("6.12", &artifacts, &format!("{GUEST_BIN}/lab-demo\n"))?;
    if status != 0 {
        bail!("the demo failed (exit status {status})");
    }
    Ok(())
}
