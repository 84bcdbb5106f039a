//! cgroup v2 paths: finding the hierarchy, turning a path or a unit name into
//! the (id, depth, path) the BPF program compares and follows, and the
//! temporary cgroup of `mptcpify run`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::errors::Failure;
pub use mptcpify_core::systemd_slice::slice_path;

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
/// The inode of the initial cgroup namespace (`PROC_CGROUP_INIT_INO`).
const INIT_CGROUP_NS_INODE: u64 = 0xEFFF_FFFB;

/// A cgroup v2 directory, as the program matches and follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    pub path: PathBuf,
    /// The path relative to the hierarchy's root, with a leading `/`, as
    /// the kernel's `cgroup_mkdir` tracepoint names a new cgroup.
    pub relative: String,
    /// The cgroup id: the directory's inode number;
    /// [`mptcpify_common::maps::ABSENT_CGROUP`] while it does not exist.
    pub id: u64,
    /// Depth below the hierarchy's root (the root is 0).
    pub level: u32,
}

impl Cgroup {
    pub fn exists(&self) -> bool {
        self.id != mptcpify_common::maps::ABSENT_CGROUP
    }

    /// The id of the directory at `path` now, if there is one.
    pub fn current_id(&self) -> Option<u64> {
        std::fs::metadata(&self.path).ok().map(|m| m.ino())
    }
}

/// Where cgroup2 is mounted: `/sys/fs/cgroup` on unified hosts,
/// `/sys/fs/cgroup/unified` on hybrid ones.
pub fn mount_point() -> Result<PathBuf, Failure> {
    let mounts = procfs::process::Process::myself()
        .and_then(|me| me.mountinfo())
        .map_err(|e| Failure::Other(anyhow::anyhow!("reading /proc/self/mountinfo: {e}")))?;
    cgroup2_mount(mounts.into_iter()).ok_or_else(|| Failure::BadSelector {
        what: "no cgroup v2 hierarchy is mounted".into(),
        fix: "Mount it (mount -t cgroup2 none /sys/fs/cgroup) or drop --cgroup/--unit/run.".into(),
    })
}

/// The first cgroup2 mount's point, unescaped.
fn cgroup2_mount(mut mounts: impl Iterator<Item = procfs::process::MountInfo>) -> Option<PathBuf> {
    mounts
        .find(|m| m.fs_type == "cgroup2")
        .map(|m| unescape_octal(&m.mount_point.to_string_lossy()))
}

/// A mount point as mountinfo writes it, decoded: the kernel escapes space,
/// tab, newline and backslash as `\ooo` (fs/proc_namespace.c,
/// `show_mountinfo`: `seq_path_root(..., " \t\n\\")`). By hand: procfs
/// 0.17 hands the field over as written, and no maintained crate decodes
/// just this.
fn unescape_octal(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') << 6 | (d[1] - b'0') << 3 | (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(out))
}

/// This process's cgroup v2 path, relative to the hierarchy's root
/// (`/a/b.scope`).
pub fn own_relative() -> Result<String, Failure> {
    let groups = procfs::process::Process::myself()
        .and_then(|me| me.cgroups())
        .map_err(|e| Failure::Other(anyhow::anyhow!("reading /proc/self/cgroup: {e}")))?;
    groups
        .into_iter()
        .find(|g| g.hierarchy == 0 && g.controllers.is_empty())
        .map(|g| g.pathname)
        .ok_or_else(|| Failure::Other(anyhow::anyhow!("/proc/self/cgroup has no cgroup v2 entry")))
}

/// Resolves `--cgroup PATH`: absolute under the cgroup2 mount, or relative to it.
pub fn resolve(path: &str) -> Result<Cgroup, Failure> {
    check_host_cgroup_namespace()?;
    let mount = mount_point()?;
    let given = Path::new(path);
    let full = if given.is_absolute() {
        given.to_path_buf()
    } else {
        mount.join(given)
    };
    let bad = |why: String| {
        Failure::BadSelector {
        what: format!("--cgroup {path}: {why}"),
        fix: format!(
            "Give a cgroup v2 directory under {} or relative to it, e.g. --cgroup system.slice/nginx.service \
             (see `systemctl status UNIT` or /proc/PID/cgroup).",
            mount.display()
        ),
    }
    };
    let metadata = std::fs::metadata(&full).map_err(|e| bad(format!("{}: {e}", full.display())))?;
    if !metadata.is_dir() || !is_cgroup2(&full) {
        return Err(bad(format!(
            "{} is not a cgroup v2 directory",
            full.display()
        )));
    }
    let canonical = std::fs::canonicalize(&full).map_err(|e| bad(e.to_string()))?;
    let relative = canonical.strip_prefix(&mount).map_err(|_| {
        bad(format!(
            "{} is not under {}",
            canonical.display(),
            mount.display()
        ))
    })?;
    Ok(Cgroup {
        id: metadata.ino(),
        level: relative.components().count() as u32,
        relative: format!("/{}", relative.display()),
        path: canonical,
    })
}

/// The cgroup at `relative` (to the cgroup2 mount, with a leading `/`):
/// resolved when it exists, else followed from when it is created (a
/// Kubernetes pod's slice that systemd removed and makes again).
pub fn at(relative: &str) -> Result<Cgroup, Failure> {
    let mount = mount_point()?;
    let path = mount.join(relative.trim_start_matches('/'));
    if path.is_dir() {
        return resolve(&path.to_string_lossy());
    }
    check_host_cgroup_namespace()?;
    Ok(Cgroup {
        level: Path::new(relative.trim_start_matches('/'))
            .components()
            .count() as u32,
        relative: relative.to_string(),
        path,
        id: mptcpify_common::maps::ABSENT_CGROUP,
    })
}

/// Resolves `--unit NAME` to the unit's cgroup, as systemd places it (its
/// `ControlGroup`, or for a unit not running now, where its `Slice=` will
/// put it). A unit that is not running yet is followed: its sockets are
/// upgraded from the moment systemd creates its cgroup. Without systemd
/// (no /run/systemd/system) the cgroup is taken to be
/// `system.slice/NAME.service` and must exist.
pub fn resolve_unit(name: &str) -> Result<Cgroup, Failure> {
    let unit = if name.contains('.') {
        name.to_string()
    } else {
        format!("{name}.service")
    };
    let mount = mount_point()?;
    if !Path::new("/run/systemd/system").is_dir() {
        let path = mount.join("system.slice").join(&unit);
        if !path.is_dir() {
            return Err(Failure::BadSelector {
                what: format!(
                    "--unit {name}: systemd is not running here and {} does not exist",
                    path.display()
                ),
                fix: "Without systemd, --unit means the cgroup system.slice/NAME.service; give \
                      the service's cgroup with --cgroup PATH instead."
                    .into(),
            });
        }
        return resolve(&path.to_string_lossy());
    }
    let relative = systemd_cgroup(name, &unit)?;
    let path = mount.join(relative.trim_start_matches('/'));
    if path.is_dir() {
        return resolve(&path.to_string_lossy());
    }
    check_host_cgroup_namespace()?;
    Ok(Cgroup {
        level: Path::new(&relative).components().count() as u32 - 1,
        relative,
        path,
        id: mptcpify_common::maps::ABSENT_CGROUP,
    })
}

/// The cgroup (relative to the cgroup2 root) systemd gives `unit`: asked of
/// systemd through `systemctl show`, its stable command-line interface (a
/// D-Bus client would be a large dependency for three properties).
fn systemd_cgroup(name: &str, unit: &str) -> Result<String, Failure> {
    let out = std::process::Command::new("systemctl")
        .args([
            "show",
            "--property=LoadState,ControlGroup,Slice",
            "--",
            unit,
        ])
        .output()
        .map_err(|e| Failure::BadSelector {
            what: format!("--unit {name}: cannot run systemctl: {e}"),
            fix: "mptcpify asks systemd where the unit's cgroup is; give it with --cgroup PATH \
                  instead."
                .into(),
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let property = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_default()
            .to_string()
    };
    if property("LoadState") != "loaded" {
        return Err(Failure::BadSelector {
            what: format!(
                "--unit {name}: systemd has no unit {unit} (LoadState={})",
                property("LoadState")
            ),
            fix: "Give the name `systemctl list-units --all` shows (a template needs its \
                  instance: --unit getty@tty1)."
                .into(),
        });
    }
    let control_group = property("ControlGroup");
    if !control_group.is_empty() {
        return Ok(control_group);
    }
    Ok(format!("{}/{unit}", slice_path(&property("Slice"))))
}

/// The levels the program compares are absolute; inside a cgroup namespace
/// the visible root is not the real one.
fn check_host_cgroup_namespace() -> Result<(), Failure> {
    match std::fs::metadata("/proc/self/ns/cgroup") {
        Ok(m) if m.ino() != INIT_CGROUP_NS_INODE => Err(Failure::BadSelector {
            what: "mptcpify runs in a cgroup namespace, where cgroup paths are not the host's"
                .into(),
            fix: "Run it in the host's cgroup namespace (e.g. a container with --cgroupns=host), \
                  or select with --netns self instead."
                .into(),
        }),
        _ => Ok(()),
    }
}

fn is_cgroup2(path: &Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|stat| stat.f_type == CGROUP2_SUPER_MAGIC)
}

/// mptcpify's own cgroup directory.
pub fn own() -> Result<PathBuf, Failure> {
    Ok(mount_point()?.join(own_relative()?.trim_start_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount_on_hybrid_and_unified_hosts() {
        let mount_point_in = |text: &str| {
            cgroup2_mount(
                text.lines()
                    .map(|l| procfs::process::MountInfo::from_line(l).unwrap()),
            )
        };
        let hybrid = "25 30 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n\
                      26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw\n\
                      27 25 0:24 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu";
        assert_eq!(
            mount_point_in(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let unified =
            "30 1 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate";
        assert_eq!(
            mount_point_in(unified),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        assert_eq!(mount_point_in("1 0 8:1 / / rw - ext4 /dev/sda1 rw"), None);
        // A mount point with a space, a tab and a backslash, as the kernel
        // writes it.
        let spaced = "31 1 0:27 / /run/my\\040cgroups\\011x\\134y rw - cgroup2 cgroup2 rw";
        assert_eq!(
            mount_point_in(spaced),
            Some(PathBuf::from("/run/my cgroups\tx\\y"))
        );
        assert_eq!(unescape_octal("a\\0b\\8\\"), PathBuf::from("a\\0b\\8\\"));
    }

    #[test]
    fn slices_nest_as_systemd_names_them() {
        assert_eq!(slice_path("system.slice"), "/system.slice");
        assert_eq!(slice_path(""), "/system.slice");
        assert_eq!(
            slice_path("kubepods-besteffort.slice"),
            "/kubepods.slice/kubepods-besteffort.slice"
        );
        assert_eq!(slice_path("a-b-c.slice"), "/a.slice/a-b.slice/a-b-c.slice");
        assert_eq!(slice_path("-.slice"), "");
    }

    #[test]
    fn resolves_real_cgroups_of_this_host() {
        let mount = mount_point().expect("a cgroup2 mount on this host");
        let root = resolve(&mount.to_string_lossy()).unwrap();
        assert_eq!(root.level, 0);
        assert_eq!(root.relative, "/");
        let own = own().unwrap();
        let relative = own
            .strip_prefix(&mount)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if !relative.is_empty() {
            let by_relative = resolve(&relative).unwrap();
            assert_eq!(
                by_relative.level as usize,
                Path::new(&relative).components().count()
            );
            assert_eq!(resolve(&own.to_string_lossy()).unwrap(), by_relative);
        }
        assert!(resolve("/proc").is_err());
        assert!(resolve("no/such/cgroup").is_err());
    }
}
