//! The example Prometheus configuration: a scrape job per role the
//! machines run (`geomesh-<role>` on `/metrics`), every target labelled
//! with its region and node id, and `promtool check config` accepts it.

mod support;

use std::process::Command;

use support::*;

#[test]
fn every_role_has_a_scrape_job_with_labelled_targets() {
    let dir = repo().join("deploy/prometheus");
    let text = std::fs::read_to_string(dir.join("prometheus.yml")).unwrap();
    let cfg: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let jobs = cfg["scrape_configs"].as_array().expect("scrape_configs");
    for role in ["edge", "selector", "recorder"] {
        let name = format!("geomesh-{role}");
        let job = jobs
            .iter()
            .find(|j| j["job_name"] == name.as_str())
            .unwrap_or_else(|| panic!("no {name} job"));
        assert_eq!(job["metrics_path"], "/metrics", "{name}");
        let groups = job["static_configs"].as_array().expect("static_configs");
        assert!(!groups.is_empty(), "{name}");
        for g in groups {
            assert!(g["targets"].as_array().is_some_and(|t| !t.is_empty()));
            assert!(g["labels"]["region"].is_string(), "{name}: {g}");
            assert!(g["labels"][role].is_string(), "{name}: {g}");
        }
    }

    let Ok(out) = Command::new("promtool")
        .args(["check", "config", "prometheus.yml"])
        .current_dir(&dir)
        .output()
    else {
        // scripts/test.sh installs it; a developer machine may lack it.
        eprintln!("promtool not installed: skipping (apt-get install prometheus)");
        return;
    };
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
