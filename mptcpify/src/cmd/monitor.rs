//! `mptcpify monitor`: the attached instances' events, live, from any shell.
//! It finds every instance in the kernel's program list and reads each
//! one's socket (the wire and the instance's side:
//! [`crate::output::monitor_server`]), and writes each event with the
//! instance's own rendering (`mptcpify_core::output::render`).

use std::os::unix::net::UnixStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mptcpify_common::event::Record;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::signal::unix::{signal, SignalKind};

use crate::cli::MonitorArgs;
use crate::errors::{exit, Failure};
use crate::output::monitor_server::{address, name, HELLO, RECORD};
use mptcpify_core::output::render::{text, to_json};
use mptcpify_core::output::report::Report;

/// What a connection to one instance yields.
enum Message {
    Event(u32, SystemTime, Record),
    Ended(u32, String),
}

/// `mptcpify monitor [--json]`.
pub async fn monitor(args: &MonitorArgs) -> Result<i32, Failure> {
    let mut sigint = signal(SignalKind::interrupt()).map_err(anyhow::Error::from)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(anyhow::Error::from)?;
    let ids = crate::bpf::instances::attached_ids().map_err(|e| Failure::Privileges {
        missing: format!(
            "CAP_SYS_ADMIN, to list the kernel's BPF programs and find the instances ({e})"
        ),
    })?;
    if ids.is_empty() {
        return Err(Failure::NoInstance {
            what: "no mptcpify instance is attached on this machine".into(),
            fix: "Start one (e.g. `sudo mptcpify --comm NAME`, or `sudo systemctl start \
                  mptcpify`), then run mptcpify monitor."
                .into(),
        });
    }
    crate::kernel::layout::learn_fallback_reasons();
    let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
    let (mut watched, mut unreachable) = (Vec::new(), Vec::new());
    for id in ids {
        match UnixStream::connect_addr(&address(id).map_err(anyhow::Error::from)?) {
            Ok(stream) => {
                stream.set_nonblocking(true).map_err(anyhow::Error::from)?;
                let stream =
                    tokio::net::UnixStream::from_std(stream).map_err(anyhow::Error::from)?;
                tokio::spawn(read_instance(id, stream, tx.clone()));
                watched.push(id.to_string());
            }
            Err(e) => unreachable.push(format!("program id {id} (@{}: {e})", name(id))),
        }
    }
    drop(tx);
    if watched.is_empty() {
        return Err(Failure::NoInstance {
            what: format!(
                "no attached mptcpify instance answers in this network namespace: {}",
                unreachable.join(", ")
            ),
            fix: "An instance serves monitors in its own network namespace: for a sidecar, run \
                  `sudo nsenter --net=/proc/PID/ns/net mptcpify monitor` with the instance's \
                  PID (`mptcpify status` lists it). An instance of an mptcpify older than \
                  `monitor` serves none: restart it with this version."
                .into(),
        });
    }
    for what in &unreachable {
        eprintln!(
            "mptcpify: note: not monitored, not reachable from this network namespace: {what}"
        );
    }
    eprintln!(
        "mptcpify: monitoring program id {}; Ctrl-C to stop",
        watched.join(", ")
    );
    // The endpoints mptcpify added here (`--paths auto`, `paths auto`):
    // their record is polled, so a change is told whoever made it.
    let mut recorded = crate::paths::recorded();
    if !recorded.is_empty() {
        let list: Vec<String> = recorded
            .iter()
            .map(|a| format!("{} ({}, {})", a.ip, a.interface, a.owner))
            .collect();
        eprintln!(
            "mptcpify: paths: endpoints mptcpify added here: {}",
            list.join(", ")
        );
    }
    let mut record_poll = tokio::time::interval(RECORD_POLL);
    loop {
        tokio::select! {
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = record_poll.tick() => {
                let now = crate::paths::recorded();
                let added = now.iter().filter(|a| !recorded.contains(a)).map(|a| ("added", a));
                let removed = recorded.iter().filter(|a| !now.contains(a)).map(|a| ("removed", a));
                for (action, a) in added.chain(removed) {
                    let time = SystemTime::now();
                    if args.json {
                        let stamp = mptcpify_core::output::json::time(time);
                        println!("{}", crate::paths::event(&stamp, action, a).to_line());
                    } else {
                        println!(
                            "{} paths: endpoint {} {action} (dev {}, {}, id {}, by {})",
                            humantime::format_rfc3339_millis(time),
                            a.ip,
                            a.interface,
                            mptcpify_core::paths::flag::names(a.flags).join(" "),
                            a.id,
                            a.owner
                        );
                    }
                }
                recorded = now;
            }
            message = rx.recv() => match message {
                Some(Message::Event(id, time, event)) => {
                    let report = Report::decode(&event);
                    if args.json {
                        println!("{}", to_json(&report, time, Some(id)).to_line());
                    } else {
                        println!("{} {}", humantime::format_rfc3339_millis(time), text(&report));
                    }
                }
                Some(Message::Ended(id, why)) => eprintln!("mptcpify: program id {id}: {why}"),
                None => {
                    eprintln!("mptcpify: no instance left to monitor");
                    break;
                }
            },
        }
    }
    Ok(exit::OK)
}

/// How often the record of mptcpify's endpoints is read.
const RECORD_POLL: Duration = Duration::from_millis(500);

/// Reads one instance's events into `tx` until it detaches.
async fn read_instance(
    id: u32,
    stream: tokio::net::UnixStream,
    tx: tokio::sync::mpsc::Sender<Message>,
) {
    let mut reader = BufReader::new(stream);
    let mut hello = String::new();
    let ended = match reader.read_line(&mut hello).await {
        Ok(0) | Err(_) => "closed the connection before saying hello".to_string(),
        Ok(_) => match check_hello(&hello) {
            Err(why) => why,
            Ok(()) => {
                let mut record = [0u8; RECORD];
                loop {
                    if reader.read_exact(&mut record).await.is_err() {
                        break "detached".to_string();
                    }
                    let nanos = u64::from_le_bytes(record[..8].try_into().unwrap());
                    let time = UNIX_EPOCH + Duration::from_nanos(nanos);
                    let Some(event) = Record::from_bytes(&record[8..]) else {
                        continue;
                    };
                    if tx.send(Message::Event(id, time, event)).await.is_err() {
                        return;
                    }
                }
            }
        },
    };
    let _ = tx.send(Message::Ended(id, ended)).await;
}

/// Whether an instance's hello line is one this monitor understands.
fn check_hello(hello: &str) -> Result<(), String> {
    let hello = hello.trim_end();
    let Some(fields) = hello.strip_prefix(HELLO) else {
        return Err(format!(
            "speaks another monitor protocol ({hello:?}): use the mptcpify binary it runs"
        ));
    };
    let size = fields
        .split_whitespace()
        .find_map(|f| f.strip_prefix("event_size="));
    if size != Some(&Record::SIZE.to_string()) {
        return Err(format!(
            "is another mptcpify version (event_size {}, this one {}): use the binary it runs",
            size.unwrap_or("?"),
            Record::SIZE
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mptcpify_common::event::Event;

    #[test]
    fn only_the_same_protocol_and_event_layout_is_understood() {
        let ours = format!("{HELLO} program=7 pid=1 event_size={}\n", Record::SIZE);
        assert_eq!(check_hello(&ours), Ok(()));
        let other = format!("{HELLO} program=7 pid=1 event_size={}\n", Event::SIZE);
        assert!(check_hello(&other)
            .unwrap_err()
            .contains("another mptcpify version"));
        assert!(check_hello("mptcpify-monitor 2 program=7\n")
            .unwrap_err()
            .contains("another monitor protocol"));
    }
}
