//! Under a real systemd (PID 1, D-Bus, nginx from Debian): the lab's systemd
//! image (`cargo xtask test` boots it; `cargo xtask vm --systemd`). The
//! tests run as a service of that systemd (mptcpify-lab.service), so they
//! see what a process started by systemd sees: a cgroup systemd owns.
//!
//! Whether a listener is MPTCP is read from the kernel: `ss -M` lists the
//! MPTCP sockets (mptcp_diag), whichever program made them.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mptcpify_tests::probe;
use mptcpify_tests::process;
use mptcpify_tests::shell::{require_systemd, sh, SYSTEMCTL_TIMEOUT};

/// Ports with an MPTCP listener, from the kernel (`ss -M`).
fn mptcp_listener_ports() -> Vec<u16> {
    let listing = sh("ss -H -M -l -n");
    let mut ports: Vec<u16> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .filter_map(|local| local.rsplit(':').next()?.parse().ok())
        .collect();
    ports.sort();
    ports.dedup();
    ports
}

fn nginx_is_mptcp() -> bool {
    mptcp_listener_ports().contains(&80)
}

/// nginx answers on port 80 (from a plain-TCP client: a fallback when the
/// listener is MPTCP, which must work just the same).
fn assert_nginx_serves() {
    sh("curl -sf -o /dev/null --max-time 20 http://127.0.0.1/");
}

fn unit_property(unit: &str, property: &str) -> String {
    sh(&format!("systemctl show -P {property} {unit}"))
        .trim()
        .to_string()
}

#[test]
fn run_puts_cmd_in_a_delegated_scope_of_its_own() {
    require_systemd();
    // Precondition, derived: this test's own cgroup is a service systemd did
    // not delegate, where making cgroups is not ours to do.
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let own_unit = own
        .trim()
        .rsplit('/')
        .next()
        .expect("a cgroup path")
        .to_string();
    assert_eq!(unit_property(&own_unit, "Delegate"), "no", "{own}");

    let script = format!(
        "cat /proc/self/cgroup; \
         scope=$(basename \"$(dirname \"$(cut -d: -f3 /proc/self/cgroup)\")\"); \
         echo \"scope=$scope delegate=$(systemctl show -P Delegate \"$scope\")\"; \
         exec '{}'",
        probe::path("socket-probe").display()
    );
    let (status, output) = process::output_within(
        process::command(&["run", "--", "sh", "-c", &script]),
        process::ATTACH_TIMEOUT,
    );
    assert!(status.success(), "{output}");
    let cgroup = output
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or_else(|| panic!("CMD printed no cgroup:\n{output}"));
    let parts: Vec<&str> = cgroup.rsplit('/').take(2).collect();
    let pid = parts[0]
        .strip_prefix("mptcpify-run-")
        .unwrap_or_else(|| panic!("CMD is not in mptcpify's cgroup: {cgroup}"));
    let scope = format!("mptcpify-run-{pid}.scope");
    assert_eq!(
        parts[1], scope,
        "CMD's cgroup is not inside a scope of its own (made inside {own_unit}?):\n{output}"
    );
    assert!(
        output.contains(&format!("scope={scope} delegate=yes")),
        "the scope is not delegated:\n{output}"
    );
    assert!(output.contains("protocol=262"), "{output}");
    // An empty scope is stopped and, with CollectMode, forgotten.
    let deadline = Instant::now() + Duration::from_secs(20);
    while unit_property(&scope, "LoadState") != "not-found" {
        assert!(
            Instant::now() < deadline,
            "{scope} is still loaded after mptcpify exited: {}",
            sh(&format!("systemctl status --no-pager {scope} || true"))
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_shipped_units_pass_systemd_analyze_verify() {
    require_systemd();
    let units = Path::new("/usr/local/lib/systemd/system");
    let mut checked = 0;
    for entry in std::fs::read_dir(units).expect("the units are installed") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("mptcpify") {
            continue;
        }
        // A template is verified through an instance of it.
        let target = match name.strip_suffix("@.service") {
            Some(stem) => format!("{stem}@nginx.service"),
            None => name.clone(),
        };
        let out = sh(&format!(
            "systemd-analyze verify --man=no {target} 2>&1; echo status=$?"
        ));
        assert!(
            out.trim_end().ends_with("status=0") && !out.contains(&name),
            "{name}:\n{out}"
        );
        checked += 1;
    }
    assert!(checked > 0, "no mptcpify unit in {}", units.display());
}

#[test]
fn mptcpify_at_nginx_upgrades_nginx_across_restarts_started_before_or_after_it() {
    require_systemd();
    let unit = "mptcpify@nginx.service";
    sh("systemctl stop mptcpify@nginx.service; systemctl restart nginx.service");
    assert!(
        !nginx_is_mptcp(),
        "nginx listens with MPTCP before mptcpify ran"
    );

    // Started after nginx: its running listeners stay what they are, its
    // restart gets MPTCP (the rule follows the re-created cgroup).
    sh(&format!("systemctl start {unit}"));
    assert_eq!(unit_property(unit, "ActiveState"), "active");
    assert!(
        unit_property(unit, "StatusText").starts_with("attached"),
        "READY came before the attach: {}",
        unit_property(unit, "StatusText")
    );
    assert!(!nginx_is_mptcp(), "an existing listener changed protocol");
    for restart in 1..=2 {
        sh("systemctl restart nginx.service");
        assert!(
            nginx_is_mptcp(),
            "nginx is TCP after restart {restart} under {unit}: {:?}",
            sh("ss -H -l -n -t -M")
        );
        assert_nginx_serves();
    }

    // Stopped: the next nginx is TCP again.
    sh(&format!("systemctl stop {unit}"));
    sh("systemctl restart nginx.service");
    assert!(!nginx_is_mptcp(), "nginx is MPTCP after {unit} stopped");
    assert_nginx_serves();

    // Started before nginx (as at boot: Before=nginx.service).
    sh("systemctl stop nginx.service");
    sh(&format!("systemctl start {unit}"));
    sh("systemctl start nginx.service");
    assert!(nginx_is_mptcp(), "nginx started after {unit} is TCP");
    assert_nginx_serves();

    // Under the unit's hardening mptcpify still reads every namespace's
    // MPTCP switch (CAP_SYSLOG kept): no fallback mode, no warning.
    let journal = sh(&format!("journalctl -b --no-pager -o cat -u {unit}"));
    assert!(!journal.contains("warning"), "{journal}");
    sh(&format!(
        "systemctl stop {unit}; systemctl restart nginx.service"
    ));
}

#[test]
fn enable_starts_mptcpify_with_the_service_and_disable_undoes_it() {
    require_systemd();
    let unit = "mptcpify@nginx.service";
    let drop_in = Path::new("/etc/systemd/system/nginx.service.d/50-mptcpify.conf");
    sh("systemctl restart nginx.service");

    let (status, said) =
        process::output_within(process::command(&["enable", "nginx"]), SYSTEMCTL_TIMEOUT);
    assert!(status.success(), "{said}");
    assert!(said.contains("systemctl restart nginx.service"), "{said}");
    assert_eq!(unit_property(unit, "ActiveState"), "active");
    assert_eq!(
        sh(&format!("systemctl is-enabled {unit}")).trim(),
        "enabled"
    );
    assert!(drop_in.is_file());
    assert!(!nginx_is_mptcp(), "a running listener changed protocol");
    sh("systemctl restart nginx.service");
    assert!(nginx_is_mptcp(), "nginx is TCP after its restart");
    assert_nginx_serves();

    // As at boot: starting nginx alone starts mptcpify first, in one
    // transaction (the drop-in's Wants=, the template's Before=).
    sh(&format!("systemctl stop nginx.service {unit}"));
    sh("systemctl start nginx.service");
    assert_eq!(unit_property(unit, "ActiveState"), "active");
    assert!(nginx_is_mptcp(), "nginx started alone is TCP");
    assert_nginx_serves();

    let (status, said) =
        process::output_within(process::command(&["disable", "nginx"]), SYSTEMCTL_TIMEOUT);
    assert!(status.success(), "{said}");
    assert_eq!(unit_property(unit, "ActiveState"), "inactive");
    assert!(!drop_in.exists());
    sh("systemctl restart nginx.service");
    assert!(!nginx_is_mptcp(), "nginx is MPTCP after disable");
    sh("systemctl stop nginx.service; systemctl start nginx.service");
    assert_eq!(unit_property(unit, "ActiveState"), "inactive");
    assert!(!nginx_is_mptcp());
}

/// mptcpify.service takes its policy from /etc/mptcpify/mptcpify.toml;
/// `systemctl reload` (Type=notify-reload: SIGHUP, then READY) moves it to
/// the edited file in place, without a restart; a file that does not load
/// leaves the policy in force and says so in the unit's status.
#[test]
fn mptcpify_service_reloads_its_policy_file_in_place() {
    require_systemd();
    let unit = "mptcpify.service";
    let file = Path::new("/etc/mptcpify/mptcpify.toml");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, "# upgrade nginx\nunit = [\"nginx\"]\n").unwrap();
    sh(&format!("systemctl start {unit}"));
    let pid = unit_property(unit, "MainPID");
    sh("systemctl restart nginx.service");
    assert!(nginx_is_mptcp(), "nginx is TCP under {unit}");
    assert_nginx_serves();

    std::fs::write(file, "comm = [\"no-such-program\"]\n").unwrap();
    sh(&format!("systemctl reload {unit}"));
    assert!(
        unit_property(unit, "StatusText").starts_with("reloaded"),
        "{}",
        unit_property(unit, "StatusText")
    );
    sh("systemctl restart nginx.service");
    assert!(
        !nginx_is_mptcp(),
        "nginx is still upgraded after the reload"
    );
    assert_nginx_serves();
    assert_eq!(
        unit_property(unit, "MainPID"),
        pid,
        "the reload restarted mptcpify"
    );

    std::fs::write(file, "unit = \"nginx\"\n").unwrap();
    sh(&format!("systemctl reload {unit}"));
    let status = unit_property(unit, "StatusText");
    assert!(status.starts_with("reload failed"), "{status}");
    assert!(status.contains("line 1"), "{status}");
    assert_eq!(unit_property(unit, "ActiveState"), "active");

    std::fs::write(file, "unit = [\"nginx\"]\n").unwrap();
    sh(&format!("systemctl reload {unit}"));
    sh("systemctl restart nginx.service");
    assert!(
        nginx_is_mptcp(),
        "nginx is TCP after reloading its policy back"
    );
    assert_eq!(unit_property(unit, "MainPID"), pid);

    sh(&format!(
        "systemctl stop {unit}; systemctl restart nginx.service"
    ));
    std::fs::remove_file(file).unwrap();
}

/// `mptcpify monitor` reaches an instance run by systemd under the units'
/// sandbox: it streams the upgrades of nginx's restart, and
/// ends when the unit stops.
#[test]
fn monitor_reaches_the_sandboxed_service() {
    require_systemd();
    let unit = "mptcpify@nginx.service";
    sh(&format!("systemctl start {unit}"));
    let mut monitor = process::Running::start(process::command(&["monitor", "--json"]));
    monitor.wait_for("mptcpify: monitoring program id", process::ATTACH_TIMEOUT);
    sh("systemctl restart nginx.service");
    let line = monitor.wait_for("\"event\":\"upgraded\"", Duration::from_secs(30));
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["comm"], "nginx", "{line}");
    sh(&format!("systemctl stop {unit}"));
    let (status, output) = monitor.wait();
    assert!(status.success(), "{output:?}");
    assert!(
        output
            .iter()
            .any(|l| l.contains("no instance left to monitor")),
        "{output:?}"
    );
    sh("systemctl restart nginx.service");
}

/// mptcpify.service with `--pin` (a drop-in): `systemctl restart` takes the
/// pinned upgrade over with no moment where a selected process gets TCP,
/// checked by a probe that makes sockets all through the restart; `systemctl
/// stop` leaves it attached, `mptcpify detach` ends it.
#[test]
fn a_pinned_service_survives_systemctl_restart_without_a_tcp_moment() {
    require_systemd();
    let unit = "mptcpify.service";
    let file = Path::new("/etc/mptcpify/mptcpify.toml");
    let drop_in = Path::new("/etc/systemd/system/mptcpify.service.d/50-pin.conf");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, "comm = [\"socket-probe\"]\n").unwrap();
    std::fs::create_dir_all(drop_in.parent().unwrap()).unwrap();
    std::fs::write(
        drop_in,
        "[Service]\nExecStart=\nExecStart=/usr/local/bin/mptcpify --config \
         /etc/mptcpify/mptcpify.toml -q --pin service\n",
    )
    .unwrap();
    sh(&format!("systemctl daemon-reload; systemctl start {unit}"));
    assert_eq!(probe::here(), "protocol=262");

    let stop = std::env::temp_dir().join("mptcpify-test-stop-probing");
    let _ = std::fs::remove_file(&stop);
    let mut probing = Command::new("sh")
        .args([
            "-c",
            &format!(
                "n=0; while [ ! -e '{}' ]; do '{}'; n=$((n+1)); done",
                stop.display(),
                probe::path("socket-probe").display()
            ),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    sh(&format!("systemctl restart {unit}"));
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(&stop, "").unwrap();
    let mut seen = String::new();
    std::io::Read::read_to_string(probing.stdout.as_mut().unwrap(), &mut seen).unwrap();
    probing.wait().unwrap();
    let results: Vec<&str> = seen
        .lines()
        .filter(|l| l.starts_with("protocol="))
        .collect();
    let tcp = results.iter().filter(|r| **r != "protocol=262").count();
    println!(
        "during the restart: {} probes, {tcp} not MPTCP",
        results.len()
    );
    assert!(results.len() >= 10, "too few probes to tell: {seen}");
    assert_eq!(
        tcp,
        0,
        "{tcp} of {} probes got TCP during the restart",
        results.len()
    );
    let journal = sh(&format!("journalctl -b --no-pager -o cat -u {unit}"));
    assert!(
        journal.contains("took over the upgrade pinned as service"),
        "{journal}"
    );

    sh(&format!("systemctl stop {unit}"));
    assert_eq!(
        probe::here(),
        "protocol=262",
        "the pin did not outlive the stop"
    );
    let (status, out) = process::run(&["detach", "service"]);
    assert!(status.success(), "{out}");
    assert_eq!(probe::here(), "protocol=6");

    std::fs::remove_file(drop_in).unwrap();
    std::fs::remove_file(file).unwrap();
    sh("systemctl daemon-reload");
}

/// README's drop-in for `--paths auto` (the `ini` block after "systemctl
/// edit mptcpify@nginx"), used as written: under the unit's sandbox
/// (`ProtectSystem=strict`; the record's directory is the unit's
/// `RuntimeDirectory=`) mptcpify adds an endpoint for an address that
/// exists and for one added while it runs, says who added them, and
/// `systemctl stop` leaves the path manager as it was.
#[test]
fn the_readme_drop_in_gives_mptcpify_at_nginx_paths_auto() {
    require_systemd();
    let readme = include_str!("../../README.md");
    let drop_in_text = readme
        .split("(`systemctl edit mptcpify@nginx`)")
        .nth(1)
        .and_then(|rest| rest.split("```ini\n").nth(1))
        .and_then(|block| block.split("```").next())
        .expect("README's --paths auto drop-in");
    sh("ip link add dum70 type dummy && ip addr add 192.0.2.70/24 dev dum70 && ip link set dum70 up");
    let before = sh("ip mptcp endpoint show; ip mptcp limits show");
    let unit = "mptcpify@nginx.service";
    let drop_in = Path::new("/etc/systemd/system/mptcpify@nginx.service.d/50-paths.conf");
    std::fs::create_dir_all(drop_in.parent().unwrap()).unwrap();
    std::fs::write(drop_in, drop_in_text).unwrap();
    let started = Command::new("sh")
        .args([
            "-c",
            &format!("systemctl daemon-reload; systemctl start {unit}"),
        ])
        .status()
        .unwrap();
    assert!(
        started.success(),
        "{unit} with README's drop-in did not start:\n{}",
        sh(&format!(
            "systemctl status --no-pager {unit}; journalctl -b --no-pager -o cat -u {unit}"
        ))
    );
    let has_endpoint = |address: &str| {
        sh("ip mptcp endpoint show")
            .lines()
            .any(|l| l.starts_with(&format!("{address} ")) && l.contains("signal subflow"))
    };
    assert!(
        has_endpoint("192.0.2.70"),
        "{}",
        sh("ip mptcp endpoint show; journalctl -b --no-pager -o cat -u mptcpify@nginx.service")
    );
    sh("ip addr add 192.0.2.71/24 dev dum70");
    let start = Instant::now();
    while !has_endpoint("192.0.2.71") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no endpoint for an address added while the unit runs:\n{}",
            sh("ip mptcp endpoint show; journalctl -b --no-pager -o cat -u mptcpify@nginx.service")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, out) = process::run(&["status"]);
    assert!(status.success(), "{out}");
    assert!(out.contains("(added by mptcpify: pid"), "{out}");
    sh(&format!("systemctl stop {unit}"));
    sh("ip addr del 192.0.2.71/24 dev dum70");
    assert_eq!(sh("ip mptcp endpoint show; ip mptcp limits show"), before);
    std::fs::remove_file(drop_in).unwrap();
    sh("systemctl daemon-reload; ip link del dum70");
}
