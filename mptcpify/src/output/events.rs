//! What the programs report, as it happens: a line (or, with `--json`, a
//! JSON object) per upgraded socket, per socket kept TCP because its process
//! is sandboxed or under another tool's `cgroup/sock_create` program, per
//! socket option MPTCP refused, per `--explain` verdict, and per upgraded
//! socket closed (what it did); read from the programs
//! ([`crate::bpf::event_source`]), and handed to the monitors too
//! (`crate::cmd::monitor`), with the events only they get (an upgraded connection's life). Their
//! text and JSON forms are `mptcpify_core::output::render`'s.

use crate::bpf::event_source::EventSource;
use crate::output::monitor_server::Server;
use mptcpify_core::output::render::{text, to_json};
use mptcpify_core::output::report::Report;

use crate::output::clock::Clock;
use crate::pods::names::PodNames;

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
    /// With pod selectors: names each event's pod and container.
    pods: Option<PodNames>,
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
            pods: None,
        })
    }

    /// Names the pod and container of each event's process (`pod=`,
    /// `container=`; JSON `pod`, `container`).
    pub fn naming_pods(mut self, pods: Option<PodNames>) -> Self {
        self.pods = pods;
        self
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
        for record in self.source.drain() {
            let time = self.clock.wall(record.event.boot_ns);
            if let Some(monitors) = &mut self.monitors {
                monitors.send(&record, time);
            }
            let report = Report::decode(&record);
            if !report.written_by_instance(self.quiet) {
                continue;
            }
            let pod = self
                .pods
                .as_ref()
                .and_then(|pods| pods.of_pid(report.who().pid));
            let words = match &pod {
                Some((pod, Some(container))) => format!(" pod={pod} container={container}"),
                Some((pod, None)) => format!(" pod={pod}"),
                None => String::new(),
            };
            match self.output {
                Output::Stdout => println!("{}{words}", text(&report)),
                Output::Stderr => eprintln!("mptcpify: {}{words}", text(&report)),
                Output::Json => {
                    let mut json = to_json(&report, time, None);
                    if let Some((pod, container)) = pod {
                        json.set_pod(pod, container);
                    }
                    println!("{}", json.to_line());
                }
            }
        }
        if let Some(monitors) = &mut self.monitors {
            monitors.flush();
        }
    }
}
