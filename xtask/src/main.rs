//! Every step around the product: toolchain, build, the VM lab, tests, demo,
//! benchmarks. `cargo xtask <command>`; see `cargo xtask --help`.
//!
//! - [`toolchain`]: nightly rust-src, bpf-linker, host packages.
//! - [`apt`]: Debian packages fetched without touching the machine's apt setup.
//! - [`aya_patch`]: the patched aya sources the workspace builds against.
//! - [`build`]: the BPF object, the binary, the test binaries.
//! - [`lab`]: kernels, initramfs images and QEMU runs.
//! - [`test`], [`demo`], [`bench`]: what runs where.
//! - [`dist`]: the release bundle; [`manifests`]: Kubernetes manifests, validated.
//! - [`cmd`]: running commands loudly.

mod apt;
mod aya_patch;
mod bench;
mod build;
mod cmd;
mod demo;
mod dist;
mod lab;
mod manifests;
mod test;
mod toolchain;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Build, lab and test tasks for mptcpify")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Set up the eBPF toolchain and host packages (idempotent, cached).
    Setup,
    /// Build the BPF object and the release binary.
    Build,
    /// Boot a lab kernel and run a shell command inside (as root).
    Vm {
        /// Lab kernel: 6.12, 6.18 or 7.3 (with the hook) or 6.1 (too old).
        #[arg(long, default_value = "6.12")]
        kernel: String,
        /// Boot Debian with systemd as PID 1 (and nginx) instead of busybox.
        #[arg(long)]
        systemd: bool,
        /// The command, run by the guest's /bin/sh.
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
    /// Run every test: host unit tests, host checks, and the VM suites
    /// (their guests side by side, one per host core).
    Test {
        /// Run the lab suites on this kernel only (repeatable; default: every
        /// lab kernel: 6.12, 6.18, 7.3 and 6.1).
        #[arg(long = "kernel", value_name = "VERSION")]
        kernels: Vec<String>,
        /// Run only this suite (repeatable): an integration test file of
        /// tests/tests (upgrade, trust, systemd, ...), `unit` (the host's
        /// unit tests) or `manifests`. Lab suites run on every --kernel.
        #[arg(long = "suite", value_name = "NAME")]
        suites: Vec<String>,
    },
    /// Show `mptcpify --comm iperf3` upgrading a real iperf3 run in the lab.
    Demo,
    /// Measure costs and benefits in the lab; writes BENCHMARKS.md.
    Bench {
        /// Measure only the socket() costs, in ROUNDS rounds, and print them
        /// (BENCHMARKS.md is left alone): for working on the program.
        #[arg(long, value_name = "ROUNDS", conflicts_with = "servers_only")]
        socket_only: Option<usize>,
        /// Measure only what an accepted connection costs, and the
        /// footprint under a load of short connections, and print them
        /// (BENCHMARKS.md is left alone).
        #[arg(long)]
        servers_only: bool,
        /// With --socket-only: only the modes whose name contains one of
        /// these words (comma-separated; "no hook" is always measured).
        #[arg(
            long,
            value_name = "WORDS",
            requires = "socket_only",
            allow_hyphen_values = true
        )]
        only: Option<String>,
        /// The lab kernel to measure on, one with the hook (BENCHMARKS.md is
        /// measured on 6.12, the oldest Debian kernel that has it).
        #[arg(long = "kernel", value_name = "VERSION", default_value = "6.12")]
        kernel: String,
    },
    /// Write the release bundle: target/dist/mptcpify-VERSION-x86_64-linux.tar.gz
    /// (static binary, systemd units, man pages, completions, README, SHA256SUMS).
    Dist,
    /// Validate the Kubernetes manifests of deploy/kubernetes offline.
    Manifests,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Setup => toolchain::setup().map(drop),
        Command::Build => build::all().map(drop),
        Command::Vm {
            kernel,
            systemd,
            command,
        } => {
            let image = if systemd {
                lab::Image::Systemd
            } else {
                lab::Image::Busybox
            };
            build::all()
                .and_then(|artifacts| {
                    lab::capture_in(&kernel, &artifacts, &command.join(" "), image)
                })
                .and_then(|(status, _)| exit_with(status))
        }
        Command::Test { kernels, suites } => test::run(&kernels, &suites),
        Command::Demo => demo::run(),
        Command::Bench {
            socket_only,
            servers_only,
            only,
            kernel,
        } => match socket_only {
            Some(rounds) => bench::socket_only(&kernel, rounds, only.as_deref()),
            None if servers_only => bench::servers_only(&kernel),
            None => bench::run(&kernel),
        },
        Command::Dist => dist::run_dist().map(drop),
        Command::Manifests => manifests::validate(),
    };
    if let Err(err) = result {
        eprintln!("xtask: error: {err:#}");
        std::process::exit(1);
    }
}

fn exit_with(status: i32) -> Result<()> {
    std::process::exit(status)
}

/// The repository's root.
pub fn root() -> PathBuf {
    let xtask = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    xtask.parent().map(PathBuf::from).unwrap_or(xtask)
}

/// Where downloaded and built tools and images live between runs:
/// `$MPTCPIFY_CACHE`, else `$XDG_CACHE_HOME/mptcpify`, else `~/.cache/mptcpify`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MPTCPIFY_CACHE") {
        return dir.into();
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or("/root".into())).join(".cache")
        });
    base.join("mptcpify")
}

/// Verified copies of large downloads shared by every machine of ours; the
/// project must work without it.
pub fn shared_dir() -> PathBuf {
    root().join("../shared")
}
