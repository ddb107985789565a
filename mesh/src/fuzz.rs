//! The body of the `octo_wire` fuzz target, shared by cargo-fuzz
//! (`fuzz/fuzz_targets/octo_wire.rs`, nightly) and a stable test that runs
//! it over the seed corpus and a few hundred thousand generated inputs
//! (`mesh/tests/fuzz_stable.rs`), so CI exercises it without nightly.
//!
//! One input is tried as everything an edge reads from the network:
//!
//! 1. a media datagram ([`decode_datagram`]);
//! 2. one control frame body ([`ControlFrame::decode_body`]);
//! 3. a control stream, cut into chunks whose size the first byte picks
//!    ([`FrameDecoder`]);
//! 4. the control stream and a datagram of a [`Link`] that has accepted a
//!    Hello, with a timer run afterwards.
//!
//! Besides "never panics", it checks that everything decoded re-encodes
//! and decodes to the same value.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use geomesh_core::{ConferenceId, EdgeId, ParticipantId, RegionId};

use crate::link::{Link, LinkConfig};
use crate::wire::{
    Capabilities, Codec, ConferenceHandle, ControlFrame, DecodeError, FrameDecoder, GoodbyeReason,
    Hello, Layer, MediaHeader, MediaKind, MediaType, PROTOCOL_VERSION, SourceHandle, SourceId,
    SourceInfo, Subscription, decode_datagram,
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
    if let Ok((header, packet)) = decode_datagram(data) {
        let mut again = Vec::new();
        header.encode(&mut again);
        assert!(again.len() <= crate::wire::MAX_MEDIA_HEADER);
        again.extend_from_slice(packet);
        assert_eq!(decode_datagram(&again), Ok((header, packet)));
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

    // 4. A link after the Hello exchange.
    let now = Instant::now();
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
    link.handle_control(now, data);
    let _ = link.handle_datagram(Bytes::copy_from_slice(data));
    link.handle_timeout(now + Duration::from_secs(3600));
    while link.poll_event().is_some() {}
    while link.poll_transmit().is_some() {}
    let _ = link.poll_timeout();
}

/// Representative valid inputs: every frame type as a stream, a session's
/// worth of frames, and RTP/RTCP datagrams. `fuzz/corpus/octo_wire/` holds
/// these (named by the returned names).
pub fn seed_corpus() -> Vec<(String, Vec<u8>)> {
    let conference = ConferenceHandle::new(1).expect("in range");
    let source = SourceHandle::new(2).expect("in range");
    let info = SourceInfo {
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
    };
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
}
