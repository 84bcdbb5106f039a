//! Prints one line per upgraded socket (and per socket kept TCP because its
//! process is sandboxed), read from the program's ring buffer.

use aya::maps::{MapData, RingBuf};
use mptcpify_common::{
    consts::AF_INET6,
    event::{outcome, UpgradeEvent},
};
use tokio::io::{unix::AsyncFd, Interest};

pub struct Events {
    ring: AsyncFd<RingBuf<MapData>>,
    /// `mptcpify run` keeps stdout for the command.
    to_stderr: bool,
}

impl Events {
    pub fn new(ring: RingBuf<MapData>, to_stderr: bool) -> anyhow::Result<Self> {
        // SAFETY: the RingBuf owns its map fd and keeps it open, unchanged,
        // until it is dropped together with the AsyncFd.
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(|e| anyhow::anyhow!("watching the event ring buffer: {e}"))?;
        Ok(Self { ring, to_stderr })
    }

    /// Waits for events and prints them; returns only on error.
    pub async fn print_forever(&mut self) -> anyhow::Result<()> {
        loop {
            let mut guard = self.ring.readable_mut().await?;
            let ring = guard.get_inner_mut();
            while let Some(item) = ring.next() {
                if let Some(event) = UpgradeEvent::from_bytes(&item) {
                    if self.to_stderr {
                        eprintln!("mptcpify: {}", line(&event));
                    } else {
                        println!("{}", line(&event));
                    }
                }
            }
            guard.clear_ready();
        }
    }
}

fn line(event: &UpgradeEvent) -> String {
    let end = event
        .comm
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(event.comm.len());
    let family = if event.family as i32 == AF_INET6 {
        "ipv6"
    } else {
        "ipv4"
    };
    let what = match event.outcome {
        outcome::KEPT_SANDBOXED => "kept tcp (sandboxed: Landlock would not restrict mptcp)",
        _ => "upgraded",
    };
    format!(
        "{what} pid={} tid={} comm={} family={family}",
        event.pid,
        event.tid,
        String::from_utf8_lossy(&event.comm[..end])
    )
}
