//! The sidecar image in real pods: podman in the lab's Debian image builds
//! the shipped Containerfile (deploy/container) around the static binary,
//! runs it privileged with `--netns self` in one pod, and an unmodified
//! program in another container of that pod gets MPTCP sockets, while the
//! same program in another pod gets TCP. Runs as root under systemd (the
//! Debian image has podman).

use std::path::Path;
use std::time::{Duration, Instant};

use mptcpify_tests::containers::{build, logs, podman, podman_command, static_binary};
use mptcpify_tests::process;

/// The shipped sidecar Containerfile.
const SIDECAR_CONTAINERFILE: &str = include_str!("../../deploy/container/Containerfile");
const SIDECAR_IMAGE: &str = "localhost/mptcpify:test";
/// The sidecar container's name.
const SIDECAR: &str = "mptcpify-test-sidecar";
/// An unmodified program: the static socket probe, alone on an empty base.
const PROBE_IMAGE: &str = "localhost/socket-probe:test";

/// A pod removed (with its containers) on drop.
struct Pod(String);

impl Pod {
    fn new(name: &str) -> Pod {
        let _ = podman_command().args(["pod", "rm", "-f", name]).output();
        podman(&["pod", "create", "--name", name, "--network", "none"]);
        Pod(name.to_string())
    }

    /// What the probe prints when run in this pod.
    fn probe(&self) -> String {
        podman(&["run", "--rm", "--pod", &self.0, PROBE_IMAGE])
            .lines()
            .find(|l| l.starts_with("protocol=") || l.starts_with("errno="))
            .unwrap_or_else(|| panic!("the probe printed no result in pod {}", self.0))
            .to_string()
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = podman_command()
            .args(["pod", "rm", "-f", "-t", "0", &self.0])
            .output();
    }
}

#[test]
fn the_sidecar_upgrades_its_pod_and_no_other() {
    assert!(
        Path::new("/run/systemd/system").exists(),
        "this test runs in the lab's Debian image (cargo xtask test, or cargo xtask vm --systemd)"
    );
    build(
        SIDECAR_IMAGE,
        SIDECAR_CONTAINERFILE,
        &static_binary("mptcpify"),
        "mptcpify",
    );
    build(
        PROBE_IMAGE,
        "FROM scratch\nCOPY socket-probe /socket-probe\nENTRYPOINT [\"/socket-probe\"]\n",
        &static_binary("socket-probe-static"),
        "socket-probe",
    );

    let web = Pod::new("mptcpify-test-web");
    let other = Pod::new("mptcpify-test-other");
    assert_eq!(web.probe(), "protocol=6", "MPTCP before the sidecar ran");

    // As deploy/kubernetes/sidecar-pod.yaml runs it: privileged, the host's
    // BTF mounted, `--netns self`.
    podman(&[
        "run",
        "-d",
        "--name",
        SIDECAR,
        "--pod",
        &web.0,
        "--privileged",
        "-v",
        "/sys/kernel/btf:/sys/kernel/btf:ro",
        SIDECAR_IMAGE,
        "--netns",
        "self",
    ]);
    let deadline = Instant::now() + process::ATTACH_TIMEOUT;
    loop {
        let text = logs(SIDECAR);
        if text.contains("mptcpify: attached") {
            println!("sidecar: {}", text.trim());
            break;
        }
        let state = podman(&["inspect", "-f", "{{.State.Status}}", SIDECAR]);
        assert!(
            state.trim() == "running" && Instant::now() < deadline,
            "the sidecar did not attach (state {}):\n{text}",
            state.trim()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    assert_eq!(
        web.probe(),
        "protocol=262",
        "the app container of the sidecar's pod"
    );
    assert_eq!(other.probe(), "protocol=6", "a container of another pod");
    assert_eq!(
        mptcpify_tests::sockets::new_tcp_protocol(),
        6,
        "the host's own namespace"
    );

    podman(&["stop", "-t", "10", SIDECAR]);
    let text = logs(SIDECAR);
    assert!(text.contains("mptcpify: detached"), "{text}");
    assert_eq!(
        web.probe(),
        "protocol=6",
        "still MPTCP after the sidecar stopped"
    );
}
