//! The crate's dependency direction, checked: every module of `src/` may use only the modules of
//! lower layers (and of its own layer, when that makes no cycle), and the files of one folder
//! depend on each other without a cycle. The layers are those of docs/architecture.md; a `use`
//! that breaks them fails this test, so the direction cannot erode unnoticed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules by layer, bottom first. A module not listed fails the test: a new one must
/// be placed.
const LAYERS: &[&[&str]] = &[
    &["domain", "fsutil", "reply", "logging", "demo_upstream"],
    &["store", "upstream"],
    &["config", "tokens"],
    &["metrics"],
    &["oauth"],
    &["state"],
    &["admin", "gateway", "services", "tls"],
];

fn layer_of(top: &str) -> usize {
    LAYERS
        .iter()
        .position(|l| l.contains(&top))
        .unwrap_or_else(|| panic!("module `{top}` is in no layer of tests/layers.rs"))
}

/// Every `.rs` file under `dir`, but test files (`*_tests.rs`, included by `#[path]`).
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") && !path.to_string_lossy().ends_with("_tests.rs") {
            out.push(path);
        }
    }
}

/// The module path of a source file: `["tokens", "service"]` for `src/tokens/service.rs`,
/// `["tokens"]` for `src/tokens/mod.rs`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The code of a file without comments and without its `#[cfg(test)]` module at the end.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The names a path continues with after `prefix::`: one (`crate::a::x`) or a list
/// (`crate::a::{x, y::z}`), each reduced to its first segment.
fn names_after(code: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        let before_ok = at == 0 || !rest.as_bytes()[at - 1].is_ascii_alphanumeric() && rest.as_bytes()[at - 1] != b'_';
        rest = &rest[at + prefix.len()..];
        if !before_ok {
            continue;
        }
        if let Some(list) = rest.strip_prefix('{') {
            let end = list.find('}').unwrap_or(list.len());
            for item in list[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.push(name);
                }
            }
        } else {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                out.push(name);
            }
        }
    }
    out
}

/// Edges between top-level modules, and between the files of each folder.
struct Graph {
    top: BTreeMap<String, BTreeSet<String>>,
    /// folder -> file -> sibling files it uses.
    folders: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut g = Graph {
        top: BTreeMap::new(),
        folders: BTreeMap::new(),
    };
    for file in files {
        let module = module_of(&src, &file);
        if matches!(module[0].as_str(), "lib" | "main") {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(&file).unwrap());
        let top = module[0].clone();
        let entry = g.top.entry(top.clone()).or_default();
        let mut crate_paths = names_after(&code, "crate::");
        // `crate::{a, b}` lists name top-level modules too (handled by `names_after`).
        crate_paths.retain(|n| n != "self");
        for used in &crate_paths {
            if *used != top {
                entry.insert(used.clone());
            }
        }
        // Files of a folder: `super::x` and `crate::<folder>::x` name a sibling.
        if module.len() == 2 {
            let folder = &module[0];
            let me = module[1].clone();
            let mut siblings = names_after(&code, "super::");
            siblings.extend(names_after(&code, &format!("crate::{folder}::")));
            let edges = g
                .folders
                .entry(folder.clone())
                .or_default()
                .entry(me.clone())
                .or_default();
            for s in siblings {
                if s != me && src.join(folder).join(format!("{s}.rs")).exists() {
                    edges.insert(s);
                }
            }
        }
    }
    g
}

/// A cycle in `edges`, if there is one, as the list of its nodes.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            return Some(path[at..].to_vec());
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, done, path) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges.keys().find_map(|n| visit(n, edges, &mut done, &mut Vec::new()))
}

#[test]
fn modules_use_only_lower_layers() {
    let g = graph();
    let mut wrong = Vec::new();
    for (module, uses) in &g.top {
        for used in uses {
            if layer_of(used) > layer_of(module) {
                wrong.push(format!(
                    "{module} (layer {}) uses {used} (layer {})",
                    layer_of(module),
                    layer_of(used)
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "dependencies against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_cycle_between_top_level_modules() {
    let g = graph();
    assert_eq!(find_cycle(&g.top), None, "{:?}", g.top);
}

#[test]
fn no_cycle_between_the_files_of_a_folder() {
    let g = graph();
    let cycles: Vec<String> = g
        .folders
        .iter()
        .filter_map(|(folder, edges)| find_cycle(edges).map(|c| format!("{folder}: {}", c.join(" -> "))))
        .collect();
    assert!(cycles.is_empty(), "cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_checker_sees_what_it_must() {
    assert_eq!(
        names_after("use crate::{a, b::c};\nuse crate::d::e;\nx_crate::f", "crate::"),
        ["a", "b", "d"]
    );
    let mut cyclic = BTreeMap::new();
    cyclic.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    cyclic.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    assert!(find_cycle(&cyclic).is_some());
    cyclic.get_mut("b").unwrap().clear();
    assert_eq!(find_cycle(&cyclic), None);
}
