//! `--netns PATH` follows its path: when `/run/netns/NAME` is deleted and
//! created again (`ip netns del` / `ip netns add`), the path names a new
//! namespace with a new cookie, and the rule moves to it.
//!
//! Unlike cgroups (see mptcpify-ebpf's follow.rs), the kernel says nothing
//! that names the path when a namespace is bind-mounted there, so this is
//! done from user space, by looking every [`POLL`]: a namespace made at the
//! path is selected within that time of its creation. mptcpify keeps the
//! namespace it follows open, so that its inode number cannot be reused by
//! the next namespace and a changed inode at the path always means a new one.

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use mptcpify_common::maps::role;

use crate::bpf::loader::Attached;
use crate::policy::netns;
use crate::policy::Policy;

pub const POLL: Duration = Duration::from_millis(100);

struct Followed {
    spec: String,
    cookie: u64,
    roles: u8,
    /// The namespace the path named when last looked at, held open.
    held: std::fs::File,
}

pub struct NetnsFollower {
    followed: Vec<Followed>,
    /// The fallback mode: a new namespace needs its MPTCP setting read.
    fallback: bool,
}

impl NetnsFollower {
    /// The `--netns` selectors that name a path that can be re-created
    /// (not `self`, not `/proc/PID/ns/net`, which dies with its process).
    pub fn new(policy: &Policy, fallback: bool) -> NetnsFollower {
        let followed = policy
            .netns_specs
            .iter()
            .filter(|(_, spec)| spec != "self" && !spec.starts_with("/proc/"))
            .filter_map(|(cookie, spec)| {
                let roles = policy.netns.0.iter().find(|(k, _, _)| k == cookie)?.1;
                Some(Followed {
                    spec: spec.clone(),
                    cookie: *cookie,
                    roles,
                    held: std::fs::File::open(spec).ok()?,
                })
            })
            .collect();
        NetnsFollower { followed, fallback }
    }

    /// Looks every [`POLL`] and moves rules to re-created namespaces; never
    /// returns (pending forever when nothing is followed).
    pub async fn run_forever(&mut self, attached: &mut Attached) -> anyhow::Result<()> {
        if self.followed.is_empty() {
            return std::future::pending().await;
        }
        let mut ticks = tokio::time::interval(POLL);
        loop {
            ticks.tick().await;
            for followed in &mut self.followed {
                if let Some(moved) = look(followed, self.fallback) {
                    let (old, new, roles) = moved;
                    attached.move_netns_rule(old, new, roles)?;
                    eprintln!(
                        "mptcpify: --netns {} names a new namespace (cookie {new}); following it",
                        followed.spec
                    );
                }
            }
        }
    }
}

/// `Some((old cookie, new cookie, roles))` when the path names another
/// namespace than the one held.
fn look(followed: &mut Followed, fallback: bool) -> Option<(u64, u64, u8)> {
    let now = std::fs::metadata(&followed.spec).ok()?;
    let held = followed.held.metadata().ok()?;
    if (now.dev(), now.ino()) == (held.dev(), held.ino()) {
        return None;
    }
    // A file just created by `ip netns add` is not mounted yet: then this
    // fails, and the next look sees the namespace.
    let cookie = netns::resolve(&followed.spec).ok()?;
    let held = std::fs::File::open(&followed.spec).ok()?;
    let mut roles = followed.roles;
    if fallback && netns::mptcp_enabled_at(&followed.spec).unwrap_or(false) {
        roles |= role::MPTCP_CHECKED;
    }
    let old = std::mem::replace(&mut followed.cookie, cookie);
    followed.held = held;
    Some((old, cookie, roles))
}
