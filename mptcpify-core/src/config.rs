//! The policy file (`--config FILE`, e.g. /etc/mptcpify/mptcpify.toml):
//! the same selectors as the command line, one TOML key each. This parses
//! and checks it; mptcpify reads it (at start and on SIGHUP) and resolves
//! the selectors. Errors give the line and the fix.
//!
//! ```toml
//! unit = ["nginx"]             # --unit
//! comm = ["iperf3"]            # --comm
//! cgroup = []                  # --cgroup
//! netns = []                   # --netns
//! pid = []                     # --pid
//! exclude_comm = ["sshd"]      # --exclude-comm
//! exclude_cgroup = []          # --exclude-cgroup
//! pod_label = ["mptcp.io/upgrade=true"]  # --pod-label
//! pod_annotation = []          # --pod-annotation
//! k8s_namespace = []           # --k8s-namespace
//! cri = "/run/containerd/containerd.sock"  # --cri
//! all = false                  # --all
//! explain = []                 # --explain
//! paths = "auto"               # --paths auto
//! metrics = "127.0.0.1:9464"    # --metrics
//! ```

use serde::Deserialize;
use toml::Spanned;

use crate::selectors::Selectors;

/// What a file asks for, checked but not resolved.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub selectors: Selectors,
    /// `all = true`: every process but those excluded.
    pub all: bool,
    /// `explain`: names whose `socket()` verdicts are reported.
    pub explain: Vec<String>,
    /// The line of the first `explain` entry.
    pub explain_line: Option<usize>,
    /// `paths = "auto"`: `--paths auto`. Read at start only.
    pub paths: Option<crate::paths::PathsMode>,
    /// `metrics = "ADDRESS:PORT"`: `--metrics`. Read at start only.
    pub metrics: Option<std::net::SocketAddr>,
    /// Every entry as a selection of its own, with its line: the way to the
    /// line of an entry that does not resolve.
    pub entries: Vec<(usize, Selectors)>,
}

/// A file that is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// 1-based; `None` when no one line is at fault.
    pub line: Option<usize>,
    pub what: String,
    pub fix: &'static str,
}

/// The file's keys; unknown keys are errors (a misspelt selector must not
/// silently select nothing, or everything).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    all: Option<Spanned<bool>>,
    #[serde(default)]
    comm: Vec<Spanned<String>>,
    #[serde(default)]
    cgroup: Vec<Spanned<String>>,
    #[serde(default)]
    unit: Vec<Spanned<String>>,
    #[serde(default)]
    netns: Vec<Spanned<String>>,
    #[serde(default)]
    pid: Vec<Spanned<u32>>,
    #[serde(default)]
    exclude_comm: Vec<Spanned<String>>,
    #[serde(default)]
    exclude_cgroup: Vec<Spanned<String>>,
    #[serde(default)]
    pod_label: Vec<Spanned<String>>,
    #[serde(default)]
    pod_annotation: Vec<Spanned<String>>,
    #[serde(default)]
    k8s_namespace: Vec<Spanned<String>>,
    #[serde(default)]
    cri: Option<Spanned<String>>,
    #[serde(default)]
    explain: Vec<Spanned<String>>,
    #[serde(default)]
    paths: Option<crate::paths::PathsMode>,
    #[serde(default)]
    metrics: Option<Spanned<String>>,
}

/// Parses and checks `text`: a file that does not parse, names an unknown
/// key, or selects nothing (or everything twice) is refused with its line.
pub fn parse(text: &str) -> Result<Config, Error> {
    let line = |span: std::ops::Range<usize>| line_of(text, span.start);
    let file: File = toml::from_str(text).map_err(|e| Error {
        line: e.span().map(line),
        what: e.message().to_string(),
        fix: "Write one TOML key per selector, each a list, e.g. unit = [\"nginx\"], \
              exclude_comm = [\"sshd\"], or all = true (see `mptcpify --help`, CONFIG FILE).",
    })?;
    let selectors = file.selectors();
    let all = file.all.as_ref().is_some_and(|a| *a.get_ref());
    if all && selectors.has_include() {
        return Err(Error {
            line: file.all.as_ref().map(|a| line(a.span())),
            what: "`all = true` and include selectors (comm, cgroup, unit, netns, pid, pods) both \
                   given"
                .into(),
            fix: "Keep one: all = true upgrades every process (but those excluded).",
        });
    }
    if !all && !selectors.has_include() {
        return Err(Error {
            line: None,
            what: "no process selected: the file gives no comm, cgroup, unit, netns, pid or pod \
                   selector"
                .into(),
            fix: "Select the programs you mean, or set all = true to upgrade every process \
                  (see `mptcpify --help`, ALL PROCESSES, for what that risks).",
        });
    }
    let metrics = match &file.metrics {
        Some(value) => Some(
            crate::output::metrics::listen_address(value.get_ref()).map_err(|what| Error {
                line: Some(line(value.span())),
                what: format!("metrics: {what}"),
                fix: "Write metrics = \"9464\" (loopback) or metrics = \"0.0.0.0:9464\".",
            })?,
        ),
        None => None,
    };
    Ok(Config {
        metrics,
        entries: file
            .entries()
            .into_iter()
            .map(|(span, one)| (line(span), one))
            .collect(),
        explain: file.explain.iter().map(|n| n.get_ref().clone()).collect(),
        explain_line: file.explain.first().map(|e| line(e.span())),
        paths: file.paths,
        selectors,
        all,
    })
}

/// 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Adds one value to one kind of selector.
type Put = fn(&mut Selectors, String);

impl File {
    fn selectors(&self) -> Selectors {
        let strings = |v: &[Spanned<String>]| v.iter().map(|s| s.get_ref().clone()).collect();
        Selectors {
            comm: strings(&self.comm),
            cgroup: strings(&self.cgroup),
            unit: strings(&self.unit),
            netns: strings(&self.netns),
            pid: self.pid.iter().map(|p| *p.get_ref()).collect(),
            exclude_comm: strings(&self.exclude_comm),
            exclude_cgroup: strings(&self.exclude_cgroup),
            pod_label: strings(&self.pod_label),
            pod_annotation: strings(&self.pod_annotation),
            k8s_namespace: strings(&self.k8s_namespace),
            cri: self.cri.as_ref().map(|c| c.get_ref().clone()),
        }
    }

    /// Every entry as a selection of its own, with where it is in the file.
    fn entries(&self) -> Vec<(std::ops::Range<usize>, Selectors)> {
        let mut out = Vec::new();
        let lists: [(&[Spanned<String>], Put); 9] = [
            (&self.comm, |s, v| s.comm.push(v)),
            (&self.cgroup, |s, v| s.cgroup.push(v)),
            (&self.unit, |s, v| s.unit.push(v)),
            (&self.netns, |s, v| s.netns.push(v)),
            (&self.exclude_comm, |s, v| s.exclude_comm.push(v)),
            (&self.exclude_cgroup, |s, v| s.exclude_cgroup.push(v)),
            (&self.pod_label, |s, v| s.pod_label.push(v)),
            (&self.pod_annotation, |s, v| s.pod_annotation.push(v)),
            (&self.k8s_namespace, |s, v| s.k8s_namespace.push(v)),
        ];
        for (values, put) in lists {
            for value in values {
                let mut selectors = Selectors::default();
                put(&mut selectors, value.get_ref().clone());
                out.push((value.span(), selectors));
            }
        }
        for pid in &self.pid {
            let selectors = Selectors {
                pid: vec![*pid.get_ref()],
                ..Selectors::default()
            };
            out.push((pid.span(), selectors));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> (Option<usize>, String) {
        match parse(text) {
            Err(Error { line, what, .. }) => (line, what),
            Ok(_) => panic!("accepted: {text}"),
        }
    }

    #[test]
    fn a_misspelt_key_is_refused_with_its_line() {
        let (line, what) = error("comm = [\"a\"]\n\nexclude_comms = [\"b\"]\n");
        assert_eq!(line, Some(3));
        assert!(what.contains("exclude_comms"), "{what}");
    }

    #[test]
    fn a_wrong_type_is_refused_with_its_line() {
        let (line, what) = error("comm = \"iperf3\"\n");
        assert_eq!(line, Some(1), "{what}");
        let (line, _) = error("comm = [\"a\"]\npid = [\"one\"]\n");
        assert_eq!(line, Some(2));
    }

    #[test]
    fn selecting_nothing_or_everything_twice_is_refused() {
        let (_, what) = error("exclude_comm = [\"sshd\"]\n");
        assert!(what.contains("no process selected"), "{what}");
        let (line, what) = error("comm = [\"a\"]\nall = true\n");
        assert_eq!(line, Some(2));
        assert!(what.contains("both given"), "{what}");
    }

    #[test]
    fn metrics_is_a_key_and_a_bad_address_is_refused_with_its_line() {
        let config = parse("comm = [\"a\"]\nmetrics = \"9464\"\n").unwrap();
        assert_eq!(config.metrics, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(parse("comm = [\"a\"]\n").unwrap().metrics, None);
        let (line, what) = error("comm = [\"a\"]\nmetrics = \"10.0.0.1\"\n");
        assert_eq!(line, Some(2));
        assert!(what.contains("has no port"), "{what}");
    }

    #[test]
    fn paths_auto_is_a_key_and_other_modes_are_refused_with_their_line() {
        let config = parse("comm = [\"a\"]\npaths = \"auto\"\n").unwrap();
        assert_eq!(config.paths, Some(crate::paths::PathsMode::Auto));
        assert_eq!(parse("comm = [\"a\"]\n").unwrap().paths, None);
        let (line, what) = error("comm = [\"a\"]\npaths = \"all\"\n");
        assert_eq!(line, Some(2));
        assert!(what.contains("auto"), "{what}");
    }

    #[test]
    fn each_entry_is_kept_with_its_line() {
        let config =
            parse("comm = [\"a\",\n  \"b\"]\npid = [\n  7,\n]\nexplain = [\"c\"]\n").unwrap();
        let lines: Vec<usize> = config.entries.iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, [1, 2, 4]);
        assert_eq!(config.entries[2].1.pid, [7]);
        assert_eq!(
            (config.explain.as_slice(), config.explain_line),
            (&["c".to_string()][..], Some(6))
        );
        assert_eq!(config.selectors.comm, ["a", "b"]);
        assert!(!config.all);
        assert!(parse("all = true\n").unwrap().all);
    }
}
