//! The C socket probe (tests/probe/socket-probe.c), run in a chosen cgroup or
//! namespace: what an unmodified program gets from `socket()`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `socket-probe` (dynamic) or `socket-probe-static`, from
/// `$MPTCPIFY_PROBE_DIR` or PATH.
pub fn path(name: &str) -> PathBuf {
    match std::env::var_os("MPTCPIFY_PROBE_DIR") {
        Some(dir) => Path::new(&dir).join(name),
        None => PathBuf::from(name),
    }
}

/// A helper program of the tests crate (`src/bin/`): on PATH in the lab,
/// else next to the test binary's `deps/` folder (a host run).
pub fn tool(name: &str) -> PathBuf {
    crate::process::on_path(name).unwrap_or_else(|| {
        let exe = std::env::current_exe().expect("the test binary's path");
        exe.parent()
            .and_then(Path::parent)
            .map(|release| release.join(name))
            .expect("target/release")
    })
}

/// What the probe printed: `protocol=262`, `protocol=6` or `errno=N`.
pub fn result(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("protocol=") || l.starts_with("errno="));
    line.unwrap_or_else(|| panic!("probe printed no result: {out:?}"))
        .to_string()
}

fn run(command: &mut Command) -> String {
    result(
        &command
            .output()
            .unwrap_or_else(|e| panic!("running {command:?}: {e}")),
    )
}

/// The probe as a child of this process (no cgroup or namespace change).
pub fn here() -> String {
    run(&mut Command::new(path("socket-probe")))
}

/// The probe, moved into `cgroup` before it execs.
pub fn in_cgroup(cgroup: &Path) -> String {
    let script = format!(
        "echo $$ > '{}/cgroup.procs' && exec '{}'",
        cgroup.display(),
        path("socket-probe").display()
    );
    run(Command::new("sh").args(["-c", &script]))
}

/// The probe with `args`, moved into `cgroup` before it execs: everything
/// it printed, lines joined by `\n`.
pub fn in_cgroup_printing(cgroup: &Path, args: &[&str]) -> String {
    let script = format!(
        "echo $$ > '{}/cgroup.procs' && exec '{}' {}",
        cgroup.display(),
        path("socket-probe").display(),
        args.join(" ")
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .output()
        .unwrap_or_else(|e| panic!("running the probe in {}: {e}", cgroup.display()));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The probe inside the named network namespace (`ip netns exec`).
pub fn in_netns(name: &str) -> String {
    run(Command::new("ip")
        .args(["netns", "exec", name])
        .arg(path("socket-probe")))
}

/// The cgroup2 mount point, from /proc/self/mountinfo.
pub fn cgroup2_mount() -> PathBuf {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    text.lines()
        .find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount = left.split_whitespace().nth(4)?;
            (right.starts_with("cgroup2 ")).then(|| PathBuf::from(mount))
        })
        .expect("a cgroup2 mount")
}

/// A cgroup created for a test and removed (after its processes left) on drop.
pub struct TempCgroup(pub PathBuf);

impl TempCgroup {
    pub fn new(relative: &str) -> TempCgroup {
        let path = cgroup2_mount().join(relative);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        TempCgroup(path)
    }
}

impl Drop for TempCgroup {
    fn drop(&mut self) {
        // Children first; the probes have exited, so the directories are empty.
        let _ = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "find '{}' -depth -type d -exec rmdir {{}} \\;",
                    self.0.display()
                ),
            ])
            .status();
    }
}

/// A named network namespace (`ip netns add`), deleted on drop.
pub struct TempNetns(pub String);

impl TempNetns {
    pub fn new(name: &str) -> TempNetns {
        let name = format!("{name}{}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ip netns add {name}");
        TempNetns(name)
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.0)
    }
}

impl Drop for TempNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}
