//! A checksummed bulk transfer across the two-path testbed by socat, an
//! unmodified program that knows nothing of MPTCP: client → server, file to
//! file, with the receiver's progress observable while it runs.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::testbed::{TwoPaths, PATHS};

pub struct Transfer {
    pub source: PathBuf,
    pub received: PathBuf,
    pub size: u64,
    server: Child,
    client: Child,
    pub started: Instant,
    /// (time since start, bytes received), sampled by [`Transfer::sample`].
    pub progress: Vec<(Duration, u64)>,
}

/// Writes `size` bytes of pseudo-random data to `path` (deterministic, so a
/// mismatch is reproducible).
pub fn make_file(path: &std::path::Path, size: u64) {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut data = Vec::with_capacity(size as usize);
    while (data.len() as u64) < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.extend_from_slice(&state.to_le_bytes());
    }
    data.truncate(size as usize);
    std::fs::write(path, data).expect("writing the transfer source");
}

pub fn sha256(path: &std::path::Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The receiving program (comm `socat` or `nc`, so `--comm` can select one end).
#[derive(Clone, Copy)]
pub enum Receiver {
    /// `socat ... TCP-LISTEN:PORT,fork`: like a real server it keeps its
    /// listening socket open while serving. That matters: the kernel
    /// accepts a second subflow (MP_JOIN) only through an open listener,
    /// and socat without `fork` closes it right after the first accept.
    Socat,
    /// busybox nc (one connection, then it exits).
    Nc,
}

impl Transfer {
    /// Starts the receiver (writing the connection into `received`) in the
    /// server namespace and socat sending `source` from the client namespace.
    pub fn start(bed: &TwoPaths, source: PathBuf, port: u16, receiver: Receiver) -> Transfer {
        let received = source.with_extension("received");
        let _ = std::fs::remove_file(&received);
        let size = std::fs::metadata(&source).expect("transfer source").len();
        let command = match receiver {
            Receiver::Socat => format!("socat -u TCP-LISTEN:{port},reuseaddr,fork STDOUT"),
            Receiver::Nc => format!("nc -l -p {port}"),
        };
        let script = format!("exec {command} > '{}'", received.display());
        let server = bed
            .exec(&bed.server, "sh")
            .args(["-c", &script])
            .spawn()
            .expect("server");
        std::thread::sleep(Duration::from_millis(800));
        let client = bed
            .exec(&bed.client, "socat")
            .args(["-u", &format!("OPEN:{}", source.display())])
            .arg(format!("TCP:{}:{port}", PATHS[0].server_addr))
            .stderr(Stdio::inherit())
            .spawn()
            .expect("socat client");
        Transfer {
            source,
            received,
            size,
            server,
            client,
            started: Instant::now(),
            progress: Vec::new(),
        }
    }

    pub fn received_bytes(&self) -> u64 {
        std::fs::metadata(&self.received).map_or(0, |m| m.len())
    }

    /// Records the receiver's progress now.
    pub fn sample(&mut self) -> u64 {
        let bytes = self.received_bytes();
        self.progress.push((self.started.elapsed(), bytes));
        bytes
    }

    /// Samples every 50 ms until `bytes` arrived; panics after `timeout`.
    pub fn wait_for_bytes(&mut self, bytes: u64, timeout: Duration) {
        while self.sample() < bytes {
            assert!(
                self.started.elapsed() < timeout,
                "only {} of {bytes} bytes after {timeout:?}",
                self.received_bytes()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for both ends (sampling), then compares checksums. Returns
    /// the total time.
    pub fn finish(mut self, timeout: Duration) -> Finished {
        loop {
            self.sample();
            if let Some(status) = self.client.try_wait().expect("client") {
                assert!(status.success(), "socat client failed: {status}");
                break;
            }
            assert!(
                self.started.elapsed() < timeout,
                "transfer not done after {timeout:?}: {} bytes",
                self.received_bytes()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // The sender is done; the receiver has it all once the last bytes
        // are written (a forking socat keeps listening: it is stopped then).
        while self.sample() < self.size {
            if let Some(status) = self.server.try_wait().expect("server") {
                assert!(status.success(), "receiver failed: {status}");
                break;
            }
            assert!(
                self.started.elapsed() < timeout,
                "receiver short of data after {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let elapsed = self.started.elapsed();
        Finished {
            elapsed,
            received: self.received_bytes(),
            size: self.size,
            checksums: (sha256(&self.source), sha256(&self.received)),
            longest_stall: longest_stall(&self.progress),
        }
    }
}

pub struct Finished {
    pub elapsed: Duration,
    pub received: u64,
    pub size: u64,
    /// (sent, received) SHA-256.
    pub checksums: (String, String),
    /// The longest time the receiver saw no new byte.
    pub longest_stall: Duration,
}

fn longest_stall(progress: &[(Duration, u64)]) -> Duration {
    let mut longest = Duration::ZERO;
    let mut since = None;
    for pair in progress.windows(2) {
        let ((t0, b0), (t1, b1)) = (pair[0], pair[1]);
        if b1 == b0 {
            let start = *since.get_or_insert(t0);
            longest = longest.max(t1 - start);
        } else {
            since = None;
        }
    }
    longest
}

impl Drop for Transfer {
    /// A failed test must not leave socat behind in a namespace being deleted.
    fn drop(&mut self) {
        for child in [&mut self.client, &mut self.server] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stall_is_the_longest_flat_stretch() {
        let ms = Duration::from_millis;
        let p = [
            (ms(0), 0),
            (ms(100), 10),
            (ms(200), 10),
            (ms(300), 10),
            (ms(400), 20),
            (ms(500), 20),
            (ms(600), 30),
        ];
        assert_eq!(longest_stall(&p), ms(200));
    }
}
