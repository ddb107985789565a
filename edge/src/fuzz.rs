//! Bodies of the edge's fuzz targets, shared by cargo-fuzz
//! (`fuzz/fuzz_targets/`, nightly) and the stable test that runs them in
//! every `cargo test` (`tests/fuzz.rs`):
//!
//! - [`signaling`]: WebSocket signaling messages through the handler's own
//!   steps ([`crate::ws::admit`], [`crate::ws::on_text`]) on a real edge
//!   running in this process (media loop, `Rtc`s, the UDP socket on
//!   loopback);
//! - [`whip_whep`]: a WHIP or WHEP request body through the edge's HTTP
//!   router ([`crate::http::router`]) on that edge, ended with `DELETE`
//!   when it created a session;
//! - [`octo_rtp`]: the RTP parser of packets that arrive over octo.
//!
//! A valid join token cannot come from the fuzzer (it is signed, and the
//! handler checks it against the clock): the placeholder `$TOKEN` in an
//! input stands for a fresh token for this edge, minted per input.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use geomesh_core::token::{JoinClaims, TokenSigner};
use geomesh_core::{ConferenceId, EdgeId, ParticipantId, RegionId};
use tower::ServiceExt;

use crate::http::AppState;
use crate::messages::ClientMessage;
use crate::server::{EdgeConfig, EdgeHandle};
use crate::ws::{Step, admit, join_session, on_text};

/// Stands for a fresh valid join token in fuzz inputs.
pub const TOKEN_PLACEHOLDER: &str = "$TOKEN";

/// Separates the messages of one [`signaling`] input (never valid in JSON).
pub const MESSAGE_SEPARATOR: u8 = 0;

struct Harness {
    rt: tokio::runtime::Runtime,
    edge: EdgeHandle,
    signer: TokenSigner,
    conference: ConferenceId,
    next: AtomicU64,
}

impl Harness {
    fn get() -> &'static Harness {
        static H: OnceLock<Harness> = OnceLock::new();
        H.get_or_init(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime for the fuzz edge");
            let signer = geomesh_core::fuzz::token_signer();
            let (id, conference, _) = geomesh_core::fuzz::fuzz_ids();
            let loopback: SocketAddr = "127.0.0.1:0".parse().expect("an address");
            let config = EdgeConfig {
                id,
                region: RegionId::new("fuzz").expect("valid id"),
                media_bind: loopback,
                media_advertised: loopback,
                http_bind: loopback,
                verifier: signer.verifier(),
                dev_signer: None,
                agent: None,
                octo: None,
                access_lab: None,
                last_n: crate::lastn::LastNConfig::default(),
                media_workers: 1,
                spread_above: None,
                bwe: false,
                capacity: 1_000_000,
                max_connections: crate::limits::DEFAULT_MAX_CONNECTIONS,
                max_connections_per_address: crate::limits::DEFAULT_MAX_PER_ADDRESS,
                trusted_proxies: Vec::new(),
            };
            let edge = rt
                .block_on(crate::server::start(config))
                .expect("the fuzz edge starts on loopback");
            Harness {
                rt,
                edge,
                signer,
                conference,
                next: AtomicU64::new(0),
            }
        })
    }

    fn state(&self) -> &AppState {
        self.edge.state()
    }

    fn edge_id(&self) -> &EdgeId {
        &self.state().edge_id
    }

    /// A token nobody used, valid now for a few seconds (so the edge's
    /// per-token use table keeps only the last moments' tokens).
    fn fresh_token(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let who = ParticipantId::new(format!("f{n}")).expect("valid id");
        let mut claims = JoinClaims::new(
            self.conference.clone(),
            who,
            self.edge_id().clone(),
            SystemTime::now(),
            Duration::from_secs(2),
        );
        claims.name = Some(format!("fuzz {n}"));
        self.signer.sign(&claims)
    }

    fn with_token(&self, text: &str) -> String {
        if text.contains(TOKEN_PLACEHOLDER) {
            text.replace(TOKEN_PLACEHOLDER, &self.fresh_token())
        } else {
            text.to_string()
        }
    }
}

/// Runs one `signaling` input: messages separated by
/// [`MESSAGE_SEPARATOR`]. The first must be a `join` the edge admits, as on
/// a new socket; the others go to the joined session as they would from
/// the client. The session leaves at the end. Panics only on a bug.
pub fn signaling(data: &[u8]) {
    let h = Harness::get();
    let mut messages = data.split(|b| *b == MESSAGE_SEPARATOR);
    let Some(first) = messages.next() else {
        return;
    };
    let Ok(first) = std::str::from_utf8(first) else {
        return;
    };
    let Ok(ClientMessage::Join { token, conference }) =
        serde_json::from_str::<ClientMessage>(&h.with_token(first))
    else {
        return;
    };
    let state = h.state();
    let Ok(claims) = admit(state, &token, conference.as_ref()) else {
        return;
    };
    h.rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let joined = join_session(state, &claims, tx)
            .await
            .expect("the fuzz edge's media loop runs");
        for m in messages {
            let Ok(text) = std::str::from_utf8(m) else {
                continue;
            };
            if let Step::Leave = on_text(state, joined.key, !claims.no_publish, text).await {
                break;
            }
            // What the edge sends back serializes (the socket would send it).
            while let Ok(msg) = rx.try_recv() {
                serde_json::to_string(&msg).expect("server messages serialize");
            }
        }
        state.media.leave(joined.key).await;
    });
}

/// Runs one `whip_whep` input: the first byte picks WHIP or WHEP (bit 0)
/// and whether the request is well-formed around the body (bits 1–2: the
/// right content type, a token); the rest is the body. A created session
/// is ended with `DELETE` on its `Location`. Panics only on a bug.
pub fn whip_whep(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let h = Harness::get();
    let kind = if mode & 1 == 0 { "whip" } else { "whep" };
    let uri = format!("/v1/{kind}/{}", h.conference);
    let mut req = Request::builder().method(Method::POST).uri(uri);
    if mode & 2 == 0 {
        req = req.header(header::CONTENT_TYPE, "application/sdp");
    }
    if mode & 4 == 0 {
        req = req.header(header::AUTHORIZATION, format!("Bearer {}", h.fresh_token()));
    }
    let peer: SocketAddr = "127.0.0.1:40000".parse().expect("an address");
    let req = req
        .extension(ConnectInfo(peer))
        .body(Body::from(body.to_vec()))
        .expect("a request");
    let app = crate::http::router(h.state().clone());
    h.rt.block_on(async {
        let res = app.clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        assert!(
            status != StatusCode::INTERNAL_SERVER_ERROR,
            "the handler failed on a body"
        );
        if status == StatusCode::CREATED {
            let location = res
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .expect("a created session has a Location")
                .to_string();
            let del = Request::builder()
                .method(Method::DELETE)
                .uri(location)
                .extension(ConnectInfo(peer))
                .body(Body::empty())
                .expect("a request");
            let res = app.oneshot(del).await.expect("infallible");
            assert_eq!(res.status(), StatusCode::OK, "DELETE of a created session");
        }
    });
}

/// Runs one `octo_rtp` input: what parses re-encodes to a packet that
/// parses the same. Panics only on a bug.
pub fn octo_rtp(data: &[u8]) {
    if let Ok(p) = crate::rtp::parse(data) {
        let mut again = Vec::new();
        crate::rtp::write(&p, &mut again);
        assert_eq!(crate::rtp::parse(&again).as_ref(), Ok(&p));
    }
}

/// Seed corpora: `(target, file name, bytes)`.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let offer = include_str!("fuzz_offer.sdp").replace('\n', "\r\n");
    let recvonly = offer.replace("a=sendrecv", "a=recvonly");
    let join = format!(r#"{{"type":"join","token":"{TOKEN_PLACEHOLDER}"}}"#);
    let msgs = |rest: &[String]| {
        let mut v = join.clone().into_bytes();
        for m in rest {
            v.push(MESSAGE_SEPARATOR);
            v.extend_from_slice(m.as_bytes());
        }
        v
    };
    let offer_msg = serde_json::json!({"type": "offer", "sdp": offer}).to_string();
    let answer_msg = serde_json::json!({"type": "answer", "sdp": recvonly}).to_string();
    out.push(("signaling", "join-only".into(), msgs(&[])));
    out.push((
        "signaling",
        "join-offer".into(),
        msgs(std::slice::from_ref(&offer_msg)),
    ));
    out.push((
        "signaling",
        "join-offer-twice-answer".into(),
        msgs(&[offer_msg.clone(), offer_msg.clone(), answer_msg]),
    ));
    out.push((
        "signaling",
        "join-controls".into(),
        msgs(&[
            r#"{"type":"mute","kind":"video","muted":true}"#.into(),
            r#"{"type":"video_constraints","last_n":2,"pinned":["bob"],"max_height":180}"#.into(),
            r#"{"type":"video_constraints","max_height":180,"max_heights":{"bob":720,"eve":0}}"#
                .into(),
            r#"{"type":"ping"}"#.into(),
            r#"{"type":"join","token":"x"}"#.into(),
            r#"{"type":"leave"}"#.into(),
        ]),
    ));
    out.push((
        "signaling",
        "join-conference".into(),
        format!(r#"{{"type":"join","token":"{TOKEN_PLACEHOLDER}","conference":"standup"}}"#)
            .into_bytes(),
    ));
    for (mode, name) in [
        (0u8, "whip"),
        (1, "whep"),
        (2, "whip-no-type"),
        (5, "whep-no-token"),
    ] {
        let mut v = vec![mode];
        v.extend_from_slice(offer.as_bytes());
        out.push(("whip_whep", name.into(), v));
    }
    let mut v = vec![1u8];
    v.extend_from_slice(recvonly.as_bytes());
    out.push(("whip_whep", "whep-recvonly".into(), v));
    // An audio packet with an RFC 6464 level, and a video packet without.
    for (name, pt, level) in [("audio-level", 111, Some((-30, true))), ("video", 96, None)] {
        let p = crate::rtp::OctoRtp {
            pt,
            marker: true,
            seq: 65535,
            ts: 0xdead_beef,
            ssrc: 0x1234_5678,
            audio_level: level,
            payload: std::sync::Arc::from(&b"\x90\xe0\x80\x01payload"[..]),
        };
        let mut b = Vec::new();
        crate::rtp::write(&p, &mut b);
        out.push(("octo_rtp", name.into(), b));
    }
    // Extensions octo packets do not carry (two-byte, padding, another id)
    // and a bare header.
    let header = [0x90u8, 0x6f, 0, 1, 0, 0, 0, 9, 0, 0, 0, 7];
    for (name, ext) in [
        (
            "two-byte-extension",
            &[0x10u8, 0x00, 0, 1, 1, 1, 0x55, 0][..],
        ),
        (
            "padded-level",
            &[0xbe, 0xde, 0, 2, 0, 0, 0x10, 0x9e, 0, 0, 0, 0],
        ),
        ("other-extension", &[0xbe, 0xde, 0, 1, 0x31, 1, 2, 0]),
    ] {
        let mut b = header.to_vec();
        b.extend_from_slice(ext);
        b.extend_from_slice(b"opus");
        out.push(("octo_rtp", name.into(), b));
    }
    out.push((
        "octo_rtp",
        "bare-header".into(),
        vec![0x80, 0x60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    ));
    out
}
