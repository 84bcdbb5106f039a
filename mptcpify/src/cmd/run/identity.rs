//! Who CMD of `mptcpify run` runs as. mptcpify must be root (or hold
//! CAP_BPF + CAP_PERFMON) to attach, but CMD should not inherit that: it
//! runs as the user who asked (sudo's `SUDO_UID`/`SUDO_GID`), or the one
//! named with `--user`/`--group`, with that user's groups and environment,
//! and without any capability. `--as-root` keeps root on purpose.
//!
//! The identity is resolved before the fork; [`Identity::drop_privileges`]
//! runs in the child between fork and exec, so it only makes system calls
//! (no allocation, no locks): which is why it is written against libc here
//! rather than through a crate whose calls may allocate.

use std::ffi::CStr;

use crate::errors::Failure;

/// The identity CMD gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    /// Supplementary groups (the user's, as `initgroups` would set them).
    pub groups: Vec<libc::gid_t>,
    /// USER/LOGNAME and HOME for CMD's environment (`None`: keep).
    pub name: Option<String>,
    pub home: Option<String>,
    /// Why this identity, for `-v`.
    pub reason: &'static str,
}

/// What the command line and the environment ask for.
pub struct Request<'a> {
    pub user: Option<&'a str>,
    pub group: Option<&'a str>,
    pub as_root: bool,
    /// `SUDO_UID`, `SUDO_GID` (from the environment).
    pub sudo: Option<(String, String)>,
}

impl Identity {
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// Decides CMD's identity.
    pub fn resolve(request: &Request) -> Result<Identity, Failure> {
        if request.as_root {
            return Ok(Identity::root("--as-root"));
        }
        let (user, group, reason) = match (request.user, &request.sudo) {
            (Some(user), _) => (user.to_string(), request.group.map(String::from), "--user"),
            (None, Some((uid, gid))) => (
                uid.clone(),
                Some(request.group.unwrap_or(gid).to_string()),
                "started through sudo (SUDO_UID)",
            ),
            // Root keeps root's groups: a --group alone would be ignored.
            (None, None) => match request.group {
                Some(group) => {
                    return Err(bad(format!(
                        "--group {group} without --user: CMD would run as root, whose groups \
                         mptcpify does not change"
                    )))
                }
                None => return Ok(Identity::root("no SUDO_UID and no --user")),
            },
        };
        let entry = Passwd::find(&user);
        let uid = match (&entry, user.parse::<libc::uid_t>()) {
            (Some(entry), _) => entry.uid,
            (None, Ok(uid)) => uid,
            (None, Err(_)) => return Err(bad(format!("--user {user}: no such user"))),
        };
        let gid = match group {
            Some(group) => group_id(&group)?,
            None => entry.as_ref().map(|e| e.gid).ok_or_else(|| {
                bad(format!(
                    "--user {user}: uid {uid} has no passwd entry; give --group too"
                ))
            })?,
        };
        let groups = match &entry {
            Some(entry) => group_list(&entry.name, gid),
            None => vec![gid],
        };
        Ok(Identity {
            uid,
            gid,
            groups,
            name: entry.as_ref().map(|e| e.name.clone()),
            home: entry.map(|e| e.home),
            reason,
        })
    }

    fn root(reason: &'static str) -> Identity {
        Identity {
            uid: 0,
            gid: 0,
            groups: Vec::new(),
            name: None,
            home: None,
            reason,
        }
    }

    /// In the child, after it joined its cgroup and before exec: drops every
    /// capability (ambient, inheritable, and with the uid change the
    /// permitted and effective ones) and becomes the user. Root stays root.
    /// Only system calls: this runs between fork and exec.
    pub fn drop_privileges(&self) -> std::io::Result<()> {
        if self.is_root() {
            return Ok(());
        }
        let check = |rc: libc::c_long| {
            if rc < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        // SAFETY: plain system calls on values prepared before the fork.
        unsafe {
            check(libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            ) as _)?;
            check(libc::setgroups(self.groups.len(), self.groups.as_ptr()) as _)?;
            check(libc::setresgid(self.gid, self.gid, self.gid) as _)?;
            // Leaving uid 0 clears the permitted and effective sets (no
            // SECBIT_KEEP_CAPS is set), and the ambient set.
            check(libc::setresuid(self.uid, self.uid, self.uid) as _)?;
            // The inheritable set survives setuid: empty it (capset, v3).
            let header = [0x2008_0522u32, 0]; // _LINUX_CAPABILITY_VERSION_3, this process
            let data = [0u32; 6]; // effective, permitted, inheritable × 2
            check(libc::syscall(
                libc::SYS_capset,
                header.as_ptr(),
                data.as_ptr(),
            ))?;
            check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) as _)?;
        }
        Ok(())
    }

    /// The environment variables CMD gets for this identity.
    pub fn environment(&self) -> Vec<(&'static str, String)> {
        let mut vars = Vec::new();
        if let Some(name) = &self.name {
            vars.push(("USER", name.clone()));
            vars.push(("LOGNAME", name.clone()));
        }
        if let Some(home) = &self.home {
            vars.push(("HOME", home.clone()));
        }
        vars
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{name} (uid {}, gid {})", self.uid, self.gid)?,
            None => write!(f, "uid {}, gid {}", self.uid, self.gid)?,
        }
        write!(f, ": {}", self.reason)
    }
}

fn bad(what: String) -> Failure {
    Failure::RunSetup {
        what,
        fix: "Name a user that exists (a name or a uid from /etc/passwd) with --user, or pass \
              --as-root to run CMD as root on purpose."
            .into(),
    }
}

/// A passwd entry.
struct Passwd {
    name: String,
    uid: libc::uid_t,
    gid: libc::gid_t,
    home: String,
}

impl Passwd {
    /// By name, or by uid when `user` is a number.
    fn find(user: &str) -> Option<Passwd> {
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        // SAFETY: a zeroed passwd filled by the _r call into our buffer.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result = std::ptr::null_mut();
        let rc = match user.parse::<libc::uid_t>() {
            Ok(uid) => unsafe {
                libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result)
            },
            Err(_) => {
                let name = std::ffi::CString::new(user).ok()?;
                unsafe {
                    libc::getpwnam_r(
                        name.as_ptr(),
                        &mut pwd,
                        buf.as_mut_ptr(),
                        buf.len(),
                        &mut result,
                    )
                }
            }
        };
        if rc != 0 || result.is_null() {
            return None;
        }
        // SAFETY: the _r call filled these with NUL-terminated strings in buf.
        let text =
            |p: *const libc::c_char| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
        Some(Passwd {
            name: text(pwd.pw_name),
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
            home: text(pwd.pw_dir),
        })
    }
}

/// A group by name or number.
fn group_id(group: &str) -> Result<libc::gid_t, Failure> {
    if let Ok(gid) = group.parse() {
        return Ok(gid);
    }
    let name = std::ffi::CString::new(group).map_err(|_| bad(format!("--group {group:?}")))?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: a zeroed group filled by getgrnam_r into our buffer.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut result = std::ptr::null_mut();
    let rc = unsafe {
        libc::getgrnam_r(
            name.as_ptr(),
            &mut grp,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return Err(bad(format!("--group {group}: no such group")));
    }
    Ok(grp.gr_gid)
}

/// The user's groups, as `initgroups(3)` would set them.
fn group_list(name: &str, gid: libc::gid_t) -> Vec<libc::gid_t> {
    let Ok(cname) = std::ffi::CString::new(name) else {
        return vec![gid];
    };
    let mut count: libc::c_int = 64;
    loop {
        let mut groups = vec![0 as libc::gid_t; count as usize];
        // SAFETY: the buffer holds `count` gids; the call updates `count`.
        let rc =
            unsafe { libc::getgrouplist(cname.as_ptr(), gid, groups.as_mut_ptr(), &mut count) };
        if rc >= 0 {
            groups.truncate(count as usize);
            return groups;
        }
        if count as usize <= groups.len() {
            return vec![gid];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(
        user: Option<&'a str>,
        as_root: bool,
        sudo: Option<(&str, &str)>,
    ) -> Request<'a> {
        Request {
            user,
            group: None,
            as_root,
            sudo: sudo.map(|(u, g)| (u.to_string(), g.to_string())),
        }
    }

    #[test]
    fn sudo_caller_by_default_root_on_purpose_or_without_sudo() {
        let id = Identity::resolve(&request(None, false, Some(("65534", "65534")))).unwrap();
        assert_eq!((id.uid, id.gid), (65534, 65534));
        assert_eq!(id.reason, "started through sudo (SUDO_UID)");
        let id = Identity::resolve(&request(None, true, Some(("65534", "65534")))).unwrap();
        assert!(id.is_root());
        let id = Identity::resolve(&request(None, false, None)).unwrap();
        assert!(id.is_root());
        let group_alone = Request {
            group: Some("nogroup"),
            ..request(None, false, None)
        };
        let err = Identity::resolve(&group_alone).unwrap_err();
        assert!(err.to_string().contains("without --user"), "{err}");
    }

    #[test]
    fn user_by_name_has_its_passwd_identity() {
        // Debian's nobody: uid and gid 65534, home /nonexistent.
        let id = Identity::resolve(&request(Some("nobody"), false, None)).unwrap();
        assert_eq!((id.uid, id.gid), (65534, 65534));
        assert_eq!(id.name.as_deref(), Some("nobody"));
        assert!(id.groups.contains(&65534));
        let vars = id.environment();
        assert!(vars.contains(&("USER", "nobody".into())), "{vars:?}");
        assert!(Identity::resolve(&request(Some("no-such-user-x"), false, None)).is_err());
    }
}
