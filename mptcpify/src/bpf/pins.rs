//! `--pin NAME`: an upgrade that stays attached after
//! mptcpify exits. Each program's link is pinned in the BPF filesystem as
//! `/sys/fs/bpf/mptcpify/NAME/PROGRAM` (the upgrader's is `mptcpify`); the
//! kernel keeps a pinned link, and with it the program and its maps, until
//! the pin is removed. A new `--pin NAME` replaces the pins one by one
//! (`Attached::pin`), after its own programs are attached; `mptcpify
//! detach` (`crate::cmd::detach`) removes them.

use std::path::{Path, PathBuf};

use aya::programs::links::{FdLink, PinnedLink};

use crate::errors::Failure;

/// Where the pins live.
pub const ROOT: &str = "/sys/fs/bpf/mptcpify";
/// The upgrader's link, in a pin's directory (the program's name).
const UPGRADER: &str = "mptcpify";
/// `BPF_FS_MAGIC` (include/uapi/linux/magic.h).
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// A pinned upgrade, as found in [`ROOT`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    pub name: String,
    pub dir: PathBuf,
    /// The upgrader's program id (`None`: its link is not pinned, e.g. an
    /// interrupted pin).
    pub upgrader: Option<u32>,
}

/// Checks a pin's name: one path component of letters, digits and `-_@`
/// (bpffs refuses dots in names, kernel/bpf/inode.c `bpf_lookup`).
pub fn check_name(name: &str) -> Result<(), Failure> {
    let fine = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_@".contains(c));
    if fine {
        Ok(())
    } else {
        Err(Failure::Pin {
            what: format!("--pin {name:?} is not a usable pin name"),
            fix: "Use up to 64 letters, digits and - _ @ (the BPF filesystem refuses dots), \
                  e.g. --pin nginx."
                .into(),
        })
    }
}

/// The directory of pin `name`, created (root only) when `create`; fails
/// with the fix when the BPF filesystem is not there.
pub fn dir(name: &str, create: bool) -> Result<PathBuf, Failure> {
    check_name(name)?;
    let bpffs = Path::new(ROOT).parent().expect("ROOT has a parent");
    if !is_bpffs(bpffs) {
        return Err(Failure::Pin {
            what: format!("the BPF filesystem is not mounted at {}", bpffs.display()),
            fix: "Mount it (`sudo mount -t bpf bpf /sys/fs/bpf`; systemd does at boot); in a \
                  container, mount the host's /sys/fs/bpf."
                .into(),
        });
    }
    let dir = Path::new(ROOT).join(name);
    if create {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Failure::Pin {
                what: format!("creating {}: {e}", dir.display()),
                fix: "Pins need root (and, under systemd, ReadWritePaths=/sys/fs/bpf).".into(),
            })?;
    }
    Ok(dir)
}

fn is_bpffs(path: &Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|stat| stat.f_type == BPF_FS_MAGIC)
}

/// Every pinned upgrade; empty when there is none (or no BPF filesystem).
pub fn list() -> Result<Vec<Pinned>, String> {
    let entries = match std::fs::read_dir(ROOT) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("reading {ROOT} (needs root): {e}")),
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let dir = entry.path();
        if !dir.is_dir() {
            continue;
        }
        let pinned = Pinned {
            name: entry.file_name().to_string_lossy().into_owned(),
            upgrader: upgrader_at(&dir),
            dir,
        };
        found.push(pinned);
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// The program id of the link pinned at `path`.
fn program_of(path: &Path) -> Option<u32> {
    let link: FdLink = PinnedLink::from_pin(path).ok()?.into();
    Some(link.info().ok()?.program_id())
}

/// The program whose link is pinned as `program` in the pin directory
/// `dir`.
pub fn program_at(dir: &Path, program: &str) -> Option<u32> {
    program_of(&dir.join(program))
}

/// The upgrader pinned as `name` (what a new `--pin name` takes over).
pub fn upgrader_of(name: &str) -> Option<u32> {
    upgrader_at(&Path::new(ROOT).join(name))
}

/// The upgrader pinned in the pin directory `dir`.
pub fn upgrader_at(dir: &Path) -> Option<u32> {
    program_of(&dir.join(UPGRADER))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::exit;

    #[test]
    fn pin_names_are_one_plain_path_component() {
        for good in ["default", "nginx", "mptcpify@web-1", "a_b"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "nginx.service", "a/b", "..", "sp ace", &"x".repeat(65)] {
            let err = check_name(bad).unwrap_err();
            assert_eq!(err.exit_code(), exit::PIN, "{bad}");
        }
    }
}
