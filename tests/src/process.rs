//! mptcpify as a child process.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// Loading reads the kernel's BTF, which takes seconds under emulation.
pub const ATTACH_TIMEOUT: Duration = Duration::from_secs(90);

/// The binary under test: `$MPTCPIFY_BIN`, else `mptcpify` on PATH.
pub fn bin() -> String {
    std::env::var("MPTCPIFY_BIN").unwrap_or_else(|_| "mptcpify".into())
}

/// The binary's path, looked up on PATH when `bin()` is a bare name.
pub fn resolved_bin() -> std::path::PathBuf {
    let bin = bin();
    if bin.contains('/') {
        return bin.into();
    }
    on_path(&bin).unwrap_or_else(|| bin.into())
}

/// `name` looked up on PATH.
pub fn on_path(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

pub fn command(args: &[&str]) -> Command {
    let mut command = Command::new(bin());
    command.args(args);
    command
}

/// Runs mptcpify to completion (for invocations that must fail fast); a run
/// that has not ended after [`ATTACH_TIMEOUT`] is killed and fails the test.
pub fn run(args: &[&str]) -> (ExitStatus, String) {
    output_within(command(args), ATTACH_TIMEOUT)
}

/// Runs `command` to completion, stdout and stderr together; kills it and
/// fails the test if it takes longer than `timeout`, so that no test waits
/// forever on a child (e.g. one that attached where a refusal was expected).
pub fn output_within(command: Command, timeout: Duration) -> (ExitStatus, String) {
    let (status, output) = Running::start(command).wait_timeout(timeout);
    (status, output.join("\n"))
}

/// A running mptcpify; killed (SIGKILL) when dropped, so a failing test
/// never leaves the hook attached for the next one.
pub struct Running {
    child: Child,
    /// What was started, for failure messages.
    program: String,
    lines: Receiver<String>,
    /// Everything printed so far (stdout and stderr).
    pub output: Vec<String>,
}

impl Running {
    /// Starts mptcpify with `args` and waits for its "attached" line.
    pub fn attach(args: &[&str]) -> Running {
        let mut running = Self::start(command(args));
        running.wait_for("mptcpify: attached", ATTACH_TIMEOUT);
        running
    }

    pub fn start(command: Command) -> Running {
        Self::start_echoing(command, true)
    }

    /// Like [`Running::start`], without echoing the output to stderr (for
    /// benchmarks, where a line per socket would flood the console).
    pub fn start_quietly(command: Command) -> Running {
        Self::start_echoing(command, false)
    }

    fn start_echoing(mut command: Command, echo: bool) -> Running {
        let program = command.get_program().to_string_lossy().into_owned();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {program}: {e}"));
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        for stream in [
            Box::new(stdout) as Box<dyn std::io::Read + Send>,
            Box::new(stderr),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if echo {
                        eprintln!("  | {line}");
                    }
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Running {
            child,
            program,
            lines,
            output: Vec::new(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits for a line containing `needle`; panics with the output so far if
    /// it does not come (or mptcpify exits first).
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.output.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => {
                    let status = self.child.try_wait().ok().flatten();
                    panic!(
                        "mptcpify did not print {needle:?} within {timeout:?} (exit status: {status:?}); output:\n{}",
                        self.output.join("\n")
                    );
                }
            }
        }
    }

    /// The lines printed so far, without waiting: kept in `output` too.
    pub fn drain(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.output.push(line);
        }
        &self.output
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: plain kill(2) on our own child.
        assert_eq!(
            unsafe { libc::kill(self.pid(), signal) },
            0,
            "kill({signal})"
        );
    }

    /// Waits for the exit and collects the rest of the output.
    pub fn wait(self) -> (ExitStatus, Vec<String>) {
        self.wait_timeout(ATTACH_TIMEOUT)
    }

    /// Waits at most `timeout` for the exit (then kills it and fails the
    /// test), and collects the rest of the output.
    pub fn wait_timeout(mut self, timeout: Duration) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            match self.child.try_wait().expect("waiting for the child") {
                Some(status) => break status,
                None if Instant::now() >= deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    while let Ok(line) = self.lines.try_recv() {
                        self.output.push(line);
                    }
                    panic!(
                        "{:?} did not exit within {timeout:?}; output:\n{}",
                        self.program,
                        self.output.join("\n")
                    );
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.output.push(line);
        }
        (status, std::mem::take(&mut self.output))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The counter `label` of the lines mptcpify prints as it detaches
/// ("mptcpify:     12 kept tcp: not selected").
pub fn counter(output: &[String], label: &str) -> u64 {
    output
        .iter()
        .find(|l| l.ends_with(label))
        .unwrap_or_else(|| panic!("no counter {label:?} in {output:?}"))
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

/// The end of the counter line of `socket()` calls the kernel made without
/// the upgrader (it was still entered on that CPU by a preempted task).
pub const SKIPPED_CALLS: &str = "they kept their protocol";

/// The resident memory of process `pid` (`VmRSS` of /proc/PID/status), in
/// kB.
pub fn rss_kb(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/status: {e}"))
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}
