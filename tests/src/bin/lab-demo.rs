//! `cargo xtask demo` runs this inside the lab: unmodified iperf3 between two
//! namespaces joined by two 10 Mbit/s paths, first as plain TCP, then under
//! `mptcpify --comm iperf3`, showing `ss -M` and the MPTCP counters.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mptcpify_tests::process::Running;
use mptcpify_tests::testbed::{TwoPaths, PATHS};

const RATE_MBIT: u32 = 10;
const SECONDS: &str = "5";

fn main() {
    let bed = TwoPaths::setup();
    for path in 0..PATHS.len() {
        bed.shape(path, RATE_MBIT, 0);
    }
    banner(&format!(
        "two namespaces, two paths ({} and {}), {RATE_MBIT} Mbit/s each",
        PATHS[0].server_addr, PATHS[1].server_addr
    ));

    banner("without mptcpify: iperf3 uses plain TCP, one path");
    transfer(&bed, false);

    banner("$ mptcpify --comm iperf3");
    let running = Running::attach(&["--comm", "iperf3"]);
    banner("with mptcpify: the same iperf3 commands");
    transfer(&bed, true);
    for (name, ns) in [("client", &bed.client), ("server", &bed.server)] {
        let counters: Vec<String> = bed
            .mptcp_counters(ns)
            .into_iter()
            .filter(|(_, v)| *v > 0)
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        println!("{name} MPTCP counters (nstat): {}", counters.join(" "));
    }

    banner("Ctrl-C to mptcpify");
    running.signal(libc::SIGINT);
    let (status, _) = running.wait();
    assert_eq!(status.code(), Some(0));
}

fn transfer(bed: &TwoPaths, show_ss: bool) {
    let mut server = bed
        .exec(&bed.server, "iperf3")
        .args(["-s", "-1"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let client = bed
        .exec(&bed.client, "iperf3")
        .args(["-c", PATHS[0].server_addr, "-t", SECONDS, "-f", "m"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    if show_ss {
        println!("$ ip netns exec client ss -Mni   (MPTCP sockets)");
        show(bed.exec(&bed.client, "ss").args(["-Mni"]));
        println!("$ ip netns exec client ss -tni state established   (their TCP subflows)");
        show(
            bed.exec(&bed.client, "ss")
                .args(["-tni", "state", "established"]),
        );
    }
    let out = wait(client);
    for line in out
        .lines()
        .filter(|l| l.contains("sender") || l.contains("receiver"))
    {
        println!("iperf3: {line}");
    }
    let _ = server.wait();
}

fn show(command: &mut Command) {
    let out = command.output().expect("running ss");
    print!("{}", String::from_utf8_lossy(&out.stdout));
}

fn wait(child: Child) -> String {
    let out = child.wait_with_output().expect("iperf3 client");
    assert!(out.status.success(), "iperf3 client failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn banner(text: &str) {
    println!("\n== {text}");
}
