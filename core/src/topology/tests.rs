use std::path::Path;

use super::*;

const GOOD: &str = r#"
version: 1
cluster:
  name: test
tls:
  dir: certs
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
fn semantic_errors_carry_path_and_position() {
    let y = GOOD.replace(
        "    region: us\n    public_ip",
        "    region: eu-wst\n    public_ip",
    );
    let e = errors(&y);
    // The region left without edges is also reported, as a warning.
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].starts_with("13:9: warning: regions[1]"), "{e:?}");
    assert_eq!(
        e[1],
        "27:13: error: edges[1].region: unknown region \"eu-wst\" (known: eu, us)"
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
    assert_eq!(e, ["25:15: error: invalid u32"]);
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
