//! The Kubernetes manifests of `deploy/kubernetes/`, validated offline
//! against the API's schemas by `kubernetes-validate` (PyPI; it ships the
//! schemas), installed once into a virtualenv in our cache.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::cmd::{run, say};
use crate::{cache_dir, root};

/// Pinned: its schemas are those of Kubernetes up to 1.37.
const VALIDATOR: &str = "kubernetes-validate==1.37.0";
/// The API version the manifests are checked against.
const KUBERNETES: &str = "1.37.0";

pub fn validate() -> Result<()> {
    let validator = validator()?;
    let dir = root().join("deploy/kubernetes");
    let mut manifests: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    manifests.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
    manifests.sort();
    if manifests.is_empty() {
        bail!("no manifests in {}", dir.display());
    }
    let check = |files: &[PathBuf]| {
        Command::new(&validator)
            .args(["--strict", "-k", KUBERNETES])
            .args(files)
            .status()
    };
    say(format!(
        "validating {} manifests against Kubernetes {KUBERNETES} (strict)",
        manifests.len()
    ));
    if !check(&manifests)?.success() {
        bail!("a manifest in {} is not valid", dir.display());
    }
    // The validator must be able to fail: a manifest with a misspelt field
    // is refused.
    let broken = std::env::temp_dir().join("mptcpify-broken-manifest.yaml");
    let text = std::fs::read_to_string(&manifests[0])?;
    std::fs::write(&broken, text.replacen("containers:", "containerz:", 1))?;
    let refused = !check(std::slice::from_ref(&broken))?.success();
    let _ = std::fs::remove_file(&broken);
    if !refused {
        bail!("kubernetes-validate accepted a misspelt field: it checks nothing");
    }
    Ok(())
}

/// `kubernetes-validate` in `~/.cache/mptcpify/kubernetes-validate`.
fn validator() -> Result<PathBuf> {
    let venv = cache_dir().join("kubernetes-validate");
    let tool = venv.join("bin/kubernetes-validate");
    let stamp = venv.join("installed");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(VALIDATOR) && tool.is_file() {
        return Ok(tool);
    }
    say(format!(
        "installing {VALIDATOR} from PyPI into {}",
        venv.display()
    ));
    run(Command::new("python3").arg("-m").arg("venv").arg(&venv))
        .context("python3 -m venv (Debian: python3-venv)")?;
    run(Command::new(venv.join("bin/pip")).args(["install", "--quiet", VALIDATOR]))?;
    std::fs::write(&stamp, VALIDATOR)?;
    Ok(tool)
}
