//! The lab's emulated WAN (`OctoConfig::wan`): each side holds its
//! datagrams for the one-way delay, and the link's own RTT measurements
//! (Ping/Pong and QUIC's estimate) see the sum.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use geomesh_mesh::link::LinkEvent;
use geomesh_mesh::transport::{OctoEvent, OctoNode, WanDelays};

/// A loopback address whose port was free a moment ago.
fn free_addr() -> SocketAddr {
    std::net::UdpSocket::bind(loopback())
        .unwrap()
        .local_addr()
        .unwrap()
}

async fn start(
    tls: &geomesh_core::topology::TlsSettings,
    id: &str,
    bind: SocketAddr,
    to: SocketAddr,
    one_way: Duration,
) -> (OctoNode, tokio::sync::mpsc::Receiver<OctoEvent>) {
    let mut c = config(tls, id, bind);
    let mut wan = WanDelays::new();
    wan.set(to, one_way);
    c.wan = Some(wan);
    // The emulated path is long: give the handshake and Pongs room.
    c.idle_timeout = Duration::from_secs(5);
    c.link.ping_timeout = Duration::from_secs(2);
    for _ in 0..100 {
        match OctoNode::start(c.clone()).await {
            Ok(n) => return n,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    panic!("port {bind} never came free");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_measures_both_one_way_delays_of_the_emulated_wan() {
    let dir = tempfile::tempdir().unwrap();
    let tls = cluster(dir.path());
    let (pa, pb) = (free_addr(), free_addr());
    // 30 ms one way from edge-1, 50 ms back: an 80 ms round trip.
    let (a, mut a_rx) = start(&tls, "edge-1", pa, pb, Duration::from_millis(30)).await;
    let (b, _b_rx) = start(&tls, "edge-2", pb, pa, Duration::from_millis(50)).await;
    let ab = a.connect(edge("edge-2"), pb);
    b.connect(edge("edge-1"), pa);
    wait_up(&mut a_rx, "edge-2").await;
    // Five Ping/Pong samples (one per 200 ms), bounded by wait_for's guard.
    let mut rtts = Vec::new();
    while rtts.len() < 5 {
        if let OctoEvent::Link {
            event: LinkEvent::Rtt(rtt),
            ..
        } = wait_for(&mut a_rx, "an RTT sample", |e| {
            is_link(e, |l| matches!(l, LinkEvent::Rtt(_)))
        })
        .await
        {
            rtts.push(rtt);
        }
    }
    rtts.sort();
    let median = rtts[2].as_secs_f64() * 1000.0;
    assert!(
        (72.0..=88.0).contains(&median),
        "Ping/Pong RTT {median:.1} ms, samples {rtts:?}: the emulated 80 ms ± 10 %"
    );
    let quic = ab.quic_rtt().unwrap().as_secs_f64() * 1000.0;
    assert!(
        (72.0..=88.0).contains(&quic),
        "QUIC's RTT estimate {quic:.1} ms: the emulated 80 ms ± 10 %"
    );
}
