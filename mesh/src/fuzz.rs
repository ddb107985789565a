//! The body of the `octo_wire` fuzz target, shared by cargo-fuzz
//! (`fuzz/fuzz_targets/octo_wire.rs`, nightly) and a stable test that runs
//! it over the seed corpus and a few hundred thousand generated inputs
//! (`tests/fuzz.rs`), so CI exercises it without nightly.
//!
//! One input is tried as everything an edge reads from the network:
//!
//! 1. a media datagram ([`decode_datagram`]), whole packet or fragment;
//! 2. one control frame body ([`ControlFrame::decode_body`]);
//! 3. a control stream, cut into chunks whose size the first byte picks
//!    ([`FrameDecoder`]);
//! 4. datagrams for a [`Link`] that has accepted a Hello and knows one
//!    conference (handle 1) and source (handle 2) of the peer: the input as
//!    one datagram, then read as a sequence of datagrams (`len: u8`, then
//!    that many bytes; see [`datagrams`]) so that fragments meet in
//!    reassembly; then the input as the control stream of a link after the
//!    Hello exchange, with a timer run afterwards.
//!
//! Besides "never panics", it checks that everything decoded re-encodes
//! and decodes to the same value.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use geomesh_core::{ConferenceId, EdgeId, ParticipantId, RegionId};

use crate::link::{Link, LinkConfig};
use crate::wire::{
    Capabilities, Codec, ConferenceHandle, ControlFrame, DecodeError, FrameDecoder, GoodbyeReason,
    Hello, Layer, MAX_MEDIA_PACKET, MediaDatagram, MediaHeader, MediaKind, MediaType,
    PROTOCOL_VERSION, SourceHandle, SourceId, SourceInfo, Subscription, check_packet,
    decode_datagram, encode_fragments,
};

fn round_trip(frame: &ControlFrame) {
    let mut body = Vec::new();
    frame
        .encode_body(&mut body)
        .expect("a decoded frame re-encodes");
    assert_eq!(
        ControlFrame::decode_body(&body).as_ref(),
        Ok(frame),
        "re-encoded frame decodes to itself"
    );
}

/// Runs one fuzz input. Panics only on a bug.
pub fn octo_wire(data: &[u8]) {
    // 1. A media datagram.
    match decode_datagram(data) {
        Ok(MediaDatagram::Packet(header, packet)) => {
            let mut again = Vec::new();
            header.encode(&mut again);
            assert!(again.len() <= crate::wire::MAX_MEDIA_HEADER);
            again.extend_from_slice(packet);
            assert_eq!(
                decode_datagram(&again),
                Ok(MediaDatagram::Packet(header, packet))
            );
        }
        Ok(MediaDatagram::Fragment(header, chunk)) => {
            let mut again = Vec::new();
            header.encode(&mut again);
            assert!(again.len() <= crate::wire::MAX_FRAGMENT_HEADER);
            again.extend_from_slice(chunk);
            assert_eq!(
                decode_datagram(&again),
                Ok(MediaDatagram::Fragment(header, chunk))
            );
        }
        Err(_) => {}
    }

    // 2. One frame body.
    if let Ok(frame) = ControlFrame::decode_body(data) {
        round_trip(&frame);
    }

    // 3. A control stream in chunks.
    let chunk = 1 + usize::from(data.first().copied().unwrap_or(0) % 64);
    let mut decoder = FrameDecoder::new();
    'stream: for c in data.chunks(chunk) {
        decoder.push(c);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => round_trip(&frame),
                Ok(None) => break,
                Err(DecodeError::UnknownFrameType(_)) => {}
                Err(_) => break 'stream,
            }
        }
    }

    // 4. Datagrams on a link with a remote source, the control stream on a
    // link after the Hello exchange.
    let now = Instant::now();
    let mut link = link_with_remote_source(now);
    for d in std::iter::once(data).chain(datagrams(data)) {
        if let Ok(Some(m)) = link.handle_datagram(Bytes::copy_from_slice(d)) {
            assert!(m.packet.len() <= MAX_MEDIA_PACKET);
            assert_eq!(check_packet(m.ty, &m.packet), Ok(()));
        }
    }
    let stats = link.fragment_stats();
    assert!(stats.reassembled + stats.incomplete <= data.len() as u64);
    let mut link = link_after_hello(now);
    link.handle_control(now, data);
    link.handle_timeout(now + Duration::from_secs(3600));
    while link.poll_event().is_some() {}
    while link.poll_transmit().is_some() {}
    let _ = link.poll_timeout();
}

/// `data` read as a sequence of datagrams: a `u8` length, then that many
/// bytes (the last one cut short at the end of the input).
pub fn datagrams(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    std::iter::from_fn(move || {
        let (&len, tail) = rest.split_first()?;
        let (d, tail) = tail.split_at(usize::from(len).min(tail.len()));
        rest = tail;
        Some(d)
    })
}

/// Edge-b's link to edge-a after edge-a's Hello.
fn link_after_hello(now: Instant) -> Link {
    let mut link = Link::new(
        LinkConfig::new(
            EdgeId::new("edge-b").expect("valid id"),
            RegionId::new("eu").expect("valid id"),
        ),
        EdgeId::new("edge-a").expect("valid id"),
    );
    link.handle_connected(now);
    link.handle_frame(
        now,
        ControlFrame::Hello(Hello {
            version: PROTOCOL_VERSION,
            edge: EdgeId::new("edge-a").expect("valid id"),
            region: RegionId::new("us").expect("valid id"),
            capabilities: Capabilities::ALL,
        }),
    );
    link
}

/// [`link_after_hello`] that also knows a conference (handle 1) and a
/// video source (handle 2) of the peer.
fn link_with_remote_source(now: Instant) -> Link {
    let mut link = link_after_hello(now);
    let conference = ConferenceHandle::new(1).expect("in range");
    for frame in [
        ControlFrame::ConferenceOpen {
            conference,
            id: ConferenceId::new("standup").expect("valid id"),
        },
        ControlFrame::SourceAdded {
            conference,
            source: SourceHandle::new(2).expect("in range"),
            id: SourceId(7),
            info: video_info(),
        },
    ] {
        link.handle_frame(now, frame);
    }
    assert!(link.is_up(), "the fuzz link is up");
    link
}

fn video_info() -> SourceInfo {
    SourceInfo {
        owner: ParticipantId::new("alice").expect("valid id"),
        kind: MediaKind::Video,
        codec: Codec {
            name: "VP8".into(),
            payload_type: 96,
            clock_rate: 90_000,
        },
        layers: (0..3u32)
            .map(|i| Layer {
                rid: Some(["q", "h", "f"][i as usize].into()),
                ssrc: 1000 + i,
                rtx_ssrc: Some(2000 + i),
                max_height: [180, 360, 720][i as usize],
            })
            .collect(),
    }
}

/// Representative valid inputs: every frame type as a stream, a session's
/// worth of frames, RTP/RTCP datagrams, and fragments (one, and a packet's
/// worth with a duplicate as [`datagrams`]). `fuzz/corpus/octo_wire/`
/// holds these (named by the returned names).
pub fn seed_corpus() -> Vec<(String, Vec<u8>)> {
    let conference = ConferenceHandle::new(1).expect("in range");
    let source = SourceHandle::new(2).expect("in range");
    let info = video_info();
    let frames = vec![
        ControlFrame::Hello(Hello {
            version: PROTOCOL_VERSION,
            edge: EdgeId::new("edge-a").expect("valid id"),
            region: RegionId::new("us").expect("valid id"),
            capabilities: Capabilities::ALL,
        }),
        ControlFrame::ConferenceOpen {
            conference,
            id: ConferenceId::new("standup").expect("valid id"),
        },
        ControlFrame::EndpointJoined {
            conference,
            participant: ParticipantId::new("alice").expect("valid id"),
            display_name: Some("Alice Ł.".into()),
        },
        ControlFrame::SourceAdded {
            conference,
            source,
            id: SourceId(7),
            info,
        },
        ControlFrame::Subscribe {
            source,
            subscription: Subscription {
                max_layer: 1,
                max_height: 360,
            },
        },
        ControlFrame::KeyframeRequest {
            source,
            layer: Some(1),
        },
        ControlFrame::Unsubscribe { source },
        ControlFrame::Ping { nonce: 1234 },
        ControlFrame::Pong { nonce: 1234 },
        ControlFrame::Announced,
        ControlFrame::SourceRemoved { source },
        ControlFrame::EndpointLeft {
            conference,
            participant: ParticipantId::new("alice").expect("valid id"),
        },
        ControlFrame::ConferenceClose { conference },
        ControlFrame::Goodbye {
            reason: GoodbyeReason::Draining,
            message: "maintenance".into(),
        },
    ];
    let mut seeds = Vec::new();
    let mut session = BytesMut::new();
    for f in &frames {
        let mut one = BytesMut::new();
        f.encode(&mut one).expect("seed frames are valid");
        // Skip the Hello: the link in step 4 already has one.
        if !matches!(f, ControlFrame::Hello(_)) {
            session.extend_from_slice(&one);
        }
        seeds.push((
            format!("frame-{}", f.frame_type().name().to_lowercase()),
            one.to_vec(),
        ));
    }
    seeds.push(("session".into(), session.to_vec()));
    for (name, ty, packet) in [
        ("rtp", MediaType::Rtp, {
            let mut p = vec![0x80, 96, 0x12, 0x34, 0, 0, 0x10, 0, 0, 0, 0x03, 0xe9];
            p.extend_from_slice(&[0x9d; 100]);
            p
        }),
        (
            "rtcp-sr",
            MediaType::Rtcp,
            vec![
                0x80, 200, 0, 6, 0, 0, 0x03, 0xe9, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4,
                0, 0, 0, 5,
            ],
        ),
    ] {
        let mut d = Vec::new();
        MediaHeader {
            ty,
            conference,
            source,
        }
        .encode(&mut d);
        d.extend_from_slice(&packet);
        seeds.push((format!("datagram-{name}"), d));
    }
    let mut packet = vec![0x80, 96, 0x12, 0x35, 0, 0, 0x10, 0, 0, 0, 0x03, 0xe9];
    packet.extend((0..288).map(|i| i as u8));
    let mut out = BytesMut::new();
    let header = MediaHeader {
        ty: MediaType::Rtp,
        conference,
        source,
    };
    let sizes = encode_fragments(header, 5, &packet, 110, &mut out).expect("3 fragments");
    let mut out = out.freeze();
    let fragments: Vec<Bytes> = sizes.datagrams().iter().map(|n| out.split_to(*n)).collect();
    seeds.push(("datagram-fragment".into(), fragments[0].to_vec()));
    let mut sequence = Vec::new();
    // Out of order, with a duplicate.
    for f in [&fragments[2], &fragments[0], &fragments[2], &fragments[1]] {
        sequence.push(u8::try_from(f.len()).expect("a short fragment"));
        sequence.extend_from_slice(f);
    }
    seeds.push(("datagrams-fragments".into(), sequence));
    seeds
}

#[cfg(test)]
mod tests {
    #[test]
    fn seeds_pass_the_target() {
        for (_, seed) in super::seed_corpus() {
            super::octo_wire(&seed);
        }
    }

    #[test]
    fn the_fragment_seed_reassembles_in_step_4() {
        let (_, seq) = super::seed_corpus()
            .into_iter()
            .find(|(n, _)| n == "datagrams-fragments")
            .unwrap();
        assert_eq!(super::datagrams(&seq).count(), 4);
        let mut link = super::link_with_remote_source(super::Instant::now());
        let got: Vec<_> = super::datagrams(&seq)
            .filter_map(|d| {
                link.handle_datagram(super::Bytes::copy_from_slice(d))
                    .unwrap()
            })
            .collect();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].packet.len(), 300);
        assert_eq!(link.fragment_stats().reassembled, 1);
    }
}
