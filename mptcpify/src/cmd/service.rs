//! `mptcpify enable UNIT` / `disable UNIT`: a service upgraded by its own
//! mptcpify@UNIT.service (dist/systemd/mptcpify@.service), started with it.
//!
//! Through `systemctl`, systemd's stable command-line interface, like the
//! rest of mptcpify's systemd use (see `cgroup::systemd_cgroup`).

use std::path::PathBuf;
use std::process::Command;

use crate::cli::UnitArgs;
use crate::errors::{exit, Failure};

/// Where administrators' drop-ins live (systemd.unit(5)).
const DROP_IN_ROOT: &str = "/etc/systemd/system";
const DROP_IN_NAME: &str = "50-mptcpify.conf";

/// A service named on the command line, and its mptcpify instance.
struct Target {
    /// `nginx.service`
    unit: String,
    /// `mptcpify@nginx.service`
    instance: String,
}

impl Target {
    fn new(name: &str) -> Result<Target, Failure> {
        let stem = name.strip_suffix(".service").unwrap_or(name);
        const OTHER_TYPES: [&str; 10] = [
            ".socket",
            ".scope",
            ".slice",
            ".target",
            ".mount",
            ".automount",
            ".timer",
            ".path",
            ".device",
            ".swap",
        ];
        if stem.is_empty()
            || stem.starts_with(['-', '.'])
            || stem.contains('/')
            || OTHER_TYPES.iter().any(|t| stem.ends_with(t))
        {
            return Err(Failure::BadSelector {
                what: format!("{name} is not a service name"),
                fix: "Give a systemd service, e.g. `mptcpify enable nginx` or \
                      `mptcpify enable nginx.service` (other unit types: run \
                      `mptcpify --cgroup PATH` yourself)."
                    .into(),
            });
        }
        Ok(Target {
            unit: format!("{stem}.service"),
            instance: format!("mptcpify@{stem}.service"),
        })
    }

    fn drop_in(&self) -> PathBuf {
        PathBuf::from(DROP_IN_ROOT)
            .join(format!("{}.d", self.unit))
            .join(DROP_IN_NAME)
    }

    fn drop_in_text(&self) -> String {
        format!(
            "# Written by `mptcpify enable {unit}`; `mptcpify disable {unit}` removes it.\n\
             # Starting {unit} starts {instance} first ({instance} is ordered\n\
             # Before={unit}), so that {unit}'s first sockets are MPTCP.\n\
             [Unit]\n\
             Wants={instance}\n",
            unit = self.unit,
            instance = self.instance
        )
    }
}

pub fn enable(args: &UnitArgs) -> Result<i32, Failure> {
    let target = Target::new(&args.unit)?;
    require_systemd()?;
    if load_state(&target.unit)? != "loaded" {
        return Err(Failure::BadSelector {
            what: format!("systemd has no unit {}", target.unit),
            fix: "Check the name with `systemctl list-units --type=service --all`.".into(),
        });
    }
    if load_state(&target.instance)? != "loaded" {
        return Err(setup(
            format!(
                "{} cannot be loaded: the unit mptcpify@.service is not installed",
                target.instance
            ),
            "Install the units of the release bundle (README, Install): \
             mptcpify@.service goes to /usr/local/lib/systemd/system/.",
        ));
    }
    let drop_in = target.drop_in();
    std::fs::create_dir_all(drop_in.parent().expect("a drop-in folder"))
        .and_then(|()| std::fs::write(&drop_in, target.drop_in_text()))
        .map_err(|e| {
            setup(
                format!("cannot write {}: {e}", drop_in.display()),
                "`mptcpify enable` changes systemd's configuration: run it as root.",
            )
        })?;
    systemctl(&["daemon-reload"])?;
    systemctl(&["enable", "--now", &target.instance])?;
    println!(
        "mptcpify: {} is enabled and attached: new TCP sockets of {} are MPTCP, now and \
         after every restart or boot ({} makes {} start it first).",
        target.instance,
        target.unit,
        drop_in.display(),
        target.unit
    );
    if active_state(&target.unit)? == "active" {
        println!(
            "mptcpify: {} was already running: its existing sockets (its listeners) stay TCP \
             until `systemctl restart {}`.",
            target.unit, target.unit
        );
    }
    Ok(exit::OK)
}

pub fn disable(args: &UnitArgs) -> Result<i32, Failure> {
    let target = Target::new(&args.unit)?;
    require_systemd()?;
    systemctl(&["disable", "--now", &target.instance])?;
    let drop_in = target.drop_in();
    match std::fs::remove_file(&drop_in) {
        Ok(()) => {
            // The folder may hold the administrator's own drop-ins: removed
            // only when empty.
            let _ = std::fs::remove_dir(drop_in.parent().expect("a drop-in folder"));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(setup(
                format!("cannot remove {}: {e}", drop_in.display()),
                "Remove it by hand, then run `systemctl daemon-reload`.",
            ))
        }
    }
    systemctl(&["daemon-reload"])?;
    println!(
        "mptcpify: {} is stopped and disabled: new sockets of {} are TCP. Its existing MPTCP \
         sockets stay MPTCP until `systemctl restart {}`.",
        target.instance, target.unit, target.unit
    );
    Ok(exit::OK)
}

fn setup(what: String, fix: &str) -> Failure {
    Failure::ServiceSetup {
        what,
        fix: fix.into(),
    }
}

fn require_systemd() -> Result<(), Failure> {
    // sd_booted(3).
    if std::path::Path::new("/run/systemd/system").is_dir() {
        return Ok(());
    }
    Err(setup(
        "systemd is not running on this machine (no /run/systemd/system)".into(),
        "`mptcpify enable` makes a systemd service; elsewhere run `mptcpify --cgroup PATH` \
         under your service manager.",
    ))
}

fn systemctl(args: &[&str]) -> Result<String, Failure> {
    let out = Command::new("systemctl").args(args).output().map_err(|e| {
        setup(
            format!("cannot run systemctl: {e}"),
            "mptcpify enable/disable drive systemd through systemctl.",
        )
    })?;
    if !out.status.success() {
        return Err(setup(
            format!(
                "`systemctl {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            "See `journalctl -xe` for why; run mptcpify enable/disable as root.",
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn load_state(unit: &str) -> Result<String, Failure> {
    systemctl(&["show", "-P", "LoadState", "--", unit])
}

fn active_state(unit: &str) -> Result<String, Failure> {
    systemctl(&["show", "-P", "ActiveState", "--", unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_is_named_with_or_without_its_suffix() {
        for name in ["nginx", "nginx.service"] {
            let target = Target::new(name).unwrap();
            assert_eq!(target.unit, "nginx.service");
            assert_eq!(target.instance, "mptcpify@nginx.service");
            assert_eq!(
                target.drop_in(),
                PathBuf::from("/etc/systemd/system/nginx.service.d/50-mptcpify.conf")
            );
            assert!(target
                .drop_in_text()
                .contains("\nWants=mptcpify@nginx.service\n"));
        }
        assert_eq!(
            Target::new("dbus-org.freedesktop.x").unwrap().unit,
            "dbus-org.freedesktop.x.service"
        );
        for bad in ["", ".service", "nginx.socket", "a.slice", "../x", "-x"] {
            assert!(Target::new(bad).is_err(), "{bad}");
        }
    }
}
