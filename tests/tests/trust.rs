//! mptcpify must never weaken what the host relies on: a process's own
//! Landlock sandbox, and the namespace guard that keeps socket() working
//! where MPTCP is off, which mptcpify proves on the running kernel before it
//! attaches. Run as root on a kernel with update_socket_protocol.

use std::net::TcpListener;
use std::process::Command;

use mptcpify_tests::cgroup_bpf::Foreign;
use mptcpify_tests::probe::{self, TempCgroup, TempNetns};
use mptcpify_tests::process::{self, counter, output_within, Running, ATTACH_TIMEOUT};
use mptcpify_tests::sockets::{as_comm, new_tcp_protocol, IPPROTO_MPTCP, IPPROTO_TCP};

/// What `landlocked-probe` printed, as (sandbox, protocol, connect).
fn landlocked_probe(port: u16, extra: &[&str]) -> (String, String, String) {
    let out = Command::new(probe::tool("landlocked-probe"))
        .arg(port.to_string())
        .args(extra)
        .output()
        .expect("running landlocked-probe");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("landlocked-probe printed no {key}: {out:?}"))
            .to_string()
    };
    (field("sandbox="), field("protocol="), field("connect="))
}

/// A process that forbade itself every TCP connect must get EACCES with
/// mptcpify attached system-wide, as without it. On kernels whose Landlock
/// does not check MPTCP (landlock-lsm/linux#54: found out here by the probe
/// asking for MPTCP itself) an upgraded socket would connect, so such a
/// process must keep TCP, counted and said in its event line.
#[test]
fn a_landlock_sandbox_holds_under_mptcpify() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let eacces = format!("errno {}", libc::EACCES);

    let (sandbox, protocol, connect) = landlocked_probe(port, &[]);
    assert_eq!(sandbox, "full", "this kernel's Landlock has no TCP rules");
    assert_eq!(
        (protocol.as_str(), connect.as_str()),
        ("6", eacces.as_str())
    );
    let (_, protocol, mptcp_connect) = landlocked_probe(port, &["mptcp"]);
    assert_eq!(protocol, "262");
    let landlock_misses_mptcp = mptcp_connect == "ok";
    eprintln!(
        "this kernel's Landlock covers MPTCP: {}",
        !landlock_misses_mptcp
    );

    let mut running = Running::attach(&["--all"]);
    let says_kept = running
        .output
        .iter()
        .any(|l| l.contains("Landlock-sandboxed processes keep TCP"));
    assert_eq!(says_kept, landlock_misses_mptcp, "{:?}", running.output);
    let (_, protocol, connect) = landlocked_probe(port, &[]);
    assert_eq!(
        connect, eacces,
        "the sandbox was bypassed (protocol={protocol})"
    );
    if landlock_misses_mptcp {
        assert_eq!(protocol, "6");
        let line = running.wait_for("kept tcp (sandboxed", ATTACH_TIMEOUT);
        assert!(line.contains("comm=landlocked-prob "), "{line}");
    }
    // Not sandboxed: still upgraded.
    assert_eq!(probe::here(), "protocol=262");
    running.signal(libc::SIGINT);
    let (status, output) = running.wait();
    assert_eq!(status.code(), Some(0), "{output:?}");
    if landlock_misses_mptcp {
        assert!(
            counter(&output, "kept tcp: sandboxed (Landlock)") >= 1,
            "{output:?}"
        );
    }
}

/// Another tool's `cgroup/sock_create` filter that refuses TCP sockets sees
/// an upgraded socket as protocol 262 and would let it through: a process
/// under such a program must keep TCP (counted and said in its event line),
/// so the filter refuses it as without mptcpify. A `cgroup/connect4`
/// program still applies to an upgraded socket: its first subflow is a TCP
/// socket in the same cgroup.
#[test]
fn other_tools_cgroup_programs_hold_under_mptcpify() {
    let filtered = TempCgroup::new("mptcpify-test-sock-filter");
    let no_connect = TempCgroup::new("mptcpify-test-connect-filter");
    let _filter = Foreign::DenyTcpSockets.attach(&filtered.0);
    let _connect = Foreign::DenyConnect4.attach(&no_connect.0);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let refused = format!("errno={}", libc::EPERM);
    let connect_refused = format!("connect=errno {}", libc::EPERM);

    assert_eq!(probe::in_cgroup(&filtered.0), refused);
    assert_eq!(
        probe::in_cgroup_printing(&no_connect.0, &["connect", &port]),
        format!("protocol=6\n{connect_refused}")
    );
    let mut running = Running::attach(&["--all"]);
    assert_eq!(
        probe::in_cgroup(&filtered.0),
        refused,
        "the sock_create filter was bypassed"
    );
    let line = running.wait_for("kept tcp (cgroup sock_create", ATTACH_TIMEOUT);
    assert!(line.contains("comm=socket-probe "), "{line}");
    assert_eq!(
        probe::in_cgroup_printing(&no_connect.0, &["connect", &port]),
        format!("protocol=262\n{connect_refused}"),
        "the connect4 program was bypassed"
    );
    // Elsewhere: still upgraded.
    assert_eq!(probe::here(), "protocol=262");
    running.signal(libc::SIGINT);
    let (status, output) = running.wait();
    assert_eq!(status.code(), Some(0), "{output:?}");
    assert_eq!(
        counter(&output, "kept tcp: a cgroup sock_create program applies"),
        1,
        "{output:?}"
    );
}

/// A guard that reads the wrong byte (here: the top byte of the pointer that
/// starts `struct mptcp_pernet`, always 0xff) must be caught by the start-up
/// self-check: its own exit code, and nothing attached.
#[test]
fn a_guard_reading_the_wrong_byte_is_refused() {
    let mut command = process::command(&["-q", "--all"]);
    command.env("MPTCPIFY_FAULT_GUARD_OFFSET", "7");
    let (status, out) = output_within(command, ATTACH_TIMEOUT);
    assert_eq!(status.code(), Some(10), "{out}");
    assert!(out.contains("self-check failed"), "{out}");
    assert!(
        out.contains("namespace guard reads net.mptcp.enabled wrongly"),
        "{out}"
    );
    assert!(!out.contains("mptcpify: attached"), "{out}");
    assert_eq!(probe::here(), "protocol=6");
}

/// A sysctl set for one test, restored on drop.
struct Sysctl {
    path: String,
    old: String,
}

impl Sysctl {
    fn set(name: &str, value: &str) -> Sysctl {
        let path = format!("/proc/sys/{}", name.replace('.', "/"));
        let old = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        std::fs::write(&path, value).unwrap_or_else(|e| panic!("writing {path}: {e}"));
        Sysctl { path, old }
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.path, self.old.trim());
    }
}

/// With kallsyms addresses hidden (kptr_restrict = 2) the program cannot
/// read other namespaces' MPTCP switch: mptcpify says why (not "kernel
/// lacks CONFIG_KALLSYMS_ALL") and upgrades only where it read the setting
/// itself: its own namespace and each `--netns` with MPTCP on.
#[test]
fn hidden_kallsyms_fall_back_safely_and_say_why() {
    let _hidden = Sysctl::set("kernel.kptr_restrict", "2");
    let on = TempNetns::new("fbon");
    let off = TempNetns::new("fboff");
    let disabled = Command::new("ip")
        .args(["netns", "exec", &off.0, "sh", "-c"])
        .arg("echo 0 > /proc/sys/net/mptcp/enabled")
        .status()
        .unwrap();
    assert!(disabled.success());
    let running = Running::attach(&[
        "-q",
        "--netns",
        &on.path(),
        "--netns",
        &off.path(),
        "--netns",
        "self",
    ]);
    let said = running.output.join("\n");
    assert!(said.contains("kptr_restrict = 2"), "{said}");
    assert!(!said.contains("CONFIG_KALLSYMS_ALL"), "{said}");
    assert!(
        said.contains(&format!("net.mptcp.enabled is 0 in --netns {}", off.path())),
        "{said}"
    );
    assert_eq!(probe::in_netns(&on.0), "protocol=262");
    assert_eq!(probe::in_netns(&off.0), "protocol=6");
    assert_eq!(probe::here(), "protocol=262");
    drop(running);

    // System-wide: a namespace mptcpify did not check keeps TCP.
    let _running = Running::attach(&["-q", "--all"]);
    assert_eq!(probe::here(), "protocol=262");
    let fresh = Command::new("unshare")
        .arg("-n")
        .arg(probe::path("socket-probe"))
        .output()
        .unwrap();
    assert_eq!(probe::result(&fresh), "protocol=6");
}

/// Writes `value` to `net.mptcp.enabled` in the named namespace, or in this
/// process's own one (`None`), as Red Hat's guide disables MPTCP.
fn set_mptcp_enabled(netns: Option<&str>, value: &str) {
    const SWITCH: &str = "/proc/sys/net/mptcp/enabled";
    match netns {
        Some(name) => {
            let write = format!("echo {value} > {SWITCH}");
            let status = Command::new("ip")
                .args(["netns", "exec", name, "sh", "-c", &write])
                .status()
                .unwrap();
            assert!(status.success(), "{write} in {name}");
        }
        None => std::fs::write(SWITCH, value).unwrap_or_else(|e| panic!("writing {SWITCH}: {e}")),
    }
}

/// In the fallback mode (kallsyms hidden), MPTCP switched off by its sysctl
/// after mptcpify started must take effect before the next `socket()`: in
/// mptcpify's own namespace and in a `--netns` one, a selected process gets
/// TCP, never a failed `socket()`, and MPTCP again once it is switched back
/// on. Checked also while a thread creates sockets without pause across
/// 1 → 0 → 1: not one call may fail.
#[test]
fn fallback_mode_follows_mptcp_switched_off_and_on_by_sysctl() {
    let _hidden = Sysctl::set("kernel.kptr_restrict", "2");
    let _restore = Sysctl::set("net.mptcp.enabled", "1");
    let x = TempNetns::new("fbsw");
    let running = Running::attach(&["-q", "--netns", "self", "--netns", &x.path()]);
    assert!(
        running.output.join("\n").contains("kptr_restrict = 2"),
        "not the fallback mode: {:?}",
        running.output
    );
    for netns in [None, Some(x.0.as_str())] {
        let probe = || match netns {
            Some(name) => probe::in_netns(name),
            None => probe::here(),
        };
        assert_eq!(probe(), "protocol=262", "{netns:?} before");
        set_mptcp_enabled(netns, "0");
        assert_eq!(probe(), "protocol=6", "{netns:?} with MPTCP off");
        set_mptcp_enabled(netns, "1");
        assert_eq!(probe(), "protocol=262", "{netns:?} with MPTCP on again");
    }

    drop(running);
    sockets_keep_working_while_mptcp_flips("the fallback mode");
}

/// With mptcpify attached system-wide, a thread creates sockets without
/// pause while this one flips `net.mptcp.enabled` 1 → 0 → 1 → 0 → 1 in
/// their namespace. A `socket()` may only fail when it overlaps a write:
/// the upgrader read MPTCP on, then the write landed before the kernel
/// created the MPTCP socket (`mptcp_init_sock` checks the switch again,
/// net/mptcp/protocol.c), a race the hook's design leaves to every mode.
/// Every call that starts after a write has returned gets the switch's
/// new value, and after the last one sockets are MPTCP again.
fn sockets_keep_working_while_mptcp_flips(mode: &str) {
    use std::time::{Duration, Instant};
    let _restore = Sysctl::set("net.mptcp.enabled", "1");
    let running = Running::attach(&["-q", "--all"]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let creator = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut seen, mut failed) = (std::collections::BTreeMap::new(), Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let started = Instant::now();
                match mptcpify_tests::sockets::create(
                    mptcpify_tests::sockets::AF_INET,
                    mptcpify_tests::sockets::SOCK_STREAM,
                    0,
                ) {
                    mptcpify_tests::sockets::Outcome::Protocol(p) => {
                        *seen.entry(p).or_insert(0u64) += 1
                    }
                    mptcpify_tests::sockets::Outcome::Errno(e) => failed.push((started, e)),
                }
            }
            (seen, failed)
        })
    };
    let mut writes = Vec::new();
    for value in ["0", "1", "0", "1"] {
        std::thread::sleep(Duration::from_millis(300));
        let before = Instant::now();
        set_mptcp_enabled(None, value);
        writes.push((before, Instant::now()));
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (seen, failed) = creator.join().unwrap();
    eprintln!(
        "{mode}: sockets made while MPTCP flipped: {seen:?}; failed, all during a write: {}",
        failed.len()
    );
    for (started, errno) in &failed {
        assert!(
            writes
                .iter()
                .any(|(before, after)| started < after
                    && *started + Duration::from_millis(50) > *before),
            "{mode}: a socket() that started outside every write failed (errno {errno}); \
             made: {seen:?}"
        );
    }
    assert!(
        seen.get(&6).is_some_and(|&n| n > 0),
        "{mode}: no TCP while off: {seen:?}"
    );
    assert_eq!(
        probe::here(),
        "protocol=262",
        "{mode}: MPTCP again after the flips"
    );
    drop(running);
}

/// The same flips in the normal mode, where the upgrader reads the switch
/// itself from the start.
#[test]
fn sockets_keep_working_while_mptcp_flips_in_the_normal_mode() {
    sockets_keep_working_while_mptcp_flips("the normal mode");
}

/// `--comm` names a process: a worker thread that renamed itself (tokio's
/// `tokio-runtime-w`, Java, Go) is matched by its process's name, for
/// inclusion and exclusion alike.
#[test]
fn comm_matches_renamed_threads_by_their_process_name() {
    let process = std::fs::read_to_string("/proc/self/comm").unwrap();
    let process = process.trim();
    let worker = || as_comm("tokio-runtime-w", new_tcp_protocol);

    let running = Running::attach(&["-q", "--comm", process]);
    assert_eq!(worker(), IPPROTO_MPTCP, "--comm {process}");
    assert_eq!(probe::here(), "protocol=6");
    drop(running);

    let _running = Running::attach(&["-q", "--all", "--exclude-comm", process]);
    assert_eq!(worker(), IPPROTO_TCP, "--exclude-comm {process}");
    assert_eq!(probe::here(), "protocol=262");
}

/// A service restart removes its cgroup and creates a new one with a new
/// id: the rule follows the path (in the kernel, before any process can
/// join), and the same path made in a cgroup v1 hierarchy (hybrid hosts'
/// name=systemd) does not take the rule over.
#[test]
fn cgroup_rules_follow_their_path_across_recreation() {
    let name = format!("mptest-web-{}", std::process::id());
    let web = TempCgroup::new(&name);
    let _running = Running::attach(&["-q", "--cgroup", &name]);
    assert_eq!(probe::in_cgroup(&web.0), "protocol=262");
    for round in 0..2 {
        std::fs::remove_dir(&web.0).unwrap();
        std::fs::create_dir(&web.0).unwrap();
        assert_eq!(
            probe::in_cgroup(&web.0),
            "protocol=262",
            "after re-creation {round}"
        );
    }
    let v1 = CgroupV1::mount();
    std::fs::create_dir(v1.0.join(&name)).unwrap();
    assert_eq!(probe::in_cgroup(&web.0), "protocol=262", "after a v1 mkdir");
    assert_eq!(probe::here(), "protocol=6");
}

/// A named cgroup v1 hierarchy, unmounted on drop.
struct CgroupV1(std::path::PathBuf);

impl CgroupV1 {
    fn mount() -> CgroupV1 {
        let dir = std::env::temp_dir().join(format!("mptest-v1-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "cgroup", "-o", "none,name=mptest", "cgroup"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mounting a cgroup v1 hierarchy at {}", dir.display());
        CgroupV1(dir)
    }
}

impl Drop for CgroupV1 {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "find '{0}' -mindepth 1 -depth -type d -exec rmdir {{}} \\; ; umount '{0}' && rmdir '{0}'",
                self.0.display()
            ))
            .status();
    }
}

/// A stand-in for systemd, for `--unit` resolution where the lab has no
/// systemd: /run/systemd/system exists and `systemctl show` answers for
/// one unit. (Real systemd is tested with the systemd lab image.)
struct FakeSystemd {
    bin: std::path::PathBuf,
    made_run_dir: bool,
}

impl FakeSystemd {
    fn with_unit(unit: &str, slice: &str) -> FakeSystemd {
        let bin = std::env::temp_dir().join(format!("mptest-systemd-{}", std::process::id()));
        std::fs::create_dir_all(&bin).unwrap();
        let script = format!(
            "#!/bin/sh\n# systemctl show --property=LoadState,ControlGroup,Slice -- UNIT\n\
             case \"$4\" in\n  {unit}) printf 'LoadState=loaded\\nControlGroup=\\nSlice={slice}\\n' ;;\n  \
             *) printf 'LoadState=not-found\\nControlGroup=\\nSlice=\\n' ;;\nesac\n"
        );
        let path = bin.join("systemctl");
        std::fs::write(&path, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let made_run_dir = !std::path::Path::new("/run/systemd/system").exists();
        std::fs::create_dir_all("/run/systemd/system").unwrap();
        FakeSystemd { bin, made_run_dir }
    }

    fn mptcpify(&self, args: &[&str]) -> Command {
        let mut command = process::command(args);
        let path = std::env::var("PATH").unwrap_or_default();
        command.env("PATH", format!("{}:{path}", self.bin.display()));
        command
    }
}

impl Drop for FakeSystemd {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.bin);
        if self.made_run_dir {
            let _ = std::fs::remove_dir("/run/systemd/system");
            let _ = std::fs::remove_dir("/run/systemd");
        }
    }
}

/// mptcpify can start before the service (a boot-time unit): `--unit`
/// resolves where systemd will put the unit (its Slice=), and its sockets
/// are upgraded from the moment the cgroup exists, across restarts. A unit
/// systemd does not know is refused (exit 8).
#[test]
fn unit_started_after_mptcpify_is_followed() {
    let id = std::process::id();
    let unit = format!("later{id}.service");
    let slice = format!("mptest{id}.slice");
    let systemd = FakeSystemd::with_unit(&unit, &slice);

    let (status, out) = output_within(systemd.mptcpify(&["--unit", "nosuch"]), ATTACH_TIMEOUT);
    assert_eq!(status.code(), Some(8), "{out}");
    assert!(out.contains("systemd has no unit nosuch.service"), "{out}");

    let mut running = Running::start(systemd.mptcpify(&["-q", "--unit", &format!("later{id}")]));
    let attached = running.wait_for("mptcpify: attached", ATTACH_TIMEOUT);
    assert!(attached.contains("(from when it is created)"), "{attached}");
    assert!(attached.contains(&format!("{slice}/{unit}")), "{attached}");
    let service = TempCgroup::new(&format!("{slice}/{unit}"));
    assert_eq!(probe::in_cgroup(&service.0), "protocol=262");
    std::fs::remove_dir(&service.0).unwrap();
    std::fs::create_dir(&service.0).unwrap();
    assert_eq!(
        probe::in_cgroup(&service.0),
        "protocol=262",
        "after a restart"
    );
    let slice_dir = TempCgroup(service.0.parent().unwrap().to_path_buf());
    drop(service);
    drop(slice_dir);
}

/// `--pid P` selects the process P was, not whatever later gets P: a probe
/// forced onto the same pid (through kernel.ns_last_pid) after the selected
/// process exited keeps TCP.
#[test]
fn pid_selection_does_not_carry_over_to_a_reused_pid() {
    let mut chosen = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = chosen.id();
    let _running = Running::attach(&["-q", "--pid", &pid.to_string()]);
    let _ = chosen.kill();
    let _ = chosen.wait();
    for _ in 0..20 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).unwrap();
        let script = format!("exec '{}' pid", probe::path("socket-probe").display());
        let reused = Command::new("sh")
            .args(["-c", &script])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let got = reused.id();
        let out = reused.wait_with_output().unwrap();
        if got == pid {
            assert_eq!(probe::result(&out), "protocol=6", "pid {pid} reused");
            return;
        }
    }
    panic!("could not get pid {pid} again through ns_last_pid");
}

/// Two instances: one that only includes may join another that only
/// includes (sidecars); one with exclusions, or a system-wide one, is
/// refused with its own exit code, since a socket is MPTCP when any
/// instance upgrades it.
#[test]
fn a_second_instance_that_would_override_exclusions_is_refused() {
    let _first = Running::attach(&["-q", "--comm", "first-only"]);
    let (status, out) = process::run(&["-q", "--all", "--exclude-comm", "sshd"]);
    assert_eq!(status.code(), Some(11), "{out}");
    assert!(out.contains("another mptcpify is attached"), "{out}");
    assert!(out.contains("--allow-other-instances"), "{out}");
    assert!(!out.contains("mptcpify: attached"), "{out}");

    let second = Running::attach(&["-q", "--comm", "second-only"]);
    assert!(
        second
            .output
            .iter()
            .any(|l| l.contains("another mptcpify is attached")),
        "{:?}",
        second.output
    );
    let worker = |name: &'static str| as_comm(name, new_tcp_protocol);
    assert_eq!(worker("first-only"), IPPROTO_MPTCP);
    assert_eq!(worker("second-only"), IPPROTO_MPTCP);
    assert_eq!(worker("neither"), IPPROTO_TCP);
}

/// `--netns /run/netns/NAME` follows its path: after `ip netns del NAME`
/// and `ip netns add NAME`, the new namespace is selected (within
/// mptcpify's polling interval, said on a line of its own).
#[test]
fn netns_rule_follows_its_path_across_recreation() {
    let ns = TempNetns::new("mpfollow");
    let mut running = Running::attach(&["-q", "--netns", &ns.path()]);
    assert_eq!(probe::in_netns(&ns.0), "protocol=262");
    for step in [["del", &ns.0], ["add", &ns.0]] {
        let ok = Command::new("ip").arg("netns").args(step).status().unwrap();
        assert!(ok.success(), "ip netns {step:?}");
    }
    running.wait_for("names a new namespace", std::time::Duration::from_secs(10));
    assert_eq!(probe::in_netns(&ns.0), "protocol=262");
    assert_eq!(probe::here(), "protocol=6");
}

/// A namespace selected by a /proc path dies with its process; a new,
/// unselected namespace that gets the same inode number (the kernel reuses
/// them) must not be upgraded: rules are keyed by the namespace cookie.
#[test]
fn a_new_namespace_reusing_a_selected_ones_inode_is_not_selected() {
    use std::os::unix::fs::MetadataExt;
    let mut holder = Command::new("unshare")
        .args(["-n", "sleep", "60"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let path = format!("/proc/{}/ns/net", holder.id());
    let inode = std::fs::metadata(&path).unwrap().ino();
    let _running = Running::attach(&["-q", "--netns", &path]);
    let _ = holder.kill();
    let _ = holder.wait();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut same_inode = false;
    for attempt in 0..5 {
        let name = format!("mpreuse{attempt}");
        let ns = TempNetns::new(&name);
        same_inode = std::fs::metadata(ns.path()).unwrap().ino() == inode;
        assert_eq!(
            probe::in_netns(&ns.0),
            "protocol=6",
            "inode reused: {same_inode}"
        );
        if same_inode {
            break;
        }
    }
    eprintln!("a new namespace got the selected one's inode {inode}: {same_inode}");
}
