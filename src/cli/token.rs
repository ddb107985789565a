//! `geomesh token …`

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use geomesh_core::grant::{GrantClaims, GrantSigner};
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
        /// The participant may not send media.
        #[arg(long)]
        no_publish: bool,
        /// The participant may not receive media.
        #[arg(long)]
        no_subscribe: bool,
        /// Lifetime, e.g. 10m, 1h.
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
    /// Sign a join grant, as an operator's application does; prints it alone
    /// on stdout. `--key` is an HS256 secret file (its text, trailing
    /// whitespace removed) or an Ed25519 private key (PKCS#8 PEM), listed
    /// in the topology's `access.keys` under `--kid`.
    Grant {
        /// The application key.
        #[arg(long)]
        key: PathBuf,
        /// Its id in `access.keys` (default: the key file's name without extension).
        #[arg(long)]
        kid: Option<String>,
        /// The conference it admits to.
        #[arg(long)]
        conference: ConferenceId,
        /// The participant id.
        #[arg(long)]
        participant: ParticipantId,
        /// Display name shown to others.
        #[arg(long)]
        name: Option<String>,
        /// The participant may not send media.
        #[arg(long)]
        no_publish: bool,
        /// The participant may not receive media.
        #[arg(long)]
        no_subscribe: bool,
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

/// An Ed25519 private key (PKCS#8 PEM) signs EdDSA grants; any other text
/// is an HS256 secret.
fn grant_signer(kid: String, text: &str, path: &std::path::Path) -> anyhow::Result<GrantSigner> {
    if text.contains("PRIVATE KEY") {
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(text)
            .map_err(|e| anyhow::anyhow!("{}: not an Ed25519 PKCS#8 key: {e}", path.display()))?;
        return Ok(GrantSigner::ed25519(kid, key));
    }
    let secret = text.trim_end();
    if secret.len() < geomesh_core::grant::MIN_SECRET_LEN {
        anyhow::bail!(
            "{}: an HS256 secret needs at least {} bytes",
            path.display(),
            geomesh_core::grant::MIN_SECRET_LEN
        );
    }
    Ok(GrantSigner::hs256(kid, secret.as_bytes()))
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
                no_publish,
                no_subscribe,
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
                claims.no_publish = no_publish;
                claims.no_subscribe = no_subscribe;
                println!("{}", signer.sign(&claims));
                Ok(ExitCode::SUCCESS)
            }
            Command::Grant {
                key,
                kid,
                conference,
                participant,
                name,
                no_publish,
                no_subscribe,
                ttl,
            } => {
                let kid = match kid {
                    Some(k) => k,
                    None => key
                        .file_stem()
                        .and_then(|s| s.to_str())
                        .context("--kid: the key file has no name to use")?
                        .to_string(),
                };
                let text = std::fs::read_to_string(&key)
                    .with_context(|| format!("reading {}", key.display()))?;
                let signer = grant_signer(kid, &text, &key)?;
                let now = SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let claims = GrantClaims {
                    sub: participant,
                    conf: conference,
                    name,
                    publish: !no_publish,
                    subscribe: !no_subscribe,
                    exp: now + ttl.as_secs().max(1),
                    iat: Some(now),
                    nbf: None,
                };
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
