//! One WebRTC participant against an edge: a WebSocket `Member` session
//! (docs/PROTOCOL.md) and a str0m `Rtc` on its own UDP socket (loopback,
//! or the run's `bind` address). Against Janus (the peer benchmark) the
//! same client signals through a VideoRoom handle instead ([`janus`]).
//!
//! Drive shape (str0m's): every input — a datagram, a signaling message, a
//! timeout, a frame write — is one mutation of the `Rtc`, followed by
//! draining `poll_output` until it returns `Timeout`. The task waits for
//! the soonest of: a datagram, a signaling message, a phase change, the
//! `Rtc`'s timeout, or the next frame due.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use str0m::change::{SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Mid, Pt, Rid};
use str0m::net::{Protocol, Receive};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracing::{debug, trace};

use crate::plan::{Phase, SessionEvent, SessionPlan, SessionResult};
use crate::sdp::PtKinds;
use crate::source::{MediaConfig, OutFrame, PublisherMedia, RIDS};
use crate::stamp::{Clock, Kind};

mod janus_start;
mod signaling;
use crate::janus::{JanusEvent, JanusLink};
use signaling::{msg_type, send_json};

/// How long the WebSocket connect, the `joined` and the `answer` may take.
const SIGNAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest datagram read.
const RECV_BUF: usize = 2048;
/// Datagrams read per wake-up before going back to the other inputs.
const RECV_BATCH: usize = 64;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What every session of a run shares.
#[derive(Clone)]
pub struct SessionEnv {
    /// The run's clock (stamps and delays).
    pub clock: Clock,
    /// What publishers send.
    pub media: MediaConfig,
    /// One DTLS/SRTP provider for every `Rtc`.
    pub crypto: Arc<str0m::crypto::CryptoProvider>,
    /// The run's phase.
    pub phase: watch::Receiver<Phase>,
    /// Setup progress.
    pub events: mpsc::UnboundedSender<SessionEvent>,
    /// Seed for frame sizes.
    pub seed: u64,
    /// No session outlives this.
    pub deadline: Instant,
    /// The address sessions bind their UDP sockets to.
    pub bind: std::net::IpAddr,
}

impl SessionEnv {
    /// What `plan`'s publisher sends from `start` (None if it only receives).
    pub fn publisher_media(&self, plan: &SessionPlan, start: Instant) -> Option<PublisherMedia> {
        let source = plan.source?;
        let mut media = PublisherMedia::new(
            source,
            &self.media,
            self.seed ^ u64::from(source).wrapping_mul(0x9e37_79b9),
            start + crate::source::phase_offset(source),
        );
        media.set_talking(plan.talks);
        Some(media)
    }
}

/// Where a session signals.
pub enum Target {
    /// An edge's WebSocket (`/v1/rtc`) with a join token.
    Edge {
        /// The WebSocket URL.
        ws_url: String,
        /// The join token.
        token: String,
    },
    /// A Janus VideoRoom over the Janus API's WebSocket.
    Janus {
        /// Its URL (`ws://host:8188`).
        url: String,
    },
}

/// Runs one session to the end of the run; never panics on network input.
pub async fn run(plan: SessionPlan, target: Target, env: SessionEnv) -> SessionResult {
    let index = plan.index;
    let events = env.events.clone();
    let mut result = SessionResult {
        index,
        ..Default::default()
    };
    let started = match target {
        Target::Edge { ws_url, token } => Client::start(plan, &ws_url, &token, env).await,
        Target::Janus { url } => Client::start_janus(plan, &url, env).await,
    };
    match started {
        Ok(mut c) => {
            c.drive().await;
            c.finish(&mut result).await;
        }
        Err(why) => {
            debug!(session = index, "failed to start: {why}");
            result.failure = Some(why);
        }
    }
    if let Some(why) = &result.failure {
        let _ = events.send(SessionEvent::Failed(index, why.clone()));
    }
    result
}

/// A media line the session sends on, and its payload type once known.
type Slot = (Mid, Option<Pt>);

/// A session's signaling channel.
enum Signal {
    Edge(Box<Ws>),
    Janus(Box<JanusLink>),
}

impl Signal {
    fn ws(&mut self) -> &mut Ws {
        match self {
            Signal::Edge(ws) => ws,
            Signal::Janus(j) => j.ws(),
        }
    }
}

struct Client {
    plan: SessionPlan,
    env: SessionEnv,
    rtc: Rtc,
    sock: UdpSocket,
    local: std::net::SocketAddr,
    sig: Signal,
    pending: Option<SdpPendingOffer>,
    pts: PtKinds,
    own_mids: Vec<Mid>,
    video: Option<Slot>,
    audio: Option<Slot>,
    remote_tracks: usize,
    connected: bool,
    ready_sent: bool,
    publish_from: Option<Instant>,
    media: Option<PublisherMedia>,
    counting: bool,
    stopping: bool,
    next_timeout: Instant,
    frames: Vec<OutFrame>,
    rtp: crate::rtp_io::RtpIo,
    /// Speaker view: the participant id on the stage, once known.
    stage_id: Option<String>,
    result: SessionResult,
}

impl Client {
    fn fail(&mut self, why: &str) {
        if self.result.failure.is_none() && !self.stopping {
            debug!(session = self.plan.index, "session failed: {why}");
            self.result.failure = Some(why.to_string());
        }
    }

    /// The main loop; returns at `Phase::Stop`, on failure, or at the deadline.
    async fn drive(&mut self) {
        let mut buf = vec![0u8; RECV_BUF];
        let mut phase = self.env.phase.clone();
        self.on_phase(*phase.borrow_and_update());
        // Bounded by the deadline: every pass waits for an input or a timer.
        while !self.stopping && self.result.failure.is_none() {
            let now = Instant::now();
            if now >= self.env.deadline {
                self.fail("deadline");
                break;
            }
            if now >= self.next_timeout {
                if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
                    self.fail(&format!("rtc: {e}"));
                    break;
                }
                self.drain();
            }
            self.write_due_frames(now);
            if let Signal::Janus(j) = &mut self.sig {
                if let Some(v) = j.take_pending() {
                    self.on_janus(&v).await;
                    continue;
                }
                if now >= j.keepalive_at
                    && let Err(e) = j.keepalive().await
                {
                    self.fail(&e);
                    break;
                }
            }
            let mut wake = self.next_timeout.min(self.env.deadline);
            if let Signal::Janus(j) = &self.sig {
                wake = wake.min(j.keepalive_at);
            }
            if let Some(m) = self.media.as_ref().filter(|_| self.publish_from.is_some()) {
                wake = wake.min(m.next_due());
            }
            tokio::select! {
                biased;
                r = phase.changed() => {
                    let p = if r.is_ok() { *phase.borrow_and_update() } else { Phase::Stop };
                    self.on_phase(p);
                }
                m = self.sig.ws().next() => self.on_ws(m).await,
                r = self.sock.recv_from(&mut buf) => {
                    match r {
                        Ok((n, from)) => self.on_datagram(&buf[..n], from),
                        Err(e) => trace!("udp recv: {e}"),
                    }
                    for _ in 0..RECV_BATCH {
                        match self.sock.try_recv_from(&mut buf) {
                            Ok((n, from)) => self.on_datagram(&buf[..n], from),
                            Err(_) => break,
                        }
                    }
                }
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }

    fn on_phase(&mut self, p: Phase) {
        match p {
            Phase::Setup => {}
            Phase::Publish(start) => {
                // Count only the measured window.
                self.result.sent = Default::default();
                self.result.tx = Default::default();
                self.result.rx = Default::default();
                self.result.recv = Default::default();
                self.counting = true;
                if self.plan.source.is_some() {
                    self.media = self.env.publisher_media(&self.plan, start);
                    self.publish_from = Some(start);
                }
            }
            Phase::Drain => self.publish_from = None,
            Phase::Stop => self.stopping = true,
        }
    }

    async fn on_ws(&mut self, m: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>) {
        let text = match m {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(_))) | None => return self.fail("ws_closed"),
            Some(Ok(_)) => return,
            Some(Err(e)) => return self.fail(&format!("ws_error: {e}")),
        };
        let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else {
            return;
        };
        if let Signal::Janus(_) = self.sig {
            return self.on_janus(&v).await;
        }
        match msg_type(&v) {
            "offer" => {
                let sdp = v.get("sdp").and_then(Value::as_str).unwrap_or("");
                let Some(answer) = self.answer(sdp) else {
                    return;
                };
                if let Err(e) =
                    send_json(self.sig.ws(), json!({"type": "answer", "sdp": answer})).await
                {
                    self.fail(&e);
                }
                self.check_ready();
            }
            "participant_joined" if self.stage_id.is_none() => {
                let Some(id) = v
                    .get("participant")
                    .and_then(|e| signaling::stage_entry(&self.plan, e))
                else {
                    return;
                };
                let c = signaling::constraints(&self.plan, Some(&id));
                self.stage_id = Some(id);
                if let Some(c) = c
                    && let Err(e) = send_json(self.sig.ws(), c).await
                {
                    self.fail(&e);
                }
            }
            "error" if v.get("fatal").and_then(Value::as_bool) == Some(true) => {
                let code = v.get("code").and_then(Value::as_str).unwrap_or("error");
                self.fail(&format!("edge_error: {code}"));
            }
            _ => {}
        }
    }

    /// Answers a server's offer; `None` (and the session failed) if it
    /// cannot be accepted.
    fn answer(&mut self, sdp: &str) -> Option<String> {
        self.pts.learn(sdp);
        let offer = match SdpOffer::from_sdp_string(sdp) {
            Ok(o) => o,
            Err(e) => {
                self.fail(&format!("bad_server_offer: {e}"));
                return None;
            }
        };
        let answer = match self.rtc.sdp_api().accept_offer(offer) {
            Ok(a) => a.to_sdp_string(),
            Err(e) => {
                self.fail(&format!("bad_server_offer: {e}"));
                return None;
            }
        };
        self.pts.learn(&answer);
        self.drain();
        Some(answer)
    }

    /// A Janus message outside a request.
    async fn on_janus(&mut self, v: &Value) {
        match crate::janus::event(v) {
            JanusEvent::Gone(why) => self.fail(&why),
            JanusEvent::Candidate(c) => match str0m::Candidate::from_sdp_string(&c) {
                Ok(c) => {
                    self.rtc.add_remote_candidate(c);
                    self.drain();
                }
                Err(e) => trace!("janus candidate {c}: {e}"),
            },
            JanusEvent::Offer(sdp) => {
                let Some(answer) = self.answer(&sdp) else {
                    return;
                };
                let until = Instant::now() + SIGNAL_TIMEOUT;
                if let Signal::Janus(j) = &mut self.sig
                    && let Err(e) = j.start(&answer, until).await
                {
                    self.fail(&e);
                }
                self.check_ready();
            }
            JanusEvent::Other => {}
        }
    }

    fn on_datagram(&mut self, data: &[u8], from: std::net::SocketAddr) {
        let now = Instant::now();
        if self.counting {
            match self.pts.classify(data) {
                Some(k) => self.result.rx.media(k, data.len()),
                None => self.result.rx.other += 1,
            }
        }
        let Ok(contents) = data.try_into() else {
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source: from,
                destination: self.local,
                contents,
            },
        );
        if let Err(e) = self.rtc.handle_input(input) {
            trace!(session = self.plan.index, "handle_input: {e}");
        }
        self.drain();
    }

    fn pt_for(&mut self, kind: Kind) -> Option<(Mid, Pt)> {
        let slot = match kind {
            Kind::Video => &mut self.video,
            Kind::Audio => &mut self.audio,
        };
        let (mid, pt) = slot.as_mut()?;
        if pt.is_none() {
            let want = match kind {
                Kind::Video => Codec::Vp8,
                Kind::Audio => Codec::Opus,
            };
            // Negotiated: the answer to our offer keeps our payload types,
            // and accepting a server's offer takes its types.
            *pt = self
                .rtc
                .codec_config()
                .params()
                .iter()
                .find(|p| p.spec().codec == want)
                .map(|p| p.pt());
        }
        Some((*mid, (*pt)?))
    }

    fn write_due_frames(&mut self, now: Instant) {
        if self.publish_from.is_none() || !self.connected {
            return;
        }
        let Some(media) = self.media.as_mut() else {
            return;
        };
        if media.next_due() > now {
            return;
        }
        let mut frames = std::mem::take(&mut self.frames);
        media.poll(now, &self.env.clock, &mut frames);
        for f in frames.drain(..) {
            let Some((mid, pt)) = self.pt_for(f.key.kind) else {
                self.result.sent.write_errors += 1;
                continue;
            };
            let rid = (self.env.media.simulcast && f.key.kind == Kind::Video)
                .then(|| Rid::from(RIDS[usize::from(f.key.layer)]));
            let written =
                self.rtp
                    .write_frame(&mut self.rtc, (mid, rid, pt), &f, self.env.seed, now);
            match written {
                Ok(()) => self.result.sent.frame(f.key.kind, f.data.len(), f.keyframe),
                Err(e) => {
                    trace!(session = self.plan.index, "write: {e}");
                    self.result.sent.write_errors += 1;
                }
            }
        }
        self.frames = frames;
        self.drain();
    }

    fn check_ready(&mut self) {
        if !self.ready_sent
            && self.connected
            && self.pending.is_none()
            && self.remote_tracks >= self.plan.expected_tracks
        {
            self.ready_sent = true;
            let _ = self.env.events.send(SessionEvent::Ready(self.plan.index));
        }
    }

    /// Drains the `Rtc` to its next timeout (str0m's rule after every mutation).
    fn drain(&mut self) {
        // Bounded: str0m returns Timeout once its queues are empty.
        for _ in 0..100_000 {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next_timeout = t;
                    return;
                }
                Ok(Output::Transmit(t)) => {
                    if self.counting {
                        match self.pts.classify(&t.contents) {
                            Some(k) => self.result.tx.media(k, t.contents.len()),
                            None => self.result.tx.other += 1,
                        }
                    }
                    if self.sock.try_send_to(&t.contents, t.destination).is_err() {
                        trace!(session = self.plan.index, "udp send dropped");
                    }
                }
                Ok(Output::Event(e)) => self.on_event(e),
                Err(e) => {
                    self.fail(&format!("rtc: {e}"));
                    self.next_timeout = Instant::now() + Duration::from_millis(10);
                    return;
                }
            }
        }
        self.next_timeout = Instant::now() + Duration::from_millis(1);
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::Connected => {
                self.connected = true;
                self.result.connected = true;
                self.check_ready();
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.fail("ice_disconnected");
            }
            Event::MediaAdded(m)
                if !self.own_mids.contains(&m.mid) && m.direction == Direction::RecvOnly =>
            {
                self.remote_tracks += 1;
                self.check_ready();
            }
            Event::RtpPacket(p) => {
                if !self.counting {
                    return;
                }
                let Some(kind) = self.pts.kind(*p.header.payload_type) else {
                    self.result.recv.bad_frames += 1;
                    return;
                };
                if let Some(frame) = self.rtp.on_packet(kind, &p) {
                    let now_us = self.env.clock.micros(Instant::now());
                    let _ = self.result.recv.on_frame(kind, &frame, now_us);
                }
            }
            Event::KeyframeRequest(r) => {
                if let Some(m) = self.media.as_mut() {
                    let layer = r
                        .rid
                        .and_then(|rid| RIDS.iter().position(|x| Rid::from(*x) == rid));
                    m.request_keyframe(layer);
                }
            }
            _ => {}
        }
    }

    /// Leaves cleanly and hands back what was counted.
    async fn finish(&mut self, out: &mut SessionResult) {
        self.stopping = true;
        match &mut self.sig {
            Signal::Edge(ws) => {
                let _ = send_json(ws, json!({"type": "leave"})).await;
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
            }
            Signal::Janus(j) => j.destroy().await,
        }
        self.rtc.disconnect();
        self.drain();
        let mut r = std::mem::take(&mut self.result);
        r.index = self.plan.index;
        if let Some(m) = &self.media {
            r.sent_streams = m.sent();
            r.skipped_frames = m.skipped();
        }
        *out = r;
    }
}
