use super::*;
use proptest::prelude::*;

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn claims() -> JoinClaims {
    JoinClaims::new(
        "standup".parse().unwrap(),
        "alice".parse().unwrap(),
        "edge-fra-1".parse().unwrap(),
        t0(),
        Duration::from_secs(600),
    )
}

fn edge(s: &str) -> EdgeId {
    s.parse().unwrap()
}

#[test]
fn round_trip() {
    let s = TokenSigner::generate().unwrap();
    let tok = s.sign(&claims());
    assert_eq!(tok.split('.').count(), 3);
    let got = s
        .verifier()
        .verify(
            &tok,
            t0(),
            &edge("edge-fra-1"),
            Some(&"standup".parse().unwrap()),
        )
        .unwrap();
    assert_eq!(got, claims());
    assert_eq!(got.exp - got.iat, 600);
}

#[test]
fn the_location_claim_travels_and_is_absent_when_unknown() {
    let s = TokenSigner::generate().unwrap();
    let plain = s.sign(&claims());
    // Without a location the claim is not written at all (older edges
    // refuse unknown claims).
    let payload = plain.split('.').nth(1).unwrap();
    let json = String::from_utf8(
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).unwrap(),
    )
    .unwrap();
    assert!(!json.contains("loc"), "{json}");
    let mut located = claims();
    located.location = Some(crate::GeoPoint::new(48.86, 2.35).unwrap());
    let got = s
        .verifier()
        .verify(&s.sign(&located), t0(), &edge("edge-fra-1"), None)
        .unwrap();
    assert_eq!(got.location, located.location);
}

#[test]
fn pem_round_trip() {
    let s = TokenSigner::generate().unwrap();
    let p = std::path::Path::new("k");
    let s2 = TokenSigner::from_pem(&s.to_pem(), p).unwrap();
    let v = TokenVerifier::from_pem(&s.verifier().to_pem(), p).unwrap();
    assert!(s.to_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(v.to_pem().starts_with("-----BEGIN PUBLIC KEY-----"));
    let tok = s2.sign(&claims());
    assert!(v.decode(&tok, t0()).is_ok());
    assert!(matches!(
        TokenVerifier::from_pem("garbage", p),
        Err(KeyError::Format { .. })
    ));
}

#[test]
fn every_refusal_has_its_reason() {
    let s = TokenSigner::generate().unwrap();
    let v = s.verifier().with_leeway(Duration::from_secs(5));
    let tok = s.sign(&claims());
    let e = edge("edge-fra-1");

    let late = t0() + Duration::from_secs(606);
    assert_eq!(
        v.verify(&tok, late, &e, None),
        Err(TokenError::Expired {
            expired_at: 1_800_000_600,
            now: 1_800_000_606
        })
    );
    // Within leeway is still fine.
    assert!(
        v.verify(&tok, t0() + Duration::from_secs(604), &e, None)
            .is_ok()
    );
    let early = t0() - Duration::from_secs(60);
    assert!(matches!(
        v.verify(&tok, early, &e, None),
        Err(TokenError::NotYetValid { .. })
    ));
    assert!(matches!(
        v.verify(&tok, t0(), &edge("edge-fra-2"), None),
        Err(TokenError::WrongEdge { .. })
    ));
    assert!(matches!(
        v.verify(&tok, t0(), &e, Some(&"other".parse().unwrap())),
        Err(TokenError::WrongConference { .. })
    ));
    let other = TokenSigner::generate().unwrap().verifier();
    assert_eq!(
        other.verify(&tok, t0(), &e, None),
        Err(TokenError::BadSignature)
    );

    // Tampered payload: same signature, other claims.
    let parts: Vec<&str> = tok.split('.').collect();
    let mut c = claims();
    c.edge = edge("edge-fra-2");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(serde_json::to_vec(&c).unwrap()),
        parts[2]
    );
    assert_eq!(
        v.verify(&forged, t0(), &edge("edge-fra-2"), None),
        Err(TokenError::BadSignature)
    );

    // alg=none is refused before anything else.
    let none = format!("{}.{}.", B64.encode(r#"{"alg":"none"}"#), parts[1]);
    assert_eq!(v.decode(&none, t0()), Err(TokenError::UnsupportedAlgorithm));

    for bad in ["", "a.b", "a.b.c.d", "!!.??.##", &"x".repeat(3000)] {
        assert!(
            matches!(v.decode(bad, t0()), Err(TokenError::Malformed(_))),
            "{bad:.20}"
        );
    }
}

proptest! {
    #[test]
    fn arbitrary_strings_never_panic(s in "\\PC{0,400}") {
        let v = TokenSigner::generate().unwrap().verifier();
        let _ = v.decode(&s, t0());
    }

    #[test]
    fn flipping_any_byte_breaks_the_token(i in 0usize..300, b in 1u8..=255) {
        let s = TokenSigner::generate().unwrap();
        let tok = s.sign(&claims());
        let mut bytes = tok.clone().into_bytes();
        let i = i % bytes.len();
        bytes[i] ^= b;
        if let Ok(t) = String::from_utf8(bytes)
            && t != tok
        {
            prop_assert!(s.verifier().decode(&t, t0()).is_err());
        }
    }
}

#[test]
fn rejoin_secrets_are_per_identity_key_and_time_and_carry_rights() {
    let s = TokenSigner::generate().unwrap();
    let v = s.verifier();
    let (c, p) = ("standup".parse().unwrap(), "alice".parse().unwrap());
    let viewer = Rights {
        publish: false,
        subscribe: true,
    };
    let secret = s.rejoin_secret(&c, &p, viewer, t0());
    assert_eq!(v.check_rejoin_secret(&c, &p, &secret, t0()), Some(viewer));
    let later = t0() + REJOIN_TTL - Duration::from_secs(1);
    assert_eq!(v.check_rejoin_secret(&c, &p, &secret, later), Some(viewer));
    assert_eq!(
        v.check_rejoin_secret(&c, &p, &secret, t0() + REJOIN_TTL),
        None,
        "expired"
    );
    assert_eq!(
        v.check_rejoin_secret(&c, &p, &secret, t0() - Duration::from_secs(600)),
        None,
        "issued in the future"
    );
    assert_eq!(
        v.check_rejoin_secret(&c, &"bob".parse().unwrap(), &secret, t0()),
        None
    );
    assert_eq!(
        v.check_rejoin_secret(&"retro".parse().unwrap(), &p, &secret, t0()),
        None
    );
    let other = TokenSigner::generate().unwrap();
    assert_eq!(
        other.verifier().check_rejoin_secret(&c, &p, &secret, t0()),
        None
    );
    // The rights cannot be edited: they are signed.
    let mut raw = B64.decode(&secret).unwrap();
    raw[1] = 3;
    assert_eq!(v.check_rejoin_secret(&c, &p, &B64.encode(raw), t0()), None);
    for junk in ["", "!!", "AAAA", &secret[1..]] {
        assert_eq!(v.check_rejoin_secret(&c, &p, junk, t0()), None, "{junk:?}");
    }
}
