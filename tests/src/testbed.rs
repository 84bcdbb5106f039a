//! A two-path network inside one machine: namespaces `client` and `server`
//! joined by two veth pairs on two subnets, set up for MPTCP the way Red Hat's
//! guide does it on real hosts (`ip mptcp limits`, a `signal` endpoint on the
//! server). Paths can be rate-limited, delayed and taken down. All traffic
//! stays inside the namespaces; everything is removed on drop, even when a
//! test fails.

use std::process::{Command, Output};

/// One path: the veth pair and its subnet (documentation prefixes that exist
/// only inside the namespaces).
pub struct Path {
    pub client_dev: &'static str,
    pub server_dev: &'static str,
    pub client_addr: &'static str,
    pub server_addr: &'static str,
}

pub const PATHS: [Path; 2] = [
    Path {
        client_dev: "mp1c",
        server_dev: "mp1s",
        client_addr: "192.0.2.2",
        server_addr: "192.0.2.1",
    },
    Path {
        client_dev: "mp2c",
        server_dev: "mp2s",
        client_addr: "198.51.100.2",
        server_addr: "198.51.100.1",
    },
];

pub struct TwoPaths {
    pub client: String,
    pub server: String,
}

impl TwoPaths {
    /// Builds the namespaces and both paths, unshaped, with the path
    /// manager configured by hand (see the module's doc).
    pub fn setup() -> TwoPaths {
        let bed = Self::bare();
        bed.configure_by_hand();
        bed
    }

    /// Builds the namespaces and both paths, unshaped, with no path-manager
    /// configuration at all: no endpoint, the kernel's default limits, as
    /// on a host where no one ran `ip mptcp`. The namespace names carry our
    /// pid so parallel runs do not collide.
    pub fn bare() -> TwoPaths {
        let id = std::process::id();
        let bed = TwoPaths {
            client: format!("mpc{id}"),
            server: format!("mps{id}"),
        };
        for ns in [&bed.client, &bed.server] {
            ip(&["netns", "add", ns]);
            bed.ip(ns, &["link", "set", "lo", "up"]);
        }
        for path in &PATHS {
            ip(&[
                "link",
                "add",
                path.client_dev,
                "netns",
                &bed.client,
                "type",
                "veth",
                "peer",
                "name",
                path.server_dev,
                "netns",
                &bed.server,
            ]);
            bed.ip(
                &bed.client,
                &[
                    "addr",
                    "add",
                    &format!("{}/24", path.client_addr),
                    "dev",
                    path.client_dev,
                ],
            );
            bed.ip(
                &bed.server,
                &[
                    "addr",
                    "add",
                    &format!("{}/24", path.server_addr),
                    "dev",
                    path.server_dev,
                ],
            );
            bed.ip(&bed.client, &["link", "set", path.client_dev, "up"]);
            bed.ip(&bed.server, &["link", "set", path.server_dev, "up"]);
        }
        bed
    }

    fn configure_by_hand(&self) {
        let bed = self;
        // Both ends accept one extra subflow; the server announces its
        // second address (the guide's `signal` endpoint).
        for ns in [&bed.client, &bed.server] {
            bed.ip(
                ns,
                &[
                    "mptcp",
                    "limits",
                    "set",
                    "subflow",
                    "2",
                    "add_addr_accepted",
                    "2",
                ],
            );
        }
        bed.ip(
            &bed.server,
            &[
                "mptcp",
                "endpoint",
                "add",
                PATHS[1].server_addr,
                "dev",
                PATHS[1].server_dev,
                "signal",
            ],
        );
    }

    /// `mptcpify paths auto` in both namespaces (the binary under test),
    /// in place of [`Self::setup`]'s configuration by hand.
    pub fn paths_auto(&self) {
        for ns in [&self.client, &self.server] {
            let out = Command::new("nsenter")
                .arg(format!("--net=/run/netns/{ns}"))
                .arg(crate::process::resolved_bin())
                .args(["paths", "auto"])
                .output()
                .expect("nsenter");
            assert!(
                out.status.success(),
                "mptcpify paths auto in {ns}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// What `ip mptcp endpoint show` and `ip mptcp limits show` print in
    /// namespace `ns`: the path manager's whole state, byte for byte.
    pub fn path_manager(&self, ns: &str) -> String {
        self.ip(ns, &["mptcp", "endpoint", "show"]) + &self.ip(ns, &["mptcp", "limits", "show"])
    }

    /// Runs `ip -n NS ARGS`, panicking with its stderr on failure.
    pub fn ip(&self, ns: &str, args: &[&str]) -> String {
        let mut all = vec!["-n", ns];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// A command run inside namespace `ns`.
    pub fn exec(&self, ns: &str, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", ns, program]);
        command
    }

    /// Bytes the client has sent on each path so far (its veth's
    /// `tx_bytes`, read inside the namespace: `ip netns exec` mounts that
    /// namespace's sysfs). Counts every packet on the link, whichever
    /// socket sent it.
    pub fn client_tx_bytes(&self) -> [u64; 2] {
        [0, 1].map(|index| {
            let dev = PATHS[index].client_dev;
            let out = check(
                self.exec(&self.client, "cat")
                    .arg(format!("/sys/class/net/{dev}/statistics/tx_bytes"))
                    .output(),
                &format!("tx_bytes of {dev}"),
            );
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .unwrap_or_else(|e| panic!("tx_bytes of {dev}: {e}"))
        })
    }

    /// Limits both directions of path `index` to `mbit` Mbit/s (tbf), with
    /// optional extra one-way delay on each side (netem).
    pub fn shape(&self, index: usize, mbit: u32, delay_ms: u32) {
        let path = &PATHS[index];
        for (ns, dev) in [
            (&self.client, path.client_dev),
            (&self.server, path.server_dev),
        ] {
            let rate = format!("{mbit}mbit");
            if delay_ms > 0 {
                tc(
                    ns,
                    &[
                        "qdisc",
                        "replace",
                        "dev",
                        dev,
                        "root",
                        "handle",
                        "1:",
                        "netem",
                        "delay",
                        &format!("{delay_ms}ms"),
                    ],
                );
                tc(
                    ns,
                    &[
                        "qdisc", "replace", "dev", dev, "parent", "1:1", "handle", "10:", "tbf",
                        "rate", &rate, "burst", "32kbit", "latency", "100ms",
                    ],
                );
            } else {
                tc(
                    ns,
                    &[
                        "qdisc", "replace", "dev", dev, "root", "tbf", "rate", &rate, "burst",
                        "32kbit", "latency", "100ms",
                    ],
                );
            }
        }
    }

    /// Waits until an MPTCP connection in the client namespace has its second
    /// subflow (`ss -Mni` shows `subflows:1` or more); returns how long that
    /// took.
    /// A failover test must not cut the first path before this.
    pub fn wait_for_second_subflow(&self, timeout: std::time::Duration) -> std::time::Duration {
        let start = std::time::Instant::now();
        loop {
            let out = self
                .exec(&self.client, "ss")
                .args(["-Mni"])
                .output()
                .expect("ss -Mni");
            let text = String::from_utf8_lossy(&out.stdout);
            // `subflows:N`, N extra subflows: 2 where both ends have an
            // endpoint per path (one from each side's announcement).
            let extra = text
                .split_whitespace()
                .filter_map(|w| w.strip_prefix("subflows:"))
                .filter_map(|n| n.parse::<u32>().ok())
                .max()
                .unwrap_or(0);
            if extra >= 1 {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < timeout,
                "no second subflow after {timeout:?}:\n{text}\nclient counters: {:?}\nserver counters: {:?}",
                nonzero(self.mptcp_counters(&self.client)),
                nonzero(self.mptcp_counters(&self.server))
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Takes path `index` down (or up) on the client side.
    pub fn set_link(&self, index: usize, up: bool) {
        let dev = PATHS[index].client_dev;
        self.ip(
            &self.client,
            &["link", "set", dev, if up { "up" } else { "down" }],
        );
    }

    /// The `MPTcpExt` counters of a namespace (`nstat -az`), by name.
    pub fn mptcp_counters(&self, ns: &str) -> Vec<(String, u64)> {
        let out = check(self.exec(ns, "nstat").args(["-az"]).output(), "nstat");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("MPTcp"))
            .filter_map(|l| {
                let mut parts = l.split_whitespace();
                Some((parts.next()?.to_string(), parts.next()?.parse().ok()?))
            })
            .collect()
    }

    pub fn counter(&self, ns: &str, name: &str) -> u64 {
        self.mptcp_counters(ns)
            .into_iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| v)
    }
}

fn nonzero(counters: Vec<(String, u64)>) -> Vec<(String, u64)> {
    counters.into_iter().filter(|(_, v)| *v > 0).collect()
}

impl Drop for TwoPaths {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veth ends (and so the pairs).
        for ns in [&self.client, &self.server] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

fn ip(args: &[&str]) -> String {
    let out = check(
        Command::new("ip").args(args).output(),
        &format!("ip {}", args.join(" ")),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tc(ns: &str, args: &[&str]) {
    check(
        Command::new("tc").args(["-n", ns]).args(args).output(),
        &format!("tc {}", args.join(" ")),
    );
}

fn check(result: std::io::Result<Output>, what: &str) -> Output {
    let out = result.unwrap_or_else(|e| panic!("{what}: {e}"));
    if !out.status.success() {
        panic!("{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    out
}

/// The result of one iperf3 run across the testbed.
pub struct Iperf {
    /// Receiver-side throughput.
    pub mbit_per_s: f64,
    /// iperf3's own summary lines.
    pub summary: Vec<String>,
}

impl TwoPaths {
    /// Runs `iperf3 -s -1` in the server namespace and `iperf3 -c` from the
    /// client for `seconds`; `during` runs while the transfer is under way.
    /// (iperf3's `-O` is not used: with it, 3.12 under-reported a shaped TCP
    /// path by 20% here.)
    pub fn iperf3(&self, seconds: u32, during: impl FnOnce()) -> Iperf {
        let mut server = self
            .exec(&self.server, "iperf3")
            .args(["-s", "-1"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("iperf3 -s");
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let client = self
            .exec(&self.client, "iperf3")
            .args([
                "-c",
                PATHS[0].server_addr,
                "-t",
                &seconds.to_string(),
                "-f",
                "m",
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("iperf3 -c");
        std::thread::sleep(std::time::Duration::from_secs(u64::from(seconds) / 2 + 1));
        during();
        let out = client.wait_with_output().expect("iperf3 client");
        let _ = server.wait();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "iperf3 client failed:\n{text}");
        let summary: Vec<String> = text
            .lines()
            .filter(|l| l.ends_with("sender") || l.ends_with("receiver"))
            .map(String::from)
            .collect();
        let receiver = summary
            .iter()
            .find(|l| l.ends_with("receiver"))
            .unwrap_or_else(|| panic!("no summary in:\n{text}"));
        // "[  5]   0.00-5.06   sec  11.2 MBytes  18.5 Mbits/sec    receiver"
        let words: Vec<&str> = receiver.split_whitespace().collect();
        let unit = words
            .iter()
            .position(|w| *w == "Mbits/sec")
            .expect("Mbits/sec");
        let mbit_per_s = words[unit - 1].parse().expect("a rate");
        Iperf {
            mbit_per_s,
            summary,
        }
    }
}
