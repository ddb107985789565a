//! `geomesh deploy render --topology FILE --out DIR`: the example renders
//! (exit 0, the files listed); a topology that cannot be deployed exits 2
//! with each problem on its own line, naming its topology path.

use std::path::Path;
use std::process::Command;

fn render(topology: &Path, out: &Path) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_geomesh"))
        .args(["deploy", "render", "--topology"])
        .arg(topology)
        .arg("--out")
        .arg(out)
        .output()
        .expect("run geomesh");
    (
        o.status.code().expect("exited, not killed by a signal"),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn example() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("topology.example.yaml"))
        .unwrap()
}

/// Renders `yaml` from a fresh directory: (exit code, stdout, the file's path).
fn render_yaml(yaml: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let topology = dir.path().join("topology.yaml");
    std::fs::write(&topology, yaml).unwrap();
    let out = dir.path().join("terraform");
    let (code, stdout, stderr) = render(&topology, &out);
    assert!(!stderr.contains("panicked"), "{stderr}");
    if code != 0 {
        assert!(
            !out.join("main.tf").exists(),
            "nothing is written on refusal"
        );
    }
    (code, stdout, topology.display().to_string())
}

#[test]
fn the_example_renders_a_root() {
    let (code, stdout, _) = render_yaml(&example());
    assert_eq!(code, 0, "{stdout}");
    for f in [
        "providers.tf",
        "main.tf",
        "outputs.tf",
        "geomesh.auto.tfvars",
        "modules/node/main.tf",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.ends_with(&format!("terraform/{f}"))),
            "{f}: {stdout}"
        );
    }
}

/// Asserts exit 2 and that one line of stdout is `FILE<sep>…PATH…WORDS`.
fn refused(yaml: &str, path: &str, words: &str) {
    let (code, stdout, file) = render_yaml(yaml);
    assert_eq!(code, 2, "{stdout}");
    assert!(
        stdout.lines().any(|l| l.starts_with(&file)
            && l.contains(&format!(" {path}: "))
            && l.contains(words)),
        "no line naming {path} with {words:?}:\n{stdout}"
    );
    assert!(stdout.lines().all(|l| l.starts_with(&file)), "{stdout}");
}

#[test]
fn an_edge_without_a_public_address_is_refused() {
    // A private address: clients on the internet cannot reach it.
    refused(
        &example().replace("198.51.100.11", "10.1.2.3"),
        "edges[0].public_ip",
        "not a public address",
    );
    // No address at all: the topology itself is invalid, reported as
    // `topology check` does — a YAML schema error has a position (inside
    // the first edge) rather than a path.
    let yaml = example().replacen("    public_ip: 198.51.100.11\n", "", 1);
    let (code, stdout, file) = render_yaml(&yaml);
    assert_eq!(code, 2, "{stdout}");
    let first = yaml
        .lines()
        .position(|l| l == "  - id: edge-us-east-1")
        .unwrap()
        + 1;
    let line: usize = stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{file}:"))?
                .split(':')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no positioned error: {stdout}"));
    assert!(
        (first..first + 8).contains(&line),
        "line {line}, edge at {first}: {stdout}"
    );
    assert!(
        stdout.contains("error: missing field `public_ip`"),
        "{stdout}"
    );
}

#[test]
fn a_region_without_a_provider_region_is_refused() {
    refused(
        &example().replace("provider_region: us-west-2", "provider_region: \"\""),
        "regions[1].provider_region",
        "must not be empty",
    );
    refused(
        &example().replace("provider_region: us-west-2", "provider_region: oregon"),
        "regions[1].provider_region",
        "not an AWS region name",
    );
}

#[test]
fn two_selectors_are_refused() {
    let yaml = example();
    let cut = yaml.find("  - id: sel-ap-northeast").unwrap();
    refused(&yaml[..cut], "selectors", "2 selectors");
}

#[test]
fn every_problem_gets_its_own_line() {
    let yaml = example()
        .replace("198.51.100.11", "10.1.2.3")
        .replace("provider_region: eu-west-2", "provider_region: london");
    let (code, stdout, file) = render_yaml(&yaml);
    assert_eq!(code, 2);
    let errors: Vec<&str> = stdout.lines().filter(|l| l.contains(": error: ")).collect();
    assert_eq!(errors.len(), 2, "{stdout}");
    assert!(
        errors[0].contains(" regions[3].provider_region: "),
        "{stdout}"
    );
    assert!(errors[1].contains(" edges[0].public_ip: "), "{stdout}");
    assert!(
        stdout.ends_with(&format!("{file}: cannot be deployed: 2 error(s)\n")),
        "{stdout}"
    );
}
