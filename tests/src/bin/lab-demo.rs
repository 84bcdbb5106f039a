//! `cargo xtask demo` runs this inside the lab: unmodified iperf3 between two
//! namespaces joined by two 10 Mbit/s paths, first as plain TCP, then under
//! `mptcpify --comm iperf3`, showing `ss -M` and the MPTCP counters.

use std::process::Command;

use mptcpify_tests::process::Running;
use mptcpify_tests::testbed::{TwoPaths, PATHS};

const RATE_MBIT: u32 = 10;
const SECONDS: u32 = 8;

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
    let run = bed.iperf3(SECONDS, || {
        if show_ss {
            println!(
                "$ ip netns exec client ss -Mni   (MPTCP sockets; subflows:1 = one extra path)"
            );
            show(bed.exec(&bed.client, "ss").args(["-Mni"]));
            println!("$ ip netns exec client ss -tni state established   (their TCP subflows)");
            show(
                bed.exec(&bed.client, "ss")
                    .args(["-tni", "state", "established"]),
            );
        }
    });
    for line in run.summary {
        println!("iperf3: {line}");
    }
}

fn show(command: &mut Command) {
    let out = command.output().expect("running ss");
    print!("{}", String::from_utf8_lossy(&out.stdout));
}

fn banner(text: &str) {
    println!("\n== {text}");
}
