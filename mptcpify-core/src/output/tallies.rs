//! The counts kept per selector, per fallback reason and per refused
//! option, read as raw per-entry sums from their maps (`SELECTOR_COUNTERS`,
//! `FALLBACKS`, `REFUSED`) and turned into named rows for `status`, the
//! exit summary and `/metrics`. Only rows with something to say are kept,
//! so what is shown is bounded by the policy and the kernel's lists, never
//! by the traffic.

use mptcpify_common::maps::{refused_entry, SelectorCounter, FALLBACK_REASONS, MAX_SELECTORS};
use serde::Serialize;

use super::{fallback, sockopt_names};
use crate::selector_numbers::unnumbered;

/// What the sockets of one selector did (`status --json`: an entry of an
/// instance's `selectors`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SelectorTally {
    /// The selector as the operator gave it: `comm NAME`, `pid N`,
    /// `netns SPEC`, `unit NAME`, `cgroup PATH`; or `all processes`.
    pub selector: String,
    /// Upgraded sockets it created (followed from `socket()`).
    pub upgraded: u64,
    /// Connections its upgraded listeners accepted, by client.
    pub accepted_mptcp: u64,
    pub accepted_tcp: u64,
    /// The share of accepted connections that are MPTCP, in percent
    /// (`null` before any).
    pub accepted_mptcp_percent: Option<f64>,
    /// Upgraded sockets closed after using MPTCP.
    pub closed_mptcp: u64,
    /// Closed after the peer did not answer MP_CAPABLE.
    pub fell_back: u64,
    /// Closed after MPTCP fell back later (made or accepted).
    pub fell_back_later: u64,
    /// Extra subflows its closed connections joined.
    pub extra_subflows: u64,
    /// Socket options MPTCP refused on its sockets.
    pub refused_options: u64,
}

impl SelectorTally {
    fn from_counts(selector: String, counts: &[u64]) -> Self {
        let get = |c: SelectorCounter| counts.get(c as usize).copied().unwrap_or(0);
        let (mptcp, tcp) = (
            get(SelectorCounter::AcceptedMptcp),
            get(SelectorCounter::AcceptedTcp),
        );
        Self {
            selector,
            upgraded: get(SelectorCounter::Upgraded),
            accepted_mptcp: mptcp,
            accepted_tcp: tcp,
            accepted_mptcp_percent: (mptcp + tcp > 0)
                .then(|| (mptcp as f64 * 1000.0 / (mptcp + tcp) as f64).round() / 10.0),
            closed_mptcp: get(SelectorCounter::ClosedMptcp),
            fell_back: get(SelectorCounter::FellBack),
            fell_back_later: get(SelectorCounter::FellBackLater),
            extra_subflows: get(SelectorCounter::ExtraSubflows),
            refused_options: get(SelectorCounter::RefusedOptions),
        }
    }

    /// Nothing counted yet.
    pub fn is_empty(&self) -> bool {
        self.upgraded
            + self.accepted_mptcp
            + self.accepted_tcp
            + self.closed_mptcp
            + self.fell_back
            + self.fell_back_later
            + self.extra_subflows
            + self.refused_options
            == 0
    }

    /// One line: `unit nginx.service: 3 upgraded; accepted 40 MPTCP (57.1%),
    /// 30 TCP; ...`.
    pub fn line(&self) -> String {
        let mut parts = vec![format!("{} upgraded", self.upgraded)];
        if let Some(percent) = self.accepted_mptcp_percent {
            parts.push(format!(
                "accepted {} MPTCP ({percent}%), {} TCP",
                self.accepted_mptcp, self.accepted_tcp
            ));
        }
        parts.push(format!(
            "closed {} MPTCP, {} fell back, {} fell back later",
            self.closed_mptcp, self.fell_back, self.fell_back_later
        ));
        parts.push(format!("{} extra subflows", self.extra_subflows));
        parts.push(format!("{} refused options", self.refused_options));
        format!("{}: {}", self.selector, parts.join("; "))
    }
}

/// The rows of `SELECTOR_COUNTERS` (`counts`: entry by entry, summed over
/// CPUs) under the names of `SELECTOR_NAMES` (`names`, by number; empty:
/// unused): every named number, except number 0 when it counted nothing
/// and stands for no selector of its own.
pub fn selectors(names: &[String], counts: &[u64]) -> Vec<SelectorTally> {
    let per = SelectorCounter::COUNT as usize;
    (0..MAX_SELECTORS as usize)
        .filter_map(|number| {
            let name = names.get(number).filter(|n| !n.is_empty())?;
            let start = (number * per).min(counts.len());
            let tally = SelectorTally::from_counts(
                name.clone(),
                &counts[start..(start + per).min(counts.len())],
            );
            let idle_overflow = number == 0 && *name != unnumbered(true) && tally.is_empty();
            (!idle_overflow).then_some(tally)
        })
        .collect()
}

/// Followed connections that fell back, by when and why (`status --json`:
/// an entry of an instance's `fallbacks`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FallbackTally {
    /// `at_connect` (the peer did not answer MP_CAPABLE) or
    /// `after_established`.
    pub when: &'static str,
    /// The kernel's reason as `/proc/net/netstat` names its counter
    /// (`MPCapableFallbackSYNACK`, `DssFallback`, ...), or `unknown` where
    /// the kernel does not say (before 6.17).
    pub reason: String,
    pub connections: u64,
}

/// The rows of `FALLBACKS` (`counts`: entry by entry) with a count.
pub fn fallbacks(counts: &[u64]) -> Vec<FallbackTally> {
    counts
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(index, n)| {
            let (later, reason) = (
                index as u32 >= FALLBACK_REASONS,
                index as u32 % FALLBACK_REASONS,
            );
            FallbackTally {
                when: if later {
                    "after_established"
                } else {
                    "at_connect"
                },
                reason: match reason {
                    0 => "unknown".into(),
                    mib => fallback::name(mib - 1),
                },
                connections: *n,
            }
        })
        .collect()
}

/// Refused calls of one socket option (`status --json`: an entry of an
/// instance's `refused_options`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RefusedTally {
    /// `SOL_TCP`, `SOL_SOCKET`, ... (`other` for any other level).
    pub level: String,
    /// The option's libc name (`TCP_ULP`), or `LEVEL option N`; option
    /// numbers from 127 up are counted together as 127.
    pub option: String,
    pub calls: u64,
}

/// The rows of `REFUSED` (`counts`: entry by entry) with a count.
pub fn refused(counts: &[u64]) -> Vec<RefusedTally> {
    counts
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(index, n)| {
            let (level, option) = refused_entry(index as u32);
            RefusedTally {
                level: level.map_or_else(|| "other".into(), sockopt_names::level),
                option: match level {
                    Some(level) => sockopt_names::option(level, option),
                    None => format!("other level option {option}"),
                },
                calls: *n,
            }
        })
        .collect()
}

/// The fallback rows in one line, `at_connect MPCapableFallbackSYNACK 3,
/// ...` (`None` without any).
pub fn fallbacks_line(rows: &[FallbackTally]) -> Option<String> {
    let rows: Vec<String> = rows
        .iter()
        .map(|f| format!("{} {} {}", f.when, f.reason, f.connections))
        .collect();
    (!rows.is_empty()).then(|| rows.join(", "))
}

/// The refused-option rows in one line, `TCP_ULP 4, ...` (`None` without
/// any).
pub fn refused_line(rows: &[RefusedTally]) -> Option<String> {
    let rows: Vec<String> = rows
        .iter()
        .map(|r| format!("{} {}", r.option, r.calls))
        .collect();
    (!rows.is_empty()).then(|| rows.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mptcpify_common::maps::{fallback_index, refused_index};

    #[test]
    fn selector_rows_are_the_named_numbers_with_their_counts() {
        let mut names = vec![String::new(); MAX_SELECTORS as usize];
        names[0] = unnumbered(false).into();
        names[1] = "unit nginx.service".into();
        names[2] = "comm curl".into();
        let mut counts = vec![0u64; (MAX_SELECTORS * SelectorCounter::COUNT) as usize];
        counts[SelectorCounter::AcceptedMptcp.index(1) as usize] = 40;
        counts[SelectorCounter::AcceptedTcp.index(1) as usize] = 30;
        counts[SelectorCounter::Upgraded.index(2) as usize] = 40;
        counts[SelectorCounter::ClosedMptcp.index(2) as usize] = 39;
        counts[SelectorCounter::FellBack.index(2) as usize] = 1;
        let rows = selectors(&names, &counts);
        assert_eq!(rows.len(), 2, "the idle overflow row is left out: {rows:?}");
        assert_eq!(rows[0].selector, "unit nginx.service");
        assert_eq!((rows[0].accepted_mptcp, rows[0].accepted_tcp), (40, 30));
        assert_eq!(rows[0].accepted_mptcp_percent, Some(57.1));
        assert_eq!(
            rows[1].line(),
            "comm curl: 40 upgraded; closed 39 MPTCP, 1 fell back, 0 fell back later; \
             0 extra subflows; 0 refused options"
        );
        // --all: number 0 is the one row, even before anything counted.
        names[0] = unnumbered(true).into();
        let all = selectors(&names[..1], &[0; 8]);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].accepted_mptcp_percent, None);
    }

    #[test]
    fn fallback_and_refused_rows_are_named_by_when_reason_and_option() {
        fallback::learn(vec![(58, 4)]);
        let mut counts = vec![0u64; mptcpify_common::maps::FALLBACK_SLOTS as usize];
        counts[fallback_index(false, 0) as usize] = 3;
        counts[fallback_index(true, 59) as usize] = 2;
        let rows = fallbacks(&counts);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].when, rows[0].reason.as_str()),
            ("at_connect", "unknown")
        );
        assert_eq!(
            (rows[1].when, rows[1].reason.as_str(), rows[1].connections),
            ("after_established", "DssFallback", 2)
        );
        let mut counts = vec![0u64; 640];
        counts[refused_index(6, 31) as usize] = 4;
        counts[refused_index(99, 3) as usize] = 1;
        let rows = refused(&counts);
        assert_eq!(
            (rows[0].level.as_str(), rows[0].option.as_str()),
            ("SOL_TCP", "TCP_ULP")
        );
        assert_eq!(rows[0].calls, 4);
        assert_eq!(rows[1].option, "other level option 3");
        assert_eq!(
            refused_line(&rows).unwrap(),
            "TCP_ULP 4, other level option 3 1"
        );
        assert_eq!(refused_line(&[]), None);
        assert_eq!(fallbacks_line(&[]), None);
    }
}
