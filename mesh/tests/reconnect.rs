//! A peer goes away and comes back on the same port: the link returns, the
//! edge hears Down then Up, state is re-announced without churn, and media
//! resumes without anyone re-subscribing.

mod common;

use std::time::Duration;

use common::*;
use geomesh_mesh::link::LinkEvent;
use geomesh_mesh::transport::{LinkHandle, OctoEvent, OctoNode};
use geomesh_mesh::wire::{MediaType, SourceId, Subscription};
use tokio::sync::mpsc::Receiver;

/// Sends media until one packet arrives (bounded).
async fn media_arrives(
    from: &LinkHandle,
    to: &mut Receiver<OctoEvent>,
    source: SourceId,
    ssrc: u32,
) {
    let ok = tokio::time::timeout(Duration::from_secs(10), async {
        let mut seq = 0u16;
        loop {
            let _ = from.send_media(source, MediaType::Rtp, 0, &rtp(ssrc, seq, 100));
            seq = seq.wrapping_add(1);
            tokio::time::sleep(Duration::from_millis(5)).await;
            for e in drain(to) {
                if let OctoEvent::Media(m) = e
                    && m.source.id == source
                {
                    return;
                }
            }
        }
    })
    .await;
    assert!(ok.is_ok(), "media never arrived");
}

/// `publisher` announces conference `c` with one audio source, 42.
async fn announce(publisher: &LinkHandle) {
    let c = conf("c");
    publisher.open_conference(&c).await.unwrap();
    publisher
        .endpoint_joined(&c, "pat".parse().unwrap(), None)
        .await
        .unwrap();
    publisher
        .add_source(&c, SourceId(42), audio("pat", 4242))
        .await
        .unwrap();
}

/// Events from Down up to and including Synced must not remove anything.
async fn resync_without_churn(rx: &mut Receiver<OctoEvent>, peer: &str) {
    let p = edge(peer);
    let mut seen = Vec::new();
    wait_for(rx, "resync", |e| {
        if let OctoEvent::Link { peer, event } = e
            && *peer == p
        {
            seen.push(event.clone());
            return matches!(event, LinkEvent::Synced)
                && seen.iter().any(|e| matches!(e, LinkEvent::Up { .. }));
        }
        false
    })
    .await;
    for e in &seen {
        assert!(
            !matches!(
                e,
                LinkEvent::SourceRemoved(_)
                    | LinkEvent::EndpointLeft { .. }
                    | LinkEvent::ConferenceClosed { .. }
                    | LinkEvent::SourceAdded(_)
                    | LinkEvent::ConferenceOpened { .. }
            ),
            "re-announced state caused {e:?}; all: {seen:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_returns_after_the_accepting_peer_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let tls = cluster(dir.path());
    let (a, mut a_rx) = node(&tls, "edge-1", loopback()).await;
    let (b, mut b_rx) = node(&tls, "edge-2", loopback()).await;
    let b_addr = b.local_addr().unwrap();
    let a_addr = a.local_addr().unwrap();
    let ab = a.connect(edge("edge-2"), b_addr);
    let ba = b.connect(edge("edge-1"), a_addr);
    announce(&ba).await;
    wait_for(&mut a_rx, "source 42", |e| {
        is_link(
            e,
            |l| matches!(l, LinkEvent::SourceAdded(s) if s.id == SourceId(42)),
        )
    })
    .await;
    ab.subscribe(SourceId(42), Subscription::BEST)
        .await
        .unwrap();
    wait_for(&mut b_rx, "subscribed", |e| {
        is_link(e, |l| matches!(l, LinkEvent::Subscribed { .. }))
    })
    .await;
    media_arrives(&ba, &mut a_rx, SourceId(42), 4242).await;

    // edge-2 goes away…
    drop(ba);
    b.shutdown().await;
    drop(b_rx);
    wait_for(&mut a_rx, "link down", |e| {
        is_link(e, |l| matches!(l, LinkEvent::Down { .. }))
    })
    .await;
    assert!(!ab.is_up());

    // …and comes back on the same port with the same state.
    let (b2, mut b2_rx) = restart(&tls, "edge-2", b_addr).await;
    let ba2 = b2.link_to(&edge("edge-1"));
    announce(&ba2).await;
    b2.connect(edge("edge-1"), a_addr);
    resync_without_churn(&mut a_rx, "edge-2").await;
    // a's subscription was re-sent by a's link: b2 hears it unasked.
    wait_for(&mut b2_rx, "resubscribed", |e| {
        is_link(e, |l| {
            matches!(
                l,
                LinkEvent::Subscribed {
                    source: SourceId(42),
                    ..
                }
            )
        })
    })
    .await;
    media_arrives(&ba2, &mut a_rx, SourceId(42), 4242).await;
    let m = ab.metrics();
    assert!(m.reconnects >= 1, "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_returns_after_the_dialing_peer_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let tls = cluster(dir.path());
    let (a, a_rx) = node(&tls, "edge-1", loopback()).await;
    let (b, mut b_rx) = node(&tls, "edge-2", loopback()).await;
    let b_addr = b.local_addr().unwrap();
    let a_addr = a.local_addr().unwrap();
    let ab = a.connect(edge("edge-2"), b_addr);
    let ba = b.connect(edge("edge-1"), a_addr);
    announce(&ab).await;
    wait_for(&mut b_rx, "source 42", |e| {
        is_link(
            e,
            |l| matches!(l, LinkEvent::SourceAdded(s) if s.id == SourceId(42)),
        )
    })
    .await;
    ba.subscribe(SourceId(42), Subscription::BEST)
        .await
        .unwrap();

    // The dialer (edge-1) restarts at once: its new connection may reach
    // edge-2 before edge-2 notices the old one died, and replaces it.
    drop(ab);
    a.shutdown().await;
    drop(a_rx);
    let (a2, mut a2_rx) = restart(&tls, "edge-1", a_addr).await;
    // State first, then dial: the first Hello exchange announces it all.
    let ab2 = a2.link_to(&edge("edge-2"));
    announce(&ab2).await;
    a2.connect(edge("edge-2"), b_addr);
    wait_for(&mut b_rx, "down", |e| {
        is_link(e, |l| matches!(l, LinkEvent::Down { .. }))
    })
    .await;
    resync_without_churn(&mut b_rx, "edge-1").await;
    wait_for(&mut a2_rx, "resubscribed", |e| {
        is_link(e, |l| {
            matches!(
                l,
                LinkEvent::Subscribed {
                    source: SourceId(42),
                    ..
                }
            )
        })
    })
    .await;
    media_arrives(&ab2, &mut b_rx, SourceId(42), 4242).await;
    let _: &OctoNode = &a2;
}
