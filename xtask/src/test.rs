//! `cargo xtask test`: everything, cheapest first. Any failure fails the run;
//! nothing is skipped (a missing kernel, tool or privilege is a failure).
//! What the host's own kernel is expected to do is derived from it (the
//! tests crate's `host-kernel` probe), never assumed.
//!
//! The lab's guests run side by side, one per host core (each runs QEMU's
//! TCG on one host thread): one guest per kernel and image, longest first.

use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::build::{self, cargo, Artifacts};
use crate::cmd::{self, say};
use crate::lab::{self, initramfs::GUEST_BIN, kernel::KNOWN, Image};
use crate::root;

/// The suites that need the lab's Debian image: systemd as PID 1,
/// AppArmor's tools (apparmor_parser) with securityfs mounted, podman, and
/// NetworkManager, Prometheus, containerd. They run there only: they start
/// and stop units, restart nginx, load AppArmor profiles, run pods,
/// NetworkManager and containerd, which is the lab's to do, not a host's.
const DEBIAN_IMAGE_SUITES: [&str; 6] = [
    "systemd",
    "apparmor",
    "pod",
    "networkmanager",
    "prometheus",
    "kubernetes",
];
/// The suite that checks the release bundle: on the host only.
const BUNDLE_SUITE: &str = "bundle";
/// What `--suite` also takes besides the integration suites: the host's
/// unit tests and the manifests' validation.
const HOST_STEPS: [&str; 2] = ["unit", "manifests"];
/// The suite a kernel without the hook runs: the clear refusal.
const REFUSAL_SUITE: &str = "refusal";

/// `kernels`: the lab kernels to run on (empty: every one in
/// `lab::kernel::KNOWN`); `suites`: only these (empty: all).
pub fn run(kernels: &[String], suites: &[String]) -> Result<()> {
    let kernels: Vec<&str> = if kernels.is_empty() {
        KNOWN.iter().map(|k| k.name).collect()
    } else {
        kernels.iter().map(String::as_str).collect()
    };
    for name in &kernels {
        lab::kernel::known(name)?;
    }
    let artifacts = build::all()?;
    let known_suites: Vec<&str> = artifacts.tests.iter().map(|(n, _)| n.as_str()).collect();
    for suite in suites {
        if !known_suites.contains(&suite.as_str()) && !HOST_STEPS.contains(&suite.as_str()) {
            bail!(
                "unknown suite {suite:?}; known: {}, {}",
                HOST_STEPS.join(", "),
                known_suites.join(", ")
            );
        }
    }
    let wanted = |suite: &str| suites.is_empty() || suites.iter().any(|s| s == suite);

    let jobs = lab_jobs(&kernels, &known_suites, &wanted)?;
    // The host's steps run while the guests do: they need no lab, and the
    // guests are the run's long pole.
    let (host, lab) = std::thread::scope(|scope| {
        let lab = scope.spawn(|| run_side_by_side(&artifacts, jobs));
        let host = host_steps(&artifacts, &wanted);
        let lab = lab
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the lab's scheduler panicked")));
        (host, lab)
    });
    match (host, lab) {
        (Ok(()), Ok(())) => {
            say("all tests passed");
            Ok(())
        }
        (Err(host), Ok(())) => Err(host.context("the host's tests failed")),
        (Ok(()), Err(lab)) => Err(lab),
        (Err(host), Err(lab)) => Err(lab.context(format!("and the host's tests failed: {host:#}"))),
    }
}

/// The host's own steps: unit tests, the bundle, the manifests, the host
/// checks, and the kernel suites where this host's kernel lets mptcpify
/// attach.
fn host_steps(artifacts: &Artifacts, wanted: &(dyn Fn(&str) -> bool + Sync)) -> Result<()> {
    if wanted("unit") {
        say("host unit tests (the decision, the plan, the BTF reader, the renderings, the config)");
        // The pure crates on their own, as a newcomer runs them (stable
        // Rust, no patched aya, no BPF toolchain), into one target dir.
        for krate in ["mptcpify-common", "mptcpify-core"] {
            cmd::run(
                cargo()
                    .args(["test", "--manifest-path"])
                    .arg(root().join(krate).join("Cargo.toml"))
                    .arg("--target-dir")
                    .arg(root().join("target/pure")),
            )?;
        }
        cmd::run(cargo().args([
            "test",
            "--profile",
            "checks",
            "-p",
            "mptcpify",
            "-p",
            "mptcpify-tests",
            "--lib",
            "--bins",
        ]))?;
    }
    if wanted(BUNDLE_SUITE) {
        say("the release bundle (cargo xtask dist), checked on this host");
        let bundle = crate::dist::bundle(artifacts)?;
        cmd::run(host_test(artifacts, BUNDLE_SUITE)?.env("MPTCPIFY_BUNDLE", &bundle))?;
    }
    if wanted("manifests") {
        say("the Kubernetes manifests (deploy/kubernetes), validated offline");
        crate::manifests::validate()?;
    }

    let host = host_kernel(artifacts)?;
    let host_checks: Vec<&str> = ["cli", REFUSAL_SUITE]
        .into_iter()
        .filter(|s| wanted(s))
        .collect();
    if !host_checks.is_empty() {
        say(format!(
            "host checks: bad input, and what this host's kernel allows ({host})"
        ));
    }
    for name in host_checks {
        cmd::run(&mut host_test(artifacts, name)?)?;
    }
    if host == "attachable" {
        say("this host's kernel lets mptcpify attach: the kernel suites run here too");
        for (name, _) in artifacts.tests.iter().filter(|(n, _)| {
            !is_host_only(n) && !DEBIAN_IMAGE_SUITES.contains(&n.as_str()) && wanted(n)
        }) {
            cmd::run(&mut host_test(artifacts, name)?)?;
        }
    }

    Ok(())
}

/// The guests to run: per kernel with the hook, its busybox suites and its
/// Debian image's; a kernel without the hook, the refusal.
fn lab_jobs(
    kernels: &[&str],
    known_suites: &[&str],
    wanted: &dyn Fn(&str) -> bool,
) -> Result<Vec<Job>> {
    let mut jobs = Vec::new();
    for &name in kernels {
        let known = lab::kernel::known(name)?;
        if !known.has_hook {
            if wanted(REFUSAL_SUITE) {
                jobs.push(Job::new(name, Image::Busybox, &[REFUSAL_SUITE]));
            }
            continue;
        }
        let busybox: Vec<&str> = known_suites
            .iter()
            .copied()
            .filter(|t| !DEBIAN_IMAGE_SUITES.contains(t) && *t != BUNDLE_SUITE && wanted(t))
            .collect();
        let debian: Vec<&str> = DEBIAN_IMAGE_SUITES
            .iter()
            .copied()
            .filter(|t| wanted(t))
            .collect();
        for (image, suites) in [(Image::Busybox, busybox), (Image::Systemd, debian)] {
            if !suites.is_empty() {
                jobs.push(Job::new(name, image, &suites));
            }
        }
    }
    Ok(jobs)
}

/// One guest: a kernel, an image and the suites it runs, one after another.
struct Job {
    kernel: String,
    image: Image,
    command: String,
    label: String,
    suites: usize,
}

impl Job {
    fn new(kernel: &str, image: Image, suites: &[&str]) -> Job {
        let lines: Vec<String> = suites
            .iter()
            .map(|test| format!("{GUEST_BIN}/test-{test} --test-threads=1"))
            .collect();
        Job {
            kernel: kernel.to_string(),
            image,
            command: format!("set -e\n{}\n", lines.join("\n")),
            label: format!("{kernel} {}", image.name()),
            suites: suites.len(),
        }
    }

    /// The order guests start in, longest first, so that they end close
    /// together: measured under TCG (issue 24), a kernel's busybox suites
    /// take about 700 s, its Debian image's 250 s, the refusal 5 s.
    fn rank(&self) -> u8 {
        match (self.image, self.suites) {
            (Image::Busybox, suites) if suites > 1 => 2,
            (Image::Systemd, _) => 1,
            _ => 0,
        }
    }
}

/// Runs `jobs` with as many guests at once as the host has cores (each
/// guest is one host thread), longest first; every job runs, and the
/// failures are said together at the end.
fn run_side_by_side(artifacts: &Artifacts, mut jobs: Vec<Job>) -> Result<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    // Shared, cached inputs are made before the guests start, once: the
    // kernels unpacked, the Debian image built.
    for job in &jobs {
        lab::kernel::get(&job.kernel)?;
        if job.image == Image::Systemd {
            lab::rootfs::archive()?;
        }
    }
    jobs.sort_by_key(|job| std::cmp::Reverse(job.rank()));
    let guests = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(jobs.len());
    say(format!(
        "lab: {} guests, {guests} at a time (one per host core): {}",
        jobs.len(),
        jobs.iter()
            .map(|j| j.label.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let queue = Mutex::new(jobs.into_iter());
    let results = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..guests {
            scope.spawn(|| loop {
                let Some(job) = queue.lock().expect("the job queue").next() else {
                    break;
                };
                lab::qemu::label_console(&job.label);
                say(format!(
                    "lab, Debian {}: the real program on the real hook",
                    job.label
                ));
                let begun = Instant::now();
                let outcome = lab::capture_in(&job.kernel, artifacts, &job.command, job.image)
                    .map(|(status, _)| status);
                results
                    .lock()
                    .expect("the results")
                    .push((job.label, begun.elapsed(), outcome));
            });
        }
    });
    let results = results.into_inner().expect("the results");
    say(format!(
        "lab: {} guests in {:.0} s:",
        results.len(),
        started.elapsed().as_secs_f64()
    ));
    let mut failed = Vec::new();
    for (label, took, outcome) in &results {
        let verdict = match outcome {
            Ok(0) => "passed".to_string(),
            Ok(status) => format!("FAILED (exit status {status})"),
            Err(e) => format!("FAILED ({e:#})"),
        };
        say(format!(
            "  {label:<14} {:>6.0} s  {verdict}",
            took.as_secs_f64()
        ));
        if !matches!(outcome, Ok(0)) {
            failed.push(label.as_str());
        }
    }
    if !failed.is_empty() {
        bail!("the lab suites failed on: {}", failed.join(", "));
    }
    Ok(())
}

/// Tests that only check the command line, the host's refusal and the
/// release bundle.
fn is_host_only(name: &str) -> bool {
    name == "cli" || name == REFUSAL_SUITE || name == BUNDLE_SUITE
}

/// `too-old`, `trampolines` or `attachable`, probed independently of mptcpify.
fn host_kernel(artifacts: &Artifacts) -> Result<String> {
    let probe = artifacts
        .tools
        .iter()
        .find(|(name, _)| name == "host-kernel")
        .context("the tests crate's host-kernel probe was not built")?;
    Ok(cmd::output(&mut Command::new(&probe.1))?.trim().to_string())
}

/// One integration test binary, run on this host against the built binary.
fn host_test(artifacts: &Artifacts, name: &str) -> Result<Command> {
    let (_, exe) = artifacts
        .tests
        .iter()
        .find(|(n, _)| n == name)
        .with_context(|| format!("no test binary {name}"))?;
    let mut command = Command::new(exe);
    command
        .arg("--test-threads=1")
        .env("MPTCPIFY_BIN", &artifacts.mptcpify)
        .env("MPTCPIFY_PROBE_DIR", crate::root().join("target/probe"));
    Ok(command)
}
