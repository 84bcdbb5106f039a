//! Lab kernels: Debian cloud kernel packages, found in ../shared/kernels
//! (verified against its SHA256SUMS) or downloaded with apt-get into our cache
//! (with a private apt state: the machine's apt setup is never changed), then
//! unpacked with dpkg-deb.
//!
//! Debian's layout moved twice, and both layouts are handled by looking for
//! files rather than assuming paths: from 6.12.117 the modules are under
//! `usr/lib/modules/`, and from 6.19 the image is split into `linux-binary-*`
//! (from 7.2 with `vmlinuz` under `usr/lib/modules/RELEASE/` too) and
//! `linux-modules-*`, which are unpacked into one tree.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::apt::Apt;
use crate::cmd::{find_file, run, say, verify_against_sums};
use crate::{cache_dir, shared_dir};

pub struct Kernel {
    pub release: String,
    pub vmlinuz: PathBuf,
    /// `lib/modules/<release>` (or `usr/lib/modules/<release>`) of the unpacked packages.
    pub modules: PathBuf,
}

/// One `.deb`, pinned by its SHA-256.
struct Pinned {
    package: &'static str,
    sha256: &'static str,
}

pub struct Known {
    pub name: &'static str,
    /// The packages verified to boot under TCG and run the suite, unpacked
    /// into one tree. Newer builds are not interchangeable: 6.12.95 panics
    /// early under TCG with two vCPUs.
    packages: &'static [Pinned],
    /// For single-package kernels: the package name prefix, for the newest
    /// build when the verified one is gone from the archive (the package ends
    /// in `-cloud-amd64`). Split kernels have none: their parts must match.
    prefix: Option<&'static str>,
    suite: &'static str,
    /// Whether the kernel has `update_socket_protocol` (the suites run
    /// there) or is the "too old" case.
    pub has_hook: bool,
}

/// Every lab kernel: the oldest Debian kernel with the hook (bookworm-
/// backports 6.12), the newest LTS (6.18), the newest 7.x, and 6.1 for the
/// refusal. `mptcp_pernet.mptcp_enabled` moved from offset 40 to 41 in 7.2,
/// so the namespace guard's BTF reading is exercised on both layouts.
pub const KNOWN: &[Known] = &[
    Known {
        name: "6.12",
        packages: &[Pinned {
            package: "linux-image-6.12.88+deb12-cloud-amd64",
            sha256: "21d9d1277919597a3aba48acc428305bd495a5ff60d9c073a7e9a289d8d9dd9a",
        }],
        prefix: Some("linux-image-6.12."),
        suite: "bookworm-backports",
        has_hook: true,
    },
    Known {
        name: "6.18",
        packages: &[Pinned {
            package: "linux-image-6.18.15+deb13-cloud-amd64",
            sha256: "5a507681ea8c978d02265a7fec2f02c9588fb48b54b7f71edc1059e86007f3ec",
        }],
        prefix: None,
        suite: "trixie-backports",
        has_hook: true,
    },
    Known {
        name: "7.3",
        packages: &[
            Pinned {
                package: "linux-binary-7.3.4+deb13-cloud-amd64",
                sha256: "c4fbc8e404958693b28825474c20742d70594d65ca58aea7be6a279c81eb6fa0",
            },
            Pinned {
                package: "linux-modules-7.3.4+deb13-cloud-amd64",
                sha256: "359f04c363b7d3c5f9ce999ccb7351e00cc8eec0a30d6bc1cda37734987fc43d",
            },
        ],
        prefix: None,
        suite: "trixie-backports",
        has_hook: true,
    },
    Known {
        name: "6.1",
        packages: &[Pinned {
            package: "linux-image-6.1.0-56-cloud-amd64",
            sha256: "e7d02b943971edcb8790e256c02cfab3bca6c3d37c1bf25392a57c71300615ee",
        }],
        prefix: Some("linux-image-6.1.0-"),
        suite: "bookworm",
        has_hook: false,
    },
];

pub fn known(name: &str) -> Result<&'static Known> {
    KNOWN.iter().find(|k| k.name == name).with_context(|| {
        let names: Vec<_> = KNOWN.iter().map(|k| k.name).collect();
        format!("unknown lab kernel {name:?}; known: {}", names.join(", "))
    })
}

pub fn get(name: &str) -> Result<Kernel> {
    let known = known(name)?;
    let debs = known
        .packages
        .iter()
        .map(|pinned| package(known, pinned))
        .collect::<Result<Vec<_>>>()?;
    let stem = debs[0]
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let dir = cache_dir().join("kernels").join(stem);
    if !dir.join(".unpacked").is_file() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        for deb in &debs {
            run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&dir))?;
        }
        std::fs::write(dir.join(".unpacked"), format!("{debs:?}"))?;
    }
    let modules_root = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|d| dir.join(d))
        .find(|d| d.is_dir())
        .context("no lib/modules or usr/lib/modules in the kernel packages")?;
    let modules = find_file(&modules_root, "", "").context("no module tree")?;
    let release = modules
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let vmlinuz = [
        dir.join("boot").join(format!("vmlinuz-{release}")),
        modules.join("vmlinuz"),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .with_context(|| format!("no vmlinuz for {release} in the kernel packages"))?;
    Ok(Kernel {
        release,
        vmlinuz,
        modules,
    })
}

fn package(known: &Known, pinned: &Pinned) -> Result<PathBuf> {
    let shared = shared_dir().join("kernels");
    if let Some(deb) = find_file(&shared, &format!("{}_", pinned.package), ".deb") {
        verify_against_sums(&deb)?;
        return Ok(deb);
    }
    let downloads = cache_dir().join("debs");
    if let Some(deb) = find_file(&downloads, &format!("{}_", pinned.package), ".deb") {
        return Ok(deb);
    }
    download(known, pinned, &downloads)
}

/// Downloads the verified package, or (single-package kernels only) the
/// newest of its series when the archive no longer has it.
fn download(known: &Known, pinned: &Pinned, downloads: &Path) -> Result<PathBuf> {
    say(format!(
        "downloading the {} lab kernel ({}) from Debian {}",
        known.name, pinned.package, known.suite
    ));
    let apt = Apt::suite(known.suite)?;
    if !apt
        .search_names(&format!("^{}$", regex_escape(pinned.package)))?
        .is_empty()
    {
        return apt.download(pinned.package, downloads, Some(pinned.sha256));
    }
    let Some(prefix) = known.prefix else {
        bail!(
            "{} is gone from Debian {}: put the verified .deb (SHA-256 {}) into {} with a \
             SHA256SUMS line, or pin a newer build in xtask/src/lab/kernel.rs",
            pinned.package,
            known.suite,
            pinned.sha256,
            shared_dir().join("kernels").display()
        );
    };
    let pattern = format!("^{}[0-9.+a-z~-]*-cloud-amd64$", regex_escape(prefix));
    let mut names = apt.search_names(&pattern)?;
    names.sort_by_key(|name| version_key(name));
    let Some(newest) = names.last() else {
        bail!("no package matching {pattern} in Debian {}", known.suite);
    };
    say(format!(
        "warning: {} is gone from Debian {}; using {newest}, which the lab was not verified with",
        pinned.package, known.suite
    ));
    apt.download(newest, downloads, None)
}

fn regex_escape(name: &str) -> String {
    name.replace('.', "\\.").replace('+', "\\+")
}

/// Sorts `linux-image-6.1.0-10-...` before `linux-image-6.1.0-9-...` correctly.
fn version_key(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect()
}
