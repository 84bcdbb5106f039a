//! `cargo xtask test`: everything, cheapest first. Any failure fails the run;
//! nothing is skipped (a missing kernel, tool or privilege is a failure).
//! What the host's own kernel is expected to do is derived from it (the
//! tests crate's `host-kernel` probe), never assumed.

use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::build::{self, cargo, Artifacts};
use crate::cmd::{self, say};
use crate::lab::{self, initramfs::GUEST_BIN, kernel::KNOWN, Image};

/// The suites that need the lab's Debian image: systemd as PID 1,
/// AppArmor's tools (apparmor_parser) with securityfs mounted, and podman.
/// They run there only: they start and stop units, restart nginx, load
/// AppArmor profiles and run pods, which is the lab's to do, not a host's.
const DEBIAN_IMAGE_SUITES: [&str; 3] = ["systemd", "apparmor", "pod"];
/// The suite that checks the release bundle: on the host only.
const BUNDLE_SUITE: &str = "bundle";

/// `kernels`: the lab kernels to run on (empty: every one in `lab::kernel::KNOWN`).
pub fn run(kernels: &[String]) -> Result<()> {
    let kernels: Vec<&str> = if kernels.is_empty() {
        KNOWN.iter().map(|k| k.name).collect()
    } else {
        kernels.iter().map(String::as_str).collect()
    };
    for name in &kernels {
        lab::kernel::known(name)?;
    }
    let artifacts = build::all()?;

    say("host unit tests (the decision, the policy, selector resolution, BTF layout)");
    cmd::run(cargo().args([
        "test",
        "--release",
        "-p",
        "mptcpify-common",
        "-p",
        "mptcpify",
        "-p",
        "mptcpify-tests",
        "--lib",
        "--bins",
    ]))?;

    say("the release bundle (cargo xtask dist), checked on this host");
    let bundle = crate::dist::bundle(&artifacts)?;
    cmd::run(host_test(&artifacts, BUNDLE_SUITE)?.env("MPTCPIFY_BUNDLE", &bundle))?;

    say("the Kubernetes manifests (deploy/kubernetes), validated offline");
    crate::manifests::validate()?;

    let host = host_kernel(&artifacts)?;
    say(format!(
        "host checks: bad input, and what this host's kernel allows ({host})"
    ));
    for name in ["cli", "refusal"] {
        cmd::run(&mut host_test(&artifacts, name)?)?;
    }
    if host == "attachable" {
        say("this host's kernel lets mptcpify attach: the kernel suites run here too");
        for (name, _) in artifacts
            .tests
            .iter()
            .filter(|(n, _)| !is_host_only(n) && !DEBIAN_IMAGE_SUITES.contains(&n.as_str()))
        {
            cmd::run(&mut host_test(&artifacts, name)?)?;
        }
    }

    for name in kernels {
        let known = lab::kernel::known(name)?;
        let command = if known.has_hook {
            say(format!(
                "lab, Debian {name}: the real program on the real hook"
            ));
            let suite: Vec<String> = artifacts
                .tests
                .iter()
                .filter(|(test, _)| {
                    !DEBIAN_IMAGE_SUITES.contains(&test.as_str()) && test != BUNDLE_SUITE
                })
                .map(|(test, _)| format!("{GUEST_BIN}/test-{test} --test-threads=1"))
                .collect();
            format!("set -e\n{}\n", suite.join("\n"))
        } else {
            say(format!(
                "lab, Debian {name}: the clear 'kernel too old' error"
            ));
            format!("{GUEST_BIN}/test-refusal --test-threads=1\n")
        };
        let status = lab::run_in(name, &artifacts, &command)?;
        if status != 0 {
            bail!("the lab suite on {name} failed (exit status {status})");
        }
        if known.has_hook {
            say(format!(
                "lab, Debian {name} with systemd as PID 1: units, nginx, delegation, AppArmor"
            ));
            let suites: Vec<String> = DEBIAN_IMAGE_SUITES
                .iter()
                .map(|test| format!("{GUEST_BIN}/test-{test} --test-threads=1"))
                .collect();
            let command = format!("set -e\n{}\n", suites.join("\n"));
            let (status, _) = lab::capture_in(name, &artifacts, &command, Image::Systemd)?;
            if status != 0 {
                bail!("the Debian image suites on {name} failed (exit status {status})");
            }
        }
    }
    say("all tests passed");
    Ok(())
}

/// Tests that only check the command line, the host's refusal and the
/// release bundle.
fn is_host_only(name: &str) -> bool {
    name == "cli" || name == "refusal" || name == BUNDLE_SUITE
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
