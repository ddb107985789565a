use super::*;
use proptest::prelude::*;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn claims() -> GrantClaims {
    GrantClaims {
        sub: "alice".parse().unwrap(),
        conf: "standup".parse().unwrap(),
        name: Some("Alice".into()),
        publish: true,
        subscribe: true,
        exp: 1_800_000_600,
        iat: Some(1_800_000_000),
        nbf: None,
    }
}

fn hs() -> GrantSigner {
    GrantSigner::hs256("app-1", SECRET)
}

fn ed() -> (GrantSigner, VerifyingKey) {
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let public = key.verifying_key();
    (GrantSigner::ed25519("app-2", key), public)
}

fn verifier() -> GrantVerifier {
    let (_, public) = ed();
    GrantVerifier::new()
        .with_key("app-1", GrantKey::hs256(SECRET).unwrap())
        .with_key("app-2", GrantKey::Ed25519(public))
}

#[test]
fn both_algorithms_round_trip() {
    let v = verifier();
    assert_eq!(v.verify(&hs().sign(&claims()), t0()).unwrap(), claims());
    let (signer, _) = ed();
    assert_eq!(v.verify(&signer.sign(&claims()), t0()).unwrap(), claims());
}

/// A grant written by hand, the way an application's three lines would:
/// header and claims as JSON text, HMAC-SHA256 over `header.claims`.
#[test]
fn a_hand_made_hs256_grant_verifies() {
    let h = B64.encode(r#"{"alg":"HS256","typ":"JWT","kid":"app-1"}"#);
    let c = B64.encode(
        r#"{"sub":"bob","conf":"standup","exp":1800000600,"publish":false,"aud":"ignored"}"#,
    );
    let input = format!("{h}.{c}");
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET);
    let sig = B64.encode(aws_lc_rs::hmac::sign(&key, input.as_bytes()).as_ref());
    let got = verifier().verify(&format!("{input}.{sig}"), t0()).unwrap();
    assert_eq!(got.sub.as_str(), "bob");
    assert!(
        !got.publish && got.subscribe,
        "defaults and explicit values"
    );
}

#[test]
fn every_refusal_has_its_reason() {
    let v = verifier();
    let ok = hs().sign(&claims());
    let late = t0() + Duration::from_secs(700);
    assert!(matches!(
        v.verify(&ok, late),
        Err(GrantError::Expired { .. })
    ));
    let mut early = claims();
    early.nbf = Some(1_800_000_100);
    assert!(matches!(
        v.verify(&hs().sign(&early), t0()),
        Err(GrantError::NotYetValid { .. })
    ));
    let other = GrantSigner::hs256("app-1", b"another secret of thirty-two b!!");
    assert_eq!(
        v.verify(&other.sign(&claims()), t0()),
        Err(GrantError::BadSignature)
    );
    let stranger = GrantSigner::hs256("app-9", SECRET);
    assert!(matches!(
        v.verify(&stranger.sign(&claims()), t0()),
        Err(GrantError::UnknownKey(k)) if k == "app-9"
    ));
    // Algorithm confusion: HS256 named on the Ed25519 key (its public key
    // bytes as an HMAC secret) is refused before any signature check.
    let (_, public) = ed();
    let confused = GrantSigner::hs256("app-2", public.as_bytes());
    assert!(matches!(
        v.verify(&confused.sign(&claims()), t0()),
        Err(GrantError::WrongAlgorithm { .. })
    ));
    let none = format!(
        "{}.{}.",
        B64.encode(r#"{"alg":"none","kid":"app-1"}"#),
        ok.split('.').nth(1).unwrap()
    );
    assert!(matches!(
        v.verify(&none, t0()),
        Err(GrantError::WrongAlgorithm { .. })
    ));
    // Tampered claims.
    let mut parts: Vec<String> = ok.split('.').map(String::from).collect();
    parts[1] = B64.encode(r#"{"sub":"mallory","conf":"standup","exp":1800000600}"#);
    assert_eq!(
        v.verify(&parts.join("."), t0()),
        Err(GrantError::BadSignature)
    );
    for junk in ["", "a.b", "a.b.c.d", "!!.!!.!!", &"x".repeat(5000)] {
        assert!(
            matches!(v.verify(junk, t0()), Err(GrantError::Malformed(_))),
            "{junk:.20}"
        );
    }
    assert!(GrantKey::hs256(b"short").is_err());
    assert!(GrantVerifier::new().verify(&ok, t0()).is_err());
}

#[test]
fn names_and_ids_are_checked() {
    let v = verifier();
    let mut bad = claims();
    bad.name = Some("a\u{7}b".into());
    assert!(matches!(
        v.verify(&hs().sign(&bad), t0()),
        Err(GrantError::Malformed(_))
    ));
    let h = B64.encode(r#"{"alg":"HS256","kid":"app-1"}"#);
    let c = B64.encode(r#"{"sub":"bad id","conf":"standup","exp":1800000600}"#);
    let input = format!("{h}.{c}");
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET);
    let sig = B64.encode(aws_lc_rs::hmac::sign(&key, input.as_bytes()).as_ref());
    assert!(matches!(
        v.verify(&format!("{input}.{sig}"), t0()),
        Err(GrantError::Malformed(_))
    ));
}

proptest! {
    /// Anything a client sends as a grant: a typed error at worst.
    #[test]
    fn arbitrary_grants_never_panic(s in "\\PC{0,600}") {
        let _ = verifier().verify(&s, t0());
    }

    /// Flipping any byte of a valid grant breaks it.
    #[test]
    fn flipping_a_byte_breaks_the_grant(i in 0usize..400, b in 1u8..=255) {
        let g = hs().sign(&claims());
        let mut bytes = g.into_bytes();
        let i = i % bytes.len();
        bytes[i] ^= b;
        if let Ok(s) = String::from_utf8(bytes) {
            prop_assert!(verifier().verify(&s, t0()).is_err());
        }
    }
}
