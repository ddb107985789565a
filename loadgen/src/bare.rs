//! One participant against the bare relay ([`crate::relay`]): the same
//! frames and schedule as a WebRTC session, sent as plain RTP packets
//! ([`crate::rtp`]) and reassembled on receipt, with the same accounting.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use tokio::net::UdpSocket;

use crate::plan::{Phase, SessionEvent, SessionPlan, SessionResult};
use crate::rtp::{PT_OPUS, PT_VP8, Packetizer, Reassembler, RtpHeader};
use crate::session::SessionEnv;
use crate::source::{OutFrame, PublisherMedia};
use crate::stamp::{Kind, StreamKey};

const RECV_BUF: usize = 2048;
const RECV_BATCH: usize = 64;

/// The SSRC of a stream on the relay path (unique per stream in a run).
pub fn ssrc_of(key: &StreamKey) -> u32 {
    let kind = match key.kind {
        Kind::Audio => 0,
        Kind::Video => 1,
    };
    0x1000_0000 | (key.source << 8) | (kind << 4) | u32::from(key.layer)
}

/// Runs one relay-path session on an already bound socket.
pub async fn run(
    plan: SessionPlan,
    sock: UdpSocket,
    relay: SocketAddr,
    env: SessionEnv,
) -> SessionResult {
    let mut r = SessionResult {
        index: plan.index,
        connected: true,
        local_port: sock.local_addr().ok().map(|a| a.port()),
        server_port: Some(relay.port()),
        ..Default::default()
    };
    let _ = env.events.send(SessionEvent::Ready(plan.index));
    let mut phase = env.phase.clone();
    let mut media: Option<PublisherMedia> = None;
    let mut publishing = false;
    let mut counting = false;
    let mut packetizers: HashMap<StreamKey, Packetizer> = HashMap::new();
    let mut reassemblers: HashMap<u32, Reassembler> = HashMap::new();
    let mut frames: Vec<OutFrame> = Vec::new();
    let mut packets: Vec<Vec<u8>> = Vec::new();
    let mut buf = vec![0u8; RECV_BUF];
    let mut current = *phase.borrow_and_update();
    // Bounded by the deadline: each pass waits for an input or a timer.
    loop {
        match current {
            Phase::Setup => {}
            Phase::Publish(start) => {
                if !counting {
                    counting = true;
                    if plan.source.is_some() {
                        media = env.publisher_media(&plan, start);
                        publishing = true;
                    }
                }
            }
            Phase::Drain => publishing = false,
            Phase::Stop => break,
        }
        let now = Instant::now();
        if now >= env.deadline {
            r.failure = Some("deadline".into());
            break;
        }
        if let Some(m) = media.as_mut().filter(|_| publishing)
            && m.next_due() <= now
        {
            m.poll(now, &env.clock, &mut frames);
            for f in frames.drain(..) {
                let pk = packetizers
                    .entry(f.key)
                    .or_insert_with(|| Packetizer::new(f.key.kind, ssrc_of(&f.key), 0));
                pk.packetize(&f.data, f.rtp_time, &mut packets);
                r.sent.frame(f.key.kind, f.data.len(), f.keyframe);
                for p in packets.drain(..) {
                    match sock.try_send_to(&p, relay) {
                        Ok(_) => r.tx.media(f.key.kind, p.len()),
                        Err(_) => r.sent.write_errors += 1,
                    }
                }
            }
        }
        let mut wake = env.deadline;
        if let Some(m) = media.as_ref().filter(|_| publishing) {
            wake = wake.min(m.next_due());
        }
        tokio::select! {
            biased;
            c = phase.changed() => {
                current = if c.is_ok() { *phase.borrow_and_update() } else { Phase::Stop };
            }
            res = sock.recv_from(&mut buf) => {
                let mut got = res.ok().map(|(n, _)| n);
                for _ in 0..RECV_BATCH {
                    let Some(n) = got else { break };
                    if counting {
                        receive(&buf[..n], &mut reassemblers, &mut r, &env);
                    }
                    got = sock.try_recv_from(&mut buf).ok().map(|(n, _)| n);
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    }
    if let Some(m) = &media {
        r.sent_streams = m.sent();
        r.skipped_frames = m.skipped();
    }
    if let Some(why) = &r.failure {
        let _ = env
            .events
            .send(SessionEvent::Failed(plan.index, why.clone()));
    }
    r
}

fn receive(
    datagram: &[u8],
    reassemblers: &mut HashMap<u32, Reassembler>,
    r: &mut SessionResult,
    env: &SessionEnv,
) {
    let Some((h, payload)) = RtpHeader::parse(datagram) else {
        r.rx.other += 1;
        return;
    };
    match h.pt {
        PT_OPUS => r.rx.media(Kind::Audio, datagram.len()),
        PT_VP8 => r.rx.media(Kind::Video, datagram.len()),
        _ => {
            r.rx.other += 1;
            return;
        }
    }
    if let Some((kind, frame)) = reassemblers.entry(h.ssrc).or_default().push(&h, payload) {
        let now_us = env.clock.micros(Instant::now());
        let _ = r.recv.on_frame(kind, &frame, now_us);
    }
}
