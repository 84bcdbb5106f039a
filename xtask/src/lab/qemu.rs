//! Boots a lab kernel under QEMU, streams the serial console, and returns the
//! exit status that the guest's /init reports.
//!
//! KVM is used when it works; on our machines /dev/kvm exists but guests hang
//! or QEMU aborts, so it is probed once (a short boot) and the answer cached.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cache_dir;
use crate::cmd::say;
use crate::lab::initramfs::{Image, EXIT_MARKER, UP_MARKER};
use crate::lab::kernel::Kernel;

/// Generous: the whole privileged suite runs in one boot under TCG.
const TIMEOUT: Duration = Duration::from_secs(45 * 60);
const KVM_PROBE_TIMEOUT: Duration = Duration::from_secs(40);

/// Boots that die before /init runs (the kernel panics early now and then
/// under TCG emulation, e.g. in sched_clock_cpu on 6.12) are retried this
/// often; they say nothing about our code. A guest that reached /init is
/// never retried.
const EARLY_PANIC_RETRIES: usize = 2;
/// A guest whose kernel panicked after /init ran is booted again once:
/// under TCG a kernel now and then dies in code no test touches (CI lost a
/// 6.18 run after 195 s, its console cut off). The panic is said, and a
/// second one fails the run with the kernel's words. A guest that merely
/// stops, or a test that fails, is never retried.
const KERNEL_PANIC_RETRIES: usize = 1;
/// What the kernel prints when it dies (kernel/panic.c, `panic`).
const PANIC: &str = "Kernel panic";

/// The kernel's last words on `console`: from its first report of trouble
/// (an oops, a BUG, a warning, a panic) on, at most 16 lines; empty when
/// it reported none. Repeated in the failure itself, because a CI log may
/// keep only the end of the output, far below the console.
fn last_words(console: &[String]) -> Vec<String> {
    const TROUBLE: [&str; 5] = [PANIC, "Oops", "BUG:", "WARNING:", "general protection"];
    console
        .iter()
        .position(|l| TROUBLE.iter().any(|t| l.contains(t)))
        .map(|first| console[first..].iter().take(16).cloned().collect())
        .unwrap_or_default()
}
/// A guest that has not reached /init (its "up" line) by then is taken for
/// one that hung while booting, and retried like an early panic: boots take
/// 3 to 17 s under TCG, and one 7.3 boot in the lab printed nothing after
/// the firmware for 6 minutes (it would have waited out [`TIMEOUT`]).
const BOOT_DEADLINE: Duration = Duration::from_secs(180);

thread_local! {
    /// What this thread's guest console lines are prefixed with, when
    /// several guests run at once (`cargo xtask test`): their lines
    /// interleave on the terminal.
    static CONSOLE_LABEL: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Prefixes the console lines of the guests this thread boots with
/// `[label]`.
pub fn label_console(label: &str) {
    CONSOLE_LABEL.with(|l| *l.borrow_mut() = Some(label.to_string()));
}

/// What a boot under TCG emulation must get right (no difference under KVM).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timing {
    /// Code patching coherent across vCPUs: the tests.
    Coherent,
    /// Each vCPU's own time: the benchmarks.
    PerCpu,
}

/// The guest command's exit status and the console's lines.
pub fn boot(
    kernel: &Kernel,
    initramfs: &Path,
    image: Image,
    timing: Timing,
) -> Result<(i32, Vec<String>)> {
    let accel = accelerator(kernel, initramfs, image)?;
    for attempt in 0..=EARLY_PANIC_RETRIES {
        let mut console = Vec::new();
        let status = run(
            kernel,
            initramfs,
            image,
            accel,
            timing,
            TIMEOUT,
            Some(&mut console),
        )?;
        if let Some(status) = status {
            return Ok((status, console));
        }
        if console.iter().any(|l| l.contains(UP_MARKER)) {
            let why = last_words(&console);
            let panicked = why.iter().any(|l| l.contains(PANIC));
            if panicked && attempt < KERNEL_PANIC_RETRIES {
                say(format!(
                    "lab: kernel {} panicked after /init ran; booting again once (the \
                     suites run again from the start). It said:\n  {}",
                    kernel.release,
                    why.join("\n  ")
                ));
                continue;
            }
            bail!(
                "the guest stopped without reporting an exit status{}",
                if why.is_empty() {
                    " (see its console above)".to_string()
                } else {
                    format!("; its kernel said:\n  {}", why.join("\n  "))
                }
            );
        }
        if attempt < EARLY_PANIC_RETRIES {
            say(format!(
                "lab: kernel {} died while booting, before /init ran (emulation); booting again",
                kernel.release
            ));
        }
    }
    bail!(
        "kernel {} died while booting {} times in a row, before /init ran (see its console above)",
        kernel.release,
        EARLY_PANIC_RETRIES + 1
    )
}

/// `MPTCPIFY_LAB_ACCEL=kvm|tcg` overrides the probe.
fn accelerator(kernel: &Kernel, initramfs: &Path, image: Image) -> Result<&'static str> {
    match std::env::var("MPTCPIFY_LAB_ACCEL").as_deref() {
        Ok("kvm") => return Ok("kvm"),
        Ok("tcg") => return Ok("tcg"),
        _ => {}
    }
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return Ok("tcg");
    }
    let answer = cache_dir().join("kvm-works");
    if let Ok(text) = std::fs::read_to_string(&answer) {
        return Ok(if text.trim() == "yes" { "kvm" } else { "tcg" });
    }
    say("probing whether KVM works here (once)");
    let works = matches!(
        run(
            kernel,
            initramfs,
            image,
            "kvm",
            Timing::Coherent,
            KVM_PROBE_TIMEOUT,
            None
        ),
        Ok(Some(_))
    );
    std::fs::create_dir_all(cache_dir())?;
    std::fs::write(&answer, if works { "yes" } else { "no" })?;
    say(if works {
        "KVM works: using it"
    } else {
        "KVM does not work here: using TCG emulation"
    });
    Ok(if works { "kvm" } else { "tcg" })
}

/// Runs one boot, echoing and keeping the console in `console` when given;
/// `None` when the guest ended without the exit marker.
fn run(
    kernel: &Kernel,
    initramfs: &Path,
    image: Image,
    accel: &str,
    timing: Timing,
    timeout: Duration,
    mut console: Option<&mut Vec<String>>,
) -> Result<Option<i32>> {
    let cpu = if accel == "kvm" { "host" } else { "max" };
    let accel = match (accel, timing) {
        // Multi-threaded TCG does not make the kernel's live code patching
        // (text_poke_bp: int3, then the new bytes, synced by IPIs) coherent
        // across vCPUs: a vCPU can run a stale int3 after the patch
        // completed and oops ("Oops: int3" in update_socket_protocol and
        // mptcp_close while trampolines were attached, on 6.18; in tg_cpus,
        // a jump label, on 7.3). One host thread running both vCPUs in
        // turn is coherent.
        ("tcg", Timing::Coherent) => "tcg,thread=single",
        // The benchmarks: with one host thread, a vCPU's time stamps count
        // the slices the other vCPU ran, which swamps the program's own
        // nanoseconds; each vCPU on its own thread keeps them.
        _ => accel,
    };
    let memory = image.memory_mib().to_string();
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", accel, "-cpu", cpu, "-m", &memory, "-smp", "2"])
        .args([
            "-nographic",
            "-no-reboot",
            "-serial",
            "mon:stdio",
            "-display",
            "none",
        ])
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(initramfs)
        .arg("-append")
        .arg(format!(
            "console=ttyS0 panic=-1 quiet loglevel=3 rdinit={}",
            image.init()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting qemu-system-x86_64 (cargo xtask setup installs it)")?;
    let (lines, received) = mpsc::channel();
    for stream in [
        stream_lines(child.stdout.take()),
        stream_lines(child.stderr.take()),
    ] {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in stream {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
    }
    drop(lines);
    let started = std::time::Instant::now();
    let deadline = started + timeout;
    let mut status = None;
    let mut up = false;
    loop {
        let until = if up || console.is_none() {
            deadline
        } else {
            deadline.min(started + BOOT_DEADLINE)
        };
        let left = until.saturating_duration_since(std::time::Instant::now());
        match received.recv_timeout(left) {
            Ok(line) => {
                let line = line.trim_end_matches('\r');
                up |= line.contains(UP_MARKER);
                if let Some(code) = line.strip_prefix(EXIT_MARKER) {
                    status = code.trim().parse().ok();
                }
                if let Some(console) = console.as_mut() {
                    CONSOLE_LABEL.with(|label| match &*label.borrow() {
                        Some(label) => println!("[{label}] {line}"),
                        None => println!("{line}"),
                    });
                    console.push(line.to_string());
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                kill(&mut child);
                if !up && console.is_some() && std::time::Instant::now() < deadline {
                    say(format!(
                        "lab: no sign of /init within {} s: the boot hung",
                        BOOT_DEADLINE.as_secs()
                    ));
                    return Ok(None);
                }
                if console.is_some() {
                    bail!("the guest did not finish within {} s", timeout.as_secs());
                }
                return Ok(None);
            }
        }
    }
    let _ = child.wait();
    Ok(status)
}

fn stream_lines(
    stream: Option<impl std::io::Read + Send + 'static>,
) -> Box<dyn Iterator<Item = String> + Send> {
    match stream {
        Some(s) => Box::new(BufReader::new(s).lines().map_while(Result::ok)),
        None => Box::new(std::iter::empty()),
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}
