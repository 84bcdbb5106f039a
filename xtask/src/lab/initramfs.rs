//! Initramfs images for the lab, as concatenated cpio archives (the kernel
//! unpacks them in order): a cached base, the kernel's modules, our binaries
//! and the command. Two bases ([`Image`]): busybox with host tools (boots in
//! a second; most suites), or Debian with systemd as PID 1 ([`rootfs`]; the
//! suites about services and units).
//!
//! [`rootfs`]: crate::lab::rootfs

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::build::Artifacts;
use crate::cmd::{output, run};
use crate::lab::kernel::Kernel;
use crate::root;

/// Host tools copied into the guest (with their libraries), by command name.
const TOOLS: &[&str] = &[
    "ip", "ss", "tc", "nstat", "iperf3", "socat", "unshare", "nsenter", "setpriv",
];
/// Other host files the benchmarks use (mptcpize's LD_PRELOAD library).
const FILES: &[&str] = &["/usr/lib/x86_64-linux-gnu/mptcpize/libmptcpwrap.so.0.0.1"];
/// Modules loaded at boot, in this order: the diag modules let `ss` list
/// MPTCP sockets, veth joins namespaces, tbf/netem shape paths, tls is kTLS
/// (`TCP_ULP` "tls", which MPTCP refuses), dummy is the device the
/// NetworkManager suite has NetworkManager create (the lab has no
/// modules.dep for the kernel to load it on demand; loading it adds a
/// `dummy0`, down, to the first namespace); clsact (in sch_ingress), u32
/// and pedit let a test play the middlebox that strips MPTCP's option from
/// an established connection.
const MODULES: &[&str] = &[
    "inet_diag",
    "tcp_diag",
    "mptcp_diag",
    "veth",
    "sch_tbf",
    "sch_netem",
    "tls",
    "dummy",
    "sch_ingress",
    "cls_u32",
    "act_pedit",
];

/// Where guest binaries of ours live; the tests find mptcpify on PATH there.
pub const GUEST_BIN: &str = "/usr/local/bin";

const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /root
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /run/netns
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t bpf bpf /sys/fs/bpf
for m in /lib/modules/lab/*.ko; do insmod "$m" || echo "lab: insmod $m failed"; done
ip link set lo up
echo "MPTCPIFY-LAB-UP: kernel $(uname -r) up in $(cut -d' ' -f1 /proc/uptime) s"
cd /root
sh /lab/command
echo "MPTCPIFY-LAB-EXIT=$?"
poweroff -f
"#;

/// The lab's users: root, and two plain users the `run` tests switch to.
const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                      alice:x:1000:1000:alice:/home/alice:/bin/sh\n\
                      bob:x:1001:1001:bob:/home/bob:/bin/sh\n";
/// bob is also in alice's group, to show supplementary groups.
const GROUP: &str = "root:x:0:\nalice:x:1000:bob\nbob:x:1001:\n";

/// The systemd image runs the command as this service, once the system is
/// up (after multi-user.target: nginx runs), with the console as its output.
const LAB_UNIT: &str = "[Unit]
Description=mptcpify lab: the test command
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/lab/run
StandardOutput=tty
StandardError=tty
TTYPath=/dev/console
Environment=PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
";

/// What the lab service runs: the same markers as the busybox /init.
const LAB_RUN: &str = r#"#!/bin/sh
for m in /lib/modules/lab/*.ko; do insmod "$m" || echo "lab: insmod $m failed"; done
echo "MPTCPIFY-LAB-UP: kernel $(uname -r) up in $(cut -d' ' -f1 /proc/uptime) s, $(systemctl --version | head -1), $(systemctl is-system-running)"
cd /root
sh /lab/command
echo "MPTCPIFY-LAB-EXIT=$?"
systemctl poweroff --force --force
"#;

/// The base system a lab boot starts from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Image {
    /// busybox, the host's tools and /init: fast, no service manager.
    Busybox,
    /// Debian with systemd as PID 1, D-Bus and nginx.
    Systemd,
}

impl Image {
    /// A short name, for directories and console labels.
    pub fn name(self) -> &'static str {
        match self {
            Image::Busybox => "busybox",
            Image::Systemd => "debian",
        }
    }

    /// What the kernel runs as PID 1.
    pub fn init(self) -> &'static str {
        match self {
            Image::Busybox => "/init",
            Image::Systemd => "/lib/systemd/systemd",
        }
    }

    /// Guest RAM: the systemd image (about 150 MB unpacked) lives in it.
    pub fn memory_mib(self) -> u32 {
        match self {
            Image::Busybox => 1024,
            // The root file system is in RAM (half of it at most): the
            // image, and what podman's builds write.
            Image::Systemd => 2560,
        }
    }
}

/// The marker /init prints with the command's exit status.
pub const EXIT_MARKER: &str = "MPTCPIFY-LAB-EXIT=";
/// The marker /init prints once the kernel booted and the image is set up.
pub const UP_MARKER: &str = "MPTCPIFY-LAB-UP:";

pub fn build(
    kernel: &Kernel,
    artifacts: &Artifacts,
    command: &str,
    image: Image,
) -> Result<PathBuf> {
    // One directory per kernel and image: the lab runs several at once.
    let dir = root()
        .join("target/lab")
        .join(&kernel.release)
        .join(image.name());
    std::fs::create_dir_all(&dir)?;
    // The bases depend only on the kernel and on this file's lists.
    let mut parts = Vec::new();
    match image {
        Image::Busybox => {
            let base = dir.join(format!("base-{:016x}.cpio", base_recipe_hash()));
            if !base.is_file() {
                let stage = stage(&dir, "base")?;
                base_files(&stage, kernel)?;
                archive(&stage, &base)?;
            }
            parts.push(base);
        }
        Image::Systemd => {
            parts.push(crate::lab::rootfs::archive()?);
            let modules = dir.join(format!("modules-{:016x}.cpio", base_recipe_hash()));
            if !modules.is_file() {
                let stage = stage(&dir, "modules")?;
                // Under usr/: Debian's /lib is a symlink, which a cpio
                // directory entry `lib` would replace (the kernel's
                // init/initramfs.c clean_path() removes an entry of another type).
                lab_modules(&stage, "usr/lib/modules/lab", kernel)?;
                archive(&stage, &modules)?;
            }
            parts.push(modules);
        }
    }
    let ours = stage(&dir, "ours")?;
    // Debian's own libraries serve our binaries in the systemd image (they
    // are newer than the host's); copying the host's would put `lib`
    // directory entries over Debian's /lib symlink (see above).
    let copy = match image {
        Image::Busybox => {
            copy_binary(&ours, &artifacts.mptcpify, &format!("{GUEST_BIN}/mptcpify"))?;
            copy_binary
        }
        Image::Systemd => {
            systemd_files(&ours, artifacts)?;
            copy_executable
        }
    };
    for (name, exe) in &artifacts.tests {
        copy(&ours, exe, &format!("{GUEST_BIN}/test-{name}"))?;
    }
    for (name, exe) in &artifacts.tools {
        copy(&ours, exe, &format!("{GUEST_BIN}/{name}"))?;
    }
    write(&ours, "lab/command", command.as_bytes(), 0o755)?;
    let ours_cpio = dir.join("ours.cpio");
    archive(&ours, &ours_cpio)?;

    parts.push(ours_cpio);

    let initramfs = dir.join("initramfs.cpio");
    let mut out = std::fs::File::create(&initramfs)?;
    for part in parts {
        std::io::copy(&mut std::fs::File::open(part)?, &mut out)?;
    }
    Ok(initramfs)
}

/// The lab service, enabled; mptcpify installed from the release bundle as
/// README's Install says (into /usr/local: binary, units, man pages); no
/// getty on the console.
fn systemd_files(stage: &Path, artifacts: &Artifacts) -> Result<()> {
    write(stage, "lab/run", LAB_RUN.as_bytes(), 0o755)?;
    let units = "etc/systemd/system";
    write(
        stage,
        &format!("{units}/mptcpify-lab.service"),
        LAB_UNIT.as_bytes(),
        0o644,
    )?;
    let wants = stage.join(units).join("multi-user.target.wants");
    std::fs::create_dir_all(&wants)?;
    std::os::unix::fs::symlink(
        "/etc/systemd/system/mptcpify-lab.service",
        wants.join("mptcpify-lab.service"),
    )?;
    // NetworkManager would take over the interfaces the tests create, and
    // Prometheus would scrape nothing at the cost of a core under TCG, and
    // containerd would serve no kubelet: each runs only where its test
    // starts it.
    for masked in [
        "serial-getty@ttyS0.service",
        "getty@tty1.service",
        "NetworkManager.service",
        "NetworkManager-wait-online.service",
        "NetworkManager-dispatcher.service",
        "prometheus.service",
        "containerd.service",
    ] {
        std::os::unix::fs::symlink("/dev/null", stage.join(units).join(masked))?;
    }
    let bundle = crate::dist::bundle(artifacts)?;
    let local = stage.join("usr/local");
    std::fs::create_dir_all(&local)?;
    run(Command::new("tar")
        .arg("-C")
        .arg(&local)
        .args([
            "--strip-components=1",
            "--exclude=SHA256SUMS",
            "--no-same-owner",
            "-xzf",
        ])
        .arg(&bundle))?;
    Ok(())
}

fn base_recipe_hash() -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (TOOLS, FILES, MODULES, INIT, PASSWD, GROUP).hash(&mut hasher);
    hasher.finish()
}

fn stage(dir: &Path, name: &str) -> Result<PathBuf> {
    let stage = dir.join(format!("stage-{name}"));
    let _ = std::fs::remove_dir_all(&stage);
    std::fs::create_dir_all(&stage)?;
    Ok(stage)
}

fn base_files(stage: &Path, kernel: &Kernel) -> Result<()> {
    for d in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "usr/local/bin",
        "proc",
        "sys",
        "dev",
        "tmp",
        "run",
        "root",
        "lab",
        "lib/modules/lab",
        "etc",
    ] {
        std::fs::create_dir_all(stage.join(d))?;
    }
    let busybox = which("busybox")?;
    if !output(Command::new("file").arg(&busybox))
        .unwrap_or_default()
        .contains("statically linked")
    {
        bail!(
            "{} is not statically linked: install busybox-static",
            busybox.display()
        );
    }
    std::fs::copy(&busybox, stage.join("bin/busybox"))?;
    write(stage, "init", INIT.as_bytes(), 0o755)?;
    write(stage, "etc/passwd", PASSWD.as_bytes(), 0o644)?;
    write(stage, "etc/group", GROUP.as_bytes(), 0o644)?;
    for tool in TOOLS {
        let path = which(tool)?;
        copy_binary(stage, &path, &path.to_string_lossy())?;
    }
    for file in FILES {
        copy_binary(stage, Path::new(file), file)?;
    }
    lab_modules(stage, "lib/modules/lab", kernel)
}

/// The kernel's modules the lab loads at boot, in load order, into `dir`.
fn lab_modules(stage: &Path, dir: &str, kernel: &Kernel) -> Result<()> {
    std::fs::create_dir_all(stage.join(dir))?;
    for (index, module) in MODULES.iter().enumerate() {
        let found = output(
            Command::new("find")
                .arg(&kernel.modules)
                .args(["-name", &format!("{module}.ko*")]),
        )?;
        let source = found
            .lines()
            .next()
            .with_context(|| format!("module {module} not in {}", kernel.modules.display()))?;
        let dest = stage.join(format!("{dir}/{index:02}-{module}.ko"));
        if source.ends_with(".xz") {
            let plain = output(
                Command::new("sh")
                    .args(["-c", &format!("xz -dc '{source}' > '{}'", dest.display())]),
            );
            plain.with_context(|| format!("decompressing {source}"))?;
        } else {
            std::fs::copy(source, &dest)?;
        }
    }
    Ok(())
}

/// Copies an executable alone.
fn copy_executable(stage: &Path, source: &Path, dest: &str) -> Result<()> {
    let target = stage.join(dest.trim_start_matches('/'));
    std::fs::create_dir_all(target.parent().unwrap())?;
    std::fs::copy(source, &target).with_context(|| format!("copying {}", source.display()))?;
    Ok(())
}

/// Copies an executable and the shared libraries it needs (as ldd lists
/// them), keeping the libraries' host paths.
fn copy_binary(stage: &Path, source: &Path, dest: &str) -> Result<()> {
    copy_executable(stage, source, dest)?;
    // A static binary has no libraries; ldd then complains on stderr.
    let listing = Command::new("ldd")
        .arg(source)
        .stderr(std::process::Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let libraries: BTreeSet<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')))
        .collect();
    for library in libraries {
        let dest = stage.join(library.trim_start_matches('/'));
        if !dest.exists() {
            std::fs::create_dir_all(dest.parent().unwrap())?;
            std::fs::copy(library, &dest).with_context(|| format!("copying {library}"))?;
        }
    }
    Ok(())
}

fn write(stage: &Path, path: &str, bytes: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let target = stage.join(path);
    std::fs::create_dir_all(target.parent().unwrap())?;
    std::fs::write(&target, bytes)?;
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn which(command: &str) -> Result<PathBuf> {
    let path = output(Command::new("sh").args(["-c", &format!("command -v {command}")]))
        .with_context(|| format!("{command} is not installed (cargo xtask setup installs it)"))?;
    Ok(std::fs::canonicalize(path.trim())?)
}

fn archive(stage: &Path, out: &Path) -> Result<()> {
    run(Command::new("sh").current_dir(stage).args([
        "-c",
        &format!(
            "find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 > '{}'",
            out.display()
        ),
    ]))
}
