//! Builds what the lab and the tests run: the BPF object (nightly +
//! bpf-linker), the release binary that embeds it, and the test binaries.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

use crate::cmd::{describe, run, say};
use crate::{aya_patch, root, toolchain};

pub struct Artifacts {
    pub mptcpify: PathBuf,
    pub bpf_object: PathBuf,
    /// Integration test binaries, by test name.
    pub tests: Vec<(String, PathBuf)>,
    /// Helper programs of the tests crate (the demo, the benchmarks), by name.
    pub tools: Vec<(String, PathBuf)>,
}

pub fn all() -> Result<Artifacts> {
    let toolchain = toolchain::setup()?;
    aya_patch::ensure()?;
    let bpf_object = bpf_object(&toolchain)?;
    let mptcpify = static_binary()?;
    let tests = executables(&["test", "--no-run"], "test")?;
    let mut tools = executables(&["build", "--bins"], "bin")?;
    tools.extend(socket_probes()?);
    Ok(Artifacts {
        mptcpify,
        bpf_object,
        tests,
        tools,
    })
}

/// The target the release binary is built for, statically linked.
pub const TARGET: &str = "x86_64-unknown-linux-gnu";

/// The binary that is tested and shipped: statically linked (glibc's static
/// libc, `-C target-feature=+crt-static`), so that it runs on any x86_64
/// Linux and in a `FROM scratch` image. With `--target`, RUSTFLAGS reach
/// only the target's crates, not build scripts or proc macros.
fn static_binary() -> Result<PathBuf> {
    run(cargo()
        .args(["build", "--release", "-p", "mptcpify", "--target", TARGET])
        .env("RUSTFLAGS", "-C target-feature=+crt-static"))?;
    let binary = root().join(format!("target/{TARGET}/release/mptcpify"));
    let file = crate::cmd::output(Command::new("file").arg(&binary))?;
    anyhow::ensure!(
        file.contains("statically linked") || file.contains("static-pie linked"),
        "{} is not statically linked: {file}",
        binary.display()
    );
    Ok(binary)
}

/// A cargo for the host workspace, free of the environment `cargo xtask` ran in.
pub fn cargo() -> Command {
    let mut command = Command::new("cargo");
    command
        .current_dir(root())
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTC");
    command
}

fn bpf_object(toolchain: &toolchain::Toolchain) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![toolchain.bpf_linker_dir.clone()];
    paths.extend(std::env::split_paths(&path));
    run(cargo()
        .arg(format!("+{}", toolchain::NIGHTLY))
        .args([
            "build",
            "--release",
            "-Z",
            "build-std=core",
            "--target",
            "bpfel-unknown-none",
        ])
        .arg("--manifest-path")
        .arg(root().join("mptcpify-ebpf/Cargo.toml"))
        .arg("--target-dir")
        .arg(root().join("target"))
        .env("PATH", std::env::join_paths(paths)?))?;
    let object = root().join("target/bpfel-unknown-none/release/mptcpify");
    say(format!(
        "BPF object: {} ({} bytes)",
        object.display(),
        std::fs::metadata(&object)?.len()
    ));
    Ok(object)
}

/// The C socket probe, dynamically and statically linked (what
/// `mptcpify run` must handle and LD_PRELOAD cannot).
fn socket_probes() -> Result<Vec<(String, PathBuf)>> {
    let source = root().join("tests/probe/socket-probe.c");
    let out = root().join("target/probe");
    std::fs::create_dir_all(&out)?;
    let mut probes = Vec::new();
    for (name, extra) in [
        ("socket-probe", None),
        ("socket-probe-static", Some("-static")),
    ] {
        let exe = out.join(name);
        let mut gcc = Command::new("gcc");
        gcc.args(["-O2", "-Wall", "-o"])
            .arg(&exe)
            .arg(&source)
            .args(extra);
        run(&mut gcc)?;
        probes.push((name.to_string(), exe));
    }
    Ok(probes)
}

/// Builds targets of the tests crate with `cargo <args>` and returns the
/// executables of kind `kind` (`test` or `bin`), by target name.
fn executables(args: &[&str], kind: &str) -> Result<Vec<(String, PathBuf)>> {
    let mut command = cargo();
    command
        .args(args)
        .args([
            "--profile",
            "checks",
            "-p",
            "mptcpify-tests",
            "--message-format=json",
        ])
        .stdout(Stdio::piped());
    say(format!("$ {}", describe(&command)));
    let out = command.output().context("building the tests crate")?;
    anyhow::ensure!(out.status.success(), "building the tests crate failed");
    let mut tests = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let wanted = message["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == kind));
        if let (true, Some(exe)) = (wanted, message["executable"].as_str()) {
            let name = message["target"]["name"]
                .as_str()
                .unwrap_or("test")
                .to_string();
            tests.push((name, PathBuf::from(exe)));
        }
    }
    tests.sort();
    Ok(tests)
}
