//! The load through a peer SFU instead of the edge, for the side-by-side
//! benchmark of issue #19 (scripts/bench-peers.sh): the same plan, media,
//! clients and accounting; only the signaling differs ([`crate::janus`]).
//! The benchmark's mediasoup server (scripts/peers/mediasoup/server.mjs)
//! speaks the same Janus API subset, so one adapter drives both.
//! The server's CPU comes from `/proc/<pid>/stat` (`--server-pid`): the
//! peers have no metrics endpoint that the edge's figures could be read
//! from.

use std::time::Instant;

use crate::error::LoadgenError;
use crate::harness::{collect, harness, publish, wait_setup};
use crate::plan::{SessionPlan, SessionResult};
use crate::report::{Report, Server};
use crate::run::{Config, plan, process_cpu_seconds, run_id, socket_drops};
use crate::session::Target;
use crate::sockdrops;

/// User + system CPU seconds of process `pid` (all its threads).
pub fn pid_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    geomesh_core::proc_stat::cpu_seconds(&stat)
}

/// Janus's sessions for a run's plans: a participant that publishes is a
/// publisher handle and, if it receives, a subscriber handle (Janus gives
/// each direction its own PeerConnection); a receive-only one is a
/// subscriber handle. Indices are renumbered in that order.
pub fn janus_sessions(plans: Vec<SessionPlan>) -> Vec<SessionPlan> {
    let mut out: Vec<SessionPlan> = Vec::with_capacity(plans.len() * 2);
    for p in plans {
        if p.source.is_some() {
            let mut publisher = p.clone();
            publisher.receives.clear();
            publisher.expected_tracks = 0;
            out.push(publisher);
            if !p.receives.is_empty() {
                let mut subscriber = p;
                subscriber.source = None;
                subscriber.name = format!("{}-sub", subscriber.name);
                out.push(subscriber);
            }
        } else {
            out.push(p);
        }
    }
    for (i, p) in out.iter_mut().enumerate() {
        p.index = i;
    }
    out
}

/// Runs the load through the peer `server` (`janus`, `mediasoup`: the
/// report's name) whose Janus API WebSocket is at `url`.
pub async fn run_peer(cfg: &Config, name: &str, url: &str) -> Result<Report, LoadgenError> {
    let run = cfg.run_id.clone().unwrap_or_else(run_id);
    let plans = janus_sessions(plan(cfg, &run, 1));
    let mut h = harness(cfg, plans.len());
    let mut handles = Vec::with_capacity(plans.len());
    for p in &plans {
        let env = h.env.clone();
        let p = p.clone();
        let target = Target::Janus {
            url: url.to_string(),
        };
        let delay = cfg.ramp * p.index as u32;
        handles.push(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            crate::session::run(p, target, env).await
        }));
    }
    let ready = wait_setup(
        &mut h,
        plans.len(),
        cfg.setup_timeout + cfg.ramp * plans.len() as u32,
    )
    .await;
    // Every process's, or none: a partial sum would flatter the server.
    let server_cpu = || -> Option<f64> {
        if cfg.server_pids.is_empty() {
            return None;
        }
        cfg.server_pids.iter().map(|p| pid_cpu_seconds(*p)).sum()
    };
    let before = server_cpu();
    let drops0 = sockdrops::drops_by_port();
    let cpu0 = process_cpu_seconds();
    let (start, end) = publish(&h, cfg).await;
    let after = server_cpu();
    let drops1 = sockdrops::drops_by_port();
    let loadgen_cpu = process_cpu_seconds() - cpu0;
    let window_end = Instant::now();
    let results: Vec<SessionResult> = collect(&h, handles).await;
    let (server_drops, client_drops) = socket_drops(&results, &drops0, &drops1);
    let server = Server {
        cpu_seconds: before.zip(after).map(|(b, a)| a - b),
        socket_drops: server_drops,
        ..Default::default()
    };
    let shape = cfg.shape(
        name,
        vec![url.to_string()],
        (end - start).as_secs_f64(),
        (window_end - start).as_secs_f64(),
    );
    let mut report = Report::build(shape, &plans, &results, server, loadgen_cpu);
    report.sessions.ready = ready as u64;
    report.client_socket_drops = client_drops;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(index: usize, source: Option<u32>, receives: Vec<u32>) -> SessionPlan {
        SessionPlan {
            index,
            conference: 0,
            conference_id: "c".into(),
            name: format!("s{index}"),
            edge: 0,
            source,
            expected_tracks: receives.len() * 2,
            receives,
            tile_height: None,
            stage: None,
            talks: true,
        }
    }

    #[test]
    fn a_publisher_that_receives_is_two_janus_sessions() {
        let s = janus_sessions(vec![
            p(0, Some(0), vec![1]),
            p(1, Some(1), vec![0]),
            p(2, None, vec![0, 1]),
        ]);
        let shape: Vec<_> = s
            .iter()
            .map(|x| (x.index, x.source, x.receives.clone(), x.expected_tracks))
            .collect();
        assert_eq!(
            shape,
            vec![
                (0, Some(0), vec![], 0),
                (1, None, vec![1], 2),
                (2, Some(1), vec![], 0),
                (3, None, vec![0], 2),
                (4, None, vec![0, 1], 4),
            ]
        );
    }
}
