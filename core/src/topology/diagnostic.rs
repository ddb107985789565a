//! Positioned topology problems.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// A 1-based line and column in the topology file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Position {
    /// Line, from 1.
    pub line: u64,
    /// Column, from 1.
    pub column: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Whether a problem stops the topology from being used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The topology is invalid.
    Error,
    /// Suspicious but usable.
    Warning,
}

/// One problem, where it is, and what is wrong.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Where in the file (None only when the parser could not tell).
    pub position: Option<Position>,
    /// The path of the offending value, e.g. `edges[3].region` (empty for syntax errors).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    /// `12:5: error: edges[3].region: unknown region "eu-wst"`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = self.position {
            write!(f, "{p}: ")?;
        }
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{sev}: ")?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Why a topology could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TopologyError {
    /// The file could not be read.
    #[error("cannot read {path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        message: String,
    },
    /// YAML syntax, type errors, or semantic errors (all of them, with warnings
    /// found on the way).
    #[error("{} error(s) in topology", .diagnostics.iter().filter(|d| d.severity == Severity::Error).count())]
    Invalid {
        /// Every problem found, errors and warnings, in file order.
        diagnostics: Vec<Diagnostic>,
    },
}

impl TopologyError {
    /// All diagnostics (empty for I/O errors).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            TopologyError::Io { .. } => &[],
            TopologyError::Invalid { diagnostics } => diagnostics,
        }
    }
}
