//! Join grants: what an operator's application signs to let one person
//! join one conference, and what the selectors check before placing them.
//!
//! A grant is a compact JWT (RFC 7519) signed with a key the topology's
//! `access.keys` lists: HMAC-SHA256 with a shared secret (`alg: HS256`) or
//! Ed25519 (`alg: EdDSA`), named by the header's `kid`. Any JWT library
//! makes one:
//!
//! ```text
//! header  {"alg": "HS256", "typ": "JWT", "kid": "app-1"}
//! claims  {"sub": "alice", "conf": "standup", "name": "Alice",
//!          "publish": true, "subscribe": true, "exp": 1800000600}
//! ```
//!
//! `sub` (participant id), `conf` (conference) and `exp` are required;
//! `name`, `publish` and `subscribe` (both default true), `iat` and `nbf`
//! are optional, and other claims are ignored (applications add their own).
//! The algorithm must be the key's: an HS256 token never verifies against
//! an Ed25519 key or the other way round.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::pkcs8::DecodePublicKey;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::id::{ConferenceId, ParticipantId};

/// Grants longer than this are refused before any parsing.
pub const MAX_GRANT_LEN: usize = 4096;
/// Shortest HS256 secret accepted (RFC 7518 §3.2: at least the hash size).
pub const MIN_SECRET_LEN: usize = 32;
/// Clock skew allowed on `exp`, `nbf` and `iat`.
pub const GRANT_LEEWAY: Duration = Duration::from_secs(30);

/// What a grant allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantClaims {
    /// The participant id the application chose.
    pub sub: ParticipantId,
    /// The conference.
    pub conf: ConferenceId,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// May send audio and video.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub publish: bool,
    /// May receive the others.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub subscribe: bool,
    /// Expires at, Unix seconds.
    pub exp: u64,
    /// Issued at, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Not before, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// Why a grant is refused. The message says why; it never includes the
/// grant or a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GrantError {
    /// Not a compact JWT, or its parts or claims do not parse.
    #[error("malformed grant: {0}")]
    Malformed(String),
    /// The header names no key, or one the topology does not list.
    #[error("unknown key {0:?}")]
    UnknownKey(String),
    /// `alg` is not the algorithm of the named key (or not HS256/EdDSA).
    #[error("algorithm {alg:?} does not match key {kid:?}")]
    WrongAlgorithm {
        /// The header's algorithm.
        alg: String,
        /// The key.
        kid: String,
    },
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// Past `exp`.
    #[error("expired at {expired_at} (now {now})")]
    Expired {
        /// `exp`.
        expired_at: u64,
        /// Now, Unix seconds.
        now: u64,
    },
    /// Before `nbf` or `iat`.
    #[error("not valid before {valid_from} (now {now})")]
    NotYetValid {
        /// `nbf` or `iat`.
        valid_from: u64,
        /// Now, Unix seconds.
        now: u64,
    },
}

impl GrantError {
    /// A short stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            GrantError::Malformed(_) => "malformed",
            GrantError::UnknownKey(_) => "unknown_key",
            GrantError::WrongAlgorithm { .. } => "wrong_algorithm",
            GrantError::BadSignature => "bad_signature",
            GrantError::Expired { .. } => "expired",
            GrantError::NotYetValid { .. } => "not_yet_valid",
        }
    }
}

/// Why a key file's contents are not a grant key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GrantKeyError {
    /// An HS256 secret shorter than [`MIN_SECRET_LEN`] bytes.
    #[error("an HS256 secret needs at least {MIN_SECRET_LEN} bytes (got {0})")]
    ShortSecret(usize),
    /// Not an Ed25519 public key in SPKI PEM.
    #[error("not an Ed25519 SPKI public key: {0}")]
    NotEd25519(String),
}

/// One application key that may sign grants.
#[derive(Clone)]
pub enum GrantKey {
    /// A shared secret (`HS256`).
    Hs256(Box<aws_lc_rs::hmac::Key>),
    /// An Ed25519 public key (`EdDSA`).
    Ed25519(VerifyingKey),
}

impl GrantKey {
    /// An HS256 key from the secret's bytes (at least [`MIN_SECRET_LEN`]).
    pub fn hs256(secret: &[u8]) -> Result<Self, GrantKeyError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(GrantKeyError::ShortSecret(secret.len()));
        }
        Ok(Self::Hs256(Box::new(aws_lc_rs::hmac::Key::new(
            aws_lc_rs::hmac::HMAC_SHA256,
            secret,
        ))))
    }

    /// An Ed25519 key from an SPKI PEM public key.
    pub fn ed25519_pem(pem: &str) -> Result<Self, GrantKeyError> {
        VerifyingKey::from_public_key_pem(pem)
            .map(Self::Ed25519)
            .map_err(|e| GrantKeyError::NotEd25519(e.to_string()))
    }

    fn alg(&self) -> &'static str {
        match self {
            GrantKey::Hs256(_) => "HS256",
            GrantKey::Ed25519(_) => "EdDSA",
        }
    }

    fn verify(&self, signed: &[u8], sig: &[u8]) -> bool {
        match self {
            GrantKey::Hs256(k) => aws_lc_rs::hmac::verify(k, signed, sig).is_ok(),
            GrantKey::Ed25519(k) => <[u8; 64]>::try_from(sig)
                .is_ok_and(|s| k.verify(signed, &Signature::from_bytes(&s)).is_ok()),
        }
    }
}

/// Checks grants against the topology's application keys.
#[derive(Clone, Default)]
pub struct GrantVerifier {
    keys: HashMap<String, GrantKey>,
}

impl GrantVerifier {
    /// No keys: every grant is refused.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the key named `kid`.
    pub fn with_key(mut self, kid: impl Into<String>, key: GrantKey) -> Self {
        self.keys.insert(kid.into(), key);
        self
    }

    /// Keys known.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// No key known.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks the signature, the key and algorithm, and the times.
    pub fn verify(&self, grant: &str, now: SystemTime) -> Result<GrantClaims, GrantError> {
        let malformed = |m: &str| GrantError::Malformed(m.to_string());
        if grant.len() > MAX_GRANT_LEN {
            return Err(malformed("longer than 4096 bytes"));
        }
        let mut parts = grant.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("expected three dot-separated parts"));
        };
        #[derive(Deserialize)]
        struct Header {
            alg: String,
            #[serde(default)]
            kid: Option<String>,
        }
        let header: Header = B64
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| malformed("header is not base64url JSON with alg"))?;
        let kid = header
            .kid
            .ok_or_else(|| GrantError::UnknownKey(String::new()))?;
        let key = self
            .keys
            .get(&kid)
            .ok_or_else(|| GrantError::UnknownKey(kid.clone()))?;
        if header.alg != key.alg() {
            return Err(GrantError::WrongAlgorithm {
                alg: header.alg,
                kid,
            });
        }
        let sig = B64
            .decode(s)
            .map_err(|_| malformed("signature is not base64url"))?;
        if !key.verify(&grant.as_bytes()[..h.len() + 1 + p.len()], &sig) {
            return Err(GrantError::BadSignature);
        }
        // Only signed payloads reach the claims parser.
        let claims: GrantClaims = B64
            .decode(p)
            .map_err(|_| malformed("payload is not base64url"))
            .and_then(|b| {
                serde_json::from_slice(&b)
                    .map_err(|e| GrantError::Malformed(format!("claims: {e}")))
            })?;
        if let Some(n) = &claims.name
            && (n.chars().count() > crate::api::MAX_DISPLAY_NAME || n.chars().any(char::is_control))
        {
            return Err(malformed(
                "name: at most 64 characters, no control characters",
            ));
        }
        let now = unix(now);
        let leeway = GRANT_LEEWAY.as_secs();
        if now > claims.exp.saturating_add(leeway) {
            return Err(GrantError::Expired {
                expired_at: claims.exp,
                now,
            });
        }
        if let Some(from) = claims.nbf.max(claims.iat)
            && from > now.saturating_add(leeway)
        {
            return Err(GrantError::NotYetValid {
                valid_from: from,
                now,
            });
        }
        Ok(claims)
    }
}

/// Signs grants (`geomesh token grant`, tests; applications use any JWT library).
pub struct GrantSigner {
    kid: String,
    key: SignerKey,
}

enum SignerKey {
    Hs256(Box<aws_lc_rs::hmac::Key>),
    Ed25519(Box<SigningKey>),
}

impl GrantSigner {
    /// HS256 with a shared secret, under key id `kid`.
    pub fn hs256(kid: impl Into<String>, secret: &[u8]) -> Self {
        Self {
            kid: kid.into(),
            key: SignerKey::Hs256(Box::new(aws_lc_rs::hmac::Key::new(
                aws_lc_rs::hmac::HMAC_SHA256,
                secret,
            ))),
        }
    }

    /// EdDSA with an Ed25519 private key, under key id `kid`.
    pub fn ed25519(kid: impl Into<String>, key: SigningKey) -> Self {
        Self {
            kid: kid.into(),
            key: SignerKey::Ed25519(Box::new(key)),
        }
    }

    /// Signs `claims` into a compact JWT.
    pub fn sign(&self, claims: &GrantClaims) -> String {
        let alg = match self.key {
            SignerKey::Hs256(_) => "HS256",
            SignerKey::Ed25519(_) => "EdDSA",
        };
        let header = serde_json::json!({"alg": alg, "typ": "JWT", "kid": self.kid});
        // Serializing strings, integers and booleans cannot fail.
        let payload = serde_json::to_vec(claims).expect("serialize grant claims");
        let mut token = format!("{}.{}", B64.encode(header.to_string()), B64.encode(payload));
        let sig = match &self.key {
            SignerKey::Hs256(key) => aws_lc_rs::hmac::sign(key, token.as_bytes())
                .as_ref()
                .to_vec(),
            SignerKey::Ed25519(key) => key.sign(token.as_bytes()).to_bytes().to_vec(),
        };
        token.push('.');
        token.push_str(&B64.encode(sig));
        token
    }
}

/// Unix seconds of `t`.
fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Unix seconds now (for [`crate::uses::UseCounter`] callers).
pub fn unix_now() -> u64 {
    unix(SystemTime::now())
}

#[cfg(test)]
#[path = "grant_test.rs"]
mod tests;
