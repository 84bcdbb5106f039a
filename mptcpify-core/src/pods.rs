//! Kubernetes pods as selectors: which pods `--pod-label`,
//! `--pod-annotation` and `--k8s-namespace` name, checked as Kubernetes
//! checks them, and where a pod's cgroup is, from what the container
//! runtime tells of it over the CRI (`PodSandboxStatus`, verbose). Pure:
//! the CRI client and the follower are mptcpify's `pods` layer.

use std::collections::HashMap;

use crate::selectors::Selectors;

/// The pods an operator selects: every label and every annotation given
/// must match (as a Kubernetes equality selector `a=b,c=d`), in one of the
/// namespaces given (any, when none is).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodSelector {
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    pub namespaces: Vec<String>,
}

/// A selector that Kubernetes would refuse: what, and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub what: String,
    pub fix: &'static str,
}

impl PodSelector {
    /// The pod selector of `selectors`; `None` when it names no pods.
    pub fn from_selectors(selectors: &Selectors) -> Result<Option<PodSelector>, Invalid> {
        if selectors.pod_label.is_empty()
            && selectors.pod_annotation.is_empty()
            && selectors.k8s_namespace.is_empty()
        {
            return Ok(None);
        }
        let pairs = |given: &[String], option: &str, value_check: fn(&str) -> bool| {
            given
                .iter()
                .map(|pair| {
                    let (key, value) = pair.split_once('=').ok_or_else(|| Invalid {
                        what: format!("{option} {pair:?} is not KEY=VALUE"),
                        fix: "Write it as Kubernetes does: --pod-label mptcp.io/upgrade=true.",
                    })?;
                    if !valid_key(key) {
                        return Err(Invalid {
                            what: format!("{option}: {key:?} is not a valid Kubernetes key"),
                            fix: "A key is an optional DNS prefix and a slash, then a name of \
                                  at most 63 letters, digits, '-', '_' or '.', starting and \
                                  ending with a letter or digit (mptcp.io/upgrade).",
                        });
                    }
                    if !value_check(value) {
                        return Err(Invalid {
                            what: format!("{option}: {value:?} is not a valid label value"),
                            fix: "A label value is at most 63 letters, digits, '-', '_' or \
                                  '.', starting and ending with a letter or digit, or empty.",
                        });
                    }
                    Ok((key.to_string(), value.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let namespaces = selectors.k8s_namespace.clone();
        if let Some(bad) = namespaces.iter().find(|ns| !rfc1123_label(ns)) {
            return Err(Invalid {
                what: format!("--k8s-namespace {bad:?} is not a valid Kubernetes namespace"),
                fix: "A namespace is at most 63 lowercase letters, digits or '-', starting \
                      and ending with a letter or digit (kube-system).",
            });
        }
        Ok(Some(PodSelector {
            labels: pairs(&selectors.pod_label, "--pod-label", valid_label_value)?,
            annotations: pairs(&selectors.pod_annotation, "--pod-annotation", |_| true)?,
            namespaces,
        }))
    }

    /// Whether a pod of `namespace` with these labels and annotations is
    /// selected.
    pub fn matches(
        &self,
        namespace: &str,
        labels: &HashMap<String, String>,
        annotations: &HashMap<String, String>,
    ) -> bool {
        let all = |wanted: &[(String, String)], have: &HashMap<String, String>| {
            wanted.iter().all(|(k, v)| have.get(k) == Some(v))
        };
        (self.namespaces.is_empty() || self.namespaces.iter().any(|ns| ns == namespace))
            && all(&self.labels, labels)
            && all(&self.annotations, annotations)
    }

    /// The labels as a CRI `label_selector`: the runtime filters by them.
    pub fn label_selector(&self) -> HashMap<String, String> {
        self.labels.iter().cloned().collect()
    }
}

impl std::fmt::Display for PodSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        let list = |pairs: &[(String, String)]| {
            pairs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        if !self.labels.is_empty() {
            parts.push(format!("labelled {}", list(&self.labels)));
        }
        if !self.annotations.is_empty() {
            parts.push(format!("annotated {}", list(&self.annotations)));
        }
        if !self.namespaces.is_empty() {
            parts.push(format!("in namespace {}", self.namespaces.join(" or ")));
        }
        write!(f, "pods {}", parts.join(", "))
    }
}

/// A label or annotation key: `[prefix/]name`, the prefix a DNS subdomain
/// (at most 253 bytes), the name at most 63 (k8s.io/apimachinery,
/// validation.IsQualifiedName).
fn valid_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_ok =
        prefix.is_none_or(|p| !p.is_empty() && p.len() <= 253 && p.split('.').all(rfc1123_label));
    prefix_ok && !name.is_empty() && valid_label_value(name)
}

/// A label value (and a key's name): at most 63 of `[A-Za-z0-9_.-]`,
/// alphanumeric at both ends, or empty (validation.IsValidLabelValue).
fn valid_label_value(value: &str) -> bool {
    let alnum = |b: Option<u8>| b.is_none_or(|b| b.is_ascii_alphanumeric());
    value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && alnum(value.bytes().next())
        && alnum(value.bytes().last())
}

/// A namespace name, and each label of a key's DNS prefix: an RFC 1123
/// label.
fn rfc1123_label(ns: &str) -> bool {
    !ns.is_empty()
        && ns.len() <= 63
        && ns
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !ns.starts_with('-')
        && !ns.ends_with('-')
}

/// The pod's cgroup, relative to the cgroup2 mount with a leading `/`,
/// from the kubelet's `cgroup_parent` of the pod: a path with the cgroupfs
/// driver (`/kubepods/besteffort/pod<uid>`), a slice with systemd's
/// (`kubepods-besteffort-pod<uid>.slice`, which systemd nests by its
/// dashes: `/kubepods.slice/kubepods-besteffort.slice/...`).
pub fn pod_cgroup(cgroup_parent: &str) -> Option<String> {
    let parent = cgroup_parent.trim();
    if parent.is_empty() {
        return None;
    }
    if parent.ends_with(".slice") && !parent.contains('/') {
        let path = crate::systemd_slice::slice_path(parent);
        return Some(if path.is_empty() { "/".into() } else { path });
    }
    Some(format!("/{}", parent.trim_start_matches('/')))
}

/// The pod's `cgroup_parent` from the runtime's verbose `info` of a pod
/// sandbox (its `"info"` entry, JSON): containerd keeps the kubelet's
/// sandbox config (`config.linux.cgroup_parent`); CRI-O and others give
/// the OCI spec, whose `linux.cgroupsPath` is `slice:prefix:name` with
/// systemd's driver or the sandbox container's own cgroup (the pod's
/// below it) with cgroupfs.
pub fn cgroup_parent_from_info(info: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(info).ok()?;
    let from_config = value
        .pointer("/config/linux/cgroup_parent")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty());
    if let Some(parent) = from_config {
        return Some(parent.to_string());
    }
    let spec = value
        .pointer("/runtimeSpec/linux/cgroupsPath")
        .and_then(|v| v.as_str())?;
    match spec.split(':').collect::<Vec<_>>()[..] {
        [slice, _, _] if slice.ends_with(".slice") => Some(slice.to_string()),
        _ => spec
            .rsplit_once('/')
            .map(|(parent, _)| parent.to_string())
            .filter(|p| !p.is_empty()),
    }
}

/// The cgroup v2 path in a `/proc/PID/cgroup` text (its `0::PATH` line).
pub fn unified_path(proc_cgroup: &str) -> Option<&str> {
    proc_cgroup.lines().find_map(|l| l.strip_prefix("0::"))
}

/// Which of `pods` (cgroup path, name) the process whose cgroup is `path`
/// is in, and its container's id: the cgroup just below the pod's, as the
/// runtimes name it (`cri-containerd-ID.scope` or `crio-ID.scope` with
/// systemd's driver, `ID` with cgroupfs).
pub fn pod_of<'a>(path: &str, pods: &'a [(String, String)]) -> Option<(&'a str, Option<String>)> {
    pods.iter().find_map(|(cgroup, name)| {
        let below = path.strip_prefix(cgroup.as_str())?;
        if !(below.is_empty() || below.starts_with('/')) {
            return None;
        }
        let first = below
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or_default();
        let id = first.strip_suffix(".scope").unwrap_or(first);
        let id = id.rsplit('-').next().unwrap_or(id);
        Some((name.as_str(), (!id.is_empty()).then(|| id.to_string())))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selectors(labels: &[&str], annotations: &[&str], namespaces: &[&str]) -> Selectors {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Selectors {
            pod_label: owned(labels),
            pod_annotation: owned(annotations),
            k8s_namespace: owned(namespaces),
            ..Selectors::default()
        }
    }

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_label_annotation_and_namespace_given_must_match() {
        let s = PodSelector::from_selectors(&selectors(
            &["mptcp.io/upgrade=true", "app=web"],
            &["team=net"],
            &["prod", "staging"],
        ))
        .unwrap()
        .unwrap();
        let labels = map(&[("mptcp.io/upgrade", "true"), ("app", "web"), ("x", "y")]);
        let annotations = map(&[("team", "net")]);
        assert!(s.matches("prod", &labels, &annotations));
        assert!(s.matches("staging", &labels, &annotations));
        assert!(!s.matches("default", &labels, &annotations));
        assert!(!s.matches("prod", &map(&[("app", "web")]), &annotations));
        assert!(!s.matches("prod", &labels, &map(&[])));
        assert!(!s.matches(
            "prod",
            &map(&[("mptcp.io/upgrade", "false"), ("app", "web")]),
            &annotations
        ));
        assert_eq!(
            s.to_string(),
            "pods labelled mptcp.io/upgrade=true,app=web, annotated team=net, in namespace prod or staging"
        );
        // A namespace alone selects every pod in it.
        let ns = PodSelector::from_selectors(&selectors(&[], &[], &["prod"]))
            .unwrap()
            .unwrap();
        assert!(ns.matches("prod", &map(&[]), &map(&[])));
        assert!(PodSelector::from_selectors(&Selectors::default())
            .unwrap()
            .is_none());
    }

    #[test]
    fn what_kubernetes_refuses_is_refused() {
        for (labels, annotations, namespaces) in [
            (&["upgrade"][..], &[][..], &[][..]),
            (&["=true"], &[], &[]),
            (&["-bad=true"], &[], &[]),
            (&["Bad.Prefix/x=true"], &[], &[]),
            (&["a=-no"], &[], &[]),
            (&[], &["noequals"], &[]),
            (&[], &[], &["Prod"]),
            (&[], &[], &[""]),
        ] {
            assert!(
                PodSelector::from_selectors(&selectors(labels, annotations, namespaces)).is_err(),
                "{labels:?} {annotations:?} {namespaces:?}"
            );
        }
        let long = format!("a={}", "v".repeat(64));
        assert!(PodSelector::from_selectors(&selectors(&[&long], &[], &[])).is_err());
        // Annotation values are free text; label values may be empty.
        let ok = PodSelector::from_selectors(&selectors(&["a="], &["note=any text, really"], &[]));
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn a_process_is_placed_in_its_pod_and_container() {
        let pods = vec![
            (
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podA.slice"
                    .to_string(),
                "default/web".to_string(),
            ),
            (
                "/kubepods/burstable/podB".to_string(),
                "shop/cart".to_string(),
            ),
        ];
        let text = "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podA.slice/cri-containerd-0123abcd.scope\n";
        let path = unified_path(text).unwrap();
        assert_eq!(
            pod_of(path, &pods),
            Some(("default/web", Some("0123abcd".to_string())))
        );
        assert_eq!(
            pod_of("/kubepods/burstable/podB/feed01", &pods),
            Some(("shop/cart", Some("feed01".to_string())))
        );
        assert_eq!(
            pod_of("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podA.slice/crio-99.scope", &pods),
            Some(("default/web", Some("99".to_string())))
        );
        // The pod's own cgroup, a sibling whose name starts alike, none.
        assert_eq!(
            pod_of("/kubepods/burstable/podB", &pods),
            Some(("shop/cart", None))
        );
        assert_eq!(pod_of("/kubepods/burstable/podBB/x", &pods), None);
        assert_eq!(pod_of("/system.slice/nginx.service", &pods), None);
        assert_eq!(unified_path("1:name=systemd:/x\n"), None);
    }

    #[test]
    fn a_pods_cgroup_is_found_under_either_driver() {
        assert_eq!(
            pod_cgroup("kubepods-besteffort-pod1a2b_3c.slice").as_deref(),
            Some("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1a2b_3c.slice")
        );
        assert_eq!(
            pod_cgroup("kubepods-pod9.slice").as_deref(),
            Some("/kubepods.slice/kubepods-pod9.slice")
        );
        assert_eq!(
            pod_cgroup("/kubepods/burstable/pod9").as_deref(),
            Some("/kubepods/burstable/pod9")
        );
        assert_eq!(
            pod_cgroup("kubepods/pod9").as_deref(),
            Some("/kubepods/pod9")
        );
        assert_eq!(pod_cgroup("").as_deref(), None);
    }

    #[test]
    fn the_cgroup_parent_is_read_from_containerds_or_the_oci_specs_info() {
        let containerd = r#"{"pid": 42, "config": {"metadata": {"name": "web"},
            "linux": {"cgroup_parent": "kubepods-besteffort-podX.slice"}}}"#;
        assert_eq!(
            cgroup_parent_from_info(containerd).as_deref(),
            Some("kubepods-besteffort-podX.slice")
        );
        let systemd = r#"{"runtimeSpec": {"linux": {"cgroupsPath":
            "kubepods-burstable-podY.slice:crio:abc"}}}"#;
        assert_eq!(
            cgroup_parent_from_info(systemd).as_deref(),
            Some("kubepods-burstable-podY.slice")
        );
        let cgroupfs = r#"{"runtimeSpec": {"linux": {"cgroupsPath":
            "/kubepods/besteffort/podZ/abc"}}}"#;
        assert_eq!(
            cgroup_parent_from_info(cgroupfs).as_deref(),
            Some("/kubepods/besteffort/podZ")
        );
        assert_eq!(cgroup_parent_from_info("{}"), None);
        assert_eq!(cgroup_parent_from_info("not json"), None);
    }
}
