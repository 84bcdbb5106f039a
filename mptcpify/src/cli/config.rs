//! The policy from a file (`--config FILE`, e.g. /etc/mptcpify/mptcpify.toml),
//! read at start and again on SIGHUP (`systemctl reload`): parsed and
//! checked by `mptcpify_core::config` (which shows the file's keys), then
//! resolved here. Errors name the file, the line and the fix.

use std::path::Path;

use crate::errors::Failure;
use crate::policy::Policy;

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
    let bad = |line: Option<usize>, what: String, fix: &str| Failure::BadConfig {
        file: path.to_path_buf(),
        line,
        what,
        fix: fix.into(),
    };
    let config = mptcpify_core::config::parse(text).map_err(|e| bad(e.line, e.what, e.fix))?;
    let mut policy = Policy::resolve(&config.selectors).map_err(|failure| {
        // Resolve each entry alone to find the line of the one that failed.
        let line = config
            .entries
            .iter()
            .find_map(|(line, one)| Policy::resolve(one).is_err().then_some(*line));
        bad(
            line,
            failure.to_string(),
            "Fix or remove that entry, then reload.",
        )
    })?;
    policy.paths = config.paths;
    policy.metrics = config.metrics;
    policy.explain(&config.explain).map_err(|failure| {
        bad(
            config.explain_line,
            failure.to_string(),
            "Fix the explain list, then reload.",
        )
    })?;
    Ok(policy)
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
    fn an_entry_that_does_not_resolve_is_refused_with_its_line() {
        let (line, what) = error("comm = [\"ok\", \"/usr/bin/bad\"]\n");
        assert_eq!(line, Some(1));
        assert!(what.contains("invalid process name"), "{what}");
        let (line, what) = error("comm = [\"ok\"]\npid = [\n  1,\n  4294967295,\n]\n");
        assert_eq!(line, Some(4), "{what}");
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
