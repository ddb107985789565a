//! Bodies of the `topology_yaml` and `tokens` fuzz targets, shared by
//! cargo-fuzz (`fuzz/fuzz_targets/`, nightly) and the stable test that runs
//! them over the committed corpus and generated inputs in every
//! `cargo test` (`tests/fuzz.rs`).
//!
//! Keys and the clock are fixed ([`NOW`], [`token_signer`]), so a token in
//! the corpus verifies in every run and the fuzzer can mutate its way from
//! a valid token into every refusal. Besides "never panics", each target
//! checks that what it accepted survives a round trip.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;

use crate::grant::{GrantClaims, GrantKey, GrantSigner, GrantVerifier};
use crate::token::{JoinClaims, Rights, TokenSigner, TokenVerifier};
use crate::{ConferenceId, EdgeId, ParticipantId, Topology};

/// The fuzz targets' clock, Unix seconds (2027-01-15).
pub const NOW: u64 = 1_800_000_000;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

/// The selectors' token key of the fuzz targets (fixed seed).
pub fn token_signer() -> TokenSigner {
    TokenSigner::from_seed([0x5e; 32])
}

const HS_SECRET: &[u8] = b"fuzz-application-secret-of-32-bytes!";

fn ed_key() -> SigningKey {
    SigningKey::from_bytes(&[0xa7; 32])
}

/// The application keys of the fuzz targets: `app-hs` (HS256), `app-ed` (EdDSA).
pub fn grant_verifier() -> GrantVerifier {
    GrantVerifier::new()
        .with_key(
            "app-hs",
            GrantKey::hs256(HS_SECRET).expect("the fuzz secret is long enough"),
        )
        .with_key("app-ed", GrantKey::Ed25519(ed_key().verifying_key()))
}

/// The edge and conference the fuzz tokens are for.
pub fn fuzz_ids() -> (EdgeId, ConferenceId, ParticipantId) {
    (
        EdgeId::new("edge-1").expect("valid id"),
        ConferenceId::new("standup").expect("valid id"),
        ParticipantId::new("alice").expect("valid id"),
    )
}

/// A join token for `edge`, valid at [`NOW`] for ten minutes.
pub fn join_token(edge: &EdgeId, conference: &ConferenceId, who: &ParticipantId) -> String {
    let claims = JoinClaims::new(
        conference.clone(),
        who.clone(),
        edge.clone(),
        now() - Duration::from_secs(60),
        Duration::from_secs(660),
    );
    token_signer().sign(&claims)
}

fn grant(sub: &ParticipantId, conf: &ConferenceId) -> GrantClaims {
    GrantClaims {
        sub: sub.clone(),
        conf: conf.clone(),
        name: Some("Alice".into()),
        publish: true,
        subscribe: false,
        exp: NOW + 600,
        iat: Some(NOW - 10),
        nbf: None,
    }
}

/// Signed grants for the fuzz keys: `(hs256, eddsa)`.
pub fn grants(sub: &ParticipantId, conf: &ConferenceId) -> (String, String) {
    let g = grant(sub, conf);
    (
        GrantSigner::hs256("app-hs", HS_SECRET).sign(&g),
        GrantSigner::ed25519("app-ed", ed_key()).sign(&g),
    )
}

/// Runs one `topology_yaml` input: parse and validate; a topology that
/// validates validates again from its own file (nothing depends on the
/// order of reading). Panics only on a bug.
pub fn topology_yaml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let base = Path::new("/nonexistent-fuzz-dir");
    match Topology::parse(text, base) {
        Ok(loaded) => {
            let again = Topology::parse(text, base).expect("a valid topology parses twice");
            assert_eq!(
                format!("{:?}", loaded.topology),
                format!("{:?}", again.topology)
            );
        }
        Err(e) => {
            // Every refusal can be printed for the operator.
            let _ = e.to_string();
        }
    }
}

/// Runs one `tokens` input. The first byte picks what the rest is read as:
/// a join token (checked as an edge does), a join grant (as a selector
/// does), or a rejoin secret. Panics only on a bug.
pub fn tokens(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let (edge, conf, who) = fuzz_ids();
    let signer = token_signer();
    let verifier: TokenVerifier = signer.verifier();
    match mode % 3 {
        0 => {
            if let Ok(claims) = verifier.decode(text, now()) {
                // What verified re-signs into a token with the same claims.
                let again = verifier
                    .decode(&signer.sign(&claims), now())
                    .expect("a re-signed token verifies");
                assert_eq!(again, claims);
                let _ = verifier.verify(text, now(), &edge, Some(&conf));
            }
        }
        1 => {
            if let Ok(claims) = grant_verifier().verify(text, now()) {
                assert!(
                    claims.exp.saturating_add(30) >= NOW,
                    "an expired grant passed"
                );
                let resigned = GrantSigner::hs256("app-hs", HS_SECRET).sign(&claims);
                assert_eq!(grant_verifier().verify(&resigned, now()), Ok(claims));
            }
        }
        _ => {
            if let Some(rights) = verifier.check_rejoin_secret(&conf, &who, text, now()) {
                // A secret admits exactly its own identity.
                let other = ParticipantId::new("mallory").expect("valid id");
                assert_eq!(
                    verifier.check_rejoin_secret(&conf, &other, text, now()),
                    None
                );
                let _ = rights;
            }
        }
    }
}

/// The seed corpus of `tokens`: valid and slightly broken ones of each kind.
pub fn tokens_seeds() -> Vec<(String, Vec<u8>)> {
    let (edge, conf, who) = fuzz_ids();
    let (hs, ed) = grants(&who, &conf);
    let token = join_token(&edge, &conf, &who);
    let secret = token_signer().rejoin_secret(
        &conf,
        &who,
        Rights {
            publish: true,
            subscribe: false,
        },
        now(),
    );
    let with = |mode: u8, s: &str| {
        let mut v = vec![mode];
        v.extend_from_slice(s.as_bytes());
        v
    };
    let truncated = &token[..token.len() - 5];
    vec![
        ("token-valid".into(), with(0, &token)),
        ("token-truncated".into(), with(0, truncated)),
        ("grant-hs256".into(), with(1, &hs)),
        ("grant-eddsa".into(), with(1, &ed)),
        ("rejoin-secret".into(), with(2, &secret)),
        ("empty-token".into(), with(0, "")),
        ("dots".into(), with(1, "..")),
    ]
}
