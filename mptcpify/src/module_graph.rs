//! A check that the modules form layers: no module of `mptcpify` or
//! `mptcpify-ebpf` reaches, through `crate::` paths, a module that reaches
//! it back. Run by `cargo test`
//! (and so by `cargo xtask test` and CI); a new cycle fails it with the
//! modules in it.

use std::collections::{BTreeMap, BTreeSet};

/// What each module of `src` names through `crate::` (tests and comments
/// left out); for the crate root, also through `module::` paths. An item
/// of the root (`crate::attach` once) counts as the root's.
fn graph(krate: &str) -> BTreeMap<String, BTreeSet<String>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(krate)
        .join("src");
    let mut sources = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("the crate's src") {
        let path = entry.expect("an entry of src").path();
        if path.extension().is_some_and(|e| e == "rs") {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            sources.insert(name, std::fs::read_to_string(&path).expect("a source file"));
        }
    }
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    sources
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
            for part in code.split("crate::").skip(1) {
                // `crate::x::...`, `crate::x;` or `crate::{x, y::z}`.
                let words: Vec<&str> = match part.strip_prefix('{') {
                    Some(group) => group
                        .split('}')
                        .next()
                        .unwrap_or_default()
                        .split(',')
                        .collect(),
                    None => vec![part],
                };
                for word in words {
                    let ident: String = word
                        .trim()
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if ident.is_empty() {
                        continue;
                    }
                    // An item of the crate root (`crate::attach` once) is main's.
                    let module = if modules.contains(&ident) {
                        ident
                    } else {
                        "main".to_string()
                    };
                    if &module != name {
                        named.insert(module);
                    }
                }
            }
            // The crate root names its modules without `crate::`.
            if name == "main" {
                for part in code.split("::") {
                    let ident: String = part
                        .chars()
                        .rev()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect::<String>()
                        .chars()
                        .rev()
                        .collect();
                    if modules.contains(&ident) && ident != "main" {
                        named.insert(ident);
                    }
                }
            }
            (name.clone(), named)
        })
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
fn the_check_finds_a_cycle() {
    let pair = |a: &str, b: &str| (a.to_string(), BTreeSet::from([b.to_string()]));
    let graph = BTreeMap::from([pair("a", "b"), pair("b", "a"), pair("c", "a")]);
    let mut found = cycles(&graph);
    found.iter_mut().for_each(|c| c.sort());
    assert_eq!(found, vec![vec!["a".to_string(), "b".to_string()]]);
}
