//! Our generated frames through two in-memory str0m peers in RTP mode (no
//! sockets, virtual time), packetized and rebuilt as the sessions do
//! ([`RtpIo`]): every VP8 packet carries libwebrtc's RFC 7741 descriptor
//! with a PictureID (S=1 and PID=0 on a frame's first packet only, the
//! keyframe bit visible behind it), the receiver gets every frame back byte
//! for byte with its stamp, a keyframe exactly when we sent one, and
//! simulcast layers arrive under their rids.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use geomesh_loadgen::accounting::RecvStats;
use geomesh_loadgen::rtp::{RtpHeader, Vp8Descriptor};
use geomesh_loadgen::rtp_io::RtpIo;
use geomesh_loadgen::source::{MediaConfig, OutFrame, PublisherMedia, RIDS};
use geomesh_loadgen::stamp::{Clock, Kind, Stamp, StreamKey};
use geomesh_loadgen::vp8;
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt, Rid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RawPacket, RtpPacket};
use str0m::{Candidate, Event, Input, Output, Rtc};

struct Peer {
    rtc: Rtc,
    addr: SocketAddr,
    next: Instant,
    /// Every RTP packet received (decrypted, RTX undone).
    rtp: Vec<RtpPacket>,
    /// Every RTP packet sent, unencrypted (header and payload).
    sent_rtp: Vec<Vec<u8>>,
    connected: bool,
}

fn peer(addr: &str, now: Instant, crypto: &Arc<str0m::crypto::CryptoProvider>) -> Peer {
    let addr: SocketAddr = addr.parse().unwrap();
    let mut rtc = geomesh_loadgen::rtp_io::rtc_config(crypto.clone())
        .enable_raw_packets(true)
        .build(now);
    rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
    Peer {
        rtc,
        addr,
        next: now,
        rtp: Vec::new(),
        sent_rtp: Vec::new(),
        connected: false,
    }
}

/// Polls `peer` until its timeout: what it transmits goes to `wire`
/// (str0m's rule: drain after every input, or RTP-mode events are lost).
fn drain(peer: &mut Peer, i: usize, wire: &mut VecDeque<(usize, SocketAddr, Vec<u8>)>) {
    loop {
        match peer.rtc.poll_output().expect("poll_output") {
            Output::Timeout(t) => {
                peer.next = t;
                return;
            }
            Output::Transmit(t) => wire.push_back((i, t.destination, t.contents.to_vec())),
            Output::Event(Event::Connected) => peer.connected = true,
            Output::Event(Event::RtpPacket(r)) => peer.rtp.push(r),
            Output::Event(Event::RawPacket(raw)) => {
                if let RawPacket::RtpTx(_, packet) = *raw {
                    peer.sent_rtp.push(packet);
                }
            }
            Output::Event(_) => {}
        }
    }
}

/// Drains both peers and delivers what they send to each other, one
/// datagram at a time, until nothing moves.
fn pump(p: &mut [Peer; 2], now: Instant) {
    let mut wire = VecDeque::new();
    for (i, peer) in p.iter_mut().enumerate() {
        drain(peer, i, &mut wire);
    }
    for _ in 0..100_000 {
        let Some((from, dest, bytes)) = wire.pop_front() else {
            return;
        };
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
        drain(to, 1 - from, &mut wire);
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

/// The negotiated payload type of `codec`.
fn pt_of(rtc: &Rtc, codec: Codec) -> Pt {
    rtc.codec_config()
        .params()
        .iter()
        .find(|x| x.spec().codec == codec)
        .unwrap()
        .pt()
}

/// The frames peer 1 rebuilt from its packets, as a session does.
fn received(p: &Peer) -> Vec<(Kind, Option<Rid>, Vec<u8>)> {
    let (vpt, apt) = (pt_of(&p.rtc, Codec::Vp8), pt_of(&p.rtc, Codec::Opus));
    let mut io = RtpIo::default();
    let mut out = Vec::new();
    for r in &p.rtp {
        let kind = match r.header.payload_type {
            x if x == vpt => Kind::Video,
            x if x == apt => Kind::Audio,
            x => panic!("unexpected payload type {x}"),
        };
        if let Some(frame) = io.on_packet(kind, r) {
            out.push((kind, r.header.ext_vals.rid, frame));
        }
    }
    out
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
    let mut io = RtpIo::default();
    let mut written = Vec::new();
    let mut frames = Vec::new();
    let mut now = from;
    let end = from + Duration::from_secs(secs);
    let vpt = pt_of(&p[0].rtc, Codec::Vp8);
    let apt = pt_of(&p[0].rtc, Codec::Opus);
    while now < end {
        media.poll(now, clock, &mut frames);
        for f in frames.drain(..) {
            let (mid, pt) = match f.key.kind {
                Kind::Video => (video, vpt),
                Kind::Audio => (audio.unwrap(), apt),
            };
            let rid = (cfg.simulcast && f.key.kind == Kind::Video)
                .then(|| Rid::from(RIDS[usize::from(f.key.layer)]));
            io.write_frame(&mut p[0].rtc, (mid, rid, pt), &f, 7, now)
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
fn vp8_and_opus_frames_survive_str0m_rtp_mode_with_libwebrtc_descriptors() {
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
    let vp8_pt = *pt_of(&p[0].rtc, Codec::Vp8);
    let mut starts = 0;
    let mut key_starts = 0;
    for packet in &p[0].sent_rtp {
        let (h, payload) = RtpHeader::parse(packet).expect("RTP");
        if h.pt != vp8_pt {
            continue;
        }
        let d = Vp8Descriptor::parse(payload).expect("RFC 7741 descriptor");
        assert!(
            d.picture_id.is_some(),
            "libwebrtc's descriptor has a PictureID"
        );
        assert!(packet.len() <= 1200);
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
    for (kind, _, data) in received(&p[1]) {
        let s = recv.on_frame(kind, &data, clock.micros(t)).unwrap();
        let sent = written
            .iter()
            .find(|f| f.key == s.key && f.seq == s.seq)
            .expect("a frame we sent");
        assert_eq!(&data[..], &sent.data[..], "frame bytes unchanged");
        if kind == Kind::Video {
            // The VP8 frame tag's P bit: clear on keyframes.
            assert_eq!(data[0] & 1 == 0, sent.keyframe, "keyframe {}", s.seq);
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
    for (_, rid, data) in received(&p[1]) {
        let s = Stamp::read(&data, vp8::STAMP_OFFSET).unwrap();
        let rid = rid.map(|r| r.to_string()).unwrap_or_default();
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
