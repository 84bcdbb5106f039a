//! `--pin NAME`: the upgrade outlives mptcpify; a second `--pin NAME` takes
//! it over without a moment where a selected socket is TCP; `mptcpify
//! detach NAME` ends it. Run as root on a kernel with update_socket_protocol
//! (the lab), with the BPF filesystem at /sys/fs/bpf.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mptcpify_tests::process::{run, Running};
use mptcpify_tests::sockets::{as_comm, new_tcp_protocol};

/// The thread name the policy selects (`--comm` matches thread names).
const SELECTED: &str = "pin-probe";
const NAME: &str = "test-pin";

fn protocol_as_selected() -> i32 {
    as_comm(SELECTED, new_tcp_protocol)
}

/// `mptcpify status --json`'s instances.
fn instances() -> Vec<serde_json::Value> {
    let (status, out) = run(&["status", "--json"]);
    assert!(status.success(), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON in: {out}"));
    let value: serde_json::Value = serde_json::from_str(line).unwrap();
    value["instances"]
        .as_array()
        .unwrap_or_else(|| panic!("no instances: {line}"))
        .clone()
}

/// The instances once there are `n` of them: a link let go is freed by a
/// kernel worker, a moment later.
fn instances_once(n: usize) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let listed = instances();
        if listed.len() == n || std::time::Instant::now() > deadline {
            return listed;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Ends `running` with `signal`; it exits cleanly and says `needle`.
fn exits_saying(running: Running, signal: i32, needle: &str) {
    running.signal(signal);
    let (status, output) = running.wait();
    assert_eq!(status.code(), Some(0), "{output:?}");
    assert!(output.iter().any(|l| l.contains(needle)), "{output:?}");
}

#[test]
fn a_pinned_upgrade_outlives_mptcpify_is_taken_over_without_a_gap_and_detached() {
    let dir = Path::new("/sys/fs/bpf/mptcpify").join(NAME);
    let args = ["-q", "--comm", SELECTED, "--pin", NAME];
    let first = Running::attach(&args);
    assert_eq!(protocol_as_selected(), 262);
    exits_saying(first, libc::SIGTERM, "the upgrade stays attached");

    // No mptcpify runs: the pinned upgrade still upgrades, and only that.
    assert_eq!(protocol_as_selected(), 262, "the pinned upgrade is gone");
    assert_eq!(new_tcp_protocol(), 6, "an unselected thread was upgraded");
    assert!(dir.join("mptcpify").exists(), "no pin in {}", dir.display());
    let listed = instances_once(1);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["pinned"], NAME, "{listed:?}");
    assert_eq!(listed[0]["holders"], serde_json::json!([]), "{listed:?}");
    let old_id = listed[0]["program_id"].as_u64().unwrap();
    // A listener the pinned upgrade made: its accepts are counted by
    // whichever instance holds the pin.
    let listener = as_comm(SELECTED, || {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap()
    });
    assert_eq!(mptcpify_tests::sockets::protocol_of(&listener), 262);

    // Taken over by a new mptcpify while sockets are made all along: each
    // one is MPTCP, and one upgrader is attached afterwards.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name(SELECTED.into())
            .spawn(move || {
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    seen.push(new_tcp_protocol());
                    // Paced, so that the loop leaves the (emulated) CPUs to
                    // the takeover; every 0.5 ms still finds any gap in a
                    // takeover of a few seconds. (This loop, run while the
                    // takeover patched socket()'s call sites, is what showed
                    // multi-threaded TCG's stale int3: see xtask's qemu.rs.)
                    std::thread::sleep(std::time::Duration::from_micros(500));
                }
                seen
            })
            .unwrap()
    };
    let second = Running::attach(&args);
    let took_over = second
        .output
        .iter()
        .find(|l| l.contains("took over the upgrade pinned as"))
        .unwrap_or_else(|| panic!("{:?}", second.output));
    assert!(took_over.contains("sockets it followed"), "{took_over}");
    let seen = {
        stop.store(true, Ordering::Relaxed);
        watcher.join().unwrap()
    };
    let tcp = seen.iter().filter(|&&p| p != 262).count();
    println!(
        "during the takeover: {} sockets, {tcp} not MPTCP",
        seen.len()
    );
    assert!(seen.len() > 100, "too few sockets to tell: {}", seen.len());
    assert_eq!(
        tcp,
        0,
        "{tcp} of {} sockets were TCP during the takeover",
        seen.len()
    );
    let listed = instances_once(1);
    assert_eq!(
        listed.len(),
        1,
        "the old upgrader is still attached: {listed:?}"
    );
    assert_ne!(listed[0]["program_id"].as_u64().unwrap(), old_id);
    assert_eq!(listed[0]["pinned"], NAME);

    // The inherited listener's connection is counted by the second.
    let port = listener.local_addr().unwrap().port();
    let client = as_comm(SELECTED, move || {
        std::net::TcpStream::connect(("127.0.0.1", port)).unwrap()
    });
    let (server, _) = listener.accept().unwrap();
    drop((client, server, listener));

    // Detached by name while the second still runs: it stays attached until
    // that one exits, then new sockets are TCP.
    let (status, out) = run(&["detach", NAME]);
    assert!(status.success(), "{out}");
    assert!(out.contains("keeps it attached until it exits"), "{out}");
    assert!(!dir.exists(), "{} is still there", dir.display());
    assert_eq!(protocol_as_selected(), 262);
    second.signal(libc::SIGTERM);
    let (status, output) = second.wait();
    assert_eq!(status.code(), Some(0), "{output:?}");
    assert!(
        output
            .iter()
            .any(|l| l.contains("detached; new sockets are TCP again")),
        "{output:?}"
    );
    assert!(
        output
            .iter()
            .any(|l| l.contains("accepted by upgraded listeners: 1 MPTCP (100%), 0 plain TCP")),
        "the inherited listener's accept is not counted: {output:?}"
    );
    assert_eq!(protocol_as_selected(), 6, "still upgraded after detach");
    assert_eq!(instances_once(0), Vec::<serde_json::Value>::new());
}

#[test]
fn detach_without_a_pin_says_what_is_pinned() {
    let (status, out) = run(&["detach", "no-such-pin"]);
    assert_eq!(status.code(), Some(16), "{out}");
    assert!(
        out.contains("no upgrade is pinned as \"no-such-pin\""),
        "{out}"
    );
    let (status, out) = run(&["--comm", "x", "--pin", "../escape"]);
    assert_eq!(status.code(), Some(16), "{out}");
    assert!(out.contains("not a usable pin name"), "{out}");
}

/// A pinned upgrade ended by `detach` when no mptcpify holds it: new
/// sockets are TCP at once.
#[test]
fn detach_of_an_unheld_pin_ends_the_upgrade() {
    let first = Running::attach(&["-q", "--comm", SELECTED, "--pin", "test-pin-2"]);
    exits_saying(first, libc::SIGINT, "the upgrade stays attached");
    assert_eq!(protocol_as_selected(), 262);
    let (status, out) = run(&["detach", "test-pin-2"]);
    assert!(status.success(), "{out}");
    assert!(
        out.contains("detached test-pin-2: new sockets are TCP again"),
        "{out}"
    );
    assert_eq!(protocol_as_selected(), 6);
}

/// A bare `--pin` pins as `default`, and a bare `detach` ends `default`:
/// the two are symmetric. With nothing pinned as `default`, a bare
/// `detach` says so and names what is pinned.
#[test]
fn bare_detach_ends_the_bare_pin() {
    let (status, out) = run(&["detach"]);
    assert_eq!(status.code(), Some(16), "{out}");
    assert!(out.contains("no upgrade is pinned as \"default\""), "{out}");
    let first = Running::attach(&["-q", "--comm", SELECTED, "--pin"]);
    exits_saying(first, libc::SIGINT, "the upgrade stays attached");
    assert_eq!(protocol_as_selected(), 262);
    let (status, out) = run(&["detach"]);
    assert!(status.success(), "{out}");
    assert!(
        out.contains("detached default: new sockets are TCP again"),
        "{out}"
    );
    assert_eq!(protocol_as_selected(), 6);
}
