//! `mptcpify paths`, `paths auto`, `paths reset` and `--paths auto`, on
//! the two-path testbed left as a host is before anyone ran `ip mptcp`: no
//! endpoint, the kernel's default limits. What the path manager holds is
//! read with iproute2 (`ip mptcp endpoint|limits show`), independently of
//! mptcpify. Run as root in the lab, on every hook kernel.

use std::process::Command;
use std::time::{Duration, Instant};

use mptcpify_tests::process::{output_within, resolved_bin, Running, ATTACH_TIMEOUT};
use mptcpify_tests::testbed::{TwoPaths, PATHS};
use mptcpify_tests::transfer::{make_file, Receiver, Transfer};

const RATE_MBIT: u32 = 10;
/// An added or removed address gets its endpoint within this (the issue's
/// "within a second").
const FOLLOW_WITHIN: Duration = Duration::from_secs(1);
/// The kernel's delay before a link that came up is reported running.
const LINK_WATCH: Duration = Duration::from_secs(1);

/// mptcpify `args` run inside namespace `ns` (nsenter: unlike `ip netns
/// exec` it keeps /sys and its cgroup and BPF mounts as they are).
fn in_ns(ns: &str, args: &[&str]) -> Command {
    let mut command = Command::new("nsenter");
    command
        .arg(format!("--net=/run/netns/{ns}"))
        .arg(resolved_bin())
        .args(args);
    command
}

/// The same as user nobody, without capabilities.
fn as_nobody_in(ns: &str, args: &[&str]) -> Command {
    let mut command = Command::new("nsenter");
    command
        .arg(format!("--net=/run/netns/{ns}"))
        .args([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ])
        .arg(resolved_bin())
        .args(args);
    command
}

fn run_in(ns: &str, args: &[&str]) -> (i32, String) {
    let (status, out) = output_within(in_ns(ns, args), ATTACH_TIMEOUT);
    (status.code().unwrap_or(-1), out)
}

fn ok_in(ns: &str, args: &[&str]) -> String {
    let (code, out) = run_in(ns, args);
    assert_eq!(code, 0, "mptcpify {args:?} in {ns}:\n{out}");
    out
}

/// The bare testbed, with another tool's endpoint in the client
/// namespace, given an explicit id (42) as an administrator would.
fn with_another_tools_endpoint() -> TwoPaths {
    let bed = TwoPaths::bare();
    let add = [
        "mptcp",
        "endpoint",
        "add",
        "203.0.113.9",
        "id",
        "42",
        "signal",
    ];
    bed.ip(&bed.client, &add);
    bed
}

/// The endpoint line of `ip mptcp endpoint show` for `address`, if any.
fn endpoint_of(bed: &TwoPaths, ns: &str, address: &str) -> Option<String> {
    bed.ip(ns, &["mptcp", "endpoint", "show"])
        .lines()
        .find(|l| l.split_whitespace().next() == Some(address))
        .map(str::to_string)
}

/// Waits until `address` has an endpoint in `ns` (`present`) or none.
fn wait_endpoint(bed: &TwoPaths, ns: &str, address: &str, present: bool) -> Duration {
    let start = Instant::now();
    while endpoint_of(bed, ns, address).is_some() != present {
        assert!(
            start.elapsed() < (FOLLOW_WITHIN + LINK_WATCH) * 5,
            "{address} {} an endpoint after {:?}:\n{}",
            if present { "still has no" } else { "still has" },
            start.elapsed(),
            bed.path_manager(ns)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

/// `paths` says why there is one path; `paths auto` adds an endpoint per
/// usable address with `signal subflow` on its device and raises the
/// limits, leaving another tool's endpoint (explicit id 42) alone; a second
/// run changes nothing; `paths reset` leaves the path manager byte for byte
/// as it was, the other tool's endpoint included.
#[test]
fn auto_then_reset_restores_the_path_manager_byte_for_byte() {
    let bed = with_another_tools_endpoint();
    let ns = &bed.client;
    let before = bed.path_manager(ns);

    let shown = ok_in(ns, &["paths"]);
    assert!(shown.contains("up to 1 path"), "{shown}");
    assert!(
        shown.contains("usable addresses without an endpoint"),
        "{shown}"
    );
    assert!(shown.contains("(not mptcpify's)"), "{shown}");

    let out = ok_in(ns, &["paths", "auto"]);
    for path in &PATHS {
        let line = endpoint_of(&bed, ns, path.client_addr)
            .unwrap_or_else(|| panic!("no endpoint for {}:\n{out}", path.client_addr));
        assert!(
            line.contains("signal subflow") && line.contains(&format!("dev {}", path.client_dev)),
            "{line}"
        );
    }
    assert!(endpoint_of(&bed, ns, "203.0.113.9")
        .unwrap()
        .contains("id 42"));
    let limits = bed.ip(ns, &["mptcp", "limits", "show"]);
    assert!(
        limits.contains("subflows 3") && limits.contains("add_addr_accepted 3"),
        "{limits}"
    );
    assert!(out.contains("(mptcpify: paths auto)"), "{out}");

    let again = ok_in(ns, &["paths", "auto", "--json"]);
    let again: serde_json::Value = serde_json::from_str(again.lines().last().unwrap()).unwrap();
    assert_eq!(again["added"], serde_json::json!([]), "{again}");
    assert_eq!(again["limits"], serde_json::Value::Null, "{again}");

    let shown: serde_json::Value =
        serde_json::from_str(ok_in(ns, &["paths", "--json"]).lines().last().unwrap()).unwrap();
    assert_eq!(shown["verdict"]["paths"], 4, "{shown}");

    ok_in(ns, &["paths", "reset"]);
    assert_eq!(bed.path_manager(ns), before);
}

/// The refusals: each with its own exit code and nothing changed.
#[test]
fn bad_input_is_refused_with_nothing_changed() {
    let bed = TwoPaths::bare();
    let ns = &bed.client;
    let before = bed.path_manager(ns);

    // An unknown mode: clap's usage error.
    let (code, out) = run_in(ns, &["paths", "everything"]);
    assert_eq!(code, 2, "{out}");
    let (code, out) = run_in(ns, &["--comm", "x", "--paths", "all"]);
    assert_eq!(code, 2, "{out}");

    // Not root: reading works, changing is refused (3).
    let (status, out) = output_within(as_nobody_in(ns, &["paths", "auto"]), ATTACH_TIMEOUT);
    assert_eq!(status.code(), Some(3), "{out}");
    assert!(out.contains("CAP_NET_ADMIN"), "{out}");
    let (status, out) = output_within(as_nobody_in(ns, &["paths"]), ATTACH_TIMEOUT);
    assert_eq!(status.code(), Some(0), "{out}");

    // The userspace path manager (18).
    let sysctl = |value: &str| {
        // /proc/sys/net is the opener's namespace's.
        let out = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{ns}"))
            .args([
                "sh",
                "-c",
                &format!("echo {value} > /proc/sys/net/mptcp/pm_type"),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    sysctl("1");
    let (code, out) = run_in(ns, &["paths", "auto"]);
    sysctl("0");
    assert_eq!(code, 18, "{out}");
    assert!(out.contains("pm_type"), "{out}");

    // More usable addresses than the kernel uses (19), with the fix.
    for i in 10..17 {
        bed.ip(
            ns,
            &[
                "addr",
                "add",
                &format!("192.0.2.{i}/24"),
                "dev",
                PATHS[0].client_dev,
            ],
        );
    }
    let (code, out) = run_in(ns, &["paths", "auto"]);
    assert_eq!(code, 19, "{out}");
    assert!(
        out.contains("9 usable addresses") && out.contains("--interface"),
        "{out}"
    );
    assert_eq!(bed.path_manager(ns), before);
    // Choosing one interface is within the cap.
    ok_in(ns, &["paths", "auto", "--interface", PATHS[1].client_dev]);
    assert!(endpoint_of(&bed, ns, PATHS[1].client_addr).is_some());
    assert!(endpoint_of(&bed, ns, PATHS[0].client_addr).is_none());
    ok_in(ns, &["paths", "reset"]);
    assert_eq!(bed.path_manager(ns), before);
}

/// With `paths auto` on each host and nothing else configured, an iperf3
/// that only mptcpify upgrades joins a second subflow over the other link
/// (MP_JOIN counted on both sides). The throughput ratio is the bench's.
#[test]
fn two_links_with_paths_auto_and_no_other_configuration_join_a_second_subflow() {
    let bed = TwoPaths::bare();
    for path in 0..PATHS.len() {
        bed.shape(path, RATE_MBIT, 0);
    }
    bed.paths_auto();
    let _running = Running::attach(&["-q", "--comm", "iperf3"]);
    let (client_joins, server_joins) = (
        bed.counter(&bed.client, "MPTcpExtMPJoinSynAckRx"),
        bed.counter(&bed.server, "MPTcpExtMPJoinSynRx"),
    );
    let run = bed.iperf3(4, || {
        bed.wait_for_second_subflow(Duration::from_secs(20));
    });
    println!("paths auto, two links: {:.2} Mbit/s", run.mbit_per_s);
    assert!(bed.counter(&bed.client, "MPTcpExtMPJoinSynAckRx") > client_joins);
    assert!(bed.counter(&bed.server, "MPTcpExtMPJoinSynRx") > server_joins);
}

/// The same testbed: one link down mid-transfer loses nothing.
#[test]
fn failover_with_paths_auto_loses_nothing() {
    let bed = TwoPaths::bare();
    for path in 0..PATHS.len() {
        bed.shape(path, RATE_MBIT * 2, 0);
    }
    bed.paths_auto();
    let _running = Running::attach(&["-q", "--comm", "socat"]);
    let file = std::env::temp_dir().join(format!("mptcpify-paths-{}", std::process::id()));
    make_file(&file, 32 << 20);
    let mut transfer = Transfer::start(&bed, file.clone(), 5011, Receiver::Socat);
    transfer.wait_for_bytes(8 << 20, Duration::from_secs(240));
    bed.wait_for_second_subflow(Duration::from_secs(30));
    bed.set_link(0, false);
    let done = transfer.finish(Duration::from_secs(240));
    let _ = std::fs::remove_file(&file);
    assert_eq!(done.received, done.size);
    assert_eq!(done.checksums.0, done.checksums.1);
}

/// `--paths auto` on the upgrader: configured at attach; an address added
/// while attached gets its endpoint within a second, one deleted or on a
/// link taken down loses it; at SIGINT and SIGTERM the namespace is as it
/// was; after SIGKILL, `paths reset` cleans up from the record.
#[test]
fn the_upgrader_follows_addresses_and_restores_at_exit() {
    let bed = with_another_tools_endpoint();
    let ns = &bed.client;
    let before = bed.path_manager(ns);
    for (signal, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM")] {
        let mut running = Running::start(in_ns(
            ns,
            &["-q", "--json", "--comm", "x-none", "--paths", "auto"],
        ));
        running.wait_for("mptcpify: attached", ATTACH_TIMEOUT);
        for path in &PATHS {
            assert!(endpoint_of(&bed, ns, path.client_addr).is_some(), "{name}");
        }
        // `status` names who added each endpoint; `monitor` tells changes.
        let status = ok_in(ns, &["status"]);
        assert!(
            status.contains(&format!("(added by mptcpify: pid {})", running.pid())),
            "{status}"
        );
        let mut monitor = Running::start(in_ns(ns, &["monitor", "--json"]));
        monitor.wait_for("mptcpify: monitoring", ATTACH_TIMEOUT);
        // An address comes, and goes.
        bed.ip(
            ns,
            &["addr", "add", "192.0.2.77/24", "dev", PATHS[0].client_dev],
        );
        let took = wait_endpoint(&bed, ns, "192.0.2.77", true);
        println!("{name}: endpoint for an added address after {took:?}");
        assert!(took <= FOLLOW_WITHIN, "{took:?}");
        let said = r#""event":"path","#;
        let line = running.wait_for(r#""address":"192.0.2.77""#, Duration::from_secs(10));
        assert!(
            line.contains(said) && line.contains(r#""action":"added""#),
            "{line}"
        );
        let line = monitor.wait_for("192.0.2.77", Duration::from_secs(10));
        assert!(
            line.contains(said) && line.contains(r#""action":"added""#),
            "{line}"
        );
        drop(monitor);
        bed.ip(
            ns,
            &["addr", "del", "192.0.2.77/24", "dev", PATHS[0].client_dev],
        );
        let took = wait_endpoint(&bed, ns, "192.0.2.77", false);
        assert!(took <= FOLLOW_WITHIN, "{took:?}");
        // A link goes down, and up.
        bed.set_link(1, false);
        let took = wait_endpoint(&bed, ns, PATHS[1].client_addr, false);
        assert!(took <= FOLLOW_WITHIN, "{took:?}");
        // Up again: the kernel reports the link running (IFF_RUNNING) only
        // after its link watch runs, which batches non-urgent changes up to
        // a second (net/core/link_watch.c); the endpoint follows that.
        bed.set_link(1, true);
        let took = wait_endpoint(&bed, ns, PATHS[1].client_addr, true);
        println!("{name}: endpoint back after the link came up: {took:?}");
        assert!(took <= FOLLOW_WITHIN + LINK_WATCH, "{took:?}");
        assert!(endpoint_of(&bed, ns, "203.0.113.9")
            .unwrap()
            .contains("id 42"));
        running.signal(signal);
        let (status, output) = running.wait_timeout(Duration::from_secs(60));
        assert_eq!(status.code(), Some(0), "{name}: {output:?}");
        assert_eq!(bed.path_manager(ns), before, "after {name}");
    }
    let mut running = Running::start(in_ns(ns, &["-q", "--comm", "x-none", "--paths", "auto"]));
    running.wait_for("mptcpify: attached", ATTACH_TIMEOUT);
    running.signal(libc::SIGKILL);
    let _ = running.wait_timeout(Duration::from_secs(30));
    assert_ne!(bed.path_manager(ns), before, "SIGKILL leaves the endpoints");
    let out = ok_in(ns, &["paths", "reset"]);
    assert!(out.contains("removed"), "{out}");
    assert_eq!(
        bed.path_manager(ns),
        before,
        "after SIGKILL and paths reset"
    );
}

/// `--paths auto` with `--pin`: the endpoints stay with the pinned upgrade
/// after mptcpify exits, and `mptcpify detach NAME` (in the namespace)
/// removes them with it.
#[test]
fn pinned_endpoints_stay_until_detach() {
    let bed = TwoPaths::bare();
    let ns = &bed.client;
    let before = bed.path_manager(ns);
    let name = format!("paths{}", std::process::id());
    let mut running = Running::start(in_ns(
        ns,
        &["-q", "--comm", "x-none", "--paths", "auto", "--pin", &name],
    ));
    running.wait_for("mptcpify: attached", ATTACH_TIMEOUT);
    running.signal(libc::SIGINT);
    let (status, output) = running.wait_timeout(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "{output:?}");
    for path in &PATHS {
        let line = endpoint_of(&bed, ns, path.client_addr)
            .unwrap_or_else(|| panic!("{} lost its endpoint at exit", path.client_addr));
        assert!(line.contains("signal subflow"), "{line}");
    }
    let shown = ok_in(ns, &["paths"]);
    assert!(
        shown.contains(&format!("(mptcpify: pin {name})")),
        "{shown}"
    );
    let out = ok_in(ns, &["detach", &name]);
    assert!(out.contains("removed"), "{out}");
    assert_eq!(bed.path_manager(ns), before, "after detach");
}
