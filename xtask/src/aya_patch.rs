//! aya 0.14 cannot load `fmod_ret` programs; patches/aya-0.14.0-fmod-ret.patch
//! (ours) adds them. Here the pinned crates.io sources are fetched by cargo,
//! copied under target/aya-patched and patched; the workspace's
//! `[patch.crates-io]` points there. Nothing of aya is kept in the repository.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};

use crate::cmd::{run, say, sha256};
use crate::{cache_dir, root};

const CRATES: &[(&str, &str)] = &[("aya", "0.14.0"), ("aya-obj", "0.3.0")];
const PATCH: &str = "patches/aya-0.14.0-fmod-ret.patch";

pub fn ensure() -> Result<()> {
    let patch = root().join(PATCH);
    let dest = root().join("target/aya-patched");
    let stamp = dest.join(".patched");
    let want = sha256(&patch)?;
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == want) {
        return Ok(());
    }
    say(format!(
        "preparing patched aya sources in {}",
        dest.display()
    ));
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::create_dir_all(&dest)?;
    for (name, version) in CRATES {
        let source = registry_source(name, version)?;
        run(Command::new("cp")
            .arg("-a")
            .arg(&source)
            .arg(dest.join(format!("{name}-{version}"))))?;
    }
    run(Command::new("patch")
        .args(["-p1", "--forward", "--quiet", "-d"])
        .arg(&dest)
        .arg("-i")
        .arg(&patch))?;
    std::fs::write(&stamp, want)?;
    Ok(())
}

/// The unpacked crates.io source of `name` `version`, fetched by cargo when
/// not yet in the local registry.
fn registry_source(name: &str, version: &str) -> Result<PathBuf> {
    if let Some(path) = find_in_registry(name, version) {
        return Ok(path);
    }
    let manifest_dir = cache_dir().join("aya-fetch");
    std::fs::create_dir_all(manifest_dir.join("src"))?;
    let deps: String = CRATES
        .iter()
        .map(|(n, v)| format!("{n} = \"={v}\"\n"))
        .collect();
    std::fs::write(
        manifest_dir.join("Cargo.toml"),
        format!("[package]\nname = \"aya-fetch\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n[dependencies]\n{deps}\n[workspace]\n"),
    )?;
    std::fs::write(manifest_dir.join("src/lib.rs"), "")?;
    run(Command::new("cargo")
        .arg("fetch")
        .arg("--manifest-path")
        .arg(manifest_dir.join("Cargo.toml")))?;
    find_in_registry(name, version)
        .with_context(|| format!("cargo fetch did not unpack {name} {version} into the registry"))
}

fn find_in_registry(name: &str, version: &str) -> Option<PathBuf> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo")
        });
    let registries = std::fs::read_dir(cargo_home.join("registry/src")).ok()?;
    registries
        .filter_map(|r| r.ok())
        .map(|r| r.path().join(format!("{name}-{version}")))
        .find(|p| p.join("Cargo.toml").is_file())
}
