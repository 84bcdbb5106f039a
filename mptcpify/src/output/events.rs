//! What the programs report, as it happens: a line (or, with `--json`, a
//! JSON object) per upgraded socket, per socket kept TCP because its process
//! is sandboxed or under another tool's `cgroup/sock_create` program, per
//! socket option MPTCP refused, per `--explain` verdict, and per upgraded
//! socket closed (what it did); read from the programs
//! ([`crate::bpf::event_source`]), and handed to the monitors too
//! (`crate::cmd::monitor`), with the events only they get (an upgraded connection's life). Their
//! text and JSON forms are [`crate::output::render`]'s.

use mptcpify_common::event::outcome;

use crate::bpf::event_source::EventSource;
use crate::output::monitor_server::Server;
use crate::output::render::{json, line, Clock};

/// How events are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Text lines on stdout (the foreground mode).
    Stdout,
    /// Text lines on stderr, prefixed `mptcpify: ` (`run`: stdout is CMD's).
    Stderr,
    /// One JSON object per line on stdout.
    Json,
}

/// How often the events are read. The programs submit without waking the
/// reader (a wake-up per socket cost the socket() caller more than the
/// program itself), so a line appears at most this late.
pub const READ_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

pub struct Events {
    source: EventSource,
    output: Output,
    /// Writes only what it writes with `-q` (refused options, `--explain`);
    /// the rest is sent only while a monitor listens, for the monitor.
    quiet: bool,
    clock: Clock,
    monitors: Option<Server>,
}

impl Events {
    /// The events of `source`, written to `output` and served to monitors
    /// by `monitors`.
    pub fn new(
        source: EventSource,
        output: Output,
        quiet: bool,
        monitors: Option<Server>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            source,
            output,
            quiet,
            clock: Clock::now(),
            monitors,
        })
    }

    /// Reads and writes events every [`READ_EVERY`]; returns only on error.
    pub async fn print_forever(&mut self) -> anyhow::Result<()> {
        let mut timer = tokio::time::interval(READ_EVERY);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            timer.tick().await;
            self.print_ready();
        }
    }

    /// Writes every event sent and not read yet. Called once more before
    /// detaching, so that events of the last 50 ms are not lost.
    pub fn print_ready(&mut self) {
        if let Some(monitors) = &mut self.monitors {
            monitors.poll();
        }
        for event in self.source.drain() {
            let time = self.clock.wall(event.boot_ns);
            if let Some(monitors) = &mut self.monitors {
                monitors.send(&event, time);
            }
            if !written(event.outcome, self.quiet) {
                continue;
            }
            match self.output {
                Output::Stdout => println!("{}", line(&event)),
                Output::Stderr => eprintln!("mptcpify: {}", line(&event)),
                Output::Json => println!("{}", json(&event, time)),
            }
        }
        if let Some(monitors) = &mut self.monitors {
            monitors.flush();
        }
    }
}

/// Whether an instance writes an event of `outcome` itself (the others it
/// gets only while a monitor listens, for the monitor).
fn written(outcome: u32, quiet: bool) -> bool {
    match outcome {
        outcome::REFUSED_SETSOCKOPT | outcome::REFUSED_GETSOCKOPT | outcome::VERDICT => true,
        _ if outcome::is_live(outcome) => false,
        _ => !quiet,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_writes_what_monitors_do_not_get_alone() {
        // What an instance writes itself, and what only monitors get.
        for quiet in [false, true] {
            for live in [
                outcome::ESTABLISHED,
                outcome::SUBFLOW_UP,
                outcome::SUBFLOW_DOWN,
            ] {
                assert!(!written(live, quiet));
            }
            assert!(written(outcome::REFUSED_SETSOCKOPT, quiet));
            assert!(written(outcome::VERDICT, quiet));
            assert_eq!(written(outcome::UPGRADED, quiet), !quiet);
            assert_eq!(written(outcome::CLOSED, quiet), !quiet);
        }
    }
}
