//! Mutual TLS for the internal listener: rustls configurations built from
//! the cluster credentials, and a peer's identity from its certificate.
//!
//! Every configuration is built with an explicit aws-lc-rs provider
//! (`builder_with_provider`), never the process default.

use std::path::Path;
use std::sync::Arc;

use geomesh_core::credentials::Role;
use geomesh_core::topology::TlsSettings;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why credentials could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file is missing or unreadable.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// rustls refused the material.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built.
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// The one crypto provider geomesh uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn pem_err(path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::Pem {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Reads every certificate in a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_err(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(path, e))?;
    if certs.is_empty() {
        return Err(pem_err(path, "no certificate in file"));
    }
    Ok(certs)
}

/// Reads a private key from a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| pem_err(path, e))
}

fn roots(ca: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(ca)? {
        roots.add(c)?;
    }
    Ok(roots)
}

/// The TLS material of one node.
#[derive(Clone)]
pub struct NodeTls {
    /// Server side: requires a client certificate from the cluster CA.
    pub server: Arc<ServerConfig>,
    /// Client side: presents this node's certificate, trusts only the CA.
    pub client: Arc<ClientConfig>,
}

impl NodeTls {
    /// Loads `ca.pem` and the node's certificate and key from `tls`.
    pub fn load(tls: &TlsSettings, node_id: &str) -> Result<Self, TlsError> {
        Self::from_files(
            &tls.ca_cert(),
            &tls.node_cert(node_id),
            &tls.node_key(node_id),
        )
    }

    /// Builds both configurations from explicit files.
    pub fn from_files(ca: &Path, cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let chain = load_certs(cert)?;
        let key_der = load_key(key)?;
        let roots = Arc::new(roots(ca)?);
        let verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider()).build()?;
        let mut server = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key_der.clone_key())?;
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let client = client_config(roots, chain, key_der)?;
        Ok(Self {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }
}

/// A client configuration that presents `chain` and trusts `roots` only.
pub fn client_config(
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<ClientConfig, TlsError> {
    let mut client = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    client.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(client)
}

/// Who is on the other end of an internal connection, from the URI SAN
/// `urn:geomesh:<role>:<id>` of its (already verified) certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Edge or selector.
    pub role: Role,
    /// Node id as written in the certificate.
    pub id: String,
}

/// Reads the geomesh identity from a DER certificate; `None` when it does
/// not name exactly one geomesh node (a certificate from some other issuer).
pub fn peer_identity(cert: &CertificateDer<'_>) -> Option<Peer> {
    let (role, id) = geomesh_core::credentials::node_identity(cert.as_ref()).ok()?;
    Some(Peer { role, id })
}
