//! The layers of `src/`, checked: every top-level module has a layer, a module imports only
//! from its own layer or below, and no two modules import each other, directly or round a loop.
//! The check reads `crate::` paths from the source text, so it also sees paths written inline.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Bottom to top. A module may use modules of its own layer or of any layer before it.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "foundation",
        &[
            "sync",
            "bounded",
            "logs",
            "board",
            "protocol",
            "principal",
            "tls",
            "stdout",
        ],
    ),
    ("store", &["store"]),
    ("observability", &["metrics"]),
    (
        "domain",
        &[
            "ledger",
            "sessions",
            "resources",
            "stats",
            "cost",
            "export",
            "views",
            "health",
            "rules",
        ],
    ),
    (
        "transport",
        &["security", "gateway", "mcp", "api", "dashboard"],
    ),
    (
        "application",
        &[
            "app", "server", "check", "config", "cli", "commands", "traces",
        ],
    ),
];

type Graph = BTreeMap<String, BTreeSet<String>>;

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

/// The top-level modules each top-level module of `src` names through `crate::` paths.
fn imports(src: &Path) -> Graph {
    let mut graph = Graph::new();
    for entry in std::fs::read_dir(src).expect("src/ is readable") {
        let path = entry.expect("src/ entry").path();
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if matches!(name, "lib" | "main" | "layering") {
            continue;
        }
        let mut targets = BTreeSet::new();
        for file in rust_files(&path) {
            let text = std::fs::read_to_string(&file).expect("source is readable");
            targets.extend(crate_paths(&text));
        }
        targets.remove(name);
        graph.insert(name.to_string(), targets);
    }
    graph
}

fn rust_files(path: &Path) -> Vec<std::path::PathBuf> {
    if path.is_dir() {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(path).expect("module folder is readable") {
            files.extend(rust_files(&entry.expect("entry").path()));
        }
        files
    } else if path.extension().is_some_and(|e| e == "rs") {
        vec![path.to_path_buf()]
    } else {
        Vec::new()
    }
}

/// The first segment after every `crate::`, including each name of a `crate::{a, b::c}` group;
/// line comments are skipped (doc links are not imports).
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let inner = top_level_group(group);
                for item in inner.split(',') {
                    let name = item.trim().split("::").next().unwrap_or_default();
                    if !name.is_empty() {
                        found.insert(ident(name));
                    }
                }
            } else {
                found.insert(ident(rest));
            }
        }
    }
    found.retain(|name| !name.is_empty() && name != "self");
    found
}

/// The text of a `{...}` group up to its matching brace, with nested groups left out.
fn top_level_group(text: &str) -> String {
    let mut depth = 0;
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

fn ident(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Imports that go up a layer, as `from -> to` lines; modules without a layer are errors too.
fn upward_imports(graph: &Graph) -> Vec<String> {
    let mut problems = Vec::new();
    for (from, targets) in graph {
        let Some(from_layer) = layer_of(from) else {
            problems.push(format!(
                "{from} has no layer: add it to LAYERS in src/layering.rs"
            ));
            continue;
        };
        for to in targets {
            match layer_of(to) {
                Some(to_layer) if to_layer > from_layer => problems.push(format!(
                    "{from} ({}) imports {to} ({}), a higher layer",
                    LAYERS[from_layer].0, LAYERS[to_layer].0
                )),
                _ => {}
            }
        }
    }
    problems
}

/// Every loop between modules, each as the modules on it (Tarjan's strongly connected
/// components of more than one module).
fn loops(graph: &Graph) -> Vec<Vec<String>> {
    struct Walk<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        found: Vec<Vec<String>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, node: &'g str) {
            let i = self.index.len();
            self.index.insert(node, i);
            self.low.insert(node, i);
            self.stack.push(node);
            for next in self.graph.get(node).into_iter().flatten() {
                let next = next.as_str();
                if !self.graph.contains_key(next) {
                    continue;
                }
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node, low);
                } else if self.stack.contains(&next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut component = Vec::new();
                while let Some(top) = self.stack.pop() {
                    component.push(top.to_string());
                    if top == node {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !walk.index.contains_key(node.as_str()) {
            walk.visit(node);
        }
    }
    walk.found
}

#[test]
fn no_module_imports_upward_or_round_a_loop() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = imports(&src);
    assert!(graph.len() > 20, "read only {} modules", graph.len());
    let upward = upward_imports(&graph);
    assert!(
        upward.is_empty(),
        "imports against the layers:\n{}",
        upward.join("\n")
    );
    let loops = loops(&graph);
    assert!(loops.is_empty(), "modules importing each other: {loops:?}");
}

#[test]
fn the_check_sees_an_upward_import_and_a_loop() {
    let text = "use crate::{store::Store, mcp::{tools, BoardServer}};\nlet x = crate::app::router();\n// crate::cli in a comment\n";
    assert_eq!(
        crate_paths(text),
        ["app", "mcp", "store"].map(String::from).into()
    );
    let mut graph = Graph::new();
    graph.insert("store".into(), ["ledger".to_string()].into());
    graph.insert("ledger".into(), ["store".to_string()].into());
    assert_eq!(
        upward_imports(&graph),
        ["store (store) imports ledger (domain), a higher layer"]
    );
    assert_eq!(loops(&graph), [["ledger", "store"]]);
}
