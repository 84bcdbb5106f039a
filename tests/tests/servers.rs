//! Servers: the connections an upgraded listener accepts are counted and
//! reported, MPTCP clients apart from plain TCP ones, in the name of the
//! accepting thread, with their ends; the MPTCP ones are told again when
//! they close. Checked against the kernel's own MPTCP counters. Run as root
//! on a kernel with update_socket_protocol (the lab).

use std::net::TcpListener;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use mptcpify_tests::probe;
use mptcpify_tests::process::{command, rss_kb, Running};
use mptcpify_tests::shell::http_get;
use mptcpify_tests::sockets::{self, as_comm, IPPROTO_MPTCP as MPTCP};

const WAIT: Duration = Duration::from_secs(60);
/// Clients of each kind, each its own process.
const CLIENTS: usize = 100;
/// Clients started at once.
const BATCH: usize = 10;

/// The kernel's MPTCP counter `name` of this network namespace
/// (`/proc/net/netstat`, the `MPTcpExt:` pair of lines).
fn mptcp_mib(name: &str) -> u64 {
    let netstat = std::fs::read_to_string("/proc/net/netstat").expect("reading /proc/net/netstat");
    let mut lines = netstat.lines().filter(|l| l.starts_with("MPTcpExt:"));
    let (names, values) = (lines.next(), lines.next());
    let (Some(names), Some(values)) = (names, values) else {
        panic!("/proc/net/netstat has no MPTcpExt lines: is MPTCP built in?\n{netstat}");
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no MPTCP counter {name} in {names}"))
        .1
        .parse()
        .unwrap()
}

/// Runs `count` clients `probe connect PORT`, `BATCH` at a time; each
/// prints its socket's protocol and `connect=ok`, which is checked. Returns
/// how many got MPTCP: all of a selected probe's, but for a `socket()` the
/// kernel ran without the upgrader (its program was still running on that
/// CPU in a preempted task: the `skipped_calls` of the exit summary).
fn clients(probe: &str, port: u16, count: usize) -> usize {
    let mut mptcp = 0;
    let path = probe::path(probe);
    for batch in 0..count.div_ceil(BATCH) {
        let children: Vec<_> = (0..BATCH.min(count - batch * BATCH))
            .map(|_| {
                Command::new(&path)
                    .args(["connect", &port.to_string()])
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap_or_else(|e| panic!("starting {}: {e}", path.display()))
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            let printed = String::from_utf8_lossy(&out.stdout);
            assert!(printed.contains("connect=ok"), "{probe}: {printed}");
            if printed.contains(&format!("protocol={MPTCP}")) {
                mptcp += 1;
            } else {
                assert!(printed.contains("protocol=6"), "{probe}: {printed}");
            }
        }
    }
    mptcp
}

/// `mptcpify --json --comm NAME...`, attached, its output kept quiet.
fn attached_selecting(comms: &[&str]) -> Running {
    let mut args = vec!["--json"];
    for comm in comms {
        args.extend(["--comm", comm]);
    }
    let mut running = Running::start_quietly(command(&args));
    running.wait_for("mptcpify: attached", WAIT);
    running
}

fn json_objects(output: &[String]) -> Vec<serde_json::Value> {
    output
        .iter()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// A selected server accepts, in one run, connections from selected
/// clients (MPTCP) and from unselected ones (plain TCP), each client its own
/// process: every connection is an `accepted` event of the right kind, in
/// the accepting thread's name and with the client's port, the counters are
/// exact, the MPTCP ones equal the kernel's count of MPTCP connections
/// accepted, and each MPTCP connection is told closed as `accepted`.
#[test]
fn accepted_connections_are_counted_by_client_kind_and_attributed_to_the_acceptor() {
    let running = attached_selecting(&["acceptor", "socket-probe"]);
    let passive_before = mptcp_mib("MPCapableACKRX");

    let (port_tx, port_rx) = mpsc::channel();
    let server = std::thread::spawn(move || {
        as_comm("acceptor", move || {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            assert_eq!(sockets::protocol_of(&listener), MPTCP);
            port_tx.send(listener.local_addr().unwrap().port()).unwrap();
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() };
            let mut peers: Vec<u16> = (0..2 * CLIENTS)
                .map(|_| listener.accept().expect("accept").1.port())
                .collect();
            peers.sort_unstable();
            (tid, peers)
        })
    });
    let port = port_rx.recv_timeout(WAIT).expect("the server's port");
    // `socket-probe` is selected: its sockets are MPTCP. `socket-probe-static`
    // (comm `socket-probe-st`) is not: plain TCP clients.
    let mptcp_clients = clients("socket-probe", port, CLIENTS);
    assert_eq!(clients("socket-probe-static", port, CLIENTS), 0);
    let tcp_clients = 2 * CLIENTS - mptcp_clients;
    let (tid, peers) = server.join().expect("the server");
    let passive = mptcp_mib("MPCapableACKRX") - passive_before;
    // Events are read every 50 ms; the closes come when the server's ends
    // are dropped, which they are.
    std::thread::sleep(Duration::from_millis(500));
    running.signal(libc::SIGINT);
    let (status, output) = running.wait();
    assert_eq!(status.code(), Some(0), "{output:?}");

    let objects = json_objects(&output);
    let of = |event: &str| -> Vec<&serde_json::Value> {
        objects.iter().filter(|o| o["event"] == event).collect()
    };
    let detached = of("detached");
    let detached = *detached.last().expect("a detached object");
    let counters = &detached["counters"];
    let counter = |key: &str| {
        counters[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key}: {counters}")) as usize
    };
    // Calls the kernel ran without a program (a task preempted inside it
    // on that CPU, on the preemptible kernels from 6.18): said, and
    // accounted for below; none on 6.12.
    let missed = |function: &str| detached["missed_calls"][function].as_u64().unwrap_or(0) as usize;
    let (accepts_missed, closes_missed) = (missed("mptcp_stream_accept"), missed("mptcp_close"));
    eprintln!("missed calls: {}", detached["missed_calls"]);
    assert_eq!(counter("dropped_events"), 0, "{counters}");

    let accepted = of("accepted");
    let count = |outcome: &str| accepted.iter().filter(|o| o["outcome"] == outcome).count();
    // Events and counters agree, and with the clients: each connection
    // accepted is told as the kind its client was, or its accept was missed.
    assert_eq!(
        (count("mptcp"), count("tcp")),
        (counter("accepted_mptcp"), counter("accepted_tcp")),
        "accepted events vs counters"
    );
    assert!(count("mptcp") <= mptcp_clients && count("tcp") <= tcp_clients);
    assert_eq!(count("mptcp") + count("tcp") + accepts_missed, 2 * CLIENTS);
    // The kernel counts each MPTCP connection accepted (net/mptcp/protocol.c,
    // MPTCP_MIB_MPCAPABLEPASSIVEACK, "MPCapableACKRX", in the accept path).
    assert_eq!(passive, mptcp_clients as u64, "MPCapableACKRX");
    for event in &accepted {
        assert_eq!(event["pid"], std::process::id(), "{event}");
        assert_eq!(event["tid"], tid, "{event}");
        assert_eq!(event["comm"], "acceptor", "{event}");
        assert_eq!(event["family"], "ipv4", "{event}");
        assert_eq!(event["local_address"], "127.0.0.1", "{event}");
        assert_eq!(event["local_port"], port, "{event}");
        assert_eq!(event["remote_address"], "127.0.0.1", "{event}");
    }
    // The clients' ports, as accept() gave them (a port may come back for a
    // later client: compared as sorted lists).
    let mut reported: Vec<u16> = accepted
        .iter()
        .map(|o| o["remote_port"].as_u64().unwrap() as u16)
        .collect();
    reported.sort_unstable();
    if accepts_missed == 0 {
        assert_eq!(reported, peers, "the clients' ports");
    } else {
        assert!(
            reported.iter().all(|p| peers.contains(p)),
            "{reported:?} vs {peers:?}"
        );
    }

    // Each MPTCP connection accepted is told closed, as accepted, in the
    // acceptor's name.
    let closed = of("closed");
    let closed_accepted: Vec<_> = closed.iter().filter(|o| o["role"] == "accepted").collect();
    assert_eq!(closed_accepted.len(), counter("closed_accepted"));
    assert!(closed_accepted.len() <= count("mptcp"));
    assert!(closed_accepted.len() + closes_missed >= count("mptcp"));
    for event in &closed_accepted {
        assert_eq!(event["outcome"], "mptcp", "{event}");
        assert_eq!(event["comm"], "acceptor", "{event}");
        assert_eq!(event["tid"], tid, "{event}");
    }
    // The selected clients' own sockets: created, MPTCP.
    let created_mptcp = closed
        .iter()
        .filter(|o| o["role"] == "created" && o["comm"] == "socket-probe")
        .filter(|o| o["outcome"] == "mptcp")
        .count();
    // A socket the tag program missed (mptcp_init_sock) is never told closed.
    let tags_missed = missed("mptcp_init_sock");
    let created: Vec<String> = closed
        .iter()
        .filter(|o| o["role"] == "created" && o["comm"] == "socket-probe")
        .map(|o| o["outcome"].to_string())
        .collect();
    assert!(created_mptcp <= mptcp_clients);
    assert!(
        created_mptcp + closes_missed + tags_missed >= mptcp_clients,
        "{mptcp_clients} MPTCP clients; their closes: {created:?}; missed: {}",
        detached["missed_calls"]
    );
    // Every selected client got MPTCP but for a socket() the kernel skipped.
    let skipped = detached["skipped_calls"].as_u64().unwrap_or(0) as usize;
    assert!(mptcp_clients + skipped >= CLIENTS, "{detached}");

    // Per selector: the acceptor's listener and what it accepted; the
    // selected clients' sockets and how they closed.
    let rows = detached["selectors"]
        .as_array()
        .unwrap_or_else(|| panic!("no selectors: {detached}"));
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["selector"] == name)
            .unwrap_or_else(|| panic!("no selector {name:?}: {rows:?}"))
    };
    let number = |r: &serde_json::Value, key: &str| r[key].as_u64().unwrap() as usize;
    assert_eq!(rows.len(), 2, "one row per selector: {rows:?}");
    let acceptor = row("comm acceptor");
    assert_eq!(number(acceptor, "upgraded"), 1, "the listener: {acceptor}");
    assert_eq!(
        (
            number(acceptor, "accepted_mptcp"),
            number(acceptor, "accepted_tcp")
        ),
        (count("mptcp"), count("tcp")),
        "{acceptor}"
    );
    let probes = row("comm socket-probe");
    assert!(number(probes, "upgraded") <= mptcp_clients, "{probes}");
    assert!(
        number(probes, "upgraded") + tags_missed >= mptcp_clients,
        "{probes}"
    );
    assert_eq!(number(probes, "closed_mptcp"), created_mptcp, "{probes}");
    assert_eq!(
        (
            number(probes, "accepted_mptcp"),
            number(probes, "accepted_tcp")
        ),
        (0, 0)
    );
    for name in ["comm acceptor", "comm socket-probe"] {
        assert!(
            output
                .iter()
                .any(|l| l.starts_with(&format!("mptcpify: by selector: {name}: "))),
            "no summary line for {name}: {output:?}"
        );
    }

    let line = output
        .iter()
        .find(|l| l.starts_with("mptcpify: accepted by upgraded listeners:"))
        .unwrap_or_else(|| panic!("no accepted line: {output:?}"));
    let (m, t) = (count("mptcp"), count("tcp"));
    assert!(
        line.contains(&format!(
            "{m} MPTCP ({}%), {t} plain TCP",
            m * 100 / (m + t)
        )),
        "{line}"
    );
}

/// A listener mptcpify did not upgrade (the application asked for MPTCP
/// itself) is not mptcpify's to report: its connections are not counted.
#[test]
fn an_applications_own_mptcp_listener_is_not_reported() {
    let mut running = Running::start_quietly(command(&["--json", "--comm", "not-this-one"]));
    running.wait_for("mptcpify: attached", WAIT);
    // SAFETY: socket(2) with plain integers.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, MPTCP) };
    assert!(
        fd >= 0,
        "an MPTCP socket: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: a fresh descriptor we own.
    let listener = unsafe { <TcpListener as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let addr = sockets::sockaddr_in(std::net::SocketAddrV4::new(
        std::net::Ipv4Addr::LOCALHOST,
        0,
    ));
    // SAFETY: a valid sockaddr_in and its size.
    let bound = unsafe {
        libc::bind(
            fd,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        )
    };
    // SAFETY: a bound socket.
    assert!(bound == 0 && unsafe { libc::listen(fd, 16) } == 0);
    let port = listener.local_addr().unwrap().port();
    let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (server, _) = listener.accept().unwrap();
    drop((client, server));
    std::thread::sleep(Duration::from_millis(300));
    running.signal(libc::SIGINT);
    let (status, output) = running.wait();
    assert_eq!(status.code(), Some(0), "{output:?}");
    let objects = json_objects(&output);
    assert!(
        !objects.iter().any(|o| o["event"] == "accepted"),
        "{output:?}"
    );
    let counters = &objects.last().unwrap()["counters"];
    assert_eq!(counters["accepted_mptcp"], 0, "{counters}");
    assert_eq!(counters["accepted_tcp"], 0, "{counters}");
}

/// The value of the sample `name` (with its labels, as written) in a scrape.
fn sample(scrape: &str, name: &str) -> u64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {name} in:\n{scrape}"))
        .trim()
        .parse()
        .unwrap()
}

/// `--metrics`: a scrape while attached says what the exit summary then
/// says, counter by counter, with HELP and TYPE lines and the instance's
/// kernel and policy; another path is a 404 that names /metrics.
#[test]
fn a_scrape_says_what_the_counters_say() {
    let port = {
        let free = TcpListener::bind("127.0.0.1:0").unwrap();
        free.local_addr().unwrap().port()
    };
    let mut running = Running::start_quietly(command(&[
        "--json",
        "--metrics",
        &port.to_string(),
        "--comm",
        "acceptor",
        "--comm",
        "socket-probe",
    ]));
    let line = running.wait_for("mptcpify: metrics at", WAIT);
    assert!(
        line.contains(&format!("http://127.0.0.1:{port}/metrics")),
        "{line}"
    );
    running.wait_for("mptcpify: attached", WAIT);
    let (port_tx, port_rx) = mpsc::channel();
    let server = std::thread::spawn(move || {
        as_comm("acceptor", move || {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            port_tx.send(listener.local_addr().unwrap().port()).unwrap();
            for _ in 0..20 {
                drop(listener.accept().expect("accept"));
            }
        })
    });
    let server_port = port_rx.recv_timeout(WAIT).unwrap();
    clients("socket-probe", server_port, 10);
    clients("socket-probe-static", server_port, 10);
    server.join().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (missing, _) = http_get(port, "/");
    assert!(missing.contains("404"), "{missing}");
    // The last socket() before the detach: the scrape's own (kept TCP, not
    // selected), counted before the scrape reads the counters.
    let (status, scrape) = http_get(port, "/metrics");
    assert!(status.contains("200"), "{status}");
    running.signal(libc::SIGINT);
    let (exit, output) = running.wait();
    assert_eq!(exit.code(), Some(0), "{output:?}");
    let objects = json_objects(&output);
    let detached = objects.iter().rfind(|o| o["event"] == "detached").unwrap();
    let counter = |key: &str| detached["counters"][key].as_u64().unwrap();
    for (sample_name, key) in [
        ("mptcpify_upgraded_total", "upgraded"),
        (
            "mptcpify_accepted_total{outcome=\"mptcp\"}",
            "accepted_mptcp",
        ),
        ("mptcpify_accepted_total{outcome=\"tcp\"}", "accepted_tcp"),
        (
            "mptcpify_closed_total{role=\"accepted\",outcome=\"mptcp\"}",
            "closed_accepted",
        ),
        (
            "mptcpify_closed_total{role=\"created\",outcome=\"mptcp\"}",
            "closed_mptcp",
        ),
        (
            "mptcpify_kept_tcp_total{reason=\"not_selected\"}",
            "kept_not_selected",
        ),
        ("mptcpify_events_dropped_total", "dropped_events"),
    ] {
        assert_eq!(sample(&scrape, sample_name), counter(key), "{sample_name}");
    }
    assert_eq!(
        sample(&scrape, "mptcpify_accepted_total{outcome=\"mptcp\"}")
            + sample(&scrape, "mptcpify_accepted_total{outcome=\"tcp\"}"),
        20
    );
    // Per selector: what the acceptor's listener accepted.
    for outcome in ["mptcp", "tcp"] {
        assert_eq!(
            sample(
                &scrape,
                &format!(
                    "mptcpify_selector_accepted_total{{selector=\"comm acceptor\",outcome=\"{outcome}\"}}"
                )
            ),
            sample(
                &scrape,
                &format!("mptcpify_accepted_total{{outcome=\"{outcome}\"}}")
            ),
            "{outcome}"
        );
    }
    assert_eq!(
        sample(
            &scrape,
            "mptcpify_selector_upgraded_total{selector=\"comm acceptor\"}"
        ),
        1
    );
    for line in [
        "# TYPE mptcpify_accepted counter",
        "# HELP mptcpify_upgraded TCP socket() calls made MPTCP.",
        "# EOF",
    ] {
        assert!(
            scrape.lines().any(|l| l == line),
            "no {line:?} in:\n{scrape}"
        );
    }
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert!(
        scrape.contains(&format!("mptcpify_info{{kernel=\"{}\"", kernel.trim())),
        "{scrape}"
    );
    assert!(scrape.contains("comm acceptor"), "the policy: {scrape}");
}

/// How long the load runs (the 30 s).
const LOAD: Duration = Duration::from_secs(30);

/// How long the server waits for connections that come late into its
/// accept queue: past the SYN-ACK's retransmissions at 1, 3, 7 and 15 s.
const DRAIN: Duration = Duration::from_secs(20);

/// Short connections as fast as the lab goes, for 30 s: a selected server
/// thread accepts and closes each; two selected client threads connect
/// and close. The counters are exact (every connection accepted is
/// counted, MPTCP but for a `socket()` the kernel ran without the
/// upgrader), per selector too; no `closed` line is told for a socket
/// never told upgraded or accepted; and mptcpify's memory stays where it
/// was (BENCHMARKS.md gives the numbers).
#[test]
fn a_load_of_short_connections_is_counted_exactly() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let running = attached_selecting(&["load-server", "load-client"]);
    let passive_before = mptcp_mib("MPCapableACKRX");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    // How many connections the clients made, once they stopped.
    let made_in_all = Arc::new(AtomicU64::new(u64::MAX));
    let accepted = Arc::new(AtomicU64::new(0));
    let (ready_tx, ready_rx) = mpsc::channel();
    let server = {
        let (made_in_all, accepted) = (made_in_all.clone(), accepted.clone());
        std::thread::Builder::new()
            .name("load-server".into())
            .spawn(move || {
                // The listener was made before the thread had its name: a
                // socket of its own, so that this selector upgrades it.
                drop(listener);
                let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
                assert_eq!(sockets::protocol_of(&listener), MPTCP);
                ready_tx.send(()).unwrap();
                // Until every connection the clients made is accepted. A
                // client's connect() returns when it sent its last ACK;
                // the server's end is in the accept queue once that ACK is
                // processed, which may be later (the loopback's backlog),
                // or after the SYN-ACK is sent again when the queue was
                // full (tcp_check_req's listen_overflow drops the ACK,
                // net/ipv4/tcp_minisocks.c; 7 of 23,003 were late so, once).
                // Bounded: what never comes fails the count below.
                listener.set_nonblocking(true).unwrap();
                let mut draining = None;
                loop {
                    match listener.accept() {
                        Ok((connection, _)) => {
                            drop(connection);
                            accepted.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            let made = made_in_all.load(Ordering::Relaxed);
                            if accepted.load(Ordering::Relaxed) >= made {
                                break;
                            }
                            if made != u64::MAX
                                && draining
                                    .get_or_insert_with(std::time::Instant::now)
                                    .elapsed()
                                    > DRAIN
                            {
                                break;
                            }
                            std::thread::sleep(Duration::from_micros(200));
                        }
                        Err(e) => panic!("accept: {e}"),
                    }
                }
            })
            .unwrap()
    };
    ready_rx.recv_timeout(WAIT).expect("the server listening");
    let rss_before = rss_kb(running.pid());
    let made = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (stop, made) = (stop.clone(), made.clone());
            std::thread::Builder::new()
                .name("load-client".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let stream =
                            std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
                        drop(stream);
                        made.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .unwrap()
        })
        .collect();
    std::thread::sleep(LOAD);
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    // Every client's connect() returned: the server accepts until it has
    // them all.
    let made = made.load(Ordering::Relaxed);
    made_in_all.store(made, Ordering::Relaxed);
    server.join().unwrap();
    let total = made;
    assert_eq!(
        accepted.load(Ordering::Relaxed),
        total,
        "every connection accepted"
    );
    std::thread::sleep(Duration::from_millis(500));
    let rss_after = rss_kb(running.pid());
    let passive = mptcp_mib("MPCapableACKRX") - passive_before;
    running.signal(libc::SIGINT);
    let (status, output) = running.wait();
    assert_eq!(
        status.code(),
        Some(0),
        "{:?}",
        &output[output.len().saturating_sub(40)..]
    );
    eprintln!(
        "{total} connections in {LOAD:?} ({} a second); mptcpify's RSS {rss_before} kB before, \
         {rss_after} kB after",
        total / LOAD.as_secs()
    );

    let objects = json_objects(&output);
    let detached = objects.iter().rfind(|o| o["event"] == "detached").unwrap();
    let counter = |key: &str| detached["counters"][key].as_u64().unwrap();
    let missed = |function: &str| detached["missed_calls"][function].as_u64().unwrap_or(0);
    let skipped = detached["skipped_calls"].as_u64().unwrap_or(0);
    let (mptcp, tcp) = (counter("accepted_mptcp"), counter("accepted_tcp"));
    eprintln!(
        "accepted {mptcp} MPTCP, {tcp} TCP; missed {}; skipped {skipped}; dropped events {}",
        detached["missed_calls"],
        counter("dropped_events")
    );
    // Every connection accepted is counted, or its accept ran without the
    // program; a plain TCP one is a client socket() the upgrader missed.
    assert_eq!(
        mptcp + tcp + missed("mptcp_stream_accept"),
        total,
        "{detached}"
    );
    // A plain TCP connection is a client socket() the upgrader missed, or
    // one that fell back before its SYN (on 6.18 under this load, the
    // kernel could not allocate some connections' MPTCP token:
    // TokenFallbackInit), counted at close, unless its close was missed.
    let fell_back = detached["counters"]["closed_fallback"].as_u64().unwrap();
    assert!(
        tcp <= skipped + fell_back + missed("mptcp_close") + missed("mptcp_init_sock"),
        "{detached}"
    );
    // The kernel's count of MPTCP connections accepted.
    assert!(
        passive >= mptcp && passive <= mptcp + missed("mptcp_stream_accept"),
        "MPCapableACKRX {passive} vs {detached}"
    );
    // Per selector: the server's and the clients' rows.
    let rows = detached["selectors"].as_array().expect("selectors");
    let row = |name: &str| rows.iter().find(|r| r["selector"] == name).unwrap();
    let server_row = row("comm load-server");
    assert_eq!(server_row["accepted_mptcp"], mptcp, "{server_row}");
    assert_eq!(server_row["accepted_tcp"], tcp, "{server_row}");
    let client_row = row("comm load-client");
    let tagged = client_row["upgraded"].as_u64().unwrap();
    assert!(
        tagged <= made && tagged + missed("mptcp_init_sock") + skipped >= made,
        "{client_row}"
    );
    // No line for a socket never told upgraded or accepted: each closed
    // line's socket was told first, as far as the lines go (events may be
    // dropped under load; then the closes told are fewer, never more).
    let count = |event: &str, role: Option<&str>| {
        objects
            .iter()
            .filter(|o| o["event"] == event && role.is_none_or(|r| o["role"] == r))
            .count() as u64
    };
    let upgraded_lines = count("upgraded", None);
    let accepted_lines = objects
        .iter()
        .filter(|o| o["event"] == "accepted" && o["outcome"] == "mptcp")
        .count() as u64;
    assert!(count("closed", Some("created")) <= upgraded_lines);
    assert!(count("closed", Some("accepted")) <= accepted_lines);
    for o in objects.iter().filter(|o| o["event"] == "closed") {
        assert!(
            o["comm"] == "load-client" || o["comm"] == "load-server",
            "a closed line for a socket mptcpify did not follow: {o}"
        );
    }
    if counter("dropped_events") == 0 {
        assert_eq!(upgraded_lines, counter("upgraded"), "{detached}");
        assert_eq!(accepted_lines, mptcp, "{detached}");
    }
    // Memory stays where it was: nothing grows with the connections.
    assert!(
        rss_after <= rss_before + 4096,
        "mptcpify's RSS grew from {rss_before} kB to {rss_after} kB over {total} connections"
    );
}

/// Selectors are numbered for their counts up to the 31st (the role bits
/// an include entry has for it): a policy with more is told, at attach,
/// that the rest are counted together, and their sockets are upgraded and
/// counted all the same, under "selectors past the 31st".
#[test]
fn selectors_past_the_31st_are_upgraded_and_counted_together() {
    let comms: Vec<String> = (0..33).map(|n| format!("many{n:02}")).collect();
    let names: Vec<&str> = comms.iter().map(String::as_str).collect();
    let running = attached_selecting(&names);
    for comm in ["many00", "many30", "many31", "many32"] {
        let protocol = as_comm(comm, || {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            sockets::protocol_of(&listener)
        });
        assert_eq!(protocol, MPTCP, "{comm} upgraded");
    }
    running.signal(libc::SIGINT);
    let (status, output) = running.wait();
    assert!(status.success(), "{output:?}");
    assert!(
        output.iter().any(|l| l.starts_with(
            "mptcpify: warning: 2 include selectors past the first 31 are counted together"
        )),
        "{output:?}"
    );
    let detached = json_objects(&output).pop().unwrap();
    let upgraded = |name: &str| {
        detached["selectors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["selector"] == name)
            .unwrap_or_else(|| panic!("no row {name}: {detached}"))["upgraded"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(upgraded("comm many00"), 1, "{detached}");
    assert_eq!(upgraded("comm many30"), 1, "{detached}");
    assert_eq!(upgraded("selectors past the 31st"), 2, "{detached}");
    assert_eq!(detached["counters"]["upgraded"], 4, "{detached}");
}
