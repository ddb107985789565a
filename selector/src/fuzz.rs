//! Bodies of the selector's fuzz targets, shared by cargo-fuzz
//! (`fuzz/fuzz_targets/`, nightly) and the stable test that runs them in
//! every `cargo test` (`tests/fuzz.rs`). Both drive a real one-node
//! selector running in this process (Raft on redb, credentials from
//! [`geomesh_core::credentials::init`], grants mode with the fuzz
//! application keys of [`geomesh_core::fuzz`]):
//!
//! - [`api_bodies`]: a request body through the public API router
//!   ([`crate::api::router`]: join, drain) or the internal one
//!   ([`crate::internal::router`]: the edge agent's register, heartbeat,
//!   participant report and leave, the operator's remove-edge; a
//!   recording's start, a recorder's heartbeat), with the
//!   caller identity its mutual TLS would give; Raft RPC and forwarded
//!   write bodies, which only selectors of the cluster may send, are
//!   parsed as the handlers parse them but not applied;
//! - [`dns_query`]: a DNS message through [`crate::dns::GeoDns::answer`],
//!   what the GeoDNS socket does with every packet.
//!
//! Placeholders stand for what a fuzzer cannot forge: `$REJOIN` in a body
//! is a fresh rejoin secret of participant `alice` of `standup`, and a mode
//! bit attaches a fresh valid grant for them.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use geomesh_core::credentials::Role;
use geomesh_core::grant::{GrantClaims, GrantSigner};
use geomesh_core::token::Rights;
use geomesh_core::topology::{TlsSettings, Topology};
use geomesh_core::{ConferenceId, ParticipantId, SelectorId};
use hickory_server::net::xfer::Protocol;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use tower::ServiceExt;

use crate::dns::GeoDns;
use crate::internal::Caller;
use crate::node::{RunningSelector, Shared};
use crate::raft::{NodeId, TypeConfig};
use crate::state::Op;
use crate::tls::Peer;

/// Stands for a fresh rejoin secret of `alice` in `standup`.
pub const REJOIN_PLACEHOLDER: &str = "$REJOIN";

struct Harness {
    rt: tokio::runtime::Runtime,
    node: RunningSelector,
    dns: GeoDns,
    operator_token: String,
    grant_signer: GrantSigner,
    /// When the harness last heartbeated its edges.
    beat: std::sync::Mutex<Option<std::time::Instant>>,
}

const HS_SECRET_FILE: &str = "app.secret";

impl Harness {
    fn get() -> &'static Harness {
        static H: OnceLock<Harness> = OnceLock::new();
        H.get_or_init(Harness::start)
    }

    fn start() -> Harness {
        // Raft appends fsync: on a RAM disk where there is one.
        let root = ["/dev/shm", "/tmp"]
            .iter()
            .map(std::path::Path::new)
            .find(|p| p.is_dir())
            .map_or_else(std::env::temp_dir, |p| p.to_path_buf())
            .join(format!("geomesh-fuzz-selector-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("a scratch directory");
        let secret = b"fuzz-application-secret-of-32-bytes!";
        let port = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free loopback port")
                .port()
        };
        let (api, raft, dns) = (port(), port(), port());
        std::fs::write(root.join(HS_SECRET_FILE), secret).expect("writing the fuzz secret");
        let yaml = format!(
            "version: 1\ncluster: {{ name: fuzz, domain: meet.fuzz.example }}\n\
             tls: {{ dir: certs }}\n\
             access: {{ mode: grants, keys: [ {{ id: app-hs, secret_file: {HS_SECRET_FILE} }} ], operator_token_file: certs/operator.token }}\n\
             regions:\n\
             \x20 - {{ id: eu, name: Frankfurt, location: {{ lat: 50.1, lon: 8.7 }}, provider: local, provider_region: x }}\n\
             \x20 - {{ id: us, name: Virginia, location: {{ lat: 38.9, lon: -77.0 }}, provider: local, provider_region: y }}\n\
             edges:\n\
             \x20 - {{ id: edge-1, region: eu, public_ip: 127.0.0.1, http: 127.0.0.1:1, octo: 127.0.0.1:2, capacity: 1000000 }}\n\
             \x20 - {{ id: edge-2, region: us, public_ip: \"::2\", http: 127.0.0.1:3, octo: 127.0.0.1:4, capacity: 1000000 }}\n\
             selectors:\n\
             \x20 - {{ id: sel-1, region: eu, api: 127.0.0.1:{api}, raft: 127.0.0.1:{raft}, dns: 127.0.0.1:{dns} }}\n\
             recorders:\n\
             \x20 - {{ id: rec-1, region: us, http: 127.0.0.1:5, octo: 127.0.0.1:6, capacity: 1000000 }}\n"
        );
        let topology = Topology::parse(&yaml, &root)
            .expect("the fuzz topology is valid")
            .topology;
        let certs = root.join("certs");
        geomesh_core::credentials::init(&topology, &certs, true, SystemTime::now())
            .expect("fuzz credentials");
        let operator_token = std::fs::read_to_string(certs.join("operator.token"))
            .expect("the operator token")
            .trim()
            .to_string();
        let mut cfg = crate::NodeConfig::new(
            topology,
            SelectorId::new("sel-1").expect("valid id"),
            TlsSettings { dir: certs },
            root.join("data"),
        );
        cfg.init = true;
        // Rate limits refuse after parsing; looser ones let inputs reach placement.
        cfg.join_rate_per_address = 1e9;
        cfg.join_rate_per_conference = 1e9;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime for the fuzz selector");
        let node = rt.block_on(async {
            let node = crate::start(cfg).await.expect("the fuzz selector starts");
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while !node.shared.is_leader() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the one-node fuzz cluster elects itself"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            node
        });
        let dns = GeoDns::new(node.shared.clone()).expect("the fuzz topology has a domain");
        Harness {
            rt,
            node,
            dns,
            operator_token,
            grant_signer: GrantSigner::hs256("app-hs", secret),
            beat: std::sync::Mutex::new(None),
        }
    }

    /// Registers and heartbeats the topology's two edges through the
    /// internal router, as live edges do, at most once a second: joins
    /// then reach placement. (An input may have removed or drained one:
    /// then it stays so, as in a real cluster.)
    fn keep_edges_alive(&self) {
        let mut last = self.beat.lock().expect("heartbeat lock");
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            return;
        }
        *last = Some(std::time::Instant::now());
        let shared = self.shared().clone();
        self.rt.block_on(async move {
            for edge in ["edge-1", "edge-2"] {
                let call = |path: &'static str, body: serde_json::Value| {
                    let req = Request::builder()
                        .method(Method::POST)
                        .uri(path)
                        .header(header::CONTENT_TYPE, "application/json")
                        .extension(peer(Role::Edge, edge))
                        .body(Body::from(body.to_string()))
                        .expect("a request");
                    crate::internal::router(shared.clone()).oneshot(req)
                };
                let hb = serde_json::json!({"boot_id": "fuzz-boot", "participants": 0,
                    "conferences": 0, "packet_rate": 0.0, "bitrate_bps": 0.0, "cpu": 0.1, "stress": 0.0});
                let ok = call(geomesh_core::agent::HEARTBEAT_PATH, hb.clone())
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if !ok {
                    let reg = serde_json::json!({"boot_id": "fuzz-boot"});
                    let _ = call(geomesh_core::agent::REGISTER_PATH, reg).await;
                    let _ = call(geomesh_core::agent::HEARTBEAT_PATH, hb).await;
                }
            }
            // The recorder too, so recordings can be placed.
            let req = Request::builder()
                .method(Method::POST)
                .uri(geomesh_core::agent::RECORDER_PATH)
                .header(header::CONTENT_TYPE, "application/json")
                .extension(peer(Role::Recorder, "rec-1"))
                .body(Body::from(r#"{"boot_id": "fuzz-boot"}"#))
                .expect("a request");
            let _ = crate::internal::router(shared.clone()).oneshot(req).await;
        });
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.node.shared
    }

    fn alice() -> (ConferenceId, ParticipantId) {
        let (_, conf, who) = geomesh_core::fuzz::fuzz_ids();
        (conf, who)
    }

    fn grant(&self) -> String {
        let (conf, sub) = Self::alice();
        let exp = geomesh_core::grant::unix_now() + 600;
        self.grant_signer.sign(&GrantClaims {
            sub,
            conf,
            name: None,
            publish: true,
            subscribe: true,
            exp,
            iat: None,
            nbf: None,
        })
    }

    fn rejoin_secret(&self) -> String {
        let (conf, who) = Self::alice();
        self.shared()
            .signer
            .rejoin_secret(&conf, &who, Rights::ALL, SystemTime::now())
    }
}

fn peer(role: Role, id: &str) -> Caller {
    Caller(Some(Peer {
        role,
        id: id.to_string(),
    }))
}

/// Runs one `api_bodies` input. The first byte picks the endpoint (bits
/// 0–2; with bit 4 set, the recording endpoints instead: the operator's
/// start of a recording, or a recorder's heartbeat) and, for joins,
/// whether a valid grant goes with it (bit 3); the rest is the body.
/// Panics only on a bug: a 500 answer is one.
pub fn api_bodies(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let h = Harness::get();
    let body = match std::str::from_utf8(body) {
        Ok(text) if text.contains(REJOIN_PLACEHOLDER) => text
            .replace(REJOIN_PLACEHOLDER, &h.rejoin_secret())
            .into_bytes(),
        _ => body.to_vec(),
    };
    // Bodies only cluster selectors may send: parsed, not applied.
    if mode & 7 == 7 {
        let _ = crate::internal::parse::<AppendEntriesRequest<TypeConfig>>(&body);
        let _ = crate::internal::parse::<VoteRequest<NodeId>>(&body);
        let _ = crate::internal::parse::<InstallSnapshotRequest<TypeConfig>>(&body);
        let _ = crate::internal::parse::<Vec<Op>>(&body);
        return;
    }
    h.keep_edges_alive();
    let client: SocketAddr = "198.51.100.7:40000".parse().expect("an address");
    let agent = geomesh_core::agent::REGISTER_PATH;
    let (public, path, caller) = match mode & 7 {
        _ if mode & 0x10 != 0 && mode & 1 == 0 => (true, "/v1/conferences/standup/recording", None),
        _ if mode & 0x10 != 0 => (
            false,
            geomesh_core::agent::RECORDER_PATH,
            Some(peer(Role::Recorder, "rec-1")),
        ),
        0 => (true, "/v1/join", None),
        1 => (true, "/v1/bridges/edge-2/drain", None),
        2 => (false, agent, Some(peer(Role::Edge, "edge-1"))),
        3 => (
            false,
            geomesh_core::agent::HEARTBEAT_PATH,
            Some(peer(Role::Edge, "edge-1")),
        ),
        4 => (
            false,
            geomesh_core::agent::PARTICIPANTS_PATH,
            Some(peer(Role::Edge, "edge-1")),
        ),
        // A runtime edge: registers by describing itself, or leaves.
        5 if mode & 8 == 0 => (false, agent, Some(peer(Role::Edge, "edge-3"))),
        5 => (
            false,
            geomesh_core::agent::LEAVE_PATH,
            Some(peer(Role::Edge, "edge-3")),
        ),
        _ => (
            false,
            crate::internal::admin_paths::REMOVE_EDGE,
            Some(peer(Role::Operator, geomesh_core::credentials::OPERATOR_ID)),
        ),
    };
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json")
        .extension(ConnectInfo(client));
    if mode & 7 == 0 && mode & 8 != 0 {
        req = req.header(header::AUTHORIZATION, format!("Bearer {}", h.grant()));
    }
    if mode & 7 == 1 || (mode & 0x10 != 0 && mode & 1 == 0) {
        req = req.header(
            header::AUTHORIZATION,
            format!("Bearer {}", h.operator_token),
        );
    }
    if let Some(c) = caller {
        req = req.extension(c);
    }
    let req = req.body(Body::from(body)).expect("a request");
    let shared = h.shared().clone();
    let status = h.rt.block_on(async move {
        let app = if public {
            crate::api::router(shared)
        } else {
            crate::internal::router(shared)
        };
        // Bounded: a handler that hangs on some input is a bug too.
        tokio::time::timeout(Duration::from_secs(30), app.oneshot(req))
            .await
            .expect("the handler answers within 30 s")
            .expect("infallible")
            .status()
    });
    assert!(
        status != StatusCode::INTERNAL_SERVER_ERROR,
        "the handler failed on a body"
    );
}

/// Runs one `dns_query` input: the first byte picks the transport the
/// query came over (bit 0: TCP), the rest is the DNS message. An answer
/// always parses and keeps the query's id. Panics only on a bug.
pub fn dns_query(data: &[u8]) {
    let Some((&mode, packet)) = data.split_first() else {
        return;
    };
    let h = Harness::get();
    let protocol = if mode & 1 == 0 {
        Protocol::Udp
    } else {
        Protocol::Tcp
    };
    let src: SocketAddr = "203.0.113.9:5353".parse().expect("an address");
    let Some(reply) = h.rt.block_on(h.dns.answer(packet, src, protocol)) else {
        return;
    };
    assert!(reply.len() >= 12, "an answer has a header");
    assert_eq!(reply[..2], packet[..2], "an answer keeps the query's id");
    hickory_proto::op::Message::from_vec(&reply).expect("an answer parses");
}

/// Seed corpora: `(target, file name, bytes)`.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let with = |mode: u8, body: &str| {
        let mut v = vec![mode];
        v.extend_from_slice(body.as_bytes());
        v
    };
    let mut out: Vec<(&'static str, String, Vec<u8>)> = vec![
        (
            "api_bodies",
            "join-grant".into(),
            with(
                8,
                r#"{"conference":"standup","display_name":"Alice","probes":[{"edge":"edge-1","rtt_ms":12.5},{"edge":"edge-2","rtt_ms":95}],"location":{"lat":48.8,"lon":2.3}}"#,
            ),
        ),
        (
            "api_bodies",
            "join-region".into(),
            with(
                8,
                r#"{"conference":"standup","region":"us","exclude":["edge-2"]}"#,
            ),
        ),
        (
            "api_bodies",
            "join-rejoin".into(),
            with(
                0,
                r#"{"conference":"standup","participant":"alice","rejoin_secret":"$REJOIN","exclude":["edge-1"]}"#,
            ),
        ),
        (
            "api_bodies",
            "join-no-grant".into(),
            with(0, r#"{"conference":"standup"}"#),
        ),
        ("api_bodies", "drain".into(), with(1, r#"{"migrate":true}"#)),
        (
            "api_bodies",
            "drain-cancel".into(),
            with(1, r#"{"cancel":true}"#),
        ),
        (
            "api_bodies",
            "remove-edge".into(),
            with(6, r#"{"id":"edge-3"}"#),
        ),
        (
            "api_bodies",
            "raft-vote".into(),
            with(
                7,
                r#"{"vote":{"leader_id":{"term":3,"node_id":7},"committed":false},"last_log_id":null}"#,
            ),
        ),
    ];
    let edge_bodies = [
        (
            "register",
            2u8,
            serde_json::json!({"boot_id": "fuzz-boot", "base_url": "http://127.0.0.1:9"}),
        ),
        (
            "register-runtime",
            5,
            serde_json::json!({"boot_id": "b3", "base_url": "http://127.0.0.1:9", "describe": {"region": "eu", "capacity": 50, "public_ip": "127.0.0.3"}}),
        ),
        (
            "heartbeat",
            3,
            serde_json::json!({"boot_id": "fuzz-boot", "participants": 3, "conferences": 1, "packet_rate": 900.0, "bitrate_bps": 2.5e6, "cpu": 0.2, "stress": 0.1, "links": [{"edge": "edge-2", "rtt_ms": 80.5}], "digest": 77}),
        ),
        (
            "participants-joined",
            4,
            serde_json::json!({"joined": [{"conference": "standup", "participant": "alice", "since_ms": 1}]}),
        ),
        (
            "participants-left",
            4,
            serde_json::json!({"left": [{"conference": "standup", "participant": "alice"}, {"conference": "x", "participant": "y"}]}),
        ),
        ("leave", 13, serde_json::json!({"boot_id": "b3"})),
    ];
    for (name, mode, body) in edge_bodies {
        out.push(("api_bodies", name.into(), with(mode, &body.to_string())));
    }
    // DNS: A, AAAA, NS, SOA for the zone, with and without EDNS Client
    // Subnet, a name outside the zone, and a name server's address.
    for (name, qname, qtype, ecs) in [
        ("a", "meet.fuzz.example.", 1u16, None),
        (
            "aaaa-ecs",
            "meet.fuzz.example.",
            28,
            Some([203u8, 0, 113, 0]),
        ),
        ("a-ecs", "meet.fuzz.example.", 1, Some([81, 2, 69, 0])),
        ("ns", "meet.fuzz.example.", 2, None),
        ("soa", "meet.fuzz.example.", 6, None),
        ("ns-a", "sel-1.ns.meet.fuzz.example.", 1, None),
        ("outside", "example.org.", 1, None),
        ("nxdomain", "x.meet.fuzz.example.", 1, None),
    ] {
        for tcp in [false, true] {
            let mut v = vec![u8::from(tcp)];
            v.extend_from_slice(&query(qname, qtype, ecs));
            let transport = if tcp { "tcp" } else { "udp" };
            out.push(("dns_query", format!("{name}-{transport}"), v));
        }
    }
    out
}

/// A DNS query message, with an EDNS Client Subnet option (a /24) when given.
fn query(qname: &str, qtype: u16, ecs: Option<[u8; 4]>) -> Vec<u8> {
    let mut m = vec![
        0x12,
        0x34,
        0x01,
        0x00,
        0,
        1,
        0,
        0,
        0,
        0,
        0,
        u8::from(ecs.is_some()),
    ];
    for label in qname.trim_end_matches('.').split('.') {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]); // IN
    if let Some(addr) = ecs {
        // OPT RR: root name, type 41, UDP size 1232, no flags, one option.
        m.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 11]);
        // ECS: code 8, length 7, family 1, source /24, scope 0, 3 address bytes.
        m.extend_from_slice(&[0, 8, 0, 7, 0, 1, 24, 0, addr[0], addr[1], addr[2]]);
    }
    m
}
