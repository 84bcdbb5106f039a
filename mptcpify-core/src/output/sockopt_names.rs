//! Symbolic names of socket option levels, options and the errnos MPTCP
//! refuses them with, for the operator's output. By hand: no maintained
//! crate maps option numbers back to names (libc and nix give the numbers;
//! the names here are the libc constants' own, via `stringify!`).

/// `(number, name)` pairs of libc constants.
macro_rules! names {
    ($($name:ident),* $(,)?) => {
        &[$((libc::$name, stringify!($name))),*]
    };
}

const LEVELS: &[(i32, &str)] = names![SOL_SOCKET, SOL_IP, SOL_TCP, SOL_IPV6];

const SOCKET: &[(i32, &str)] = names![
    SO_ATTACH_FILTER,
    SO_ATTACH_REUSEPORT_CBPF,
    SO_ATTACH_REUSEPORT_EBPF,
    SO_ATTACH_BPF,
    SO_DETACH_FILTER,
    SO_LOCK_FILTER,
    SO_ZEROCOPY,
    SO_OOBINLINE,
    SO_MAX_PACING_RATE,
    SO_BUSY_POLL,
    SO_INCOMING_CPU,
    SO_PEEK_OFF,
    SO_TXTIME,
    SO_TIMESTAMPING,
    SO_SELECT_ERR_QUEUE,
    SO_BINDTODEVICE,
    SO_MARK,
    SO_PRIORITY,
    SO_RCVLOWAT,
    SO_LINGER,
    SO_RCVBUF,
    SO_SNDBUF,
    SO_KEEPALIVE,
    SO_REUSEADDR,
    SO_REUSEPORT,
];

const IP: &[(i32, &str)] = names![
    IP_TTL,
    IP_MINTTL,
    IP_RECVERR,
    IP_MTU_DISCOVER,
    IP_TOS,
    IP_OPTIONS,
    IP_PKTINFO,
    IP_RECVTTL,
    IP_RECVTOS,
    IP_MTU,
    IP_FREEBIND,
    IP_TRANSPARENT,
    IP_BIND_ADDRESS_NO_PORT,
];

const IPV6: &[(i32, &str)] = names![
    IPV6_TCLASS,
    IPV6_UNICAST_HOPS,
    IPV6_RECVERR,
    IPV6_MTU_DISCOVER,
    IPV6_MTU,
    IPV6_V6ONLY,
    IPV6_FREEBIND,
    IPV6_TRANSPARENT,
    IPV6_RECVPKTINFO,
    IPV6_DONTFRAG,
];

const TCP: &[(i32, &str)] = names![
    TCP_NODELAY,
    TCP_MAXSEG,
    TCP_CORK,
    TCP_KEEPIDLE,
    TCP_KEEPINTVL,
    TCP_KEEPCNT,
    TCP_SYNCNT,
    TCP_LINGER2,
    TCP_DEFER_ACCEPT,
    TCP_WINDOW_CLAMP,
    TCP_INFO,
    TCP_QUICKACK,
    TCP_CONGESTION,
    TCP_MD5SIG,
    TCP_THIN_LINEAR_TIMEOUTS,
    TCP_THIN_DUPACK,
    TCP_USER_TIMEOUT,
    TCP_REPAIR,
    TCP_REPAIR_QUEUE,
    TCP_QUEUE_SEQ,
    TCP_REPAIR_OPTIONS,
    TCP_FASTOPEN,
    TCP_TIMESTAMP,
    TCP_NOTSENT_LOWAT,
    TCP_CC_INFO,
    TCP_SAVE_SYN,
    TCP_SAVED_SYN,
    TCP_REPAIR_WINDOW,
    TCP_FASTOPEN_CONNECT,
    TCP_ULP,
    TCP_MD5SIG_EXT,
    TCP_FASTOPEN_KEY,
    TCP_FASTOPEN_NO_COOKIE,
    TCP_ZEROCOPY_RECEIVE,
    TCP_INQ,
];

/// `SOL_TCP`, or the number when unknown.
pub fn level(level: u32) -> String {
    lookup(LEVELS, level).unwrap_or_else(|| format!("level {level}"))
}

/// `TCP_ULP`, or `SOL_TCP option 99` when unknown.
pub fn option(level: u32, option: u32) -> String {
    let table = match level as i32 {
        libc::SOL_SOCKET => SOCKET,
        libc::SOL_IP => IP,
        libc::SOL_IPV6 => IPV6,
        libc::SOL_TCP => TCP,
        _ => &[],
    };
    lookup(table, option).unwrap_or_else(|| format!("{} option {option}", self::level(level)))
}

/// The errnos MPTCP refuses options with (see `event::refused`).
pub fn errno(errno: u32) -> String {
    match errno as i32 {
        libc::EOPNOTSUPP => "EOPNOTSUPP".into(),
        libc::ENOPROTOOPT => "ENOPROTOOPT".into(),
        other => format!("errno {other}"),
    }
}

fn lookup(table: &[(i32, &str)], number: u32) -> Option<String> {
    table
        .iter()
        .find(|(n, _)| *n as u32 == number)
        .map(|(_, name)| (*name).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_options_mptcp_refuses() {
        let tcp = libc::SOL_TCP as u32;
        assert_eq!(level(tcp), "SOL_TCP");
        assert_eq!(option(tcp, libc::TCP_ULP as u32), "TCP_ULP");
        assert_eq!(option(tcp, libc::TCP_MD5SIG as u32), "TCP_MD5SIG");
        assert_eq!(
            option(libc::SOL_IPV6 as u32, libc::IPV6_TCLASS as u32),
            "IPV6_TCLASS"
        );
        assert_eq!(
            option(libc::SOL_SOCKET as u32, libc::SO_ZEROCOPY as u32),
            "SO_ZEROCOPY"
        );
        assert_eq!(option(libc::SOL_IP as u32, libc::IP_TTL as u32), "IP_TTL");
        assert_eq!(option(tcp, 999), "SOL_TCP option 999");
        assert_eq!(option(7, 1), "level 7 option 1");
        assert_eq!(errno(95), "EOPNOTSUPP");
        assert_eq!(errno(92), "ENOPROTOOPT");
    }

    #[test]
    fn no_number_has_two_names_within_a_level() {
        for table in [SOCKET, IP, IPV6, TCP, LEVELS] {
            for (i, (n, name)) in table.iter().enumerate() {
                if let Some((_, other)) = table[i + 1..].iter().find(|(m, _)| m == n) {
                    panic!("{name} and {other} are both {n}");
                }
            }
        }
    }
}
