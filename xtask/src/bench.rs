//! `cargo xtask bench`: runs the benchmark program in the 6.12 lab, prints
//! its tables and writes them, with the machine and the command, to
//! BENCHMARKS.md.

use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::build;
use crate::cmd::{output, say};
use crate::lab::{self, initramfs::GUEST_BIN};
use crate::root;

pub fn run() -> Result<()> {
    let artifacts = build::all()?;
    let (status, console) = lab::capture_in(
        "6.12",
        &artifacts,
        &format!("{GUEST_BIN}/lab-bench\n"),
        lab::Image::Busybox,
    )?;
    if status != 0 {
        bail!("the benchmark run failed (exit status {status})");
    }
    let begin = console
        .iter()
        .position(|l| l == "BENCH-BEGIN")
        .context("no BENCH-BEGIN in the guest output")?;
    let end = console
        .iter()
        .position(|l| l == "BENCH-END")
        .context("no BENCH-END in the guest output")?;
    // The guest's console also carries mptcpify's own lines, echoed by the
    // test helpers with a "  | " prefix; the report is the rest.
    let mut report: String = console[begin + 1..end]
        .iter()
        .filter(|l| !l.starts_with("  | "))
        .map(|l| format!("{l}\n"))
        .collect();
    report.push_str(&format!(
        "| BPF object (`{}`) | {} bytes |\n",
        artifacts
            .bpf_object
            .strip_prefix(root())
            .unwrap_or(&artifacts.bpf_object)
            .display(),
        std::fs::metadata(&artifacts.bpf_object)?.len()
    ));
    let document = format!(
        "# Benchmarks\n\n\
         Produced by `cargo xtask bench` on {date}. Reproduce with that command on a machine of this kind.\n\n\
         **Machine:** {cpu}, {cores} cores, host kernel {host}. The hook runs only in the VM lab: QEMU \
         ({accel}) with 2 vCPUs and 1 GiB, booting Debian's `linux-image-6.12.88+deb12-cloud-amd64`. Emulation \
         inflates absolute times many times over and adds run-to-run noise; compare the ratios, measured side \
         by side in one run.\n\n{report}",
        date = output(Command::new("date").arg("-u").arg("+%Y-%m-%d %H:%M UTC"))?.trim(),
        cpu = cpu_model(),
        cores = output(&mut Command::new("nproc"))?.trim(),
        host = output(Command::new("uname").arg("-r"))?.trim(),
        accel = if std::fs::read_to_string(crate::cache_dir().join("kvm-works")).is_ok_and(|s| s.trim() == "yes") {
            "KVM"
        } else {
            "TCG software emulation: this host's KVM does not work"
        },
    );
    std::fs::write(root().join("BENCHMARKS.md"), &document)?;
    println!("\n{document}");
    say("wrote BENCHMARKS.md");
    Ok(())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
