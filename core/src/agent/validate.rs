//! Checks of what an edge sends: sizes, ranges and formats, each refused
//! with a typed [`AgentRequestError`].

use super::*;

/// Why an agent request body is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AgentRequestError {
    /// `boot_id` is empty, too long or has other characters.
    #[error("boot_id: must be 1–{MAX_BOOT_ID_LEN} bytes of letters, digits, '.', '_' or '-'")]
    BootId,
    /// `base_url` is not an `http(s)://` URL without a path.
    #[error("base_url: {0}")]
    BaseUrl(&'static str),
    /// A number is negative, not finite or out of range.
    #[error("{field}: {value} is out of range ({range})")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The value given.
        value: f64,
        /// The accepted range.
        range: &'static str,
    },
    /// A link RTT is negative, not finite or absurd.
    #[error("links[{index}].rtt_ms: {rtt_ms} is not a round-trip time (0 to {MAX_LINK_RTT_MS} ms)")]
    LinkRtt {
        /// Index in `links`.
        index: usize,
        /// The value given.
        rtt_ms: f64,
    },
    /// The same edge twice in `links`.
    #[error("links[{index}].edge: {edge} appears twice")]
    DuplicateLink {
        /// Index of the second entry.
        index: usize,
        /// The edge.
        edge: EdgeId,
    },
    /// A text field is too long or not printable ASCII.
    #[error("{0}: longer than 64 characters or not printable ASCII")]
    BadText(&'static str),
    /// A link state other than `up` or `down`.
    #[error("links[{index}].state: {state:?} is neither up nor down")]
    LinkState {
        /// Index in `links`.
        index: usize,
        /// The value given.
        state: String,
    },
    /// The same participant in `joined` and `left` of one report: which
    /// came first cannot be told (send them in two reports).
    #[error("{0}: in both joined and left of one report (send them in order, in two reports)")]
    Ambiguous(String),
    /// Too many entries.
    #[error("{field}: {len} entries (at most {max})")]
    TooMany {
        /// The field.
        field: &'static str,
        /// Entries given.
        len: usize,
        /// The maximum.
        max: usize,
    },
}

/// Checks a `boot_id`.
pub fn validate_boot_id(boot_id: &str) -> Result<(), AgentRequestError> {
    let ok = !boot_id.is_empty()
        && boot_id.len() <= MAX_BOOT_ID_LEN
        && boot_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(AgentRequestError::BootId)
    }
}

impl RegisterRequest {
    /// Checks what serde does not.
    pub fn validate(&self) -> Result<(), AgentRequestError> {
        validate_boot_id(&self.boot_id)?;
        if let Some(u) = &self.base_url {
            validate_base_url(u)?;
        }
        Ok(())
    }
}

/// Checks an advertised base URL: `http(s)://authority`, no path, query,
/// whitespace or control characters.
pub fn validate_base_url(u: &str) -> Result<(), AgentRequestError> {
    if u.len() > MAX_BASE_URL_LEN {
        return Err(AgentRequestError::BaseUrl("longer than 256 bytes"));
    }
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .ok_or(AgentRequestError::BaseUrl(
            "must start with http:// or https://",
        ))?;
    if rest.is_empty() {
        return Err(AgentRequestError::BaseUrl("has no host"));
    }
    if rest
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '?' | '#' | '@'))
    {
        return Err(AgentRequestError::BaseUrl(
            "must be scheme://host[:port] only (no path, query, user or spaces)",
        ));
    }
    Ok(())
}

pub(super) fn range(
    field: &'static str,
    value: f64,
    max: f64,
    label: &'static str,
) -> Result<(), AgentRequestError> {
    if value.is_finite() && (0.0..=max).contains(&value) {
        Ok(())
    } else {
        Err(AgentRequestError::OutOfRange {
            field,
            value,
            range: label,
        })
    }
}

impl Heartbeat {
    /// Checks ranges that serde does not.
    pub fn validate(&self) -> Result<(), AgentRequestError> {
        validate_boot_id(&self.boot_id)?;
        range("packet_rate", self.packet_rate, 1e9, "0 to 1e9")?;
        range("bitrate_bps", self.bitrate_bps, 1e12, "0 to 1e12")?;
        range("cpu", self.cpu, 1.0, "0.0 to 1.0")?;
        range("stress", self.stress, MAX_STRESS, "0.0 to 100.0")?;
        if let Some(a) = &self.about {
            a.validate()?;
        }
        if self.links.len() > MAX_LINKS {
            return Err(AgentRequestError::TooMany {
                field: "links",
                len: self.links.len(),
                max: MAX_LINKS,
            });
        }
        for (index, l) in self.links.iter().enumerate() {
            if !(l.rtt_ms.is_finite() && (0.0..=MAX_LINK_RTT_MS).contains(&l.rtt_ms)) {
                return Err(AgentRequestError::LinkRtt {
                    index,
                    rtt_ms: l.rtt_ms,
                });
            }
            if let Some(st) = &l.state
                && st != "up"
                && st != "down"
            {
                return Err(AgentRequestError::LinkState {
                    index,
                    state: st.chars().take(16).collect(),
                });
            }
            if let Some(loss) = l.loss {
                range("links[].loss", loss, 1.0, "0.0 to 1.0")?;
            }
            if self.links[..index].iter().any(|m| m.edge == l.edge) {
                return Err(AgentRequestError::DuplicateLink {
                    index,
                    edge: l.edge.clone(),
                });
            }
        }
        Ok(())
    }
}

impl EdgeAbout {
    /// Checks what serde does not: bounded, printable text.
    pub fn validate(&self) -> Result<(), AgentRequestError> {
        for (field, v) in [
            ("about.version", &self.version),
            ("about.topology_hash", &self.topology_hash),
            ("about.token_key", &self.token_key),
        ] {
            if v.len() > 64 || !v.chars().all(|c| c.is_ascii_graphic()) {
                return Err(AgentRequestError::BadText(field));
            }
        }
        Ok(())
    }
}

impl ParticipantReport {
    /// Checks sizes.
    pub fn validate(&self) -> Result<(), AgentRequestError> {
        let len = self.joined.len() + self.left.len();
        if len > MAX_REPORT_ENTRIES {
            return Err(AgentRequestError::TooMany {
                field: "joined + left",
                len,
                max: MAX_REPORT_ENTRIES,
            });
        }
        let joined: std::collections::HashSet<(&ConferenceId, &ParticipantId)> = self
            .joined
            .iter()
            .map(|r| (&r.conference, &r.participant))
            .collect();
        if let Some(r) = self
            .left
            .iter()
            .find(|r| joined.contains(&(&r.conference, &r.participant)))
        {
            return Err(AgentRequestError::Ambiguous(format!(
                "{}/{}",
                r.conference, r.participant
            )));
        }
        Ok(())
    }
}
