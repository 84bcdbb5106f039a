//! The systemd image's base: a Debian root filesystem with systemd as PID 1,
//! real services (nginx), AppArmor's tools and podman, built by mmdebstrap from Debian's packages and
//! cached as a cpio archive, keyed by its recipe. The lab boots it as the
//! initramfs (`rdinit=/lib/systemd/systemd`): no disk image, no root= device.
//!
//! Not hash-pinned like the kernels: mmdebstrap resolves the suite's current
//! packages. The cached archive is what every later run uses, and the list
//! of what it holds is kept next to it (`.packages`) and printed when built.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};

use crate::cache_dir;
use crate::cmd::{output, run, say};

/// The Debian suite: systemd 257 (StartTransientUnit, delegation xattrs,
/// `systemd-analyze verify`), nginx from Debian.
const SUITE: &str = "trixie";
/// What the image holds besides apt's essentials: systemd and its bus, a
/// real server, AppArmor's parser, podman (with its OCI runtime and the
/// pods' pause process) for the sidecar's pods, NetworkManager (its own
/// MPTCP endpoints, next to `mptcpify paths`; masked at boot, started by
/// its test), Prometheus (which scrapes `--metrics` in its test; started by
/// the test, not at boot), containerd with its CRI plugin, runc and the CNI
/// plugins (the kubelet's side of a node, for the Kubernetes suite; masked
/// at boot, started by its test), the tools the tests read the kernel with.
const PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "nginx-light",
    "apparmor",
    "podman",
    "crun",
    "conmon",
    "catatonit",
    "network-manager",
    "prometheus",
    "containerd",
    "runc",
    "containernetworking-plugins",
    "curl",
    "iproute2",
    "kmod",
    "procps",
];
/// Left out to keep the image (held in the guest's RAM) small: with
/// Prometheus's tool (87 MB), the web libraries its old UI loads, and
/// podman's test helper in, the image grew from 308 to 508 MB, and the pod
/// suite's `podman build` ran out of space in the guest's root file system.
const EXCLUDED_PATHS: &[&str] = &[
    "/usr/share/doc/*",
    "/usr/share/man/*",
    "/usr/share/locale/*",
    "/usr/share/info/*",
    "/usr/bin/promtool",
    "/usr/share/javascript/*",
    "/usr/libexec/podman/podman-testing",
];

/// The cached archive, built when missing.
pub fn archive() -> Result<PathBuf> {
    let dir = cache_dir().join("images");
    std::fs::create_dir_all(&dir)?;
    let archive = dir.join(format!("systemd-{SUITE}-{:016x}.cpio", recipe_hash()));
    if archive.is_file() {
        return Ok(archive);
    }
    say(format!(
        "building the systemd lab image (Debian {SUITE}, mmdebstrap; once, then cached in {})",
        dir.display()
    ));
    let tree = dir.join("systemd-tree");
    if tree.exists() {
        std::fs::remove_dir_all(&tree)?;
    }
    let mut mmdebstrap = Command::new("mmdebstrap");
    mmdebstrap
        .args(["--variant=apt", "--quiet"])
        .arg(format!("--include={}", PACKAGES.join(",")));
    for path in EXCLUDED_PATHS {
        mmdebstrap.arg(format!("--dpkgopt=path-exclude={path}"));
    }
    mmdebstrap
        .arg(SUITE)
        .arg(&tree)
        .arg("http://deb.debian.org/debian");
    run(&mut mmdebstrap).context(
        "building the systemd lab image needs root and mmdebstrap (cargo xtask setup installs it)",
    )?;
    let packages = output(Command::new("chroot").arg(&tree).args([
        "dpkg-query",
        "-W",
        "-f",
        "${Package} ${Version}\\n",
    ]))?;
    let partial = archive.with_extension("partial");
    // Owners and modes as Debian made them (no -R: nginx's and systemd's
    // directories belong to their users).
    run(Command::new("sh").current_dir(&tree).args([
        "-c",
        &format!(
            "find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc > '{}'",
            partial.display()
        ),
    ]))?;
    std::fs::write(archive.with_extension("packages"), &packages)?;
    std::fs::rename(&partial, &archive)?;
    std::fs::remove_dir_all(&tree)?;
    say(format!(
        "systemd lab image: {} ({} MB, {} packages)",
        archive.display(),
        std::fs::metadata(&archive)?.len() >> 20,
        packages.lines().count()
    ));
    Ok(archive)
}

fn recipe_hash() -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (SUITE, PACKAGES, EXCLUDED_PATHS).hash(&mut hasher);
    hasher.finish()
}
