//! Who may link: certificates from another CA, a Hello that lies about its
//! id, a selector certificate, and garbage on the octo port.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use common::*;
use geomesh_core::RegionId;
use geomesh_mesh::link::{LinkError, LinkEvent, close_code};
use geomesh_mesh::tls::{Credentials, IdentityError};
use geomesh_mesh::transport::{OctoEvent, OctoNode, TransportError};
use geomesh_mesh::wire::{Capabilities, ControlFrame, Hello, MediaType, SourceId, Subscription};
use quinn::crypto::rustls::QuicClientConfig;

/// A bare quinn client with the given credentials: not an `OctoNode`, so it
/// can misbehave.
async fn raw_connect(
    creds: &Credentials,
    server: SocketAddr,
    server_name: &str,
) -> (
    quinn::Endpoint,
    Result<quinn::Connection, quinn::ConnectionError>,
) {
    let tls = geomesh_mesh::tls::client_config(creds).unwrap();
    let quic = QuicClientConfig::try_from(tls).unwrap();
    let cfg = quinn::ClientConfig::new(Arc::new(quic));
    let ep = quinn::Endpoint::client(loopback()).unwrap();
    let conn = ep.connect_with(cfg, server, server_name).unwrap().await;
    (ep, conn)
}

fn hello(edge_id: &str, version: u64) -> BytesMut {
    let mut b = BytesMut::new();
    ControlFrame::Hello(Hello {
        version,
        edge: edge(edge_id),
        region: RegionId::new("eu").unwrap(),
        capabilities: Capabilities::ALL,
    })
    .encode(&mut b)
    .unwrap();
    b
}

/// Sends a Hello on a fresh control stream and returns how the node closed
/// the connection.
async fn close_after_hello(
    tls: &geomesh_core::topology::TlsSettings,
    as_edge: &str,
    server: SocketAddr,
    hello_bytes: &[u8],
) -> quinn::ConnectionError {
    let creds = Credentials::load(tls, as_edge).unwrap();
    let (_ep, conn) = raw_connect(&creds, server, "edge-2").await;
    let conn = conn.expect("a valid edge certificate completes the handshake");
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    send.write_all(hello_bytes).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), conn.closed())
        .await
        .expect("the node closes the connection")
}

fn app_code(e: &quinn::ConnectionError) -> Option<u64> {
    match e {
        quinn::ConnectionError::ApplicationClosed(c) => Some(c.error_code.into_inner()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_that_contradicts_the_certificate_closes_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let tls = cluster(dir.path());
    let (b, mut b_rx) = node(&tls, "edge-2", loopback()).await;
    // Certificate says edge-1, Hello says edge-3.
    let closed =
        close_after_hello(&tls, "edge-1", b.local_addr().unwrap(), &hello("edge-3", 1)).await;
    assert_eq!(
        app_code(&closed),
        Some(close_code::IDENTITY.into()),
        "{closed}"
    );
    let failed = wait_for(&mut b_rx, "identity failure", |e| {
        is_link(e, |l| matches!(l, LinkEvent::Failed(_)))
    })
    .await;
    let OctoEvent::Link { peer, event } = failed else {
        unreachable!()
    };
    assert_eq!(peer, edge("edge-1"), "the id comes from the certificate");
    assert_eq!(
        event,
        LinkEvent::Failed(LinkError::IdentityMismatch {
            certificate: edge("edge-1"),
            hello: edge("edge-3"),
        })
    );
    assert!(!b.link(&edge("edge-1")).unwrap().is_up());
    // No Up was ever reported.
    assert!(
        !drain(&mut b_rx)
            .iter()
            .any(|e| is_link(e, |l| matches!(l, LinkEvent::Up { .. })))
    );

    // Another protocol version: a typed close too.
    let closed =
        close_after_hello(&tls, "edge-3", b.local_addr().unwrap(), &hello("edge-3", 9)).await;
    assert_eq!(
        app_code(&closed),
        Some(close_code::VERSION.into()),
        "{closed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selector_certificate_is_not_an_edge() {
    let dir = tempfile::tempdir().unwrap();
    let tls = cluster(dir.path());
    let (b, mut b_rx) = node(&tls, "edge-2", loopback()).await;
    let sel = Credentials::load(&tls, "sel-1").unwrap();
    let (_ep, conn) = raw_connect(&sel, b.local_addr().unwrap(), "edge-2").await;
    // TLS 1.3: the client may finish before the server checks its
    // certificate; either way the connection does not survive.
    if let Ok(conn) = conn {
        let closed = tokio::time::timeout(Duration::from_secs(10), conn.closed())
            .await
            .unwrap();
        assert!(
            app_code(&closed).is_none(),
            "refused in the handshake: {closed}"
        );
    }
    let rejected = wait_for(&mut b_rx, "rejection", |e| {
        matches!(e, OctoEvent::Rejected { .. })
    })
    .await;
    let OctoEvent::Rejected { reason, .. } = rejected else {
        unreachable!()
    };
    assert!(reason.contains("NotAnEdge(\"selector sel-1\")"), "{reason}");
    assert_eq!(b.rejected_connections(), 1);
    assert!(b.links().is_empty());

    // And a node cannot even start as an edge with it.
    let mut c = config(&tls, "edge-2", loopback());
    c.credentials = sel;
    assert!(matches!(
        OctoNode::start(c).await,
        Err(TransportError::Identity(IdentityError::NotAnEdge(_)))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_from_another_ca_is_refused_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let tls = cluster(&dir.path().join("ours"));
    let other = cluster(&dir.path().join("theirs"));
    let (a, mut a_rx) = node(&tls, "edge-1", loopback()).await;
    let (x, mut x_rx) = node(&other, "edge-2", loopback()).await;
    // a dials x (a's verifier refuses x's server certificate); x, the higher
    // id, dials a after its delay (a's verifier refuses x's client certificate).
    let ax = a.connect(edge("edge-2"), x.local_addr().unwrap());
    x.connect(edge("edge-1"), a.local_addr().unwrap());
    let mut reasons = Vec::new();
    for _ in 0..2 {
        let r = wait_for(&mut a_rx, "rejection on a", |e| {
            matches!(e, OctoEvent::Rejected { .. })
        })
        .await;
        let OctoEvent::Rejected { reason, .. } = r else {
            unreachable!()
        };
        reasons.push(reason);
    }
    assert!(
        reasons.iter().any(|r| r.contains("edge-2: handshake")),
        "{reasons:?}"
    );
    assert!(a.rejected_connections() >= 2);
    wait_for(&mut x_rx, "rejection on x", |e| {
        matches!(e, OctoEvent::Rejected { .. })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!ax.is_up());
    for e in drain(&mut a_rx).iter().chain(drain(&mut x_rx).iter()) {
        assert!(!is_link(e, |l| matches!(l, LinkEvent::Up { .. })), "{e:?}");
    }
}

/// xorshift64*: deterministic garbage.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_octo_port_does_not_disturb_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let tls = cluster(dir.path());
    let (a, mut a_rx) = node(&tls, "edge-1", loopback()).await;
    let (b, mut b_rx) = node(&tls, "edge-2", loopback()).await;
    let b_addr = b.local_addr().unwrap();
    let ab = a.connect(edge("edge-2"), b_addr);
    b.connect(edge("edge-1"), a.local_addr().unwrap());
    ab.open_conference(&conf("c")).await.unwrap();
    ab.add_source(&conf("c"), SourceId(1), audio("x", 7))
        .await
        .unwrap();
    wait_for(&mut b_rx, "source", |e| {
        is_link(e, |l| matches!(l, LinkEvent::SourceAdded(_)))
    })
    .await;
    b.link(&edge("edge-1"))
        .unwrap()
        .subscribe(SourceId(1), Subscription::BEST)
        .await
        .unwrap();
    wait_for(&mut a_rx, "subscribed", |e| {
        is_link(e, |l| matches!(l, LinkEvent::Subscribed { .. }))
    })
    .await;

    // Media every millisecond from a to b, while garbage hits b's port.
    let sender = {
        let ab = ab.clone();
        tokio::spawn(async move {
            for seq in 0..1500u16 {
                let _ = ab.send_media(SourceId(1), MediaType::Rtp, 0, &rtp(7, seq, 300));
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let garbage = tokio::task::spawn_blocking(move || {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for i in 0..3000 {
            let len = 1 + (rng.next() % 1400) as usize;
            let mut buf: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            match i % 3 {
                // Looks like a QUIC long header (Initial, version 1).
                0 if len > 6 => {
                    buf[0] = 0xc0 | (buf[0] & 0x0f);
                    buf[1..5].copy_from_slice(&1u32.to_be_bytes());
                }
                // Looks like a short header for some connection.
                1 => buf[0] = 0x40 | (buf[0] & 0x3f),
                _ => {}
            }
            let _ = sock.send_to(&buf, b_addr);
        }
    });
    garbage.await.unwrap();
    let is_down = |e: &OctoEvent| {
        is_link(e, |l| {
            matches!(l, LinkEvent::Down { .. } | LinkEvent::Failed(_))
        })
    };
    let mut downs = drain(&mut b_rx).iter().filter(|e| is_down(e)).count();
    // Media keeps arriving after the garbage.
    let mut after = 0;
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(e) = b_rx.recv().await {
            match e {
                OctoEvent::Media(_) => {
                    after += 1;
                    if after >= 300 {
                        return;
                    }
                }
                e if is_down(&e) => downs += 1,
                _ => {}
            }
        }
    })
    .await;
    sender.abort();
    assert!(after >= 300, "only {after} packets after the garbage");
    assert_eq!(downs, 0);
    let m = ab.metrics();
    assert_eq!(m.connections, 1);
    assert!(ab.is_up());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_of_the_ca_that_the_cluster_does_not_list_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tls = cluster(dir.path());
    let (a, mut a_rx) = node(&tls, "edge-1", loopback()).await;
    let (c, _c_rx) = node(&tls, "edge-3", loopback()).await;
    // The cluster lists edge-1 and edge-2 only (edge-3 was removed).
    a.allow_edges([edge("edge-1"), edge("edge-2")]);
    // edge-3 is the higher id: it dials a after its delay.
    let ca = c.connect(edge("edge-1"), a.local_addr().unwrap());
    let r = wait_for(&mut a_rx, "rejection", |e| {
        matches!(e, OctoEvent::Rejected { .. })
    })
    .await;
    let OctoEvent::Rejected { reason, .. } = r else {
        unreachable!()
    };
    assert!(reason.starts_with("unknown edge edge-3"), "{reason}");
    assert!(a.link(&edge("edge-3")).is_none(), "no link was made");
    assert!(!ca.is_up());
    // Listed again: it links.
    a.allow_edges([edge("edge-1"), edge("edge-2"), edge("edge-3")]);
    wait_for(&mut a_rx, "link up", |e| {
        is_link(e, |l| matches!(l, LinkEvent::Up { .. }))
    })
    .await;
}
