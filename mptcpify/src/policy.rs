//! The operator's selection, checked and resolved into what the BPF maps hold.

use std::fmt;

use mptcpify_common::maps::{role, CommKey};

use crate::cli::Selectors;
use crate::errors::Failure;

#[derive(Debug, Default)]
pub struct Policy {
    /// comm → role bits, in the order given.
    pub comms: Vec<(CommKey, u8)>,
    /// Things worth telling the operator before attaching.
    pub warnings: Vec<String>,
}

impl Policy {
    pub fn resolve(selectors: &Selectors) -> Result<Self, Failure> {
        let mut policy = Policy::default();
        for (names, role) in [
            (&selectors.comm, role::INCLUDE),
            (&selectors.exclude_comm, role::EXCLUDE),
        ] {
            for name in names {
                policy.add_comm(name, role)?;
            }
        }
        Ok(policy)
    }

    fn add_comm(&mut self, name: &str, role: u8) -> Result<(), Failure> {
        if name.is_empty() || name.contains('/') {
            return Err(Failure::BadSelector {
                what: format!("invalid process name {name:?}"),
                fix: "Pass the name as `ps -o comm= -p PID` shows it, not a path: \
                      --comm nginx, not --comm /usr/sbin/nginx."
                    .into(),
            });
        }
        let (key, cut) = CommKey::from_name(name.as_bytes());
        if cut {
            self.warnings.push(format!(
                "process name {name:?} is longer than the kernel keeps (15 bytes); \
                 matching {:?}",
                String::from_utf8_lossy(key.as_bytes())
            ));
        }
        match self.comms.iter_mut().find(|(k, _)| *k == key) {
            Some((_, roles)) => *roles |= role,
            None => self.comms.push((key, role)),
        }
        Ok(())
    }

    pub fn system_wide(&self) -> bool {
        !self.comms.iter().any(|(_, r)| r & role::INCLUDE != 0)
    }

    fn comms_with(&self, role: u8) -> Vec<String> {
        self.comms
            .iter()
            .filter(|(_, r)| r & role != 0)
            .map(|(k, _)| String::from_utf8_lossy(k.as_bytes()).into_owned())
            .collect()
    }
}

/// The effective policy, as printed at start.
impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.system_wide() {
            write!(f, "all processes")?;
        } else {
            write!(
                f,
                "processes named {}",
                self.comms_with(role::INCLUDE).join(", ")
            )?;
        }
        let excluded = self.comms_with(role::EXCLUDE);
        if !excluded.is_empty() {
            write!(f, ", except those named {}", excluded.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selectors(comm: &[&str], exclude: &[&str]) -> Selectors {
        Selectors {
            comm: comm.iter().map(|s| s.to_string()).collect(),
            exclude_comm: exclude.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn system_wide_without_includes() {
        let p = Policy::resolve(&selectors(&[], &["sshd"])).unwrap();
        assert!(p.system_wide());
        assert_eq!(p.to_string(), "all processes, except those named sshd");
    }

    #[test]
    fn long_names_warn_and_duplicates_merge() {
        let p = Policy::resolve(&selectors(&["a-very-long-process-name", "x"], &["x"])).unwrap();
        assert_eq!(p.warnings.len(), 1);
        assert!(
            p.warnings[0].contains("\"a-very-long-pro\""),
            "{}",
            p.warnings[0]
        );
        assert_eq!(p.comms.len(), 2);
        assert_eq!(p.comms[1].1, role::INCLUDE | role::EXCLUDE);
    }

    #[test]
    fn paths_are_rejected() {
        let err = Policy::resolve(&selectors(&["/usr/bin/iperf3"], &[])).unwrap_err();
        assert_eq!(err.exit_code(), crate::errors::exit::BAD_SELECTOR);
    }
}
