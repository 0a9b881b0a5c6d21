//! The module layering of `baton` (scheduler/src) and `baton-router`
//! (router/src): the modules under one parent import each other without a
//! circle — at the top (`state` below `offers` below `reconcile` below
//! `api`, …) and inside every module (`parse` → `validate`, never back) —
//! so each layer can be read, tested and changed without the ones above it.
//!
//! Imports are read from the source (`use` declarations and `crate::`,
//! `super::`, `self::` paths in code; comments, strings and unit tests
//! left out) and compared between siblings: `a::b` importing `a::c`, or
//! `x` importing `y`. A module using its parent's items (a `Driver` split
//! over files) or its children is not a circle between siblings.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type ModPath = Vec<String>;

/// Every `.rs` file below `root` but unit-test files, with its module path.
fn modules(root: &Path) -> Vec<(ModPath, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read source dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") || path.ends_with("tests.rs") {
                continue;
            }
            let relative = path.strip_prefix(root).unwrap().with_extension("");
            let mut module: ModPath = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(
                module.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                module.pop();
            }
            if path.file_name().is_some_and(|n| n == "main.rs") {
                continue; // the binary: above everything
            }
            let source = std::fs::read_to_string(&path).expect("read source");
            out.push((module, code_only(&source)));
        }
    }
    out
}

/// The source without comments, string and char literals, and inline
/// `#[cfg(test)] mod tests { … }` blocks.
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !ident(chars.get(i.wrapping_sub(1)))
        {
            // A raw string: r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            while j < chars.len() {
                if chars[j] == '"' && (0..hashes).all(|h| chars.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            i += 3; // 'x'
        } else if c == '\'' && next == Some('\\') {
            i += 2;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    strip_test_modules(&out)
}

fn ident(c: Option<&char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || *c == '_')
}

/// Drops `#[cfg(test)] mod name { … }` blocks (braces balanced; strings
/// are already gone).
fn strip_test_modules(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let Some(open) = after.find(['{', ';']) else {
            break;
        };
        if after.as_bytes()[open] == b';' || !after[..open].contains("mod ") {
            // `#[cfg(test)] mod tests;` or a test-only item: skip the attribute.
            out.push_str(&after[..open + 1]);
            rest = &after[open + 1..];
            continue;
        }
        let mut depth = 0;
        let mut end = after.len();
        for (i, ch) in after[open..].char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The module paths `code` (of module `module`) refers to.
fn references(module: &ModPath, is_mod_file: bool, code: &str) -> BTreeSet<ModPath> {
    let mut found = BTreeSet::new();
    let base_self: ModPath = module.clone();
    // `super` of a `mod.rs`/`lib.rs` module is its parent; of a file module
    // too (a file `a/b.rs` is module `a::b`, whose super is `a`).
    let _ = is_mod_file;
    let base_super: ModPath = module[..module.len().saturating_sub(1)].to_vec();
    let mut paths: Vec<String> = Vec::new();
    // `use` declarations, braces expanded.
    for decl in code.split(';') {
        let decl = decl.trim();
        let Some(at) = decl.rfind("use ") else {
            continue;
        };
        let head = &decl[..at];
        if !head.trim().is_empty()
            && !head.trim_end().ends_with("pub")
            && !head.trim_end().ends_with(')')
            && !head.trim_end().ends_with(']')
            && !head.trim_end().ends_with('}')
        {
            continue;
        }
        let tree: String = decl[at + 4..]
            .replace(" as ", "@")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        expand(&tree, "", &mut paths);
    }
    // Paths in code.
    let bytes = code.as_bytes();
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(start) {
            let at = from + i;
            from = at + start.len();
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            let end = code[at..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .map_or(code.len(), |e| at + e);
            paths.push(code[at..end].to_string());
        }
    }
    for path in paths {
        let mut segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        let mut resolved: ModPath = match segments.first().copied() {
            Some("crate") => {
                segments.remove(0);
                Vec::new()
            }
            Some("super") => {
                let mut base = base_super.clone();
                segments.remove(0);
                while segments.first() == Some(&"super") {
                    base.pop();
                    segments.remove(0);
                }
                base
            }
            Some("self") => {
                segments.remove(0);
                base_self.clone()
            }
            _ => continue,
        };
        resolved.extend(segments.iter().map(|s| s.to_string()));
        if !resolved.is_empty() {
            found.insert(resolved);
        }
    }
    found
}

/// Expands a use tree (`a::{b,c::{d,e}}`) into full paths.
fn expand(tree: &str, prefix: &str, out: &mut Vec<String>) {
    let tree = tree.trim_matches(',');
    if tree.is_empty() {
        return;
    }
    match tree.find('{') {
        None => {
            for part in split_top(tree) {
                let part = part.split('@').next().unwrap_or(part);
                out.push(format!("{prefix}{part}"));
            }
        }
        Some(open) if !tree[..open].contains(',') => {
            let close = tree.rfind('}').unwrap_or(tree.len());
            let head = &tree[..open];
            for part in split_top(&tree[open + 1..close]) {
                expand(part, &format!("{prefix}{head}"), out);
            }
        }
        Some(_) => {
            for part in split_top(tree) {
                expand(part, prefix, out);
            }
        }
    }
}

/// Splits on the commas not inside braces.
fn split_top(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

/// The import edges between sibling modules: (parent, from child, to child).
fn sibling_edges(root: &Path) -> BTreeSet<(ModPath, String, String)> {
    let known: BTreeSet<ModPath> = modules(root).into_iter().map(|(m, _)| m).collect();
    let mut edges = BTreeSet::new();
    for (module, code) in modules(root) {
        for target in references(&module, false, &code) {
            // The longest known module the path names.
            let Some(target) = (1..=target.len())
                .rev()
                .map(|n| target[..n].to_vec())
                .find(|t| known.contains(t))
            else {
                continue;
            };
            let common = module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            if common == module.len() || common == target.len() {
                continue; // itself, an ancestor or a descendant
            }
            edges.insert((
                module[..common].to_vec(),
                module[common].clone(),
                target[common].clone(),
            ));
        }
    }
    edges
}

/// Circles among siblings, as their members.
fn circles(edges: &BTreeSet<(ModPath, String, String)>) -> Vec<String> {
    let mut by_parent: BTreeMap<&ModPath, BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
    for (parent, from, to) in edges {
        by_parent
            .entry(parent)
            .or_default()
            .entry(from.as_str())
            .or_default()
            .insert(to.as_str());
    }
    let mut found = Vec::new();
    for (parent, graph) in by_parent {
        // A node is in a circle if it can reach itself.
        for start in graph.keys() {
            let mut seen = BTreeSet::new();
            let mut stack: Vec<&str> = graph[start].iter().copied().collect();
            let mut path_back = false;
            while let Some(n) = stack.pop() {
                if n == *start {
                    path_back = true;
                    break;
                }
                if seen.insert(n)
                    && let Some(next) = graph.get(n)
                {
                    stack.extend(next.iter().copied());
                }
            }
            if path_back {
                found.push(format!("{}::{start}", parent.join("::")));
            }
        }
    }
    found
}

fn source_dir(crate_dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(crate_dir)
        .join("src")
}

fn assert_layered(crate_dir: &str) {
    let edges = sibling_edges(&source_dir(crate_dir));
    assert!(edges.len() > 10, "the reader found the imports: {edges:?}");
    let circles = circles(&edges);
    let involved: Vec<_> = edges
        .iter()
        .filter(|(p, f, t)| {
            let name = |m: &str| format!("{}::{m}", p.join("::"));
            circles.contains(&name(f)) && circles.contains(&name(t))
        })
        .collect();
    assert!(
        circles.is_empty(),
        "{crate_dir}: modules in an import circle: {circles:?}; their imports: {involved:#?}"
    );
}

#[test]
fn the_schedulers_modules_import_each_other_without_circles() {
    assert_layered("scheduler");
}

#[test]
fn the_routers_modules_import_each_other_without_circles() {
    assert_layered("router");
}

#[test]
fn the_reader_sees_grouped_imports_and_ignores_comments_and_strings() {
    let code = code_only(
        "//! see crate::doc::only\nuse crate::{a::{b, c}, d};\nuse super::e as f;\nfn x() { let _ = \"crate::in::string\"; crate::g::h(); }\n#[cfg(test)]\nmod tests { use crate::z; }\n",
    );
    let refs = references(&vec!["m".into(), "n".into()], false, &code);
    let names: BTreeSet<String> = refs.iter().map(|r| r.join("::")).collect();
    assert_eq!(
        names,
        ["a::b", "a::c", "d", "g::h", "m::e"]
            .map(String::from)
            .into()
    );
}
