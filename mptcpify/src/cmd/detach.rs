//! `mptcpify detach [NAME|--all]`: the end of an upgrade pinned with
//! `--pin NAME` (see [`crate::bpf::pins`]): its pins are removed, and the
//! kernel frees its programs once nothing else holds them.

use crate::bpf::pins::{check_name, list, Pinned, ROOT};
use crate::cli::DetachArgs;
use crate::errors::{exit, Failure};

/// Waits until the kernel no longer lists program `id`: a link whose pin
/// is removed is freed by a kernel worker (`bpf_link_put` defers it,
/// kernel/bpf/syscall.c), a moment later. Whether it is gone.
fn wait_until_gone(id: u32) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while crate::bpf::instances::attached_ids().is_ok_and(|ids| ids.contains(&id)) {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    true
}

/// `mptcpify detach NAME|--all`.
pub async fn detach(args: &DetachArgs) -> Result<i32, Failure> {
    let pins = list().map_err(|what| Failure::Pin {
        what,
        fix: "Run it as root.".into(),
    })?;
    let name = match (&args.name, args.all) {
        (Some(name), _) => Some(name.as_str()),
        (None, false) => Some(crate::cli::DEFAULT_PIN),
        (None, true) => None,
    };
    let chosen: Vec<&Pinned> = match name {
        Some(name) => {
            check_name(name)?;
            let chosen: Vec<&Pinned> = pins.iter().filter(|p| p.name == name).collect();
            if chosen.is_empty() {
                let names: Vec<&str> = pins.iter().map(|p| p.name.as_str()).collect();
                return Err(Failure::Pin {
                    what: format!("no upgrade is pinned as {name:?} in {ROOT}"),
                    fix: if names.is_empty() {
                        "Nothing is pinned: there is nothing to detach.".into()
                    } else {
                        format!("Pinned: {} (mptcpify status lists them).", names.join(", "))
                    },
                });
            }
            chosen
        }
        None => pins.iter().collect(),
    };
    for pin in chosen {
        std::fs::remove_dir_all(&pin.dir).map_err(|e| Failure::Pin {
            what: format!("removing {}: {e}", pin.dir.display()),
            fix: "Run it as root.".into(),
        })?;
        let held: Vec<String> = pin
            .upgrader
            .map(crate::bpf::instances::holders)
            .unwrap_or_default()
            .iter()
            .map(|h| h.pid.to_string())
            .collect();
        if held.is_empty() {
            if pin.upgrader.is_some_and(|id| !wait_until_gone(id)) {
                eprintln!(
                    "mptcpify: warning: unpinned {}, but the kernel still lists its program \
                     after 10 s",
                    pin.name
                );
            } else {
                eprintln!("mptcpify: detached {}: new sockets are TCP again", pin.name);
            }
        } else {
            eprintln!(
                "mptcpify: unpinned {}; the mptcpify holding it (pid {}) keeps it attached \
                 until it exits",
                pin.name,
                held.join(", ")
            );
        }
        // What its --paths auto added here goes with it.
        if let Some(done) = crate::paths::reset_pinned(&pin.name).await? {
            for line in crate::paths::lines(&done) {
                eprintln!("mptcpify: paths: {line}");
            }
        }
    }
    Ok(exit::OK)
}
