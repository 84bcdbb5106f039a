//! The clock that gives an event its wall time: the programs stamp events
//! with the boot-time clock, which this turns into wall-clock time.

/// Turns the programs' boot-time stamps (`bpf_ktime_get_boot_ns`) into wall
/// clock time, from one reading of both clocks.
pub struct Clock {
    wall_minus_boot: std::time::Duration,
}

impl Clock {
    pub fn now() -> Clock {
        let boot = boot_time();
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Clock {
            wall_minus_boot: wall.saturating_sub(boot),
        }
    }

    /// The wall time of `boot_ns`; for an event not stamped (0, see
    /// `flag::STAMP`), now: it is read within one read interval.
    pub fn wall(&self, boot_ns: u64) -> std::time::SystemTime {
        if boot_ns == 0 {
            return std::time::SystemTime::now();
        }
        std::time::UNIX_EPOCH + self.wall_minus_boot + std::time::Duration::from_nanos(boot_ns)
    }
}

/// CLOCK_BOOTTIME, the clock of `bpf_ktime_get_boot_ns`.
fn boot_time() -> std::time::Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    std::time::Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stamped event's time comes from its boot-time stamp; an unstamped
    /// one (0: nobody asked for times) is given the time it is read at.
    #[test]
    fn events_without_a_stamp_take_the_time_they_are_read_at() {
        let clock = Clock::now();
        let before = std::time::SystemTime::now();
        let read = clock.wall(0);
        assert!(read >= before && read <= std::time::SystemTime::now());
        let boot = boot_time();
        let stamped = clock.wall(boot.as_nanos() as u64 - 5_000_000_000);
        let ago = before.duration_since(stamped).expect("in the past");
        let (low, high) = (
            std::time::Duration::from_millis(4900),
            std::time::Duration::from_millis(5100),
        );
        assert!(ago > low && ago < high, "{ago:?}");
    }
}
