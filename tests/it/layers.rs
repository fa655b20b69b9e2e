//! The crate's modules import only modules below them (`src/lib.rs`: data
//! flows one way). Read from the sources: every `crate::MODULE` a module
//! names outside comments. Run with `--nocapture` to print the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, lowest first. A module may import only modules of a lower
/// layer, never one of its own or a higher one.
const LAYERS: &[&[&str]] = &[
    &["error", "time", "text", "units", "panics"],
    &["interrupt", "doc", "config"],
    &["source", "store"],
    &["model", "expand"],
    &["read"],
    &["ingest", "plot", "synth"],
    &["cmd"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// The source without its comments (line comments and doc comments; the
/// sources have no block comments).
fn code_of(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(at) if !l[..at].contains('"') => &l[..at],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules each module of `src/` names as `crate::NAME`.
fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let rel = p.strip_prefix(src).unwrap();
            let top = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string();
            if top == "lib" || top == "main" {
                continue;
            }
            let code = code_of(&std::fs::read_to_string(&p).unwrap());
            let names = out.entry(top.clone()).or_default();
            let mut rest = code.as_str();
            while let Some(at) = rest.find("crate::") {
                rest = &rest[at + "crate::".len()..];
                let mut named: Vec<String> = Vec::new();
                if let Some(group) = rest.strip_prefix('{') {
                    // `crate::{a, b::c}`: each first segment.
                    let end = group.find('}').unwrap_or(group.len());
                    for part in group[..end].split(',') {
                        named.push(part.trim().split("::").next().unwrap().to_string());
                    }
                } else {
                    let end = rest
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(rest.len());
                    named.push(rest[..end].to_string());
                }
                names.extend(named.into_iter().filter(|n| !n.is_empty() && *n != top));
            }
        }
    }
    out
}

#[test]
fn modules_import_only_modules_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = imports(&src);
    let mut wrong = Vec::new();
    for (module, names) in &graph {
        println!(
            "{module} -> {}",
            names.iter().cloned().collect::<Vec<_>>().join(", ")
        );
        let Some(mine) = layer_of(module) else {
            wrong.push(format!("src/{module} is in no layer of this test's table"));
            continue;
        };
        for n in names {
            match layer_of(n) {
                Some(theirs) if theirs < mine => {}
                Some(_) => wrong.push(format!("{module} imports {n}, which is not below it")),
                None => wrong.push(format!("{module} imports {n}, which is in no layer")),
            }
        }
    }
    // The table names every module there is, and nothing else.
    for layer in LAYERS {
        for m in *layer {
            if !graph.contains_key(*m) {
                wrong.push(format!("the table names {m}, which src/ does not have"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The reading itself: `cmd` is known to import `ingest`.
    assert!(graph["cmd"].contains("ingest"), "{graph:?}");
}
