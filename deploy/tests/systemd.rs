//! The systemd units: `systemd-analyze verify` accepts them without a
//! word, and the settings they read are what the env files and the
//! Terraform modules write.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use support::*;

fn units() -> std::path::PathBuf {
    repo().join("deploy/systemd")
}

/// Every role a machine can have: a unit, its settings file and a module each.
const ROLES: [&str; 3] = ["edge", "selector", "recorder"];

#[test]
fn units_pass_systemd_analyze_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        // scripts/test.sh installs it; a developer machine may lack it.
        eprintln!("systemd-analyze not installed: skipping (apt-get install systemd)");
        return;
    }
    // A root with the system's own units (for the targets ours name) and
    // an executable where ExecStart expects the binary.
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let lib = r.join("usr/lib/systemd");
    std::fs::create_dir_all(&lib).unwrap();
    let copied = Command::new("cp")
        .args(["-a", "/usr/lib/systemd/system"])
        .arg(&lib)
        .status()
        .unwrap();
    assert!(copied.success());
    std::fs::create_dir_all(r.join("usr/local/bin")).unwrap();
    let bin = r.join("usr/local/bin/geomesh");
    std::fs::write(&bin, "#!/bin/sh\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let etc = r.join("etc/systemd/system");
    std::fs::create_dir_all(&etc).unwrap();
    let mut args = vec![];
    for role in ROLES {
        let unit = format!("geomesh-{role}.service");
        std::fs::copy(units().join(&unit), etc.join(&unit)).unwrap();
        args.push(format!("/etc/systemd/system/{unit}"));
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(format!("--root={}", r.display()))
        .args(&args)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Unknown keys are only warnings to systemd: any output fails here.
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

/// `${NAME}` and `$NAME` in a unit's ExecStart, and its EnvironmentFile.
fn unit_settings(unit: &str) -> (BTreeSet<String>, String) {
    let text = std::fs::read_to_string(units().join(unit)).unwrap();
    let exec = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let vars = exec
        .split_whitespace()
        .filter_map(|w| w.strip_prefix('$'))
        .map(|w| w.trim_start_matches('{').trim_end_matches('}').to_string())
        .collect();
    let env = text
        .lines()
        .find_map(|l| l.strip_prefix("EnvironmentFile="))
        .expect("EnvironmentFile")
        .to_string();
    (vars, env)
}

fn env_file_keys(path: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split_once('=').expect("KEY=value").0.to_string())
        .collect()
}

/// The keys of `env = { … }` in a role module's call of the node module.
fn module_env_keys(role_module: &str) -> BTreeSet<String> {
    let m = module(&terraform().join("modules").join(role_module));
    let node = blocks(&m, "module")
        .into_iter()
        .find(|b| b.labels[0].as_str() == "node")
        .expect("module node");
    object_keys(attr(node, "env").expect("env"))
}

#[test]
fn units_read_what_the_env_files_and_modules_write() {
    for role in ROLES {
        let (used, env_file) = unit_settings(&format!("geomesh-{role}.service"));
        assert_eq!(env_file, format!("/etc/geomesh/{role}.env"));
        let example = env_file_keys(&units().join(format!("{role}.env")));
        let written = module_env_keys(role);
        assert!(
            used.is_subset(&example),
            "{role}: unit reads {used:?}, {role}.env has {example:?}"
        );
        assert_eq!(
            example, written,
            "{role}: {role}.env and modules/{role} disagree"
        );
        // The node module stores it as the parameter "<role>.env", which
        // bootstrap.sh writes under /etc/geomesh, where the unit reads it.
        let node = std::fs::read_to_string(terraform().join("modules/node/main.tf")).unwrap();
        assert!(node.contains("\"${var.role}.env\""));
        let boot = std::fs::read_to_string(repo().join("deploy/machine/bootstrap.sh")).unwrap();
        assert!(boot.contains("CONFIG=/etc/geomesh\n"));
    }
}

#[test]
fn every_module_on_the_node_module_runs_a_role_that_has_a_unit() {
    let mut roles = BTreeSet::new();
    for dir in module_dirs() {
        let m = module(&dir);
        for call in blocks(&m, "module") {
            if !matches!(attr(call, "source"), Some(hcl::Expression::String(s)) if s == "../node") {
                continue;
            }
            let Some(hcl::Expression::String(role)) = attr(call, "role") else {
                panic!(
                    "{}: the node module's role is not a plain string",
                    dir.display()
                );
            };
            roles.insert(role.clone());
        }
    }
    assert_eq!(roles, BTreeSet::from(ROLES.map(String::from)));
    // The node module accepts exactly those, and the boot script installs
    // geomesh-<role>.service for each.
    let node = std::fs::read_to_string(terraform().join("modules/node/variables.tf")).unwrap();
    assert!(
        node.contains(r#"contains(["edge", "selector", "recorder"], var.role)"#),
        "modules/node/variables.tf: role validation"
    );
    for role in ROLES {
        assert!(units().join(format!("geomesh-{role}.service")).is_file());
        assert!(units().join(format!("{role}.env")).is_file());
    }
}

#[test]
fn the_recorder_writes_on_its_data_volume() {
    // The unit's StateDirectory, the env file's and the module's GEOMESH_OUT
    // are one directory under /var/lib/geomesh, where bootstrap.sh mounts
    // the volume the recorder module attaches (DATA_VOLUME).
    let unit = std::fs::read_to_string(units().join("geomesh-recorder.service")).unwrap();
    assert!(unit.contains("\nStateDirectory=geomesh/recordings\n"));
    assert!(unit.contains("\nRequiresMountsFor=/var/lib/geomesh\n"));
    let env = std::fs::read_to_string(units().join("recorder.env")).unwrap();
    assert!(env.contains("\nGEOMESH_OUT=/var/lib/geomesh/recordings\n"));
    let m = std::fs::read_to_string(terraform().join("modules/recorder/main.tf")).unwrap();
    assert!(m.contains(r#"GEOMESH_OUT      = "/var/lib/geomesh/recordings""#));
    assert!(m.contains("DATA_VOLUME = aws_ebs_volume.data[each.key].id"));
    let boot = std::fs::read_to_string(repo().join("deploy/machine/bootstrap.sh")).unwrap();
    assert!(boot.contains("mountpoint -q /var/lib/geomesh || mount /var/lib/geomesh"));
}
