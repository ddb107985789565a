use std::path::Path;

use super::*;

const GOOD: &str = r#"
version: 1
cluster:
  name: test
tls:
  dir: certs
access:
  mode: open
regions:
  - id: eu
    name: Frankfurt
    location: { lat: 50.11, lon: 8.68 }
    provider: aws
    provider_region: eu-central-1
  - id: us
    name: Virginia
    location: { lat: 39.04, lon: -77.49 }
    provider: aws
    provider_region: us-east-1
edges:
  - id: edge-eu-1
    region: eu
    public_ip: 127.0.0.1
    media_port: 10000
    http: 127.0.0.1:8081
    octo: 127.0.0.1:4431
    capacity: 100
  - id: edge-us-1
    region: us
    public_ip: 127.0.0.1
    media_port: 10001
    http: 127.0.0.1:8082
    octo: 127.0.0.1:4432
    capacity: 100
selectors:
  - id: sel-1
    region: eu
    api: 127.0.0.1:7001
    raft: 127.0.0.1:7101
geoip:
  overrides:
    - cidr: 10.1.0.0/16
      region: us
    - cidr: 10.2.0.0/16
      location: { lat: 1.5, lon: 2.5 }
"#;

fn parse(y: &str) -> Result<Loaded, TopologyError> {
    Topology::parse(y, Path::new("/etc/geomesh"))
}

fn errors(y: &str) -> Vec<String> {
    parse(y)
        .unwrap_err()
        .diagnostics()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn good_topology_loads_with_defaults() {
    let l = parse(GOOD).unwrap();
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let t = l.topology;
    assert_eq!(t.policy.max_edges_per_conference, 4);
    assert_eq!(t.policy.heartbeat_interval, Duration::from_secs(1));
    assert_eq!(t.policy.health_timeout, Duration::from_secs(3));
    assert_eq!(t.tls.dir, Path::new("/etc/geomesh/certs"));
    assert_eq!(t.edges[0].ws_url(), "ws://127.0.0.1:8081/v1/rtc");
    assert_eq!(t.edges[1].media_advertised().to_string(), "127.0.0.1:10001");
    assert_eq!(t.edges[0].bind_ip.to_string(), "0.0.0.0");
    // A selector binds its addresses as written unless told otherwise.
    assert_eq!(
        t.selectors[0].bind(t.selectors[0].api).to_string(),
        "127.0.0.1:7001"
    );
    // A region-only override takes the region's location.
    assert_eq!(
        t.geoip.overrides[0].location,
        GeoPoint {
            lat: 39.04,
            lon: -77.49
        }
    );
    assert_eq!(t.geoip.overrides[0].region.as_ref().unwrap().as_str(), "us");
    assert_eq!(t.geoip.overrides[1].region, None);
}

#[test]
fn selector_bind_ip_replaces_the_address_keeps_the_port() {
    let y = GOOD.replace(
        "raft: 127.0.0.1:7101",
        "raft: 127.0.0.1:7101\n    bind_ip: 0.0.0.0",
    );
    let s = &parse(&y).unwrap().topology.selectors[0];
    assert_eq!(s.bind(s.api).to_string(), "0.0.0.0:7001");
    assert_eq!(s.bind(s.raft).to_string(), "0.0.0.0:7101");
}

#[test]
fn semantic_errors_carry_path_and_position() {
    let y = GOOD.replace(
        "    region: us\n    public_ip",
        "    region: eu-wst\n    public_ip",
    );
    let e = errors(&y);
    // The region left without edges is also reported, as a warning.
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].starts_with("15:9: warning: regions[1]"), "{e:?}");
    assert_eq!(
        e[1],
        "29:13: error: edges[1].region: unknown region \"eu-wst\" (known: eu, us)"
    );
}

#[test]
fn syntax_errors_carry_position() {
    let e = errors("version: 1\ncluster: [\n");
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("3:1: error:") || e[0].starts_with("2:"),
        "{e:?}"
    );
    let e = errors(&GOOD.replace(
        "capacity: 100\n  - id: edge-us-1",
        "capacity: lots\n  - id: edge-us-1",
    ));
    assert_eq!(e, ["27:15: error: invalid u32"]);
}

#[test]
fn several_errors_are_all_reported_in_file_order() {
    let y = GOOD
        .replace("lat: 50.11", "lat: 150.11")
        .replace("http: 127.0.0.1:8082", "http: 127.0.0.1:8081");
    let e = errors(&y);
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].contains("regions[0].location: latitude 150.11"),
        "{e:?}"
    );
    assert!(
        e[1].contains("edges[1].http: tcp port 8081 on 127.0.0.1 is already used by edges[0].http"),
        "{e:?}"
    );
}

#[test]
fn edgeless_region_is_a_warning() {
    let y = GOOD.replace(
        "selectors:",
        "  - id: edge-eu-2\n    region: eu\n    public_ip: 127.0.0.1\n    media_port: 10002\n    http: 127.0.0.1:8083\n    octo: 127.0.0.1:4433\n    capacity: 10\nselectors:",
    )
    .replace("region: us\n    public_ip: 127.0.0.1\n    media_port: 10001", "region: eu\n    public_ip: 127.0.0.1\n    media_port: 10001");
    let l = parse(&y).unwrap();
    assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
    assert!(
        l.warnings[0]
            .to_string()
            .contains("warning: regions[1]: region \"us\" has no edges")
    );
}

#[test]
fn access_keys_are_checked_and_missing_keys_warned() {
    let with = |access: &str| GOOD.replace("access:\n  mode: open\n", access);
    let l = parse(&with(
        "access:\n  keys:\n    - { id: app-1, secret_file: s/app.secret }\n    - { id: app-2, public_key_file: k/app.pub }\n  operator_token_file: op.token\n",
    ))
    .unwrap();
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let a = l.topology.access;
    assert_eq!(a.mode, AccessMode::Grants, "grants by default");
    assert_eq!(a.keys.len(), 2);
    assert!(
        matches!(&a.keys[0].material, KeyMaterial::Secret(p) if p == Path::new("/etc/geomesh/s/app.secret"))
    );
    assert_eq!(
        a.operator_token_file.as_deref(),
        Some(Path::new("/etc/geomesh/op.token"))
    );
    // No access section at all: grants with no key — nobody can join.
    let l = parse(&with("")).unwrap();
    assert_eq!(l.topology.access.mode, AccessMode::Grants);
    assert!(
        l.warnings
            .iter()
            .any(|w| w.to_string().contains("no application key")),
        "{:?}",
        l.warnings
    );
    for (bad, want) in [
        ("    - { id: app-1 }\n", "exactly one of secret_file"),
        (
            "    - { id: app-1, secret_file: a, public_key_file: b }\n",
            "exactly one of secret_file",
        ),
        ("    - { id: 'a b', secret_file: a }\n", "letters, digits"),
        (
            "    - { id: app-1, secret_file: a }\n    - { id: app-1, secret_file: b }\n",
            "appears twice",
        ),
    ] {
        let e = errors(&with(&format!("access:\n  keys:\n{bad}")));
        assert!(e.iter().any(|x| x.contains(want)), "{bad}: {e:?}");
    }
    let e = errors(&with("access:\n  mode: closed\n"));
    assert_eq!(e.len(), 1, "{e:?}");
}

#[test]
fn recorders_are_checked_like_nodes_and_change_the_hash() {
    let rec = "recorders:\n  - { id: rec-1, region: eu, http: 127.0.0.1:7201, octo: 127.0.0.1:4441, capacity: 5 }\n";
    let without = parse(GOOD).unwrap().topology;
    assert!(without.recorders.is_empty());
    let t = parse(&format!("{GOOD}{rec}")).unwrap().topology;
    let r = t.recorder(&EdgeId::new("rec-1").unwrap()).unwrap();
    assert_eq!((r.capacity, r.bind_ip.to_string()), (5, "0.0.0.0".into()));
    assert_ne!(t.hash(), without.hash());
    // An id another node has, an unknown region, a port an edge holds, no
    // capacity, an unknown key: each reported where it is.
    let bad = "recorders:\n  - { id: edge-eu-1, region: mars, http: 127.0.0.1:8081, octo: 127.0.0.1:4441, capacity: 0 }\n";
    let e = errors(&format!("{GOOD}{bad}"));
    let text = e.join("\n");
    for want in [
        "recorders[0].id: duplicate id \"edge-eu-1\"",
        "recorders[0].region: unknown region \"mars\"",
        "recorders[0].http",
        "recorders[0].capacity: must be at least 1",
    ] {
        assert!(text.contains(want), "{want:?} not in {e:?}");
    }
    let typo = "recorders:\n  - { id: rec-1, region: eu, http: 127.0.0.1:7201, octo: 127.0.0.1:4441, capacity: 5, out: /x }\n";
    assert!(errors(&format!("{GOOD}{typo}")).join("\n").contains("out"));
}
