//! `mptcpify run` needs root to attach, but CMD runs as the user who asked
//! (sudo's SUDO_UID/SUDO_GID), or as --user, with no capability; --as-root
//! keeps root on purpose. The lab has users alice (1000) and bob (1001, also
//! in group alice). Run as root on a kernel with update_socket_protocol.

use std::process::Output;

use mptcpify_tests::probe;
use mptcpify_tests::process;

/// What CMD reports about itself: uid, gid, groups, HOME/USER, its socket,
/// and its capability sets.
fn report_script() -> String {
    format!(
        "id -u; id -g; id -G; echo \"home=$HOME user=$USER logname=$LOGNAME\"; '{}'; \
         grep -E '^Cap(Inh|Prm|Eff|Amb)' /proc/self/status; grep NoNewPrivs /proc/self/status",
        probe::path("socket-probe").display()
    )
}

fn run_as(args: &[&str], env: &[(&str, &str)]) -> Output {
    let script = report_script();
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--", "sh", "-c", &script]);
    let mut command = process::command(&all);
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("mptcpify run")
}

fn lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

fn assert_no_capabilities(report: &[String]) {
    for set in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
        let line = report
            .iter()
            .find(|l| l.starts_with(set))
            .unwrap_or_else(|| panic!("no {set} in {report:?}"));
        assert!(line.ends_with("0000000000000000"), "{line}");
    }
    assert!(
        report.iter().any(|l| l.ends_with("NoNewPrivs:\t1")),
        "{report:?}"
    );
}

const SUDO_ALICE: &[(&str, &str)] = &[
    ("SUDO_UID", "1000"),
    ("SUDO_GID", "1000"),
    ("SUDO_USER", "alice"),
];

#[test]
fn through_sudo_cmd_runs_as_the_caller_without_capabilities() {
    let out = run_as(&[], SUDO_ALICE);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let report = lines(&out);
    assert_eq!(report[0..2], ["1000", "1000"], "{out:?}");
    assert_eq!(report[3], "home=/home/alice user=alice logname=alice");
    assert_eq!(probe::result(&out), "protocol=262");
    assert_no_capabilities(&report);
}

#[test]
fn user_chooses_another_identity_with_its_groups() {
    let out = run_as(&["--user", "1001"], SUDO_ALICE);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let report = lines(&out);
    assert_eq!(report[0..2], ["1001", "1001"], "{out:?}");
    let groups: Vec<&str> = report[2].split_whitespace().collect();
    assert!(
        groups.contains(&"1000") && groups.contains(&"1001"),
        "{report:?}"
    );
    assert_eq!(probe::result(&out), "protocol=262");
    assert_no_capabilities(&report);

    let out = run_as(&["--user", "bob", "--group", "alice"], &[]);
    assert_eq!(lines(&out)[0..2], ["1001", "1000"], "{out:?}");

    let out = run_as(&["--user", "nobody-here"], &[]);
    assert_eq!(out.status.code(), Some(12), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no such user"),
        "{out:?}"
    );
}

#[test]
fn as_root_keeps_root_on_purpose() {
    let out = run_as(&["--as-root"], SUDO_ALICE);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(lines(&out)[0], "0", "{out:?}");
    assert_eq!(probe::result(&out), "protocol=262");
}

#[test]
fn exit_status_and_signals_pass_through_as_the_user() {
    let mut command = process::command(&["run", "--", "sh", "-c", "exit 7"]);
    command.envs(SUDO_ALICE.iter().copied());
    assert_eq!(command.output().unwrap().status.code(), Some(7));
    let mut command = process::command(&["run", "--", "sh", "-c", "kill -TERM $$"]);
    command.envs(SUDO_ALICE.iter().copied());
    assert_eq!(
        command.output().unwrap().status.code(),
        Some(128 + libc::SIGTERM)
    );
    // mptcpify (root) forwards signals to CMD (alice): allowed for root.
    let mut command = process::command(&["run", "-v", "--", "sleep", "60"]);
    command.envs(SUDO_ALICE.iter().copied());
    command.env("RUST_BACKTRACE", "0");
    let mut running = process::Running::start(command);
    let who = running.wait_for("CMD runs as", process::ATTACH_TIMEOUT);
    assert!(who.contains("alice (uid 1000, gid 1000)"), "{who}");
    running.wait_for("mptcpify: attached; running", process::ATTACH_TIMEOUT);
    running.signal(libc::SIGTERM);
    let (status, output) = running.wait();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{output:?}");
}
