//! Bad input and help: answered before anything is loaded, on any kernel.

use mptcpify_tests::process::{output_within, run, Running, ATTACH_TIMEOUT};
use std::process::Command;
use std::time::Duration;

#[test]
fn unknown_flag_is_a_usage_error() {
    let (status, out) = run(&["--bogus"]);
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("unexpected argument '--bogus'"), "{out}");
}

/// Upgrading every process is asked for with --all, never the meaning of an
/// empty command line: the refusal names the selectors and the risks.
#[test]
fn no_selector_is_a_usage_error_that_names_the_risks() {
    for args in [&[][..], &["-q"], &["--exclude-comm", "sshd"]] {
        let (status, out) = run(args);
        assert_eq!(status.code(), Some(2), "{args:?}: {out}");
        for needle in ["no process selected", "--all", "TCP_ULP", "--exclude-comm"] {
            assert!(out.contains(needle), "{args:?} lacks {needle:?}: {out}");
        }
    }
    let (status, out) = run(&["--all", "--comm", "nginx"]);
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("cannot be used with"), "{out}");
}

/// With no instance attached, `monitor` says so and how to start one (exit
/// 15), rather than waiting for events that cannot come.
#[test]
fn monitor_without_an_instance_says_so() {
    let (status, out) = run(&["monitor"]);
    assert_eq!(status.code(), Some(15), "{out}");
    assert!(out.contains("no mptcpify instance is attached"), "{out}");
    assert!(out.contains("sudo mptcpify --comm NAME"), "{out}");
}

#[test]
fn enable_outside_systemd_or_with_a_bad_name_says_why() {
    let (status, out) = run(&["enable", "nginx.socket"]);
    assert_eq!(status.code(), Some(8), "{out}");
    assert!(out.contains("not a service name"), "{out}");
    // The host may or may not run systemd: derived, not assumed.
    if !std::path::Path::new("/run/systemd/system").exists() {
        let (status, out) = run(&["enable", "nginx"]);
        assert_eq!(status.code(), Some(13), "{out}");
        assert!(out.contains("systemd is not running"), "{out}");
    }
}

#[test]
fn subcommand_help_teaches_each_one() {
    for (args, needles) in [
        (
            &["audit", "--help"][..],
            &["Observe only", "--for", "verdict"][..],
        ),
        (&["status", "--help"], &["endpoints", "--json"]),
        (
            &["monitor", "--help"],
            &["established", "nsenter --net=", "@mptcpify/monitor/"],
        ),
        (
            &["enable", "--help"],
            &["mptcpify@UNIT.service", "50-mptcpify.conf"],
        ),
    ] {
        let (status, out) = run(args);
        assert_eq!(status.code(), Some(0), "{args:?}: {out}");
        for needle in needles {
            assert!(out.contains(needle), "{args:?} lacks {needle:?}: {out}");
        }
    }
}

/// `status` works on any host, attachable or not: it reads, it never fails
/// for want of what it reports.
#[test]
fn status_reports_this_kernel_as_json() {
    let (status, out) = run(&["status", "--json"]);
    assert_eq!(status.code(), Some(0), "{out}");
    let line = out.lines().last().unwrap();
    let json: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {out}"));
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(json["event"], "status");
    assert_eq!(json["kernel"]["release"], release.trim());
    for part in ["path_manager", "instances", "connections"] {
        assert!(json.get(part).is_some(), "{part} missing: {json}");
    }
}

#[test]
fn a_path_is_not_a_process_name() {
    let (status, out) = run(&["--comm", "/usr/bin/iperf3"]);
    assert_eq!(status.code(), Some(8), "{out}");
    assert!(
        out.contains("invalid process name \"/usr/bin/iperf3\""),
        "{out}"
    );
    assert!(out.contains("--comm nginx"), "{out}");
}

#[test]
fn help_teaches_usage_and_exit_codes() {
    let (status, out) = run(&["--help"]);
    assert_eq!(status.code(), Some(0));
    for needle in [
        "sudo mptcpify --comm iperf3",
        "ss -Mni",
        "EXIT STATUS",
        "kernel too old",
    ] {
        assert!(out.contains(needle), "--help lacks {needle:?}:\n{out}");
    }
}

#[test]
fn run_help_teaches_usage_and_exit_status() {
    let (status, out) = run(&["run", "--help"]);
    assert_eq!(status.code(), Some(0));
    for needle in [
        "mptcpify run [OPTIONS] -- CMD",
        "128+N",
        "statically linked",
        "EXAMPLES",
    ] {
        assert!(out.contains(needle), "run --help lacks {needle:?}:\n{out}");
    }
    let (status, out) = run(&["run"]);
    assert_eq!(status.code(), Some(2), "{out}");
}

/// The warning comes before any kernel check, so this works on every kernel;
/// whatever happens next (attach, or a refusal) is stopped by the drop.
#[test]
fn over_long_comm_warns_with_the_truncated_name() {
    let mut command = mptcpify_tests::process::command(&["--comm", "a-very-long-process-name"]);
    command.env("RUST_BACKTRACE", "0");
    let mut running = Running::start(command);
    let line = running.wait_for("longer than the kernel keeps", Duration::from_secs(30));
    assert!(line.contains("matching \"a-very-long-pro\""), "{line}");
}

/// Runs mptcpify through a wrapper that sets up the failing condition, and
/// checks the exit code and that stderr names cause and fix.
fn assert_refused(wrapper: &mut Command, code: i32, needles: &[&str]) {
    let wrapper = std::mem::replace(wrapper, Command::new("true"));
    let (status, text) = output_within(wrapper, ATTACH_TIMEOUT);
    assert_eq!(status.code(), Some(code), "{text}");
    for needle in needles {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

fn bin() -> String {
    mptcpify_tests::process::resolved_bin()
        .display()
        .to_string()
}

/// `net.mptcp.enabled=0` in mptcpify's namespace: refused with exit code 7
/// and the sysctl to run. A fresh namespace keeps the machine's own setting.
#[test]
fn mptcp_disabled_is_refused_with_the_fix() {
    let script = format!(
        "echo 0 > /proc/sys/net/mptcp/enabled && exec '{}' --all",
        bin()
    );
    assert_refused(
        Command::new("unshare").args(["-n", "sh", "-c", &script]),
        7,
        &["sysctl -w net.mptcp.enabled=1", "--allow-disabled"],
    );
}

/// Without root (or CAP_BPF + CAP_PERFMON): exit code 3, and the fix.
#[test]
fn unprivileged_is_refused_with_the_fix() {
    assert_refused(
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
            ])
            .args([bin().as_str(), "--comm", "iperf3"]),
        3,
        &["missing CAP_BPF and CAP_PERFMON", "sudo mptcpify"],
    );
}

/// No kernel BTF (hidden here by an empty tmpfs in a private mount
/// namespace): exit code 4, naming what is missing.
#[test]
fn missing_btf_is_refused_with_the_fix() {
    let script = format!(
        "mount -t tmpfs none /sys/kernel/btf && exec '{}' --comm iperf3",
        bin()
    );
    assert_refused(
        Command::new("unshare").args(["-m", "--propagation", "private", "sh", "-c", &script]),
        4,
        &["/sys/kernel/btf/vmlinux", "CONFIG_DEBUG_INFO_BTF"],
    );
}

/// At start, a file that does not load is refused with its own exit code,
/// the file, the line and the fix, and nothing is attached.
#[test]
fn a_bad_file_at_start_is_refused_with_its_line() {
    let file = std::env::temp_dir().join(format!("mptcpify-bad-{}.toml", std::process::id()));
    std::fs::write(&file, "comm = [\"iperf3\"]\nexclude_coms = [\"sshd\"]\n").unwrap();
    let (status, out) = run(&["--config", file.to_str().unwrap()]);
    assert_eq!(status.code(), Some(14), "{out}");
    assert!(out.contains(&format!("{} line 2", file.display())), "{out}");
    assert!(out.contains("exclude_coms"), "{out}");
    assert!(!out.contains("mptcpify: attached"), "{out}");
    let _ = std::fs::remove_file(&file);
}

/// `--metrics` that cannot serve is refused at start, before anything is
/// attached: a port in use with its own exit code (21) and how to find
/// who holds it; an address without a port, or no address, as a usage
/// error that shows the forms.
#[test]
fn metrics_that_cannot_serve_are_refused_at_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (status, out) = run(&["--metrics", &port, "--comm", "nothing-here"]);
    assert_eq!(status.code(), Some(21), "{out}");
    for needle in ["cannot listen there", "ss -ltnp", "choose another port"] {
        assert!(out.contains(needle), "lacks {needle:?}: {out}");
    }
    assert!(!out.contains("attached to"), "{out}");
    drop(taken);
    for (value, needle) in [
        ("10.0.0.1", "has no port"),
        ("[::1]", "is not a port"),
        ("localhost:9464", "is not a port"),
        ("70000", "is not a port"),
    ] {
        let (status, out) = run(&["--metrics", value, "--comm", "nothing-here"]);
        assert_eq!(status.code(), Some(2), "{value}: {out}");
        assert!(out.contains(needle), "{value} lacks {needle:?}: {out}");
        assert!(out.contains("0.0.0.0:9464"), "{value}: the forms: {out}");
    }
    let (status, out) = run(&["--comm", "nothing-here", "--metrics"]);
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("a value is required"), "{out}");
}
