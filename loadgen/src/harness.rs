//! What every run shares, whatever it loads (edge, relay floor, a peer
//! SFU): the phase channel and session environment, and the run's phases —
//! wait for setup, publish and drain, collect the results.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::warn;

use crate::plan::{Phase, SessionEvent, SessionResult};
use crate::run::Config;
use crate::session::SessionEnv;
use crate::stamp::Clock;

/// The phase channel, event channel and environment every session shares.
pub(crate) struct Harness {
    pub(crate) phase: watch::Sender<Phase>,
    pub(crate) events: mpsc::UnboundedReceiver<SessionEvent>,
    pub(crate) env: SessionEnv,
}

pub(crate) fn harness(cfg: &Config, sessions: usize) -> Harness {
    let (phase, phase_rx) = watch::channel(Phase::Setup);
    let (events_tx, events) = mpsc::unbounded_channel();
    let now = Instant::now();
    let deadline = now
        + cfg.ramp * sessions as u32
        + cfg.setup_timeout
        + cfg.duration
        + cfg.drain
        + Duration::from_secs(30);
    Harness {
        phase,
        events,
        env: SessionEnv {
            clock: Clock::new(now),
            media: cfg.media,
            crypto: Arc::new(str0m::crypto::from_feature_flags()),
            phase: phase_rx,
            events: events_tx,
            seed: cfg.seed,
            deadline,
            bind: cfg
                .bind
                .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
        },
    }
}

/// Waits until every session is ready or failed, or the setup time is up.
pub(crate) async fn wait_setup(h: &mut Harness, sessions: usize, timeout: Duration) -> usize {
    let until = Instant::now() + timeout;
    let (mut ready, mut failed) = (HashSet::new(), HashSet::new());
    while ready.len() + failed.len() < sessions {
        match tokio::time::timeout_at(until.into(), h.events.recv()).await {
            Ok(Some(SessionEvent::Ready(i))) => {
                ready.insert(i);
            }
            Ok(Some(SessionEvent::Failed(i, _))) => {
                ready.remove(&i);
                failed.insert(i);
            }
            Ok(None) | Err(_) => break,
        }
    }
    if ready.len() < sessions {
        warn!(
            ready = ready.len(),
            failed = failed.len(),
            sessions,
            "setup ended with sessions not ready; publishing anyway"
        );
    }
    ready.len()
}

/// Runs the publish and drain phases; returns when publishing started and ended.
pub(crate) async fn publish(h: &Harness, cfg: &Config) -> (Instant, Instant) {
    // A little ahead, so every session sees the phase before its first frame is due.
    let start = Instant::now() + Duration::from_millis(50);
    let _ = h.phase.send(Phase::Publish(start));
    tokio::time::sleep_until((start + cfg.duration).into()).await;
    let _ = h.phase.send(Phase::Drain);
    let end = Instant::now();
    tokio::time::sleep(cfg.drain).await;
    (start, end)
}

pub(crate) async fn collect(
    h: &Harness,
    handles: Vec<JoinHandle<SessionResult>>,
) -> Vec<SessionResult> {
    let _ = h.phase.send(Phase::Stop);
    let until = Instant::now() + Duration::from_secs(15);
    let mut out = Vec::with_capacity(handles.len());
    for (i, mut handle) in handles.into_iter().enumerate() {
        match tokio::time::timeout_at(until.into(), &mut handle).await {
            Ok(Ok(r)) => out.push(r),
            Ok(Err(_)) | Err(_) => {
                handle.abort();
                out.push(SessionResult {
                    index: i,
                    failure: Some("no_result".into()),
                    ..Default::default()
                });
            }
        }
    }
    out
}
