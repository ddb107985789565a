//! Who may join and who may operate: the topology's `access` section,
//! loaded once at start.
//!
//! - **Grants mode** (the default): `POST /v1/join` carries
//!   `Authorization: Bearer <grant>`, a JWT the operator's application
//!   signed with one of `access.keys` ([`geomesh_core::grant`]). The grant
//!   names the conference, the participant id, the display name and whether
//!   it may publish and subscribe; the edge token the selector signs binds
//!   exactly that.
//! - **Open mode**: anyone may join; the selector assigns the participant
//!   id, and only the rejoin secret it answers with joins as that identity
//!   again.
//! - **Operators** prove themselves with the operator token
//!   (`Authorization: Bearer <token>`; `access.operator_token_file`) on the
//!   public API, or with an operator certificate on the internal one —
//!   never by where the request came from.

use std::time::SystemTime;

use axum::http::{HeaderMap, StatusCode, header};
use geomesh_core::grant::{GrantClaims, GrantKey, GrantVerifier};
use geomesh_core::topology::{Access, AccessMode, KeyMaterial};

use crate::api_error::ApiFailure;
use crate::metrics::Metrics;

/// Why the access settings could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("access: {0}")]
pub struct AccessError(String);

/// The loaded `access` section.
pub struct AccessControl {
    /// How joins are authorized.
    pub mode: AccessMode,
    grants: GrantVerifier,
    operator_token: Option<Vec<u8>>,
}

fn read(path: &std::path::Path) -> Result<String, AccessError> {
    std::fs::read_to_string(path).map_err(|e| AccessError(format!("{}: {e}", path.display())))
}

impl AccessControl {
    /// Reads every key file the section names.
    pub fn load(a: &Access) -> Result<Self, AccessError> {
        let mut grants = GrantVerifier::new();
        for k in &a.keys {
            let key = match &k.material {
                KeyMaterial::Secret(p) => GrantKey::hs256(read(p)?.trim_end().as_bytes()),
                KeyMaterial::PublicKey(p) => GrantKey::ed25519_pem(&read(p)?),
            }
            .map_err(|e| AccessError(format!("key {}: {e}", k.id)))?;
            grants = grants.with_key(k.id.clone(), key);
        }
        let operator_token = match &a.operator_token_file {
            Some(p) => {
                let t = read(p)?.trim().to_string();
                if t.len() < 16 {
                    return Err(AccessError(format!(
                        "{}: an operator token needs at least 16 characters",
                        p.display()
                    )));
                }
                Some(t.into_bytes())
            }
            None => None,
        };
        Ok(Self {
            mode: a.mode,
            grants,
            operator_token,
        })
    }

    /// Open mode, no operator token: for tests and embedding.
    pub fn open() -> Self {
        Self {
            mode: AccessMode::Open,
            grants: GrantVerifier::new(),
            operator_token: None,
        }
    }

    /// Application keys loaded.
    pub fn keys(&self) -> usize {
        self.grants.len()
    }

    /// The join's grant, in grants mode (`None` in open mode).
    pub fn join_grant(
        &self,
        headers: &HeaderMap,
        metrics: &Metrics,
    ) -> Result<Option<GrantClaims>, ApiFailure> {
        if self.mode == AccessMode::Open {
            return Ok(None);
        }
        let Some(grant) = bearer(headers) else {
            Metrics::reason(&metrics.grants_refused, "missing");
            return Err(ApiFailure::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a join grant is required: Authorization: Bearer <grant>",
            ));
        };
        self.grants
            .verify(grant, SystemTime::now())
            .map(Some)
            .map_err(|e| {
                Metrics::reason(&metrics.grants_refused, e.reason());
                ApiFailure::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    format!("grant refused: {e}"),
                )
            })
    }

    /// Whether the request carries the operator token.
    pub fn is_operator(&self, headers: &HeaderMap) -> bool {
        match (&self.operator_token, bearer(headers)) {
            (Some(want), Some(got)) => {
                aws_lc_rs::constant_time::verify_slices_are_equal(want, got.as_bytes()).is_ok()
            }
            _ => false,
        }
    }

    /// Refuses a request without the operator token.
    pub fn require_operator(
        &self,
        headers: &HeaderMap,
        metrics: &Metrics,
    ) -> Result<(), ApiFailure> {
        if self.is_operator(headers) {
            return Ok(());
        }
        Metrics::reason(&metrics.operator_refused, "no_credential");
        Err(ApiFailure::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            if self.operator_token.is_some() {
                "an operator credential is required: Authorization: Bearer <operator token>"
            } else {
                "no operator token is configured (access.operator_token_file): operate through the internal API with an operator certificate"
            },
        ))
    }
}

/// The bearer credential of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}
