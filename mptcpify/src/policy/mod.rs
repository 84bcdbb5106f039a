//! The operator's selection, checked and resolved into the keys the BPF maps
//! hold. Every selector is resolved before anything is loaded, so a bad one
//! fails with nothing attached.

use std::fmt;

use mptcpify_common::maps::{
    kind, role, CgroupRule, CommKey, MAX_CGROUP_RULES, MAX_COMMS, MAX_EXPLAIN, MAX_NETNS, MAX_PIDS,
};

use mptcpify_core::plan::Contents;
use mptcpify_core::pods::PodSelector;
use mptcpify_core::selector_numbers::Selector;

use crate::errors::Failure;
use cgroup::Cgroup;
pub mod cgroup;
pub mod netns;
pub mod pid;

pub use mptcpify_core::selectors::Selectors;

/// Entries of one selector kind: key, role bits, and how the operator named it.
#[derive(Debug, Clone)]
pub struct Entries<K>(pub Vec<(K, u8, String)>);

impl<K> Default for Entries<K> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<K: PartialEq> Entries<K> {
    fn add(&mut self, key: K, role: u8, label: String) {
        match self.0.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, roles, _)) => *roles |= role,
            None => self.0.push((key, role, label)),
        }
    }

    fn labels(&self, role: u8) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(_, r, _)| r & role != 0)
            .map(|(_, _, l)| l.as_str())
            .collect()
    }

    fn any(&self, role: u8) -> bool {
        self.0.iter().any(|(_, r, _)| r & role != 0)
    }
}

#[derive(Debug, Default)]
pub struct Policy {
    pub comms: Entries<CommKey>,
    pub pids: Entries<pid::Process>,
    pub netns: Entries<u64>,
    /// How each `--netns` was given (key, spec), to read its MPTCP setting.
    pub netns_specs: Vec<(u64, String)>,
    pub cgroups: Entries<Cgroup>,
    /// `--explain`: the process names whose TCP `socket()` calls get a
    /// verdict line. Not a selector.
    pub explained: Entries<CommKey>,
    /// Things worth telling the operator before attaching.
    pub warnings: Vec<String>,
    /// The config file's `paths` key (`--paths` on the command line).
    pub paths: Option<mptcpify_core::paths::PathsMode>,
    /// The config file's `metrics` key (`--metrics` on the command line).
    pub metrics: Option<std::net::SocketAddr>,
    /// The units `--unit` named, by their cgroup's relative path: the
    /// name their selector is shown by.
    pub units: Vec<(String, String)>,
    /// `--pod-label`, `--pod-annotation`, `--k8s-namespace`: the pods to
    /// select. With it the policy never selects every process, even while
    /// no pod matches.
    pub pods: Option<PodSelector>,
    /// `--cri`: the container runtime's socket (default: the first
    /// well-known one).
    pub cri: Option<String>,
    /// The selected pods' cgroups, by relative path, with the pod's
    /// `namespace/name` (their selectors' names); set by [`Policy::set_pods`].
    pub pod_cgroups: Vec<(String, String)>,
}

impl Policy {
    /// The include selectors, in the order [`Policy::contents`] numbers
    /// them: what each names (the same across reloads) and its name.
    pub fn selectors(&self) -> Vec<Selector> {
        let mut all = Vec::new();
        let mut add = |roles: u8, identity: String, name: String| {
            if roles & role::INCLUDE != 0 {
                all.push(Selector { identity, name });
            }
        };
        for (key, roles, label) in &self.comms.0 {
            add(*roles, format!("comm {:?}", key.0), label.clone());
        }
        for (process, roles, label) in &self.pids.0 {
            let identity = format!("pid {} {}", process.tgid, process.start_ticks);
            add(*roles, identity, label.clone());
        }
        for (key, roles, label) in &self.netns.0 {
            add(*roles, format!("netns {key}"), label.clone());
        }
        for (cgroup, roles, _) in &self.cgroups.0 {
            let unit = self.units.iter().find(|(path, _)| *path == cgroup.relative);
            let pod = self
                .pod_cgroups
                .iter()
                .find(|(path, _)| *path == cgroup.relative);
            let name = match (unit, pod) {
                (Some((_, unit)), _) => format!("unit {unit}"),
                (None, Some((_, pod))) => format!("pod {pod}"),
                (None, None) => format!("cgroup {}", cgroup.relative),
            };
            add(*roles, format!("cgroup {}", cgroup.relative), name);
        }
        all
    }

    /// What `policy` puts in the maps; `netns`: its namespace entries (in
    /// the fallback mode with the namespaces mptcpify checked); `numbers`:
    /// the number of each of [`Policy::selectors`], in its order.
    pub fn contents(&self, netns: &Entries<u64>, numbers: &[u32]) -> Contents {
        let mut contents = Contents::default();
        let kinds = |kind: u32, roles: u8, c: &mut Contents| c.add_kind(kind, roles);
        // The include entries take the numbers in the order selectors()
        // lists them.
        let mut numbers = numbers.iter().copied();
        let mut numbered = |roles: u8| {
            if roles & role::INCLUDE != 0 {
                role::with_selector(roles, numbers.next().unwrap_or(0))
            } else {
                roles
            }
        };
        for (key, roles, _) in &self.comms.0 {
            let roles = &numbered(*roles);
            contents.comms.insert(key.0, *roles);
            kinds(kind::COMM, *roles, &mut contents);
        }
        for (process, roles, _) in &self.pids.0 {
            let roles = &numbered(*roles);
            contents
                .pids
                .insert(process.tgid, (process.start_ticks, *roles));
            kinds(kind::PID, *roles, &mut contents);
        }
        // The policy's namespaces, in its order; the fallback mode's
        // checked ones (not selectors) add MPTCP_CHECKED.
        let mut own: Vec<(u64, u8)> = self
            .netns
            .0
            .iter()
            .map(|(key, roles, _)| (*key, numbered(*roles)))
            .collect();
        for (key, roles, _) in &netns.0 {
            match own.iter_mut().find(|(k, _)| k == key) {
                Some((_, held)) => *held |= roles & role::MPTCP_CHECKED,
                None => own.push((*key, *roles & !role::INCLUDE)),
            }
        }
        for (key, roles) in own {
            if roles == 0 {
                continue;
            }
            contents.netns.insert(key, roles);
            kinds(kind::NETNS, roles, &mut contents);
        }
        for (cgroup, roles, _) in &self.cgroups.0 {
            let roles = &numbered(*roles);
            let rule = CgroupRule {
                id: cgroup.id,
                level: cgroup.level,
                role: u32::from(*roles),
            };
            contents.cgroups.push((rule, cgroup.relative.clone()));
            kinds(kind::CGROUP, *roles, &mut contents);
        }
        for (key, roles, _) in &self.explained.0 {
            contents.explain.insert(key.0, *roles);
        }
        // Pods selected while none runs: the cgroup kind is asked, and no
        // rule matches (else no include kind would mean every process).
        if self.pods.is_some() {
            kinds(kind::CGROUP, role::INCLUDE, &mut contents);
        }
        contents
    }

    /// Puts the selected pods' cgroups in the policy in place of the ones
    /// it held (the caller reloads the maps).
    pub fn set_pods(&mut self, pods: &[(String, String)]) -> Result<(), Failure> {
        let old: Vec<String> = self.pod_cgroups.drain(..).map(|(path, _)| path).collect();
        self.cgroups
            .0
            .retain(|(cgroup, _, _)| !old.contains(&cgroup.relative));
        for (path, name) in pods {
            let cgroup = cgroup::at(path)?;
            self.cgroups
                .add(cgroup, role::INCLUDE, format!("pod {name} (cgroup {path})"));
            self.pod_cgroups.push((path.clone(), name.clone()));
        }
        self.check_limits()
    }

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
        for (paths, role) in [
            (&selectors.cgroup, role::INCLUDE),
            (&selectors.exclude_cgroup, role::EXCLUDE),
        ] {
            for path in paths {
                policy.add_cgroup(cgroup::resolve(path)?, role);
            }
        }
        for unit in &selectors.unit {
            let cgroup = cgroup::resolve_unit(unit)?;
            let name = cgroup
                .path
                .file_name()
                .map_or_else(|| unit.clone(), |name| name.to_string_lossy().into_owned());
            policy.units.push((cgroup.relative.clone(), name));
            policy.add_cgroup(cgroup, role::INCLUDE);
        }
        for spec in &selectors.netns {
            let key = netns::resolve(spec)?;
            policy
                .netns
                .add(key, role::INCLUDE, format!("netns {spec}"));
            policy.netns_specs.push((key, spec.clone()));
        }
        policy.pods =
            PodSelector::from_selectors(selectors).map_err(|invalid| Failure::BadSelector {
                what: invalid.what,
                fix: invalid.fix.into(),
            })?;
        policy.cri = selectors.cri.clone();
        if policy.cri.is_some() && policy.pods.is_none() {
            return Err(Failure::BadSelector {
                what: "--cri given without a pod selector".into(),
                fix: "Select pods with --pod-label KEY=VALUE (or --pod-annotation, \
                      --k8s-namespace); --cri only says where the runtime is."
                    .into(),
            });
        }
        for &given in &selectors.pid {
            policy
                .pids
                .add(pid::resolve(given)?, role::INCLUDE, format!("pid {given}"));
        }
        policy.check_limits()?;
        Ok(policy)
    }

    /// Adds `--explain` names (checked like `--comm`'s).
    pub fn explain(&mut self, names: &[String]) -> Result<(), Failure> {
        for name in names {
            let key = self.comm_key(name)?;
            let shown = String::from_utf8_lossy(key.as_bytes()).into_owned();
            self.explained.add(key, role::INCLUDE, shown);
        }
        if self.explained.0.len() > MAX_EXPLAIN as usize {
            return Err(Failure::BadSelector {
                what: format!(
                    "{} process names given to --explain; mptcpify holds at most {MAX_EXPLAIN}",
                    self.explained.0.len()
                ),
                fix: "Explain a few programs at a time.".into(),
            });
        }
        Ok(())
    }

    /// The names `--explain` asks about, for messages.
    pub fn explained_names(&self) -> Vec<&str> {
        self.explained.labels(role::INCLUDE)
    }

    /// More entries than a map holds would fail half-way through filling the
    /// maps; refuse before anything is loaded, naming the limit.
    pub fn check_limits(&self) -> Result<(), Failure> {
        // Selected pods share the cgroup rules: the fix that helps is then
        // a narrower pod selector.
        let (cgroups, cgroups_fix) = match self.pod_cgroups.len() {
            0 => (
                "cgroups (--cgroup, --unit, --exclude-cgroup)".to_string(),
                "Select a common parent cgroup instead.",
            ),
            pods => (
                format!("cgroups ({pods} selected pods, --cgroup, --unit, --exclude-cgroup)"),
                "Narrow the pod selector (another --pod-label, or --k8s-namespace), or select \
                 a common parent cgroup instead of several --cgroup.",
            ),
        };
        for (count, limit, what, fix) in [
            (
                self.comms.0.len(),
                MAX_COMMS,
                "process names (--comm, --exclude-comm)",
                "Select by cgroup (--cgroup, --unit) instead of naming every process.",
            ),
            (
                self.pids.0.len(),
                MAX_PIDS,
                "processes (--pid)",
                "Start them in one cgroup and use --cgroup, or `mptcpify run`.",
            ),
            (
                self.netns.0.len(),
                MAX_NETNS,
                "network namespaces (--netns)",
                "Select the containers by cgroup instead.",
            ),
            (
                self.cgroups.0.len(),
                MAX_CGROUP_RULES,
                cgroups.as_str(),
                cgroups_fix,
            ),
        ] {
            if count > limit as usize {
                return Err(Failure::BadSelector {
                    what: format!("{count} {what} given; mptcpify holds at most {limit}"),
                    fix: fix.into(),
                });
            }
        }
        Ok(())
    }

    fn add_comm(&mut self, name: &str, role: u8) -> Result<(), Failure> {
        let key = self.comm_key(name)?;
        let shown = String::from_utf8_lossy(key.as_bytes()).into_owned();
        self.comms.add(key, role, format!("comm {shown}"));
        Ok(())
    }

    /// The kernel's key for process name `name`: refused when it is a path
    /// or empty, with a warning when the kernel's 15 bytes cut it.
    fn comm_key(&mut self, name: &str) -> Result<CommKey, Failure> {
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
            let shown = String::from_utf8_lossy(key.as_bytes());
            self.warnings.push(format!(
                "process name {name:?} is longer than the kernel keeps (15 bytes); matching {shown:?}"
            ));
        }
        Ok(key)
    }

    pub fn add_cgroup(&mut self, cgroup: Cgroup, role: u8) {
        let mut label = format!("cgroup {}", cgroup.path.display());
        if !cgroup.exists() {
            label.push_str(" (from when it is created)");
        }
        self.cgroups.add(cgroup, role, label);
    }

    pub fn excludes_anything(&self) -> bool {
        self.comms.any(role::EXCLUDE)
            || self.pids.any(role::EXCLUDE)
            || self.netns.any(role::EXCLUDE)
            || self.cgroups.any(role::EXCLUDE)
    }

    pub fn system_wide(&self) -> bool {
        !(self.pods.is_some()
            || self.comms.any(role::INCLUDE)
            || self.pids.any(role::INCLUDE)
            || self.netns.any(role::INCLUDE)
            || self.cgroups.any(role::INCLUDE))
    }

    fn labels(&self, role: u8) -> Vec<&str> {
        let mut all = self.comms.labels(role);
        all.extend(self.pids.labels(role));
        all.extend(self.netns.labels(role));
        all.extend(self.cgroups.labels(role));
        all
    }

    /// The pod selector as the start line says it, when there is one.
    fn pods_label(&self) -> Option<String> {
        self.pods.as_ref().map(|pods| {
            if self.pod_cgroups.is_empty() {
                format!("{pods} (none running now)")
            } else {
                pods.to_string()
            }
        })
    }
}

/// The effective policy, as printed at start.
impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.system_wide() {
            write!(f, "all processes")?;
        } else {
            let mut labels: Vec<String> = self
                .labels(role::INCLUDE)
                .into_iter()
                .map(str::to_string)
                .collect();
            labels.extend(self.pods_label());
            write!(f, "processes matching any of: {}", labels.join(", "))?;
        }
        let excluded = self.labels(role::EXCLUDE);
        if !excluded.is_empty() {
            write!(f, "; never: {}", excluded.join(", "))?;
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
            ..Selectors::default()
        }
    }

    #[test]
    fn system_wide_without_includes() {
        let p = Policy::resolve(&selectors(&[], &["sshd"])).unwrap();
        assert!(p.system_wide());
        assert_eq!(p.to_string(), "all processes; never: comm sshd");
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
        assert_eq!(p.comms.0.len(), 2);
        assert_eq!(p.comms.0[1].1, role::INCLUDE | role::EXCLUDE);
        assert_eq!(
            p.to_string(),
            "processes matching any of: comm a-very-long-pro, comm x; never: comm x"
        );
    }

    #[test]
    fn more_entries_than_a_map_holds_are_refused_with_the_limit() {
        let names: Vec<String> = (0..=MAX_COMMS).map(|i| format!("p{i}")).collect();
        let err = Policy::resolve(&Selectors {
            comm: names,
            ..Selectors::default()
        })
        .unwrap_err();
        assert_eq!(err.exit_code(), crate::errors::exit::BAD_SELECTOR);
        assert!(err.to_string().contains("at most 1024"), "{err}");
        let names: Vec<String> = (0..MAX_COMMS).map(|i| format!("p{i}")).collect();
        assert!(Policy::resolve(&Selectors {
            comm: names,
            ..Selectors::default()
        })
        .is_ok());
    }

    /// Pods past the cgroup rules are refused with the fix that helps for
    /// pods (the caller puts the pods in force back).
    #[test]
    fn more_pods_than_the_cgroup_rules_hold_are_refused_with_a_pod_fix() {
        let mut policy = Policy::resolve(&Selectors {
            pod_label: vec!["mptcp.io/upgrade=true".into()],
            ..Selectors::default()
        })
        .unwrap();
        let pods = |n: u32| -> Vec<(String, String)> {
            (0..n)
                .map(|i| {
                    (
                        format!("/kubepods.slice/kubepods-pod{i}.slice"),
                        format!("default/p{i}"),
                    )
                })
                .collect()
        };
        policy.set_pods(&pods(MAX_CGROUP_RULES)).unwrap();
        let err = policy.set_pods(&pods(MAX_CGROUP_RULES + 1)).unwrap_err();
        assert_eq!(err.exit_code(), crate::errors::exit::BAD_SELECTOR);
        let text = err.to_string();
        assert!(
            text.contains(&format!("{} selected pods", MAX_CGROUP_RULES + 1)),
            "{text}"
        );
        assert!(text.contains("Narrow the pod selector"), "{text}");
    }

    #[test]
    fn paths_are_rejected() {
        let err = Policy::resolve(&selectors(&["/usr/bin/iperf3"], &[])).unwrap_err();
        assert_eq!(err.exit_code(), crate::errors::exit::BAD_SELECTOR);
    }

    #[test]
    fn bad_selectors_fail_with_their_exit_code() {
        for s in [
            Selectors {
                cgroup: vec!["no/such/cgroup".into()],
                ..Default::default()
            },
            Selectors {
                unit: vec!["no-such-unit-here".into()],
                ..Default::default()
            },
            Selectors {
                netns: vec!["/run/netns/no-such-ns".into()],
                ..Default::default()
            },
            Selectors {
                pid: vec![u32::MAX - 1],
                ..Default::default()
            },
        ] {
            let err = Policy::resolve(&s).unwrap_err();
            assert_eq!(
                err.exit_code(),
                crate::errors::exit::BAD_SELECTOR,
                "{s:?}: {err}"
            );
        }
    }
}
