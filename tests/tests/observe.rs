//! What mptcpify tells the operator: socket options MPTCP refused on an
//! upgraded socket (with pid, option and errno), why a program's sockets
//! are or are not upgraded (`--explain`), and the JSON forms. Run as
//! root on a kernel with update_socket_protocol (the lab), with the tls
//! module loaded (so that kTLS works on TCP).

use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use mptcpify_tests::probe::{self, TempCgroup};
use mptcpify_tests::process::Running;
use mptcpify_tests::sockets::{self, as_comm, IPPROTO_MPTCP as MPTCP, IPPROTO_TCP as TCP};
use mptcpify_tests::testbed::{TwoPaths, PATHS};

const WAIT: Duration = Duration::from_secs(30);

/// A TCP socket (upgraded or not, as mptcpify decides) connected to `to`,
/// and the accepted end, kept open so that the socket stays established.
fn connected(to: &TcpListener) -> (OwnedFd, std::net::TcpStream) {
    // SAFETY: socket(2) with plain integers.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let std::net::SocketAddr::V4(addr) = to.local_addr().unwrap() else {
        panic!("an IPv4 listener")
    };
    let rc = connect(&fd, addr);
    assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
    (fd, to.accept().unwrap().0)
}

/// connect(2) of `fd` to `addr`: its return value.
fn connect(fd: &OwnedFd, addr: std::net::SocketAddrV4) -> libc::c_int {
    let sin = sockets::sockaddr_in(addr);
    // SAFETY: a valid sockaddr_in and its size.
    unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        )
    }
}

/// 127.0.0.1:`port`.
fn loopback(port: u16) -> std::net::SocketAddrV4 {
    std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, port)
}

/// setsockopt's errno, or 0 when it succeeded.
fn setsockopt(fd: &OwnedFd, level: i32, option: i32, value: &[u8]) -> i32 {
    // SAFETY: value is a valid buffer of the given length.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            option,
            value.as_ptr().cast(),
            value.len() as u32,
        )
    };
    if rc == 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap()
    }
}

/// A `struct tcp_md5sig` adding the key "abcd" for peer 127.0.0.1 (216
/// bytes: sockaddr_storage, flags, prefixlen, keylen, ifindex, key[80]).
fn md5_key() -> Vec<u8> {
    let mut value = vec![0u8; 216];
    value[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
    value[4..8].copy_from_slice(&[127, 0, 0, 1]);
    value[130..132].copy_from_slice(&4u16.to_ne_bytes());
    value[136..140].copy_from_slice(b"abcd");
    value
}

fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ENOPROTOOPT => "ENOPROTOOPT",
        other => panic!("MPTCP refused with errno {other}, neither EOPNOTSUPP nor ENOPROTOOPT"),
    }
}

/// What one thread saw: its tid, and per socket its protocol and the
/// errnos of TCP_ULP "tls" and TCP_MD5SIG.
#[derive(Debug)]
struct Seen {
    tid: i32,
    protocol: i32,
    ulp: i32,
    md5: i32,
}

fn try_options(listener: &TcpListener) -> Seen {
    let (fd, _peer) = connected(listener);
    Seen {
        // SAFETY: gettid has no preconditions.
        tid: unsafe { libc::gettid() },
        protocol: sockets::protocol_of(&fd),
        ulp: setsockopt(&fd, libc::SOL_TCP, libc::TCP_ULP, b"tls"),
        md5: setsockopt(&fd, libc::SOL_TCP, libc::TCP_MD5SIG, &md5_key()),
    }
}

#[test]
fn options_mptcp_refuses_are_reported_with_pid_option_and_errno() {
    assert!(
        std::path::Path::new("/sys/module/tls").exists(),
        "the tls module is not loaded (the lab loads it at boot)"
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let listener = std::sync::Arc::new(listener);
    // -q: refused options are said even when upgrades are not.
    let running = Running::attach(&["-q", "--comm", "opt-probe"]);

    // The same calls on a TCP socket succeed: what MPTCP refuses, TCP had.
    let plain = listener.clone();
    let tcp = as_comm("opt-plain", move || try_options(&plain));
    assert_eq!((tcp.protocol, tcp.ulp, tcp.md5), (TCP, 0, 0), "{tcp:?}");

    let upgraded = listener.clone();
    let mptcp = as_comm("opt-probe", move || try_options(&upgraded));
    assert_eq!(mptcp.protocol, MPTCP, "{mptcp:?}");
    assert_ne!(mptcp.ulp, 0, "MPTCP accepted TCP_ULP: {mptcp:?}");
    assert_ne!(mptcp.md5, 0, "MPTCP accepted TCP_MD5SIG: {mptcp:?}");

    let mut running = running;
    let pid = std::process::id();
    for (option, errno) in [("TCP_ULP", mptcp.ulp), ("TCP_MD5SIG", mptcp.md5)] {
        let line = running.wait_for(&format!("mptcp refused setsockopt {option} "), WAIT);
        for needle in [
            format!("({})", errno_name(errno)),
            format!("pid={pid} tid={}", mptcp.tid),
            "comm=opt-probe".into(),
            "--exclude-comm opt-probe".into(),
        ] {
            assert!(line.contains(&needle), "{needle:?} not in: {line}");
        }
    }
    running.signal(libc::SIGINT);
    let (status, output) = running.wait();
    assert_eq!(status.code(), Some(0), "{output:?}");
    let refused = output
        .iter()
        .find(|l| l.contains("socket option calls refused by mptcp"))
        .unwrap_or_else(|| panic!("no count of refused options: {output:?}"));
    assert!(refused.contains(" 2 socket option"), "{refused}");
    // Counted by option too, as the summary and /metrics tell them.
    let by_option = output
        .iter()
        .find(|l| l.contains("refused options by option:"))
        .unwrap_or_else(|| panic!("no refused options by option: {output:?}"));
    for needle in ["TCP_ULP 1", "TCP_MD5SIG 1"] {
        assert!(by_option.contains(needle), "{needle:?} not in: {by_option}");
    }
    assert!(
        !output.iter().any(|l| l.contains("opt-plain")),
        "a TCP socket's options were reported: {output:?}"
    );
}

#[test]
fn json_lines_have_the_documented_fields() {
    let running = Running::attach(&["--json", "--comm", "json-probe"]);
    let (tid, before, after) = as_comm("json-probe", || {
        let before = std::time::SystemTime::now();
        assert_eq!(sockets::new_tcp_protocol(), MPTCP);
        let after = std::time::SystemTime::now();
        // SAFETY: gettid has no preconditions.
        (unsafe { libc::gettid() }, before, after)
    });
    let mut running = running;
    running.wait_for("\"event\":\"upgraded\"", WAIT);
    running.signal(libc::SIGINT);
    let (status, output) = running.wait();
    assert_eq!(status.code(), Some(0), "{output:?}");
    let objects: Vec<serde_json::Value> = output
        .iter()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let kinds: Vec<&str> = objects.iter().filter_map(|o| o["event"].as_str()).collect();
    assert_eq!(
        kinds,
        ["attached", "upgraded", "closed", "detached"],
        "{output:?}"
    );
    let [attached, upgraded, closed, detached] = &objects[..] else {
        unreachable!()
    };
    // The probe's socket was closed without connecting: said in the name
    // of the thread that created it.
    assert_eq!(closed["outcome"], "unconnected", "{closed}");
    assert_eq!(closed["extra_subflows"], 0, "{closed}");
    assert_eq!(closed["pid"], std::process::id());
    assert_eq!(closed["tid"], tid);
    assert_eq!(closed["comm"], "json-probe");
    assert_eq!(detached["counters"]["closed_unconnected"], 1, "{detached}");
    assert!(attached["policy"]
        .as_str()
        .unwrap()
        .contains("comm json-probe"));
    assert_eq!(upgraded["pid"], std::process::id());
    assert_eq!(upgraded["tid"], tid);
    assert_eq!(upgraded["comm"], "json-probe");
    assert_eq!(upgraded["family"], "ipv4");
    // With --json the program stamps each event when it happens
    // (flag::STAMP), not the reader when it reads it (up to 50 ms later).
    let stamped = humantime::parse_rfc3339(upgraded["time"].as_str().expect("a time")).unwrap();
    let slack = Duration::from_millis(1);
    assert!(
        before - slack <= stamped && stamped <= after + slack,
        "upgraded at {stamped:?}, the socket was created between {before:?} and {after:?}"
    );
    for object in &objects {
        let time = object["time"].as_str().expect("a time");
        assert!(time.ends_with('Z') && time.contains('T'), "{time}");
    }
    assert_eq!(detached["counters"]["upgraded"], 1, "{detached}");
    assert_eq!(detached["counters"]["dropped_events"], 0, "{detached}");
    assert!(detached["tcp_sockets"].as_u64().unwrap() >= 1);
    // The kernel's count of calls made without the upgrader.
    assert!(detached["skipped_calls"].is_u64(), "{detached}");
}

/// An MPTCP listener and a connection to it, both made by a thread named
/// `comm` (so a `--comm` instance upgrades them), kept open.
fn mptcp_pair(comm: &str) -> (TcpListener, std::net::TcpStream, std::net::TcpStream) {
    as_comm(comm, || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        assert_eq!(sockets::protocol_of(&listener), MPTCP);
        assert_eq!(sockets::protocol_of(&client), MPTCP);
        (listener, client, server)
    })
}

/// Runs `ip ARGS` and fails the test when it fails.
fn ip(args: &str) {
    let status = std::process::Command::new("ip")
        .args(args.split(' '))
        .status()
        .unwrap();
    assert!(status.success(), "ip {args}");
}

#[test]
fn status_from_another_process_shows_the_instance_path_manager_and_connections() {
    ip("mptcp endpoint flush");
    ip("mptcp endpoint add 127.0.0.2 id 7 signal");
    ip("mptcp limits set subflow 3 add_addr_accepted 2");
    let running = Running::attach(&["-q", "--comm", "status-probe"]);
    let (listener, client, _server) = mptcp_pair("status-probe");
    // A client of ours to a plain TCP listener: MPTCP that fell back.
    let plain = TcpListener::bind("127.0.0.1:0").unwrap();
    let plain_addr = plain.local_addr().unwrap();
    let fallback = as_comm("status-probe", move || {
        std::net::TcpStream::connect(plain_addr).unwrap()
    });
    let _plain_server = plain.accept().unwrap();

    let (status, out) = mptcpify_tests::process::output_within(
        mptcpify_tests::process::command(&["status", "--json"]),
        mptcpify_tests::process::ATTACH_TIMEOUT,
    );
    assert!(status.success(), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(out.lines().last().unwrap()).unwrap_or_else(|e| panic!("{e}: {out}"));
    ip("mptcp endpoint flush");
    ip("mptcp limits set subflow 2 add_addr_accepted 0");

    assert_eq!(json["event"], "status");
    assert_eq!(json["kernel"]["hook"], true, "{json}");
    assert_eq!(json["kernel"]["trampolines"], true, "{json}");
    assert_eq!(json["kernel"]["mptcp_enabled"], true, "{json}");

    let pm = &json["path_manager"];
    assert_eq!(pm["limits"]["subflows"], 3, "{pm}");
    assert_eq!(pm["limits"]["add_addr_accepted"], 2, "{pm}");
    let endpoints = pm["endpoints"].as_array().unwrap();
    assert!(
        endpoints.iter().any(|e| e["id"] == 7
            && e["address"] == "127.0.0.2"
            && e["flags"] == serde_json::json!(["signal"])),
        "{pm}"
    );

    let ours = json["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| {
            i["holders"].as_array().unwrap().iter().any(|h| {
                h["pid"] == running.pid()
                    && h["command"]
                        .as_str()
                        .unwrap()
                        .contains("--comm status-probe")
            })
        })
        .unwrap_or_else(|| panic!("mptcpify pid {} not listed: {json}", running.pid()));
    // The listener, its client, and the client that fell back.
    assert_eq!(ours["counters"]["upgraded"], 3, "{ours}");
    assert!(ours["skipped_calls"].is_u64(), "{ours}");

    let connections = json["connections"].as_array().unwrap();
    let pid = std::process::id();
    let port = |addr: &serde_json::Value| {
        addr.as_str()
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse::<u16>().ok())
    };
    let find = |local: u16, peer: u16| {
        connections
            .iter()
            .find(|c| port(&c["local"]) == Some(local) && port(&c["peer"]) == Some(peer))
            .unwrap_or_else(|| panic!("no MPTCP socket {local} -> {peer}: {json}"))
    };
    let client_local = client.local_addr().unwrap().port();
    let server_port = listener.local_addr().unwrap().port();
    let upgraded = find(client_local, server_port);
    assert_eq!(upgraded["fallback"], false, "{upgraded}");
    assert!(
        upgraded["processes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p[1] == pid),
        "{upgraded}"
    );
    let fell_back = find(fallback.local_addr().unwrap().port(), plain_addr.port());
    assert_eq!(fell_back["fallback"], true, "{fell_back}");
}

/// `mptcpify audit` changes nothing, and names the options MPTCP would
/// refuse, per process name: TCP_ULP and TCP_MD5SIG (which work on these
/// TCP sockets) make one process "would break"; TCP_NODELAY alone is safe.
#[test]
fn audit_names_the_options_mptcp_would_refuse_and_changes_nothing() {
    let listener = std::sync::Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
    let mut running = Running::start(mptcpify_tests::process::command(&[
        "audit",
        "--comm",
        "audit-probe",
        "--comm",
        "audit-safe",
    ]));
    running.wait_for(
        "nothing is changed",
        mptcpify_tests::process::ATTACH_TIMEOUT,
    );

    let risky = listener.clone();
    let seen = as_comm("audit-probe", move || try_options(&risky));
    assert_eq!(
        (seen.protocol, seen.ulp, seen.md5),
        (TCP, 0, 0),
        "the audit changed the socket or its options: {seen:?}"
    );
    let safe = listener.clone();
    let protocol = as_comm("audit-safe", move || {
        let (fd, _peer) = connected(&safe);
        assert_eq!(
            setsockopt(&fd, libc::SOL_TCP, libc::TCP_NODELAY, &1i32.to_ne_bytes()),
            0
        );
        sockets::protocol_of(&fd)
    });
    assert_eq!(protocol, TCP);

    running.wait_for("audit-probe (pid", WAIT);
    running.wait_for("sets TCP_NODELAY", WAIT);
    running.signal(libc::SIGINT);
    let (status, output) = running.wait();
    assert_eq!(status.code(), Some(0), "{output:?}");
    let verdict = |comm: &str| {
        output
            .iter()
            .find(|l| l.trim_start().starts_with(&format!("{comm}: ")))
            .unwrap_or_else(|| panic!("no verdict for {comm}: {output:#?}"))
            .clone()
    };
    let risky = verdict("audit-probe");
    assert!(risky.contains("would break on TCP_ULP"), "{risky}");
    assert!(risky.contains("TCP_MD5SIG"), "{risky}");
    assert!(risky.contains("1 TCP socket would be MPTCP"), "{risky}");
    assert!(risky.contains("--exclude-comm audit-probe"), "{risky}");
    let safe = verdict("audit-safe");
    assert!(safe.contains("safe to upgrade"), "{safe}");
    assert!(safe.contains("TCP_NODELAY"), "{safe}");
}

/// `--explain NAME` says, for every TCP socket() of that program, what
/// decided it: the selector that selected or excluded it, or the guard that
/// kept TCP. Said with -q too; other programs get no such line.
#[test]
fn explain_says_what_decided_each_socket() {
    let selected = TempCgroup::new("mptcpify-test-explain");
    let excluded = TempCgroup::new("mptcpify-test-explain/excluded");
    let (selected_path, excluded_path) = (
        selected.0.display().to_string(),
        excluded.0.display().to_string(),
    );
    let mut running = Running::attach(&[
        "-q",
        "--cgroup",
        &selected_path,
        "--exclude-cgroup",
        &excluded_path,
        "--explain",
        "socket-probe",
    ]);
    running.wait_for("explaining every TCP socket() of: socket-probe", WAIT);

    assert_eq!(probe::in_cgroup(&selected.0), "protocol=262");
    running.wait_for(
        "comm=socket-probe family=ipv4: upgraded (selected by --cgroup/--unit)",
        WAIT,
    );
    assert_eq!(probe::in_cgroup(&excluded.0), "protocol=6");
    running.wait_for(
        "comm=socket-probe family=ipv4: kept tcp: excluded by --exclude-cgroup",
        WAIT,
    );
    assert_eq!(probe::here(), "protocol=6");
    running.wait_for(
        "comm=socket-probe family=ipv4: kept tcp: not selected",
        WAIT,
    );
    // Selected, in a namespace where MPTCP is off: the guard decides.
    let script = format!(
        "echo $$ > '{selected_path}/cgroup.procs' && exec unshare -n sh -c \
         'echo 0 > /proc/sys/net/mptcp/enabled && exec {}'",
        probe::path("socket-probe").display()
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert_eq!(probe::result(&out), "protocol=6");
    running.wait_for(
        "comm=socket-probe family=ipv4: kept tcp: net.mptcp.enabled is 0",
        WAIT,
    );
    // Not asked about (its name is socket-probe-st): upgraded, unexplained.
    let script = format!(
        "echo $$ > '{selected_path}/cgroup.procs' && exec '{}'",
        probe::path("socket-probe-static").display()
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert_eq!(probe::result(&out), "protocol=262");
    running.signal(libc::SIGINT);
    let (status, output) = running.wait();
    assert_eq!(status.code(), Some(0), "{output:?}");
    let explained: Vec<&String> = output
        .iter()
        .filter(|l| l.starts_with("explain "))
        .collect();
    assert_eq!(explained.len(), 4, "{explained:?}");
    assert!(
        explained.iter().all(|l| l.contains("comm=socket-probe ")),
        "{explained:?}"
    );
}

/// The numbers of mptcpify's outcome line ("N upgraded: a MPTCP (s extra
/// subflows), b fell back to TCP, c listener, d never connected, e still
/// open"), in that order.
fn outcome_numbers(output: &[String]) -> Vec<u64> {
    let line = output
        .iter()
        .find(|l| l.contains(" upgraded: ") && l.ends_with("still open"))
        .unwrap_or_else(|| panic!("no outcome line in {output:?}"));
    line.split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().unwrap())
        .collect()
}

/// MPTCP sockets the kernel lists (`ss -Ma`: listeners and connections).
fn mptcp_sockets_listed() -> u64 {
    let out = std::process::Command::new("ss")
        .args(["-MaH"])
        .output()
        .expect("running ss");
    assert!(out.status.success(), "ss -MaH: {out:?}");
    String::from_utf8_lossy(&out.stdout).lines().count() as u64
}

/// Sockets upgraded from the first instant mptcpify's program runs (a loop
/// of probes started before it, each making one socket and exiting) all
/// have an outcome at detach: upgraded = the outcomes + still open, and
/// "still open" is what the kernel still has (here one listener, which
/// `ss -M` lists), not a difference of counters.
#[test]
fn every_upgrade_from_the_first_instant_has_its_outcome_at_detach() {
    let dir = std::env::temp_dir().join(format!("early-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stop = dir.join("stop");
    let script = format!(
        "while [ ! -e '{}' ]; do '{}' >/dev/null; done",
        stop.display(),
        probe::path("socket-probe").display()
    );
    let mut looping = std::process::Command::new("sh")
        .args(["-c", &script])
        .spawn()
        .expect("starting the probe loop");
    let running = Running::attach(&["-q", "--comm", "socket-probe"]);
    std::thread::sleep(Duration::from_secs(2));
    // One upgraded socket that outlives mptcpify: a listener.
    let listener = as_comm("socket-probe", || TcpListener::bind("127.0.0.1:0").unwrap());
    assert_eq!(sockets::protocol_of(&listener), MPTCP);
    std::fs::write(&stop, "").unwrap();
    assert!(looping.wait().unwrap().success());
    let listed = mptcp_sockets_listed();
    running.signal(libc::SIGINT);
    let (status, output) = running.wait();
    assert!(status.success(), "{output:?}");
    drop(listener);
    let _ = std::fs::remove_dir_all(&dir);
    let n = outcome_numbers(&output);
    let (upgraded, mptcp, fell_back, listeners, unconnected, open) =
        (n[0], n[1], n[3], n[4], n[5], n[6]);
    assert!(upgraded > 1, "the loop made no upgraded socket: {output:?}");
    assert_eq!(open, listed, "still open vs what ss -M lists: {output:?}");
    assert_eq!(
        upgraded,
        mptcp + fell_back + listeners + unconnected + open,
        "every upgraded socket has an outcome or is open: {output:?}"
    );
}

/// A non-blocking TCP socket (upgraded or not, as mptcpify decides) bound
/// to 127.0.0.1:`port`.
fn bound_nonblocking(port: u16) -> OwnedFd {
    // SAFETY: socket(2) with plain integers.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    // SAFETY: a valid option and its size.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&one as *const libc::c_int).cast(),
            4,
        )
    };
    let sin = sockets::sockaddr_in(loopback(port));
    // SAFETY: a valid sockaddr_in and its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        )
    };
    assert_eq!(rc, 0, "bind :{port}: {}", std::io::Error::last_os_error());
    fd
}

/// Detaches `running` (`--json`): its output, and the JSON objects in it.
fn detached_json(running: Running) -> (Vec<String>, Vec<serde_json::Value>) {
    running.signal(libc::SIGINT);
    let (status, output) = running.wait();
    assert!(status.success(), "{output:?}");
    let objects = output
        .iter()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (output, objects)
}

/// A fallback is told with the kernel's reason where the kernel says it
/// (a function `__mptcp_try_fallback` that is passed the reason, 6.17+;
/// derived from kallsyms), and at close either way: two upgraded sockets
/// that connect to each other at the same moment (a TCP simultaneous
/// open, which MPTCP does not do: the kernel falls back, counting
/// `SimultConnectFallback`), in a network namespace whose loopback delays
/// each packet, so that both SYNs are in flight at once.
#[test]
fn a_simultaneous_connect_falls_back_and_says_why_where_the_kernel_does() {
    let kallsyms = std::fs::read_to_string("/proc/kallsyms").unwrap();
    let says_why = kallsyms
        .lines()
        .any(|l| l.ends_with(" __mptcp_try_fallback"));
    let netns = probe::TempNetns::new("simult");
    let run = |command: &str| {
        let status = std::process::Command::new("ip")
            .args(["netns", "exec", &netns.0])
            .args(command.split(' '))
            .status()
            .unwrap();
        assert!(status.success(), "{command}");
    };
    run("ip link set lo up");
    run("tc qdisc add dev lo root netem delay 200ms");
    let running = Running::attach(&["--json", "--comm", "simult"]);
    let path = netns.path();
    let protocols = as_comm("simult", move || {
        let ns = std::fs::File::open(&path).unwrap();
        // SAFETY: a namespace file; this thread alone moves.
        assert_eq!(
            unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        let (a, b) = (bound_nonblocking(40001), bound_nonblocking(40002));
        for (from, to) in [(&a, 40002), (&b, 40001)] {
            let rc = connect(from, loopback(to));
            let errno = std::io::Error::last_os_error().raw_os_error();
            assert!(
                rc == 0 || errno == Some(libc::EINPROGRESS),
                "connect: {errno:?}"
            );
        }
        for fd in [&a, &b] {
            let mut poll = libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            assert_eq!(
                unsafe { libc::poll(&mut poll, 1, 10_000) },
                1,
                "not connected"
            );
            let mut error: libc::c_int = 0;
            let mut len = 4;
            // SAFETY: a valid option buffer and its size.
            unsafe {
                libc::getsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_ERROR,
                    (&mut error as *mut libc::c_int).cast(),
                    &mut len,
                )
            };
            assert_eq!(error, 0, "the simultaneous open failed");
        }
        (sockets::protocol_of(&a), sockets::protocol_of(&b))
    });
    assert_eq!(protocols, (MPTCP, MPTCP), "both sockets upgraded");
    std::thread::sleep(Duration::from_millis(300));
    let (output, objects) = detached_json(running);
    let closed: Vec<_> = objects.iter().filter(|o| o["event"] == "closed").collect();
    assert_eq!(closed.len(), 2, "{output:?}");
    let fallbacks: Vec<_> = objects
        .iter()
        .filter(|o| o["event"] == "fallback")
        .collect();
    for event in &closed {
        assert_eq!(event["outcome"], "fallback", "{event}");
        if says_why {
            assert_eq!(event["reason"], "SimultConnectFallback", "{event}");
        } else {
            assert!(event.get("reason").is_none(), "{event}");
        }
    }
    if says_why {
        assert_eq!(fallbacks.len(), 2, "{output:?}");
        for event in &fallbacks {
            assert_eq!(event["reason"], "SimultConnectFallback", "{event}");
            assert_eq!(event["comm"], "simult", "{event}");
        }
    } else {
        assert!(fallbacks.is_empty(), "{output:?}");
    }
    let detached = objects.last().unwrap();
    assert_eq!(detached["counters"]["closed_fallback"], 2, "{detached}");
    // Counted by when and why, as status and /metrics tell them.
    let reason = if says_why {
        "SimultConnectFallback"
    } else {
        "unknown"
    };
    assert_eq!(
        detached["fallbacks"],
        serde_json::json!([{"when": "at_connect", "reason": reason, "connections": 2}]),
        "{detached}"
    );
}

/// A connection that falls back after it was established is told as such,
/// on both ends, with the kernel's reason where the kernel says it
/// (6.17+), and the namespaces' own counters agree: a client and a server,
/// both upgraded, in two namespaces joined by a veth pair, exchange data
/// over MPTCP; then a middlebox (tc's pedit on the client's veth) rewrites
/// MPTCP's option (kind 30) in the client's packets into an unknown kind
/// of the same length, which TCP ignores. The server gets data without a
/// mapping and falls back (net/mptcp/subflow.c, subflow_check_data_avail():
/// `MAPPING_INVALID`, counted `DssFallback`); its answer carries no mapping
/// either, so the client falls back too. Over loopback this cannot be
/// shown: the receiver is handed the sender's own mapping with the packet
/// (the skb extension; a veth scrubs it, net/core/skbuff.c
/// skb_scrub_packet()).
#[test]
fn a_fallback_after_established_is_told_on_both_ends_with_its_reason() {
    let kallsyms = std::fs::read_to_string("/proc/kallsyms").unwrap();
    let says_why = kallsyms
        .lines()
        .any(|l| l.ends_with(" __mptcp_try_fallback"));
    // No endpoint: one subflow, as an extra one would forbid the fallback
    // (RFC 8684 3.7: only a single-subflow connection may fall back).
    let bed = TwoPaths::bare();
    let path = &PATHS[0];
    let dev = path.client_dev;
    let server_addr = format!("{}:40003", path.server_addr);
    bed.ip(&bed.client, &["link", "set", "lo", "up"]);
    let tc = |args: &str| {
        let status = bed
            .exec(&bed.client, "tc")
            .args(args.split_whitespace())
            .status()
            .unwrap();
        assert!(status.success(), "tc {args}");
    };
    tc(&format!("qdisc add dev {dev} clsact"));
    let running = Running::attach(&["--json", "--comm", "later"]);
    let namespaces = (
        format!("/run/netns/{}", bed.server),
        format!("/run/netns/{}", bed.client),
    );
    let (listener, mut client, mut server, protocols) = as_comm("later", move || {
        let enter = |path: &str| {
            let ns = std::fs::File::open(path).unwrap();
            // SAFETY: a namespace file; this thread alone moves.
            assert_eq!(
                unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
                0
            );
        };
        // A socket stays in the namespace it was made in.
        enter(&namespaces.0);
        let listener = TcpListener::bind(&server_addr).unwrap();
        enter(&namespaces.1);
        let client = std::net::TcpStream::connect(&server_addr).unwrap();
        let (server, _) = listener.accept().unwrap();
        let protocols = (
            sockets::protocol_of(&listener),
            sockets::protocol_of(&client),
            sockets::protocol_of(&server),
        );
        (listener, client, server, protocols)
    });
    assert_eq!(protocols, (MPTCP, MPTCP, MPTCP), "all three upgraded");
    let mut echo = |word: &[u8]| {
        use std::io::{Read, Write};
        let mut got = vec![0u8; word.len()];
        client.write_all(word).unwrap();
        server.read_exact(&mut got).unwrap();
        server.write_all(&got).unwrap();
        client.read_exact(&mut got).unwrap();
        got
    };
    let mut echoed = vec![echo(b"over MPTCP")];
    // The client's packets to the server whose TCP options hold MPTCP's
    // option where an established connection's data and acknowledgements
    // have it: after NOP, NOP and the timestamps, at the IP header's 20
    // bytes plus TCP's 20 plus 12 (net/ipv4/tcp_output.c,
    // tcp_options_write(): MPTCP's options last). Kind 30 becomes 253
    // (RFC 4727's experimental kind).
    tc(&format!(
        "filter add dev {dev} egress protocol ip prio 1 u32 \
         match ip dport 40003 0xffff match u8 0x1e 0xff at 52 \
         action pedit munge offset 52 u8 set 0xfd"
    ));
    echoed.push(echo(b"through the middlebox"));
    echoed.push(echo(b"and after"));
    assert_eq!(
        echoed,
        [&b"over MPTCP"[..], b"through the middlebox", b"and after"],
        "the connection carried on as TCP"
    );
    drop((client, server, listener));
    std::thread::sleep(Duration::from_millis(300));
    let (output, objects) = detached_json(running);
    let reason = says_why.then_some("DssFallback");
    for role in ["created", "accepted"] {
        let closed: Vec<_> = objects
            .iter()
            .filter(|o| o["event"] == "closed" && o["role"] == role && o["outcome"] != "listener")
            .collect();
        assert_eq!(closed.len(), 1, "{role}: {output:?}");
        assert_eq!(closed[0]["outcome"], "fell_back_later", "{}", closed[0]);
        assert_eq!(closed[0]["reason"].as_str(), reason, "{}", closed[0]);
    }
    let fallbacks: Vec<_> = objects
        .iter()
        .filter(|o| o["event"] == "fallback")
        .collect();
    if says_why {
        assert_eq!(fallbacks.len(), 2, "{output:?}");
        for event in &fallbacks {
            assert_eq!(event["reason"], "DssFallback", "{event}");
            assert_eq!(event["comm"], "later", "{event}");
        }
        // The kernel counted the same, once in each namespace.
        for ns in [&bed.client, &bed.server] {
            assert_eq!(bed.counter(ns, "MPTcpExtDssFallback"), 1, "{ns}");
        }
    } else {
        assert!(fallbacks.is_empty(), "{output:?}");
    }
    let detached = objects.last().unwrap();
    assert_eq!(
        detached["counters"]["closed_fell_back_later"], 1,
        "{detached}"
    );
    assert_eq!(
        detached["counters"]["closed_accepted_fell_back_later"], 1,
        "{detached}"
    );
    assert_eq!(
        detached["fallbacks"],
        serde_json::json!([{
            "when": "after_established",
            "reason": reason.unwrap_or("unknown"),
            "connections": 2
        }]),
        "{detached}"
    );
}
