//! Positioned YAML: the shared machinery behind every geomesh file format
//! (topology, simulation scenarios) — serde structs that keep each value's
//! line and column, and parse errors as one positioned [`Diagnostic`].

use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::topology::{Diagnostic, Position, Severity};

/// The problems a validation found, each at its position.
#[derive(Debug, Default)]
pub struct Report {
    diagnostics: Vec<Diagnostic>,
}

impl Report {
    /// Records a problem of `severity`.
    pub fn push(
        &mut self,
        severity: Severity,
        at: Option<Position>,
        path: impl Into<String>,
        msg: impl Into<String>,
    ) {
        self.diagnostics.push(Diagnostic {
            severity,
            position: at,
            path: path.into(),
            message: msg.into(),
        });
    }

    /// Records an error (the file is refused).
    pub fn error(&mut self, at: Option<Position>, path: impl Into<String>, msg: impl Into<String>) {
        self.push(Severity::Error, at, path, msg);
    }

    /// Records a warning (the file is used; the user is told).
    pub fn warning(
        &mut self,
        at: Option<Position>,
        path: impl Into<String>,
        msg: impl Into<String>,
    ) {
        self.push(Severity::Warning, at, path, msg);
    }

    /// Whether any problem is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }

    /// Every problem, in file order (those without a position last).
    pub fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.diagnostics.sort_by_key(|d| {
            d.position
                .map(|p| (p.line, p.column))
                .unwrap_or((u64::MAX, 0))
        });
        self.diagnostics
    }
}

/// A value with the position it came from.
pub type S<T> = serde_saphyr::Spanned<T>;

/// The position of a spanned value (where it is used, for aliases).
pub fn pos<T>(s: &S<T>) -> Option<Position> {
    let l = s.referenced;
    (l.line() > 0).then(|| Position {
        line: l.line(),
        column: l.column(),
    })
}

/// A duration written the human way: `1s`, `250ms`, `2h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map(HumanDuration)
            .map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}")))
    }
}

/// Parses YAML into `T`; syntax and type errors come back as one
/// positioned diagnostic.
pub fn parse<T: DeserializeOwned>(yaml: &str) -> Result<T, Diagnostic> {
    serde_saphyr::from_str::<T>(yaml).map_err(|e| {
        let position = e.location().and_then(|l| {
            (l.line() > 0).then(|| Position {
                line: l.line(),
                column: l.column(),
            })
        });
        Diagnostic {
            severity: Severity::Error,
            position,
            path: String::new(),
            message: plain_message(&e),
        }
    })
}

/// The parser's message without its rendered source snippet or position
/// suffix (callers print the position once, themselves).
fn plain_message(e: &serde_saphyr::Error) -> String {
    let text = e.without_snippet().to_string();
    let first = text.lines().next().unwrap_or("invalid YAML").trim();
    // serde-saphyr appends " at line L column C"; drop it.
    match first.rfind(" at line ") {
        Some(i) => first[..i].to_string(),
        None => first.to_string(),
    }
}
