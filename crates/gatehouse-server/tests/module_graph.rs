//! No import cycle among the server's modules.
//!
//! Reads every `src/*.rs` (but `lib.rs`, which only declares them) and every module folder
//! (`src/config/`: its files together), collects the modules each
//! one names through `crate::` paths in code (`use crate::x::Y`, `use crate::{x, y}`,
//! `crate::x::f()`; comments, doc comments and string literals are skipped) and the modules
//! whose `impl App` methods it calls, and fails on any cycle, printing it with the line of
//! each reference. The intended direction is the list in the crate doc (`src/lib.rs`) and
//! `ARCHITECTURE.md`.
//!
//! The checker's own tests (synthetic sources with a cycle, and references hidden in comments
//! and strings) show it can fail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

/// module -> (module it references -> first line that references it).
type Graph = BTreeMap<String, BTreeMap<String, usize>>;

#[test]
fn the_server_modules_import_one_another_without_a_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut sources = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            if name != "lib" {
                sources.insert(name, std::fs::read_to_string(&path).unwrap());
            }
        } else if path.is_dir() {
            // A module in a folder (`src/config/mod.rs` and its files) is one module here:
            // its files' text together, `mod.rs` first.
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            sources.insert(name, folder_text(&path));
        }
    }
    assert!(
        sources.len() > 10,
        "expected the server's modules in {}, found {:?}",
        src.display(),
        sources.keys()
    );
    let graph = graph(&sources);
    let cycles = cycles(&graph);
    assert!(
        cycles.is_empty(),
        "import cycles among crates/gatehouse-server/src modules:\n{}",
        cycles
            .iter()
            .map(|(members, c)| format!(
                "{} modules import one another ({}), for example:\n{}",
                members.len(),
                members.join(", "),
                describe(&graph, c)
            ))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The text of every `.rs` file under `dir` (sub-folders too), `mod.rs` first, then by name.
fn folder_text(dir: &Path) -> String {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort_by_key(|p| (p.parent() != Some(dir) || !p.ends_with("mod.rs"), p.clone()));
    assert!(!files.is_empty(), "no .rs file in {}", dir.display());
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The references of every module to the others: `crate::` paths, and calls of the methods
/// that a module other than `app` adds to `App` (`impl App { fn m() }` in `browser.rs` makes
/// `app.m(` anywhere else a reference to `browser`), since such a call depends on that module
/// as much as an import does.
fn graph(sources: &BTreeMap<String, String>) -> Graph {
    let code: BTreeMap<&str, String> = sources
        .iter()
        .map(|(name, text)| (name.as_str(), code_only(text)))
        .collect();
    let methods: Vec<(&str, String)> = code
        .iter()
        .filter(|(name, _)| **name != "app")
        .flat_map(|(name, text)| app_methods(text).into_iter().map(move |m| (*name, m)))
        .collect();
    code.iter()
        .map(|(name, text)| {
            let mut edges = BTreeMap::new();
            for (target, line) in crate_references(text) {
                if target != *name && sources.contains_key(&target) {
                    edges.entry(target).or_insert(line);
                }
            }
            for (owner, method) in &methods {
                if owner != name
                    && let Some(at) = text.find(&format!(".{method}("))
                {
                    let line = text[..at].matches('\n').count() + 1;
                    edges.entry((*owner).to_owned()).or_insert(line);
                }
            }
            ((*name).to_owned(), edges)
        })
        .collect()
}

/// The names of the functions in the module's `impl App { ... }` blocks.
fn app_methods(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("impl App") {
        rest = &rest[at + "impl App".len()..];
        let Some(open) = rest.find(|c: char| !c.is_whitespace()) else {
            break;
        };
        if !rest[open..].starts_with('{') {
            continue;
        }
        let mut depth = 0;
        let mut end = rest.len();
        for (i, c) in rest[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let block = &rest[open..end];
        for (i, _) in block.match_indices("fn ") {
            let before_ok =
                i == 0 || !block[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_');
            let name: String = block[i + 3..]
                .trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if before_ok && !name.is_empty() {
                out.push(name);
            }
        }
        rest = &rest[end..];
    }
    out
}

/// `a (line 3) -> b (line 9) -> a`.
fn describe(graph: &Graph, cycle: &[String]) -> String {
    let mut out = String::from("  ");
    for (i, module) in cycle.iter().enumerate() {
        let next = &cycle[(i + 1) % cycle.len()];
        let line = graph[module][next];
        out.push_str(&format!("{module}.rs:{line} -> "));
    }
    out.push_str(&format!("{}.rs", cycle[0]));
    out
}

/// The text with comments and the contents of string and char literals replaced by spaces
/// (newlines kept, so line numbers stay right).
fn code_only(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, ch: char| out.push(if ch == '\n' { '\n' } else { ' ' });
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let mut i = 0;
    while i < c.len() {
        let prev_ident = i > 0 && ident(c[i - 1]);
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                blank(&mut out, c[i]);
                i += 1;
            }
        } else if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
        } else if c[i] == 'r'
            && (!prev_ident || (c[i - 1] == 'b' && (i < 2 || !ident(c[i - 2]))))
            && matches!(c.get(i + 1), Some('#' | '"'))
            && c[i + 1..].iter().find(|&&ch| ch != '#') == Some(&'"')
        {
            // Raw string: r"..." or r#"..."#.
            let hashes = c[i + 1..].iter().take_while(|&&ch| ch == '#').count();
            i += 2 + hashes;
            out.push_str(&" ".repeat(2 + hashes));
            loop {
                if i >= c.len() {
                    break;
                }
                if c[i] == '"'
                    && c[i + 1..]
                        .iter()
                        .take(hashes)
                        .filter(|&&ch| ch == '#')
                        .count()
                        == hashes
                {
                    out.push_str(&" ".repeat(1 + hashes));
                    i += 1 + hashes;
                    break;
                }
                blank(&mut out, c[i]);
                i += 1;
            }
        } else if c[i] == '"' {
            out.push(' ');
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    blank(&mut out, c[i]);
                    i += 1;
                }
                if i < c.len() {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c[i] == '\'' && (c.get(i + 1) == Some(&'\\') || c.get(i + 2) == Some(&'\'')) {
            // A char literal ('x', '\n', '\u{..}'); a lifetime ('a) has no closing quote.
            out.push(' ');
            i += 1;
            if c.get(i) == Some(&'\\') {
                // The escaped character, which may be a quote.
                out.push_str("  ");
                i += 2;
            }
            while i < c.len() && c[i] != '\'' {
                blank(&mut out, c[i]);
                i += 1;
            }
            out.push(' ');
            i += 1;
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// Every module named right after `crate::` (or inside `crate::{...}`), with its line.
fn crate_references(code: &str) -> Vec<(String, usize)> {
    let c: Vec<char> = code.chars().collect();
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let line_at = |i: usize| c[..i].iter().filter(|&&ch| ch == '\n').count() + 1;
    let skip_ws = |mut i: usize| {
        while i < c.len() && c[i].is_whitespace() {
            i += 1;
        }
        i
    };
    let word = |mut i: usize| {
        let start = i;
        while i < c.len() && ident(c[i]) {
            i += 1;
        }
        (c[start..i].iter().collect::<String>(), i)
    };
    let mut found = Vec::new();
    let mut i = 0;
    while i + 5 <= c.len() {
        let starts_word = i == 0 || !(ident(c[i - 1]) || c[i - 1] == '$');
        if !(starts_word && c[i..i + 5].iter().collect::<String>() == "crate")
            || c.get(i + 5).is_some_and(|&ch| ident(ch))
        {
            i += 1;
            continue;
        }
        let line = line_at(i);
        let mut j = skip_ws(i + 5);
        if !(c.get(j) == Some(&':') && c.get(j + 1) == Some(&':')) {
            i += 5;
            continue;
        }
        j = skip_ws(j + 2);
        if c.get(j) == Some(&'{') {
            // `crate::{a, b::C, c::{D, E}}`: the first segment of each top-level item.
            let mut depth = 0;
            let mut expect_item = true;
            while j < c.len() {
                match c[j] {
                    '{' => {
                        depth += 1;
                        expect_item = depth == 1;
                        j += 1;
                    }
                    '}' => {
                        depth -= 1;
                        j += 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' => {
                        expect_item = depth == 1;
                        j += 1;
                    }
                    ch if ident(ch) && expect_item => {
                        let (w, end) = word(j);
                        found.push((w, line_at(j)));
                        expect_item = false;
                        j = end;
                    }
                    _ => j += 1,
                }
            }
        } else {
            let (w, _) = word(j);
            if !w.is_empty() {
                found.push((w, line));
            }
        }
        i += 5;
    }
    found
}

/// One cycle for every strongly connected component of more than one module (Tarjan's
/// algorithm, then the shortest way back to the component's first module).
/// Returns each component's modules with its cycle.
fn cycles(graph: &Graph) -> Vec<(Vec<String>, Vec<String>)> {
    struct Tarjan<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        components: Vec<Vec<&'a str>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph[v].keys() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                self.components.push(component);
            }
        }
    }
    let mut t = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    let mut out = Vec::new();
    for component in t.components.into_iter().filter(|c| c.len() > 1) {
        let members: BTreeSet<&str> = component.iter().copied().collect();
        let start = *members.iter().next().unwrap();
        // Breadth-first from `start` within the component until an edge leads back to it.
        let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = VecDeque::from([start]);
        let mut last = None;
        'search: while let Some(v) = queue.pop_front() {
            for w in graph[v].keys().map(String::as_str) {
                if w == start {
                    last = Some(v);
                    break 'search;
                }
                if members.contains(w) && !came_from.contains_key(w) {
                    came_from.insert(w, v);
                    queue.push_back(w);
                }
            }
        }
        let mut path = vec![last.unwrap()];
        while *path.last().unwrap() != start {
            path.push(came_from[path.last().unwrap()]);
        }
        path.reverse();
        out.push((
            members.iter().map(|&m| m.to_owned()).collect(),
            path.into_iter().map(str::to_owned).collect(),
        ));
    }
    out
}

#[cfg(test)]
mod checker {
    use super::*;

    fn sources(files: &[(&str, &str)]) -> BTreeMap<String, String> {
        files
            .iter()
            .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
            .collect()
    }

    #[test]
    fn a_back_import_is_reported_as_a_cycle_with_its_lines() {
        let graph = graph(&sources(&[
            ("state", "use crate::config::Config;\n"),
            ("config", "pub struct Config;\n"),
            ("routes", "use crate::{state, ui::page};\n"),
            ("ui", "fn f() {\n    crate::state::go();\n}\n"),
        ]));
        assert!(cycles(&graph).is_empty(), "no cycle yet: {graph:?}");
        let mut with_back = sources(&[
            (
                "state",
                "use crate::config::Config;\n\nuse crate::routes::router;\n",
            ),
            ("config", "pub struct Config;\n"),
            ("routes", "use crate::{state, ui::page};\n"),
            ("ui", "fn f() {\n    crate::state::go();\n}\n"),
        ]);
        let graph = super::graph(&with_back);
        let found = cycles(&graph);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            describe(&graph, &found[0].1),
            "  routes.rs:1 -> state.rs:3 -> routes.rs"
        );
        with_back.insert("ui".to_owned(), "use crate::routes::X;\n".to_owned());
        let graph = super::graph(&with_back);
        let found = cycles(&graph);
        assert_eq!(found.len(), 1, "one component: {found:?}");
        assert_eq!(found[0].0, ["routes", "state", "ui"], "{found:?}");
    }

    #[test]
    fn calling_a_method_another_module_adds_to_app_depends_on_that_module() {
        let files = [
            (
                "app",
                "pub struct App;\nimpl App {\n    pub fn ready(&self) {}\n}\n",
            ),
            (
                "browser",
                "use crate::app::App;\nimpl App {\n    pub fn session_from(&self) {}\n    fn helper() { if true {} }\n}\nimpl AppParts {\n    fn other() {}\n}\n",
            ),
            (
                "ui",
                "use crate::app::App;\n\nfn f(app: &App) {\n    app.session_from();\n    app.ready();\n}\n",
            ),
        ];
        let graph = graph(&sources(&files));
        assert_eq!(graph["ui"].get("browser"), Some(&4), "{graph:?}");
        assert!(cycles(&graph).is_empty());
        assert_eq!(app_methods(files[1].1), ["session_from", "helper"]);
        // browser importing ui closes the loop that the method call opened.
        let mut with_back = sources(&files);
        with_back
            .get_mut("browser")
            .unwrap()
            .push_str("use crate::ui::page;\n");
        let graph = super::graph(&with_back);
        let found = cycles(&graph);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            describe(&graph, &found[0].1),
            "  browser.rs:9 -> ui.rs:4 -> browser.rs"
        );
    }

    #[test]
    fn grouped_and_nested_imports_name_their_first_segments() {
        let refs = crate_references(&code_only(
            "use crate::{\n    a,\n    b::{C, d::E},\n    self as _,\n};\nuse crate :: f;\nlet x = crate::g::h();\npub(crate) fn i() {}\nmacro_rules! m { () => { $crate::j } }\n",
        ));
        let names: Vec<_> = refs.iter().map(|(n, l)| (n.as_str(), *l)).collect();
        assert_eq!(names, [("a", 2), ("b", 3), ("self", 4), ("f", 6), ("g", 7)]);
    }

    #[test]
    fn comments_and_strings_are_not_references() {
        let text = r##"
//! See [`crate::a`].
/// [`crate::b::X`]
// crate::c::y();
/* crate::d /* nested crate::e */ crate::f */
let s = "crate::g::h and \" crate::i";
let r = r#"crate::j "quoted" crate::k"#;
let c = '"'; let l: &'static str = "x";
let q = '\''; use crate::real::Thing;
"##;
        let refs = crate_references(&code_only(text));
        assert_eq!(refs, [("real".to_owned(), 9)]);
    }
}
