//! Fragmented media between two links: splitting on one side, bounded and
//! validated reassembly on the other.

use super::*;
use crate::wire::{FragmentHeader, MediaHeader, check_packet};

/// An RTP packet of `len` bytes from the audio source's SSRC (200).
fn packet(len: usize, seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 111];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 200]);
    p.extend((0..len - 12).map(|i| (i % 253) as u8 ^ seq as u8));
    p
}

/// [`up_pair_with_state`] with b subscribed to a's audio source (8).
fn subscribed_pair() -> Pair {
    let mut p = up_pair_with_state();
    p.b.subscribe(SourceId(8), Subscription::BEST).unwrap();
    p.settle();
    p
}

/// a's fragment datagrams for `packet` at datagram size `max`.
fn split(p: &mut Pair, packet: &[u8], max: usize) -> Vec<Bytes> {
    let mut buf = BytesMut::new();
    let sizes =
        p.a.encode_media_fragments(SourceId(8), MediaType::Rtp, 0, packet, max, &mut buf)
            .unwrap();
    let mut all = buf.freeze();
    let frags: Vec<Bytes> = sizes.datagrams().iter().map(|n| all.split_to(*n)).collect();
    assert!(all.is_empty());
    assert!(frags.len() >= 2, "{} bytes at {max}", packet.len());
    assert!(frags.iter().all(|f| f.len() <= max));
    frags
}

/// Hands `datagrams` to b; the packets it delivered.
fn deliver(p: &mut Pair, datagrams: &[Bytes]) -> Vec<MediaIn> {
    datagrams
        .iter()
        .filter_map(|d| p.b.handle_datagram(d.clone()).unwrap())
        .collect()
}

/// A hand-made fragment datagram of a's source handle `source` (0: video,
/// 1: audio) in a's conference handle 0.
fn fragment(source: u32, packet: u16, index: u8, count: u8, chunk: &[u8]) -> Bytes {
    let header = FragmentHeader {
        media: MediaHeader {
            ty: MediaType::Rtp,
            conference: ConferenceHandle::new(0).unwrap(),
            source: SourceHandle::new(source.into()).unwrap(),
        },
        packet,
        index,
        count,
    };
    let mut d = Vec::new();
    header.encode(&mut d);
    d.extend_from_slice(chunk);
    Bytes::from(d)
}

#[test]
fn big_packets_round_trip_through_fragments() {
    let mut p = subscribed_pair();
    for (len, max) in [(1300, 600), (2000, 600), (2000, 1246), (1300, 700)] {
        let packet = packet(len, 1);
        let frags = split(&mut p, &packet, max);
        let (last, first) = frags.split_last().unwrap();
        assert!(deliver(&mut p, first).is_empty(), "nothing before the last");
        let m =
            p.b.handle_datagram(last.clone())
                .unwrap()
                .expect("the packet");
        assert_eq!(&m.packet[..], &packet[..]);
        assert_eq!(m.ty, MediaType::Rtp);
        assert_eq!(m.source.id, SourceId(8));
    }
    assert_eq!(
        p.b.fragment_stats(),
        FragmentStats {
            reassembled: 4,
            incomplete: 0
        }
    );
    assert_eq!(p.b.reassembly.pending(), 0);
}

#[test]
fn reordered_and_interleaved_fragments_reassemble() {
    let mut p = subscribed_pair();
    let (one, two) = (packet(2000, 1), packet(1300, 2));
    let mut a = split(&mut p, &one, 300);
    let b = split(&mut p, &two, 300);
    assert_eq!((a.len(), b.len()), (7, 5));
    a.reverse();
    let mixed: Vec<Bytes> = a
        .iter()
        .zip(b.iter().rev())
        .flat_map(|(x, y)| [y.clone(), x.clone()])
        .chain(a[b.len()..].iter().cloned())
        .collect();
    let got = deliver(&mut p, &mixed);
    assert_eq!(got.len(), 2);
    assert_eq!(&got[0].packet[..], &two[..]);
    assert_eq!(&got[1].packet[..], &one[..]);
}

#[test]
fn duplicate_fragments_are_ignored() {
    let mut p = subscribed_pair();
    let whole = packet(1300, 1);
    let f = split(&mut p, &whole, 500);
    assert_eq!(f.len(), 3);
    let twice = [f[0].clone(), f[0].clone(), f[1].clone(), f[1].clone()];
    assert!(deliver(&mut p, &twice).is_empty());
    let got = deliver(&mut p, &f[2..]);
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].packet[..], &whole[..]);
    assert_eq!(p.b.fragment_stats().reassembled, 1);
}

#[test]
fn a_lost_fragment_delivers_nothing_and_is_counted_once_superseded() {
    let mut p = subscribed_pair();
    let lost = split(&mut p, &packet(1300, 0), 700);
    assert!(deliver(&mut p, &lost[..1]).is_empty());
    // Fifteen newer packets: the lost one may still be reordered.
    for seq in 1..MAX_REASSEMBLING as u16 {
        let f = split(&mut p, &packet(1300, seq), 700);
        assert_eq!(deliver(&mut p, &f).len(), 1);
    }
    assert_eq!(p.b.fragment_stats().incomplete, 0);
    assert_eq!(p.b.reassembly.pending(), 1);
    // The sixteenth newer packet gives it up.
    let f = split(&mut p, &packet(1300, 99), 700);
    assert_eq!(deliver(&mut p, &f).len(), 1);
    assert_eq!(
        p.b.fragment_stats(),
        FragmentStats {
            reassembled: 16,
            incomplete: 1
        }
    );
    assert_eq!(p.b.reassembly.pending(), 0);
}

#[test]
fn at_most_16_packets_wait_and_the_oldest_is_evicted() {
    let mut p = subscribed_pair();
    let whole = packet(100, 0);
    let half = &whole[..50];
    // Nine packet ids on each of two sources: 18 unfinished packets.
    for id in 0..9 {
        for source in [0, 1] {
            assert!(
                p.b.handle_datagram(fragment(source, id, 0, 2, half))
                    .unwrap()
                    .is_none()
            );
        }
    }
    assert_eq!(p.b.reassembly.pending(), MAX_REASSEMBLING);
    assert_eq!(p.b.fragment_stats().incomplete, 2);
    // The evicted packet's other half starts a new packet; a kept one completes.
    assert!(
        p.b.handle_datagram(fragment(0, 0, 1, 2, half))
            .unwrap()
            .is_none()
    );
    let m = p.b.handle_datagram(fragment(1, 8, 1, 2, half)).unwrap();
    assert_eq!(m.unwrap().packet.len(), 100);
}

#[test]
fn malformed_fragments_are_typed_errors() {
    let mut p = subscribed_pair();
    let rtp = packet(1500, 0);
    let raw = |byte: u8| {
        // type 3, conference 0, source 1, packet 7, then the fragment byte.
        let mut d = vec![0x03, 0x00, 0x01, 0x00, 0x07, byte];
        d.extend_from_slice(&rtp[..20]);
        Bytes::from(d)
    };
    let decode = DatagramError::Decode;
    assert_eq!(
        p.b.handle_datagram(raw(0x22)).unwrap_err(),
        decode(DecodeError::FragmentIndex { index: 2, count: 2 })
    );
    assert_eq!(
        p.b.handle_datagram(raw(0x00)).unwrap_err(),
        decode(DecodeError::FragmentCount(0))
    );
    assert_eq!(
        p.b.handle_datagram(raw(0x09)).unwrap_err(),
        decode(DecodeError::FragmentCount(9))
    );
    // Fragments of one packet that disagree on the count or the type.
    assert!(matches!(p.b.handle_datagram(raw(0x02)), Ok(None)));
    assert_eq!(
        p.b.handle_datagram(raw(0x13)).unwrap_err(),
        DatagramError::FragmentMismatch { packet: 7 }
    );
    assert_eq!(
        p.b.handle_datagram(raw(0x92)).unwrap_err(),
        DatagramError::FragmentMismatch { packet: 7 }
    );
    // A total above MAX_MEDIA_PACKET: refused, the packet forgotten.
    assert!(matches!(
        p.b.handle_datagram(fragment(1, 8, 0, 2, &rtp)),
        Ok(None)
    ));
    assert_eq!(
        p.b.handle_datagram(fragment(1, 8, 1, 2, &rtp)).unwrap_err(),
        decode(DecodeError::PacketTooLong {
            len: 3000,
            max: crate::wire::MAX_MEDIA_PACKET
        })
    );
    // A reassembled packet gets the checks of a whole one.
    let junk = [0u8; 20];
    assert!(matches!(
        p.b.handle_datagram(fragment(1, 9, 0, 2, &junk)),
        Ok(None)
    ));
    assert!(matches!(
        p.b.handle_datagram(fragment(1, 9, 1, 2, &junk)),
        Err(DatagramError::Decode(DecodeError::NotMedia { .. }))
    ));
    assert!(check_packet(MediaType::Rtp, &junk).is_err());
    // Unknown sources are refused before they take a place.
    assert_eq!(
        p.b.handle_datagram(fragment(9, 10, 0, 2, &rtp[..20]))
            .unwrap_err(),
        DatagramError::UnknownSource(SourceHandle::new(9).unwrap())
    );
    assert_eq!(p.b.reassembly.pending(), 1, "only packet 7 waits");
    assert!(p.b.is_up());
}

#[test]
fn a_peer_without_the_capability_gets_no_fragments() {
    let mut b = config("edge-b");
    b.capabilities =
        Capabilities::from_bits(Capabilities::ALL.bits() & !Capabilities::FRAGMENTS.bits());
    let mut p = Pair::with(config("edge-a"), b);
    let c = conf("c");
    p.a.open_conference(&c).unwrap();
    p.a.add_source(&c, SourceId(1), audio("x", 10)).unwrap();
    p.connect();
    p.settle();
    let mut buf = BytesMut::new();
    let big = packet(1300, 0);
    assert_eq!(
        p.a.encode_media_fragments(SourceId(1), MediaType::Rtp, 0, &big, 600, &mut buf),
        Err(NotSent::NotSubscribed),
        "the forwarding rule first"
    );
    p.b.subscribe(SourceId(1), Subscription::BEST).unwrap();
    p.settle();
    assert_eq!(
        p.a.encode_media_fragments(SourceId(1), MediaType::Rtp, 0, &big, 600, &mut buf),
        Err(NotSent::NoFragments)
    );
    assert!(buf.is_empty());
    // A whole packet still goes (the transport drops it if the path is too small).
    p.a.encode_media(SourceId(1), MediaType::Rtp, 0, &big, &mut buf)
        .unwrap();
    assert_eq!(buf.len(), 1300 + 3);
}

#[test]
fn a_datagram_size_too_small_for_8_fragments_is_refused() {
    let mut p = subscribed_pair();
    let mut buf = BytesMut::new();
    assert_eq!(
        p.a.encode_media_fragments(
            SourceId(8),
            MediaType::Rtp,
            0,
            &packet(2000, 0),
            200,
            &mut buf
        ),
        Err(NotSent::TooManyFragments {
            len: 2000,
            max_datagram: 200
        })
    );
    assert!(buf.is_empty());
}

#[test]
fn a_reconnect_drops_unfinished_packets_and_counts_them() {
    let mut p = subscribed_pair();
    let f = split(&mut p, &packet(2000, 0), 700);
    assert!(deliver(&mut p, &f[..2]).is_empty());
    p.disconnect();
    assert_eq!(p.b.reassembly.pending(), 0);
    assert_eq!(p.b.fragment_stats().incomplete, 1);
}
