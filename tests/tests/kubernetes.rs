//! Kubernetes pods selected by label on a node, from the container
//! runtime: real containerd (Debian's, with its CRI plugin) in the lab's
//! Debian image, driven through its CRI socket the way the kubelet drives
//! it ([`mptcpify_tests::cri`]); mptcpify reads the same socket. Runs as
//! root under systemd.

use std::path::Path;

use mptcpify_tests::cri::{Containerd, Cri, SOCKET};

fn under_systemd() {
    assert!(
        Path::new("/run/systemd/system").exists(),
        "this test runs in the lab's Debian image (cargo xtask test, or cargo xtask vm --systemd)"
    );
}

#[test]
fn a_pod_runs_through_the_cri_and_its_probe_gets_tcp_without_mptcpify() {
    under_systemd();
    let containerd = Containerd::start();
    let mut cri = Cri::connect(SOCKET).unwrap();
    let pod = cri.run_pod("default", "plain", &[("app", "web")]);
    let printed = cri.run_probe(&pod, "probe");
    assert!(printed.contains("protocol=6"), "{printed}\n{}", containerd.log());
    cri.remove_pod(&pod);
}
