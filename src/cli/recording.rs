//! `geomesh recording start|stop|status CONFERENCE`: a conference's
//! recording, through the selectors' public API
//! (`/v1/conferences/{id}/recording`, operator token).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use geomesh_core::ConferenceId;
use serde_json::{Value, json};

/// Where to reach the cluster and the credential to operate it.
#[derive(clap::Args)]
pub struct Target {
    /// A selector's public API (repeatable or comma-separated; tried in
    /// order). Default: the `geomesh dev` mesh running here.
    #[arg(long = "selector", env = "GEOMESH_SELECTOR", value_delimiter = ',')]
    selectors: Vec<String>,
    /// A file holding the operator token. Default: the `geomesh dev` mesh's.
    #[arg(long, env = "GEOMESH_OPERATOR_TOKEN")]
    operator_token: Option<std::path::PathBuf>,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Start recording a conference (on the recorder nearest to its
    /// edges); prints the recording's id and recorder.
    Start {
        /// The conference.
        conference: ConferenceId,
        /// The recording's id (default: the selector makes one up).
        #[arg(long)]
        id: Option<String>,
        /// Of simulcast publishers, record the tallest layer no taller than
        /// this (pixels); default: the top layer.
        #[arg(long)]
        max_height: Option<u16>,
        #[command(flatten)]
        target: Target,
    },
    /// Stop recording a conference; waits until its recorder closed the
    /// files (`--no-wait`: return at once).
    Stop {
        /// The conference.
        conference: ConferenceId,
        /// Return without waiting for the files to be closed.
        #[arg(long)]
        no_wait: bool,
        /// Give up waiting after this long.
        #[arg(long, default_value = "30s")]
        timeout: humantime::Duration,
        #[command(flatten)]
        target: Target,
    },
    /// A conference's recording: state, recorder, directory, bytes (JSON
    /// with `--json`).
    Status {
        /// The conference.
        conference: ConferenceId,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
}

/// One line for a recording view.
fn describe(v: &Value) -> String {
    let r = &v["report"];
    let mut s = format!(
        "{}: {} {} on {}",
        v["conference"].as_str().unwrap_or("?"),
        v["recording"].as_str().unwrap_or("?"),
        v["state"].as_str().unwrap_or("?"),
        v["recorder"].as_str().unwrap_or("?"),
    );
    if let Some(h) = v["max_height"].as_u64() {
        s += &format!(" (video at most {h} px tall)");
    }
    if v["parts"].as_u64().unwrap_or(1) > 1 {
        s += &format!(" (part {})", v["parts"]);
    }
    if r.is_object() {
        s += &format!(
            ", {} sources, {} bytes in {}",
            r["sources"],
            r["bytes"],
            r["dir"].as_str().unwrap_or("?")
        );
        if let Some(e) = r["error"].as_str() {
            s += &format!(", error: {e}");
        }
    }
    s
}

impl Command {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(self.run_async())
    }

    async fn run_async(self) -> anyhow::Result<ExitCode> {
        let (Command::Start { target, .. }
        | Command::Stop { target, .. }
        | Command::Status { target, .. }) = &self;
        let selectors = super::operator::selectors(&target.selectors)?;
        let auth = format!(
            "Bearer {}",
            super::operator::token(target.operator_token.as_ref())?
        );
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()?;
        let url = |base: &str, c: &ConferenceId| format!("{base}/v1/conferences/{c}/recording");
        match &self {
            Command::Start {
                conference,
                id,
                max_height,
                ..
            } => {
                let mut body = json!({});
                if let Some(id) = id {
                    body["recording"] = json!(id);
                }
                if let Some(h) = max_height {
                    body["max_height"] = json!(h);
                }
                let v = super::operator::call(&selectors, |b| {
                    http.post(url(b, conference))
                        .header("authorization", &auth)
                        .json(&body)
                })
                .await?;
                println!("{}", describe(&v));
            }
            Command::Stop {
                conference,
                no_wait,
                timeout,
                ..
            } => {
                let v = super::operator::call(&selectors, |b| {
                    http.delete(url(b, conference))
                        .header("authorization", &auth)
                })
                .await?;
                if *no_wait {
                    println!("{}", describe(&v));
                    return Ok(ExitCode::SUCCESS);
                }
                let deadline = Instant::now() + Duration::from(*timeout);
                loop {
                    let v = super::operator::call(&selectors, |b| {
                        http.get(url(b, conference)).header("authorization", &auth)
                    })
                    .await?;
                    match v["state"].as_str() {
                        Some("stopped") => {
                            println!("{}", describe(&v));
                            return Ok(ExitCode::SUCCESS);
                        }
                        Some("failed") => {
                            println!("{}", describe(&v));
                            return Ok(ExitCode::FAILURE);
                        }
                        _ if Instant::now() > deadline => {
                            bail!(
                                "the recorder did not report the recording closed within {timeout}: {}",
                                describe(&v)
                            )
                        }
                        _ => tokio::time::sleep(Duration::from_millis(250)).await,
                    }
                }
            }
            Command::Status {
                conference, json, ..
            } => {
                let v = super::operator::call(&selectors, |b| {
                    http.get(url(b, conference)).header("authorization", &auth)
                })
                .await?;
                if *json {
                    println!("{}", serde_json::to_string_pretty(&v)?);
                } else {
                    println!("{}", describe(&v));
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
