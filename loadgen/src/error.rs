//! Why a run could not start or finish. Session-level failures are not
//! errors: they are counted in the report.

/// A run-level failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadgenError {
    /// The configuration cannot run (zero publishers, too many sessions, …).
    #[error("bad configuration: {0}")]
    Config(String),
    /// An HTTP request to an edge failed.
    #[error("{url}: {message}")]
    Http {
        /// What was asked.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// Minting a token failed.
    #[error("token: {0}")]
    Token(String),
    /// A local socket or thread could not be set up.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

impl LoadgenError {
    pub(crate) fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> LoadgenError {
        move |source| LoadgenError::Io { what, source }
    }
}
