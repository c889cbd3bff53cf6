//! What the crate split promises, checked: the core has no Kubernetes client
//! and no async runtime beneath it, and its modules import one another
//! without a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_client_or_runtime_under_the_core() {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "--package",
            "stsmend-core",
            "--edges",
            "normal",
            "--prefix",
            "none",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    let crates: BTreeSet<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(crates.contains("stsmend-core"), "{tree}");
    for banned in ["kube-client", "kube", "tokio", "hyper", "tower"] {
        assert!(
            !crates.contains(banned),
            "{banned} is under stsmend-core:\n{tree}"
        );
    }
}

/// The top-level modules a file names with `crate::`, outside comments and
/// its test module.
fn imports(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    let mut found = BTreeSet::new();
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                // `crate::{a, b::c}` on one line; a group across lines is
                // read line by line below.
                group
                    .split(',')
                    .map(|n| n.trim().split("::").next().unwrap_or_default())
                    .collect()
            } else {
                vec![rest.split("::").next().unwrap_or_default()]
            };
            for n in names {
                let n: String = n
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !n.is_empty() {
                    found.insert(n);
                }
            }
        }
    }
    // The lines of a multi-line `use crate::{` group.
    let mut in_group = false;
    for line in code.lines() {
        let l = line.trim();
        if l.starts_with("use crate::{") && !l.ends_with("};") {
            in_group = true;
            continue;
        }
        if in_group {
            if l.starts_with('}') {
                in_group = false;
                continue;
            }
            for n in l.split(',') {
                let n: String = n
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !n.is_empty() {
                    found.insert(n);
                }
            }
        }
    }
    found
}

fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(src()).unwrap();
            let top = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string();
            if top == "lib" || rel.file_name().is_some_and(|f| f == "tests.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let entry = graph.entry(top.clone()).or_default();
            entry.extend(imports(&text).into_iter().filter(|m| *m != top));
        }
    }
    graph
}

/// A circle in the graph, if any, by depth-first search.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        graph: &BTreeMap<String, BTreeSet<String>>,
        node: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut c = path[at..].to_vec();
            c.push(node.to_string());
            return Some(c);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(graph, next, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(graph, n, &mut Vec::new(), &mut done))
}

#[test]
fn the_core_modules_import_each_other_without_a_circle() {
    let graph = module_graph();
    assert!(graph.contains_key("pipeline") && graph["pipeline"].contains("policy"));
    if let Some(c) = circle(&graph) {
        panic!("modules import each other in a circle: {}", c.join(" -> "));
    }
}

#[test]
fn the_circle_check_finds_a_circle() {
    let mut graph = BTreeMap::new();
    graph.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    graph.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    graph.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(circle(&graph).unwrap(), ["a", "b", "c", "a"]);
    graph.insert("c".to_string(), BTreeSet::new());
    assert_eq!(circle(&graph), None);
}

#[test]
fn imports_are_read_from_paths_and_groups() {
    let text = "use crate::policy::{A, B};\nuse crate::{\n    detect,\n    facts::Facts,\n};\nfn f() { crate::state::x(); }\n// crate::notes\n#[cfg(test)]\nmod tests { use crate::pipeline; }\n";
    assert_eq!(
        imports(text),
        BTreeSet::from(["policy", "detect", "facts", "state"].map(String::from))
    );
}

/// The functions of a file longer than `limit` lines, outside its test
/// module, as `(line, name, length)`. A function ends at the first line
/// that closes it at its own indentation, as rustfmt writes them.
fn long_functions(text: &str, limit: usize) -> Vec<(usize, String, usize)> {
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    let lines: Vec<&str> = code.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let rest = ["pub(crate) ", "pub(super) ", "pub "]
            .iter()
            .find_map(|p| trimmed.strip_prefix(p))
            .unwrap_or(trimmed);
        let rest = rest.strip_prefix("async ").unwrap_or(rest);
        let Some(sig) = rest.strip_prefix("fn ") else {
            continue;
        };
        let name: String = sig
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let close = format!("{indent}}}");
        if let Some(end) = lines[i + 1..].iter().position(|l| *l == close) {
            let length = end + 2;
            if length > limit {
                found.push((i + 1, name, length));
            }
        }
    }
    found
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && path.file_name().is_some_and(|f| f != "tests.rs")
            {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn no_function_of_the_agent_is_over_120_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut long = Vec::new();
    for dir in [src(), root.join("src")] {
        for file in rust_files(&dir) {
            let text = std::fs::read_to_string(&file).unwrap();
            for (line, name, length) in long_functions(&text, 120) {
                long.push(format!("{}:{line} {name}: {length} lines", file.display()));
            }
        }
    }
    assert!(long.is_empty(), "split these:\n{}", long.join("\n"));
}

/// Issue 24 item 5: the end-to-end harness is held to the agent's limit;
/// `rust_files` skips `tests.rs`, as for the agent.
#[test]
fn no_function_of_the_e2e_harness_is_over_120_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut long = Vec::new();
    for file in rust_files(&root.join("e2e/src")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (line, name, length) in long_functions(&text, 120) {
            long.push(format!("{}:{line} {name}: {length} lines", file.display()));
        }
    }
    assert!(long.is_empty(), "split these:\n{}", long.join("\n"));
}

#[test]
fn a_long_function_is_found() {
    let body = "    x();\n".repeat(130);
    let text = format!("pub async fn short() {{\n}}\n\nfn long() {{\n{body}}}\n");
    assert_eq!(long_functions(&text, 120), [(4, "long".to_string(), 132)]);
    assert!(long_functions(&text, 200).is_empty());
}
