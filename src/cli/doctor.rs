//! `geomesh doctor [--topology FILE] [--selector URL] [--json]`: checks what
//! breaks multi-region meshes and what operators get wrong most, each as
//! pass or fail with the fix in one line. Exit 0 when everything passes, 1
//! otherwise.
//!
//! It reads a selector's `GET /v1/status` (what every node reports in its
//! heartbeats or `/healthz`) and `GET /v1/doctor` (the selector sends a
//! STUN binding request to every edge's advertised media address), and
//! with `--topology` compares the file and its certificates too.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use geomesh_selector::status::{ClusterStatus, MediaProbes};
use serde::Serialize;

/// Check the cluster for the common mistakes.
#[derive(clap::Args)]
pub struct Args {
    /// The topology the cluster should run: every edge in it must be up,
    /// and every node must run this file. Default: the `geomesh dev` mesh's.
    #[arg(long)]
    topology: Option<PathBuf>,
    /// A selector's public API (repeatable or comma-separated). Default:
    /// the `geomesh dev` mesh running here.
    #[arg(long = "selector", env = "GEOMESH_SELECTOR", value_delimiter = ',')]
    selectors: Vec<String>,
    /// A file holding the operator token (the media probe needs it).
    /// Default: the `geomesh dev` mesh's.
    #[arg(long, env = "GEOMESH_OPERATOR_TOKEN")]
    operator_token: Option<PathBuf>,
    /// The checks as JSON.
    #[arg(long)]
    json: bool,
}

/// A node's clock may be this far off before tokens misbehave (join
/// tokens and grants allow 30 s of skew; half of that is spent here).
const MAX_CLOCK_OFFSET_MS: i64 = 5_000;
/// Certificates expiring sooner than this fail.
const MIN_CERT_DAYS: i64 = 14;
/// A selector this far behind the leader's log fails.
const MAX_LAG: u64 = 1_000;

/// One check's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What kind of check.
    pub check: &'static str,
    /// The node or pair it is about.
    pub subject: String,
    /// Passed.
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// What to do when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<&'static str>,
}

#[derive(Serialize)]
struct Report<'a> {
    ok: bool,
    checks: &'a [Check],
}

impl Args {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let selectors = super::operator::selectors(&self.selectors)?;
        let topology_path = self
            .topology
            .clone()
            .or_else(|| super::operator::dev_admin().map(|(t, _, _)| t));
        let topology = topology_path
            .as_ref()
            .map(|p| super::load_topology(p))
            .transpose()?;
        let token = super::operator::token(self.operator_token.as_ref())?;
        let (status, probes) = rt.block_on(async {
            let status = super::status::fetch(&selectors).await?;
            let probes = fetch_probes(&selectors, &token).await?;
            anyhow::Ok((status, probes))
        })?;
        let now = geomesh_core::grant::unix_now();
        let checks = run_checks(&status, &probes, topology.as_ref(), now);
        let ok = checks.iter().all(|c| c.ok);
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&Report {
                    ok,
                    checks: &checks
                })?
            );
        } else {
            for c in &checks {
                let mark = if c.ok { "PASS" } else { "FAIL" };
                println!("{mark} {:<12} {}: {}", c.check, c.subject, c.detail);
                if let (false, Some(fix)) = (c.ok, c.fix) {
                    println!("     fix: {fix}");
                }
            }
            let failed = checks.iter().filter(|c| !c.ok).count();
            println!(
                "\n{} checks, {} failed",
                checks.len(),
                if failed == 0 {
                    "none".to_string()
                } else {
                    failed.to_string()
                }
            );
        }
        Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
}

async fn fetch_probes(selectors: &[String], token: &str) -> anyhow::Result<MediaProbes> {
    // Probing waits for answers: a few seconds per unreachable address.
    super::operator::first_answer::<MediaProbes>(
        selectors,
        "/v1/doctor",
        Some(token),
        Duration::from_secs(30),
    )
    .await
}

fn check(
    out: &mut Vec<Check>,
    check: &'static str,
    subject: impl Into<String>,
    ok: bool,
    detail: impl Into<String>,
    fix: &'static str,
) {
    out.push(Check {
        check,
        subject: subject.into(),
        ok,
        detail: detail.into(),
        fix: (!ok).then_some(fix),
    });
}

/// Every check, from what the cluster reported at `now` (Unix s).
pub fn run_checks(
    s: &ClusterStatus,
    probes: &MediaProbes,
    topology: Option<&geomesh_core::Topology>,
    now: u64,
) -> Vec<Check> {
    let mut out = Vec::new();

    // Edges: registered and heartbeating. The topology's must all be.
    let mut expected: BTreeSet<String> = s
        .edges
        .iter()
        .filter(|e| e.in_topology || e.registered)
        .map(|e| e.id.to_string())
        .collect();
    if let Some(t) = topology {
        expected.extend(t.edges.iter().map(|e| e.id.to_string()));
    }
    for id in &expected {
        let e = s.edges.iter().find(|e| e.id.as_str() == id);
        let (ok, detail) = match e {
            None => (false, "unknown to the selectors".to_string()),
            Some(e) if !e.registered => (false, "never registered with the selectors".into()),
            Some(e) if !e.healthy => (
                false,
                match e.heartbeat_age_ms {
                    Some(ms) => format!(
                        "silent for {:.0} s (registered, no heartbeat)",
                        ms as f64 / 1000.0
                    ),
                    None => "registered, but no heartbeat since this selector started".into(),
                },
            ),
            Some(e) => (
                true,
                format!("registered, heartbeating ({} participants)", e.participants),
            ),
        };
        check(
            &mut out,
            "edge",
            id,
            ok,
            detail,
            "is the process running? its certificate must come from this cluster's CA (geomesh certs add), its topology must list the selectors' raft addresses, and its clock must be right",
        );
    }

    // Media: the advertised address answers STUN from a selector.
    for p in &probes.probes {
        let detail = if p.answered {
            format!(
                "udp {} answers STUN from {} in {:.1} ms",
                p.media,
                probes.selector,
                p.rtt_ms.unwrap_or(0.0)
            )
        } else {
            format!(
                "udp {} does not answer STUN from {} ({})",
                p.media,
                probes.selector,
                p.error.as_deref().unwrap_or("no answer")
            )
        };
        check(
            &mut out,
            "media",
            p.edge.as_str(),
            p.answered,
            detail,
            "its topology public_ip:media_port must be the address clients reach (behind NAT: the public one), and the firewall must let UDP in on that port — else video connects but no media flows",
        );
    }

    // Octo: every pair of live edges has a link up (either side says so).
    let live: Vec<_> = s.edges.iter().filter(|e| e.healthy).collect();
    for (i, a) in live.iter().enumerate() {
        for b in &live[i + 1..] {
            let said = |x: &geomesh_selector::status::EdgeView, y: &geomesh_core::EdgeId| {
                x.links
                    .iter()
                    .find(|l| &l.edge == y)
                    .map(|l| (l.state.as_deref() != Some("down"), l.rtt_ms))
            };
            let (ab, ba) = (said(a, &b.id), said(b, &a.id));
            let up = ab.is_some_and(|x| x.0) || ba.is_some_and(|x| x.0);
            let rtt = ab.or(ba).map_or(0.0, |x| x.1);
            check(
                &mut out,
                "octo",
                format!("{} <-> {}", a.id, b.id),
                up,
                if up {
                    format!("link up, rtt {rtt:.1} ms")
                } else {
                    "no live octo link".into()
                },
                "the edges' octo UDP ports must be open to each other, and both must run certificates of this cluster's CA",
            );
        }
    }

    // Certificates: days left, on every node that says.
    let days = |not_after: u64| (not_after as i64 - now as i64) / 86_400;
    let mut certs: Vec<(String, u64)> = s
        .edges
        .iter()
        .filter_map(|e| Some((e.id.to_string(), e.about.as_ref()?.cert_not_after)))
        .collect();
    certs.extend(
        s.selectors
            .iter()
            .filter_map(|n| Some((n.id.clone(), n.health.as_ref()?.about.cert_not_after))),
    );
    for (node, not_after) in certs.into_iter().filter(|(_, t)| *t > 0) {
        let d = days(not_after);
        check(
            &mut out,
            "certificate",
            node,
            d >= MIN_CERT_DAYS,
            if d < 0 {
                format!("expired {} days ago", -d)
            } else {
                format!("expires in {d} days")
            },
            "issue new node certificates with the cluster CA (geomesh certs add, or certs init --force for a new CA) and restart the node",
        );
    }
    if let Some(t) = topology {
        local_certificates(&mut out, t);
    }

    // Token keys: every edge verifies with the key the selectors sign with.
    let selector_keys: BTreeSet<&str> = s
        .selectors
        .iter()
        .filter_map(|n| Some(n.health.as_ref()?.about.token_key.as_str()))
        .collect();
    check(
        &mut out,
        "token-key",
        "selectors",
        selector_keys.len() <= 1,
        format!("selectors sign join tokens with {selector_keys:?}"),
        "every selector must have the same token.key (the one `geomesh certs init` wrote)",
    );
    let signing = selector_keys.iter().next().copied();
    for e in s.edges.iter().filter(|e| e.healthy) {
        let Some(a) = &e.about else { continue };
        let ok = signing.is_none_or(|k| k == a.token_key);
        check(
            &mut out,
            "token-key",
            e.id.as_str(),
            ok,
            format!(
                "verifies join tokens with key {} (selectors sign with {})",
                a.token_key,
                signing.unwrap_or("?")
            ),
            "copy the cluster's token.pub to the edge's credentials directory (it must match the selectors' token.key) and restart it: else every join is refused there",
        );
    }

    // Clocks: offsets from the answering selector.
    let mut clocks: Vec<(String, i64)> = s
        .edges
        .iter()
        .filter(|e| e.healthy)
        .filter_map(|e| Some((e.id.to_string(), e.clock_offset_ms?)))
        .collect();
    clocks.extend(
        s.selectors
            .iter()
            .filter_map(|n| Some((n.id.clone(), n.clock_offset_ms?))),
    );
    for (node, off) in clocks {
        check(
            &mut out,
            "clock",
            node,
            off.abs() <= MAX_CLOCK_OFFSET_MS,
            format!("{off:+} ms from {}'s clock", s.selector),
            "run NTP (chrony or systemd-timesyncd) on every node: join tokens and grants expire by the clock",
        );
    }

    // Topology drift: every node runs the same one (and the file given).
    let mut hashes: Vec<(String, String)> = s
        .selectors
        .iter()
        .filter_map(|n| Some((n.id.clone(), n.health.as_ref()?.about.topology_hash.clone())))
        .collect();
    hashes.extend(
        s.edges
            .iter()
            .filter(|e| e.healthy)
            .filter_map(|e| Some((e.id.to_string(), e.about.as_ref()?.topology_hash.clone()))),
    );
    let reference = topology.map_or_else(|| s.topology_hash.clone(), |t| t.hash());
    for (node, h) in hashes {
        check(
            &mut out,
            "topology",
            node,
            h == reference,
            if h == reference {
                format!("runs topology {h}")
            } else {
                format!("runs topology {h}, not {reference}")
            },
            "deploy the same topology.yaml to every node and restart the ones that differ",
        );
    }

    // Selectors: a leader, everyone reachable and caught up.
    check(
        &mut out,
        "raft",
        "leader",
        s.leader.is_some(),
        s.leader
            .as_ref()
            .map_or("no leader".into(), |l| format!("{l} leads")),
        "a majority of the selectors must be running and reach each other on their raft addresses",
    );
    for n in &s.selectors {
        let (ok, detail) = match (&n.health, n.lag) {
            (None, _) => (
                false,
                format!(
                    "unreachable at {}: {}",
                    n.api,
                    n.error.as_deref().unwrap_or("?")
                ),
            ),
            (Some(h), Some(lag)) if lag > MAX_LAG => (
                false,
                format!("{} , {lag} entries behind the leader", h.raft_role),
            ),
            (Some(h), lag) => (
                true,
                format!(
                    "{}, term {}, {} behind",
                    h.raft_role,
                    h.term,
                    lag.unwrap_or(0)
                ),
            ),
        };
        check(
            &mut out,
            "raft",
            n.id.as_str(),
            ok,
            detail,
            "start the selector, or check that the others reach its raft address (geomesh selector status)",
        );
    }
    out
}

/// The certificate files of the topology's credentials directory: there,
/// naming the node they are for.
fn local_certificates(out: &mut Vec<Check>, t: &geomesh_core::Topology) {
    if !t.tls.dir.is_dir() {
        return; // not on this machine: the live checks above cover them
    }
    let ids = t
        .edges
        .iter()
        .map(|e| e.id.to_string())
        .chain(t.selectors.iter().map(|s| s.id.to_string()));
    for id in ids {
        let path = t.tls.node_cert(&id);
        let named = std::fs::read(&path).context("reading").and_then(|pem| {
            geomesh_core::credentials::pem_identity(&pem).map_err(anyhow::Error::new)
        });
        let (ok, detail) = match named {
            Ok((_, who)) if who == id => (true, format!("{} names {who}", path.display())),
            Ok((_, who)) => (false, format!("{} names {who}, not {id}", path.display())),
            Err(e) => (false, format!("{}: {e:#}", path.display())),
        };
        check(
            out,
            "certificate",
            format!("{id} (file)"),
            ok,
            detail,
            "issue the node's certificate with geomesh certs add (it writes nodes/<id>.pem for nodes added to the topology)",
        );
    }
}
