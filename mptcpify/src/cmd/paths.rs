//! `mptcpify paths [auto|reset] [--json]`: this network namespace's MPTCP
//! paths, shown, made to use every link, or put back.

use std::time::SystemTime;

use mptcpify_core::output::json::time;
use mptcpify_core::paths::{self, flag, Added, Limits, Roles};
use serde::Serialize;

use crate::cli::{PathsAction, PathsArgs, PathsAutoArgs};
use crate::errors::{exit, Failure};
use crate::paths::{record, Done};
use crate::sys::mptcp_pm::PathManager;

pub async fn paths(args: &PathsArgs) -> Result<i32, Failure> {
    let pm = PathManager::open().map_err(crate::paths::netlink)?;
    match &args.action {
        None => show(&pm, args.json).await,
        Some(PathsAction::Auto(auto)) => {
            change(&pm, args.json, "paths_auto", run_auto(&pm, auto)).await
        }
        Some(PathsAction::Reset) => {
            change(
                &pm,
                args.json,
                "paths_reset",
                crate::paths::reset(&pm, None),
            )
            .await
        }
    }
}

async fn run_auto(pm: &PathManager, args: &PathsAutoArgs) -> Result<Done, Failure> {
    let roles = match (args.signal_only, args.subflow_only) {
        (true, _) => Roles::SignalOnly,
        (_, true) => Roles::SubflowOnly,
        _ => Roles::Both,
    };
    crate::paths::auto(pm, roles, &args.interface, "paths auto", true).await
}

/// `paths auto` / `paths reset`: what changed, then the result.
async fn change(
    pm: &PathManager,
    json: bool,
    event: &'static str,
    step: impl std::future::Future<Output = Result<Done, Failure>>,
) -> Result<i32, Failure> {
    let done = step.await?;
    if json {
        let report = Changed {
            event,
            time: time(SystemTime::now()),
            added: done.added.iter().map(Endpoint::from).collect(),
            removed: done.removed.iter().map(Endpoint::from).collect(),
            limits: done
                .limits
                .map(|(before, after)| LimitsChange { before, after }),
            left_alone: done
                .foreign
                .iter()
                .map(|(c, id)| Foreign {
                    address: c.ip.to_string(),
                    interface: c.interface.clone(),
                    id: *id,
                })
                .collect(),
            forgotten: done.vanished.iter().map(Endpoint::from).collect(),
            left_out: done.capped.iter().map(|c| c.ip.to_string()).collect(),
        };
        println!(
            "{}",
            serde_json::to_string(&report).expect("plain data serialises")
        );
    } else {
        let lines = crate::paths::lines(&done);
        if lines.is_empty() {
            println!("nothing to change");
        }
        for line in lines {
            println!("{line}");
        }
        println!();
        show(pm, false).await?;
    }
    Ok(exit::OK)
}

/// `paths auto`'s and `paths reset`'s `--json` object.
#[derive(Serialize)]
struct Changed {
    event: &'static str,
    time: String,
    added: Vec<Endpoint>,
    removed: Vec<Endpoint>,
    limits: Option<LimitsChange>,
    /// Usable addresses that already are an endpoint not mptcpify's.
    left_alone: Vec<Foreign>,
    /// Recorded endpoints someone else deleted.
    forgotten: Vec<Endpoint>,
    /// Usable addresses beyond the kernel's cap (never with `paths auto`,
    /// which refuses them).
    left_out: Vec<String>,
}

#[derive(Serialize)]
struct LimitsChange {
    before: Limits,
    after: Limits,
}

#[derive(Serialize)]
struct Foreign {
    address: String,
    interface: String,
    id: u8,
}

#[derive(Serialize)]
struct Endpoint {
    id: u8,
    address: Option<String>,
    port: Option<u16>,
    flags: Vec<String>,
    interface: Option<String>,
    /// `null`: not mptcpify's. Otherwise who added it: `paths auto`,
    /// `pid N` (an upgrader with --paths auto), `pin NAME`.
    added_by: Option<String>,
}

impl From<&Added> for Endpoint {
    fn from(a: &Added) -> Endpoint {
        Endpoint {
            id: a.id,
            address: Some(a.ip.to_string()),
            port: None,
            flags: flag::names(a.flags),
            interface: Some(a.interface.clone()),
            added_by: Some(a.owner.clone()),
        }
    }
}

/// `paths`' `--json` object.
#[derive(Serialize)]
struct Shown {
    event: &'static str,
    time: String,
    /// The inode of the network namespace (`ls -Li /proc/self/ns/net`).
    netns: u64,
    pm_type: paths::PmType,
    interfaces: Vec<Interface>,
    endpoints: Vec<Endpoint>,
    limits: Limits,
    /// The kernel's cap on both limits.
    kernel_max: u32,
    verdict: paths::Verdict,
}

#[derive(Serialize)]
struct Interface {
    index: u32,
    name: String,
    up: bool,
    loopback: bool,
    addresses: Vec<InterfaceAddress>,
}

#[derive(Serialize)]
struct InterfaceAddress {
    address: String,
    /// `null`: usable as a path; otherwise why not.
    unusable: Option<paths::Unusable>,
}

async fn show(pm: &PathManager, json: bool) -> Result<i32, Failure> {
    let now = crate::paths::read(pm).await?;
    let recorded = crate::paths::recorded();
    let classified = paths::classify(&now.interfaces, &[]);
    let usable = paths::usable(&now.interfaces, &[]);
    let verdict = paths::verdict(now.pm, &usable, &now.endpoints, now.limits);
    let name_of = |index: i32| {
        now.interfaces
            .iter()
            .find(|i| i.index as i32 == index)
            .map(|i| i.name.clone())
    };
    let endpoints: Vec<Endpoint> = now
        .endpoints
        .iter()
        .map(|e| Endpoint {
            id: e.id,
            address: e.ip.map(|ip| ip.to_string()),
            port: (e.port != 0).then_some(e.port),
            flags: flag::names(e.flags),
            interface: (e.ifindex != 0).then(|| name_of(e.ifindex)).flatten(),
            added_by: mptcpify_core::paths::added_by(&recorded, e).map(String::from),
        })
        .collect();
    let shown = Shown {
        event: "paths",
        time: time(SystemTime::now()),
        netns: record::netns()?,
        pm_type: now.pm,
        interfaces: now
            .interfaces
            .iter()
            .map(|i| Interface {
                index: i.index,
                name: i.name.clone(),
                up: i.up,
                loopback: i.loopback,
                addresses: classified
                    .iter()
                    .filter(|(c, _)| c.ifindex == i.index)
                    .map(|(c, why)| InterfaceAddress {
                        address: c.ip.to_string(),
                        unusable: *why,
                    })
                    .collect(),
            })
            .collect(),
        endpoints,
        limits: now.limits,
        kernel_max: paths::KERNEL_MAX,
        verdict,
    };
    if json {
        println!(
            "{}",
            serde_json::to_string(&shown).expect("plain data serialises")
        );
    } else {
        print_text(&shown);
    }
    Ok(exit::OK)
}

fn print_text(s: &Shown) {
    let pm = match s.pm_type {
        paths::PmType::Kernel => "the kernel's (net.mptcp.pm_type 0)".to_string(),
        paths::PmType::Userspace => "userspace (net.mptcp.pm_type 1)".to_string(),
        paths::PmType::Other(n) => format!("unknown (net.mptcp.pm_type {n})"),
    };
    println!("network namespace net:[{}], path manager: {pm}", s.netns);
    println!("interfaces:");
    for i in &s.interfaces {
        let state = if i.up { "up" } else { "down" };
        let addresses: Vec<String> = i
            .addresses
            .iter()
            .map(|a| match a.unusable {
                None => format!("{} (usable)", a.address),
                Some(why) => format!("{} ({})", a.address, why.says()),
            })
            .collect();
        let list = if addresses.is_empty() {
            "no address".to_string()
        } else {
            addresses.join(", ")
        };
        println!("  {} {} {state}: {list}", i.index, i.name);
    }
    if s.endpoints.is_empty() {
        println!("endpoints: none");
    } else {
        println!("endpoints:");
    }
    for e in &s.endpoints {
        let mut line = format!("  id {} {}", e.id, e.address.as_deref().unwrap_or("-"));
        if let Some(port) = e.port {
            line.push_str(&format!(" port {port}"));
        }
        if let Some(dev) = &e.interface {
            line.push_str(&format!(" dev {dev}"));
        }
        if !e.flags.is_empty() {
            line.push_str(&format!(" {}", e.flags.join(" ")));
        }
        match &e.added_by {
            Some(owner) => line.push_str(&format!("  (mptcpify: {owner})")),
            None => line.push_str("  (not mptcpify's)"),
        }
        println!("{line}");
    }
    println!(
        "limits: subflows {}, add_addr_accepted {} (the kernel's maximum is {})",
        s.limits.subflows, s.limits.add_addr_accepted, s.kernel_max
    );
    let v = &s.verdict;
    println!(
        "verdict: a new connection can use up to {} path{}: {} extra subflow{} from this \
         host's endpoints, subflows to up to {} address{} a peer announces; {} of this \
         host's addresses announced",
        v.paths,
        if v.paths == 1 { "" } else { "s" },
        v.extra_from_here,
        if v.extra_from_here == 1 { "" } else { "s" },
        v.accepted_from_peer,
        if v.accepted_from_peer == 1 { "" } else { "es" },
        v.announced,
    );
    for reason in &v.reasons {
        println!("  - {reason}");
    }
}
