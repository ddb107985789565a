//! Validated identifier newtypes.
//!
//! Node ids (edges, regions, selectors) end up in DNS names, certificate
//! SANs, URLs and metric labels, so they follow DNS-label rules: lowercase
//! ASCII letters, digits and `-`, 1–63 characters, no leading or trailing
//! `-`. Conference and participant ids are chosen by users and appear in URL
//! paths, so they allow ASCII letters of both cases, digits, `-`, `_` and
//! `.`, 1–64 characters, and never start with `.`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The string is empty.
    #[error("{kind} id is empty")]
    Empty {
        /// Which kind of id was being parsed.
        kind: &'static str,
    },
    /// The string is longer than the kind allows.
    #[error("{kind} id {value:?} is {len} characters long (at most {max})")]
    TooLong {
        /// Which kind of id was being parsed.
        kind: &'static str,
        /// The offending value (truncated to 80 chars).
        value: String,
        /// Its length in bytes.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// A character outside the allowed set, or in a forbidden position.
    #[error("{kind} id {value:?}: {reason}")]
    Invalid {
        /// Which kind of id was being parsed.
        kind: &'static str,
        /// The offending value (truncated to 80 chars).
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The two id grammars.
#[derive(Clone, Copy)]
enum Grammar {
    /// DNS label: `[a-z0-9-]{1,63}`, no `-` at either end.
    Node,
    /// User-chosen name: `[A-Za-z0-9._-]{1,64}`, not starting with `.`.
    Name,
}

fn shorten(s: &str) -> String {
    s.chars().take(80).collect()
}

fn validate(kind: &'static str, grammar: Grammar, s: &str) -> Result<(), IdError> {
    let max = match grammar {
        Grammar::Node => 63,
        Grammar::Name => 64,
    };
    if s.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if s.len() > max {
        return Err(IdError::TooLong {
            kind,
            value: shorten(s),
            len: s.len(),
            max,
        });
    }
    let invalid = |reason: String| IdError::Invalid {
        kind,
        value: shorten(s),
        reason,
    };
    for (i, c) in s.char_indices() {
        let ok = match grammar {
            Grammar::Node => c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-',
            Grammar::Name => c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'),
        };
        if !ok {
            let allowed = match grammar {
                Grammar::Node => "lowercase letters, digits and '-'",
                Grammar::Name => "letters, digits, '-', '_' and '.'",
            };
            return Err(invalid(format!(
                "character {c:?} at position {i} is not allowed (only {allowed})"
            )));
        }
    }
    match grammar {
        Grammar::Node if s.starts_with('-') || s.ends_with('-') => {
            Err(invalid("must not start or end with '-'".into()))
        }
        Grammar::Name if s.starts_with('.') => Err(invalid("must not start with '.'".into())),
        _ => Ok(()),
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $grammar:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps `s`.
            pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                validate($kind, $grammar, &s)?;
                Ok(Self(s))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// An edge bridge (SFU), unique in the cluster; also its certificate name.
    EdgeId, "edge", Grammar::Node
);
id_type!(
    /// A region (a metro area / cloud region where edges run).
    RegionId, "region", Grammar::Node
);
id_type!(
    /// A selector node, unique in the cluster; also its certificate name.
    SelectorId, "selector", Grammar::Node
);
id_type!(
    /// A conference (meeting room) name.
    ConferenceId, "conference", Grammar::Name
);
id_type!(
    /// A participant within a conference.
    ParticipantId, "participant", Grammar::Name
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_follow_dns_label_rules() {
        assert!(EdgeId::new("edge-fra-1").is_ok());
        assert!(EdgeId::new("a").is_ok());
        assert!(EdgeId::new("x".repeat(63)).is_ok());
        assert!(matches!(
            EdgeId::new("x".repeat(64)),
            Err(IdError::TooLong {
                len: 64,
                max: 63,
                ..
            })
        ));
        assert!(matches!(RegionId::new(""), Err(IdError::Empty { .. })));
        for bad in ["Edge", "edge_1", "-edge", "edge-", "ed ge", "édge", "a.b"] {
            assert!(
                matches!(EdgeId::new(bad), Err(IdError::Invalid { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn name_ids_allow_case_dots_and_underscores() {
        assert!(ConferenceId::new("Team_Sync.2026-11").is_ok());
        assert!(ParticipantId::new("alice").is_ok());
        assert!(ConferenceId::new(".hidden").is_err());
        assert!(ConferenceId::new("a/b").is_err());
        assert!(ConferenceId::new("a b").is_err());
        assert!(ConferenceId::new("x".repeat(65)).is_err());
    }

    #[test]
    fn serde_validates() {
        let ok: EdgeId = serde_json::from_str("\"edge-1\"").unwrap();
        assert_eq!(ok.as_str(), "edge-1");
        let err = serde_json::from_str::<EdgeId>("\"Edge 1\"").unwrap_err();
        assert!(err.to_string().contains("not allowed"), "{err}");
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"edge-1\"");
    }

    #[test]
    fn error_messages_name_the_kind() {
        let e = SelectorId::new("").unwrap_err();
        assert_eq!(e.to_string(), "selector id is empty");
    }
}
