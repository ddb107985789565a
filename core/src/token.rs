//! Join tokens: compact Ed25519-signed JWTs (RFC 7519, `alg: EdDSA` per
//! RFC 8037) that admit one participant to one conference on one edge.
//!
//! The selector signs with the cluster's token key; edges verify with its
//! public half. A JWT rather than a home-made format so that operators can
//! read tokens with any JWT tool and mint them from other languages.
//!
//! Claims: `iss` = `geomesh`, `conf` (conference), `sub` (participant),
//! `edge`, `iat` and `exp` (Unix seconds), optional `name` (display name).
//! Time is passed in: `verify(token, now, …)`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::id::{ConferenceId, EdgeId, ParticipantId};

/// The fixed JOSE header: every token uses the same one.
const HEADER_JSON: &str = r#"{"alg":"EdDSA","typ":"JWT"}"#;
/// The `iss` claim of every geomesh token.
pub const ISSUER: &str = "geomesh";
/// Longest token accepted (a real one is ~350 bytes).
pub const MAX_TOKEN_LEN: usize = 2048;
/// Default clock-skew allowance between selector and edge.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// What a token grants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinClaims {
    /// Always [`ISSUER`].
    pub iss: String,
    /// The conference.
    #[serde(rename = "conf")]
    pub conference: ConferenceId,
    /// The participant.
    #[serde(rename = "sub")]
    pub participant: ParticipantId,
    /// The only edge that accepts it.
    pub edge: EdgeId,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expires at, Unix seconds.
    pub exp: u64,
    /// Display name, if the joiner gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// May not send media (absent: may). From the join grant.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_publish: bool,
    /// May not receive media (absent: may). From the join grant.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_subscribe: bool,
    /// Where the selector located the participant (its hint, or GeoIP),
    /// if it could. Edges use it only in the emulated-WAN lab, to hold the
    /// participant's datagrams for the modelled access delay.
    #[serde(default, rename = "loc", skip_serializing_if = "Option::is_none")]
    pub location: Option<crate::GeoPoint>,
}

impl JoinClaims {
    /// Claims valid from `now` for `ttl`.
    pub fn new(
        conference: ConferenceId,
        participant: ParticipantId,
        edge: EdgeId,
        now: SystemTime,
        ttl: Duration,
    ) -> Self {
        let iat = unix(now);
        Self {
            iss: ISSUER.to_string(),
            conference,
            participant,
            edge,
            iat,
            exp: iat.saturating_add(ttl.as_secs().max(1)),
            name: None,
            no_publish: false,
            no_subscribe: false,
            location: None,
        }
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a well-formed geomesh JWT.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The header names another algorithm.
    #[error("unsupported token algorithm (only EdDSA)")]
    UnsupportedAlgorithm,
    /// The signature does not verify with the cluster key.
    #[error("bad token signature")]
    BadSignature,
    /// Past `exp` (plus leeway).
    #[error("token expired at {expired_at} (now {now})")]
    Expired {
        /// `exp`, Unix seconds.
        expired_at: u64,
        /// The verifier's time, Unix seconds.
        now: u64,
    },
    /// `iat` is in the future (beyond leeway).
    #[error("token issued in the future ({issued_at}, now {now})")]
    NotYetValid {
        /// `iat`, Unix seconds.
        issued_at: u64,
        /// The verifier's time, Unix seconds.
        now: u64,
    },
    /// Issued for another edge.
    #[error("token is for edge {token}, this is edge {this}")]
    WrongEdge {
        /// The edge named in the token.
        token: EdgeId,
        /// The verifying edge.
        this: EdgeId,
    },
    /// Issued for another conference.
    #[error("token is for conference {token}, not {requested}")]
    WrongConference {
        /// The conference named in the token.
        token: ConferenceId,
        /// The conference the client asked for.
        requested: ConferenceId,
    },
}

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Not an Ed25519 PKCS#8 / SPKI PEM key.
    #[error("{path}: not an Ed25519 {expected} PEM key ({detail})")]
    Format {
        /// The file.
        path: std::path::PathBuf,
        /// What was expected.
        expected: &'static str,
        /// The decoder's message.
        detail: String,
    },
    /// The system random source failed.
    #[error("random source: {0}")]
    Random(String),
}

/// Signs join tokens (selectors, and `geomesh token mint`).
pub struct TokenSigner {
    key: SigningKey,
}

impl TokenSigner {
    /// A fresh random key.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// The key of a 32-byte seed (deterministic keys for tests and fuzzing).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(&seed),
        }
    }

    /// Parses a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pem(pem: &str, path: &std::path::Path) -> Result<Self, KeyError> {
        SigningKey::from_pkcs8_pem(pem)
            .map(|key| Self { key })
            .map_err(|e| KeyError::Format {
                path: path.to_path_buf(),
                expected: "PKCS#8 private",
                detail: e.to_string(),
            })
    }

    /// Reads a PKCS#8 PEM private key file.
    pub fn load(path: &std::path::Path) -> Result<Self, KeyError> {
        Self::from_pem(&read(path)?, path)
    }

    /// The private key as PKCS#8 v1 PEM (RFC 8410), the form OpenSSL,
    /// Python's `cryptography` and JWT libraries all read. (ed25519-dalek
    /// writes v2, with the public key inside, which OpenSSL 3 refuses.)
    pub fn to_pem(&self) -> String {
        // SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING seed } }
        const PREFIX: [u8; 16] = [
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        let mut der = PREFIX.to_vec();
        der.extend_from_slice(self.key.as_bytes());
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n")
    }

    /// The verifier for this key.
    pub fn verifier(&self) -> TokenVerifier {
        TokenVerifier {
            key: self.key.verifying_key(),
            leeway: DEFAULT_LEEWAY,
        }
    }

    /// The rejoin secret of one identity: proof, for [`REJOIN_TTL`] from
    /// `now`, that its holder was admitted as `participant` of `conference`
    /// with `rights`. Base64url of a version byte, the rights, the issue
    /// time and an Ed25519 signature over them and the ids: every selector
    /// holding the key checks it and none is stored. The selector that
    /// admitted the identity hands it out; a rejoin gets a fresh one, so a
    /// long meeting never runs out.
    pub fn rejoin_secret(
        &self,
        conference: &ConferenceId,
        participant: &ParticipantId,
        rights: Rights,
        now: SystemTime,
    ) -> String {
        let head = rejoin_head(rights, unix(now));
        let sig = self
            .key
            .sign(&rejoin_message(conference, participant, &head));
        let mut out = head.to_vec();
        out.extend_from_slice(&sig.to_bytes());
        B64.encode(out)
    }

    /// Signs claims into a compact JWT.
    pub fn sign(&self, claims: &JoinClaims) -> String {
        // Serializing a struct of strings and integers cannot fail.
        let payload = serde_json::to_vec(claims).expect("serialize claims");
        let mut token = format!("{}.{}", B64.encode(HEADER_JSON), B64.encode(payload));
        let sig = self.key.sign(token.as_bytes());
        token.push('.');
        token.push_str(&B64.encode(sig.to_bytes()));
        token
    }
}

/// Checks join tokens (edges, and `geomesh token verify`).
#[derive(Clone)]
pub struct TokenVerifier {
    key: VerifyingKey,
    leeway: Duration,
}

impl TokenVerifier {
    /// Parses an SPKI PEM public key (`-----BEGIN PUBLIC KEY-----`), or a
    /// PKCS#8 private key (whose public half is then used).
    pub fn from_pem(pem: &str, path: &std::path::Path) -> Result<Self, KeyError> {
        if pem.contains("PRIVATE KEY") {
            return TokenSigner::from_pem(pem, path).map(|s| s.verifier());
        }
        VerifyingKey::from_public_key_pem(pem)
            .map(|key| Self {
                key,
                leeway: DEFAULT_LEEWAY,
            })
            .map_err(|e| KeyError::Format {
                path: path.to_path_buf(),
                expected: "SPKI public",
                detail: e.to_string(),
            })
    }

    /// Reads a public (or private) key file.
    pub fn load(path: &std::path::Path) -> Result<Self, KeyError> {
        Self::from_pem(&read(path)?, path)
    }

    /// The public key as SPKI PEM.
    pub fn to_pem(&self) -> String {
        // Encoding a valid in-memory key cannot fail; a panic here is a bug.
        self.key
            .to_public_key_pem(LineEnding::LF)
            .expect("encode ed25519 public key")
    }

    /// A fingerprint of the public key ([`crate::short_hash`] of its
    /// bytes): selectors and edges compare theirs.
    pub fn key_id(&self) -> String {
        crate::short_hash(self.key.as_bytes())
    }

    /// Sets the clock-skew allowance applied to `exp` and `iat`.
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The rights a rejoin secret of this identity carries, if it is one
    /// ([`TokenSigner::rejoin_secret`]) and younger than [`REJOIN_TTL`].
    pub fn check_rejoin_secret(
        &self,
        conference: &ConferenceId,
        participant: &ParticipantId,
        secret: &str,
        now: SystemTime,
    ) -> Option<Rights> {
        let raw = B64.decode(secret).ok()?;
        if raw.len() != REJOIN_HEAD + 64 || raw[0] != REJOIN_VERSION {
            return None;
        }
        let (head, sig) = raw.split_at(REJOIN_HEAD);
        let sig = Signature::from_bytes(sig.try_into().ok()?);
        self.key
            .verify(&rejoin_message(conference, participant, head), &sig)
            .ok()?;
        let issued = u64::from_be_bytes(head[2..10].try_into().ok()?);
        let now = unix(now);
        let fresh = issued <= now.saturating_add(self.leeway.as_secs())
            && now < issued.saturating_add(REJOIN_TTL.as_secs());
        fresh.then(|| Rights::from_bits(head[1]))
    }

    /// Checks the signature and time, but not edge or conference.
    pub fn decode(&self, token: &str, now: SystemTime) -> Result<JoinClaims, TokenError> {
        let malformed = |m: &str| TokenError::Malformed(m.to_string());
        if token.len() > MAX_TOKEN_LEN {
            return Err(malformed("longer than 2048 bytes"));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("expected three dot-separated parts"));
        };
        let header = B64
            .decode(h)
            .map_err(|_| malformed("header is not base64url"))?;
        let header: serde_json::Value =
            serde_json::from_slice(&header).map_err(|_| malformed("header is not JSON"))?;
        if header.get("alg").and_then(|a| a.as_str()) != Some("EdDSA") {
            return Err(TokenError::UnsupportedAlgorithm);
        }
        let sig = B64
            .decode(s)
            .map_err(|_| malformed("signature is not base64url"))?;
        let sig: [u8; 64] = sig
            .try_into()
            .map_err(|_| malformed("signature is not 64 bytes"))?;
        let signed_len = h.len() + 1 + p.len();
        self.key
            .verify(
                &token.as_bytes()[..signed_len],
                &Signature::from_bytes(&sig),
            )
            .map_err(|_| TokenError::BadSignature)?;
        // Only signed payloads reach the JSON parser.
        let payload = B64
            .decode(p)
            .map_err(|_| malformed("payload is not base64url"))?;
        let claims: JoinClaims = serde_json::from_slice(&payload)
            .map_err(|e| TokenError::Malformed(format!("claims: {e}")))?;
        if claims.iss != ISSUER {
            return Err(malformed("issuer is not geomesh"));
        }
        let now = unix(now);
        let leeway = self.leeway.as_secs();
        if now > claims.exp.saturating_add(leeway) {
            return Err(TokenError::Expired {
                expired_at: claims.exp,
                now,
            });
        }
        if claims.iat > now.saturating_add(leeway) {
            return Err(TokenError::NotYetValid {
                issued_at: claims.iat,
                now,
            });
        }
        Ok(claims)
    }

    /// Full check for an edge admitting a participant: signature, time, this
    /// edge, and (when the client named one) the conference.
    pub fn verify(
        &self,
        token: &str,
        now: SystemTime,
        this_edge: &EdgeId,
        conference: Option<&ConferenceId>,
    ) -> Result<JoinClaims, TokenError> {
        self.check(token, now, Some(this_edge), conference)
    }

    /// Signature and time, plus the edge and conference where given (tools
    /// that inspect tokens; edges use [`TokenVerifier::verify`]).
    pub fn check(
        &self,
        token: &str,
        now: SystemTime,
        edge: Option<&EdgeId>,
        conference: Option<&ConferenceId>,
    ) -> Result<JoinClaims, TokenError> {
        let claims = self.decode(token, now)?;
        if let Some(e) = edge
            && e != &claims.edge
        {
            return Err(TokenError::WrongEdge {
                token: claims.edge,
                this: e.clone(),
            });
        }
        if let Some(c) = conference
            && c != &claims.conference
        {
            return Err(TokenError::WrongConference {
                token: claims.conference,
                requested: c.clone(),
            });
        }
        Ok(claims)
    }
}

/// How long a rejoin secret admits its holder again.
pub const REJOIN_TTL: Duration = Duration::from_secs(12 * 3600);
const REJOIN_VERSION: u8 = 1;
/// Version, rights, issue time (u64, big-endian).
const REJOIN_HEAD: usize = 10;

/// What a participant may do, from its grant (everything in open mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rights {
    /// Send media.
    pub publish: bool,
    /// Receive media.
    pub subscribe: bool,
}

impl Rights {
    /// Everything.
    pub const ALL: Rights = Rights {
        publish: true,
        subscribe: true,
    };

    fn bits(self) -> u8 {
        u8::from(self.publish) | (u8::from(self.subscribe) << 1)
    }

    fn from_bits(b: u8) -> Self {
        Self {
            publish: b & 1 != 0,
            subscribe: b & 2 != 0,
        }
    }
}

fn rejoin_head(rights: Rights, issued: u64) -> [u8; REJOIN_HEAD] {
    let mut h = [0u8; REJOIN_HEAD];
    h[0] = REJOIN_VERSION;
    h[1] = rights.bits();
    h[2..].copy_from_slice(&issued.to_be_bytes());
    h
}

/// What a rejoin secret signs; the prefix keeps it from ever verifying as
/// (or being) a join token's signature.
fn rejoin_message(conference: &ConferenceId, participant: &ParticipantId, head: &[u8]) -> Vec<u8> {
    let mut m = format!("geomesh rejoin v1\n{conference}\n{participant}\n").into_bytes();
    m.extend_from_slice(head);
    m
}

fn read(path: &std::path::Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
#[path = "token_test.rs"]
mod tests;
