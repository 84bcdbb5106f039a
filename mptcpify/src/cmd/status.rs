//! `mptcpify status [--json]`: what this machine can do and is doing,
//! read from the kernel, so it works from any shell: kernel support, the
//! path manager (limits, endpoints), the mptcpify instances attached (with
//! their counters) and the MPTCP connections. Each part that cannot be read
//! (e.g. without root) says why instead; the others are still shown.

use std::collections::BTreeMap;
use std::time::SystemTime;

use aya::programs::loaded_programs;
use serde::Serialize;

use crate::bpf::instances::{self, PROGRAM_NAME};
use crate::cli::StatusArgs;
use crate::errors::{exit, Failure};
use mptcpify_core::output::tallies::{self, FallbackTally, RefusedTally, SelectorTally};

/// The whole report; `--json` prints it as one object (README, "status").
#[derive(Serialize)]
struct Status {
    event: &'static str,
    time: String,
    pid: u32,
    kernel: Kernel,
    path_manager: Part<PathManager>,
    instances: Part<Vec<Instance>>,
    /// This network namespace's fallback counters, as the kernel counts
    /// them for every MPTCP socket (not only mptcpify's): the
    /// `MPTcpExt` counters of `/proc/net/netstat` whose name says
    /// `Fallback`, by that name.
    namespace_fallbacks: Part<BTreeMap<String, u64>>,
    connections: Part<Vec<Connection>>,
}

/// A part that was read, or why it could not be.
#[derive(Serialize)]
#[serde(untagged)]
enum Part<T> {
    Read(T),
    Unreadable { error: String },
}

impl<T> From<Result<T, String>> for Part<T> {
    fn from(result: Result<T, String>) -> Self {
        match result {
            Ok(value) => Part::Read(value),
            Err(error) => Part::Unreadable { error },
        }
    }
}

#[derive(Serialize)]
struct Kernel {
    release: String,
    /// `/sys/kernel/btf/vmlinux` readable.
    btf: bool,
    /// `update_socket_protocol` in the kernel's BTF.
    hook: bool,
    /// The kernel loads BPF trampoline programs (fmod_ret); `null` when
    /// that could not be probed (needs root).
    trampolines: Option<bool>,
    /// Why `trampolines` is `null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    trampolines_unknown: Option<String>,
    /// `net.mptcp.enabled` in this network namespace (`null`: no MPTCP).
    mptcp_enabled: Option<bool>,
}

#[derive(Serialize)]
struct PathManager {
    /// `subflows`, `add_addr_accepted` (`ip mptcp limits`).
    limits: BTreeMap<&'static str, u32>,
    endpoints: Vec<Endpoint>,
}

#[derive(Serialize)]
struct Endpoint {
    id: Option<u8>,
    address: Option<String>,
    port: Option<u16>,
    /// `signal`, `subflow`, `backup`, `fullmesh`, `implicit`.
    flags: Vec<String>,
    ifindex: Option<i32>,
    /// Who in mptcpify added it (`paths auto`, `pid N`, `pin NAME`);
    /// `null`: not mptcpify.
    added_by: Option<String>,
}

#[derive(Serialize)]
struct Instance {
    program_id: u32,
    loaded_at: Option<String>,
    /// The `--pin NAME` it is pinned as (it stays attached without a
    /// holder); `null`: not pinned.
    pinned: Option<String>,
    /// Processes holding the program (its attachment), with their command
    /// lines: who attached it, and with which selectors.
    holders: Vec<crate::bpf::instances::Holder>,
    /// By the names of `--json`'s `detached` event.
    counters: BTreeMap<&'static str, u64>,
    /// `socket()` calls the kernel made without the program (see
    /// `loader::Attached::skipped_calls`).
    skipped_calls: u64,
    /// What the sockets of each include selector did (README, "mptcpify
    /// status").
    selectors: Vec<SelectorTally>,
    /// Followed connections that fell back, by `when` and `reason`.
    fallbacks: Vec<FallbackTally>,
    /// Socket options MPTCP refused, by `level` and `option`.
    refused_options: Vec<RefusedTally>,
}

#[derive(Serialize)]
struct Connection {
    state: String,
    local: String,
    peer: String,
    /// `(name, pid)` of each process holding the socket.
    processes: Vec<(String, u32)>,
    /// Extra subflows in use (`subflows:` of `ss -M -i`).
    subflows: u32,
    /// The connection fell back to TCP.
    fallback: bool,
}

pub async fn status(args: &StatusArgs) -> Result<i32, Failure> {
    // The instances' fallback rows name the kernel's reasons.
    crate::kernel::layout::learn_fallback_reasons();
    let status = Status {
        event: "status",
        time: humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
        pid: std::process::id(),
        kernel: kernel(),
        path_manager: path_manager().await.into(),
        instances: instances().into(),
        namespace_fallbacks: namespace_fallbacks().into(),
        connections: connections().into(),
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&status).expect("plain data serialises")
        );
    } else {
        print_text(&status);
    }
    Ok(exit::OK)
}

fn kernel() -> Kernel {
    let root = rustix::process::geteuid().is_root();
    let hook_id = crate::kernel::layout::ids_of_running_kernel(&[(
        crate::kernel::preflight::HOOK,
        crate::kernel::layout::BtfKind::Func,
    )])
    .map(|ids| ids.func(crate::kernel::preflight::HOOK));
    let (btf, hook, trampolines) = match hook_id {
        Ok(Ok(_)) if !root => (
            true,
            true,
            Err("probing loads a program: needs root".into()),
        ),
        Ok(Ok(hook)) => (true, true, crate::bpf::loader::trampolines_load(hook)),
        Ok(Err(_)) => (true, false, Err("no hook to load on".into())),
        Err(_) => (false, false, Err("no kernel BTF".into())),
    };
    let (trampolines, trampolines_unknown) = match trampolines {
        Ok(loads) => (Some(loads), None),
        Err(why) => (None, Some(why)),
    };
    Kernel {
        release: crate::kernel::preflight::kernel_release(),
        btf,
        hook,
        trampolines,
        trampolines_unknown,
        mptcp_enabled: std::fs::read_to_string("/proc/sys/net/mptcp/enabled")
            .ok()
            .map(|v| v.trim() != "0"),
    }
}

async fn path_manager() -> Result<PathManager, String> {
    let failed =
        |e: crate::sys::mptcp_pm::Error| format!("the MPTCP path manager (netlink mptcp_pm): {e}");
    let pm = crate::sys::mptcp_pm::PathManager::open().map_err(failed)?;
    let limits = pm.limits().await.map_err(failed)?;
    let recorded = crate::paths::recorded();
    let endpoints = pm
        .endpoints()
        .await
        .map_err(failed)?
        .into_iter()
        .map(|e| Endpoint {
            id: Some(e.id),
            address: e.ip.map(|ip| ip.to_string()),
            port: (e.port != 0).then_some(e.port),
            flags: mptcpify_core::paths::flag::names(e.flags),
            ifindex: (e.ifindex != 0).then_some(e.ifindex),
            added_by: mptcpify_core::paths::added_by(&recorded, &e).map(String::from),
        })
        .collect();
    Ok(PathManager {
        limits: BTreeMap::from([
            ("subflows", limits.subflows),
            ("add_addr_accepted", limits.add_addr_accepted),
        ]),
        endpoints,
    })
}

/// Every attached mptcpify upgrader, this version or another.
fn instances() -> Result<Vec<Instance>, String> {
    let pins = crate::bpf::pins::list().unwrap_or_default();
    let mut found = Vec::new();
    for program in loaded_programs() {
        let program = program.map_err(|e| {
            format!("listing the kernel's BPF programs needs root (CAP_SYS_ADMIN): {e}")
        })?;
        if program.name_as_str() != Some(PROGRAM_NAME) {
            continue;
        }
        let counters = instances::counters_map(&program)
            .map(|m| {
                instances::read_counters(&m)
                    .into_iter()
                    .map(|(counter, value)| (counter.key(), value))
                    .collect()
            })
            .unwrap_or_default();
        let tallies = instances::read_tallies(&instances::instance_maps(&program));
        found.push(Instance {
            program_id: program.id(),
            loaded_at: program
                .loaded_at()
                .map(|t| humantime::format_rfc3339_seconds(t).to_string()),
            pinned: pins
                .iter()
                .find(|p| p.upgrader == Some(program.id()))
                .map(|p| p.name.clone()),
            holders: crate::bpf::instances::holders(program.id()),
            counters,
            skipped_calls: program.recursion_misses(),
            selectors: tallies.selectors,
            fallbacks: tallies.fallbacks,
            refused_options: tallies.refused_options,
        });
    }
    Ok(found)
}

/// The `MPTcpExt` fallback counters of this network namespace.
fn namespace_fallbacks() -> Result<BTreeMap<String, u64>, String> {
    let text = std::fs::read_to_string("/proc/net/netstat")
        .map_err(|e| format!("reading /proc/net/netstat: {e}"))?;
    Ok(mptcp_fallback_counters(&text))
}

/// `/proc/net/netstat` holds each group as two lines, names then values,
/// both starting `Group:`; procfs parses the file but not the `MPTcpExt`
/// group, hence by hand.
fn mptcp_fallback_counters(netstat: &str) -> BTreeMap<String, u64> {
    let mut lines = netstat.lines().filter_map(|l| l.strip_prefix("MPTcpExt:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return BTreeMap::new();
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .filter(|(name, _)| name.contains("Fallback"))
        .filter_map(|(name, value)| Some((name.to_string(), value.parse().ok()?)))
        .collect()
}

/// The MPTCP sockets of this network namespace, from `ss -M` (iproute2's
/// mptcp_diag client): parsing its stable output costs less than a second
/// sock_diag implementation.
fn connections() -> Result<Vec<Connection>, String> {
    let out = std::process::Command::new("ss")
        .args(["-H", "-M", "-n", "-p", "-i", "-a"])
        .output()
        .map_err(|e| format!("running ss (iproute2) to list MPTCP sockets: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ss -M failed (is mptcp_diag available?): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(parse_ss(&String::from_utf8_lossy(&out.stdout)))
}

/// `ss -H -M -n -p -i -a` output: a line per socket (`STATE RECVQ SENDQ
/// LOCAL PEER [users:((...))]`), then its `-i` details, indented.
fn parse_ss(text: &str) -> Vec<Connection> {
    let mut connections: Vec<Connection> = Vec::new();
    for line in text.lines() {
        if line.starts_with(char::is_whitespace) {
            if let Some(last) = connections.last_mut() {
                for token in line.split_whitespace() {
                    if let Some(n) = token.strip_prefix("subflows:") {
                        last.subflows = n.parse().unwrap_or(0);
                    }
                    if token == "fallback" {
                        last.fallback = true;
                    }
                }
            }
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 5 {
            continue;
        }
        connections.push(Connection {
            state: fields[0].to_string(),
            local: fields[3].to_string(),
            peer: fields[4].to_string(),
            processes: fields[5..].iter().flat_map(|f| users(f)).collect(),
            subflows: 0,
            fallback: false,
        });
    }
    connections
}

/// `users:(("iperf3",pid=123,fd=5),("x",pid=4,fd=3))` → names and pids.
fn users(field: &str) -> Vec<(String, u32)> {
    let Some(list) = field.strip_prefix("users:(") else {
        return Vec::new();
    };
    list.split("),(")
        .filter_map(|entry| {
            let entry = entry.trim_matches(|c| c == '(' || c == ')');
            let mut parts = entry.split(',');
            let name = parts.next()?.trim_matches('"').to_string();
            let pid = parts.find_map(|p| p.strip_prefix("pid="))?.parse().ok()?;
            Some((name, pid))
        })
        .collect()
}

fn print_text(status: &Status) {
    let k = &status.kernel;
    let yes = |b: bool| if b { "yes" } else { "no" };
    println!("kernel {}", k.release);
    println!(
        "  BTF: {}; hook {}: {}; trampoline programs load: {}; net.mptcp.enabled here: {}",
        yes(k.btf),
        crate::kernel::preflight::HOOK,
        yes(k.hook),
        match (k.trampolines, &k.trampolines_unknown) {
            (Some(loads), _) => yes(loads).to_string(),
            (None, why) => format!("unknown ({})", why.as_deref().unwrap_or("?")),
        },
        match k.mptcp_enabled {
            Some(true) => "1",
            Some(false) => "0",
            None => "(no MPTCP in this kernel)",
        }
    );
    println!("path manager (this network namespace)");
    match &status.path_manager {
        Part::Read(pm) => {
            let limits: Vec<String> = pm.limits.iter().map(|(k, v)| format!("{k} {v}")).collect();
            println!("  limits: {}", limits.join(", "));
            if pm.endpoints.is_empty() {
                println!(
                    "  endpoints: none (connections stay on one path; `mptcpify paths auto` \
                     adds them)"
                );
            }
            for e in &pm.endpoints {
                println!(
                    "  endpoint id {} {}{} {}{}{}",
                    e.id.map_or("?".into(), |i| i.to_string()),
                    e.address.as_deref().unwrap_or("?"),
                    e.port.map_or(String::new(), |p| format!(" port {p}")),
                    e.flags.join(" "),
                    e.ifindex.map_or(String::new(), |i| format!(" ifindex {i}")),
                    e.added_by
                        .as_ref()
                        .map_or(String::new(), |o| format!(" (added by mptcpify: {o})"))
                );
            }
        }
        Part::Unreadable { error } => println!("  cannot read: {error}"),
    }
    println!("mptcpify instances");
    match &status.instances {
        Part::Read(list) if list.is_empty() => println!("  none attached"),
        Part::Read(list) => {
            for i in list {
                println!(
                    "  program id {} loaded {}{}",
                    i.program_id,
                    i.loaded_at.as_deref().unwrap_or("?"),
                    i.pinned.as_deref().map_or(String::new(), |name| format!(
                        ", pinned as {name} ({}/{name})",
                        crate::bpf::pins::ROOT
                    ))
                );
                for h in &i.holders {
                    println!("    pid {}: {}", h.pid, h.command);
                }
                let counters: Vec<String> =
                    i.counters.iter().map(|(k, v)| format!("{k} {v}")).collect();
                println!("    {}", counters.join(", "));
                println!(
                    "    socket() calls the kernel ran without it (preempted inside it on that \
                     CPU): {}",
                    i.skipped_calls
                );
                for selector in &i.selectors {
                    println!("    {}", selector.line());
                }
                if let Some(line) = tallies::fallbacks_line(&i.fallbacks) {
                    println!("    fallbacks: {line}");
                }
                if let Some(line) = tallies::refused_line(&i.refused_options) {
                    println!("    refused options: {line}");
                }
            }
        }
        Part::Unreadable { error } => println!("  cannot read: {error}"),
    }
    println!("MPTCP fallbacks counted by the kernel (this network namespace, every MPTCP socket)");
    match &status.namespace_fallbacks {
        Part::Read(counters) if counters.values().all(|&v| v == 0) => println!("  none"),
        Part::Read(counters) => {
            let rows: Vec<String> = counters
                .iter()
                .filter(|(_, v)| **v > 0)
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            println!("  {}", rows.join(", "));
        }
        Part::Unreadable { error } => println!("  cannot read: {error}"),
    }
    println!("MPTCP sockets (this network namespace)");
    match &status.connections {
        Part::Read(list) if list.is_empty() => println!("  none"),
        Part::Read(list) => {
            for c in list {
                let who: Vec<String> = c
                    .processes
                    .iter()
                    .map(|(n, p)| format!("{n} (pid {p})"))
                    .collect();
                println!(
                    "  {} {} -> {} {}: {}",
                    c.state,
                    c.local,
                    c.peer,
                    who.join(", "),
                    if c.fallback {
                        "fell back to TCP".to_string()
                    } else {
                        format!("{} extra subflows", c.subflows)
                    }
                );
            }
        }
        Part::Unreadable { error } => println!("  cannot read: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_namespaces_mptcp_fallback_counters() {
        let netstat = "TcpExt: SyncookiesSent X\nTcpExt: 0 1\n\
                       MPTcpExt: MPCapableSYNRX MPCapableFallbackACK DSSNotMatching \
                       DssFallback SimultConnectFallback\n\
                       MPTcpExt: 40 2 0 1 0\n";
        let counters = mptcp_fallback_counters(netstat);
        assert_eq!(
            counters.into_iter().collect::<Vec<_>>(),
            [
                ("DssFallback".to_string(), 1),
                ("MPCapableFallbackACK".to_string(), 2),
                ("SimultConnectFallback".to_string(), 0)
            ]
        );
        assert!(mptcp_fallback_counters("TcpExt: a\nTcpExt: 1\n").is_empty());
    }

    #[test]
    fn reads_ss_sockets_processes_subflows_and_fallback() {
        let text = "ESTAB 0 0 10.0.1.1:5201 10.0.1.2:40000 users:((\"iperf3\",pid=123,fd=5))\n\
                    \t subflows:1 add_addr_signal:1 token:ab12 write_seq:1\n\
                    ESTAB 0 0 127.0.0.1:80 127.0.0.1:5555 users:((\"nginx\",pid=7,fd=3),(\"nginx\",pid=8,fd=3))\n\
                    \t fallback token:0\n\
                    LISTEN 0 511 0.0.0.0:80 0.0.0.0:*\n";
        let c = parse_ss(text);
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].processes, [("iperf3".to_string(), 123)]);
        assert_eq!((c[0].subflows, c[0].fallback), (1, false));
        assert_eq!(c[1].processes.len(), 2);
        assert!(c[1].fallback);
        assert_eq!(c[2].state, "LISTEN");
        assert!(c[2].processes.is_empty());
    }
}
