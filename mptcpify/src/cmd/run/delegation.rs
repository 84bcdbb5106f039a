//! Where `mptcpify run` may make CMD's cgroup. A cgroup v2 subtree has one
//! manager: on a systemd machine, systemd owns every cgroup but those it
//! delegated (Delegate=yes; systemd.io/CGROUP_DELEGATION). A login session's
//! scope or a service is not delegated, and a cgroup made inside one is
//! systemd's to remove or reorganise. So, under systemd and outside a
//! delegated unit, mptcpify first moves itself into a transient scope of its
//! own with Delegate=yes, in the slice it runs in: what
//! `systemd-run --scope -p Delegate=yes` does, asked over D-Bus.
//!
//! D-Bus through `busctl`, systemd's own client: it is there wherever
//! systemd is, and this one call does not justify a D-Bus stack in the binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::errors::Failure;
use crate::policy::cgroup;
use crate::policy::cgroup::own_relative;

/// How long systemd may take to move mptcpify into its new scope.
const MOVE_TIMEOUT: Duration = Duration::from_secs(5);

/// A cgroup that mptcpify may divide: its own when that is delegated to it
/// (or when systemd does not manage cgroups here), else a new delegated
/// scope's, which mptcpify has moved into.
pub fn parent() -> Result<PathBuf, Failure> {
    let own = cgroup::own()?;
    // sd_booted(3): systemd is PID 1 and manages the cgroups.
    if !Path::new("/run/systemd/system").exists() || is_delegated(&own) {
        return Ok(own);
    }
    let unit = format!("mptcpify-run-{}.scope", std::process::id());
    let relative = own_relative()?;
    let mut busctl = Command::new("busctl");
    busctl.args([
        "call",
        "org.freedesktop.systemd1",
        "/org/freedesktop/systemd1",
        "org.freedesktop.systemd1.Manager",
        "StartTransientUnit",
        "ssa(sv)a(sa(sv))",
        &unit,
        "fail",
    ]);
    // Properties as (name, D-Bus signature, value words).
    let pid = std::process::id().to_string();
    let mut properties: Vec<(&str, &str, Vec<&str>)> = vec![
        ("PIDs", "au", vec!["1", &pid]),
        ("Delegate", "b", vec!["true"]),
        ("CollectMode", "s", vec!["inactive-or-failed"]),
        (
            "Description",
            "s",
            vec!["mptcpify run: the command's delegated scope"],
        ),
    ];
    if let Some(slice) = slice_of(&relative) {
        properties.push(("Slice", "s", vec![slice]));
    }
    busctl.arg(properties.len().to_string());
    for (name, signature, value) in &properties {
        busctl.args([name, signature]).args(value);
    }
    busctl.arg("0");
    let setup_failure = |what: String| Failure::RunSetup {
        what,
        fix: "systemd manages the cgroups here and the current one is not delegated, so \
              `mptcpify run` asks systemd (over D-Bus, with busctl) for a scope with \
              Delegate=yes to put CMD in. Check that `busctl status` works as root, or run \
              mptcpify inside a unit with Delegate=yes, or start CMD yourself \
              (systemd-run --scope) and select it with --pid, --comm or --cgroup."
            .into(),
    };
    let out = busctl.output().map_err(|e| {
        setup_failure(format!(
            "cannot ask systemd for a delegated scope for CMD: busctl: {e}"
        ))
    })?;
    if !out.status.success() {
        return Err(setup_failure(format!(
            "systemd refused a delegated scope {unit} for CMD: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    // systemd moves the process when it starts the scope's job, just after
    // answering; wait for it, so that CMD's cgroup is made in the scope.
    let started = Instant::now();
    loop {
        let now = own_relative()?;
        if Path::new(&now).file_name() == Some(unit.as_ref()) {
            return cgroup::own();
        }
        if started.elapsed() > MOVE_TIMEOUT {
            return Err(setup_failure(format!(
                "systemd created the scope {unit} but did not move mptcpify into it within {} s \
                 (still in {now})",
                MOVE_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// systemd marks the top cgroup of a delegated unit with the extended
/// attribute `trusted.delegate` = "1" (and `user.delegate` since v252, for
/// readers without CAP_SYS_ADMIN; systemd src/core/cgroup.c,
/// cgroup_delegate_xattr_apply). Below that cgroup, the subtree is the
/// delegatee's, so any ancestor up to the mount's root counts.
fn is_delegated(own: &Path) -> bool {
    let Ok(mount) = cgroup::mount_point() else {
        return false;
    };
    own.ancestors()
        .take_while(|dir| dir.starts_with(&mount))
        .any(|dir| {
            ["trusted.delegate", "user.delegate"]
                .iter()
                .any(|name| xattr(dir, name).as_deref() == Some(b"1".as_slice()))
        })
}

/// One extended attribute's value; `None` when absent or unreadable.
fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut value = [0u8; 16];
    let len = rustix::fs::getxattr(path, name, &mut value).ok()?;
    Some(value[..len].to_vec())
}

/// The slice a cgroup path is in: its innermost `*.slice` component (the
/// new scope goes next to the session or service mptcpify was started in).
fn slice_of(relative: &str) -> Option<&str> {
    relative.split('/').rfind(|part| part.ends_with(".slice"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_new_scope_goes_into_the_innermost_slice() {
        assert_eq!(
            slice_of("/user.slice/user-1000.slice/session-3.scope"),
            Some("user-1000.slice")
        );
        assert_eq!(
            slice_of("/system.slice/mptcpify-lab.service"),
            Some("system.slice")
        );
        assert_eq!(
            slice_of("/system.slice/system-getty.slice/getty@tty1.service"),
            Some("system-getty.slice")
        );
        assert_eq!(slice_of("/"), None);
        assert_eq!(slice_of("/init.scope"), None);
    }
}
