//! `geomesh deploy render` output: the example's root, and the root of the
//! example with the recorders of `fixtures/recorders.yaml`, match their
//! golden copies (`golden/example`, `golden/recorders`), rendering is
//! byte-for-byte deterministic, and topologies that cannot be deployed
//! are refused with every reason at its path.
//!
//! After an intended change: `GEOMESH_BLESS=1 cargo test -p geomesh-deploy
//! --test render` rewrites the golden copies; review their diff.

mod support;

use std::path::Path;

use geomesh_core::Topology;
use geomesh_deploy::plan::{Role, plan};
use geomesh_deploy::render::RECORDERS_TF;
use support::*;

/// The files render writes itself (the rest are copies).
const RENDERED: &[&str] = &[
    "providers.tf",
    "main.tf",
    "outputs.tf",
    "geomesh.auto.tfvars",
];

/// Compares `files` of `root` with `deploy/tests/golden/<name>`, or
/// rewrites the golden copy under GEOMESH_BLESS.
fn matches_golden(root: &Path, name: &str, files: &[&str]) {
    let golden = repo().join("deploy/tests/golden").join(name);
    let bless = std::env::var_os("GEOMESH_BLESS").is_some();
    for file in files {
        let got = std::fs::read_to_string(root.join(file)).unwrap();
        if bless {
            std::fs::create_dir_all(&golden).unwrap();
            std::fs::write(golden.join(file), &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(golden.join(file))
            .unwrap_or_else(|e| panic!("{name}/{file}: {e} (GEOMESH_BLESS=1 writes it)"));
        if got != want {
            let line = got
                .lines()
                .zip(want.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| got.lines().count().min(want.lines().count()));
            panic!(
                "{name}/{file}:{}: differs from the golden copy (GEOMESH_BLESS=1 rewrites it)\n  rendered: {:?}\n  golden:   {:?}",
                line + 1,
                got.lines().nth(line),
                want.lines().nth(line)
            );
        }
    }
}

#[test]
fn example_root_matches_the_golden_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let root = render_example(tmp.path());
    matches_golden(&root, "example", RENDERED);
    // Without recorders, no recorders file: the root is what it was before
    // recorders existed.
    assert!(!root.join(RECORDERS_TF).exists());
}

#[test]
fn root_with_recorders_matches_the_golden_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let root = render_recorders(tmp.path());
    let mut files = RENDERED.to_vec();
    files.push(RECORDERS_TF);
    matches_golden(&root, "recorders", &files);
}

fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    files_with(dir, "")
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            (rel, std::fs::read(&p).unwrap())
        })
        .collect()
}

#[test]
fn rendering_twice_gives_byte_identical_files() {
    for render in [render_example, render_recorders] {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let first = tree(&render(a.path()));
        assert_eq!(first, tree(&render(b.path())), "two directories");
        // Again over the first: same files, nothing left behind.
        assert_eq!(first, tree(&render(a.path())), "rendered over itself");
    }
}

#[test]
fn the_recorders_file_goes_when_the_recorders_go() {
    let tmp = tempfile::tempdir().unwrap();
    let root = render_recorders(tmp.path());
    assert!(root.join(RECORDERS_TF).exists());
    let with = tree(&root);
    // The same directory, the topology without its recorders: the root is
    // the example's again (it would otherwise call modules for machines
    // that are gone).
    render_topology(tmp.path(), "topology.yaml", &example());
    let other = tempfile::tempdir().unwrap();
    let plain = render_topology(other.path(), "topology.yaml", &example());
    assert_eq!(tree(&root), tree(&plain));
    assert_ne!(tree(&root), with);
    // A recorders.tf that is not ours stays.
    std::fs::write(root.join(RECORDERS_TF), "# mine\n").unwrap();
    render_topology(tmp.path(), "topology.yaml", &example());
    assert_eq!(
        std::fs::read_to_string(root.join(RECORDERS_TF)).unwrap(),
        "# mine\n"
    );
}

#[test]
fn render_leaves_the_operators_files_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let root = render_example(tmp.path());
    std::fs::write(root.join("terraform.tfvars"), "release = {}\n").unwrap();
    std::fs::write(root.join("backend.tf"), "# mine\n").unwrap();
    render_example(tmp.path());
    assert_eq!(
        std::fs::read_to_string(root.join("terraform.tfvars")).unwrap(),
        "release = {}\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("backend.tf")).unwrap(),
        "# mine\n"
    );
}

/// The deploy problems of `yaml` (which must be a valid topology), as
/// `path: message` lines.
fn problems(yaml: &str) -> Vec<String> {
    let base = Path::new("/srv/ops");
    let t = Topology::parse(yaml, base).unwrap().topology;
    match plan(&t, base) {
        Ok(_) => Vec::new(),
        Err(p) => p
            .iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect(),
    }
}

fn has(problems: &[String], path: &str, words: &str) {
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with(&format!("{path}: ")) && p.contains(words)),
        "no {path} problem saying {words:?} in {problems:#?}"
    );
}

#[test]
fn the_example_can_be_deployed() {
    assert_eq!(problems(&example()), Vec::<String>::new());
}

#[test]
fn an_edge_without_a_public_address_is_refused() {
    let y = example().replace("198.51.100.11", "10.0.0.11");
    let p = problems(&y);
    has(&p, "edges[0].public_ip", "not a public address");
    assert_eq!(p.len(), 1, "{p:#?}");
    // Two edges on one address (other ports, so the topology itself is valid).
    let y = example().replace(
        "public_ip: 198.51.100.12\n    media_port: 10000\n    http: 198.51.100.12:8080\n    octo: 198.51.100.12:4433",
        "public_ip: 198.51.100.11\n    media_port: 10001\n    http: 198.51.100.11:8081\n    octo: 198.51.100.11:4434",
    );
    has(
        &problems(&y),
        "edges[1].public_ip",
        "also edges[0].public_ip",
    );
    let y = example().replace("public_ip: 198.51.100.21", "public_ip: 2001:db8::21");
    has(&problems(&y), "edges[2].public_ip", "IPv4");
}

#[test]
fn a_region_the_modules_cannot_place_is_refused() {
    let y = example().replace("provider_region: eu-west-2", "provider_region: london");
    has(
        &problems(&y),
        "regions[3].provider_region",
        "not an AWS region name",
    );
    let y = example().replace(
        "provider: aws\n    provider_region: sa-east-1",
        "provider: hetzner\n    provider_region: fsn1",
    );
    has(
        &problems(&y),
        "regions[2].provider",
        "hetzner has no Terraform modules",
    );
}

#[test]
fn addresses_that_cannot_be_one_machines_are_refused() {
    let y = example().replace("octo: 198.51.100.11:4433", "octo: 198.51.100.99:4433");
    has(
        &problems(&y),
        "edges[0].octo",
        "not on the node's public address 198.51.100.11",
    );
    let y = example().replace(
        "public_url: https://edge-us-east-1.edges.example.com",
        "public_url: https://edge-us-east-1.edges.example.com:8080\n    bind_ip: 198.51.100.11",
    );
    let p = problems(&y);
    has(
        &p,
        "edges[0].public_url",
        "TLS terminator needs a port of its own",
    );
    has(
        &p,
        "edges[0].bind_ip",
        "Elastic IP is never on the instance's interface",
    );
}

#[test]
fn edge_names_inside_the_geodns_zone_are_refused() {
    let y = example().replace(
        "edge-eu-west-2.edges.example.com",
        "edge-eu-west-2.meet.example.com",
    );
    has(
        &problems(&y),
        "edges[7].public_url",
        "delegated to the selectors' GeoDNS",
    );
}

#[test]
fn selectors_must_bind_all_interfaces_and_serve_dns_on_53() {
    let y = example().replacen("    bind_ip: 0.0.0.0\n", "", 1);
    has(&problems(&y), "selectors[0].bind_ip", "missing");
    let y = example().replace("dns: 203.0.113.29:53", "dns: 203.0.113.29:5353");
    has(&problems(&y), "selectors[1].dns", "port 53 only");
}

#[test]
fn files_the_nodes_read_must_lie_beside_the_topology() {
    let y = example().replace("secrets/meet-app.secret", "/home/me/meet-app.secret");
    has(
        &problems(&y),
        "access.keys[0].secret_file",
        "inside its directory",
    );
    let y = example().replace("dir: certs", "dir: ../certs");
    has(&problems(&y), "tls.dir", "inside its directory");
}

#[test]
fn every_problem_is_reported_at_once() {
    let y = example()
        .replace("provider_region: eu-west-2", "provider_region: london")
        .replace("198.51.100.11", "10.0.0.11")
        .replacen("    bind_ip: 0.0.0.0\n", "", 1);
    let p = problems(&y);
    has(&p, "regions[3].provider_region", "");
    has(&p, "edges[0].public_ip", "");
    has(&p, "selectors[0].bind_ip", "");
}

#[test]
fn without_a_meeting_hostname_there_is_no_dns_to_open_or_delegate() {
    let y = example().replace("  domain: meet.example.com\n", "");
    let base = Path::new("/srv/ops");
    let t = Topology::parse(&y, base).unwrap().topology;
    let p = plan(&t, base).unwrap();
    for n in p.nodes() {
        assert!(n.ns_name.is_none(), "{}", n.id);
        assert!(n.ingress.iter().all(|r| r.from_port != 53), "{}", n.id);
        if let Some(t) = &n.terminator {
            assert_eq!(t.sites, [n.url.trim_start_matches("https://")], "{}", n.id);
        }
    }
    let files = geomesh_deploy::render::files(&p, "topology.yaml", "..").unwrap();
    let tfvars = &files
        .iter()
        .find(|(n, _)| n == "geomesh.auto.tfvars")
        .unwrap()
        .1;
    assert!(tfvars.contains("\ndomain        = \"\"\n"), "{tfvars}");
    assert!(tfvars.contains("ns_name   = \"\"\n"), "{tfvars}");
    for (name, text) in &files {
        if name.ends_with(".tf") || name.ends_with(".tfvars") {
            hcl::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}

#[test]
fn recorders_that_cannot_be_one_machine_are_refused() {
    let y = example_with_recorders().replace("http: 198.51.100.39:8095", "http: 10.0.0.39:8095");
    let p = problems(&y);
    has(&p, "recorders[0].http", "not a public address");
    has(
        &p,
        "recorders[0].octo",
        "not on the node's public address 10.0.0.39",
    );
    let y = example_with_recorders().replace(
        "http: 203.0.113.39:8095\n    octo: 203.0.113.39:4433",
        "http: 203.0.113.21:8095\n    octo: 203.0.113.21:4434",
    );
    has(
        &problems(&y),
        "recorders[1].http",
        "also edges[8].public_ip",
    );
    let y = example_with_recorders().replace(
        "capacity: 20\n    bind_ip: 0.0.0.0",
        "capacity: 20\n    bind_ip: 203.0.113.39",
    );
    let p = problems(&y);
    has(
        &p,
        "recorders[1].bind_ip",
        "Elastic IP is never on the instance's interface",
    );
    assert_eq!(p.len(), 1, "{p:#?}");
}

#[test]
fn a_recorder_gets_its_credentials_and_its_region_a_network() {
    // ap-southeast's edges moved to ap-northeast: a recorder alone there.
    let y = example_with_recorders()
        .replace(
            "region: ap-southeast\n    public_ip: 192.0.2.2",
            "region: ap-northeast\n    public_ip: 192.0.2.2",
        )
        .replace(
            "region: us-east\n    http: 198.51.100.39",
            "region: ap-southeast\n    http: 198.51.100.39",
        );
    let base = Path::new("/srv/ops");
    let t = Topology::parse(&y, base).unwrap().topology;
    let p = plan(&t, base).unwrap();
    let sydney = p.regions.iter().find(|r| r.id == "ap-southeast").unwrap();
    let roles: Vec<Role> = sydney.nodes.iter().map(|n| n.role).collect();
    assert_eq!(roles, [Role::Recorder]);
    let rec = &sydney.nodes[0];
    assert_eq!(rec.id, "rec-us-east");
    assert_eq!(rec.url, "http://198.51.100.39:8095");
    assert_eq!(
        rec.files,
        [
            "certs/ca.pem",
            "certs/nodes/rec-us-east.pem",
            "certs/nodes/rec-us-east.key",
            "certs/operator.token",
        ]
    );
    let files = geomesh_deploy::render::files(&p, "topology.yaml", "..").unwrap();
    let text = |name: &str| &files.iter().find(|(n, _)| n == name).unwrap().1;
    assert!(text("providers.tf").contains("\"ap-southeast-2\""));
    assert!(text("main.tf").contains("module \"network_ap_southeast\""));
    assert!(!text("main.tf").contains("module \"edges_ap_southeast\""));
    assert!(text(RECORDERS_TF).contains("module \"recorders_ap_southeast\""));
    // Without an operator token the recorder reads only its certificates.
    let y = y.replace("  operator_token_file: certs/operator.token\n", "");
    let t = Topology::parse(&y, base).unwrap().topology;
    let p = plan(&t, base).unwrap();
    let rec = p.nodes().find(|n| n.role == Role::Recorder).unwrap();
    assert!(
        rec.files
            .iter()
            .all(|f| f.starts_with("certs/nodes/") || f == "certs/ca.pem")
    );
}
