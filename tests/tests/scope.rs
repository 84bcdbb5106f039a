//! Selectors and safety on the real hook, with real processes: an
//! unmodified C program (the socket probe) run in chosen cgroups and
//! namespaces. Run as root on a kernel with update_socket_protocol.

use std::io::Write;
use std::process::{Command, Stdio};

use mptcpify_tests::probe::{self, TempCgroup, TempNetns};
use mptcpify_tests::process::{self, Running};

const MPTCP: &str = "protocol=262";
const TCP: &str = "protocol=6";

fn cgroup_name(tag: &str) -> String {
    format!("mptest-{tag}-{}", std::process::id())
}

#[test]
fn cgroup_selects_it_and_below_not_siblings() {
    let target = TempCgroup::new(&cgroup_name("target"));
    let child = TempCgroup::new(&format!("{}/child", cgroup_name("target")));
    let sibling = TempCgroup::new(&cgroup_name("sibling"));
    // Relative to the cgroup2 mount, as an operator would type it.
    let _running = Running::attach(&["-q", "--cgroup", &cgroup_name("target")]);
    assert_eq!(probe::in_cgroup(&target.0), MPTCP);
    assert_eq!(probe::in_cgroup(&child.0), MPTCP);
    assert_eq!(probe::in_cgroup(&sibling.0), TCP);
    assert_eq!(probe::here(), TCP);
}

#[test]
fn absolute_cgroup_paths_work_too() {
    let target = TempCgroup::new(&cgroup_name("abs"));
    let _running = Running::attach(&["-q", "--cgroup", &target.0.to_string_lossy()]);
    assert_eq!(probe::in_cgroup(&target.0), MPTCP);
    assert_eq!(probe::here(), TCP);
}

#[test]
fn unit_resolves_to_its_service_cgroup() {
    let unit = format!("mptest-{}", std::process::id());
    let service = TempCgroup::new(&format!("system.slice/{unit}.service"));
    let running = Running::attach(&["-q", "--unit", &unit]);
    assert!(
        running
            .output
            .iter()
            .any(|l| l.contains(&format!("system.slice/{unit}.service"))),
        "{:?}",
        running.output
    );
    assert_eq!(probe::in_cgroup(&service.0), MPTCP);
    assert_eq!(probe::here(), TCP);
    running.signal(libc::SIGINT);
    assert_eq!(running.wait().0.code(), Some(0));
}

#[test]
fn netns_selects_sockets_created_in_it() {
    let ns = TempNetns::new("mptest");
    let _running = Running::attach(&["-q", "--netns", &ns.path()]);
    assert_eq!(probe::in_netns(&ns.0), MPTCP);
    assert_eq!(probe::here(), TCP);
}

/// The sidecar: mptcpify started inside the pod's namespace with `--netns self`.
#[test]
fn netns_self_is_mptcpify_own_namespace() {
    let ns = TempNetns::new("mpside");
    let mut command = Command::new("ip");
    command.args([
        "netns",
        "exec",
        &ns.0,
        &process::bin(),
        "-q",
        "--netns",
        "self",
    ]);
    let mut running = Running::start(command);
    running.wait_for("mptcpify: attached", process::ATTACH_TIMEOUT);
    assert_eq!(probe::in_netns(&ns.0), MPTCP);
    assert_eq!(probe::here(), TCP);
}

/// `--pid`: the selected process (even after it execs) is upgraded, another is not.
#[test]
fn pid_selects_one_process() {
    let start_waiting = || {
        let script = format!("read go; exec '{}'", probe::path("socket-probe").display());
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut chosen = start_waiting();
    let mut other = start_waiting();
    let _running = Running::attach(&["-q", "--pid", &chosen.id().to_string()]);
    for child in [&mut chosen, &mut other] {
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    }
    assert_eq!(probe::result(&chosen.wait_with_output().unwrap()), MPTCP);
    assert_eq!(probe::result(&other.wait_with_output().unwrap()), TCP);
}

/// Inside a PID namespace of its own (a container) mptcpify sees other pids
/// than the kernel's: `--pid` is refused there with the fix (exit 8), while
/// the other selectors work (the pod suite runs the sidecar that way, and
/// the self-check knows its test children by name, not pid).
#[test]
fn pid_is_refused_inside_a_pid_namespace() {
    let unshare = process::on_path("unshare").expect("unshare (util-linux) in the lab");
    let mut command = Command::new(unshare);
    command.args(["--pid", "--fork", "--mount-proc"]);
    command
        .arg(process::resolved_bin())
        .args(["-q", "--pid", "1"]);
    let (status, out) = process::output_within(command, process::ATTACH_TIMEOUT);
    assert_eq!(status.code(), Some(8), "{out}");
    assert!(out.contains("mptcpify runs in a PID namespace"), "{out}");
    assert!(out.contains("--pid=host"), "{out}");
}

#[test]
fn exclude_cgroup_wins_over_system_wide() {
    let kept = TempCgroup::new(&cgroup_name("kept"));
    let _running = Running::attach(&["-q", "--all", "--exclude-cgroup", &cgroup_name("kept")]);
    assert_eq!(probe::in_cgroup(&kept.0), TCP);
    assert_eq!(probe::here(), MPTCP);
}

#[test]
fn exclude_cgroup_wins_over_an_including_parent() {
    let parent = TempCgroup::new(&cgroup_name("parent"));
    let kept = TempCgroup::new(&format!("{}/kept", cgroup_name("parent")));
    let _running = Running::attach(&[
        "-q",
        "--cgroup",
        &cgroup_name("parent"),
        "--exclude-cgroup",
        &format!("{}/kept", cgroup_name("parent")),
    ]);
    assert_eq!(probe::in_cgroup(&parent.0), MPTCP);
    assert_eq!(probe::in_cgroup(&kept.0), TCP);
}

/// The safety rule: a namespace created after attach, with MPTCP disabled,
/// still gets working TCP sockets from a system-wide mptcpify; one with MPTCP
/// enabled (the default) is upgraded, proving the switch is read per namespace.
#[test]
fn mptcp_disabled_namespace_keeps_working_tcp() {
    let running = Running::attach(&["-q", "--all"]);
    let probe = probe::path("socket-probe");
    let disabled = format!(
        "echo 0 > /proc/sys/net/mptcp/enabled && exec '{}'",
        probe.display()
    );
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c", &disabled])
        .output()
        .unwrap();
    assert_eq!(
        probe::result(&out),
        TCP,
        "socket() in an MPTCP-disabled namespace"
    );
    let enabled = format!("exec '{}'", probe.display());
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c", &enabled])
        .output()
        .unwrap();
    assert_eq!(probe::result(&out), MPTCP);
    running.signal(libc::SIGINT);
    let (status, output) = running.wait();
    assert_eq!(status.code(), Some(0));
    let kept = output
        .iter()
        .find(|l| l.ends_with("kept tcp: mptcp disabled in netns (or unsupported)"))
        .expect("counter line");
    let count: u64 = kept.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(count >= 1, "{output:?}");
}

fn run_cmd(args: &[&str]) -> std::process::Output {
    let mut all = vec!["run", "--"];
    all.extend_from_slice(args);
    process::command(&all).output().expect("mptcpify run")
}

#[test]
fn run_upgrades_dynamic_and_static_programs() {
    assert_eq!(probe::here(), TCP, "baseline without mptcpify");
    for name in ["socket-probe", "socket-probe-static"] {
        let out = run_cmd(&[&probe::path(name).to_string_lossy()]);
        assert_eq!(probe::result(&out), MPTCP, "{name}: {out:?}");
        assert_eq!(out.status.code(), Some(0));
    }
}

#[test]
fn run_covers_descendants() {
    let script = format!("'{}'; true", probe::path("socket-probe-static").display());
    let out = run_cmd(&["sh", "-c", &script]);
    assert_eq!(probe::result(&out), MPTCP, "{out:?}");
}

#[test]
fn run_passes_exit_status_and_signals_through() {
    let out = run_cmd(&[&probe::path("socket-probe").to_string_lossy(), "7"]);
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    let out = run_cmd(&["sh", "-c", "kill -TERM $$"]);
    assert_eq!(out.status.code(), Some(128 + libc::SIGTERM), "{out:?}");
    let out = run_cmd(&["/nonexistent/command"]);
    assert_eq!(out.status.code(), Some(127), "{out:?}");
}

/// SIGTERM to `mptcpify run` reaches CMD; the run's cgroup is gone afterwards.
#[test]
fn run_forwards_signals_and_cleans_up() {
    let mut command = process::command(&["run", "-v", "--", "sleep", "60"]);
    command.env("RUST_BACKTRACE", "0");
    let mut running = Running::start(command);
    let line = running.wait_for("mptcpify: attached; running", process::ATTACH_TIMEOUT);
    let cgroup = line.rsplit(" in ").next().unwrap().to_string();
    assert!(std::path::Path::new(&cgroup).is_dir(), "{line}");
    running.signal(libc::SIGTERM);
    let (status, output) = running.wait();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{output:?}");
    assert!(
        !std::path::Path::new(&cgroup).exists(),
        "{cgroup} left behind"
    );
}

/// Bad selectors: a clear error, exit code 8, and nothing attached.
#[test]
fn bad_selectors_attach_nothing() {
    let not_cgroup = std::env::temp_dir();
    let cases: [&[&str]; 5] = [
        &["--cgroup", "no/such/cgroup"],
        &["--cgroup", &not_cgroup.to_string_lossy()],
        &["--unit", "no-such-unit"],
        &["--netns", "/run/netns/no-such-namespace"],
        &["--pid", "4000000"],
    ];
    for args in cases {
        let (status, out) = process::run(args);
        assert_eq!(status.code(), Some(8), "{args:?}: {out}");
        assert!(!out.contains("attached"), "{out}");
        assert_eq!(probe::here(), TCP);
    }
}

/// Ctrl-C while `mptcpify run` is still attaching aborts: CMD never runs.
#[test]
fn run_aborts_on_a_signal_during_attach() {
    let marker = std::env::temp_dir().join(format!("mptest-ran-{}", std::process::id()));
    let script = format!("touch '{}'", marker.display());
    let mut command = process::command(&["run", "--", "sh", "-c", &script]);
    command.env("RUST_BACKTRACE", "0");
    let running = Running::start(command);
    // Well before the self-check and the attach are done under emulation;
    // after the signal handlers are installed (the first thing `run` does).
    std::thread::sleep(std::time::Duration::from_millis(150));
    running.signal(libc::SIGINT);
    let (status, output) = running.wait();
    assert_eq!(status.code(), Some(128 + libc::SIGINT), "{output:?}");
    assert!(!marker.exists(), "CMD ran: {output:?}");
}

/// A `mptcpify run` killed with SIGKILL leaves its cgroup behind; the next
/// run removes it.
#[test]
fn run_sweeps_cgroups_left_by_killed_runs() {
    let mut command = process::command(&["run", "-v", "--", "sleep", "60"]);
    command.env("RUST_BACKTRACE", "0");
    let mut running = Running::start(command);
    let line = running.wait_for("mptcpify: attached; running", process::ATTACH_TIMEOUT);
    let cgroup = std::path::PathBuf::from(line.rsplit(" in ").next().unwrap());
    running.signal(libc::SIGKILL);
    let _ = running.wait();
    // The sleep is still in the cgroup; it goes when killed.
    let procs = std::fs::read_to_string(cgroup.join("cgroup.procs")).unwrap_or_default();
    for pid in procs.lines() {
        let _ = Command::new("kill").args(["-9", pid]).status();
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        cgroup.is_dir(),
        "{} should be left behind by SIGKILL",
        cgroup.display()
    );
    let out = run_cmd(&["true"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(!cgroup.exists(), "{} was not swept", cgroup.display());
}
