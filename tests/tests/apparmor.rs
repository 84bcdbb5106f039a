//! AppArmor's network rules under mptcpify, with real profiles compiled by
//! Debian's apparmor_parser for the running kernel and loaded into it. Runs
//! in the lab's Debian image (systemd as PID 1 mounts securityfs; the image
//! has the `apparmor` package), as root, on a kernel with AppArmor enabled
//! (Debian's default).
//!
//! What the kernel matches (security/apparmor/net.c, `aa_profile_af_perm`):
//! a socket's family and type, not its protocol. So `network inet tcp` acts
//! as `network inet stream`, which an upgraded socket (AF_INET,
//! SOCK_STREAM, IPPROTO_MPTCP) is too: a profile that allows only TCP still
//! allows it, one that denies TCP still denies it. These tests hold
//! mptcpify to that on every lab kernel: if a kernel ever matched the
//! protocol, they would fail, and mptcpify would have to keep confined
//! processes on TCP.

use std::path::Path;
use std::process::Command;

use mptcpify_tests::probe;
use mptcpify_tests::process::Running;

const ONLY_TCP: &str = "mptcpify-test-only-tcp";
const NO_TCP: &str = "mptcpify-test-no-tcp";

/// The two profiles: every file access (the probe must run), and either
/// only TCP among the network families or everything but TCP.
fn profiles() -> String {
    format!(
        "profile {ONLY_TCP} {{\n  file,\n  network inet tcp,\n}}\n\
         profile {NO_TCP} {{\n  file,\n  network,\n  deny network inet tcp,\n}}\n"
    )
}

/// The profiles, loaded for the life of a test and removed on drop.
struct Loaded(std::path::PathBuf);

impl Loaded {
    fn new() -> Loaded {
        assert!(
            Path::new("/sys/kernel/security/apparmor/profiles").exists(),
            "AppArmor is not enabled in this kernel (or securityfs is not mounted): \
             these tests run in the lab's Debian image"
        );
        let file = std::env::temp_dir().join(format!("mptcpify-test-{}.aa", std::process::id()));
        std::fs::write(&file, profiles()).unwrap();
        let out = Command::new("apparmor_parser")
            .arg("-r")
            .arg(&file)
            .output()
            .expect("running apparmor_parser (the apparmor package)");
        assert!(out.status.success(), "apparmor_parser -r: {out:?}");
        Loaded(file)
    }
}

impl Drop for Loaded {
    fn drop(&mut self) {
        let _ = Command::new("apparmor_parser")
            .arg("-R")
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The probe (static: no library to map) confined by `profile` from its
/// exec on (AppArmor's `exec` attribute, as `aa-exec` sets it).
fn probe_under(profile: &str) -> String {
    let script = format!(
        "echo 'exec {profile}' > /proc/self/attr/apparmor/exec && exec '{}'",
        probe::path("socket-probe-static").display()
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("running the probe under a profile");
    probe::result(&out)
}

/// A profile that allows only TCP must not make socket() fail under
/// mptcpify, and one that denies TCP must still deny the socket.
#[test]
fn apparmor_network_rules_hold_under_mptcpify() {
    let _profiles = Loaded::new();
    let eacces = format!("errno={}", libc::EACCES);
    assert_eq!(probe_under(ONLY_TCP), "protocol=6");
    assert_eq!(probe_under(NO_TCP), eacces, "the profile does not deny TCP");

    let running = Running::attach(&["--all"]);
    // Allowed, as `inet stream`, and upgraded; EACCES here would mean the
    // kernel matched the protocol and mptcpify broke socket().
    assert_eq!(
        probe_under(ONLY_TCP),
        "protocol=262",
        "a process whose profile allows only TCP"
    );
    assert_eq!(
        probe_under(NO_TCP),
        eacces,
        "a profile that denies TCP was bypassed"
    );
    assert_eq!(probe::here(), "protocol=262");
    running.signal(libc::SIGINT);
    let (status, output) = running.wait();
    assert_eq!(status.code(), Some(0), "{output:?}");
}
