//! What mptcpify added to a network namespace's path manager, on disk:
//! `/run/mptcpify/paths/net-COOKIE.json`, one file per namespace, by its
//! cookie: an inode number is reused once a namespace is gone, and a new
//! namespace must not inherit a dead one's record. So that `mptcpify paths reset` undoes
//! exactly that, even after the mptcpify that added it was killed. `/run`
//! is a tmpfs: the record goes with a reboot, as the endpoints do.
//!
//! Every read-plan-write step holds the namespace's lock (`flock` on
//! `net-COOKIE.lock`), so `paths auto`, `paths reset` and upgraders with
//! `--paths auto` in one namespace take turns.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::PathBuf;

use mptcpify_core::paths::Record;

use crate::errors::Failure;

pub const DIR: &str = "/run/mptcpify/paths";

/// The namespace's record, locked while this lives.
pub struct Locked {
    /// Holds the lock; released on drop (and by the kernel at exit).
    _lock: File,
    path: PathBuf,
    pub record: Record,
}

/// The cookie of the caller's network namespace: the record's key.
pub fn cookie() -> Result<u64, Failure> {
    crate::sys::netns::own_cookie()
        .map_err(|e| failure(format!("reading the network namespace's cookie: {e}")))
}

/// The inode of the caller's network namespace (`ls -Li /proc/self/ns/net`),
/// as shown to the operator.
pub fn netns() -> Result<u64, Failure> {
    rustix::fs::stat("/proc/self/ns/net")
        .map(|st| st.st_ino)
        .map_err(|e| failure(format!("reading /proc/self/ns/net: {e}")))
}

fn failure(what: String) -> Failure {
    Failure::Paths {
        what,
        fix: "mptcpify keeps what it added under /run/mptcpify/paths: run it as root, with \
              /run writable"
            .into(),
    }
}

/// The record of the namespace whose cookie is `netns`.
fn file(netns: u64) -> PathBuf {
    PathBuf::from(format!("{DIR}/net-{netns}.json"))
}

/// The caller's namespace's record, read without the lock, for a look
/// only: the file is renamed into place, so it is read whole, old or new.
/// None (or unreadable): empty.
pub fn peek() -> Record {
    cookie()
        .ok()
        .and_then(|netns| std::fs::read(file(netns)).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

impl Locked {
    /// Takes the lock of the caller's namespace, and reads its record (none
    /// yet: empty).
    pub fn take() -> Result<Locked, Failure> {
        let netns = cookie()?;
        std::fs::create_dir_all(DIR).map_err(|e| failure(format!("creating {DIR}: {e}")))?;
        let lock_path = format!("{DIR}/net-{netns}.lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| failure(format!("opening {lock_path}: {e}")))?;
        rustix::fs::flock(lock.as_fd(), rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| failure(format!("locking {lock_path}: {e}")))?;
        let path = file(netns);
        let record = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Failure::Paths {
                what: format!("{} does not parse: {e}", path.display()),
                fix: format!(
                    "It is mptcpify's record of the endpoints it added here. Remove those \
                     by hand (ip mptcp endpoint show; ip mptcp endpoint delete id ID), then \
                     the file (rm {})",
                    path.display()
                ),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Record::default(),
            Err(e) => return Err(failure(format!("reading {}: {e}", path.display()))),
        };
        Ok(Locked {
            _lock: lock,
            path,
            record,
        })
    }

    /// Writes `record` in place of the file (atomically: a kill leaves the
    /// old one or the new one); an empty record removes it.
    pub fn save(&mut self, record: Record) -> Result<(), Failure> {
        if record == Record::default() {
            match std::fs::remove_file(&self.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(failure(format!("removing {}: {e}", self.path.display()))),
            }
        } else {
            let text = serde_json::to_string_pretty(&record).expect("plain data serialises");
            let tmp = self.path.with_extension("json.tmp");
            let written = File::create(&tmp)
                .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
                .and_then(|()| std::fs::rename(&tmp, &self.path));
            written.map_err(|e| failure(format!("writing {}: {e}", self.path.display())))?;
        }
        self.record = record;
        Ok(())
    }
}
