//! Loopback tests of the quinn transport: two real nodes, real QUIC, real
//! mutual TLS with certificates from `geomesh_core::credentials::init`.

mod common;

use std::time::Duration;

use common::*;
use geomesh_mesh::link::LinkEvent;
use geomesh_mesh::transport::{LinkHandle, OCTO_MTU, OctoConfig, OctoEvent, OctoNode, SendError};
use geomesh_mesh::wire::{MAX_MEDIA_HEADER, MAX_MEDIA_PACKET, MediaType, SourceId, Subscription};
use tokio::sync::mpsc::Receiver;

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
    ab.open_conference(&c).await.unwrap();
    ab.endpoint_joined(&c, "alice".parse().unwrap(), Some("Alice".into()))
        .await
        .unwrap();
    ab.add_source(&c, SourceId(1), audio("alice", 1111))
        .await
        .unwrap();
    ba.open_conference(&c).await.unwrap();
    ba.add_source(&c, SourceId(5), audio("bob", 2222))
        .await
        .unwrap();

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
    ba.subscribe(SourceId(1), Subscription::BEST).await.unwrap();
    ab.subscribe(SourceId(5), Subscription::BEST).await.unwrap();
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

    // A 1200-byte packet plus header fits one datagram at the floor; the
    // largest packet goes whole or in fragments.
    assert!(ab.max_datagram_size().unwrap() >= 1200 + MAX_MEDIA_HEADER);
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
    ba.unsubscribe(SourceId(1)).await;
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
    link.open_conference(&conf("c")).await.unwrap();
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
    ab.open_conference(&conf("c")).await.unwrap();
    ab.add_source(&conf("c"), SourceId(1), audio("x", 1))
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

/// Two nodes (edge-1 with `ca`, edge-2 with defaults) whose link is up,
/// edge-2 subscribed to edge-1's source 1 (SSRC 1111): the link and both
/// event channels, as soon as the subscription arrived.
async fn subscribed(
    dir: &std::path::Path,
    ca: impl FnOnce(&mut OctoConfig),
) -> (
    OctoNode,
    OctoNode,
    LinkHandle,
    Receiver<OctoEvent>,
    Receiver<OctoEvent>,
) {
    let tls = cluster(dir);
    let mut c = config(&tls, "edge-1", loopback());
    ca(&mut c);
    let (a, mut a_rx) = OctoNode::start(c).await.unwrap();
    let (b, mut b_rx) = node(&tls, "edge-2", loopback()).await;
    let ab = a.connect(edge("edge-2"), b.local_addr().unwrap());
    let ba = b.connect(edge("edge-1"), a.local_addr().unwrap());
    ab.open_conference(&conf("c")).await.unwrap();
    ab.add_source(&conf("c"), SourceId(1), audio("x", 1111))
        .await
        .unwrap();
    wait_for(&mut b_rx, "source", |e| {
        is_link(e, |l| matches!(l, LinkEvent::SourceAdded(_)))
    })
    .await;
    ba.subscribe(SourceId(1), Subscription::BEST).await.unwrap();
    wait_for(&mut a_rx, "subscribed", |e| {
        is_link(e, |l| matches!(l, LinkEvent::Subscribed { .. }))
    })
    .await;
    (a, b, ab, a_rx, b_rx)
}

/// Sends RTP packets of `sizes` and waits for each to arrive intact.
async fn big_packets_arrive(link: &LinkHandle, rx: &mut Receiver<OctoEvent>, sizes: &[usize]) {
    for (seq, &len) in sizes.iter().enumerate() {
        let mut packet = rtp(1111, seq as u16, len);
        for (i, b) in packet[12..].iter_mut().enumerate() {
            *b = (i * 7 + seq) as u8;
        }
        link.send_media(SourceId(1), MediaType::Rtp, 0, &packet)
            .unwrap_or_else(|e| panic!("{len} bytes: {e}"));
        let OctoEvent::Media(m) = wait_for(rx, &format!("the {len}-byte packet"), |e| {
            matches!(e, OctoEvent::Media(_))
        })
        .await
        else {
            unreachable!()
        };
        assert_eq!(&m.packet[..], &packet[..], "{len} bytes arrive intact");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_packets_cross_as_fragments_before_mtu_discovery() {
    let dir = tempfile::tempdir().unwrap();
    // Discovery off: the connection stays at the 1280-byte floor.
    let (_a, b, ab, _a_rx, mut b_rx) = subscribed(dir.path(), |c| c.max_mtu = OCTO_MTU).await;
    let max = ab.max_datagram_size().unwrap();
    assert!(max < 1400, "datagrams of {max} bytes at the floor");
    big_packets_arrive(&ab, &mut b_rx, &[1400, 2000, 1000, MAX_MEDIA_PACKET]).await;
    let ma = ab.metrics();
    assert_eq!(ma.fragmented_tx_packets, 3, "{ma:?}");
    assert_eq!(ma.media_tx_packets, 4);
    assert_eq!(ma.dropped_too_big, 0);
    let mb = b.link(&edge("edge-1")).unwrap().metrics();
    assert_eq!(mb.reassembled_rx_packets, 3, "{mb:?}");
    assert_eq!(mb.media_rx_packets, 4);
    assert_eq!(mb.fragments_incomplete + mb.rx_malformed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_packets_cross_right_after_the_link_comes_up() {
    let dir = tempfile::tempdir().unwrap();
    // Default MTU discovery: whatever it has reached by now, nothing is lost.
    let (_a, _b, ab, _a_rx, mut b_rx) = subscribed(dir.path(), |_| {}).await;
    big_packets_arrive(&ab, &mut b_rx, &[1400, 2000]).await;
    let ma = ab.metrics();
    assert_eq!(ma.media_tx_packets, 2, "{ma:?}");
    assert_eq!(ma.dropped_too_big, 0);
    // Discovery raises the datagram size above aiortc's 1300-byte packets
    // plus header on a 1500-byte path (loopback is bigger).
    let start = std::time::Instant::now();
    while ab.max_datagram_size().unwrap() < 1300 + MAX_MEDIA_HEADER {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "MTU discovery stuck at {:?}",
            ab.max_datagram_size()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    big_packets_arrive(&ab, &mut b_rx, &[1300]).await;
    assert_eq!(ab.metrics().fragmented_tx_packets, ma.fragmented_tx_packets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_without_the_fragments_capability_gets_big_packets_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let tls = cluster(dir.path());
    let mut ca = config(&tls, "edge-1", loopback());
    ca.max_mtu = OCTO_MTU;
    let (a, mut a_rx) = OctoNode::start(ca).await.unwrap();
    let mut cb = config(&tls, "edge-2", loopback());
    cb.link.capabilities = geomesh_mesh::wire::Capabilities::from_bits(
        geomesh_mesh::wire::Capabilities::ALL.bits()
            & !geomesh_mesh::wire::Capabilities::FRAGMENTS.bits(),
    );
    let (b, mut b_rx) = OctoNode::start(cb).await.unwrap();
    let ab = a.connect(edge("edge-2"), b.local_addr().unwrap());
    b.connect(edge("edge-1"), a.local_addr().unwrap());
    ab.open_conference(&conf("c")).await.unwrap();
    ab.add_source(&conf("c"), SourceId(1), audio("x", 1111))
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
    assert!(matches!(
        ab.send_media(SourceId(1), MediaType::Rtp, 0, &rtp(1111, 0, 1400)),
        Err(SendError::TooBig { .. })
    ));
    let m = ab.metrics();
    assert_eq!((m.dropped_too_big, m.fragmented_tx_packets), (1, 0));
    big_packets_arrive(&ab, &mut b_rx, &[1200]).await;
}
