//! The policy from a file (`--config FILE`, e.g. /etc/mptcpify/mptcpify.toml):
//! the same selectors as the command line, one TOML key each, read at start
//! and again on SIGHUP (`systemctl reload`). Errors name the file, the line
//! and the fix.
//!
//! ```toml
//! unit = ["nginx"]             # --unit
//! comm = ["iperf3"]            # --comm
//! cgroup = []                  # --cgroup
//! netns = []                   # --netns
//! pid = []                     # --pid
//! exclude_comm = ["sshd"]      # --exclude-comm
//! exclude_cgroup = []          # --exclude-cgroup
//! all = false                  # --all
//! explain = []                 # --explain
//! ```

use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::errors::Failure;
use crate::policy::Policy;
use crate::policy::Selectors;

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
    explain: Vec<Spanned<String>>,
}

/// Reads and resolves `path`: a file that does not parse, names an
/// unknown key, selects nothing, or names a selector that does not resolve
/// is refused with its line.
pub fn load(path: &Path) -> Result<Policy, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| Failure::BadConfig {
        file: path.to_path_buf(),
        line: None,
        what: format!("cannot read it: {e}"),
        fix: "Create it (see `mptcpify --help`, CONFIG FILE), or fix its permissions.".into(),
    })?;
    parse(path, &text)
}

fn parse(path: &Path, text: &str) -> Result<Policy, Failure> {
    let bad = |span: Option<std::ops::Range<usize>>, what: String, fix: &str| Failure::BadConfig {
        file: path.to_path_buf(),
        line: span.map(|s| line_of(text, s.start)),
        what,
        fix: fix.into(),
    };
    let file: File = toml::from_str(text).map_err(|e| {
        bad(
            e.span(),
            e.message().to_string(),
            "Write one TOML key per selector, each a list, e.g. unit = [\"nginx\"], \
             exclude_comm = [\"sshd\"], or all = true (see `mptcpify --help`, CONFIG FILE).",
        )
    })?;
    let selectors = file.selectors();
    let all = file.all.as_ref().is_some_and(|a| *a.get_ref());
    if all && selectors.has_include() {
        return Err(bad(
            file.all.as_ref().map(Spanned::span),
            "`all = true` and include selectors (comm, cgroup, unit, netns, pid) both given".into(),
            "Keep one: all = true upgrades every process (but those excluded).",
        ));
    }
    if !all && !selectors.has_include() {
        return Err(bad(
            None,
            "no process selected: the file gives no comm, cgroup, unit, netns or pid".into(),
            "Select the programs you mean, or set all = true to upgrade every process \
             (see `mptcpify --help`, ALL PROCESSES, for what that risks).",
        ));
    }
    let mut policy = Policy::resolve(&selectors).map_err(|failure| {
        // Resolve each entry alone to find the line of the one that failed.
        let span = file
            .entries()
            .into_iter()
            .find_map(|(span, one)| Policy::resolve(&one).is_err().then_some(span));
        bad(
            span,
            failure.to_string(),
            "Fix or remove that entry, then reload.",
        )
    })?;
    let explain: Vec<String> = file.explain.iter().map(|n| n.get_ref().clone()).collect();
    policy.explain(&explain).map_err(|failure| {
        bad(
            file.explain.first().map(Spanned::span),
            failure.to_string(),
            "Fix the explain list, then reload.",
        )
    })?;
    Ok(policy)
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
        }
    }

    /// Every entry as a selection of its own, with where it is in the file.
    fn entries(&self) -> Vec<(std::ops::Range<usize>, Selectors)> {
        let mut out = Vec::new();
        let lists: [(&[Spanned<String>], Put); 6] = [
            (&self.comm, |s, v| s.comm.push(v)),
            (&self.cgroup, |s, v| s.cgroup.push(v)),
            (&self.unit, |s, v| s.unit.push(v)),
            (&self.netns, |s, v| s.netns.push(v)),
            (&self.exclude_comm, |s, v| s.exclude_comm.push(v)),
            (&self.exclude_cgroup, |s, v| s.exclude_cgroup.push(v)),
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
        match parse(Path::new("/etc/mptcpify/test.toml"), text) {
            Err(Failure::BadConfig { line, what, .. }) => (line, what),
            Err(other) => panic!("not a config error: {other}"),
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
    fn an_entry_that_does_not_resolve_is_refused_with_its_line() {
        let (line, what) = error("comm = [\"ok\", \"/usr/bin/bad\"]\n");
        assert_eq!(line, Some(1));
        assert!(what.contains("invalid process name"), "{what}");
        let (line, what) = error("comm = [\"ok\"]\npid = [\n  1,\n  4294967295,\n]\n");
        assert_eq!(line, Some(4), "{what}");
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
    fn a_good_file_resolves_like_the_command_line() {
        let loaded = parse(
            Path::new("x.toml"),
            "# comment\ncomm = [\"iperf3\"]\nexclude_comm = [\"sshd\"]\nexplain = [\"curl\"]\n",
        )
        .unwrap();
        assert_eq!(
            loaded.to_string(),
            "processes matching any of: comm iperf3; never: comm sshd"
        );
        assert_eq!(loaded.explained_names(), ["curl"]);
        let all = parse(Path::new("x.toml"), "all = true\n").unwrap();
        assert!(all.system_wide());
    }
}
