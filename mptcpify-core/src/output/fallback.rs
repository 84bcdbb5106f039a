//! Why an MPTCP connection fell back to TCP, as the kernel counts it: the
//! programs send the kernel's MIB number (`enum linux_mptcp_mib_field`,
//! net/mptcp/mib.h), whose values differ between kernels; the running
//! kernel's BTF gives them ([`crate::btf::Layout::fallback_mibs`]), and the
//! operator reads the name `/proc/net/netstat` (`nstat`) shows for the same
//! counter (net/mptcp/mib.c), so that the two can be compared.

use std::sync::OnceLock;

/// The MIB enumerators a fallback is counted by, their `/proc/net/netstat`
/// names, and what each means.
pub const MIBS: &[(&str, &str, &str)] = &[
    (
        "MPTCP_MIB_MPCAPABLEACTIVEFALLBACK",
        "MPCapableFallbackSYNACK",
        "the peer did not answer MP_CAPABLE",
    ),
    (
        "MPTCP_MIB_MPCAPABLEPASSIVEFALLBACK",
        "MPCapableFallbackACK",
        "the client's third ACK had no MP_CAPABLE",
    ),
    (
        "MPTCP_MIB_MPCAPABLEDATAFALLBACK",
        "MPCapableDataFallback",
        "the first data came without MPTCP's mapping",
    ),
    (
        "MPTCP_MIB_MD5SIGFALLBACK",
        "MD5SigFallback",
        "a TCP MD5 signature is in use",
    ),
    (
        "MPTCP_MIB_DSSFALLBACK",
        "DssFallback",
        "data came with a bad or missing mapping (DSS): a middlebox",
    ),
    (
        "MPTCP_MIB_DSSCORRUPTIONFALLBACK",
        "DSSCorruptionFallback",
        "a mapping was corrupted: a middlebox",
    ),
    (
        "MPTCP_MIB_INFINITEMAPRX",
        "InfiniteMapRx",
        "the peer sent an infinite mapping",
    ),
    (
        "MPTCP_MIB_SIMULTCONNFALLBACK",
        "SimultConnectFallback",
        "a simultaneous connect",
    ),
    (
        "MPTCP_MIB_TOKENFALLBACKINIT",
        "TokenFallbackInit",
        "no connection token could be allocated (the kernel's token table)",
    ),
    ("MPTCP_MIB_MPFAILRX", "MPFailRx", "the peer sent MP_FAIL"),
    (
        "MPTCP_MIB_FALLBACKFAILED",
        "FallbackFailed",
        "the fallback was not possible",
    ),
];

/// The running kernel's value of each enumerator of [`MIBS`] it has, by
/// its index in [`MIBS`]: set once by mptcpify from the kernel's BTF.
static KNOWN: OnceLock<Vec<(u32, usize)>> = OnceLock::new();

/// Learns the running kernel's values (`(value, index in MIBS)`); later
/// calls are ignored.
pub fn learn(values: Vec<(u32, usize)>) {
    let _ = KNOWN.set(values);
}

/// The `/proc/net/netstat` name and meaning of the kernel's MIB `value`;
/// `None` for a value this version does not know, or before [`learn`].
pub fn describe(value: u32) -> Option<(&'static str, &'static str)> {
    let index = KNOWN.get()?.iter().find(|(v, _)| *v == value)?.1;
    let (_, name, meaning) = MIBS[index];
    Some((name, meaning))
}

/// The reason's name as events and metrics give it: the netstat name, or
/// `mib N` for a value this version cannot name.
pub fn name(value: u32) -> String {
    describe(value).map_or_else(|| format!("mib {value}"), |(name, _)| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_named_by_the_running_kernels_values() {
        // Values as one kernel numbers them; another may differ.
        learn(vec![(58, 4), (60, 7)]);
        assert_eq!(name(58), "DssFallback");
        assert_eq!(
            describe(60),
            Some(("SimultConnectFallback", "a simultaneous connect"))
        );
        assert_eq!(name(3), "mib 3");
        // Every enumerator is MPTCP's and named once.
        let mut names: Vec<_> = MIBS.iter().map(|(e, _, _)| *e).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), MIBS.len());
        assert!(MIBS.iter().all(|(e, _, _)| e.starts_with("MPTCP_MIB_")));
    }
}
