//! `geomesh drain EDGE_ID [--migrate] [--wait]`: take an edge out of
//! service without ending anyone's call, through the selectors' public API
//! (`POST /v1/bridges/{id}/drain`, `GET /v1/bridges`).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use geomesh_core::EdgeId;
use serde_json::{Value, json};

/// Drain an edge: the selectors place nobody new there; with `--migrate`
/// its participants are moved to other edges one by one (their pages
/// rejoin without a reload); with `--wait` the command returns once the
/// edge is empty.
#[derive(clap::Args)]
pub struct Args {
    /// The edge to drain.
    edge: EdgeId,
    /// Move its current participants to other edges, one by one.
    #[arg(long)]
    migrate: bool,
    /// Return only when the edge has no participant left.
    #[arg(long)]
    wait: bool,
    /// Put the edge back in service instead.
    #[arg(long, conflicts_with_all = ["migrate", "wait"])]
    cancel: bool,
    /// A selector's public API (repeatable or comma-separated; tried in
    /// order). Default: the `geomesh dev` mesh running here.
    #[arg(long = "selector", env = "GEOMESH_SELECTOR", value_delimiter = ',')]
    selectors: Vec<String>,
    /// A file holding the operator token (the topology's
    /// `access.operator_token_file`). Default: the `geomesh dev` mesh's.
    #[arg(long, env = "GEOMESH_OPERATOR_TOKEN")]
    operator_token: Option<std::path::PathBuf>,
    /// Give up waiting after this long.
    #[arg(long, default_value = "30m")]
    timeout: humantime::Duration,
}

impl Args {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(self.run_async())
    }

    async fn run_async(mut self) -> anyhow::Result<ExitCode> {
        self.selectors = super::operator::selectors(&self.selectors)?;
        let token = super::operator::token(self.operator_token.as_ref())?;
        let auth = format!("Bearer {token}");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()?;
        let body = json!({"draining": !self.cancel, "migrate": self.migrate});
        let path = format!("/v1/bridges/{}/drain", self.edge);
        let answer = self
            .call(|base| {
                http.post(format!("{base}{path}"))
                    .header("authorization", &auth)
                    .json(&body)
            })
            .await?;
        println!(
            "{}: draining={} migrate={}",
            self.edge,
            answer["draining"].as_bool().unwrap_or(false),
            answer["migrate"].as_bool().unwrap_or(false)
        );
        if !self.wait {
            return Ok(ExitCode::SUCCESS);
        }
        let deadline = Instant::now() + Duration::from(self.timeout);
        let mut last = None;
        loop {
            let bridges = self
                .call(|base| http.get(format!("{base}/v1/bridges")))
                .await?;
            let me = bridges["bridges"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|b| b["id"].as_str() == Some(self.edge.as_str()))
                .cloned()
                .unwrap_or(Value::Null);
            // Placements (the cluster's record) and the edge's own count
            // (WHIP/WHEP sessions, clients on their way) must both be 0;
            // an edge that stopped heartbeating holds nobody.
            let placed = me["participants"].as_u64().unwrap_or(0);
            let connected = if me["healthy"].as_bool() == Some(true) {
                me["load"]["participants"].as_u64().unwrap_or(0)
            } else {
                0
            };
            if last != Some((placed, connected)) {
                println!("{}: {placed} placed, {connected} connected", self.edge);
                last = Some((placed, connected));
            }
            if placed == 0 && connected == 0 {
                println!("{}: empty", self.edge);
                return Ok(ExitCode::SUCCESS);
            }
            if Instant::now() > deadline {
                bail!(
                    "{} still has participants after {}",
                    self.edge,
                    self.timeout
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The first selector's answer, trying each in turn.
    async fn call(&self, req: impl Fn(&str) -> reqwest::RequestBuilder) -> anyhow::Result<Value> {
        super::operator::call(&self.selectors, req).await
    }
}
