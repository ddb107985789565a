//! Codec tests: proptest round-trips for every frame, limits, framing.

use bytes::BytesMut;
use geomesh_core::{ConferenceId, EdgeId, ParticipantId, RegionId};
use proptest::prelude::*;

use super::*;

pub(crate) mod strategies {
    use super::*;

    pub fn node_id() -> impl Strategy<Value = String> {
        "[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?"
    }
    pub fn name_id() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_-][A-Za-z0-9._-]{0,40}"
    }
    pub fn conference_handle() -> impl Strategy<Value = ConferenceHandle> {
        (0..=u64::from(ConferenceHandle::MAX)).prop_map(|v| ConferenceHandle::new(v).unwrap())
    }
    pub fn source_handle() -> impl Strategy<Value = SourceHandle> {
        prop_oneof![0u64..70, 0..=u64::from(SourceHandle::MAX)]
            .prop_map(|v| SourceHandle::new(v).unwrap())
    }
    pub fn layer() -> impl Strategy<Value = Layer> {
        (
            proptest::option::of("[A-Za-z0-9_-]{1,16}"),
            any::<u32>(),
            proptest::option::of(any::<u32>()),
            any::<u16>(),
        )
            .prop_map(|(rid, ssrc, rtx_ssrc, max_height)| Layer {
                rid,
                ssrc,
                rtx_ssrc,
                max_height,
            })
    }
    pub fn source_info() -> impl Strategy<Value = SourceInfo> {
        (
            name_id(),
            prop_oneof![Just(MediaKind::Audio), Just(MediaKind::Video)],
            "[!-~]{1,32}",
            0u8..=127,
            any::<u32>(),
            proptest::collection::vec(layer(), 1..=MAX_LAYERS),
        )
            .prop_map(
                |(owner, kind, name, payload_type, clock_rate, layers)| SourceInfo {
                    owner: ParticipantId::new(owner).unwrap(),
                    kind,
                    codec: Codec {
                        name,
                        payload_type,
                        clock_rate,
                    },
                    layers,
                },
            )
    }
    pub fn frame() -> impl Strategy<Value = ControlFrame> {
        use ControlFrame as F;
        let nonce = 0..=varint::MAX;
        prop_oneof![
            (0..=varint::MAX, node_id(), node_id(), 0..=varint::MAX).prop_map(|(v, e, r, c)| {
                F::Hello(Hello {
                    version: v,
                    edge: EdgeId::new(e).unwrap(),
                    region: RegionId::new(r).unwrap(),
                    capabilities: Capabilities::from_bits(c),
                })
            }),
            (
                prop_oneof![Just(GoodbyeReason::Shutdown), Just(GoodbyeReason::Draining)],
                "\\PC{0,60}"
            )
                .prop_map(|(reason, message)| F::Goodbye { reason, message }),
            nonce.clone().prop_map(|nonce| F::Ping { nonce }),
            nonce.prop_map(|nonce| F::Pong { nonce }),
            Just(F::Announced),
            (conference_handle(), name_id()).prop_map(|(conference, id)| F::ConferenceOpen {
                conference,
                id: ConferenceId::new(id).unwrap()
            }),
            conference_handle().prop_map(|conference| F::ConferenceClose { conference }),
            (
                conference_handle(),
                name_id(),
                proptest::option::of("\\PC{1,60}")
            )
                .prop_map(|(conference, p, display_name)| F::EndpointJoined {
                    conference,
                    participant: ParticipantId::new(p).unwrap(),
                    display_name,
                }),
            (conference_handle(), name_id()).prop_map(|(conference, p)| F::EndpointLeft {
                conference,
                participant: ParticipantId::new(p).unwrap(),
            }),
            (conference_handle(), name_id(), any::<bool>(), any::<bool>()).prop_map(
                |(conference, p, audio, video)| F::EndpointMuted {
                    conference,
                    participant: ParticipantId::new(p).unwrap(),
                    audio,
                    video,
                }
            ),
            (
                conference_handle(),
                source_handle(),
                0..=varint::MAX,
                source_info()
            )
                .prop_map(|(conference, source, id, info)| F::SourceAdded {
                    conference,
                    source,
                    id: SourceId(id),
                    info,
                }),
            source_handle().prop_map(|source| F::SourceRemoved { source }),
            (source_handle(), any::<u8>(), any::<u16>()).prop_map(|(source, l, h)| {
                F::Subscribe {
                    source,
                    subscription: Subscription {
                        max_layer: l,
                        max_height: h,
                    },
                }
            }),
            source_handle().prop_map(|source| F::Unsubscribe { source }),
            (source_handle(), proptest::option::of(0u8..255))
                .prop_map(|(source, layer)| F::KeyframeRequest { source, layer }),
        ]
    }
}

proptest! {
    #[test]
    fn every_frame_round_trips(frame in strategies::frame()) {
        let mut buf = BytesMut::new();
        frame.encode(&mut buf).unwrap();
        let mut d = FrameDecoder::new();
        d.push(&buf);
        prop_assert_eq!(d.next_frame().unwrap(), Some(frame));
        prop_assert_eq!(d.next_frame().unwrap(), None);
        prop_assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn frames_survive_any_chunking(
        frames in proptest::collection::vec(strategies::frame(), 1..8),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let mut buf = BytesMut::new();
        for f in &frames {
            f.encode(&mut buf).unwrap();
        }
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(buf.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.push(buf.len());
        let mut d = FrameDecoder::new();
        let mut got = Vec::new();
        let mut start = 0;
        for c in cuts {
            d.push(&buf[start..c]);
            start = c;
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
        }
        prop_assert_eq!(got, frames);
    }

    #[test]
    fn media_header_round_trips_in_at_most_8_bytes(
        rtcp in any::<bool>(),
        conference in strategies::conference_handle(),
        source in strategies::source_handle(),
        payload in proptest::collection::vec(any::<u8>(), 12..=MAX_MEDIA_PACKET),
    ) {
        let header = MediaHeader {
            ty: if rtcp { MediaType::Rtcp } else { MediaType::Rtp },
            conference,
            source,
        };
        let mut packet = payload;
        packet[0] = 0x80 | (packet[0] & 0x3f);
        if rtcp {
            packet[1] = 200;
        }
        let mut buf = Vec::new();
        header.encode(&mut buf);
        prop_assert_eq!(buf.len(), header.encoded_len());
        prop_assert!(buf.len() <= MAX_MEDIA_HEADER);
        buf.extend_from_slice(&packet);
        let MediaDatagram::Packet(h, p) = decode_datagram(&buf).unwrap() else {
            panic!("a whole packet")
        };
        prop_assert_eq!(h, header);
        prop_assert_eq!(p, &packet[..]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = ControlFrame::decode_body(&bytes);
        let _ = decode_datagram(&bytes);
        let mut d = FrameDecoder::new();
        d.push(&bytes);
        for _ in 0..10 {
            if !matches!(d.next_frame(), Ok(Some(_)) | Err(DecodeError::UnknownFrameType(_))) {
                break;
            }
        }
    }
}

fn body(frame: &ControlFrame) -> Vec<u8> {
    let mut b = Vec::new();
    frame.encode_body(&mut b).unwrap();
    b
}

fn hello() -> ControlFrame {
    ControlFrame::Hello(Hello {
        version: PROTOCOL_VERSION,
        edge: EdgeId::new("edge-1").unwrap(),
        region: RegionId::new("eu").unwrap(),
        capabilities: Capabilities::ALL,
    })
}

#[test]
fn hello_is_byte_exact() {
    // Documented in docs/PROTOCOL.md.
    assert_eq!(
        body(&hello()),
        [
            0x01, 0x01, 0x06, b'e', b'd', b'g', b'e', b'-', b'1', 0x02, b'e', b'u', 0x0f
        ]
    );
    let header = MediaHeader {
        ty: MediaType::Rtp,
        conference: ConferenceHandle::new(3).unwrap(),
        source: SourceHandle::new(70).unwrap(),
    };
    let mut b = Vec::new();
    header.encode(&mut b);
    assert_eq!(b, [0x01, 0x03, 0x40, 0x46]);
}

#[test]
fn limits_are_typed_errors() {
    // A length prefix above 64 KiB fails at once, without buffering.
    let mut d = FrameDecoder::new();
    d.push(&[0x80, 0x01, 0x00, 0x01]);
    assert_eq!(
        d.next_frame(),
        Err(DecodeError::FrameTooLong {
            len: 65_537,
            max: MAX_FRAME_LEN
        })
    );
    // … and the decoder stays failed.
    d.push(&[0x01, 0x05]);
    assert!(d.next_frame().is_err());

    let mut d = FrameDecoder::new();
    d.push(&[0x00]);
    assert_eq!(d.next_frame(), Err(DecodeError::EmptyFrame));

    // An unknown type is skipped: the next frame still decodes.
    let mut d = FrameDecoder::new();
    d.push(&[0x02, 0x7f, 0x00]);
    let mut next = BytesMut::new();
    ControlFrame::Announced.encode(&mut next).unwrap();
    d.push(&next);
    assert_eq!(d.next_frame(), Err(DecodeError::UnknownFrameType(0x7f)));
    assert_eq!(d.next_frame(), Ok(Some(ControlFrame::Announced)));

    // Strings: too long, bad UTF-8, bad ids.
    let mut b = body(&hello());
    b[2] = 65;
    assert!(matches!(
        ControlFrame::decode_body(&b),
        Err(DecodeError::StringTooLong { field: "edge", .. })
    ));
    let mut b = body(&hello());
    b[3] = b'E';
    assert!(matches!(
        ControlFrame::decode_body(&b),
        Err(DecodeError::InvalidId { field: "edge", .. })
    ));
    let mut b = body(&hello());
    b[3] = 0xff;
    assert!(matches!(
        ControlFrame::decode_body(&b),
        Err(DecodeError::InvalidString { field: "edge" })
    ));
    let mut b = body(&hello());
    b.push(0);
    assert_eq!(
        ControlFrame::decode_body(&b),
        Err(DecodeError::TrailingBytes {
            frame: "HELLO",
            extra: 1
        })
    );
    let b = body(&hello());
    assert_eq!(
        ControlFrame::decode_body(&b[..b.len() - 1]),
        Err(DecodeError::Truncated)
    );

    // Handles out of range: a 4-byte varint above 2^14-1 for a conference.
    assert!(matches!(
        ControlFrame::decode_body(&[0x11, 0x80, 0x00, 0x40, 0x00]),
        Err(DecodeError::OutOfRange {
            field: "conference handle",
            ..
        })
    ));
    // An 8-byte varint above 2^30-1 for a source.
    assert!(matches!(
        ControlFrame::decode_body(&[0x21, 0xc0, 0, 0, 0, 0x40, 0, 0, 0]),
        Err(DecodeError::OutOfRange {
            field: "source handle",
            ..
        })
    ));
    // ENDPOINT_MUTED: conference 1, participant "p", then only bits 0 and 1.
    assert_eq!(
        ControlFrame::decode_body(&[0x14, 0x01, 0x01, b'p', 0b11]),
        Ok(ControlFrame::EndpointMuted {
            conference: ConferenceHandle::new(1).unwrap(),
            participant: ParticipantId::new("p").unwrap(),
            audio: true,
            video: true,
        })
    );
    assert!(matches!(
        ControlFrame::decode_body(&[0x14, 0x01, 0x01, b'p', 0b100]),
        Err(DecodeError::OutOfRange { field: "muted", .. })
    ));
}

#[test]
fn source_limits() {
    let info = SourceInfo {
        owner: ParticipantId::new("alice").unwrap(),
        kind: MediaKind::Video,
        codec: Codec {
            name: "VP8".into(),
            payload_type: 96,
            clock_rate: 90_000,
        },
        layers: vec![],
    };
    assert!(info.validate().is_err(), "no layers");
    let mut ok = info.clone();
    ok.layers.push(Layer {
        rid: Some("h".into()),
        ssrc: 1,
        rtx_ssrc: Some(2),
        max_height: 720,
    });
    ok.validate().unwrap();
    assert_eq!(ok.layer_of_ssrc(2), Some(0));
    assert_eq!(ok.layer_of_ssrc(3), None);
    let mut bad = ok.clone();
    bad.layers = vec![ok.layers[0].clone(); 9];
    assert!(bad.validate().is_err(), "9 layers");
    let mut bad = ok.clone();
    bad.codec.payload_type = 128;
    assert!(bad.validate().is_err());
    let mut bad = ok.clone();
    bad.layers[0].rid = Some("a b".into());
    assert!(bad.validate().is_err());
    let mut bad = ok;
    bad.codec.name = "x".repeat(33);
    assert!(bad.validate().is_err());
}

#[test]
fn media_payload_checks() {
    let mut d = vec![0x01, 0x00, 0x00];
    assert!(matches!(
        decode_datagram(&d),
        Err(DecodeError::NotMedia { .. })
    ));
    d.extend_from_slice(&[0x80; 12]);
    assert!(decode_datagram(&d).is_ok());
    d[3] = 0x00;
    assert!(matches!(
        decode_datagram(&d),
        Err(DecodeError::NotMedia { .. })
    ));
    let mut big = vec![0x01, 0x00, 0x00];
    big.extend_from_slice(&[0x80; MAX_MEDIA_PACKET + 1]);
    assert!(matches!(
        decode_datagram(&big),
        Err(DecodeError::PacketTooLong { .. })
    ));
    assert_eq!(
        decode_datagram(&[0x09, 0, 0]),
        Err(DecodeError::UnknownMediaType(9))
    );
    assert_eq!(decode_datagram(&[]), Err(DecodeError::Truncated));
    // RTCP must carry an RTCP packet type.
    let mut rtcp = vec![0x02, 0x00, 0x00, 0x80, 96, 0, 1, 0, 0, 0, 1];
    assert!(decode_datagram(&rtcp).is_err());
    rtcp[4] = 200;
    assert!(decode_datagram(&rtcp).is_ok());
}

#[test]
fn subscription_selects_one_layer() {
    let l = |h| Layer {
        rid: None,
        ssrc: 0,
        rtx_ssrc: None,
        max_height: h,
    };
    let layers = [l(180), l(360), l(720)];
    assert_eq!(Subscription::BEST.select(&layers), 2);
    let s = |max_layer, max_height| Subscription {
        max_layer,
        max_height,
    };
    assert_eq!(s(1, 0).select(&layers), 1);
    assert_eq!(s(255, 400).select(&layers), 1);
    assert_eq!(s(255, 100).select(&layers), 0, "nothing fits: lowest");
    assert_eq!(s(0, 0).select(&[l(0)]), 0);
    assert_eq!(s(255, 100).select(&[l(0), l(0)]), 1, "unknown heights fit");
    // Once a height is known, unknown ones no longer fit a limit: the
    // publisher may not be sending them yet.
    assert_eq!(s(255, 180).select(&[l(180), l(0), l(0)]), 0);
    assert_eq!(s(255, 720).select(&[l(180), l(360), l(0)]), 1);
    assert_eq!(
        s(255, 0).select(&[l(180), l(0), l(0)]),
        2,
        "no limit: the best"
    );
}

fn rtp_packet(len: usize) -> Vec<u8> {
    let mut p = vec![0x80, 96, 0x12, 0x34, 0, 0, 0, 1, 0, 0, 0x03, 0xe9];
    p.extend((0..len - 12).map(|i| (i % 251) as u8));
    p
}

fn video_header() -> MediaHeader {
    MediaHeader {
        ty: MediaType::Rtp,
        conference: ConferenceHandle::new(3).unwrap(),
        source: SourceHandle::new(70).unwrap(),
    }
}

/// The fragment datagrams `encode_fragments` wrote, decoded.
fn fragments(packet: &[u8], max: usize) -> Vec<(FragmentHeader, Vec<u8>)> {
    let mut out = BytesMut::new();
    let sizes = encode_fragments(video_header(), 9, packet, max, &mut out).unwrap();
    assert_eq!(sizes.total(), out.len());
    let mut out = out.freeze();
    sizes
        .datagrams()
        .iter()
        .map(|n| {
            let d = out.split_to(*n);
            assert!(d.len() <= max);
            match decode_datagram(&d).unwrap() {
                MediaDatagram::Fragment(h, chunk) => (h, chunk.to_vec()),
                other => panic!("not a fragment: {other:?}"),
            }
        })
        .collect()
}

#[test]
fn fragments_split_evenly_and_concatenate_to_the_packet() {
    for (len, max, count) in [(1300, 700, 2), (2000, 600, 4), (2048, 267, 8), (13, 16, 2)] {
        let packet = rtp_packet(len);
        let got = fragments(&packet, max);
        assert_eq!(got.len(), count, "{len} bytes at {max}");
        let mut whole = Vec::new();
        for (i, (h, chunk)) in got.iter().enumerate() {
            assert_eq!((h.index, h.count, h.packet), (i as u8, count as u8, 9));
            assert_eq!(h.media, video_header());
            assert!(chunk.len() >= got[0].1.len() - 1 || i == count - 1);
            whole.extend_from_slice(chunk);
        }
        assert_eq!(whole, packet);
    }
    // MIN_FRAGMENT_DATAGRAM is enough for the largest packet.
    assert_eq!(
        fragments(&rtp_packet(MAX_MEDIA_PACKET), MIN_FRAGMENT_DATAGRAM).len(),
        MAX_FRAGMENTS
    );
}

#[test]
fn fragment_header_is_byte_exact() {
    // Documented in docs/PROTOCOL.md: RTCP, packet 0x0102, fragment 1 of 3.
    let h = FragmentHeader {
        media: MediaHeader {
            ty: MediaType::Rtcp,
            ..video_header()
        },
        packet: 0x0102,
        index: 1,
        count: 3,
    };
    let mut b = Vec::new();
    h.encode(&mut b);
    assert_eq!(b, [0x03, 0x03, 0x40, 0x46, 0x01, 0x02, 0x93]);
    assert_eq!(b.len(), h.encoded_len());
    b.push(0xaa);
    assert_eq!(
        decode_datagram(&b),
        Ok(MediaDatagram::Fragment(h, &[0xaa][..]))
    );
}

#[test]
fn fragments_that_cannot_be_made_are_refused() {
    let mut out = BytesMut::new();
    let h = video_header();
    // Nine fragments would be needed.
    assert_eq!(
        encode_fragments(h, 0, &rtp_packet(2048), 262, &mut out),
        None
    );
    // No room for a byte behind the header, an empty or oversized packet.
    assert_eq!(encode_fragments(h, 0, &rtp_packet(100), 7, &mut out), None);
    assert_eq!(encode_fragments(h, 0, &[], 1000, &mut out), None);
    let big = vec![0x80; MAX_MEDIA_PACKET + 1];
    assert_eq!(encode_fragments(h, 0, &big, 1000, &mut out), None);
    assert!(out.is_empty());
}

#[test]
fn malformed_fragment_headers_are_typed_errors() {
    // type 3, conference 0, source 0, packet 0, then the fragment byte.
    let frag = |b: u8, chunk: &[u8]| {
        let mut d = vec![0x03, 0x00, 0x00, 0x00, 0x00, b];
        d.extend_from_slice(chunk);
        d
    };
    assert!(decode_datagram(&frag(0x12, b"x")).is_ok());
    assert_eq!(
        decode_datagram(&frag(0x00, b"x")),
        Err(DecodeError::FragmentCount(0))
    );
    assert_eq!(
        decode_datagram(&frag(0x09, b"x")),
        Err(DecodeError::FragmentCount(9))
    );
    assert_eq!(
        decode_datagram(&frag(0x0f, b"x")),
        Err(DecodeError::FragmentCount(15))
    );
    assert_eq!(
        decode_datagram(&frag(0x22, b"x")),
        Err(DecodeError::FragmentIndex { index: 2, count: 2 })
    );
    // Index 7 of 8, RTCP: the largest valid fragment byte.
    assert!(decode_datagram(&frag(0xf8, b"x")).is_ok());
    // An empty chunk, a cut header, an oversized chunk.
    assert_eq!(
        decode_datagram(&frag(0x12, b"")),
        Err(DecodeError::Truncated)
    );
    assert_eq!(
        decode_datagram(&[0x03, 0x00, 0x00, 0x00]),
        Err(DecodeError::Truncated)
    );
    assert!(matches!(
        decode_datagram(&frag(0x12, &[0x80; MAX_MEDIA_PACKET + 1])),
        Err(DecodeError::PacketTooLong { .. })
    ));
}

proptest! {
    #[test]
    fn any_packet_round_trips_through_fragments(
        len in 12..=MAX_MEDIA_PACKET,
        max in MIN_FRAGMENT_DATAGRAM..1500,
        id in any::<u16>(),
    ) {
        let packet = rtp_packet(len);
        let mut out = BytesMut::new();
        let sizes = encode_fragments(video_header(), id, &packet, max, &mut out).unwrap();
        prop_assert!(sizes.datagrams().len() <= MAX_FRAGMENTS);
        let mut out = out.freeze();
        let mut whole = Vec::new();
        for n in sizes.datagrams() {
            let d = out.split_to(*n);
            prop_assert!(d.len() <= max);
            let MediaDatagram::Fragment(h, chunk) = decode_datagram(&d).unwrap() else {
                panic!("a fragment")
            };
            prop_assert_eq!(h.packet, id);
            whole.extend_from_slice(chunk);
        }
        prop_assert_eq!(whole, packet);
    }
}
