//! The eBPF toolchain and the host packages the lab needs, set up on a fresh
//! machine without a manual step, and cached.
//!
//! - `rust-src` for `nightly` (to build `core` for bpfel-unknown-none): rustup
//!   first; offline, Debian's `rust-src` package, extracted (never installed).
//! - `bpf-linker`, built against the nightly's own libLLVM so that the LLVM
//!   that emits the bitcode is the one that links it.
//! - Debian packages: qemu, busybox, iperf3, ...

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::apt::Apt;
use crate::cmd::{find_file, output, run, say, succeeds, verify_against_sums};
use crate::{cache_dir, shared_dir};

pub const NIGHTLY: &str = "nightly";
const BPF_LINKER_VERSION: &str = "0.13.0";

/// Debian packages whose commands the lab and the tests use.
const HOST_PACKAGES: &[(&str, &str)] = &[
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("busybox", "busybox-static"),
    ("cpio", "cpio"),
    ("xz", "xz-utils"),
    ("ip", "iproute2"),
    ("iperf3", "iperf3"),
    ("socat", "socat"),
    ("dpkg-deb", "dpkg"),
    ("mptcpize", "mptcpize"),
    ("gcc", "gcc"),
    ("mmdebstrap", "mmdebstrap"),
    // k8s-cri's build script compiles the CRI's protobuf definitions.
    ("protoc", "protobuf-compiler"),
];

pub struct Toolchain {
    /// A folder holding a working `bpf-linker`, to put first on PATH.
    pub bpf_linker_dir: PathBuf,
}

pub fn setup() -> Result<Toolchain> {
    host_packages()?;
    rust_src()?;
    let bpf_linker_dir = bpf_linker()?;
    Ok(Toolchain { bpf_linker_dir })
}

fn nightly_sysroot() -> Result<PathBuf> {
    let out = output(Command::new("rustc").args([&format!("+{NIGHTLY}"), "--print", "sysroot"]))
        .context("the nightly toolchain is needed to build the BPF program (rustup toolchain install nightly)")?;
    Ok(PathBuf::from(out.trim()))
}

fn rust_src() -> Result<()> {
    let library = nightly_sysroot()?.join("lib/rustlib/src/rust/library");
    if library.join("core/Cargo.toml").is_file() {
        return Ok(());
    }
    say("nightly has no rust-src; trying rustup");
    if succeeds(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        NIGHTLY,
    ])) && library.join("core/Cargo.toml").is_file()
    {
        return Ok(());
    }
    say("rustup could not add rust-src (offline?); using Debian's rust-src package");
    let deb = rust_src_deb()?;
    let unpacked = cache_dir().join("rust-src");
    let _ = std::fs::remove_dir_all(&unpacked);
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
    let source = unpacked.join("usr/lib/rustlib/src/rust/library");
    if !source.join("core").is_dir() {
        bail!(
            "{} has no usr/lib/rustlib/src/rust/library/core",
            deb.display()
        );
    }
    std::fs::create_dir_all(library.parent().unwrap())?;
    let _ = std::fs::remove_dir_all(&library);
    run(Command::new("cp").arg("-a").arg(&source).arg(&library))?;
    say(format!("installed rust-src into {}", library.display()));
    Ok(())
}

/// Debian's rust-src that matches our nightly (1.97), verified to build
/// `core` for bpfel-unknown-none with it. Bookworm's own rust-src (1.63) is
/// far too old, so it comes from sid.
const RUST_SRC: (&str, &str, &str) = (
    "sid",
    "rust-src=1.97.1+dfsg1-1",
    "d0637f8f464234ffb12baa55fc0e851f5f9dcfd0199c1a0922e4488a4f591992",
);

/// The shared verified copy when present, else a verified download.
fn rust_src_deb() -> Result<PathBuf> {
    let shared = shared_dir().join("toolchain");
    if let Some(deb) = find_file(&shared, "rust-src_", ".deb") {
        verify_against_sums(&deb)?;
        return Ok(deb);
    }
    let dir = cache_dir().join("debs");
    if let Some(deb) = find_file(&dir, "rust-src_", ".deb") {
        return Ok(deb);
    }
    let (suite, package, sha256) = RUST_SRC;
    Apt::suite(suite)?
        .download(package, &dir, Some(sha256))
        .context("downloading Debian's rust-src")
}

/// Our bpf-linker, built against the libLLVM of the nightly that compiles
/// the program: the nightly floats, so each run checks that the libLLVM the
/// cached bpf-linker loads is the nightly's own, and rebuilds it (for the
/// nightly's LLVM major) when the nightly has moved on. A bpf-linker on PATH
/// is not used: nothing says which LLVM it was built for.
fn bpf_linker() -> Result<PathBuf> {
    let root = cache_dir().join("bpf-linker");
    let bin = root.join("bin");
    let nightly_llvm = nightly_libllvm()?;
    let linked = linked_libllvm(&bin.join("bpf-linker"));
    if linked.as_deref() == Some(nightly_llvm.as_str())
        && succeeds(Command::new(bin.join("bpf-linker")).arg("--version"))
    {
        return Ok(bin);
    }
    if let Some(old) = linked {
        say(format!(
            "bpf-linker was built for {old}, the nightly now has {nightly_llvm}: rebuilding it"
        ));
    }
    let major = nightly_llvm_major()?;
    say(format!(
        "building bpf-linker {BPF_LINKER_VERSION} against the nightly's LLVM {major} (a few minutes, once)"
    ));
    let prefix = llvm_prefix()?;
    run(Command::new("cargo")
        .args([
            "install",
            "--force",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
        ])
        .args([
            "--no-default-features",
            "--features",
            &format!("llvm-{major}"),
            "--root",
        ])
        .arg(&root)
        .env("LLVM_PREFIX", &prefix))
    .with_context(|| {
        format!(
            "bpf-linker {BPF_LINKER_VERSION} could not be built for the nightly's LLVM {major}: \
             if it has no `llvm-{major}` feature, pin a nightly with an LLVM it supports \
             (rustup toolchain install nightly-YYYY-MM-DD, and set NIGHTLY in \
             xtask/src/toolchain.rs) or raise BPF_LINKER_VERSION"
        )
    })?;
    let linked = linked_libllvm(&bin.join("bpf-linker"));
    if linked.as_deref() != Some(nightly_llvm.as_str()) {
        bail!(
            "the freshly built bpf-linker loads {linked:?}, not the nightly's {nightly_llvm}; \
             delete {} and run again",
            root.display()
        );
    }
    Ok(bin)
}

/// The file name of the nightly's libLLVM (`libLLVM.so.22.1-rust-1.97.0-nightly`).
fn nightly_libllvm() -> Result<String> {
    let sysroot_lib = nightly_sysroot()?.join("lib");
    let real = find_file(&sysroot_lib, "libLLVM.so.", "")
        .with_context(|| format!("no libLLVM.so.* in {}", sysroot_lib.display()))?;
    Ok(real.file_name().unwrap().to_string_lossy().into_owned())
}

/// The LLVM major version of the nightly (`rustc -vV`: "LLVM version: 22.1.4").
fn nightly_llvm_major() -> Result<u32> {
    let text = output(Command::new("rustc").args([&format!("+{NIGHTLY}"), "-vV"]))?;
    text.lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next()?.parse().ok())
        .context("rustc +nightly -vV names no LLVM version")
}

/// The libLLVM file name `binary` loads, as ldd resolves it.
fn linked_libllvm(binary: &std::path::Path) -> Option<String> {
    if !binary.is_file() {
        return None;
    }
    let listing = output(Command::new("ldd").arg(binary)).ok()?;
    listing
        .split_whitespace()
        .find(|w| w.starts_with("libLLVM"))
        .map(String::from)
}

/// A folder whose `lib/` holds the nightly's libLLVM under the names the
/// llvm-sys build looks for (`libLLVM.so`) and the loader looks for (its SONAME).
/// It is kept: bpf-linker's RUNPATH points into it.
fn llvm_prefix() -> Result<PathBuf> {
    let sysroot_lib = nightly_sysroot()?.join("lib");
    let real = find_file(&sysroot_lib, "libLLVM.so.", "")
        .with_context(|| format!("no libLLVM.so.* in {}", sysroot_lib.display()))?;
    let prefix = cache_dir().join("llvm-prefix");
    let lib = prefix.join("lib");
    std::fs::create_dir_all(&lib)?;
    for name in [
        "libLLVM.so".into(),
        real.file_name().unwrap().to_os_string(),
    ] {
        let link = lib.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&real, &link)?;
    }
    Ok(prefix)
}

fn host_packages() -> Result<()> {
    let missing: Vec<&str> = HOST_PACKAGES
        .iter()
        .filter(|(command, _)| {
            !succeeds(Command::new("sh").args(["-c", &format!("command -v {command}")]))
        })
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let install = format!(
        "apt-get install -y --no-install-recommends {}",
        missing.join(" ")
    );
    if !is_root() {
        bail!("missing host packages; run as root:\n    {install}");
    }
    say(format!(
        "installing missing host packages: {}",
        missing.join(" ")
    ));
    run(Command::new("sh")
        .args(["-c", &install])
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u")).is_ok_and(|s| s.trim() == "0")
}
