//! The structure the README's architecture section promises, checked:
//!
//! - no Lambda function links the test tools (`testkit`: the simulator, the in-memory
//!   twins, the in-process system), read from `cargo tree`;
//! - the modules of `shared` import each other without circles (file by file), and
//!   each room imports only the rooms below it: `domain` nothing, `ports` the domain,
//!   `repo` and `app` the ports and the domain, the adapters (`adapters`, `providers`)
//!   no use case, and nothing below the entry rooms (`http`, `lambda`, `compose`)
//!   imports them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every package under `functions/` but the local runner: the Lambda functions.
fn lambdas() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(workspace().join("functions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "local")
        .collect();
    out.sort();
    out
}
const TEST_TOOLS: [&str; 1] = ["testkit"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The packages in `package`'s normal (shipped) dependency tree. Offline first (the
/// build before the tests fetched everything); online if the cache lacks something.
fn shipped_packages(package: &str) -> BTreeSet<String> {
    let tree = |offline: bool| {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(workspace()).args([
            "tree", "-p", package, "-e", "normal", "--target", "all", "--prefix", "none",
            "--format", "{p}",
        ]);
        if offline {
            cmd.arg("--offline");
        }
        cmd.output().expect("run cargo tree")
    };
    let mut out = tree(true);
    if !out.status.success() {
        out = tree(false);
    }
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn no_lambda_links_the_test_tools() {
    let lambdas = lambdas();
    assert_eq!(lambdas.len(), 7, "{lambdas:?}");
    for lambda in &lambdas {
        let packages = shipped_packages(lambda);
        assert!(packages.contains("shared"), "{lambda}: {packages:?}");
        for tool in TEST_TOOLS {
            assert!(
                !packages.contains(tool),
                "the {lambda} function links {tool}; test tools are dev-dependencies"
            );
        }
    }
    // The check can fail: the local runner does link them.
    assert!(shipped_packages("local").contains("testkit"));
}

// ---- the import graph of `shared` ------------------------------------------------------

/// Module path (`app::send`) -> file, for every file under `shared/src`.
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(src).unwrap().with_extension("");
                let mut parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if parts.last().is_some_and(|l| l == "mod" || l == "lib") {
                    parts.pop();
                }
                out.insert(parts.join("::"), p);
            }
        }
    }
    out
}

/// Expands `a::{b, c::{d, e}}` into `a::b`, `a::c::d`, `a::c::e`.
fn expand(path: &str) -> Vec<String> {
    let path: String = path.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = path.find('{') else {
        return vec![path];
    };
    let close = path.rfind('}').unwrap_or(path.len());
    let prefix = &path[..open];
    let inner = &path[open + 1..close];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| expand(&format!("{prefix}{p}")))
        .collect()
}

/// The paths into the crate that a file names (`crate::…`, `super::…`, in `use` items
/// and inline), as paths from the crate root; comments and the file's own test module
/// are left out. `module` is the file's module path (`domain::campaign`).
fn crate_paths(text: &str, module: &str) -> Vec<String> {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap();
    let code: String = text
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        let starts = |w: &str| rest.starts_with(w);
        let boundary = i == 0
            || !(bytes[i - 1].is_ascii_alphanumeric()
                || bytes[i - 1] == b'_'
                || bytes[i - 1] == b':');
        if !(boundary && (starts("crate::") || starts("super::"))) {
            i += rest.chars().next().unwrap().len_utf8();
            continue;
        }
        // A path runs over identifiers, `::` and (in a use item) brace groups.
        let mut end = rest.len();
        let mut depth = 0;
        for (j, c) in rest.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth > 0 => depth -= 1,
                _ if depth > 0 || c.is_alphanumeric() || c == '_' || c == ':' => {}
                _ => {
                    end = j;
                    break;
                }
            }
        }
        out.extend(
            expand(&rest[..end])
                .into_iter()
                .map(|p| absolute(&p, module)),
        );
        i += end.max(1);
    }
    out
}

/// `crate::a::b` -> `a::b`; `super::x` in `a::b` -> `a::x`.
fn absolute(path: &str, module: &str) -> String {
    if let Some(p) = path.strip_prefix("crate::") {
        return p.to_owned();
    }
    let mut base: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
    let mut p = path;
    while let Some(rest) = p.strip_prefix("super::") {
        base.pop();
        p = rest;
    }
    base.push(p);
    base.join("::")
}

/// The module a path names: its longest prefix that is a module file.
fn module_of(path: &str, modules: &BTreeMap<String, PathBuf>) -> Option<String> {
    let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    (1..=segs.len())
        .rev()
        .map(|n| segs[..n].join("::"))
        .find(|m| modules.contains_key(m))
}

fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = workspace().join("shared/src");
    let modules = modules(&src);
    let mut graph = BTreeMap::new();
    for (name, file) in &modules {
        let text = std::fs::read_to_string(file).unwrap();
        // A mod.rs is its folder's module, so `super` there is the folder's parent, as
        // for any other file of that module path.
        let deps: BTreeSet<String> = crate_paths(&text, name)
            .iter()
            .filter_map(|p| module_of(p, &modules))
            .filter(|d| d != name && !name.starts_with(&format!("{d}::")) && !d.is_empty())
            .collect();
        graph.insert(name.clone(), deps);
    }
    graph
}

/// One circle of the graph, if there is any (depth-first search).
fn find_circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut circle = path[i..].to_vec();
            circle.push(n.to_owned());
            return Some(circle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_owned());
        for d in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, graph, done, path) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut done, &mut Vec::new()))
}

#[test]
fn the_modules_of_shared_import_each_other_without_circles() {
    let graph = import_graph();
    assert!(graph.contains_key("app::send") && graph.contains_key("domain::campaign"));
    if let Some(circle) = find_circle(&graph) {
        panic!("import circle: {}", circle.join(" -> "));
    }
}

/// The rooms each room may import (besides itself).
fn allowed(room: &str) -> &'static [&'static str] {
    match room {
        "domain" => &[],
        "ports" => &["domain"],
        "config" => &[],
        "repo" => &["domain", "ports"],
        "app" => &["domain", "ports", "repo", "lambda::events"],
        "adapters" => &["domain", "ports", "repo", "config"],
        "providers" => &["domain", "ports"],
        "lambda" => &["domain", "ports", "app", "providers"],
        "http" => &["domain", "ports", "repo", "app", "providers", "lambda"],
        "compose" => &[
            "domain",
            "ports",
            "app",
            "adapters",
            "providers",
            "http",
            "config",
        ],
        _ => &[],
    }
}

#[test]
fn each_room_imports_only_the_rooms_below_it() {
    let graph = import_graph();
    // The reader does see imports (else this would pass on an empty graph).
    assert!(
        graph["app::send"].contains("ports"),
        "{:?}",
        graph["app::send"]
    );
    assert!(
        graph["http::operator"].contains("app"),
        "{:?}",
        graph["http::operator"]
    );
    let mut wrong = Vec::new();
    for (module, deps) in &graph {
        let room = module.split("::").next().unwrap();
        if room.is_empty() {
            continue; // lib.rs
        }
        for d in deps {
            let to = d.split("::").next().unwrap();
            let ok = to == room
                || allowed(room)
                    .iter()
                    .any(|a| d == a || d.starts_with(&format!("{a}::")) || *a == to);
            if !ok {
                wrong.push(format!("{module} -> {d}"));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layering: {wrong:#?}");
}

#[test]
fn the_import_reader_sees_grouped_and_inline_paths() {
    let paths = crate_paths(
        "use crate::domain::{campaign::{Campaign, Status}, Time};\n\
         use super::blocklist::check;\n\
         fn f() { crate::repo::get(x); } // crate::http::ignored\n",
        "app::admin",
    );
    assert_eq!(
        paths,
        [
            "domain::campaign::Campaign",
            "domain::campaign::Status",
            "domain::Time",
            "app::blocklist::check",
            "repo::get"
        ]
    );
    // In a folder's mod.rs (module `domain`), `super` is the crate root.
    assert_eq!(
        crate_paths("use super::ports::Table;", "domain"),
        ["ports::Table"]
    );
    let mut g = BTreeMap::new();
    g.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    g.insert("b".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert_eq!(find_circle(&g).unwrap(), ["a", "b", "a"]);
}

// ---- short use cases -------------------------------------------------------------------

/// Functions of `shared/src/app` longer than `limit` lines (from `fn` to its closing
/// brace at the same indentation), test modules left out.
fn long_functions(limit: usize) -> Vec<String> {
    let src = workspace().join("shared/src");
    let mut out = Vec::new();
    for (name, file) in modules(&src) {
        if !name.starts_with("app") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
        let lines: Vec<&str> = code.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            let indent = &line[..line.len() - trimmed.len()];
            let signature = ["fn ", "async fn ", "pub fn ", "pub async fn "]
                .iter()
                .chain(&["pub(crate) fn ", "pub(crate) async fn "])
                .any(|p| trimmed.starts_with(p));
            if !signature || trimmed.ends_with(';') {
                continue;
            }
            let close = format!("{indent}}}");
            if let Some(end) = lines[i..].iter().position(|l| *l == close) {
                if end + 1 > limit {
                    out.push(format!("{}:{} ({} lines)", file.display(), i + 1, end + 1));
                }
            }
        }
    }
    out
}

#[test]
fn no_use_case_function_is_longer_than_sixty_lines() {
    let long = long_functions(60);
    assert!(long.is_empty(), "split these: {long:#?}");
    // The reader does find functions: every one is longer than 3 lines somewhere.
    assert!(!long_functions(3).is_empty());
}

// ---- requirement tags resolve ----------------------------------------------------------

/// The `R<n>.<m>` tags in `text`.
fn tags_in(text: &str) -> BTreeSet<String> {
    let b = text.as_bytes();
    let mut out = BTreeSet::new();
    for i in 0..b.len() {
        let boundary = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        if !(boundary && b[i] == b'R') {
            continue;
        }
        let digits = |from: usize| {
            (from..b.len())
                .take_while(|&j| b[j].is_ascii_digit())
                .count()
        };
        let major = digits(i + 1);
        if major == 0 || b.get(i + 1 + major) != Some(&b'.') {
            continue;
        }
        let minor = digits(i + 2 + major);
        if minor > 0 {
            out.insert(text[i..i + 2 + major + minor].to_owned());
        }
    }
    out
}

#[test]
fn every_requirement_tag_in_the_code_has_a_line_in_docs_requirements() {
    let root = workspace();
    let listed: BTreeSet<String> = std::fs::read_to_string(root.join("docs/requirements.md"))
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("| R"))
        .filter_map(|l| l.split_whitespace().next())
        .map(|t| format!("R{t}"))
        .collect();
    let mut missing = BTreeSet::new();
    let mut stack: Vec<PathBuf> = ["shared", "testkit", "functions", "tests"]
        .iter()
        .map(|d| root.join(d))
        .collect();
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if p.extension().is_some_and(|x| x == "rs") {
            let text = std::fs::read_to_string(&p).unwrap();
            missing.extend(tags_in(&text).difference(&listed).cloned());
        }
    }
    assert!(listed.contains("R4.8"), "{listed:?}");
    assert!(missing.is_empty(), "tags without a line: {missing:?}");
    // (The unlisted tag is built at run time, so this file does not cite it.)
    let unlisted = format!("R{}.{}", 99, 10);
    assert_eq!(
        tags_in(&format!("R4.8, (R5.2) PR1.2 {unlisted}x R3")),
        BTreeSet::from(["R4.8".to_owned(), "R5.2".to_owned(), unlisted])
    );
}
