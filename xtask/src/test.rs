//! `cargo xtask test`: everything, cheapest first. Any failure fails the run;
//! nothing is skipped (a missing kernel, tool or privilege is a failure).

use anyhow::{bail, Result};

use crate::build::{self, cargo};
use crate::cmd::{self, say};
use crate::lab::{self, initramfs::GUEST_BIN};

pub fn run() -> Result<()> {
    let artifacts = build::all()?;

    say("1/4 host unit tests (the decision, the policy, selector resolution, BTF layout)");
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

    say("2/4 host checks: bad input, and this host's kernel refusing trampolines");
    for (name, exe) in &artifacts.tests {
        if name == "cli" || name == "refusal" {
            cmd::run(
                std::process::Command::new(exe)
                    .args(["--test-threads=1"])
                    .env("MPTCPIFY_BIN", &artifacts.mptcpify)
                    .env("MPTCPIFY_EXPECT_REFUSAL", "trampolines"),
            )?;
        }
    }

    say("3/4 lab, Debian 6.12: the real program on the real hook");
    let suite: Vec<String> = artifacts
        .tests
        .iter()
        .filter(|(name, _)| name != "refusal")
        .map(|(name, _)| format!("{GUEST_BIN}/test-{name} --test-threads=1"))
        .collect();
    let command = format!("set -e\n{}\n", suite.join("\n"));
    expect_success("6.12", lab::run_in("6.12", &artifacts, &command)?)?;

    say("4/4 lab, Debian 6.1: the clear 'kernel too old' error");
    let command =
        format!("MPTCPIFY_EXPECT_REFUSAL=too-old {GUEST_BIN}/test-refusal --test-threads=1\n");
    expect_success("6.1", lab::run_in("6.1", &artifacts, &command)?)?;

    say("all tests passed");
    Ok(())
}

fn expect_success(kernel: &str, status: i32) -> Result<()> {
    if status != 0 {
        bail!("the lab suite on {kernel} failed (exit status {status})");
    }
    Ok(())
}
