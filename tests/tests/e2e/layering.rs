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
//! over files) or its children is not a circle between siblings; but a
//! parent's item brought in by a `use` (`pub use timestamp::Timestamp;`,
//! `pub use types::*;`) is the item of the module it comes from, so
//! `use super::Timestamp;` in `types` imports the sibling `timestamp`.

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
        let path = path.split('@').next().unwrap_or(&path);
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

/// Expands a use tree (`a::{b,c::{d,e@f}}`) into full paths, a rename
/// kept as `@name` (`a::c::e@f`).
fn expand(tree: &str, prefix: &str, out: &mut Vec<String>) {
    let tree = tree.trim_matches(',');
    if tree.is_empty() {
        return;
    }
    match tree.find('{') {
        None => {
            for part in split_top(tree) {
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
    edges(&modules(root))
}

/// The import edges between sibling modules of `modules` (module path,
/// code as [`code_only`] leaves it).
///
/// A path naming an item of the module itself or of an ancestor (`use
/// super::Timestamp;`) is followed through the `use` items of the modules
/// it passes (`pub use timestamp::Timestamp;`, `pub use types::*;`) to the
/// module that defines the item: that module, if a sibling, is what the
/// code depends on. An item the ancestor defines itself is no edge.
fn edges(modules: &[(ModPath, String)]) -> BTreeSet<(ModPath, String, String)> {
    let known: BTreeSet<ModPath> = modules.iter().map(|(m, _)| m.clone()).collect();
    let scopes: BTreeMap<ModPath, Scope> = modules
        .iter()
        .map(|(m, code)| (m.clone(), scope(m, code, &known)))
        .collect();
    let mut edges = BTreeSet::new();
    for (module, code) in modules {
        for path in references(module, false, code) {
            let Some(mut target) = longest_known(&path, &known) else {
                continue;
            };
            if module.starts_with(&target) {
                let Some(defining) = defining_module(&path, &known, &scopes) else {
                    continue;
                };
                target = defining;
            }
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

/// The longest known module `path` starts with (the crate root too).
fn longest_known(path: &[String], known: &BTreeSet<ModPath>) -> Option<ModPath> {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|m| known.contains(m))
}

/// The names a module's own items bind: those visible to its code and its
/// descendants' `super::…`/`crate::…` paths.
#[derive(Debug, Default)]
struct Scope {
    /// The items it defines (`fn`, `struct`, …, `mod`), true when `pub`.
    defines: BTreeMap<String, bool>,
    /// The names its `use` items bind, with the crate path they stand for
    /// (`None`: another crate's), true when `pub`.
    imports: BTreeMap<String, (Option<ModPath>, bool)>,
    /// The modules it glob-imports (`use x::*;`), true when `pub`.
    globs: Vec<(ModPath, bool)>,
}

/// The [`Scope`] of `module`, from its top-level items.
fn scope(module: &ModPath, code: &str, known: &BTreeSet<ModPath>) -> Scope {
    let mut scope = Scope::default();
    for item in top_level_items(code) {
        let (public, item) = visibility(strip_attributes(item));
        if let Some(tree) = item.strip_prefix("use ") {
            let tree: String = tree
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .replace(" as ", "@")
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            let mut paths = Vec::new();
            expand(&tree, "", &mut paths);
            for path in paths {
                let (path, rename) = match path.split_once('@') {
                    Some((path, rename)) => (path, Some(rename)),
                    None => (path.as_str(), None),
                };
                let mut segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
                if segments.last() == Some(&"*") {
                    segments.pop();
                    if let Some(source) = crate_path(module, &segments, known) {
                        scope.globs.push((source, public));
                    }
                    continue;
                }
                if segments.len() > 1 && segments.last() == Some(&"self") {
                    segments.pop(); // `a::{self, …}`
                }
                let Some(name) = rename.or(segments.last().copied()) else {
                    continue;
                };
                if name != "_" {
                    let to = crate_path(module, &segments, known);
                    scope.imports.insert(name.to_string(), (to, public));
                }
            }
        } else if let Some(name) = defined_name(item) {
            scope.defines.insert(name.to_string(), public);
        }
    }
    scope
}

/// The items at the top level of `code`, each up to its `;` or closing
/// `}` (without the `;`).
fn top_level_items(code: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in code.char_indices() {
        match c {
            '{' | '(' | '[' => depth += 1,
            ')' | ']' => depth = depth.saturating_sub(1),
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    items.push(&code[start..=i]);
                    start = i + 1;
                }
            }
            ';' if depth == 0 => {
                items.push(&code[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&code[start..]);
    items
        .into_iter()
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .collect()
}

/// `item` without its leading `#[…]`/`#![…]` attributes.
fn strip_attributes(mut item: &str) -> &str {
    while item.starts_with('#') {
        let mut depth = 0;
        let mut end = item.len();
        for (i, c) in item.char_indices() {
            match c {
                '[' => depth += 1,
                ']' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        item = item[end..].trim_start();
    }
    item
}

/// Whether `item` is `pub` (`pub(crate)`, …), and the item after that.
fn visibility(item: &str) -> (bool, &str) {
    let Some(rest) = item.strip_prefix("pub") else {
        return (false, item);
    };
    if ident(rest.chars().next().as_ref()) {
        return (false, item); // `public_thing`
    }
    let rest = rest.trim_start();
    let rest = match rest.strip_prefix('(') {
        Some(inner) => inner.find(')').map_or(rest, |close| &inner[close + 1..]),
        None => rest,
    };
    (true, rest.trim_start())
}

/// The name a (non-`use`) item defines: `fn`, `struct`, `enum`, `union`,
/// `trait`, `type`, `const`, `static`, `mod`, `macro_rules!`.
fn defined_name(item: &str) -> Option<&str> {
    let mut words = item
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '!'))
        .filter(|w| !w.is_empty())
        .peekable();
    while let Some(word) = words.next() {
        match word {
            "async" | "unsafe" | "extern" | "auto" => {}
            "const"
                if words
                    .peek()
                    .is_some_and(|next| matches!(*next, "fn" | "unsafe" | "async" | "extern")) => {}
            "static" => {
                let name = words.next()?;
                return if name == "mut" {
                    words.next()
                } else {
                    Some(name)
                };
            }
            "fn" | "struct" | "enum" | "union" | "trait" | "type" | "const" | "mod"
            | "macro_rules!" => return words.next().filter(|name| *name != "_"),
            _ => return None,
        }
    }
    None
}

/// The crate path a `use` path of `module` names (`crate::…`, `super::…`,
/// `self::…` or a child module's `child::…`); `None` for another crate's.
fn crate_path(module: &ModPath, segments: &[&str], known: &BTreeSet<ModPath>) -> Option<ModPath> {
    let (mut base, mut rest) = match segments.first().copied()? {
        "crate" => (Vec::new(), &segments[1..]),
        "self" => (module.clone(), &segments[1..]),
        "super" => (
            module[..module.len().saturating_sub(1)].to_vec(),
            &segments[1..],
        ),
        child => {
            let mut base = module.clone();
            base.push(child.to_string());
            if !known.contains(&base) {
                return None;
            }
            (module.clone(), segments)
        }
    };
    while rest.first() == Some(&"super") {
        base.pop();
        rest = &rest[1..];
    }
    base.extend(rest.iter().map(|s| s.to_string()));
    Some(base)
}

/// The module defining the item `path` (a crate path) names: followed
/// through the `use` items of the modules on the way, explicit ones first,
/// then the globs whose module exports the name. `None` for an item of
/// another crate.
fn defining_module(
    path: &[String],
    known: &BTreeSet<ModPath>,
    scopes: &BTreeMap<ModPath, Scope>,
) -> Option<ModPath> {
    let mut path = path.to_vec();
    for _ in 0..32 {
        let module = longest_known(&path, known)?;
        let rest = path[module.len()..].to_vec();
        let Some(name) = rest.first() else {
            return Some(module); // the module itself
        };
        let scope = &scopes[&module];
        if scope.defines.contains_key(name) {
            return Some(module);
        }
        if let Some((to, _)) = scope.imports.get(name) {
            path = to.clone()?;
            path.extend(rest[1..].iter().cloned());
            continue;
        }
        match scope
            .globs
            .iter()
            .find(|(source, _)| exports(source, name, scopes, 8))
        {
            Some((source, _)) => path = source.iter().chain(&rest).cloned().collect(),
            None => return Some(module), // not found: stay with the module
        }
    }
    None
}

/// Whether module `module` exports `name` to a glob import: defines it, or
/// re-exports it, as `pub`.
fn exports(module: &ModPath, name: &str, scopes: &BTreeMap<ModPath, Scope>, depth: u32) -> bool {
    let Some(scope) = scopes.get(module) else {
        return false;
    };
    scope.defines.get(name) == Some(&true)
        || scope.imports.get(name).is_some_and(|(_, public)| *public)
        || (depth > 0
            && scope
                .globs
                .iter()
                .any(|(source, public)| *public && exports(source, name, scopes, depth - 1)))
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

/// Modules from (`a::b`, code) pairs, as [`modules`] reads them.
fn tree(files: &[(&str, &str)]) -> Vec<(ModPath, String)> {
    files
        .iter()
        .map(|(module, code)| {
            let module = module
                .split("::")
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            (module, code_only(code))
        })
        .collect()
}

fn edge(parent: &str, from: &str, to: &str) -> (ModPath, String, String) {
    let parent = parent
        .split("::")
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    (parent, from.into(), to.into())
}

#[test]
fn circles_are_the_siblings_whose_imports_lead_back() {
    let circles_of = |edges: &[(&str, &str, &str)]| {
        circles(&edges.iter().map(|(p, f, t)| edge(p, f, t)).collect())
    };
    assert_eq!(
        circles_of(&[("p", "a", "b"), ("p", "b", "a")]),
        ["p::a", "p::b"]
    );
    assert_eq!(
        circles_of(&[
            ("", "a", "b"),
            ("", "b", "c"),
            ("", "c", "a"),
            ("", "c", "d")
        ]),
        ["::a", "::b", "::c"]
    );
    assert!(circles_of(&[("p", "a", "b"), ("p", "b", "c")]).is_empty());
    assert!(circles_of(&[("p", "a", "b"), ("q", "b", "a")]).is_empty());
}

#[test]
fn a_parents_use_item_leads_to_the_sibling_defining_the_item() {
    // The modules and their code, and the edges expected.
    type Files = &'static [(&'static str, &'static str)];
    type Edges = &'static [(&'static str, &'static str, &'static str)];
    let cases: &[(Files, Edges)] = &[
        // `pub use`, by name.
        (
            &[
                ("p", "mod a; mod b; pub use b::Thing;"),
                ("p::a", "use super::Thing;"),
                ("p::b", "pub struct Thing;"),
            ],
            &[("p", "a", "b")],
        ),
        // Renamed, grouped, `pub(crate)`, a path in code.
        (
            &[
                (
                    "p",
                    "mod a; mod b; pub(crate) use b::{Other, Thing as Renamed};",
                ),
                ("p::a", "fn f() -> super::Renamed { todo!() }"),
                ("p::b", "pub struct Thing; pub struct Other;"),
            ],
            &[("p", "a", "b")],
        ),
        // A glob: the module among the globs that exports the name.
        (
            &[
                ("p", "mod a; mod b; mod c; pub use b::*; pub use c::*;"),
                ("p::a", "fn f() { super::thing(); }"),
                ("p::b", "pub struct Other;"),
                ("p::c", "pub(crate) fn thing() {}"),
            ],
            &[("p", "a", "c")],
        ),
        // A glob of a glob, then a re-export from another branch.
        (
            &[
                ("p", "mod a; mod b; mod c; pub use b::*;"),
                ("p::a", "use super::Thing;"),
                ("p::b", "mod inner; pub use self::inner::*;"),
                ("p::b::inner", "pub use crate::p::c::Thing;"),
                ("p::c", "pub struct Thing;"),
            ],
            &[("p", "a", "c"), ("p", "b", "c")],
        ),
        // Through the crate root, then the parent.
        (
            &[
                ("", "mod p; pub use p::Thing;"),
                ("p", "mod a; mod b; pub use b::Thing;"),
                ("p::a", "fn f(_: crate::Thing) {}"),
                ("p::b", "pub enum Thing {}"),
            ],
            &[("p", "a", "b")],
        ),
        // The parent's own item; a private one a glob does not bring;
        // another crate's.
        (
            &[
                (
                    "p",
                    "mod a; mod b; pub use b::*; use std::fmt::Thing; pub struct Own;",
                ),
                ("p::a", "use super::{Own, Hidden, Thing};"),
                ("p::b", "struct Hidden;"),
            ],
            &[],
        ),
    ];
    for (files, expected) in cases {
        let expected: BTreeSet<_> = expected.iter().map(|(p, f, t)| edge(p, f, t)).collect();
        assert_eq!(edges(&tree(files)), expected, "{files:#?}");
    }
    let circle = tree(&[
        ("p", "mod a; mod b; pub use a::A; pub use b::B;"),
        ("p::a", "use super::B; pub struct A(B);"),
        (
            "p::b",
            "pub struct B; impl B { fn a(&self) -> super::A { todo!() } }",
        ),
    ]);
    assert_eq!(circles(&edges(&circle)), ["p::a", "p::b"]);
}

/// `types` imports `Timestamp` from its parent, which re-exports it from
/// `timestamp`: `timestamp` importing anything `types` defines, through
/// the parent's `pub use types::*;`, closes a circle.
#[test]
fn a_circle_through_the_schedulers_re_exports_is_found() {
    let mut modules = modules(&source_dir("scheduler"));
    let (_, timestamp) = modules
        .iter_mut()
        .find(|(m, _)| m.join("::") == "state::app::timestamp")
        .expect("state::app::timestamp");
    timestamp.push_str("\nuse super::EnvValue;\n");
    let circles = circles(&edges(&modules));
    assert_eq!(
        circles,
        ["state::app::timestamp", "state::app::types"],
        "{circles:?}"
    );
}
