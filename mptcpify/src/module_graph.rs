//! A check that the modules form layers: no module of `mptcpify` or
//! `mptcpify-ebpf` reaches, through `crate::` paths, a module that reaches
//! it back. Run by `cargo test`
//! (and so by `cargo xtask test` and CI); a new cycle fails it with the
//! modules in it.

//! A check that the modules form layers, run by `cargo test` (and so by
//! `cargo xtask test` and CI):
//!
//! - no module of `mptcpify` or `mptcpify-ebpf` reaches, through its
//!   paths, a module that reaches it back;
//! - in `mptcpify`, no module names one of a layer above its own
//!   ([`LAYERS`], the order of `main.rs`'s table of contents).
//!
//! A new cycle or an upward import fails it, naming the modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// `mptcpify`'s layers, top first, by the first component of a module's
/// path. A module may name modules of its own layer and of those below.
const LAYERS: &[&str] = &[
    "main", "cmd", "cli", "output", "bpf", "pods", "policy", "paths", "kernel", "errors", "sys",
];

/// Every source file under `dir`, by module path (`bpf::loader`; `main`
/// for the crate root, `bpf` for `bpf/mod.rs`). This check itself is left
/// out: it names modules in its test data.
fn sources(dir: &Path, prefix: &str, into: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).expect("a source directory") {
        let path = entry.expect("an entry of src").path();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let join = |name: &str| {
            if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}::{name}")
            }
        };
        if path.is_dir() {
            sources(&path, &join(&stem), into);
        } else if path.extension().is_some_and(|e| e == "rs") && stem != "module_graph" {
            let name = match stem.as_str() {
                "main" | "lib" if prefix.is_empty() => "main".to_string(),
                "mod" => prefix.to_string(),
                _ => join(&stem),
            };
            into.insert(name, std::fs::read_to_string(&path).expect("a source file"));
        }
    }
}

/// The longest module of `modules` that `path` (`a::b::Item`) lies in.
fn module_of(path: &str, modules: &BTreeSet<String>) -> Option<String> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find(|candidate| modules.contains(candidate))
}

/// The paths named after `crate::` in `code`: `crate::a::b`,
/// `crate::a::{b, c::d}` (one level of braces), as `a::b`, `a::b`, `a::c::d`.
fn crate_paths(code: &str) -> Vec<String> {
    let is_path = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut found = Vec::new();
    for part in code.split("crate::").skip(1) {
        let head: String = part.chars().take_while(|c| is_path(*c)).collect();
        let rest = &part[head.len()..];
        match rest.strip_prefix('{') {
            Some(group) => {
                for word in group.split('}').next().unwrap_or_default().split(',') {
                    let tail: String = word.trim().chars().take_while(|c| is_path(*c)).collect();
                    found.push(format!("{head}{tail}"));
                }
            }
            None => found.push(head),
        }
    }
    found
        .into_iter()
        .map(|p| p.trim_end_matches(':').to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// What each module of `krate` names: through `crate::` paths, and its own
/// child modules through relative ones (`loader::attach` in `bpf`, or in
/// the crate root). Tests and comments are left out.
fn graph(krate: &str) -> BTreeMap<String, BTreeSet<String>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(krate)
        .join("src");
    let mut sources_by_module = BTreeMap::new();
    sources(&dir, "", &mut sources_by_module);
    let modules: BTreeSet<String> = sources_by_module.keys().cloned().collect();
    sources_by_module
        .iter()
        .map(|(name, text)| {
            let code = text
                .split("#[cfg(test)]\nmod tests")
                .next()
                .unwrap_or_default()
                .lines()
                .map(|l| l.split("//").next().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n");
            let mut named = BTreeSet::new();
            for path in crate_paths(&code) {
                // An item of the crate root (`crate::x` of main.rs) is main's.
                named.insert(module_of(&path, &modules).unwrap_or_else(|| "main".into()));
            }
            let own = |child: &str| {
                if name == "main" {
                    child.to_string()
                } else {
                    format!("{name}::{child}")
                }
            };
            for part in code.split("::").map(|p| {
                let ident: String = p
                    .chars()
                    .rev()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                ident.chars().rev().collect::<String>()
            }) {
                if !part.is_empty() && part != "crate" && modules.contains(&own(&part)) {
                    named.insert(own(&part));
                }
            }
            named.remove(name);
            (name.clone(), named)
        })
        .collect()
}

/// The layer of a module of `mptcpify`: the index in [`LAYERS`] of its
/// path's first component.
fn layer(module: &str) -> usize {
    let top = module.split("::").next().unwrap_or_default();
    LAYERS
        .iter()
        .position(|l| *l == top)
        .unwrap_or_else(|| panic!("module {module} is in no layer: add it to LAYERS"))
}

/// Every `(from, to)` where `from` names a module of a layer above its own.
fn upward(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<(String, String)> {
    graph
        .iter()
        .flat_map(|(from, to)| to.iter().map(move |to| (from, to)))
        .filter(|(from, to)| layer(to) < layer(from))
        .map(|(from, to)| (from.clone(), to.clone()))
        .collect()
}

/// The strongly connected components of more than one module (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.stack.contains(&w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v.as_str()) {
            visit(&mut state, v);
        }
    }
    state.found
}

#[test]
fn no_module_reaches_one_that_reaches_it_back() {
    // The loader and CLI, and the BPF programs' crate beside it.
    for (krate, at_least) in [("mptcpify", 30), ("mptcpify-ebpf", 8)] {
        let graph = graph(krate);
        assert!(
            graph.len() >= at_least,
            "read too few modules of {krate}: {graph:?}"
        );
        let found = cycles(&graph);
        assert!(found.is_empty(), "module cycles in {krate}: {found:?}");
    }
}

#[test]
fn no_module_names_one_of_a_layer_above() {
    let graph = graph("mptcpify");
    assert!(graph.contains_key("bpf::loader") && graph.contains_key("cmd::run::identity"));
    let found = upward(&graph);
    assert!(
        found.is_empty(),
        "imports from a layer above (from, to): {found:?}"
    );
}

#[test]
fn the_check_finds_an_import_from_above_and_reads_paths() {
    let graph = BTreeMap::from([
        (
            "sys::mapped".to_string(),
            BTreeSet::from(["cmd::run".to_string()]),
        ),
        (
            "cmd::run".to_string(),
            BTreeSet::from(["sys::mapped".to_string()]),
        ),
    ]);
    assert_eq!(
        upward(&graph),
        vec![("sys::mapped".to_string(), "cmd::run".to_string())]
    );
    let modules = BTreeSet::from(["bpf".to_string(), "bpf::loader".to_string()]);
    assert_eq!(
        crate_paths("use crate::bpf::{loader::Attached, pins};\nlet x = crate::errors::exit::OK;"),
        vec!["bpf::loader::Attached", "bpf::pins", "errors::exit::OK"]
    );
    assert_eq!(
        module_of("bpf::loader::Attached", &modules).as_deref(),
        Some("bpf::loader")
    );
    assert_eq!(module_of("bpf::pins", &modules).as_deref(), Some("bpf"));
    assert_eq!(module_of("errors::exit", &modules), None);
}

#[test]
fn the_check_finds_a_cycle() {
    let pair = |a: &str, b: &str| (a.to_string(), BTreeSet::from([b.to_string()]));
    let graph = BTreeMap::from([pair("a", "b"), pair("b", "a"), pair("c", "a")]);
    let mut found = cycles(&graph);
    found.iter_mut().for_each(|c| c.sort());
    assert_eq!(found, vec![vec!["a".to_string(), "b".to_string()]]);
}
