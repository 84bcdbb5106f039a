//! `cargo xtask bench`: runs the benchmark program in the lab (6.12 unless
//! `--kernel` says otherwise), prints
//! its tables and writes them, with the machine and the command, to
//! BENCHMARKS.md.

use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::build;
use crate::cmd::{output, say};
use crate::lab::{self, initramfs::GUEST_BIN};
use crate::root;

/// Refuses, before anything is built, a lab kernel without the hook.
fn check_kernel(kernel: &str) -> Result<()> {
    let known = lab::kernel::known(kernel)?;
    if !known.has_hook {
        bail!(
            "lab kernel {kernel} has no update_socket_protocol, so there is nothing to measure \
             there; pick one of: {}",
            lab::kernel::KNOWN
                .iter()
                .filter(|k| k.has_hook)
                .map(|k| k.name)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// Runs `lab-bench ARGS` in the lab on `kernel`; the guest's console.
/// `timing`: per-vCPU time stamps (multi-threaded TCG) for the socket()
/// costs; coherent code patching (one host thread) for the rest, which
/// attaches and detaches while other work runs: with a thread per vCPU, a
/// vCPU could run a stale int3 of the kernel's live patching of the hook
/// and oops (it did, twice, 600 s into the run).
fn bench_in_lab(
    kernel: &str,
    artifacts: &build::Artifacts,
    args: &str,
    timing: lab::qemu::Timing,
) -> Result<Vec<String>> {
    let (status, console) = lab::capture_timed(
        kernel,
        artifacts,
        &format!("{GUEST_BIN}/lab-bench {args}\n"),
        lab::Image::Busybox,
        timing,
    )?;
    if status != 0 {
        bail!("the benchmark run failed (exit status {status})");
    }
    Ok(console)
}

pub fn run(kernel: &str) -> Result<()> {
    check_kernel(kernel)?;
    let artifacts = build::all()?;
    let socket = bench_in_lab(kernel, &artifacts, "socket", lab::qemu::Timing::PerCpu)?;
    let rest = bench_in_lab(kernel, &artifacts, "rest", lab::qemu::Timing::Coherent)?;
    let mut report = report_of(&socket)?;
    report.push_str(&report_of(&rest)?);
    report.push_str(&format!(
        "| BPF object (`{}`) | {} bytes |\n",
        artifacts
            .bpf_object
            .strip_prefix(root())
            .unwrap_or(&artifacts.bpf_object)
            .display(),
        std::fs::metadata(&artifacts.bpf_object)?.len()
    ));
    report.push_str(&host_startup(&artifacts.mptcpify)?);
    let document = format!(
        "# Benchmarks\n\n\
         Produced by `cargo xtask bench` on {date}. Reproduce with that command on a machine of this kind.\n\n\
         **Machine:** {cpu}, {cores} cores, host kernel {host}. The hook runs only in the VM lab: QEMU \
         ({accel}) with 2 vCPUs and 1 GiB, booting Debian's kernel {release}. Emulation \
         inflates absolute times many times over and adds run-to-run noise; compare the ratios, measured side \
         by side in one run.\n\n{report}",
        release = lab::kernel::get(kernel)?.release,
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

/// The report lines of a guest's console: between BENCH-BEGIN and
/// BENCH-END, without mptcpify's own lines (the test helpers echo them
/// with a "  | " prefix).
fn report_of(console: &[String]) -> Result<String> {
    let begin = console
        .iter()
        .position(|l| l == "BENCH-BEGIN")
        .context("no BENCH-BEGIN in the guest output")?;
    let end = console
        .iter()
        .position(|l| l == "BENCH-END")
        .context("no BENCH-END in the guest output")?;
    Ok(console[begin + 1..end]
        .iter()
        .filter(|l| !l.starts_with("  | "))
        .map(|l| format!("{l}\n"))
        .collect())
}

/// `cargo xtask bench --socket-only ROUNDS [--only WORDS]`: the socket()
/// table alone (or its modes named by WORDS), printed.
pub fn socket_only(kernel: &str, rounds: usize, only: Option<&str>) -> Result<()> {
    check_kernel(kernel)?;
    let only = only.map(|words| format!(" '{}'", words.replace('\'', "")));
    let args = format!("socket {rounds}{}", only.unwrap_or_default());
    let console = bench_in_lab(kernel, &build::all()?, &args, lab::qemu::Timing::PerCpu)?;
    for line in console.iter().filter(|l| l.starts_with('|')) {
        println!("{line}");
    }
    Ok(())
}

/// `cargo xtask bench --servers-only`: the servers part alone, printed.
pub fn servers_only(kernel: &str) -> Result<()> {
    check_kernel(kernel)?;
    let console = bench_in_lab(
        kernel,
        &build::all()?,
        "servers",
        lab::qemu::Timing::Coherent,
    )?;
    print!("{}", report_of(&console)?);
    Ok(())
}

/// Start-up on this host, outside the lab: from spawning `mptcpify -q
/// --all` to its "attached" line, or, on a host that refuses trampoline
/// programs (this project's build hosts), to its exit at the first
/// BPF_PROG_LOAD of one. Everything before that load (BTF, kallsyms, maps,
/// policy) is what an operator waits for on any host. Peak RSS from wait4.
fn host_startup(binary: &std::path::Path) -> Result<String> {
    use std::io::BufRead;
    const RUNS: usize = 20;
    let (mut times, mut peaks, mut ended) = (Vec::new(), Vec::new(), String::new());
    for _ in 0..RUNS {
        let start = std::time::Instant::now();
        let mut child = Command::new(binary)
            .args(["-q", "--all"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("running {}", binary.display()))?;
        let mut at = None;
        for line in std::io::BufReader::new(child.stderr.take().expect("piped")).lines() {
            let line = line?;
            if line.starts_with("mptcpify: attached") {
                at = Some(start.elapsed());
                ended = "attached".into();
                // SAFETY: kill(2) on our own child.
                unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            } else if let Some(error) = line.strip_prefix("mptcpify: error: ") {
                ended = error.chars().take(90).collect();
            }
        }
        let elapsed = at.unwrap_or_else(|| start.elapsed());
        let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
        // SAFETY: wait4 on our own child, with valid out-pointers; std's
        // Child is not waited on after this.
        unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
        times.push(elapsed.as_secs_f64() * 1000.0);
        peaks.push(usage.ru_maxrss as f64 / 1024.0);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (min, max) = (
        times.iter().copied().fold(f64::MAX, f64::min),
        times.iter().copied().fold(0.0, f64::max),
    );
    Ok(format!(
        "\n## Start-up on this host\n\nFrom spawning `mptcpify -q --all` on the host (outside the \
         lab) to its \"attached\" line, or to its exit where the host refuses the first \
         trampoline load; {RUNS} runs. It ended: {ended}. Issue 10's goal: under 50 ms, peak RSS \
         under 20 MB.\n\n| median ms | min–max ms | peak RSS (median) |\n|---|---|---|\n\
         | {:.0} | {min:.0}–{max:.0} | {:.1} MB |\n",
        median(&mut times),
        median(&mut peaks),
    ))
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
