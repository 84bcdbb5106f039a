//! The MPTCP paths of mptcpify's network namespace: read them, make every
//! usable address a path (`paths auto`, `--paths auto`), follow addresses
//! as they come and go, and undo exactly what mptcpify did (`paths reset`,
//! the upgrader's exit). The decisions are `mptcpify_core::paths`'; this
//! reads the kernel, writes what they return, and keeps the record.
//!
//! - [`record`]: what mptcpify added, under `/run/mptcpify/paths`.
//! - [`follow`]: the upgrader's `--paths auto`, following rtnetlink.

pub mod follow;
pub mod record;

use mptcpify_core::paths::{
    self, Added, Candidate, Endpoint, Interface, Limits, Plan, PmType, Roles, Undo,
};

use crate::errors::Failure;
use crate::sys::mptcp_pm::{self, PathManager};
use crate::sys::rtnl;

/// `net.mptcp.pm_type`: absent before Linux 6.0 (the kernel's manager only).
pub fn pm_type() -> PmType {
    std::fs::read_to_string("/proc/sys/net/mptcp/pm_type")
        .map(|v| PmType::from_sysctl(&v))
        .unwrap_or(PmType::Kernel)
}

/// What the namespace has.
pub struct Snapshot {
    pub pm: PmType,
    pub interfaces: Vec<Interface>,
    pub endpoints: Vec<Endpoint>,
    pub limits: Limits,
}

pub async fn read(pm: &PathManager) -> Result<Snapshot, Failure> {
    Ok(Snapshot {
        pm: pm_type(),
        interfaces: rtnl::interfaces().await.map_err(|e| Failure::Paths {
            what: format!("listing the interfaces (rtnetlink): {e}"),
            fix: "Run mptcpify in a network namespace it may read.".into(),
        })?,
        endpoints: pm.endpoints().await.map_err(netlink)?,
        limits: pm.limits().await.map_err(netlink)?,
    })
}

/// A path-manager request that failed.
pub fn netlink(e: mptcp_pm::Error) -> Failure {
    if matches!(e.errno, Some(libc::EPERM) | Some(libc::EACCES)) {
        return Failure::NetAdmin {
            what: e.to_string(),
        };
    }
    Failure::Paths {
        what: format!("the MPTCP path manager (netlink mptcp_pm): {e}"),
        fix: "Check that this kernel has MPTCP (net.mptcp.enabled exists) and that nothing \
              else changes the endpoints at the same time; `ip mptcp endpoint show` shows \
              them."
            .into(),
    }
}

/// Refuses what `paths auto` cannot do here, before writing anything.
fn check_writable(pm: PmType) -> Result<(), Failure> {
    if pm != PmType::Kernel {
        return Err(Failure::UserspacePathManager);
    }
    check_net_admin()
}

/// Changing endpoints and limits needs CAP_NET_ADMIN.
fn check_net_admin() -> Result<(), Failure> {
    let status = procfs::process::Process::myself().and_then(|me| me.status());
    // CAP_NET_ADMIN is capability 12 (include/uapi/linux/capability.h).
    const CAP_NET_ADMIN: u32 = 12;
    let cap_net_admin = status
        .ok()
        .is_some_and(|s| s.capeff & (1 << CAP_NET_ADMIN) != 0);
    if !cap_net_admin {
        return Err(Failure::NetAdmin {
            what: "changing MPTCP endpoints and limits needs CAP_NET_ADMIN".into(),
        });
    }
    Ok(())
}

/// What one step did, to be told.
#[derive(Default)]
pub struct Done {
    pub added: Vec<Added>,
    pub removed: Vec<Added>,
    /// (before, after)
    pub limits: Option<(Limits, Limits)>,
    /// Usable addresses that already are another's endpoint (its id).
    pub foreign: Vec<(Candidate, u8)>,
    /// Recorded endpoints someone else deleted.
    pub vanished: Vec<Added>,
    /// Usable addresses beyond the kernel's cap, left out (when following).
    pub capped: Vec<Candidate>,
    /// `reset`: limits someone changed after mptcpify set them, kept.
    pub limits_changed_since: Option<Limits>,
}

/// One `auto` step under the namespace's lock: read, plan, write, record.
/// `strict`: more usable addresses than the kernel uses is an error
/// (nothing written); otherwise the extra ones are left out, and said.
/// A write the kernel refuses undoes this step's other writes.
pub async fn auto(
    pm: &PathManager,
    roles: Roles,
    only: &[String],
    owner: &str,
    strict: bool,
) -> Result<Done, Failure> {
    check_writable(pm_type())?;
    let mut locked = record::Locked::take()?;
    let now = read(pm).await?;
    let usable = paths::usable(&now.interfaces, only);
    let plan = paths::auto(
        &usable,
        &now.endpoints,
        now.limits,
        &locked.record,
        roles,
        strict,
    )
    .map_err(|too_many| Failure::TooManyPaths {
        usable: too_many
            .usable
            .iter()
            .map(|c| format!("{} ({})", c.ip, c.interface))
            .collect(),
    })?;
    let capped = usable
        .iter()
        .skip(paths::KERNEL_MAX as usize)
        .cloned()
        .collect();
    let ids = write(pm, &plan, now.limits).await?;
    let next = paths::record_after(&locked.record, &plan, &ids, now.limits, owner);
    let added = next
        .endpoints
        .iter()
        .filter(|a| !locked.record.endpoints.contains(a))
        .cloned()
        .collect();
    locked.save(next)?;
    Ok(Done {
        added,
        removed: plan.remove,
        limits: plan.limits.map(|after| (now.limits, after)),
        foreign: plan.foreign,
        vanished: plan.vanished,
        capped,
        limits_changed_since: None,
    })
}

/// Writes a plan: removals, additions, then limits. Returns the ids the
/// kernel gave the additions. On a refusal, what this call added is
/// deleted again and the limits put back before the error is returned.
async fn write(pm: &PathManager, plan: &Plan, before: Limits) -> Result<Vec<u8>, Failure> {
    for gone in &plan.remove {
        pm.delete(gone.id, gone.ip).await.map_err(netlink)?;
    }
    let mut added: Vec<std::net::IpAddr> = Vec::new();
    let mut result = Ok(());
    for addition in &plan.add {
        let c = &addition.candidate;
        match pm.add(c.ip, c.ifindex, addition.flags).await {
            Ok(()) => added.push(c.ip),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if result.is_ok() {
        if let Some(limits) = plan.limits {
            result = pm.set_limits(limits).await;
        }
    }
    if added.is_empty() {
        return result.map(|()| Vec::new()).map_err(netlink);
    }
    let endpoints = pm.endpoints().await.map_err(netlink)?;
    let id_of = |ip: std::net::IpAddr| endpoints.iter().find(|e| e.ip == Some(ip)).map(|e| e.id);
    if let Err(e) = result {
        for ip in added {
            if let Some(id) = id_of(ip) {
                let _ = pm.delete(id, ip).await;
            }
        }
        let _ = pm.set_limits(before).await;
        return Err(netlink(e));
    }
    added
        .iter()
        .map(|ip| {
            id_of(*ip).ok_or_else(|| Failure::Paths {
                what: format!("the endpoint {ip} was added, then not listed"),
                fix: "Another tool changes the endpoints at the same time; run again.".into(),
            })
        })
        .collect()
}

/// Undoes the record's entries of `owner` (`None`: all) under the lock.
pub async fn reset(pm: &PathManager, owner: Option<&str>) -> Result<Done, Failure> {
    // What was added under the kernel's manager is removed whichever
    // manager is in use now.
    check_net_admin()?;
    let mut locked = record::Locked::take()?;
    let endpoints = pm.endpoints().await.map_err(netlink)?;
    let limits = pm.limits().await.map_err(netlink)?;
    let Undo {
        remove,
        limits: restore,
        limits_changed_since,
        vanished,
        remaining,
    } = paths::reset(&locked.record, &endpoints, limits, owner);
    for gone in &remove {
        pm.delete(gone.id, gone.ip).await.map_err(netlink)?;
    }
    if let Some(before) = restore {
        pm.set_limits(before).await.map_err(netlink)?;
    }
    locked.save(remaining)?;
    Ok(Done {
        removed: remove,
        limits: restore.map(|before| (limits, before)),
        vanished,
        limits_changed_since,
        ..Done::default()
    })
}

/// The endpoints mptcpify added in this namespace (see [`record::peek`]).
pub fn recorded() -> Vec<Added> {
    record::peek().endpoints
}

/// `mptcpify detach NAME`: undoes what the pinned upgrade `NAME` added
/// with `--paths auto` in this namespace, if it added anything.
pub async fn reset_pinned(name: &str) -> Result<Option<Done>, Failure> {
    let owner = follow::owner(Some(name));
    if !recorded().iter().any(|a| a.owner == owner) {
        return Ok(None);
    }
    let pm = PathManager::open().map_err(netlink)?;
    reset(&pm, Some(&owner)).await.map(Some)
}

/// The `--json` events of a step: one `path` per endpoint added or removed.
pub fn events(done: &Done) -> Vec<mptcpify_core::output::json::JsonEvent> {
    let time = mptcpify_core::output::json::time(std::time::SystemTime::now());
    let added = done.added.iter().map(|a| ("added", a));
    let removed = done.removed.iter().map(|a| ("removed", a));
    added
        .chain(removed)
        .map(|(action, a)| event(&time, action, a))
        .collect()
}

/// One `path` event.
pub fn event(time: &str, action: &str, a: &Added) -> mptcpify_core::output::json::JsonEvent {
    mptcpify_core::output::json::JsonEvent::Path {
        time: time.to_string(),
        action: action.into(),
        id: a.id,
        address: a.ip.to_string(),
        interface: a.interface.clone(),
        flags: paths::flag::names(a.flags),
        added_by: a.owner.clone(),
    }
}

/// The lines that tell what a step did (`mptcpify: paths: ...`).
pub fn lines(done: &Done) -> Vec<String> {
    let mut lines = Vec::new();
    let flags = |f: u32| paths::flag::names(f).join(" ");
    for a in &done.added {
        lines.push(format!(
            "endpoint {} added: dev {}, {}, id {}",
            a.ip,
            a.interface,
            flags(a.flags),
            a.id
        ));
    }
    for a in &done.removed {
        lines.push(format!(
            "endpoint {} removed (id {}, dev {})",
            a.ip, a.id, a.interface
        ));
    }
    if let Some((before, after)) = done.limits {
        lines.push(format!(
            "limits set to subflows {} add_addr_accepted {} (were {} and {})",
            after.subflows, after.add_addr_accepted, before.subflows, before.add_addr_accepted
        ));
    }
    for (c, id) in &done.foreign {
        lines.push(format!(
            "{} ({}) left alone: it already is endpoint id {id}, not mptcpify's",
            c.ip, c.interface
        ));
    }
    for a in &done.vanished {
        lines.push(format!(
            "endpoint {} (id {}) was deleted by someone else: forgotten",
            a.ip, a.id
        ));
    }
    if !done.capped.is_empty() {
        lines.push(format!(
            "left out (the kernel uses at most {} extra subflows): {}",
            paths::KERNEL_MAX,
            done.capped
                .iter()
                .map(|c| format!("{} ({})", c.ip, c.interface))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(now) = done.limits_changed_since {
        lines.push(format!(
            "limits left at subflows {} add_addr_accepted {}: changed by someone else since \
             mptcpify set them",
            now.subflows, now.add_addr_accepted
        ));
    }
    lines
}
