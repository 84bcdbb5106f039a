//! Kubernetes pods selected by label on a node, from the container
//! runtime: real containerd (Debian's, with its CRI plugin) in the lab's
//! Debian image, driven through its CRI socket the way the kubelet drives
//! it ([`mptcpify_tests::cri`]); mptcpify reads the same socket. Runs as
//! root under systemd.

use std::path::Path;
use std::time::Duration;

use mptcpify_tests::cri::{pod_cgroup, Containerd, Cri, NoEventsProxy, Pod, SOCKET};
use mptcpify_tests::process::{run, Running};
use mptcpify_tests::sockets::new_tcp_protocol;

const LABEL: &str = "mptcp.io/upgrade=true";
const MPTCP: &str = "protocol=262";
const TCP: &str = "protocol=6";

fn under_systemd() {
    assert!(
        Path::new("/run/systemd/system").exists(),
        "this test runs in the lab's Debian image (cargo xtask test, or cargo xtask vm --systemd)"
    );
}

/// Detaches `running` (SIGINT, as the operator does): its output.
fn detach(running: Running) -> Vec<String> {
    running.signal(libc::SIGINT);
    let (status, output) = running.wait();
    assert!(status.success(), "{output:?}");
    output
}

/// Waits until container `name` of `pod` has printed `needle`.
fn wait_for_log(cri: &Cri, pod: &Pod, name: &str, needle: &str, timeout: Duration) {
    let deadline = std::time::Instant::now() + timeout;
    while !cri.log(pod, name).contains(needle) {
        assert!(
            std::time::Instant::now() < deadline,
            "{name} did not print {needle:?} within {timeout:?}:\n{}",
            cri.log(pod, name)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The probe's result line in what a container printed.
fn result(printed: &str) -> &str {
    printed
        .lines()
        .find(|l| l.starts_with("protocol=") || l.starts_with("errno="))
        .unwrap_or_else(|| panic!("the probe printed no result: {printed}"))
}

/// A labelled pod created while mptcpify runs gets MPTCP from its first
/// container's first socket, an unlabelled pod and the host keep TCP, a
/// deleted pod is no longer selected, and a pod made again under the same
/// name (a new pod: a new uid, a new cgroup) is selected again. The lines
/// and the per-selector counts name the pods.
#[test]
fn a_labelled_pod_gets_mptcp_from_its_first_socket_and_no_other_does() {
    under_systemd();
    let containerd = Containerd::start();
    let mut cri = Cri::connect(SOCKET).unwrap();
    let mut running = Running::attach(&["--json", "--pod-label", LABEL]);
    assert!(
        running.output.iter().any(|l| l.contains("pods: containerd")
            && l.contains("following pods labelled mptcp.io/upgrade=true (0 running now)")),
        "{:?}",
        running.output
    );

    let web = cri.run_pod(
        "default",
        "web",
        &[("mptcp.io/upgrade", "true"), ("app", "web")],
    );
    let plain = cri.run_pod("default", "plain", &[("app", "web")]);
    assert_eq!(
        result(&cri.run_probe(&web, "first", &["sleep", "1"])),
        MPTCP,
        "{}",
        containerd.log()
    );
    assert_eq!(result(&cri.run_probe(&plain, "probe", &[])), TCP);
    assert_eq!(new_tcp_protocol(), 6, "the host");
    running.wait_for(
        &format!(
            "selected pod default/web (cgroup /{})",
            pod_cgroup(&web.uid).display()
        ),
        Duration::from_secs(5),
    );

    cri.remove_pod(&web);
    running.wait_for("pod default/web is gone", Duration::from_secs(10));
    // Measured on this pod (the first one's containers were started at
    // once, as a kubelet does): how long after RunPodSandbox returned the
    // pod is selected, against how long the kubelet's next two calls take.
    let returned = std::time::Instant::now();
    let again = cri.run_pod("default", "web", &[("mptcp.io/upgrade", "true")]);
    let ran = returned.elapsed();
    let selected = loop {
        let selections = running
            .drain()
            .iter()
            .filter(|l| l.contains("selected pod default/web"))
            .count();
        if selections == 2 {
            break returned.elapsed();
        }
        assert!(
            returned.elapsed() < Duration::from_secs(10),
            "{:?}",
            running.output
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let started = std::time::Instant::now();
    assert_eq!(
        result(&cri.run_probe(&again, "first", &[])),
        MPTCP,
        "the same name again"
    );
    println!(
        "pod selected {} ms after RunPodSandbox was called (it returned after {} ms); \
         CreateContainer, StartContainer and the probe's exit took {} ms",
        selected.as_millis(),
        ran.as_millis(),
        started.elapsed().as_millis()
    );
    cri.remove_pod(&again);
    cri.remove_pod(&plain);

    let output = detach(running);
    let detached: serde_json::Value = output
        .iter()
        .rfind(|l| l.starts_with("{\"event\":\"detached\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .unwrap_or_else(|| panic!("no detached line: {output:?}"));
    // Each pod its own row (two pods of one name, one after the other),
    // told removed once the pod is gone.
    let rows: Vec<_> = detached["selectors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row["selector"] == "pod default/web (removed)")
        .collect();
    assert_eq!(rows.len(), 2, "{detached}");
    assert!(rows.iter().all(|r| r["upgraded"] == 1), "{detached}");
    assert!(
        !output.iter().any(|l| l.contains("default/plain")),
        "an unlabelled pod named: {output:?}"
    );
    // The event of the first pod's socket names its pod and container (the
    // probe lived on a second: its cgroup was there to read).
    let named: Vec<serde_json::Value> = output
        .iter()
        .filter(|l| l.starts_with("{\"event\":\"upgraded\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(named.len(), 2, "{output:?}");
    assert_eq!(named[0]["pod"], "default/web", "{}", named[0]);
    assert_eq!(named[0]["container"], "first", "{}", named[0]);
}

/// mptcpify started after a labelled pod: the running pod is selected from
/// the start, for its new sockets, and a container restarted in it stays
/// selected.
#[test]
fn a_running_labelled_pod_is_selected_when_mptcpify_starts() {
    under_systemd();
    let _containerd = Containerd::start();
    let mut cri = Cri::connect(SOCKET).unwrap();
    let pod = cri.run_pod("shop", "cart", &[("mptcp.io/upgrade", "true")]);
    assert_eq!(result(&cri.run_probe(&pod, "before", &[])), TCP);
    let mut running = Running::attach(&["--pod-label", LABEL, "--k8s-namespace", "shop"]);
    assert!(
        running.output.iter().any(|l| l.contains("(1 running now)")),
        "{:?}",
        running.output
    );
    assert_eq!(
        result(&cri.run_probe(&pod, "after", &["sleep", "1"])),
        MPTCP
    );
    let line = running.wait_for("upgraded pid=", Duration::from_secs(5));
    assert!(line.ends_with(" pod=shop/cart container=after"), "{line}");
    // The kubelet restarts a container that exited: the same name, the
    // next attempt, a new cgroup inside the pod's. It stays selected.
    assert_eq!(
        result(&cri.restart_probe(&pod, "after", 1, &["sleep", "1"])),
        MPTCP,
        "a restarted container"
    );
    let line = running.wait_for("upgraded pid=", Duration::from_secs(5));
    assert!(line.ends_with(" pod=shop/cart container=after"), "{line}");
    // `status` from another process counts per pod.
    let (status, text) = run(&["status"]);
    assert!(status.success(), "{text}");
    println!("mptcpify status:\n{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("pod shop/cart: 2 upgraded")),
        "{text}"
    );
    cri.remove_pod(&pod);
    detach(running);
}

/// A runtime that does not stream container events (a proxy that answers
/// `GetContainerEvents` as unimplemented) is listed instead, and mptcpify
/// says so; pods still come and go.
#[test]
fn a_runtime_without_an_event_stream_is_listed_instead_and_that_is_said() {
    under_systemd();
    let _containerd = Containerd::start();
    let proxy = NoEventsProxy::start("/tmp/mptcpify-cri/no-events.sock");
    let mut running = Running::attach(&["--pod-label", LABEL, "--cri", &proxy.path]);
    running.wait_for("does not stream container events", Duration::from_secs(10));
    let mut cri = Cri::connect(SOCKET).unwrap();
    let pod = cri.run_pod("default", "listed", &[("mptcp.io/upgrade", "true")]);
    running.wait_for("selected pod default/listed", Duration::from_secs(10));
    assert_eq!(result(&cri.run_probe(&pod, "probe", &[])), MPTCP);
    cri.remove_pod(&pod);
    running.wait_for("pod default/listed is gone", Duration::from_secs(10));
    detach(running);
}

/// A runtime that stops answering while attached (containerd killed) is
/// said once and retried; the pods selected so far stay selected, and once
/// it answers again (containerd started again) new pods are followed.
#[test]
fn a_runtime_that_stops_answering_is_said_and_retried() {
    under_systemd();
    let containerd = Containerd::start();
    let mut cri = Cri::connect(SOCKET).unwrap();
    let before = cri.run_pod("default", "before", &[("mptcp.io/upgrade", "true")]);
    let mut running = Running::attach(&["--pod-label", LABEL]);
    drop(cri);
    drop(containerd);
    running.wait_for("does not answer", Duration::from_secs(40));
    let containerd = Containerd::start();
    running.wait_for("answers again", Duration::from_secs(30));
    let mut cri = Cri::connect(SOCKET).unwrap();
    assert_eq!(
        result(&cri.run_probe(&before, "still", &[])),
        MPTCP,
        "a pod selected before stays selected:\n{}",
        containerd.log()
    );
    let after = cri.run_pod("default", "after", &[("mptcp.io/upgrade", "true")]);
    assert_eq!(result(&cri.run_probe(&after, "first", &[])), MPTCP);
    cri.remove_pod(&after);
    cri.remove_pod(&before);
    let output = detach(running);
    let said = output
        .iter()
        .filter(|l| l.contains("does not answer"))
        .count();
    assert_eq!(said, 1, "said once: {output:?}");
}

/// The DaemonSet's way (deploy/kubernetes/daemonset.yaml): mptcpify itself
/// in a pod, run through the CRI as the kubelet runs the manifest's pod
/// (the shipped image; privileged, which under containerd keeps it in the
/// node's cgroup namespace; `hostPID`; /sys/kernel/btf and /run/containerd
/// mounted read-only), selects a labelled pod of its node and names it in
/// its events; `kubectl logs` would show these lines.
#[test]
fn mptcpify_in_the_daemonsets_pod_selects_labelled_pods_of_its_node() {
    under_systemd();
    let containerd = Containerd::start();
    containerd.import_mptcpify_image();
    let mut cri = Cri::connect(SOCKET).unwrap();
    let (agent, id) = cri.run_daemonset_pod(&["--pod-label", LABEL, "--json"]);
    wait_for_log(
        &cri,
        &agent,
        "mptcpify",
        "mptcpify: attached",
        mptcpify_tests::process::ATTACH_TIMEOUT,
    );
    let web = cri.run_pod("default", "web", &[("mptcp.io/upgrade", "true")]);
    let plain = cri.run_pod("default", "plain", &[]);
    assert_eq!(result(&cri.run_probe(&web, "app", &["sleep", "1"])), MPTCP);
    assert_eq!(result(&cri.run_probe(&plain, "app", &[])), TCP);
    let named = "\"pod\":\"default/web\",\"container\":\"app\"";
    wait_for_log(&cri, &agent, "mptcpify", named, Duration::from_secs(5));
    cri.stop_container(&id, 30);
    let log = cri.log(&agent, "mptcpify");
    println!("mptcpify's log in its pod:\n{log}");
    assert!(log.contains("mptcpify: detached"), "{log}");
    for pod in [&web, &plain, &agent] {
        cri.remove_pod(pod);
    }
}

/// Bad input: a selector Kubernetes would refuse (exit 8), a runtime socket
/// that does not answer (exit 22), each with its fix.
#[test]
fn an_invalid_pod_selector_or_an_unreachable_runtime_is_a_clear_error() {
    under_systemd();
    let (status, output) = run(&["--pod-label", "upgrade"]);
    assert_eq!(status.code(), Some(8), "{output}");
    assert!(output.contains("is not KEY=VALUE"), "{output}");
    let (status, output) = run(&["--pod-label", LABEL, "--cri", "/run/no-such-runtime.sock"]);
    assert_eq!(status.code(), Some(22), "{output}");
    assert!(
        output.contains("/run/no-such-runtime.sock") && output.contains("--cri PATH"),
        "{output}"
    );
    let (status, output) = run(&["--cri", SOCKET, "--comm", "x"]);
    assert_eq!(status.code(), Some(8), "{output}");
}
