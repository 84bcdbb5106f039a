//! `cargo xtask dist`: the release bundle, `target/dist/mptcpify-VERSION-
//! x86_64-linux.tar.gz`. Its tree mirrors /usr/local, so that installing is
//! one `tar -C /usr/local --strip-components=1 -xzf` (README, Install):
//!
//! - `bin/mptcpify`: the binary the tests ran, statically linked (see
//!   `build::static_binary`);
//! - `lib/systemd/system/`: the units of `dist/systemd/`;
//! - `share/man/man1/`: man pages, and `share/{bash-completion,zsh,fish}`:
//!   completions, generated from the clap definitions by the binary itself;
//! - `share/doc/mptcpify/`: README.md, BENCHMARKS.md;
//! - `SHA256SUMS` of every file (left out when installing), and beside the
//!   tarball its own checksum, `NAME.tar.gz.sha256`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::build::{cargo, Artifacts};
use crate::cmd::{output, run, say};
use crate::root;

/// `cargo xtask dist`: builds everything, then the bundle.
pub fn run_dist() -> Result<PathBuf> {
    bundle(&crate::build::all()?)
}

/// The bundle of built `artifacts`; returns the tarball. Made once per
/// xtask run: `cargo xtask test` asks for it from several threads at once
/// (the host's bundle check, each Debian-image guest), and a second build
/// would rewrite the tarball while another thread copies it.
pub fn bundle(artifacts: &Artifacts) -> Result<PathBuf> {
    static MADE: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);
    let mut made = MADE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(tarball) = &*made {
        return Ok(tarball.clone());
    }
    let tarball = make_bundle(artifacts)?;
    *made = Some(tarball.clone());
    Ok(tarball)
}

fn make_bundle(artifacts: &Artifacts) -> Result<PathBuf> {
    let binary = &artifacts.mptcpify;
    let version = output(
        cargo()
            .args(["pkgid", "-p", "mptcpify"])
            .stderr(std::process::Stdio::null()),
    )?
    .trim()
    .rsplit(['#', '@'])
    .next()
    .unwrap_or("0")
    .to_string();
    let name = format!("mptcpify-{version}-x86_64-linux");
    let dist = root().join("target/dist");
    let stage = dist.join(&name);
    if stage.exists() {
        std::fs::remove_dir_all(&stage)?;
    }
    let put = |from: &Path, to: &str| -> Result<()> {
        let to = stage.join(to);
        std::fs::create_dir_all(to.parent().unwrap())?;
        std::fs::copy(from, &to).with_context(|| format!("copying {}", from.display()))?;
        Ok(())
    };
    put(binary, "bin/mptcpify")?;
    for unit in std::fs::read_dir(root().join("dist/systemd"))? {
        let unit = unit?.path();
        let file = unit.file_name().unwrap().to_string_lossy().into_owned();
        put(&unit, &format!("lib/systemd/system/{file}"))?;
    }
    let docs = dist.join("generated");
    if docs.exists() {
        std::fs::remove_dir_all(&docs)?;
    }
    run(Command::new(binary).arg("__generate-docs").arg(&docs))?;
    for page in std::fs::read_dir(docs.join("man"))? {
        let page = page?.path();
        let file = page.file_name().unwrap().to_string_lossy().into_owned();
        put(&page, &format!("share/man/man1/{file}"))?;
    }
    let completions = docs.join("completions");
    put(
        &completions.join("mptcpify.bash"),
        "share/bash-completion/completions/mptcpify",
    )?;
    put(
        &completions.join("_mptcpify"),
        "share/zsh/site-functions/_mptcpify",
    )?;
    put(
        &completions.join("mptcpify.fish"),
        "share/fish/vendor_completions.d/mptcpify.fish",
    )?;
    for doc in ["README.md", "BENCHMARKS.md"] {
        put(&root().join(doc), &format!("share/doc/mptcpify/{doc}"))?;
    }
    run(Command::new("sh").current_dir(&stage).args([
        "-c",
        "find . -type f ! -name SHA256SUMS | LC_ALL=C sort | xargs sha256sum > SHA256SUMS",
    ]))?;
    let tarball = dist.join(format!("{name}.tar.gz"));
    // Reproducible: sorted, owned by root, one fixed time.
    run(Command::new("tar")
        .current_dir(&dist)
        .args([
            "--sort=name",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "--mtime=@0",
            "-czf",
        ])
        .arg(&tarball)
        .arg(&name))?;
    // The tarball's own checksum, beside it (`sha256sum -c NAME.sha256`).
    run(Command::new("sh").current_dir(&dist).args([
        "-c",
        &format!("sha256sum {name}.tar.gz > {name}.tar.gz.sha256"),
    ]))?;
    say(format!(
        "release bundle: {} ({} KB)",
        tarball.display(),
        std::fs::metadata(&tarball)?.len() >> 10
    ));
    Ok(tarball)
}
