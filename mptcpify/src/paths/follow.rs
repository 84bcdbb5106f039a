//! `--paths auto` on the upgrader: configure at attach, then follow the
//! namespace's links and addresses (rtnetlink events) while attached, and
//! undo at exit, unless the upgrade is pinned (then `mptcpify detach`
//! undoes it).

use std::time::Duration;

use mptcpify_core::paths::Roles;

use crate::errors::Failure;
use crate::sys::mptcp_pm::PathManager;
use crate::sys::rtnl::Watch;

/// Changes are acted on this long after the first of a burst: a link down
/// drops its addresses one by one, and are read once; and a manager that
/// adds its own endpoint with a new address (NetworkManager does it in the
/// same step as the address) has done it by then, so mptcpify leaves that
/// address alone instead of racing it for the endpoint.
const SETTLE: Duration = Duration::from_millis(300);

/// A step is also taken this often without an address event: endpoints
/// change without one (another upgrader's exit removes its own, an
/// administrator deletes one), and are caught up with.
const CATCH_UP: Duration = Duration::from_secs(10);

pub struct Follower {
    pm: PathManager,
    watch: Watch,
    owner: String,
}

/// Who a follower's endpoints belong to in the record.
pub fn owner(pin: Option<&str>) -> String {
    match pin {
        Some(name) => format!("pin {name}"),
        None => format!("pid {}", std::process::id()),
    }
}

impl Follower {
    /// Subscribes, then configures (strict: refusals come before any
    /// write). Subscribing first means no change is missed in between.
    pub async fn start(owner: String) -> Result<(Follower, super::Done), Failure> {
        let watch = Watch::subscribe().map_err(|e| Failure::Paths {
            what: format!("subscribing to address changes (rtnetlink): {e}"),
            fix: "Run mptcpify as root.".into(),
        })?;
        let pm = PathManager::open().map_err(super::netlink)?;
        let done = super::auto(&pm, Roles::Both, &[], &owner, true).await?;
        Ok((Follower { pm, watch, owner }, done))
    }

    /// Follows until the watch ends; what each step did goes to `done`. A
    /// step that fails is said, and the next change tries again.
    pub async fn run_forever(&mut self, done: impl Fn(&super::Done)) -> anyhow::Result<()> {
        let mut catch_up = tokio::time::interval(CATCH_UP);
        catch_up.tick().await;
        loop {
            tokio::select! {
                changed = self.watch.changed() => if changed.is_none() {
                    anyhow::bail!("the rtnetlink subscription closed");
                },
                _ = catch_up.tick() => {}
            }
            tokio::time::sleep(SETTLE).await;
            let _ = self.watch.drain();
            match super::auto(&self.pm, Roles::Both, &[], &self.owner, false).await {
                Ok(step) => done(&step),
                Err(e) => eprintln!(
                    "mptcpify: paths: following addresses failed, tried again at the next \
                     change: {e}"
                ),
            }
        }
    }

    /// At exit: removes this follower's endpoints (and the limits, if no
    /// one else's remain), unless `keep` (pinned).
    pub async fn stop(self, keep: bool) -> Result<super::Done, Failure> {
        if keep {
            return Ok(super::Done::default());
        }
        super::reset(&self.pm, Some(&self.owner)).await
    }
}
