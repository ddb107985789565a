//! `geomesh token …`

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use geomesh_core::token::{JoinClaims, TokenSigner, TokenVerifier};
use geomesh_core::{ConferenceId, EdgeId, ParticipantId};

/// Token subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Mint a join token; prints the token alone on stdout.
    Mint {
        /// The Ed25519 signing key (token.key from `geomesh certs init`).
        #[arg(long)]
        key: PathBuf,
        /// The conference it admits to.
        #[arg(long)]
        conference: ConferenceId,
        /// The only edge that accepts it.
        #[arg(long)]
        edge: EdgeId,
        /// The participant id (default: a random one).
        #[arg(long)]
        participant: Option<ParticipantId>,
        /// Display name shown to others.
        #[arg(long)]
        name: Option<String>,
        /// Lifetime, e.g. 10m, 1h.
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
    /// Verify a token: prints its claims as JSON (exit 0) or why it is
    /// refused (exit 2).
    Verify {
        /// The verifying key (token.pub; token.key works too).
        #[arg(long)]
        key: PathBuf,
        /// Check it is for this edge.
        #[arg(long)]
        edge: Option<EdgeId>,
        /// Check it is for this conference.
        #[arg(long)]
        conference: Option<ConferenceId>,
        /// The token, or - to read it from stdin.
        token: String,
    },
}

fn random_participant() -> anyhow::Result<ParticipantId> {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("random source: {e}"))?;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(ParticipantId::new(format!("p-{hex}"))?)
}

impl Command {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Command::Mint {
                key,
                conference,
                edge,
                participant,
                name,
                ttl,
            } => {
                let signer = TokenSigner::load(&key)?;
                let participant = match participant {
                    Some(p) => p,
                    None => random_participant()?,
                };
                let mut claims =
                    JoinClaims::new(conference, participant, edge, SystemTime::now(), ttl);
                claims.name = name;
                println!("{}", signer.sign(&claims));
                Ok(ExitCode::SUCCESS)
            }
            Command::Verify {
                key,
                edge,
                conference,
                token,
            } => {
                let token = if token == "-" {
                    let mut s = String::new();
                    std::io::stdin()
                        .read_to_string(&mut s)
                        .context("reading token from stdin")?;
                    s.trim().to_string()
                } else {
                    token
                };
                let v = TokenVerifier::load(&key)?;
                let result = v.check(
                    &token,
                    SystemTime::now(),
                    edge.as_ref(),
                    conference.as_ref(),
                );
                match result {
                    Ok(claims) => {
                        println!("{}", serde_json::to_string(&claims)?);
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(e) => {
                        eprintln!("refused: {e}");
                        Ok(ExitCode::from(super::EXIT_INVALID))
                    }
                }
            }
        }
    }
}
