//! `cargo xtask bench` runs this inside the lab and turns its report (the
//! lines between the markers) into BENCHMARKS.md. Every comparison is
//! measured side by side in one run, in interleaved rounds; the tables give
//! the median and the spread (min–max). Under TCG absolute times are
//! inflated; the ratios are what compare.
//!
//! `lab-bench measure tcp|udp N` is the inner loop, run as a child process so
//! that LD_PRELOAD (mptcpize) can be applied to it like to any program.
//! `lab-bench servers` measures only what an accepted connection costs.
//! `lab-bench socket [ROUNDS [WORDS]]` measures only the socket() costs,
//! of every mode or of those whose name contains one of the comma-separated
//! WORDS (for `cargo xtask bench --socket-only ROUNDS [--only WORDS]`,
//! while working on the program).

use std::process::Command;
use std::time::{Duration, Instant};

use mptcpify_tests::process::{Running, ATTACH_TIMEOUT};
use mptcpify_tests::sockets::*;
use mptcpify_tests::testbed::{TwoPaths, PATHS};
use mptcpify_tests::transfer::{make_file, Receiver, Transfer};

const ROUNDS: usize = 5;
/// TCP-then-UDP sample pairs per attach.
const PAIRS: usize = 3;
/// The cgroup (under the cgroup2 mount) the benchmark moves itself into, so
/// that a `--cgroup` mode selects its measuring children.
const CGROUP: &str = "lab-bench";
const CALLS: u32 = 20_000;
const ATTACH_SAMPLES: usize = 20;
const MPTCPIZE_LIB: &str = "/usr/lib/x86_64-linux-gnu/mptcpize/libmptcpwrap.so.0.0.1";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("measure") {
        let calls: u32 = args[3].parse().unwrap();
        println!("{}", measure(Call::named(&args[2]), calls));
        return;
    }
    std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "1")
        .expect("enabling kernel.bpf_stats_enabled");
    let cgroup = mptcpify_tests::probe::TempCgroup::new(CGROUP);
    std::fs::write(
        cgroup.0.join("cgroup.procs"),
        std::process::id().to_string(),
    )
    .expect("moving the benchmark into its cgroup");
    println!("BENCH-BEGIN");
    // xtask runs "socket" and "rest" in two guests (see xtask/src/bench.rs).
    match args.get(1).map(String::as_str) {
        Some("socket") => {
            let rounds = args.get(2).map_or(ROUNDS, |r| r.parse().expect("ROUNDS"));
            socket_cost(rounds, &cgroup.0, args.get(3).map(String::as_str));
        }
        Some("rest") => {
            attach_latency();
            throughput_and_failover();
            servers();
            memory();
        }
        Some("servers") => servers(),
        other => panic!("lab-bench socket [ROUNDS [WORDS]] | rest | servers, not {other:?}"),
    }
    println!("BENCH-END");
    // Out of the cgroup, so that it can be removed.
    let root = mptcpify_tests::probe::cgroup2_mount().join("cgroup.procs");
    let _ = std::fs::write(root, std::process::id().to_string());
}

/// The `socket()` a sample makes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Call {
    /// `SOCK_STREAM`, protocol 0: what mptcpify upgrades.
    Tcp,
    /// `SOCK_DGRAM`: the hook runs and exits early.
    Udp,
    /// `SOCK_STREAM` with `IPPROTO_MPTCP`: an application that asks for
    /// MPTCP itself, the cost an upgrade is measured against.
    Mptcp,
}

impl Call {
    fn name(self) -> &'static str {
        match self {
            Call::Tcp => "tcp",
            Call::Udp => "udp",
            Call::Mptcp => "mptcp",
        }
    }

    fn named(name: &str) -> Call {
        [Call::Tcp, Call::Udp, Call::Mptcp]
            .into_iter()
            .find(|c| c.name() == name)
            .expect("tcp, udp or mptcp")
    }
}

/// ns per socket()+close() pair, over `calls` pairs.
fn measure(call: Call, calls: u32) -> f64 {
    let (ty, protocol) = match call {
        Call::Tcp => (SOCK_STREAM, 0),
        Call::Udp => (SOCK_DGRAM, 0),
        Call::Mptcp => (SOCK_STREAM, libc::IPPROTO_MPTCP),
    };
    let start = Instant::now();
    for _ in 0..calls {
        // SAFETY: plain socket/close.
        unsafe {
            let fd = libc::socket(AF_INET, ty | SOCK_CLOEXEC, protocol);
            assert!(fd >= 0, "socket() failed");
            libc::close(fd);
        }
    }
    start.elapsed().as_nanos() as f64 / f64::from(calls)
}

fn measure_child(call: Call, preload: bool) -> f64 {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args(["measure", call.name(), &CALLS.to_string()]);
    if preload {
        command.env("LD_PRELOAD", MPTCPIZE_LIB);
    }
    let out = command.output().expect("measure child");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("ns per call")
}

struct Mode {
    name: &'static str,
    /// What mptcpify says once attached.
    ready: &'static str,
    args: Vec<String>,
    attach: bool,
    preload: bool,
    /// The stream call of its samples ([`Call::Mptcp`]: the application
    /// asks for MPTCP itself).
    stream: Call,
}

fn sixty_four_names(matching: bool) -> Vec<String> {
    let mut args = vec!["-q".to_string()];
    for i in 0..64 {
        args.push("--comm".into());
        args.push(if matching && i == 63 {
            "lab-bench".into()
        } else {
            format!("other-{i}")
        });
    }
    args
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn socket_cost(rounds: usize, cgroup: &std::path::Path, only: Option<&str>) {
    let cgroup = cgroup.display().to_string();
    let other = mptcpify_tests::probe::TempCgroup::new("lab-bench-other");
    let modes = [
        Mode {
            name: "no hook",
            ready: "mptcpify: attached",
            args: vec![],
            attach: false,
            preload: false,
            stream: Call::Tcp,
        },
        Mode {
            name: "mptcpify --all, a line per socket (the default output)",
            ready: "mptcpify: attached",
            args: args(&["--all"]),
            attach: true,
            preload: false,
            stream: Call::Tcp,
        },
        Mode {
            name: "mptcpify --all --json, a JSON line per socket (events carry the kernel's time)",
            ready: "\"event\":\"attached\"",
            args: args(&["--all", "--json"]),
            attach: true,
            preload: false,
            stream: Call::Tcp,
        },
        Mode {
            name: "mptcpify -q --all",
            ready: "mptcpify: attached",
            args: args(&["-q", "--all"]),
            attach: true,
            preload: false,
            stream: Call::Tcp,
        },
        Mode {
            name: "mptcpify -q --comm ×1, matching",
            ready: "mptcpify: attached",
            args: args(&["-q", "--comm", "lab-bench"]),
            attach: true,
            preload: false,
            stream: Call::Tcp,
        },
        Mode {
            name: "mptcpify -q --comm ×1, not matching",
            ready: "mptcpify: attached",
            args: args(&["-q", "--comm", "no-such-comm"]),
            attach: true,
            preload: false,
            stream: Call::Tcp,
        },
        Mode {
            name: "mptcpify --comm ×64, none matching",
            ready: "mptcpify: attached",
            args: sixty_four_names(false),
            attach: true,
            preload: false,
            stream: Call::Tcp,
        },
        Mode {
            name: "mptcpify --comm ×64, matching",
            ready: "mptcpify: attached",
            args: sixty_four_names(true),
            attach: true,
            preload: false,
            stream: Call::Tcp,
        },
        Mode {
            name: "mptcpify -q --cgroup (its cgroup), matching",
            ready: "mptcpify: attached",
            args: args(&["-q", "--cgroup", &cgroup]),
            attach: true,
            preload: false,
            stream: Call::Tcp,
        },
        Mode {
            name: "mptcpify -q --cgroup (another cgroup), not matching",
            ready: "mptcpify: attached",
            args: args(&["-q", "--cgroup", &other.0.display().to_string()]),
            attach: true,
            preload: false,
            stream: Call::Tcp,
        },
        Mode {
            name: "mptcpify -q --netns self, matching",
            ready: "mptcpify: attached",
            args: args(&["-q", "--netns", "self"]),
            attach: true,
            preload: false,
            stream: Call::Tcp,
        },
        Mode {
            name: "mptcpify -q --all --explain (another program)",
            ready: "mptcpify: attached",
            args: args(&["-q", "--all", "--explain", "no-such-comm"]),
            attach: true,
            preload: false,
            stream: Call::Tcp,
        },
        Mode {
            name: "mptcpify audit (every process: a line per would-be upgrade)",
            ready: "mptcpify audit: watching",
            args: args(&["audit"]),
            attach: true,
            preload: false,
            stream: Call::Tcp,
        },
        Mode {
            name: "no hook, the application asks for MPTCP (IPPROTO_MPTCP)",
            ready: "mptcpify: attached",
            args: vec![],
            attach: false,
            preload: false,
            stream: Call::Mptcp,
        },
        Mode {
            name: "mptcpize (LD_PRELOAD)",
            ready: "mptcpify: attached",
            args: vec![],
            attach: false,
            preload: true,
            stream: Call::Tcp,
        },
    ];
    // "no hook" first, always: the baseline of the "× no hook" columns;
    // and the explicit MPTCP call, always: the baseline of the shares.
    let modes: Vec<Mode> = modes
        .into_iter()
        .enumerate()
        .filter(|(i, mode)| {
            *i == 0
                || mode.stream == Call::Mptcp
                || only.is_none_or(|words| words.split(',').any(|w| mode.name.contains(w)))
        })
        .map(|(_, mode)| mode)
        .collect();
    // Per mode: TCP and UDP ns/call, the upgrader's ns/run on each, the
    // ratio of the two within each pair, and all programs' ns per TCP call.
    // One attach per mode and round; within it TCP and UDP samples
    // alternate, each read from the kernel's accounting before and after
    // it, so that a TCP sample and its early-exit floor are taken seconds
    // apart under the same host load (attaching separately for each, as
    // this bench once did, let the floor alone move 1.5× between modes).
    let mut samples: Vec<Samples> = modes.iter().map(|_| Samples::default()).collect();
    for _round in 0..rounds {
        for (mode, out) in modes.iter().zip(samples.iter_mut()) {
            let running = mode.attach.then(|| {
                let mut running =
                    Running::start_quietly(mptcpify_tests::process::command(&args_of(mode)));
                running.wait_for(mode.ready, ATTACH_TIMEOUT);
                running
            });
            for _pair in 0..PAIRS {
                let before = ProgramStats::now();
                out.tcp.push(measure_child(mode.stream, mode.preload));
                let between = ProgramStats::now();
                out.udp.push(measure_child(Call::Udp, mode.preload));
                let after = ProgramStats::now();
                if mode.attach {
                    let tcp = between.since(&before);
                    let udp = after.since(&between);
                    out.prog_tcp.push(tcp.upgrader_ns_per_run());
                    out.prog_udp.push(udp.upgrader_ns_per_run());
                    out.ratio
                        .push(tcp.upgrader_ns_per_run() / udp.upgrader_ns_per_run());
                    out.all_tcp.push(tcp.all_ns_per_upgrader_run());
                }
            }
            if let Some(running) = running {
                running.signal(libc::SIGINT);
                let (status, output) = running.wait();
                assert!(
                    status.success(),
                    "{} ended with {status}: {output:?}",
                    mode.name
                );
            }
        }
    }
    let base_tcp = median(&samples[0].tcp);
    let base_udp = median(&samples[0].udp);
    println!("## socket() + close() cost\n");
    println!("{CALLS} calls per sample; {rounds} interleaved rounds over the modes, each one attach with {PAIRS} TCP-then-UDP pairs of samples; `socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, 0)` (TCP) and `SOCK_DGRAM` (UDP: the hook runs but never upgrades, isolating its own cost from MPTCP's socket setup). Program ns/run is the kernel's own accounting of the hook program (`kernel.bpf_stats_enabled=1`, run_time_ns / run_cnt over one sample), median over the samples. TCP ns/call includes MPTCP's own, costlier socket setup wherever the socket is upgraded (mptcpize too); the UDP column and the program's ns/run isolate the hook. Run-to-run noise under TCG is about ±20% on absolute times (more while the host is busy); the paired ratios move less.\n");
    println!("\"TCP × early exit\" is the goal of issue 10: the program's cost on a TCP call over its own early exit (a UDP call) in the same mode, which should stay at most 3×: the median of the ratios of each TCP sample to the UDP sample taken right after it in the same attach (min–max over the pairs). The last column adds every other program of the instance (the outcome programs that tag an upgraded socket at its creation and report it at its close, the option and cgroup programs), per TCP call: what one TCP socket costs in BPF in all.\n");
    println!("| mode | TCP ns/call (median, min–max) | × no hook | UDP ns/call (median, min–max) | × no hook | program ns/run, TCP | program ns/run, UDP (early exit) | TCP × early exit | all programs ns per TCP call |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (mode, sample) in modes.iter().zip(&samples) {
        let prog = |v: &Vec<f64>| {
            if v.is_empty() {
                "–".to_string()
            } else {
                format!("{:.0}", median(v))
            }
        };
        let over_floor = if sample.ratio.is_empty() {
            "–".to_string()
        } else {
            format!(
                "{:.1} ({:.1}–{:.1})",
                median(&sample.ratio),
                min(&sample.ratio),
                max(&sample.ratio)
            )
        };
        println!(
            "| {} | {} | {:.2} | {} | {:.2} | {} | {} | {over_floor} | {} |",
            mode.name,
            spread(&sample.tcp),
            median(&sample.tcp) / base_tcp,
            spread(&sample.udp),
            median(&sample.udp) / base_udp,
            prog(&sample.prog_tcp),
            prog(&sample.prog_udp),
            prog(&sample.all_tcp)
        );
    }
    println!();
    shares(&modes, &samples);
}

/// What a user pays: every mptcpify program's time per upgraded (or kept)
/// TCP socket, as a share of a whole `socket()+close()` without any hook,
/// plain TCP and explicit MPTCP (issue 24's goal: at most 5% of the MPTCP
/// one).
fn shares(modes: &[Mode], samples: &[Samples]) {
    let tcp = median(&samples[0].tcp);
    let mptcp = modes
        .iter()
        .zip(samples)
        .find(|(mode, _)| mode.stream == Call::Mptcp)
        .map(|(_, sample)| median(&sample.tcp))
        .expect("the explicit MPTCP mode always runs");
    println!("### What one socket costs in BPF, as a share of socket()+close()\n");
    println!("Every mptcpify program's time per TCP `socket()` (the last column above: the upgrader and the programs that observe the socket until its close), over the median `socket()+close()` without any hook: plain TCP ({tcp:.0} ns) and an application's own `IPPROTO_MPTCP` socket ({mptcp:.0} ns), which is what an upgraded socket is. Goal (issue 24): at most 5% of the MPTCP one.\n");
    println!("| mode | all programs ns per TCP call | share of TCP socket()+close() | share of MPTCP socket()+close() |");
    println!("|---|---|---|---|");
    for (mode, sample) in modes.iter().zip(samples) {
        if sample.all_tcp.is_empty() {
            continue;
        }
        let all = median(&sample.all_tcp);
        println!(
            "| {} | {all:.0} | {:.1}% | {:.1}% |",
            mode.name,
            100.0 * all / tcp,
            100.0 * all / mptcp
        );
    }
    println!();
}

fn args_of(mode: &Mode) -> Vec<&str> {
    mode.args.iter().map(String::as_str).collect()
}

/// One mode's samples; the `prog_*`, `ratio` and `all_tcp` ones only
/// where mptcpify is attached.
#[derive(Default)]
struct Samples {
    /// ns per socket()+close(), TCP and UDP.
    tcp: Vec<f64>,
    udp: Vec<f64>,
    /// The upgrader's ns per run over a TCP sample, and over the UDP
    /// sample after it.
    prog_tcp: Vec<f64>,
    prog_udp: Vec<f64>,
    /// prog_tcp / prog_udp, pair by pair.
    ratio: Vec<f64>,
    /// Every mptcpify program's ns over a TCP sample, per run of the
    /// upgrader.
    all_tcp: Vec<f64>,
}

/// The kernel's accounting (`kernel.bpf_stats_enabled`) of the loaded
/// mptcpify programs at one moment: the upgrader's (named `mptcpify`) runs
/// and ns, and the ns of every program whose name starts with `mptcpify`
/// (the outcome, option, audit and cgroup programs; the kernel keeps 15
/// bytes of a name).
struct ProgramStats {
    upgrader_runs: u64,
    upgrader_ns: f64,
    all_ns: f64,
}

impl ProgramStats {
    fn now() -> ProgramStats {
        let mut stats = ProgramStats {
            upgrader_runs: 0,
            upgrader_ns: 0.0,
            all_ns: 0.0,
        };
        for info in aya::programs::loaded_programs() {
            let info = info.expect("reading a loaded program's info");
            let name = info.name_as_str().unwrap_or_default();
            if !name.starts_with("mptcpify") {
                continue;
            }
            let ns = info.run_time().as_nanos() as f64;
            stats.all_ns += ns;
            if name == "mptcpify" {
                stats.upgrader_runs += info.run_count();
                stats.upgrader_ns += ns;
            }
        }
        stats
    }

    /// What was counted between `earlier` and this.
    fn since(&self, earlier: &ProgramStats) -> ProgramStats {
        ProgramStats {
            upgrader_runs: self.upgrader_runs - earlier.upgrader_runs,
            upgrader_ns: self.upgrader_ns - earlier.upgrader_ns,
            all_ns: self.all_ns - earlier.all_ns,
        }
    }

    fn upgrader_ns_per_run(&self) -> f64 {
        assert!(self.upgrader_runs > 0, "the upgrader never ran in a sample");
        self.upgrader_ns / self.upgrader_runs as f64
    }

    fn all_ns_per_upgrader_run(&self) -> f64 {
        assert!(self.upgrader_runs > 0, "the upgrader never ran in a sample");
        self.all_ns / self.upgrader_runs as f64
    }
}

fn attach_latency() {
    let mut samples = Vec::new();
    for _ in 0..ATTACH_SAMPLES {
        let start = Instant::now();
        let running = Running::start(mptcpify_tests::process::command(&["-q", "--all"]));
        while new_tcp_protocol() != IPPROTO_MPTCP {
            assert!(start.elapsed() < Duration::from_secs(120), "never attached");
            std::thread::sleep(Duration::from_millis(2));
        }
        samples.push(start.elapsed().as_secs_f64() * 1000.0);
        drop(running);
    }
    println!("## Attach latency\n");
    println!("From spawning `mptcpify` to the first upgraded socket (the time an operator waits), {ATTACH_SAMPLES} runs. This part of the bench (attach latency, two paths, failover, footprint) runs in a second guest whose two vCPUs share one host thread, as the tests do: attaching while another vCPU runs the hook crashed the multi-threaded guest twice (a stale int3 of the kernel's live patching). Before 2026-12-07 it ran in the multi-threaded guest (7687 ms there on 6.12 at e2c3488).\n");
    println!(
        "| median ms | min–max ms |\n|---|---|\n| {:.0} | {:.0}–{:.0} |\n",
        median(&samples),
        min(&samples),
        max(&samples)
    );
}

fn throughput_and_failover() {
    println!("## Two paths vs one\n");
    println!("iperf3 for 8 s, both paths shaped to the same rate (tbf); TCP without mptcpify, then MPTCP under `mptcpify --comm iperf3`, {} rounds each rate. Physical limit 2.0×. The path manager configured two ways: by hand as in Red Hat's guide (`ip mptcp limits set subflow 2 add_addr_accepted 2` on both hosts, a `signal` endpoint for the server's second address), and by `mptcpify paths auto` on each host of a testbed with no configuration at all (no endpoint, the kernel's default limits).\n", 3);
    println!("| rate per path | path manager | TCP Mbit/s (median) | MPTCP Mbit/s (median) | ratio (median, min–max) |\n|---|---|---|---|---|");
    for rate in [5, 10] {
        for by_hand in [true, false] {
            let bed = if by_hand {
                TwoPaths::setup()
            } else {
                let bed = TwoPaths::bare();
                bed.paths_auto();
                bed
            };
            for path in 0..PATHS.len() {
                bed.shape(path, rate, 0);
            }
            let (mut tcp, mut mptcp, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..3 {
                let t = bed.iperf3(8, || {}).mbit_per_s;
                let running = Running::attach(&["-q", "--comm", "iperf3"]);
                let m = bed.iperf3(8, || {}).mbit_per_s;
                drop(running);
                tcp.push(t);
                mptcp.push(m);
                ratios.push(m / t);
            }
            println!(
                "| {rate} Mbit/s | {} | {:.2} | {:.2} | {:.2} ({:.2}–{:.2}) |",
                if by_hand {
                    "by hand"
                } else {
                    "`mptcpify paths auto`"
                },
                median(&tcp),
                median(&mptcp),
                median(&ratios),
                min(&ratios),
                max(&ratios)
            );
        }
    }
    println!();

    let bed = TwoPaths::setup();
    for path in 0..PATHS.len() {
        bed.shape(path, 20, 0);
    }
    let source = std::env::temp_dir().join("bench-transfer");
    make_file(&source, 32 << 20);
    let mut stalls = Vec::new();
    for round in 0..3u16 {
        let running = Running::attach(&["-q", "--comm", "socat"]);
        let mut transfer = Transfer::start(&bed, source.clone(), 6000 + round, Receiver::Socat);
        transfer.wait_for_bytes(8 << 20, Duration::from_secs(240));
        bed.wait_for_second_subflow(Duration::from_secs(30));
        bed.set_link(0, false);
        let done = transfer.finish(Duration::from_secs(240));
        assert_eq!(done.checksums.0, done.checksums.1);
        stalls.push(done.longest_stall.as_secs_f64() * 1000.0);
        bed.set_link(0, true);
        drop(running);
    }
    println!("## Failover stall\n");
    println!("32 MiB socat transfer over two 20 Mbit/s paths; the path the connection started on goes down after 8 MiB. Longest time the receiver got no byte (sampled every 50 ms), 3 rounds; checksums matched every time.\n");
    println!(
        "| median ms | min–max ms |\n|---|---|\n| {:.0} | {:.0}–{:.0} |\n",
        median(&stalls),
        min(&stalls),
        max(&stalls)
    );
}

fn memory() {
    let running = Running::attach(&["-q", "--all"]);
    for _ in 0..1000 {
        new_tcp_protocol();
    }
    let rss = format!("{} kB", mptcpify_tests::process::rss_kb(running.pid()));
    let binary = std::fs::metadata(mptcpify_tests::process::resolved_bin()).map_or(0, |m| m.len());
    println!("## Footprint\n");
    println!("| what | size |\n|---|---|\n| resident memory of a running `mptcpify` (after 1000 upgrades) | {rss} |\n| `mptcpify` binary (release, stripped, BPF object embedded) | {} KiB |", binary / 1024);
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}
fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}
fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}
fn spread(v: &[f64]) -> String {
    format!("{:.0} ({:.0}–{:.0})", median(v), min(v), max(v))
}

/// Connections per sample of the servers part.
const CONNECTIONS: u64 = 2000;

/// A loopback IPv4 stream socket of `protocol` (0: TCP, or MPTCP).
fn stream(protocol: i32) -> i32 {
    // SAFETY: socket(2) with plain integers.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, protocol) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    fd
}

fn loopback(port: u16) -> libc::sockaddr_in {
    sockaddr_in(std::net::SocketAddrV4::new(
        std::net::Ipv4Addr::LOCALHOST,
        port,
    ))
}

/// `CONNECTIONS` connections, one after another: a client thread named
/// `bench-client` connects and closes, a server thread named
/// `bench-server` accepts and closes; both ask for `protocol` (0: TCP).
/// The ns per connection (the client's loop) and per `accept()` call.
fn connections(protocol: i32) -> (f64, f64) {
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let server = std::thread::Builder::new()
        .name("bench-server".into())
        .spawn(move || {
            let fd = stream(protocol);
            let addr = loopback(0);
            let size = std::mem::size_of::<libc::sockaddr_in>() as u32;
            // SAFETY: a valid sockaddr_in and its size; a fresh socket.
            unsafe {
                assert_eq!(libc::bind(fd, (&raw const addr).cast(), size), 0);
                assert_eq!(libc::listen(fd, 1024), 0);
            }
            let mut bound = loopback(0);
            let mut len = size;
            // SAFETY: as above, for the address the kernel chose.
            unsafe { libc::getsockname(fd, (&raw mut bound).cast(), &mut len) };
            port_tx.send(u16::from_be(bound.sin_port)).unwrap();
            let mut in_accept = Duration::ZERO;
            for _ in 0..CONNECTIONS {
                let start = Instant::now();
                // SAFETY: a listening socket; no address wanted.
                let conn = unsafe { libc::accept(fd, std::ptr::null_mut(), std::ptr::null_mut()) };
                in_accept += start.elapsed();
                assert!(conn >= 0, "accept: {}", std::io::Error::last_os_error());
                // SAFETY: our descriptor.
                unsafe { libc::close(conn) };
            }
            // SAFETY: our descriptor.
            unsafe { libc::close(fd) };
            in_accept
        })
        .unwrap();
    let port = port_rx.recv().unwrap();
    let client = std::thread::Builder::new()
        .name("bench-client".into())
        .spawn(move || {
            let addr = loopback(port);
            let size = std::mem::size_of::<libc::sockaddr_in>() as u32;
            let start = Instant::now();
            for _ in 0..CONNECTIONS {
                let fd = stream(protocol);
                // SAFETY: a valid sockaddr_in and its size.
                let rc = unsafe { libc::connect(fd, (&raw const addr).cast(), size) };
                assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
                // SAFETY: our descriptor.
                unsafe { libc::close(fd) };
            }
            start.elapsed()
        })
        .unwrap();
    let elapsed = client.join().unwrap();
    let in_accept = server.join().unwrap();
    (
        elapsed.as_nanos() as f64 / CONNECTIONS as f64,
        in_accept.as_nanos() as f64 / CONNECTIONS as f64,
    )
}

/// The run time and runs of the loaded program named `name`.
fn program_stats(name: &str) -> (f64, u64) {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter(|info| info.name_as_str() == Some(name))
        .map(|info| (info.run_time().as_nanos() as f64, info.run_count()))
        .fold((0.0, 0), |(ns, n), (a, b)| (ns + a, n + b))
}

/// What an upgraded server costs: a connection made and accepted, plain
/// TCP, MPTCP asked for by the application, and MPTCP by mptcpify
/// (`--comm` selecting both threads), in interleaved rounds; the kernel's
/// accounting of mptcpify's programs gives their ns per connection, and of
/// the accept program alone per accepted connection.
fn servers() {
    let mut samples: [Vec<f64>; 3] = Default::default();
    let mut accepts: [Vec<f64>; 3] = Default::default();
    let (mut accept_bpf, mut all_bpf) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        for (mode, protocol) in [(0, 0), (1, IPPROTO_MPTCP)] {
            let (per, accept) = connections(protocol);
            samples[mode].push(per);
            accepts[mode].push(accept);
        }
        let running = Running::attach(&["-q", "--comm", "bench-server", "--comm", "bench-client"]);
        let before = (ProgramStats::now(), program_stats("mptcpify_accept"));
        let (per, accept) = connections(0);
        let after = (ProgramStats::now(), program_stats("mptcpify_accept"));
        drop(running);
        samples[2].push(per);
        accepts[2].push(accept);
        all_bpf.push((after.0.all_ns - before.0.all_ns) / CONNECTIONS as f64);
        let runs = after.1 .1 - before.1 .1;
        assert!(runs >= CONNECTIONS, "the accept program ran {runs} times");
        accept_bpf.push((after.1 .0 - before.1 .0) / runs as f64);
    }
    println!("## Servers: the cost of an accepted connection\n");
    println!("{CONNECTIONS} loopback connections one after another, per round: a client thread connects and closes, a server thread accepts and closes. Plain TCP; MPTCP asked for by both ends (`IPPROTO_MPTCP`, no mptcpify); MPTCP by `mptcpify -q --comm bench-server --comm bench-client`. {ROUNDS} interleaved rounds; the BPF times are the kernel's accounting of mptcpify's programs (`kernel.bpf_stats_enabled`).\n");
    println!("| connection | ns per connection, median (min–max) | ns the server spends in `accept()` per connection (waiting for the client included), median |\n|---|---|---|");
    for (mode, name) in ["plain TCP", "MPTCP, asked for", "MPTCP, by mptcpify"]
        .iter()
        .enumerate()
    {
        println!(
            "| {name} | {} | {:.0} |",
            spread(&samples[mode]),
            median(&accepts[mode])
        );
    }
    let accept_ns = median(&accept_bpf);
    let plain_accept = median(&accepts[1]);
    println!(
        "\n| BPF cost | ns, median (min–max) | share |\n|---|---|---|\n| the accept program (`mptcp_stream_accept`), per accepted connection | {} | {:.1}% of the server's `accept()` of an MPTCP connection asked for ({plain_accept:.0} ns) |\n| every mptcpify program, per connection (both sockets' upgrade, tag and close, the accept) | {} | {:.1}% of an MPTCP connection asked for ({:.0} ns) |\n",
        spread(&accept_bpf),
        100.0 * accept_ns / plain_accept,
        spread(&all_bpf),
        100.0 * median(&all_bpf) / median(&samples[1]),
        median(&samples[1]),
    );
    load_footprint();
}

/// How long the load of [`load_footprint`] runs.
const LOAD: Duration = Duration::from_secs(30);

/// mptcpify's resident memory before and after `LOAD` of short
/// connections, with a line per event (as a service writes its journal).
fn load_footprint() {
    let mut running = Running::start_quietly(mptcpify_tests::process::command(&[
        "--comm",
        "bench-server",
        "--comm",
        "bench-client",
    ]));
    running.wait_for("mptcpify: attached", ATTACH_TIMEOUT);
    let before = mptcpify_tests::process::rss_kb(running.pid());
    let start = Instant::now();
    let mut made = 0;
    while start.elapsed() < LOAD {
        connections(0);
        made += CONNECTIONS;
        // The lines are read by the harness as they come.
        running.drain();
    }
    let took = start.elapsed();
    let after = mptcpify_tests::process::rss_kb(running.pid());
    drop(running);
    println!(
        "Under load, `mptcpify --comm bench-server --comm bench-client` printing a line per \
         event: {made} short connections in {:.0} s ({:.0} a second); its resident memory {before} \
         kB before, {after} kB after.\n",
        took.as_secs_f64(),
        made as f64 / took.as_secs_f64()
    );
}
