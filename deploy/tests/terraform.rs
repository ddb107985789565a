//! The Terraform files as Terraform would read them, without terraform:
//! every `.tf` parses and keeps `terraform fmt` layout, every variable a
//! module references is declared and every declared one is used, every
//! module `source` exists and is called with exactly its variables, and
//! every `module.X.Y` names an output X has.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use hcl::expr::Expression;
use support::*;

/// The hand-written modules and the rendered roots (without and with
/// recorders).
fn module_sets(tmp: &Path) -> Vec<PathBuf> {
    let mut dirs = module_dirs();
    dirs.extend(render_both(tmp));
    dirs
}

#[test]
fn every_tf_file_parses_and_keeps_terraform_fmt_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let mut files = files_with(&terraform(), ".tf");
    for root in render_both(tmp.path()) {
        files.extend(files_with(&root, ".tf"));
        files.extend(files_with(&root, ".tfvars"));
    }
    assert!(files.len() > 25, "{files:?}");
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        if let Err(e) = hcl::parse(&text) {
            panic!("{}: {e}", f.display());
        }
        let laid_out = geomesh_deploy::hclfmt::format(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        if laid_out != text {
            let first = text
                .lines()
                .zip(laid_out.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            panic!(
                "{}:{}: not in terraform fmt layout:\n  is:     {:?}\n  wanted: {:?}",
                f.display(),
                first + 1,
                text.lines().nth(first).unwrap_or(""),
                laid_out.lines().nth(first).unwrap_or("")
            );
        }
    }
}

#[test]
fn variables_declared_are_exactly_the_variables_used() {
    let tmp = tempfile::tempdir().unwrap();
    for dir in module_sets(tmp.path()) {
        let m = module(&dir);
        let declared = labels(&m, "variable");
        let used: BTreeSet<String> = m
            .iter()
            .flat_map(|(_, b)| references(b))
            .filter(|r| r[0] == "var")
            .map(|r| r.get(1).cloned().unwrap_or_default())
            .collect();
        let undeclared: Vec<_> = used.difference(&declared).collect();
        let unused: Vec<_> = declared.difference(&used).collect();
        assert!(
            undeclared.is_empty() && unused.is_empty(),
            "{}: used but not declared {undeclared:?}, declared but not used {unused:?}",
            dir.display()
        );
        assert!(!declared.is_empty(), "{}", dir.display());
    }
}

/// What a `module` block may set besides the called module's variables.
const META: &[&str] = &["source", "providers", "for_each", "count", "depends_on"];

#[test]
fn module_sources_exist_and_are_called_with_their_variables() {
    let tmp = tempfile::tempdir().unwrap();
    let mut calls = 0;
    for dir in module_sets(tmp.path()) {
        let m = module(&dir);
        for call in blocks(&m, "module") {
            let name = call.labels[0].as_str();
            let Some(Expression::String(source)) = attr(call, "source") else {
                panic!(
                    "{}: module {name}: source is not a plain string",
                    dir.display()
                );
            };
            assert!(
                source.starts_with("./") || source.starts_with("../"),
                "{}: module {name}: {source} is not a local path",
                dir.display()
            );
            let target = dir.join(source);
            assert!(
                target.is_dir(),
                "{}: module {name}: {} does not exist",
                dir.display(),
                target.display()
            );
            let callee = module(&target);
            assert!(!callee.is_empty(), "{}: no .tf files", target.display());

            let given: BTreeSet<String> = call
                .body
                .attributes()
                .map(|a| a.key.to_string())
                .filter(|k| !META.contains(&k.as_str()))
                .collect();
            let declared = labels(&callee, "variable");
            let required: BTreeSet<String> = blocks(&callee, "variable")
                .into_iter()
                .filter(|v| attr(v, "default").is_none())
                .map(|v| v.labels[0].as_str().to_string())
                .collect();
            let unknown: Vec<_> = given.difference(&declared).collect();
            let missing: Vec<_> = required.difference(&given).collect();
            assert!(
                unknown.is_empty() && missing.is_empty(),
                "{}: module {name} ({source}): unknown arguments {unknown:?}, missing {missing:?}",
                dir.display()
            );
            calls += 1;
        }
    }
    // network, edges and selectors per region of the example (and
    // recorders in two of them), plus the node module under each role.
    assert!(calls > 10, "{calls}");
}

#[test]
fn module_outputs_referenced_exist() {
    let tmp = tempfile::tempdir().unwrap();
    for dir in module_sets(tmp.path()) {
        let m = module(&dir);
        let sources: Vec<(String, PathBuf)> = blocks(&m, "module")
            .into_iter()
            .map(|b| {
                let Some(Expression::String(s)) = attr(b, "source") else {
                    unreachable!("checked by module_sources_exist…");
                };
                (b.labels[0].as_str().to_string(), dir.join(s))
            })
            .collect();
        for r in m.iter().flat_map(|(_, b)| references(b)) {
            if r[0] != "module" || r.len() < 3 {
                continue;
            }
            let (_, target) = sources
                .iter()
                .find(|(n, _)| *n == r[1])
                .unwrap_or_else(|| panic!("{}: module.{} is not called", dir.display(), r[1]));
            let outputs = labels(&module(target), "output");
            assert!(
                outputs.contains(&r[2]),
                "{}: module.{}.{}: {} has outputs {outputs:?}",
                dir.display(),
                r[1],
                r[2],
                target.display()
            );
        }
    }
}

#[test]
fn the_rendered_root_carries_exact_copies_of_the_hand_written_files() {
    let tmp = tempfile::tempdir().unwrap();
    let root = render_example(tmp.path());
    let mut on_disk: Vec<String> = files_with(&terraform(), "")
        .iter()
        .map(|p| {
            let rel = p
                .strip_prefix(terraform())
                .unwrap()
                .to_string_lossy()
                .into_owned();
            rel.strip_prefix("root/")
                .map_or(rel.clone(), str::to_string)
        })
        .collect();
    on_disk.sort();
    let mut copied: Vec<String> = geomesh_deploy::render::COPIED
        .iter()
        .map(|(p, _)| p.to_string())
        .collect();
    copied.sort();
    assert_eq!(
        copied, on_disk,
        "render::COPIED must list every file of deploy/terraform"
    );
    for (rel, text) in geomesh_deploy::render::COPIED {
        assert_eq!(
            &std::fs::read_to_string(root.join(rel)).unwrap(),
            text,
            "{rel}"
        );
    }
}
