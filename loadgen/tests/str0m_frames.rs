//! Our generated frames through str0m's frame API between two in-memory
//! peers (no sockets, virtual time): str0m's packetizer must put a valid
//! RFC 7741 descriptor on every VP8 packet (S=1 and PID=0 on a frame's first
//! packet only, the keyframe bit visible behind it), the receiver must get
//! every frame back byte for byte with its stamp, flagged as a keyframe
//! exactly when we sent one, and simulcast layers must arrive under their
//! rids.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use geomesh_loadgen::accounting::RecvStats;
use geomesh_loadgen::rtp::{RtpHeader, Vp8Descriptor};
use geomesh_loadgen::source::{MediaConfig, OutFrame, PublisherMedia, RIDS};
use geomesh_loadgen::stamp::{Clock, Kind, Stamp, StreamKey};
use geomesh_loadgen::vp8;
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec;
use str0m::format::CodecExtra;
use str0m::media::{
    Direction, Frequency, MediaData, MediaKind, MediaTime, Mid, Rid, Simulcast, SimulcastLayer,
};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RawPacket;
use str0m::{Candidate, Event, Input, Output, Rtc};

struct Peer {
    rtc: Rtc,
    addr: SocketAddr,
    next: Instant,
    data: Vec<MediaData>,
    /// Every RTP packet sent, unencrypted (header and payload).
    sent_rtp: Vec<Vec<u8>>,
    connected: bool,
}

fn peer(addr: &str, now: Instant, crypto: &Arc<str0m::crypto::CryptoProvider>) -> Peer {
    let addr: SocketAddr = addr.parse().unwrap();
    let mut rtc = Rtc::builder()
        .set_crypto_provider(crypto.clone())
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .enable_raw_packets(true)
        .build(now);
    rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
    Peer {
        rtc,
        addr,
        next: now,
        data: Vec::new(),
        sent_rtp: Vec::new(),
        connected: false,
    }
}

/// Drains both peers and delivers what they send to each other until
/// nothing moves (str0m's rule: drain after every input).
fn pump(p: &mut [Peer; 2], now: Instant) {
    for _ in 0..10_000 {
        let mut wire: Vec<(usize, SocketAddr, Vec<u8>)> = Vec::new();
        for (i, peer) in p.iter_mut().enumerate() {
            loop {
                match peer.rtc.poll_output().expect("poll_output") {
                    Output::Timeout(t) => {
                        peer.next = t;
                        break;
                    }
                    Output::Transmit(t) => wire.push((i, t.destination, t.contents.to_vec())),
                    Output::Event(Event::Connected) => peer.connected = true,
                    Output::Event(Event::MediaData(d)) => peer.data.push(d),
                    Output::Event(Event::RawPacket(raw)) => {
                        if let RawPacket::RtpTx(_, packet) = *raw {
                            peer.sent_rtp.push(packet);
                        }
                    }
                    Output::Event(_) => {}
                }
            }
        }
        if wire.is_empty() {
            return;
        }
        for (from, dest, bytes) in wire {
            let source = p[from].addr;
            let to = &mut p[1 - from];
            let input = Input::Receive(
                now,
                Receive {
                    proto: Protocol::Udp,
                    source,
                    destination: dest,
                    contents: bytes.as_slice().try_into().unwrap(),
                },
            );
            to.rtc.handle_input(input).unwrap();
        }
    }
    panic!("peers never went quiet");
}

fn tick(p: &mut [Peer; 2], now: Instant) {
    for peer in p.iter_mut() {
        if peer.next <= now {
            peer.rtc.handle_input(Input::Timeout(now)).unwrap();
        }
    }
    pump(p, now);
}

/// Negotiates sendonly video (and audio) from peer 0 to peer 1 and connects.
fn connect(cfg: &MediaConfig, start: Instant) -> ([Peer; 2], Mid, Option<Mid>, Instant) {
    let crypto = Arc::new(str0m::crypto::from_feature_flags());
    let mut p = [
        peer("10.0.0.1:5000", start, &crypto),
        peer("10.0.0.2:6000", start, &crypto),
    ];
    let mut change = p[0].rtc.sdp_api();
    let simulcast = cfg.simulcast.then(|| {
        let mut s = Simulcast::new();
        for rid in RIDS {
            s.add_send_layer(SimulcastLayer::new(rid));
        }
        s
    });
    let video = change.add_media(
        MediaKind::Video,
        Direction::SendOnly,
        Some("pub".into()),
        Some("v".into()),
        simulcast,
    );
    let audio = cfg.audio.then(|| {
        change.add_media(
            MediaKind::Audio,
            Direction::SendOnly,
            Some("pub".into()),
            Some("a".into()),
            None,
        )
    });
    let (offer, pending) = change.apply().unwrap();
    let offer = SdpOffer::from_sdp_string(&offer.to_sdp_string()).unwrap();
    let answer = p[1].rtc.sdp_api().accept_offer(offer).unwrap();
    let answer = SdpAnswer::from_sdp_string(&answer.to_sdp_string()).unwrap();
    p[0].rtc.sdp_api().accept_answer(pending, answer).unwrap();
    let mut now = start;
    for _ in 0..5_000 {
        tick(&mut p, now);
        if p[0].connected && p[1].connected {
            return (p, video, audio, now);
        }
        now += Duration::from_millis(1);
    }
    panic!("peers did not connect within 5 s of virtual time");
}

/// Sends `secs` of media from peer 0 and returns what was written.
fn send(
    p: &mut [Peer; 2],
    cfg: &MediaConfig,
    video: Mid,
    audio: Option<Mid>,
    from: Instant,
    secs: u64,
    clock: &Clock,
) -> Vec<OutFrame> {
    let mut media = PublisherMedia::new(0, cfg, 7, from);
    let mut written = Vec::new();
    let mut frames = Vec::new();
    let mut now = from;
    let end = from + Duration::from_secs(secs);
    let pt = |rtc: &mut Rtc, mid: Mid, codec: Codec| {
        rtc.writer(mid)
            .unwrap()
            .payload_params()
            .find(|x| x.spec().codec == codec)
            .unwrap()
            .pt()
    };
    let vpt = pt(&mut p[0].rtc, video, Codec::Vp8);
    let apt = audio.map(|a| pt(&mut p[0].rtc, a, Codec::Opus));
    while now < end {
        media.poll(now, clock, &mut frames);
        for f in frames.drain(..) {
            let (mid, pt, freq) = match f.key.kind {
                Kind::Video => (video, vpt, Frequency::NINETY_KHZ),
                Kind::Audio => (audio.unwrap(), apt.unwrap(), Frequency::FORTY_EIGHT_KHZ),
            };
            let mut w = p[0].rtc.writer(mid).unwrap();
            if cfg.simulcast && f.key.kind == Kind::Video {
                w = w.rid(Rid::from(RIDS[usize::from(f.key.layer)]));
            }
            w.write(pt, now, MediaTime::new(f.rtp_time, freq), f.data.clone())
                .unwrap();
            written.push(f);
        }
        tick(p, now);
        now += Duration::from_millis(1);
    }
    // Let the last frames through.
    for _ in 0..200 {
        tick(p, now);
        now += Duration::from_millis(1);
    }
    written
}

#[test]
fn vp8_and_opus_frames_survive_str0m_with_valid_descriptors() {
    let start = Instant::now();
    let clock = Clock::new(start);
    let cfg = MediaConfig {
        video_kbps: 1500,
        simulcast: false,
        audio: true,
    };
    let (mut p, video, audio, t) = connect(&cfg, start);
    let written = send(&mut p, &cfg, video, audio, t, 6, &clock);
    let keyframes: BTreeSet<u32> = written
        .iter()
        .filter(|f| f.keyframe)
        .map(|f| f.seq)
        .collect();
    assert!(
        keyframes.len() >= 2,
        "a keyframe every 2–3 s: {keyframes:?}"
    );

    // Sender side: every VP8 packet carries a descriptor; a frame's first
    // packet (S=1, PID=0) shows the VP8 keyframe bit, and our stamp sits right
    // behind the frame header.
    let vp8_pt = {
        let w = p[0].rtc.writer(video).unwrap();
        *w.payload_params()
            .find(|x| x.spec().codec == Codec::Vp8)
            .unwrap()
            .pt()
    };
    let mut starts = 0;
    let mut key_starts = 0;
    for packet in &p[0].sent_rtp {
        let (h, payload) = RtpHeader::parse(packet).expect("RTP");
        if h.pt != vp8_pt {
            continue;
        }
        let d = Vp8Descriptor::parse(payload).expect("RFC 7741 descriptor");
        assert!(payload.len() <= 1200);
        if d.start && d.partition == 0 {
            starts += 1;
            let frame = &payload[d.len..];
            let stamp = Stamp::read(frame, vp8::STAMP_OFFSET).expect("stamp in the first packet");
            assert_eq!(stamp.key.kind, Kind::Video);
            if d.starts_keyframe(payload) {
                key_starts += 1;
                assert!(
                    keyframes.contains(&stamp.seq),
                    "frame {} flagged key",
                    stamp.seq
                );
                // Start code and 1280×720 (little-endian, 14 bits) after the frame tag.
                assert_eq!(&frame[3..10], &[0x9d, 0x01, 0x2a, 0x00, 0x05, 0xd0, 0x02]);
            } else {
                assert!(!keyframes.contains(&stamp.seq));
            }
        }
    }
    let video_written = written.iter().filter(|f| f.key.kind == Kind::Video).count();
    assert_eq!(starts, video_written, "one S=1 packet per frame");
    assert_eq!(key_starts, keyframes.len());

    // Receiver side: every frame, byte for byte, in order, keyframes flagged.
    let mut recv = RecvStats::default();
    let mut got: BTreeMap<StreamKey, Vec<u32>> = BTreeMap::new();
    for d in &p[1].data {
        let kind = match d.params.spec().codec {
            Codec::Vp8 => Kind::Video,
            Codec::Opus => Kind::Audio,
            c => panic!("unexpected codec {c:?}"),
        };
        let s = recv
            .on_frame(kind, &d.data, clock.micros(d.network_time))
            .unwrap();
        let sent = written
            .iter()
            .find(|f| f.key == s.key && f.seq == s.seq)
            .expect("a frame we sent");
        assert_eq!(&d.data[..], &sent.data[..], "frame bytes unchanged");
        if let CodecExtra::Vp8(x) = d.codec_extra {
            assert_eq!(
                x.is_keyframe, sent.keyframe,
                "keyframe flag of frame {}",
                s.seq
            );
        }
        got.entry(s.key).or_default().push(s.seq);
    }
    for (key, seqs) in &got {
        let n = written.iter().filter(|f| f.key == *key).count() as u32;
        assert_eq!(
            seqs,
            &(0..n).collect::<Vec<_>>(),
            "{key:?}: every frame, in order"
        );
    }
    assert_eq!(got.len(), 2, "video and audio");
    assert_eq!(recv.bad_frames, 0);
}

#[test]
fn simulcast_layers_arrive_under_their_rids() {
    let start = Instant::now();
    let clock = Clock::new(start);
    let cfg = MediaConfig {
        video_kbps: 1200,
        simulcast: true,
        audio: false,
    };
    let (mut p, video, audio, t) = connect(&cfg, start);
    let written = send(&mut p, &cfg, video, audio, t, 2, &clock);
    let mut per_rid: BTreeMap<String, BTreeSet<u8>> = BTreeMap::new();
    let mut frames = 0;
    for d in &p[1].data {
        let s = Stamp::read(&d.data, vp8::STAMP_OFFSET).unwrap();
        let rid = d.rid.map(|r| r.to_string()).unwrap_or_default();
        per_rid.entry(rid).or_default().insert(s.key.layer);
        frames += 1;
    }
    // Each rid carries exactly its own layer.
    let want: BTreeMap<String, BTreeSet<u8>> = RIDS
        .iter()
        .enumerate()
        .map(|(i, r)| (r.to_string(), [i as u8].into()))
        .collect();
    assert_eq!(per_rid, want);
    assert_eq!(frames, written.len(), "every layer's every frame");
}
