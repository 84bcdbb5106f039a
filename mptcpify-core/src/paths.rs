//! The MPTCP paths of one network namespace, as data: what the in-kernel
//! path manager has (endpoints, limits), what the host has (interfaces and
//! their addresses), and the pure decisions over them:
//!
//! - [`verdict`]: how many paths a new connection can use here, and why not
//!   more (`mptcpify paths`);
//! - [`auto`]: the endpoints to add and remove, and the limits to raise, so
//!   that every usable address is a path (`paths auto`, `--paths auto`);
//! - [`reset`]: the undoing of exactly what mptcpify added (`paths reset`,
//!   and the upgrader's exit).
//!
//! mptcpify reads the kernel over netlink, calls these, and writes what they
//! return; what it added is kept in a [`Record`] under `/run/mptcpify/`, so
//! that it never touches an endpoint it did not add (NetworkManager's, an
//! administrator's).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// The kernel's cap on both limits (`MPTCP_PM_ADDR_MAX`,
/// net/mptcp/pm_netlink.c, pm_kernel.c from 6.15: "limit greater than
/// maximum" above it).
pub const KERNEL_MAX: u32 = 8;

/// Endpoint flags (`MPTCP_PM_ADDR_FLAG_*`, include/uapi/linux/mptcp.h).
pub mod flag {
    pub const SIGNAL: u32 = 1 << 0;
    pub const SUBFLOW: u32 = 1 << 1;
    pub const BACKUP: u32 = 1 << 2;
    pub const FULLMESH: u32 = 1 << 3;
    pub const IMPLICIT: u32 = 1 << 4;
    /// Linux 6.18 (`MPTCP_PM_ADDR_FLAG_LAMINAR`).
    pub const LAMINAR: u32 = 1 << 5;

    /// The names `ip mptcp endpoint` uses, in bit order.
    pub const NAMES: [(u32, &str); 6] = [
        (SIGNAL, "signal"),
        (SUBFLOW, "subflow"),
        (BACKUP, "backup"),
        (FULLMESH, "fullmesh"),
        (IMPLICIT, "implicit"),
        (LAMINAR, "laminar"),
    ];

    /// `signal subflow`, and `0x40` for a bit this list does not name.
    pub fn names(flags: u32) -> Vec<String> {
        let mut names: Vec<String> = NAMES
            .iter()
            .filter(|(bit, _)| flags & bit != 0)
            .map(|(_, name)| (*name).to_string())
            .collect();
        let unknown = flags & !NAMES.iter().fold(0, |all, (bit, _)| all | bit);
        if unknown != 0 {
            names.push(format!("{unknown:#x}"));
        }
        names
    }
}

/// One interface of the namespace, with its addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Interface {
    pub index: u32,
    pub name: String,
    /// Administratively up and running (`IFF_UP` and `IFF_RUNNING`: a
    /// carrier, or a device that has none to lose).
    pub up: bool,
    pub loopback: bool,
    pub addresses: Vec<Address>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Address {
    pub ip: IpAddr,
    /// `RT_SCOPE_*`: 0 is global (universe), 253 link, 254 host.
    pub scope: u8,
    /// IPv6 duplicate address detection is not over (`IFA_F_TENTATIVE`)
    /// or failed (`IFA_F_DADFAILED`): the address cannot be used yet.
    pub tentative: bool,
}

/// Why an address is not a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unusable {
    Loopback,
    Down,
    NotGlobal,
    Tentative,
    /// Not among the interfaces named with `--interface`.
    NotChosen,
}

impl Unusable {
    pub fn says(self) -> &'static str {
        match self {
            Unusable::Loopback => "loopback",
            Unusable::Down => "interface down",
            Unusable::NotGlobal => "not global scope",
            Unusable::Tentative => "duplicate address detection not done",
            Unusable::NotChosen => "interface not chosen (--interface)",
        }
    }
}

/// An address that can carry a subflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub ifindex: u32,
    pub interface: String,
    pub ip: IpAddr,
}

/// Each address of each interface, usable or why not. `only`: the
/// interfaces chosen (empty: all).
pub fn classify(interfaces: &[Interface], only: &[String]) -> Vec<(Candidate, Option<Unusable>)> {
    let mut all = Vec::new();
    for interface in interfaces {
        for address in &interface.addresses {
            let why = if interface.loopback {
                Some(Unusable::Loopback)
            } else if !only.is_empty() && !only.contains(&interface.name) {
                Some(Unusable::NotChosen)
            } else if !interface.up {
                Some(Unusable::Down)
            } else if address.scope != 0 || address.ip.is_loopback() {
                Some(Unusable::NotGlobal)
            } else if address.tentative {
                Some(Unusable::Tentative)
            } else {
                None
            };
            all.push((
                Candidate {
                    ifindex: interface.index,
                    interface: interface.name.clone(),
                    ip: address.ip,
                },
                why,
            ));
        }
    }
    all
}

/// The usable addresses, in interface order.
pub fn usable(interfaces: &[Interface], only: &[String]) -> Vec<Candidate> {
    classify(interfaces, only)
        .into_iter()
        .filter(|(_, why)| why.is_none())
        .map(|(c, _)| c)
        .collect()
}

/// An endpoint as the kernel lists it (`ip mptcp endpoint show`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: u8,
    pub ip: Option<IpAddr>,
    /// 0: none.
    pub port: u16,
    pub flags: u32,
    /// 0: no device.
    pub ifindex: i32,
}

/// `ip mptcp limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub subflows: u32,
    pub add_addr_accepted: u32,
}

/// `--paths MODE` and the config file's `paths` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum PathsMode {
    /// An endpoint for every usable address, limits raised to fit,
    /// following addresses while attached, undone at exit.
    Auto,
}

/// Which flags mptcpify's endpoints get (NetworkManager's
/// `connection.mptcp-flags` names the same two).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Roles {
    /// `signal subflow`: peers learn the address, and this host opens
    /// subflows from it.
    #[default]
    Both,
    SignalOnly,
    SubflowOnly,
}

impl Roles {
    pub fn flags(self) -> u32 {
        match self {
            Roles::Both => flag::SIGNAL | flag::SUBFLOW,
            Roles::SignalOnly => flag::SIGNAL,
            Roles::SubflowOnly => flag::SUBFLOW,
        }
    }
}

/// One endpoint mptcpify added, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Added {
    pub id: u8,
    pub ip: IpAddr,
    pub ifindex: u32,
    pub interface: String,
    pub flags: u32,
    /// Who added it: `paths auto`, `pid 1234` (an upgrader with
    /// `--paths auto`) or `pin NAME` (one with `--pin NAME`, whose
    /// endpoints stay until `mptcpify detach NAME`).
    pub owner: String,
}

/// What mptcpify changed in one namespace: the file under `/run/mptcpify/`
/// that `paths reset` undoes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The limits before mptcpify first raised them (`None`: never raised).
    pub limits_before: Option<Limits>,
    /// The limits mptcpify last set; they are restored only if they still
    /// are what is set (someone else's later change is kept).
    pub limits_set: Option<Limits>,
    pub endpoints: Vec<Added>,
}

/// The endpoints to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addition {
    pub candidate: Candidate,
    pub flags: u32,
}

/// What one step writes, in this order: removals, additions, limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub remove: Vec<Added>,
    pub add: Vec<Addition>,
    pub limits: Option<Limits>,
    /// Usable addresses left alone because an endpoint that is not
    /// mptcpify's already has them.
    pub foreign: Vec<(Candidate, u8)>,
    /// Record entries whose endpoint is gone from the kernel (someone
    /// deleted it): dropped from the record, nothing to write.
    pub vanished: Vec<Added>,
    /// A limit already above what mptcpify would set is left as it is.
    pub limits_kept: bool,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.add.is_empty() && self.limits.is_none()
    }
}

/// More usable addresses than the kernel can use paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooMany {
    pub usable: Vec<Candidate>,
}

/// Whether endpoint `e` is the one a record entry names: same id, same
/// address (an id is reused once freed, so the id alone is not enough).
pub fn is_recorded(added: &Added, e: &Endpoint) -> bool {
    e.id == added.id && e.ip == Some(added.ip)
}

/// Who in mptcpify added endpoint `e` (`None`: not mptcpify).
pub fn added_by<'a>(recorded: &'a [Added], e: &Endpoint) -> Option<&'a str> {
    recorded
        .iter()
        .find(|a| is_recorded(a, e))
        .map(|a| a.owner.as_str())
}

/// Whether a record entry is still the kernel's endpoint.
fn present(added: &Added, endpoints: &[Endpoint]) -> bool {
    endpoints.iter().any(|e| is_recorded(added, e))
}

/// The plan that makes every usable address a path. `owner` names the new
/// entries. With more usable addresses than [`KERNEL_MAX`], `strict`
/// refuses ([`TooMany`], nothing written); otherwise the first
/// `KERNEL_MAX` in interface order are used.
pub fn auto(
    usable: &[Candidate],
    endpoints: &[Endpoint],
    limits: Limits,
    record: &Record,
    roles: Roles,
    strict: bool,
) -> Result<Plan, TooMany> {
    if strict && usable.len() > KERNEL_MAX as usize {
        return Err(TooMany {
            usable: usable.to_vec(),
        });
    }
    let wanted: Vec<&Candidate> = usable.iter().take(KERNEL_MAX as usize).collect();
    let flags = roles.flags();
    let mut plan = Plan::default();
    let mut kept = 0u32;
    for added in &record.endpoints {
        if !present(added, endpoints) {
            plan.vanished.push(added.clone());
            continue;
        }
        let still = wanted
            .iter()
            .any(|c| c.ip == added.ip && c.ifindex == added.ifindex);
        if still && added.flags == flags {
            kept += 1;
        } else {
            plan.remove.push(added.clone());
        }
    }
    let ours = |ip: IpAddr| {
        record
            .endpoints
            .iter()
            .any(|a| a.ip == ip && present(a, endpoints))
    };
    let mut others = 0u32;
    for e in endpoints {
        if let Some(ip) = e.ip {
            if !ours(ip) && e.flags & (flag::SIGNAL | flag::SUBFLOW) != 0 {
                others += 1;
            }
        }
    }
    for candidate in wanted {
        if ours(candidate.ip) {
            let replaced = plan.remove.iter().any(|a| a.ip == candidate.ip);
            if !replaced {
                continue;
            }
        } else if let Some(e) = endpoints.iter().find(|e| e.ip == Some(candidate.ip)) {
            plan.foreign.push((candidate.clone(), e.id));
            continue;
        }
        plan.add.push(Addition {
            candidate: candidate.clone(),
            flags,
        });
    }
    let total = (kept + plan.add.len() as u32 + others).min(KERNEL_MAX);
    let target = Limits {
        subflows: limits.subflows.max(total),
        add_addr_accepted: limits.add_addr_accepted.max(total),
    };
    if target != limits {
        plan.limits = Some(target);
    }
    plan.limits_kept = limits.subflows > total || limits.add_addr_accepted > total;
    Ok(plan)
}

/// The record after `plan` was written; `ids` are the ids the kernel gave
/// the additions, in order; `before`: the limits read before writing.
pub fn record_after(
    record: &Record,
    plan: &Plan,
    ids: &[u8],
    before: Limits,
    owner: &str,
) -> Record {
    let mut next = record.clone();
    next.endpoints
        .retain(|a| !plan.remove.contains(a) && !plan.vanished.contains(a));
    for (addition, id) in plan.add.iter().zip(ids) {
        next.endpoints.push(Added {
            id: *id,
            ip: addition.candidate.ip,
            ifindex: addition.candidate.ifindex,
            interface: addition.candidate.interface.clone(),
            flags: addition.flags,
            owner: owner.to_string(),
        });
    }
    if let Some(limits) = plan.limits {
        if next.limits_before.is_none() {
            next.limits_before = Some(before);
        }
        next.limits_set = Some(limits);
    }
    next
}

/// What undoing writes: the endpoints to delete, and the limits to put
/// back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Undo {
    pub remove: Vec<Added>,
    pub limits: Option<Limits>,
    /// The limits were changed by someone else since mptcpify set them:
    /// kept as they are.
    pub limits_changed_since: Option<Limits>,
    /// Entries whose endpoint is already gone.
    pub vanished: Vec<Added>,
    /// What stays recorded (other owners' endpoints).
    pub remaining: Record,
}

/// Undoes the record's entries of `owner` (`None`: every owner). The limits
/// are restored when no entry remains and they still are what mptcpify set.
pub fn reset(record: &Record, endpoints: &[Endpoint], limits: Limits, owner: Option<&str>) -> Undo {
    let mut undo = Undo::default();
    let mut remaining = record.clone();
    remaining.endpoints.clear();
    for added in &record.endpoints {
        let mine = owner.is_none_or(|o| o == added.owner);
        if !mine {
            remaining.endpoints.push(added.clone());
        } else if present(added, endpoints) {
            undo.remove.push(added.clone());
        } else {
            undo.vanished.push(added.clone());
        }
    }
    if remaining.endpoints.is_empty() {
        if let (Some(before), Some(set)) = (record.limits_before, record.limits_set) {
            if limits == set {
                if before != limits {
                    undo.limits = Some(before);
                }
            } else {
                undo.limits_changed_since = Some(limits);
            }
        }
        remaining.limits_before = None;
        remaining.limits_set = None;
    }
    undo.remaining = remaining;
    undo
}

/// The in-kernel path manager or the userspace one (`net.mptcp.pm_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PmType {
    Kernel,
    Userspace,
    /// A value this version does not know.
    Other(u32),
}

impl PmType {
    pub fn from_sysctl(value: &str) -> PmType {
        match value.trim() {
            "0" | "kernel" => PmType::Kernel,
            "1" | "userspace" => PmType::Userspace,
            other => PmType::Other(other.parse().unwrap_or(u32::MAX)),
        }
    }
}

/// How many paths a new connection can use here, and why not more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Paths one connection can use at most: its first subflow plus the
    /// extra ones.
    pub paths: u32,
    /// Extra subflows this host opens from its `subflow` endpoints.
    pub extra_from_here: u32,
    /// Addresses a peer announces that this host accepts.
    pub accepted_from_peer: u32,
    /// This host's addresses announced to peers (`signal` endpoints).
    pub announced: u32,
    /// Why not more, one sentence each, with the fix.
    pub reasons: Vec<String>,
}

/// `paths`: the plain verdict over what was read.
pub fn verdict(
    pm: PmType,
    usable: &[Candidate],
    endpoints: &[Endpoint],
    limits: Limits,
) -> Verdict {
    let mut reasons = Vec::new();
    if pm != PmType::Kernel {
        reasons.push(
            "the path manager is not the kernel's (net.mptcp.pm_type is not 0): a userspace \
             daemon such as mptcpd decides the paths, and endpoints are not used"
                .to_string(),
        );
        return Verdict {
            paths: 1,
            extra_from_here: 0,
            accepted_from_peer: 0,
            announced: 0,
            reasons,
        };
    }
    let with = |bit: u32| endpoints.iter().filter(|e| e.flags & bit != 0).count() as u32;
    let (subflow, signal) = (with(flag::SUBFLOW), with(flag::SIGNAL));
    let extra_from_here = subflow.min(limits.subflows);
    let accepted_from_peer = limits.add_addr_accepted.min(limits.subflows);
    // Both are "up to": the first subflow's own address is not opened
    // again, and a peer may announce nothing.
    if endpoints.is_empty() {
        reasons.push(
            "no endpoints: this host opens no extra subflow and announces no address \
             (mptcpify paths auto adds them)"
                .to_string(),
        );
    } else {
        if subflow == 0 {
            reasons
                .push("no subflow endpoint: this host opens no extra subflow itself".to_string());
        }
        if signal == 0 {
            reasons.push("no signal endpoint: peers learn none of this host's addresses".into());
        }
    }
    if limits.subflows == 0 {
        reasons.push(
            "the subflows limit is 0: no extra subflow is opened or accepted \
             (ip mptcp limits; mptcpify paths auto raises it)"
                .to_string(),
        );
    } else if subflow > limits.subflows {
        reasons.push(format!(
            "the subflows limit ({}) is below the {subflow} subflow endpoints",
            limits.subflows
        ));
    }
    if limits.add_addr_accepted == 0 && limits.subflows > 0 {
        reasons.push("add_addr_accepted is 0: addresses a peer announces are ignored".to_string());
    }
    let bare: Vec<String> = usable
        .iter()
        .filter(|c| !endpoints.iter().any(|e| e.ip == Some(c.ip)))
        .map(|c| format!("{} ({})", c.ip, c.interface))
        .collect();
    if !bare.is_empty() {
        reasons.push(format!(
            "usable addresses without an endpoint: {} (mptcpify paths auto adds them)",
            bare.join(", ")
        ));
    }
    if usable.len() > KERNEL_MAX as usize {
        reasons.push(format!(
            "{} usable addresses: the kernel uses at most {KERNEL_MAX} extra subflows per \
             connection",
            usable.len()
        ));
    }
    // The subflows limit caps every extra subflow of a connection, those
    // opened from local endpoints and those to announced addresses alike
    // (`subflows_max`, net/mptcp/pm_netlink.c; pm_kernel.c from 6.15).
    let paths = 1 + limits
        .subflows
        .min(extra_from_here + accepted_from_peer)
        .min(KERNEL_MAX);
    Verdict {
        paths,
        extra_from_here,
        accepted_from_peer,
        announced: signal,
        reasons,
    }
}

#[cfg(test)]
mod tests;
