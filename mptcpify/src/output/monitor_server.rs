//! The instance's side of `mptcpify monitor`: each instance serves its
//! events on an abstract Unix socket of its network namespace named after
//! its upgrader's program id ([`address`]). Program ids are global and not
//! reused while the program lives, so a monitor finds every instance in the
//! kernel's program list (as `status` does), with no file to go stale;
//! abstract, so nothing is left on disk after a SIGKILL and systemd's
//! read-only sandbox needs no writable directory. Only root and the
//! instance's own user are served (SO_PEERCRED): events name every selected
//! process.
//!
//! The wire: a hello line (`mptcpify-monitor 1 program=ID pid=PID
//! event_size=N`), then per event its wall time (u64 nanoseconds since the
//! epoch, little-endian) and its bytes ([`Record::to_bytes`]: the event, and an accepted
//! connection's ends), so that the
//! monitor writes each event with the instance's own code
//! (`mptcpify_core::output::render`). The command's side is `cmd::monitor`.

use std::io::{ErrorKind, Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use mptcpify_common::event::{outcome, Event, Record};

use crate::bpf::loader::{Attached, LiveSwitch};

/// The first words of the hello line; the number is the wire's version.
pub const HELLO: &str = "mptcpify-monitor 1";
/// Bytes a monitor may fall behind before its events are dropped (and it
/// is told how many): about 16,000 events.
const BEHIND_LIMIT: usize = 1 << 20;
/// One event on the wire: its time, then its bytes.
pub const RECORD: usize = 8 + Record::SIZE;

/// The abstract socket name of the instance whose upgrader is program `id`.
pub fn name(id: u32) -> String {
    format!("mptcpify/monitor/{id}")
}

pub fn address(id: u32) -> std::io::Result<SocketAddr> {
    SocketAddr::from_abstract_name(name(id))
}

/// The instance's side: takes monitors, hands each every event.
pub struct Server {
    listener: UnixListener,
    clients: Vec<Client>,
    switch: LiveSwitch,
    hello: Vec<u8>,
}

struct Client {
    stream: UnixStream,
    /// Bytes not yet written (the socket was full).
    pending: Vec<u8>,
    /// Events dropped since the last one sent.
    dropped: u32,
    gone: bool,
}

impl Server {
    /// Serves `attached`'s events to monitors; `quiet`: the instance sends no
    /// per-socket events of its own; `stamped`: it stamps its events anyway
    /// (`--json`). `None`, said, when it cannot.
    pub fn start(attached: &Attached, quiet: bool, stamped: bool) -> Option<Server> {
        match Self::bind(attached, quiet, stamped) {
            Ok(server) => Some(server),
            Err(e) => {
                eprintln!(
                    "mptcpify: warning: `mptcpify monitor` cannot watch this instance: {e:#}"
                );
                None
            }
        }
    }

    fn bind(attached: &Attached, quiet: bool, stamped: bool) -> anyhow::Result<Server> {
        let id = attached
            .program_id()
            .context("the upgrader has no program id")?;
        let listener = UnixListener::bind_addr(&address(id)?)
            .with_context(|| format!("binding the abstract socket @{}", name(id)))?;
        listener.set_nonblocking(true)?;
        Ok(Server {
            listener,
            clients: Vec::new(),
            switch: attached.live_switch(quiet, stamped)?,
            hello: format!(
                "{HELLO} program={id} pid={} event_size={}\n",
                std::process::id(),
                Record::SIZE
            )
            .into_bytes(),
        })
    }

    /// Takes new monitors and lets go of gone ones; the programs send the
    /// events only monitors want while at least one listens.
    pub fn poll(&mut self) {
        let watched = !self.clients.is_empty();
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if let Some(client) = self.admit(stream) {
                        self.clients.push(client);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => {
                    eprintln!("mptcpify: warning: taking a monitor: {e}");
                    break;
                }
            }
        }
        for client in &mut self.clients {
            client.check_open();
        }
        self.flush();
        let now_watched = !self.clients.is_empty();
        if now_watched != watched {
            if let Err(e) = self.switch.set(now_watched) {
                eprintln!("mptcpify: warning: switching the monitor's events: {e:#}");
            }
        }
    }

    fn admit(&self, stream: UnixStream) -> Option<Client> {
        stream.set_nonblocking(true).ok()?;
        let stream = tokio::net::UnixStream::from_std(stream).ok()?;
        let uid = stream.peer_cred().ok()?.uid();
        if uid != 0 && uid != rustix::process::geteuid().as_raw() {
            return None;
        }
        Some(Client {
            stream: stream.into_std().ok()?,
            pending: self.hello.clone(),
            dropped: 0,
            gone: false,
        })
    }

    /// Queues `event`, of wall time `time`, for every monitor.
    pub fn send(&mut self, event: &Record, time: SystemTime) {
        for client in &mut self.clients {
            client.send(event, time);
        }
    }

    /// Writes what each monitor can take now.
    pub fn flush(&mut self) {
        for client in &mut self.clients {
            client.flush();
        }
        self.clients.retain(|c| !c.gone);
    }
}

impl Client {
    /// Queues `event`, or drops it when this monitor is too far behind; the
    /// next event queued is preceded by how many were dropped.
    fn send(&mut self, event: &Record, time: SystemTime) {
        if self.pending.len() + 2 * RECORD > BEHIND_LIMIT {
            self.dropped += 1;
            return;
        }
        if self.dropped > 0 {
            let dropped = Event {
                outcome: outcome::MONITOR_DROPPED,
                why: std::mem::take(&mut self.dropped),
                ..Event::default()
            };
            self.queue(&dropped.into(), time);
        }
        self.queue(event, time);
    }

    fn queue(&mut self, event: &Record, time: SystemTime) {
        let nanos = time
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        self.pending.extend_from_slice(&nanos.to_le_bytes());
        self.pending.extend_from_slice(&event.to_bytes());
    }

    /// A monitor sends nothing: a read that returns is its end.
    fn check_open(&mut self) {
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Ok(n) if n > 0 => {}
            _ => self.gone = true,
        }
    }

    fn flush(&mut self) {
        while !self.gone && !self.pending.is_empty() {
            match self.stream.write(&self.pending) {
                Ok(0) => self.gone = true,
                Ok(n) => drop(self.pending.drain(..n)),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => self.gone = true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_monitor_that_falls_behind_is_told_how_many_events_it_lost() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let mut client = Client {
            stream: ours,
            pending: vec![0; BEHIND_LIMIT - RECORD],
            dropped: 0,
            gone: false,
        };
        let event: Record = Event {
            outcome: outcome::UPGRADED,
            pid: 9,
            ..Event::default()
        }
        .into();
        for _ in 0..3 {
            client.send(&event, UNIX_EPOCH);
        }
        assert_eq!(client.dropped, 3);
        client.pending.clear();
        client.send(&event, UNIX_EPOCH + Duration::from_secs(1));
        client.flush();
        assert!(client.pending.is_empty() && !client.gone);
        let mut bytes = vec![0u8; 2 * RECORD];
        (&theirs).read_exact(&mut bytes).unwrap();
        let first = Record::from_bytes(&bytes[8..RECORD]).unwrap().event;
        assert_eq!((first.outcome, first.why), (outcome::MONITOR_DROPPED, 3));
        let second = Record::from_bytes(&bytes[RECORD + 8..]).unwrap();
        assert_eq!(second, event);
        assert_eq!(
            u64::from_le_bytes(bytes[RECORD..RECORD + 8].try_into().unwrap()),
            1_000_000_000
        );
        client.check_open();
        assert!(!client.gone, "an open monitor stays");
        drop(theirs);
        client.check_open();
        assert!(client.gone, "a closed monitor is let go");
    }
}
