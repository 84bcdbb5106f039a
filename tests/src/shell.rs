//! Commands and requests the Debian-image suites make as an operator would:
//! a shell line under systemd, an HTTP GET on loopback.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A unit start waits for mptcpify's READY (attached and self-checked):
/// seconds under emulation.
pub const SYSTEMCTL_TIMEOUT: Duration = Duration::from_secs(180);

/// Fails the test unless systemd is PID 1 (the lab's Debian image).
pub fn require_systemd() {
    assert!(
        Path::new("/run/systemd/system").exists(),
        "these tests need systemd as PID 1: they run in the lab's systemd image \
         (cargo xtask test, or cargo xtask vm --systemd)"
    );
}

/// Runs a command line with sh; its output (stdout and stderr) when it
/// succeeds, else the test fails with that output.
pub fn sh(script: &str) -> String {
    let mut command = Command::new("sh");
    command.args(["-c", script]);
    let (status, output) = crate::process::output_within(command, SYSTEMCTL_TIMEOUT);
    assert!(status.success(), "`{script}` failed ({status}):\n{output}");
    output
}

/// `GET path` on `port` of 127.0.0.1 (HTTP/1.1, the connection closed by
/// the server after the answer): the status line and the body.
pub fn http_get(port: u16, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connecting to 127.0.0.1:{port}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no head and body in {response:?}"));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}
