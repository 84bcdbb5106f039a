//! Lab kernels: Debian cloud kernel packages, found in ../shared/kernels
//! (verified against its SHA256SUMS) or downloaded with apt-get into our cache
//! (with a private apt state: the machine's apt setup is never changed), then
//! unpacked with dpkg-deb.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::apt::Apt;
use crate::cmd::{find_file, run, say, verify_against_sums};
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
    if let Some(deb) = find_file(&shared, &format!("{}_", known.package), ".deb") {
        verify_against_sums(&deb)?;
        return Ok(deb);
    }
    let downloads = cache_dir().join("debs");
    if let Some(deb) = find_file(&downloads, &format!("{}_", known.package), ".deb") {
        return Ok(deb);
    }
    download(known, &downloads)
}

/// Downloads the verified package, or the newest of its series when the
/// archive no longer has it.
fn download(known: &Known, downloads: &Path) -> Result<PathBuf> {
    say(format!(
        "downloading the {} lab kernel from Debian {}",
        known.name, known.suite
    ));
    let apt = Apt::suite(known.suite)?;
    let pattern = format!(
        "^{}[0-9.+a-z~-]*-cloud-amd64$",
        known.prefix.replace('.', "\\.")
    );
    let mut names = apt.search_names(&pattern)?;
    if names.iter().any(|n| n == known.package) {
        return apt.download(known.package, downloads, Some(known.sha256));
    }
    names.sort_by_key(|name| version_key(name));
    let Some(newest) = names.last() else {
        bail!("no package matching {pattern} in Debian {}", known.suite);
    };
    say(format!(
        "warning: {} is gone from Debian {}; using {newest}, which the lab was not verified with",
        known.package, known.suite
    ));
    apt.download(newest, downloads, None)
}

/// Sorts `linux-image-6.1.0-10-...` before `linux-image-6.1.0-9-...` correctly.
fn version_key(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect()
}
