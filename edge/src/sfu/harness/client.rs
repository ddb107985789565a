//! A participant in the virtual-time tests: a str0m `Rtc` in frame mode
//! (as a browser is), publishing synthetic VP8 video (30 fps, 320×240
//! keyframe headers, or simulcast at 160×120, 320×240 and 640×480; a frame
//! number and layer in every frame) and Opus audio (50 packets/s),
//! answering the edge's offers, and counting what it decodes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid, Rid, Simulcast, SimulcastLayer};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::sync::mpsc;

use crate::messages::ServerMessage;
use crate::router::PeerKey;

/// Time between video frames (30 fps).
pub const FRAME: Duration = Duration::from_micros(33_333);
/// Time between audio packets (Opus, 20 ms).
const AUDIO: Duration = Duration::from_millis(20);
/// Simulcast layers, low to high: rid, width, height, delta frame bytes.
const LAYERS: [(&str, u16, u16, usize); 3] = [
    ("q", 160, 120, 200),
    ("h", 320, 240, 600),
    ("f", 640, 480, 1800),
];

/// What a client received of one remote track.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Track {
    /// Its kind.
    pub video: bool,
    /// Frame numbers decoded, in arrival order.
    pub frames: Vec<u32>,
    /// Of those, the keyframes.
    pub keyframes: Vec<u32>,
    /// The simulcast layer of each frame (0 without simulcast).
    pub layers: Vec<u8>,
    /// When the last frame arrived.
    pub last_at: Option<Instant>,
}

impl Track {
    /// Frames missing between the first and the last decoded one, and
    /// frames that went backwards. A frame repeated at a simulcast switch
    /// (the new layer's keyframe of the frame the old layer just brought)
    /// is neither.
    pub fn gaps(&self) -> (u32, u32) {
        let (mut missing, mut backwards) = (0, 0);
        for (i, w) in self.frames.windows(2).enumerate() {
            if w[1] > w[0] {
                missing += w[1] - w[0] - 1;
            } else if w[1] < w[0] || self.layers[i] == self.layers[i + 1] {
                backwards += 1;
            }
        }
        (missing, backwards)
    }
}

/// One participant.
pub struct Client {
    pub name: String,
    pub addr: SocketAddr,
    pub rtc: Rtc,
    /// Its edge, and the edge's session and worker, once joined.
    pub edge: usize,
    pub key: Option<PeerKey>,
    pub worker: usize,
    /// What the edge tells it.
    pub signal_rx: mpsc::UnboundedReceiver<ServerMessage>,
    pub signal_tx: Option<mpsc::UnboundedSender<ServerMessage>>,
    /// Its own sending m-lines.
    video: Option<Mid>,
    audio: Option<Mid>,
    /// Publishing media (from when it connects).
    pub publishing: bool,
    pub next_video: Instant,
    pub next_audio: Instant,
    /// Frames and audio packets sent so far.
    pub sent_frames: u32,
    pub sent_audio: u32,
    /// Publishing three simulcast layers.
    pub simulcast: bool,
    /// The next frame of each layer is a keyframe (first, or asked for).
    keyframe_due: [bool; 3],
    pub keyframe_requests: u32,
    /// Remote tracks by m-line.
    pub tracks: BTreeMap<Mid, Track>,
    pub timeout: Instant,
    pub connected: bool,
    pub pending: Option<SdpPendingOffer>,
    /// Answers to the edge's offers, for the world to hand over.
    pub answers: Vec<String>,
    /// Why the edge asked it to move, if it did.
    pub asked_to_move: Option<String>,
}

impl Client {
    /// A client at `addr` whose clock starts at `now`.
    pub fn new(name: &str, addr: SocketAddr, now: Instant, publishing: bool) -> Self {
        let mut rtc = Rtc::builder().build(now);
        let cand = Candidate::host(addr, "udp").expect("a udp host candidate");
        rtc.add_local_candidate(cand);
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            name: name.to_string(),
            addr,
            rtc,
            edge: 0,
            key: None,
            worker: 0,
            signal_rx: rx,
            signal_tx: Some(tx),
            video: None,
            audio: None,
            publishing,
            next_video: now,
            next_audio: now,
            sent_frames: 0,
            sent_audio: 0,
            simulcast: false,
            keyframe_due: [true; 3],
            keyframe_requests: 0,
            tracks: BTreeMap::new(),
            timeout: now,
            connected: false,
            pending: None,
            answers: Vec::new(),
            asked_to_move: None,
        }
    }

    /// The client's first offer: the audio and video it sends (a
    /// browser's camera and microphone), or for a client that only
    /// watches, receive-only m-lines (the edge adds its own for what it
    /// forwards).
    pub fn offer(&mut self) -> String {
        let mut api = self.rtc.sdp_api();
        let dir = if self.publishing {
            Direction::SendOnly
        } else {
            Direction::RecvOnly
        };
        let layers = self.simulcast.then(|| {
            let mut sim = Simulcast::new();
            for (rid, ..) in LAYERS {
                sim.add_send_layer(SimulcastLayer::new(rid));
            }
            sim
        });
        let video = api.add_media(MediaKind::Video, dir, None, None, layers);
        let audio = api.add_media(MediaKind::Audio, dir, None, None, None);
        if self.publishing {
            (self.video, self.audio) = (Some(video), Some(audio));
        }
        let (offer, pending) = api.apply().expect("a change to offer");
        self.pending = Some(pending);
        offer.to_sdp_string()
    }

    /// The edge's answer to [`Client::offer`].
    pub fn accept_answer(&mut self, sdp: &str) {
        let answer = SdpAnswer::from_sdp_string(sdp).expect("the edge's answer parses");
        let pending = self.pending.take().expect("an offer was made");
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("the edge's answer applies");
    }

    /// Applies what the edge said on signaling; offers are answered into
    /// [`Client::answers`].
    pub fn on_signal(&mut self) {
        while let Ok(msg) = self.signal_rx.try_recv() {
            if let ServerMessage::Migrate { reason } = &msg {
                self.asked_to_move = Some(reason.clone());
            }
            if let ServerMessage::Offer { sdp } = msg {
                let offer = SdpOffer::from_sdp_string(&sdp).expect("the edge's offer parses");
                let answer = self
                    .rtc
                    .sdp_api()
                    .accept_offer(offer)
                    .expect("the edge's offer applies");
                self.answers.push(answer.to_sdp_string());
            }
        }
    }

    /// A datagram from the edge at `from`.
    pub fn receive(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let input = crate::peer::udp_input(now, from, self.addr, data)
            .expect("the edge sends datagrams str0m can classify");
        self.rtc
            .handle_input(input)
            .expect("the client takes the edge's datagram");
    }

    /// Sends what is due at `now` (media frames, timers).
    pub fn tick(&mut self, now: Instant) {
        if self.timeout <= now {
            self.rtc
                .handle_input(Input::Timeout(now))
                .expect("the client's timer");
        }
        if !(self.publishing && self.connected) {
            return;
        }
        if self.next_video <= now
            && let Some(mid) = self.video
        {
            self.write_video(mid, now);
            self.next_video += FRAME;
        }
        if self.next_audio <= now
            && let Some(mid) = self.audio
        {
            let n = self.sent_audio;
            let mut payload = vec![0xfcu8; 60];
            payload[56..].copy_from_slice(&n.to_be_bytes());
            self.write(
                mid,
                None,
                Codec::Opus,
                now,
                (48_000, u64::from(n) * 960),
                payload,
            );
            self.sent_audio += 1;
            self.next_audio += AUDIO;
        }
    }

    fn write_video(&mut self, mid: Mid, now: Instant) {
        let n = self.sent_frames;
        let layers = if self.simulcast { 0..3 } else { 1..2 };
        for layer in layers {
            let (rid, width, height, delta) = LAYERS[layer];
            let key = std::mem::take(&mut self.keyframe_due[layer]);
            // A VP8 frame tag (RFC 6386 §9.1): bit 0 clear on a keyframe,
            // then the start code and the size; a delta frame only the tag.
            let mut frame = if key {
                let mut f = vec![0x10, 0x00, 0x00, 0x9d, 0x01, 0x2a];
                f.extend_from_slice(&width.to_le_bytes());
                f.extend_from_slice(&height.to_le_bytes());
                f.resize(delta * 3, 0x55);
                f
            } else {
                let mut f = vec![0x11, 0x00, 0x00];
                f.resize(delta, 0x33);
                f
            };
            let len = frame.len();
            frame[len - 5] = layer as u8;
            frame[len - 4..].copy_from_slice(&n.to_be_bytes());
            let rid = self.simulcast.then(|| Rid::from(rid));
            self.write(
                mid,
                rid,
                Codec::Vp8,
                now,
                (90_000, u64::from(n) * 3000),
                frame,
            );
        }
        self.sent_frames += 1;
    }

    fn write(
        &mut self,
        mid: Mid,
        rid: Option<Rid>,
        codec: Codec,
        now: Instant,
        (hz, ts): (u64, u64),
        data: Vec<u8>,
    ) {
        let Some(mut writer) = self.rtc.writer(mid) else {
            return;
        };
        if let Some(rid) = rid {
            writer = writer.rid(rid);
        }
        let Some(pt) = writer
            .payload_params()
            .find(|p| p.spec().codec == codec)
            .map(|p| p.pt())
        else {
            return;
        };
        let time = MediaTime::new(
            ts,
            str0m::media::Frequency::new(hz as u32).expect("a clock rate"),
        );
        writer
            .write(pt, now, time, data)
            .expect("the client writes a frame");
    }

    /// Drains the client's `Rtc`: datagrams to send, events applied.
    pub fn poll(&mut self, mut send: impl FnMut(SocketAddr, Vec<u8>)) {
        // Bounded: str0m returns Timeout once its queues are empty.
        for _ in 0..100_000 {
            match self.rtc.poll_output().expect("the client's poll_output") {
                Output::Timeout(t) => {
                    self.timeout = t;
                    return;
                }
                Output::Transmit(t) => send(t.destination, t.contents.to_vec()),
                Output::Event(ev) => self.on_event(ev),
            }
        }
        panic!("client {} did not reach a timeout", self.name);
    }

    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Connected => self.connected = true,
            Event::KeyframeRequest(r) if Some(r.mid) == self.video => {
                self.keyframe_requests += 1;
                let layer = r
                    .rid
                    .and_then(|rid| LAYERS.iter().position(|l| Rid::from(l.0) == rid));
                match layer {
                    Some(l) => self.keyframe_due[l] = true,
                    None => self.keyframe_due = [true; 3],
                }
            }
            Event::MediaAdded(m) if m.direction == Direction::RecvOnly => {
                self.tracks.insert(
                    m.mid,
                    Track {
                        video: m.kind == MediaKind::Video,
                        ..Track::default()
                    },
                );
            }
            Event::MediaData(d) => {
                if let Some(t) = self.tracks.get_mut(&d.mid)
                    && d.data.len() >= 4
                {
                    t.last_at = Some(d.network_time);
                    let len = d.data.len();
                    let n = u32::from_be_bytes(d.data[len - 4..].try_into().expect("4 bytes"));
                    t.frames.push(n);
                    t.layers.push(if t.video { d.data[len - 5] } else { 0 });
                    // VP8's frame tag: bit 0 clear on a keyframe.
                    if t.video && d.data[0] & 1 == 0 {
                        t.keyframes.push(n);
                    }
                }
            }
            _ => {}
        }
    }

    /// The video tracks it receives.
    pub fn video_tracks(&self) -> impl Iterator<Item = &Track> {
        self.tracks.values().filter(|t| t.video)
    }
}
