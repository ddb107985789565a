//! The node module's cloud-init user data: rendered from its template the
//! way Terraform's templatefile() does, it is valid YAML, a cloud-config
//! whose files decode to exactly what was given (any text, any path), and
//! the boot scripts are valid bash.

mod support;

use std::collections::BTreeSet;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hcl::eval::{Context, Evaluate};
use hcl::expr::Expression;
use hcl::{Template, Value};
use serde::Deserialize;
use support::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CloudConfig {
    package_update: bool,
    packages: Vec<String>,
    write_files: Vec<WriteFile>,
    runcmd: Vec<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteFile {
    path: String,
    owner: String,
    permissions: String,
    encoding: String,
    content: String,
}

/// The variables node/main.tf passes to templatefile().
fn template_vars() -> BTreeSet<String> {
    let node = module(&terraform().join("modules/node"));
    let locals = blocks(&node, "locals");
    let call = locals
        .iter()
        .find_map(|l| attr(l, "user_data"))
        .expect("locals.user_data");
    let Expression::FuncCall(f) = call else {
        panic!("user_data is not templatefile(...): {call:?}");
    };
    assert_eq!(f.name.name.as_str(), "templatefile");
    object_keys(&f.args[1])
}

/// Renders the template with what the module would give an edge.
fn render(files: &[(&str, &str, &str)], packages: &[&str]) -> String {
    let text =
        std::fs::read_to_string(terraform().join("modules/node/cloud-init.yaml.tftpl")).unwrap();
    let template = Template::from_str(&text).unwrap();
    let mut ctx = Context::new();
    ctx.declare_var("role", "edge");
    ctx.declare_var("node_id", "edge-us-east-1");
    // jsonencode(list): JSON is YAML.
    ctx.declare_var("packages", serde_json::to_string(packages).unwrap());
    let files: Vec<Value> = files
        .iter()
        .map(|(path, mode, text)| {
            let mut m = hcl::Map::new();
            m.insert("path".into(), serde_json::to_string(path).unwrap().into());
            m.insert("mode".into(), (*mode).into());
            m.insert("content".into(), STANDARD.encode(text).into());
            Value::Object(m)
        })
        .collect();
    ctx.declare_var("files", files);
    template.evaluate(&ctx).unwrap()
}

#[test]
fn the_module_passes_exactly_the_variables_the_template_reads() {
    assert_eq!(
        template_vars(),
        BTreeSet::from(["role", "node_id", "packages", "files"].map(String::from))
    );
}

#[test]
fn user_data_is_a_valid_cloud_config_carrying_the_files() {
    let topology = std::fs::read_to_string(repo().join("topology.example.yaml")).unwrap();
    let install = std::fs::read_to_string(terraform().join("modules/node/install.sh")).unwrap();
    let files = [
        ("/etc/geomesh/topology.yaml", "0644", topology.as_str()),
        (
            "/etc/geomesh/bootstrap.env",
            "0600",
            "RELEASE_URL='https://example.invalid/g.tar.gz?a=1&b=%20'\nTLS_SITES='meet.example.com edge-us-east-1.edges.example.com'\n",
        ),
        ("/usr/local/lib/geomesh/bootstrap", "0755", install.as_str()),
        ("/etc/geomesh/a \"quoted\": path", "0644", ""),
    ];
    let out = render(
        &files,
        &["awscli", "ca-certificates", "curl", "python3", "caddy"],
    );
    assert!(out.starts_with("#cloud-config\n"), "{out}");

    let cfg: CloudConfig = serde_saphyr::from_str(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
    assert!(cfg.package_update);
    assert_eq!(
        cfg.packages,
        ["awscli", "ca-certificates", "curl", "python3", "caddy"]
    );
    assert_eq!(cfg.write_files.len(), files.len());
    for (w, (path, mode, text)) in cfg.write_files.iter().zip(&files) {
        assert_eq!(w.path, *path);
        assert_eq!(w.permissions, *mode);
        assert_eq!(
            (w.owner.as_str(), w.encoding.as_str()),
            ("root:root", "b64")
        );
        assert_eq!(
            String::from_utf8(STANDARD.decode(&w.content).unwrap()).unwrap(),
            *text
        );
    }
    assert_eq!(cfg.runcmd, [["/usr/local/lib/geomesh/bootstrap"]]);
}

#[test]
fn with_no_files_the_user_data_is_still_valid_yaml() {
    let out = render(&[], &[]);
    // An empty write_files is YAML null, which cloud-init skips.
    let v: serde_json::Value = serde_saphyr::from_str(&out).unwrap();
    assert!(v["write_files"].is_null(), "{out}");
    assert_eq!(v["runcmd"][0][0], "/usr/local/lib/geomesh/bootstrap");
}

#[test]
fn the_boot_scripts_are_valid_bash() {
    for script in [
        terraform().join("modules/node/install.sh"),
        repo().join("deploy/machine/bootstrap.sh"),
    ] {
        let out = std::process::Command::new("bash")
            .arg("-n")
            .arg(&script)
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "{}: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
