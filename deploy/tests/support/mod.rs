//! Shared by the deploy tests: paths, rendering the example, and reading
//! HCL the way Terraform would (references, blocks) without terraform.

#![allow(dead_code)] // each test binary uses its own part

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use hcl::expr::{Expression, ObjectKey, TraversalOperator};
use hcl::template::{Directive, Element, Template};
use hcl::{Block, Body};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("deploy/ has a parent")
        .to_path_buf()
}

/// deploy/terraform.
pub fn terraform() -> PathBuf {
    repo().join("deploy/terraform")
}

/// Renders `topology.example.yaml` as an operator would keep it: the
/// topology in `<dir>/ops/`, the root in `<dir>/ops/terraform`.
pub fn render_example(dir: &Path) -> PathBuf {
    render_topology(dir, "topology.example.yaml", &example())
}

/// Renders [`example_with_recorders`] the same way, as `ops/topology.yaml`.
pub fn render_recorders(dir: &Path) -> PathBuf {
    render_topology(dir, "topology.yaml", &example_with_recorders())
}

/// Writes `yaml` as `<dir>/ops/<name>` and renders it into `<dir>/ops/terraform`.
pub fn render_topology(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    let ops = dir.join("ops");
    std::fs::create_dir_all(&ops).unwrap();
    let topology = ops.join(name);
    std::fs::write(&topology, yaml).unwrap();
    let out = ops.join("terraform");
    let loaded = geomesh_core::Topology::load(&topology).unwrap();
    geomesh_deploy::render(&loaded.topology, &topology, &out).unwrap();
    out
}

/// `topology.example.yaml`'s text.
pub fn example() -> String {
    std::fs::read_to_string(repo().join("topology.example.yaml")).unwrap()
}

/// The example with the recorders of `deploy/tests/fixtures/recorders.yaml`.
pub fn example_with_recorders() -> String {
    let recorders =
        std::fs::read_to_string(repo().join("deploy/tests/fixtures/recorders.yaml")).unwrap();
    format!("{}\n{recorders}", example())
}

/// The example's root and the root of the example with recorders.
pub fn render_both(dir: &Path) -> [PathBuf; 2] {
    [
        render_example(&dir.join("example")),
        render_recorders(&dir.join("recorders")),
    ]
}

/// Every file under `dir` (sorted) whose name ends with `ext`.
pub fn files_with(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.to_string_lossy().ends_with(ext) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The `.tf` files directly in `dir`, parsed.
pub fn module(dir: &Path) -> Vec<(PathBuf, Body)> {
    let mut out: Vec<(PathBuf, Body)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "tf"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let body = hcl::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, body)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Every directory under deploy/terraform/modules.
pub fn module_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(terraform().join("modules"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// Top-level blocks of a module with this identifier (`variable`, `module`…).
pub fn blocks<'a>(module: &'a [(PathBuf, Body)], kind: &str) -> Vec<&'a Block> {
    module
        .iter()
        .flat_map(|(_, b)| b.blocks())
        .filter(|b| b.identifier.as_str() == kind)
        .collect()
}

/// The first label of every `kind` block.
pub fn labels(module: &[(PathBuf, Body)], kind: &str) -> BTreeSet<String> {
    blocks(module, kind)
        .iter()
        .map(|b| b.labels[0].as_str().to_string())
        .collect()
}

/// Every reference in a body as its names: `var.x` → ["var", "x"],
/// `module.node[k].id` → ["module", "node", "id"] (index steps skipped).
pub fn references(body: &Body) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    walk_body(body, &mut out);
    out
}

fn walk_body(body: &Body, out: &mut Vec<Vec<String>>) {
    for a in body.attributes() {
        walk(&a.expr, out);
    }
    for b in body.blocks() {
        walk_body(&b.body, out);
    }
}

/// The references inside one expression.
pub fn walk(e: &Expression, out: &mut Vec<Vec<String>>) {
    match e {
        Expression::Array(v) => v.iter().for_each(|x| walk(x, out)),
        Expression::Object(o) => {
            for (k, v) in o {
                if let ObjectKey::Expression(k) = k {
                    walk(k, out);
                }
                walk(v, out);
            }
        }
        Expression::TemplateExpr(t) => {
            let tpl = Template::from_expr(t).unwrap_or_else(|e| panic!("template {t}: {e}"));
            walk_template(&tpl, out);
        }
        Expression::Variable(v) => out.push(vec![v.to_string()]),
        Expression::Traversal(t) => {
            if let Expression::Variable(root) = &t.expr {
                let mut names = vec![root.to_string()];
                names.extend(t.operators.iter().filter_map(|op| match op {
                    TraversalOperator::GetAttr(a) => Some(a.to_string()),
                    _ => None,
                }));
                out.push(names);
            } else {
                walk(&t.expr, out);
            }
            for op in &t.operators {
                if let TraversalOperator::Index(i) = op {
                    walk(i, out);
                }
            }
        }
        Expression::FuncCall(f) => f.args.iter().for_each(|x| walk(x, out)),
        Expression::Parenthesis(p) => walk(p, out),
        Expression::Conditional(c) => {
            walk(&c.cond_expr, out);
            walk(&c.true_expr, out);
            walk(&c.false_expr, out);
        }
        Expression::Operation(op) => match op.as_ref() {
            hcl::expr::Operation::Unary(u) => walk(&u.expr, out),
            hcl::expr::Operation::Binary(b) => {
                walk(&b.lhs_expr, out);
                walk(&b.rhs_expr, out);
            }
        },
        Expression::ForExpr(f) => {
            walk(&f.collection_expr, out);
            if let Some(k) = &f.key_expr {
                walk(k, out);
            }
            walk(&f.value_expr, out);
            if let Some(c) = &f.cond_expr {
                walk(c, out);
            }
        }
        _ => {}
    }
}

fn walk_template(t: &Template, out: &mut Vec<Vec<String>>) {
    for el in t.elements() {
        match el {
            Element::Literal(_) => {}
            Element::Interpolation(i) => walk(&i.expr, out),
            Element::Directive(d) => match d.as_ref() {
                Directive::If(i) => {
                    walk(&i.cond_expr, out);
                    walk_template(&i.true_template, out);
                    if let Some(f) = &i.false_template {
                        walk_template(f, out);
                    }
                }
                Directive::For(f) => {
                    walk(&f.collection_expr, out);
                    walk_template(&f.template, out);
                }
            },
        }
    }
}

/// The key names of an object expression (`{ role = …, files = … }`).
pub fn object_keys(e: &Expression) -> BTreeSet<String> {
    let Expression::Object(o) = e else {
        panic!("not an object: {e:?}");
    };
    o.keys()
        .map(|k| match k {
            ObjectKey::Identifier(i) => i.to_string(),
            other => panic!("computed key {other:?}"),
        })
        .collect()
}

/// The expression of attribute `key` directly in `block`.
pub fn attr<'a>(block: &'a Block, key: &str) -> Option<&'a Expression> {
    block
        .body
        .attributes()
        .find(|a| a.key.as_str() == key)
        .map(|a| &a.expr)
}
