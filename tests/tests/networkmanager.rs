//! `mptcpify paths auto` and `--paths auto` next to NetworkManager managing
//! an interface with its own MPTCP flags (`connection.mptcp-flags`):
//! mptcpify neither duplicates nor removes NetworkManager's endpoint. Run
//! as root in the lab's Debian image, where NetworkManager is installed but
//! masked at boot: this test starts it, managing only a dummy device it
//! creates itself (NetworkManager did not take an ethernet connection on a
//! veth made beforehand: "no suitable device").

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mptcpify_tests::process::{output_within, Running, ATTACH_TIMEOUT};

const DEV: &str = "nmt0";
const ADDRESS: &str = "192.0.2.60";
const CONNECTION: &str = "mptcpify-nmt";

fn sh(command: &str) -> String {
    let out = Command::new("sh").args(["-c", command]).output().unwrap();
    assert!(
        out.status.success(),
        "{command}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// NetworkManager as a child, managing `DEV` only. Undone on drop.
struct NetworkManager {
    child: Child,
}

impl NetworkManager {
    fn start() -> NetworkManager {
        let conf = "/run/mptcpify-test-nm.conf";
        std::fs::write(
            conf,
            format!(
                "[main]\nplugins=keyfile\nno-auto-default=*\n\
                 [keyfile]\nunmanaged-devices=*,except:interface-name:{DEV}\n"
            ),
        )
        .unwrap();
        let child = Command::new("NetworkManager")
            .args(["--no-daemon", &format!("--config={conf}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("NetworkManager (Debian's network-manager package)");
        let nm = NetworkManager { child };
        let start = Instant::now();
        while !Command::new("nmcli")
            .args(["-t", "-f", "RUNNING", "general"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "running")
        {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "NetworkManager did not start"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        nm
    }
}

impl Drop for NetworkManager {
    fn drop(&mut self) {
        let _ = Command::new("nmcli")
            .args(["connection", "delete", CONNECTION])
            .output();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("ip").args(["link", "del", DEV]).output();
    }
}

/// `ip mptcp endpoint show` lines, without the ids (NetworkManager's id
/// changes when it adds its endpoint again).
fn endpoints() -> Vec<String> {
    let mut lines: Vec<String> = sh("ip mptcp endpoint show")
        .lines()
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let mut kept = Vec::new();
            let mut skip = false;
            for w in words {
                if skip {
                    skip = false;
                } else if w == "id" {
                    skip = true;
                } else {
                    kept.push(w);
                }
            }
            kept.join(" ")
        })
        .collect();
    lines.sort();
    lines
}

fn nm_endpoint_lines() -> Vec<String> {
    endpoints()
        .into_iter()
        .filter(|l| l.split_whitespace().next() == Some(ADDRESS))
        .collect()
}

fn wait_for_nm_endpoint() {
    let start = Instant::now();
    while nm_endpoint_lines().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "NetworkManager added no endpoint for {ADDRESS}: {:?}",
            endpoints()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn mptcpify(args: &[&str]) -> String {
    let (status, out) = output_within(mptcpify_tests::process::command(args), ATTACH_TIMEOUT);
    assert_eq!(status.code(), Some(0), "mptcpify {args:?}: {out}");
    out
}

#[test]
fn networkmanagers_endpoint_is_neither_duplicated_nor_removed() {
    let _nm = NetworkManager::start();
    sh(&format!(
        "nmcli connection add type dummy con-name {CONNECTION} ifname {DEV} \
         connection.autoconnect no ipv4.method manual ipv4.addresses {ADDRESS}/24 \
         ipv6.method disabled \
         connection.mptcp-flags enabled,also-without-default-route,signal,subflow"
    ));
    sh(&format!("nmcli --wait 60 connection up {CONNECTION}"));
    wait_for_nm_endpoint();
    let theirs = nm_endpoint_lines();
    println!("NetworkManager's endpoint: {theirs:?}");
    let before = sh("ip mptcp endpoint show; ip mptcp limits show");

    // `paths auto` leaves the address alone, and `paths reset` leaves
    // NetworkManager's endpoint in place.
    let out = mptcpify(&["paths", "auto", "--json"]);
    let report: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let left_alone = report["left_alone"].as_array().unwrap();
    assert!(
        left_alone.iter().any(|f| f["address"] == ADDRESS),
        "{report}"
    );
    assert!(
        !report["added"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["address"] == ADDRESS),
        "{report}"
    );
    assert_eq!(
        nm_endpoint_lines(),
        theirs,
        "one endpoint, NetworkManager's"
    );
    mptcpify(&["paths", "reset"]);
    assert_eq!(sh("ip mptcp endpoint show; ip mptcp limits show"), before);

    // `--paths auto` while NetworkManager takes its connection down and up:
    // the address comes back with NetworkManager's endpoint, not a second
    // one of mptcpify's, and at exit NetworkManager's is still there.
    let endpoints_before = endpoints();
    let running = Running::attach(&["-q", "--comm", "x-none", "--paths", "auto"]);
    sh(&format!("nmcli --wait 60 connection down {CONNECTION}"));
    sh(&format!("nmcli --wait 60 connection up {CONNECTION}"));
    wait_for_nm_endpoint();
    // Longer than the follower takes to act on a new address.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        nm_endpoint_lines(),
        theirs,
        "one endpoint, NetworkManager's"
    );
    let shown: serde_json::Value =
        serde_json::from_str(mptcpify(&["paths", "--json"]).lines().last().unwrap()).unwrap();
    let ours = shown["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["address"] == ADDRESS)
        .unwrap()["added_by"]
        .clone();
    assert_eq!(ours, serde_json::Value::Null, "{shown}");
    running.signal(libc::SIGINT);
    let (status, output) = running.wait_timeout(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "{output:?}");
    assert_eq!(endpoints(), endpoints_before);
}
