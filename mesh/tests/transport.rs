//! Loopback tests of the quinn transport: two real nodes, real QUIC, real
//! mutual TLS with certificates from `geomesh_core::credentials::init`.

mod common;

use std::time::Duration;

use common::*;
use geomesh_mesh::link::LinkEvent;
use geomesh_mesh::transport::{OctoEvent, SendError};
use geomesh_mesh::wire::{MAX_DATAGRAM, MAX_MEDIA_PACKET, MediaType, SourceId, Subscription};

/// Sends `n` packets from `link` and counts how many arrive on `rx`
/// (bounded waits; loopback loses nothing at this rate, but we only ask
/// for most of them).
async fn flow(
    link: &geomesh_mesh::transport::LinkHandle,
    rx: &mut tokio::sync::mpsc::Receiver<OctoEvent>,
    source: SourceId,
    ssrc: u32,
    n: u16,
) -> usize {
    for seq in 0..n {
        link.send_media(source, MediaType::Rtp, 0, &rtp(ssrc, seq, 200))
            .unwrap();
        if seq % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let mut got = 0;
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(e) = rx.recv().await {
            if let OctoEvent::Media(m) = e
                && m.source.id == source
            {
                got += 1;
                if got == usize::from(n) {
                    return;
                }
            }
        }
    })
    .await;
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_link_up_and_carry_control_and_media_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let tls = cluster(dir.path());
    let (a, mut a_rx) = node(&tls, "edge-1", loopback()).await;
    let (b, mut b_rx) = node(&tls, "edge-2", loopback()).await;
    let ab = a.connect(edge("edge-2"), b.local_addr().unwrap());
    let ba = b.connect(edge("edge-1"), a.local_addr().unwrap());
    let c = conf("standup");
    ab.open_conference(&c).unwrap();
    ab.endpoint_joined(&c, "alice".parse().unwrap(), Some("Alice".into()))
        .unwrap();
    ab.add_source(&c, SourceId(1), audio("alice", 1111))
        .unwrap();
    ba.open_conference(&c).unwrap();
    ba.add_source(&c, SourceId(5), audio("bob", 2222)).unwrap();

    wait_up(&mut a_rx, "edge-2").await;
    let up = wait_for(&mut b_rx, "Up from edge-1", |e| {
        is_link(e, |l| matches!(l, LinkEvent::Up { .. }))
    })
    .await;
    let OctoEvent::Link {
        peer,
        event: LinkEvent::Up { region, .. },
    } = up
    else {
        unreachable!()
    };
    assert_eq!(peer, edge("edge-1"));
    assert_eq!(region.as_str(), "eu");

    // Roster and sources cross; each side subscribes to the other's source.
    wait_for(&mut b_rx, "alice joined", |e| {
        is_link(e, |l| matches!(l, LinkEvent::EndpointJoined { display_name: Some(n), .. } if n == "Alice"))
    })
    .await;
    wait_for(&mut b_rx, "alice's source", |e| {
        is_link(
            e,
            |l| matches!(l, LinkEvent::SourceAdded(s) if s.id == SourceId(1)),
        )
    })
    .await;
    wait_for(&mut a_rx, "bob's source", |e| {
        is_link(
            e,
            |l| matches!(l, LinkEvent::SourceAdded(s) if s.id == SourceId(5)),
        )
    })
    .await;
    // Nothing flows before a subscription.
    assert!(matches!(
        ab.send_media(SourceId(1), MediaType::Rtp, 0, &rtp(1111, 0, 100)),
        Err(SendError::NotSent(_))
    ));
    ba.subscribe(SourceId(1), Subscription::BEST).unwrap();
    ab.subscribe(SourceId(5), Subscription::BEST).unwrap();
    wait_for(&mut a_rx, "b subscribed", |e| {
        is_link(e, |l| {
            matches!(
                l,
                LinkEvent::Subscribed {
                    source: SourceId(1),
                    ..
                }
            )
        })
    })
    .await;
    wait_for(&mut b_rx, "a subscribed", |e| {
        is_link(e, |l| {
            matches!(
                l,
                LinkEvent::Subscribed {
                    source: SourceId(5),
                    ..
                }
            )
        })
    })
    .await;

    // The path fits a full RTP packet plus header.
    assert!(ab.max_datagram_size().unwrap() >= MAX_DATAGRAM);
    ab.send_media(
        SourceId(1),
        MediaType::Rtp,
        0,
        &rtp(1111, 0, MAX_MEDIA_PACKET),
    )
    .unwrap();
    let m = wait_for(&mut b_rx, "a full-size packet", |e| {
        matches!(e, OctoEvent::Media(_))
    })
    .await;
    let OctoEvent::Media(m) = m else {
        unreachable!()
    };
    assert_eq!(m.packet.len(), MAX_MEDIA_PACKET);
    assert_eq!(m.source.edge, edge("edge-1"));
    assert_eq!(m.source.conference, c);

    assert!(flow(&ab, &mut b_rx, SourceId(1), 1111, 200).await >= 190);
    assert!(flow(&ba, &mut a_rx, SourceId(5), 2222, 200).await >= 190);

    // RTT from Ping/Pong and QUIC; counters.
    wait_for(&mut a_rx, "an RTT sample", |e| {
        is_link(e, |l| matches!(l, LinkEvent::Rtt(_)))
    })
    .await;
    let ma = ab.metrics();
    assert!(ma.media_tx_packets >= 201, "{ma:?}");
    assert!(ma.media_rx_packets >= 190, "{ma:?}");
    assert!(ma.control_tx_bytes > 0 && ma.control_rx_bytes > 0);
    assert_eq!(ma.media_not_wanted, 1);
    assert_eq!(ma.connections, 1);
    assert_eq!(ma.reconnects, 0);
    assert!(ma.rtt.is_some() && ma.quic_rtt.is_some());
    assert_eq!(ma.dropped_too_big + ma.dropped_congestion, 0);

    // Unsubscribe stops the flow.
    ba.unsubscribe(SourceId(1));
    wait_for(&mut a_rx, "b unsubscribed", |e| {
        is_link(e, |l| {
            matches!(
                l,
                LinkEvent::Unsubscribed {
                    source: SourceId(1)
                }
            )
        })
    })
    .await;
    assert!(
        ab.send_media(SourceId(1), MediaType::Rtp, 0, &rtp(1111, 9, 100))
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_higher_id_dials_when_only_it_needs_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let tls = cluster(dir.path());
    let (a, mut a_rx) = node(&tls, "edge-1", loopback()).await;
    let (b, mut b_rx) = node(&tls, "edge-3", loopback()).await;
    // Only edge-3 (the higher id) knows it needs edge-1.
    let link = b.connect(edge("edge-1"), a.local_addr().unwrap());
    link.open_conference(&conf("c")).unwrap();
    wait_up(&mut b_rx, "edge-1").await;
    wait_for(&mut a_rx, "conference from edge-3", |e| {
        matches!(e, OctoEvent::Link { peer, event: LinkEvent::ConferenceOpened { .. } } if *peer == edge("edge-3"))
    })
    .await;
    assert!(a.link(&edge("edge-3")).unwrap().is_up());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_send_buffer_drops_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let tls = cluster(dir.path());
    let mut ca = config(&tls, "edge-1", loopback());
    ca.datagram_send_buffer = 4 * 1024;
    let (a, mut a_rx) = geomesh_mesh::transport::OctoNode::start(ca).await.unwrap();
    let (b, mut b_rx) = node(&tls, "edge-2", loopback()).await;
    let ab = a.connect(edge("edge-2"), b.local_addr().unwrap());
    b.connect(edge("edge-1"), a.local_addr().unwrap());
    ab.open_conference(&conf("c")).unwrap();
    ab.add_source(&conf("c"), SourceId(1), audio("x", 1))
        .unwrap();
    wait_for(&mut b_rx, "source", |e| {
        is_link(e, |l| matches!(l, LinkEvent::SourceAdded(_)))
    })
    .await;
    b.link(&edge("edge-1"))
        .unwrap()
        .subscribe(SourceId(1), Subscription::BEST)
        .unwrap();
    wait_for(&mut a_rx, "subscribed", |e| {
        is_link(e, |l| matches!(l, LinkEvent::Subscribed { .. }))
    })
    .await;
    // A burst far beyond 4 KiB, without yielding to the sender.
    let mut congested = 0;
    for seq in 0..2000u16 {
        match ab.send_media(SourceId(1), MediaType::Rtp, 0, &rtp(1, seq, 1100)) {
            Ok(()) => {}
            Err(SendError::Congested) => congested += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(congested > 0);
    assert_eq!(ab.metrics().dropped_congestion, congested);
}
