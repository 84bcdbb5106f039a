//! The policy from a file (`--config`), reloaded in place on SIGHUP: the new
//! policy takes over without detaching, while a process both policies
//! upgrade keeps getting MPTCP and one neither upgrades keeps TCP; a file
//! that does not load leaves the policy in force. Run as root on a kernel
//! with update_socket_protocol (the lab).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mptcpify_tests::probe::{self, TempCgroup};
use mptcpify_tests::process::{counter, Running, SKIPPED_CALLS};
use mptcpify_tests::sockets::{as_comm, new_tcp_protocol, IPPROTO_MPTCP, IPPROTO_TCP};

const WAIT: Duration = Duration::from_secs(60);
const MPTCP: &str = "protocol=262";
const TCP: &str = "protocol=6";

fn write(file: &Path, text: &str) {
    std::fs::write(file, text).unwrap();
}

fn reload(running: &mut Running, needle: &str) -> String {
    running.signal(libc::SIGHUP);
    running.wait_for(needle, WAIT)
}

#[test]
fn a_reloaded_policy_takes_over_in_place() {
    let both = TempCgroup::new("mptcpify-test-reload-both");
    let first = TempCgroup::new("mptcpify-test-reload-first");
    let second = TempCgroup::new("mptcpify-test-reload-second");
    let neither = TempCgroup::new("mptcpify-test-reload-neither");
    let file = std::env::temp_dir().join(format!("mptcpify-test-{}.toml", std::process::id()));
    let policy = |selected: &TempCgroup| {
        format!(
            "# the test's policy\ncgroup = [\n  \"{}\",\n  \"{}\",\n]\nexclude_comm = [\"socket-probe-st\"]\n",
            both.0.display(),
            selected.0.display()
        )
    };
    write(&file, &policy(&first));
    let mut running = Running::attach(&["-q", "--config", file.to_str().unwrap()]);
    assert_eq!(probe::in_cgroup(&first.0), MPTCP);
    assert_eq!(probe::in_cgroup(&second.0), TCP);

    // While the policy flips back and forth, probes keep running where both
    // policies agree: `both` must stay MPTCP, `neither` TCP, every time.
    let stop = Arc::new(AtomicBool::new(false));
    let watchers: Vec<_> = [(both.0.clone(), MPTCP), (neither.0.clone(), TCP)]
        .into_iter()
        .map(|(cgroup, expected)| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    seen.push(probe::in_cgroup(&cgroup));
                }
                (expected, seen)
            })
        })
        .collect();
    for round in 0..2 {
        write(&file, &policy(&second));
        reload(&mut running, "reloaded");
        assert_eq!(probe::in_cgroup(&second.0), MPTCP, "round {round}");
        assert_eq!(probe::in_cgroup(&first.0), TCP, "round {round}");
        write(&file, &policy(&first));
        reload(&mut running, "reloaded");
        assert_eq!(probe::in_cgroup(&first.0), MPTCP, "round {round}");
        assert_eq!(probe::in_cgroup(&second.0), TCP, "round {round}");
    }
    stop.store(true, Ordering::Relaxed);
    for watcher in watchers {
        let (expected, seen) = watcher.join().unwrap();
        assert!(!seen.is_empty());
        assert!(
            seen.iter().all(|s| s == expected),
            "expected {expected} all along the reloads: {seen:?}"
        );
        eprintln!("{} probes during the reloads, all {expected}", seen.len());
    }
    // The exclusion came from the file too.
    let script = format!(
        "echo $$ > '{}/cgroup.procs' && exec '{}'",
        first.0.display(),
        probe::path("socket-probe-static").display()
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert_eq!(probe::result(&out), TCP);

    // A file that does not load: said with its line; the policy stays.
    write(&file, "cgroup = [\"/sys/fs/cgroup\"]\nexclude_comm = 7\n");
    let line = reload(&mut running, "reloading");
    assert!(line.contains("failed; the policy in force stays"), "{line}");
    assert!(line.contains(".toml line 2: invalid type"), "{line}");
    assert_eq!(probe::in_cgroup(&first.0), MPTCP);
    assert_eq!(probe::in_cgroup(&second.0), TCP);

    running.signal(libc::SIGINT);
    let (status, output) = running.wait();
    assert_eq!(status.code(), Some(0), "{output:?}");
    let _ = std::fs::remove_file(&file);
}

/// A name whose position in the name filter and the exact name slots
/// (`COMM_SLOTS`) is `name`'s: the reload below rewrites that slot in
/// place.
fn sharing_the_slot_of(name: &str) -> String {
    use mptcpify_common::maps::{CommKey, NameFilter};
    let index =
        |n: &str| NameFilter::index(NameFilter::words(&CommKey::from_name(n.as_bytes()).0 .0));
    (0..100_000)
        .map(|i| format!("probe-2nd-{i}"))
        .find(|n| index(n) == index(name))
        .expect("one of 100000 names shares a slot of 256")
}

/// Reloads between policies that name different processes (by `--comm`):
/// a name both policies select stays MPTCP and one neither selects stays
/// TCP all along, and each policy's own name follows it, also where the
/// new name takes the old one's exact slot.
///
/// Checked against the kernel's own accounting, not only the sockets: the
/// trampoline enters the upgrader at most once per CPU, so on a preemptible
/// kernel (Debian's 6.18 and 7.x cloud kernels are PREEMPT_LAZY) a
/// `socket()` on the CPU where a watcher was preempted inside the program
/// runs without it and keeps TCP. mptcpify reports those calls (the
/// program's `recursion_misses`). Every other socket must have been decided
/// as expected: each expected MPTCP socket that got TCP is one of those
/// calls, and every verdict counter adds up to the sockets the test made.
#[test]
fn a_reloaded_comm_policy_takes_over_in_place() {
    let first = "probe-1st";
    let second = sharing_the_slot_of(first);
    let file = std::env::temp_dir().join(format!("mptcpify-test-comm-{}.toml", std::process::id()));
    let policy = |selected: &str| format!("comm = [\"probe-both\", \"{selected}\"]\n");
    write(&file, &policy(first));
    let mut running = Running::attach(&["-q", "--config", file.to_str().unwrap()]);

    let stop = Arc::new(AtomicBool::new(false));
    let watchers: Vec<_> = [
        ("probe-both", IPPROTO_MPTCP),
        ("probe-neither", IPPROTO_TCP),
    ]
    .into_iter()
    .map(|(name, expected)| {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    seen.push(new_tcp_protocol());
                }
                (name.to_string(), expected, seen)
            })
            .unwrap()
    })
    .collect();
    // Every socket the test makes: who, what it should be, what it was.
    let mut made: Vec<(String, i32, Vec<i32>)> = Vec::new();
    let mut check = |name: &str, expected: i32, when: String| {
        made.push((
            format!("{name} ({when})"),
            expected,
            vec![as_comm(name, new_tcp_protocol)],
        ));
    };
    check(first, IPPROTO_MPTCP, "attached".into());
    check(&second, IPPROTO_TCP, "attached".into());
    for round in 0..3 {
        write(&file, &policy(&second));
        reload(&mut running, "reloaded");
        check(
            &second,
            IPPROTO_MPTCP,
            format!("round {round}, reloaded to it"),
        );
        check(first, IPPROTO_TCP, format!("round {round}, reloaded away"));
        write(&file, &policy(first));
        reload(&mut running, "reloaded");
        check(
            first,
            IPPROTO_MPTCP,
            format!("round {round}, reloaded to it"),
        );
        check(
            &second,
            IPPROTO_TCP,
            format!("round {round}, reloaded away"),
        );
    }
    stop.store(true, Ordering::Relaxed);
    for watcher in watchers {
        let (name, expected, seen) = watcher.join().unwrap();
        assert!(!seen.is_empty(), "{name} made no socket");
        eprintln!("{name}: {} sockets during the reloads", seen.len());
        made.push((format!("{name} (watching)"), expected, seen));
    }
    running.signal(libc::SIGINT);
    let (status, output) = running.wait();
    assert_eq!(status.code(), Some(0), "{output:?}");
    let _ = std::fs::remove_file(&file);

    let count = |expected: i32| -> u64 {
        made.iter()
            .filter(|(_, e, _)| *e == expected)
            .map(|(_, _, seen)| seen.len() as u64)
            .sum()
    };
    let (should_upgrade, should_keep) = (count(IPPROTO_MPTCP), count(IPPROTO_TCP));
    let mut wrong = 0;
    for (who, expected, seen) in &made {
        let at: Vec<usize> = (0..seen.len()).filter(|&i| seen[i] != *expected).collect();
        // Nothing upgrades a socket the policy does not select.
        assert!(
            *expected == IPPROTO_MPTCP || at.is_empty(),
            "{who}: {} of {} sockets got MPTCP (at {at:?})",
            at.len(),
            seen.len()
        );
        if !at.is_empty() {
            eprintln!(
                "{who}: {} of {} sockets kept TCP (at {at:?})",
                at.len(),
                seen.len()
            );
        }
        wrong += at.len() as u64;
    }
    let skipped = counter(&output, SKIPPED_CALLS);
    let upgraded = counter(&output, "upgraded to mptcp");
    let not_selected = counter(&output, "kept tcp: not selected");
    let said = format!(
        "{should_upgrade} sockets should have been upgraded, {wrong} kept TCP; \
         {should_keep} should have kept TCP; mptcpify's output:\n{}",
        output.join("\n")
    );
    assert!(
        wrong <= skipped,
        "more kept TCP than the kernel skipped: {said}"
    );
    assert_eq!(upgraded, should_upgrade - wrong, "{said}");
    // The calls the kernel skipped that were not the wrong ones were the
    // sockets that should keep TCP (and did, decided by no one).
    assert_eq!(not_selected, should_keep - (skipped - wrong), "{said}");
}
