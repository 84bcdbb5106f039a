//! Lab kernels: Debian cloud kernel packages, found in ../shared/kernels
//! (verified against its SHA256SUMS) or downloaded with apt-get into our cache
//! (with a private apt state: the machine's apt setup is never changed), then
//! unpacked with dpkg-deb.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::cmd::{output, run, say, sha256, verify_against_sums};
use crate::toolchain::find_file;
use crate::{cache_dir, shared_dir};

pub struct Kernel {
    pub release: String,
    pub vmlinuz: PathBuf,
    /// `lib/modules/<release>` of the unpacked package.
    pub modules: PathBuf,
}

struct Known {
    name: &'static str,
    /// The package verified to boot under TCG and run the suite. Newer 6.12
    /// builds are not interchangeable: 6.12.95 panics early under TCG with
    /// two vCPUs.
    package: &'static str,
    /// The SHA-256 of the verified `.deb`.
    sha256: &'static str,
    /// Package name prefix, for the newest build when the verified one is
    /// gone from the archive; the package ends in `-cloud-amd64`.
    prefix: &'static str,
    suite: &'static str,
}

const KNOWN: &[Known] = &[
    Known {
        name: "6.12",
        package: "linux-image-6.12.88+deb12-cloud-amd64",
        sha256: "21d9d1277919597a3aba48acc428305bd495a5ff60d9c073a7e9a289d8d9dd9a",
        prefix: "linux-image-6.12.",
        suite: "bookworm-backports",
    },
    Known {
        name: "6.1",
        package: "linux-image-6.1.0-56-cloud-amd64",
        sha256: "e7d02b943971edcb8790e256c02cfab3bca6c3d37c1bf25392a57c71300615ee",
        prefix: "linux-image-6.1.0-",
        suite: "bookworm",
    },
];

pub fn get(name: &str) -> Result<Kernel> {
    let known = KNOWN.iter().find(|k| k.name == name).with_context(|| {
        let names: Vec<_> = KNOWN.iter().map(|k| k.name).collect();
        format!("unknown lab kernel {name:?}; known: {}", names.join(", "))
    })?;
    let deb = package(known)?;
    let stem = deb
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let dir = cache_dir().join("kernels").join(stem);
    if !dir.join(".unpacked").is_file() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&dir))?;
        std::fs::write(dir.join(".unpacked"), deb.to_string_lossy().as_bytes())?;
    }
    let vmlinuz = find_file(&dir.join("boot"), "vmlinuz-", "")
        .context("no boot/vmlinuz-* in the kernel package")?;
    let release = vmlinuz
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("vmlinuz-")
        .to_string();
    let modules = dir.join("lib/modules").join(&release);
    Ok(Kernel {
        release,
        vmlinuz,
        modules,
    })
}

fn package(known: &Known) -> Result<PathBuf> {
    let shared = shared_dir().join("kernels");
    if let Some(deb) = find_deb(&shared, known.package) {
        verify_against_sums(&deb)?;
        return Ok(deb);
    }
    let downloads = cache_dir().join("debs");
    if let Some(deb) = find_deb(&downloads, known.package) {
        return Ok(deb);
    }
    download(known, &downloads)
}

fn find_deb(dir: &Path, prefix: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with(prefix) && name.contains("-cloud-amd64_") && name.ends_with(".deb")
        })
        .collect();
    found.sort();
    found.pop()
}

/// `apt-get download` from Debian with a private sources list and state.
fn download(known: &Known, downloads: &Path) -> Result<PathBuf> {
    say(format!(
        "downloading the {} lab kernel from Debian {}",
        known.name, known.suite
    ));
    let apt = cache_dir().join("apt");
    for sub in ["state/lists/partial", "cache/archives/partial"] {
        std::fs::create_dir_all(apt.join(sub))?;
    }
    std::fs::create_dir_all(downloads)?;
    let sources = apt.join("sources.list");
    std::fs::write(
        &sources,
        format!("deb http://deb.debian.org/debian {} main\n", known.suite),
    )?;
    let options = |command: &mut Command| {
        command
            .arg("-o")
            .arg(format!("Dir::Etc::SourceList={}", sources.display()))
            .arg("-o")
            .arg("Dir::Etc::SourceParts=/nonexistent")
            .arg("-o")
            .arg(format!("Dir::State={}", apt.join("state").display()))
            .arg("-o")
            .arg(format!("Dir::Cache={}", apt.join("cache").display()));
    };
    let mut update = Command::new("apt-get");
    options(&mut update);
    run(update.arg("update"))?;
    let mut search = Command::new("apt-cache");
    options(&mut search);
    let pattern = format!(
        "^{}[0-9.+a-z~-]*-cloud-amd64$",
        known.prefix.replace('.', "\\.")
    );
    let list = output(search.args(["search", "--names-only", &pattern]))?;
    let mut names: Vec<&str> = list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    names.sort_by_key(|name| version_key(name));
    let name = if names.contains(&known.package) {
        known.package
    } else {
        let Some(newest) = names.last() else {
            bail!("no package matching {pattern} in Debian {}", known.suite);
        };
        say(format!(
            "warning: {} is gone from Debian {}; using {newest}, which the lab was not verified with",
            known.package, known.suite
        ));
        newest
    };
    let mut fetch = Command::new("apt-get");
    options(&mut fetch);
    run(fetch.args(["download", name]).current_dir(downloads))?;
    let deb = find_deb(downloads, name).context("apt-get download left no .deb")?;
    if name == known.package {
        let actual = sha256(&deb)?;
        if actual != known.sha256 {
            let _ = std::fs::remove_file(&deb);
            bail!(
                "{} has SHA-256 {actual}, expected {}",
                deb.display(),
                known.sha256
            );
        }
    }
    Ok(deb)
}

/// Sorts `linux-image-6.1.0-10-...` before `linux-image-6.1.0-9-...` correctly.
fn version_key(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect()
}
