//! Mutual TLS for octo links: the cluster CA, this edge's certificate, and
//! verifiers that accept only *edge* certificates of the cluster.
//!
//! Both directions verify the peer's chain against the cluster CA
//! (`ca.pem` from `geomesh certs init`) with rustls's WebPKI verifiers,
//! then require the URI SAN `urn:geomesh:edge:<id>`: a selector's
//! certificate (`urn:geomesh:selector:<id>`), though signed by the same CA,
//! fails the handshake. The dialing side also checks that the server's DNS
//! SAN (the TLS server name, which is the peer's edge id) and URI SAN name
//! the same edge. [`edge_id`] reads the id that the link then trusts (the
//! URI itself is read by `geomesh_core::credentials::node_identity`, as
//! the selector reads it).
//!
//! One crypto provider: every config is built with
//! `builder_with_provider(aws_lc_rs::default_provider())`, never the
//! process default, and TLS 1.3 only (QUIC requires it).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use geomesh_core::EdgeId;
use geomesh_core::topology::TlsSettings;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    SignatureScheme,
};

use crate::wire::ALPN;

/// Why credentials could not be loaded or a TLS config built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A PEM file holds nothing usable.
    #[error("{what}: {reason}")]
    Pem {
        /// Which input.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// This node's own certificate is not an edge certificate for its id.
    #[error("own certificate: {0}")]
    OwnCertificate(#[from] IdentityError),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The CA could not be turned into a verifier.
    #[error("CA verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// QUIC cannot use the TLS configuration.
    #[error("QUIC TLS configuration: {0}")]
    Quic(String),
}

/// Why a certificate does not name an edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The connection carries no peer certificate.
    #[error("{0}")]
    NoCertificate(&'static str),
    /// The certificate names no single geomesh node.
    #[error(transparent)]
    Certificate(#[from] geomesh_core::credentials::IdentityError),
    /// A node of another role (a selector).
    #[error("certificate is for {0}, not an edge or a recorder")]
    NotAnEdge(String),
    /// The id in the URI is not a valid edge id.
    #[error("certificate names an invalid edge id: {0}")]
    BadId(String),
    /// The URI names another edge than expected.
    #[error("certificate is for edge {found}, expected {expected}")]
    WrongEdge {
        /// The expected id.
        expected: String,
        /// The id found.
        found: String,
    },
}

/// What a node needs for mutual TLS: the cluster CA and its own chain and key.
#[derive(Debug)]
pub struct Credentials {
    ca: Vec<CertificateDer<'static>>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for Credentials {
    fn clone(&self) -> Self {
        Self {
            ca: self.ca.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

impl Credentials {
    /// Reads `ca.pem`, `nodes/<id>.pem` and `nodes/<id>.key` from a
    /// credentials directory written by `geomesh certs init`.
    pub fn load(tls: &TlsSettings, node_id: &str) -> Result<Self, TlsError> {
        Self::from_pem(
            &read(&tls.ca_cert())?,
            &read(&tls.node_cert(node_id))?,
            &read(&tls.node_key(node_id))?,
        )
    }

    /// From PEM bytes: CA certificate(s), this node's chain, its private key.
    pub fn from_pem(ca: &[u8], chain: &[u8], key: &[u8]) -> Result<Self, TlsError> {
        let certs = |what, pem| -> Result<Vec<CertificateDer<'static>>, TlsError> {
            let v = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TlsError::Pem {
                    what,
                    reason: e.to_string(),
                })?;
            if v.is_empty() {
                return Err(TlsError::Pem {
                    what,
                    reason: "no certificate".into(),
                });
            }
            Ok(v)
        };
        Ok(Self {
            ca: certs("CA certificate", ca)?,
            chain: certs("node certificate", chain)?,
            key: PrivateKeyDer::from_pem_slice(key).map_err(|e| TlsError::Pem {
                what: "node key",
                reason: e.to_string(),
            })?,
        })
    }

    /// The edge id in this node's own certificate.
    pub fn edge_id(&self) -> Result<EdgeId, IdentityError> {
        // `from_pem` refuses an empty chain.
        edge_id(&self.chain[0])
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, TlsError> {
        let mut roots = RootCertStore::empty();
        for c in &self.ca {
            roots.add(c.clone())?;
        }
        Ok(Arc::new(roots))
    }
}

/// The one crypto provider of octo TLS.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The octo id of an edge's or a recorder's certificate
/// (`urn:geomesh:edge:<id>`, `urn:geomesh:recorder:<id>`): the two roles
/// that hold octo links. A recorder only subscribes, so an edge treats it
/// like any peer that hosts none of its conferences.
pub fn edge_id(cert: &CertificateDer<'_>) -> Result<EdgeId, IdentityError> {
    use geomesh_core::credentials::{Role, node_identity};
    let (role, id) = node_identity(cert.as_ref())?;
    if !matches!(role, Role::Edge | Role::Recorder) {
        return Err(IdentityError::NotAnEdge(format!("{} {id}", role.as_str())));
    }
    EdgeId::new(id.clone()).map_err(|_| IdentityError::BadId(id))
}

fn reject(e: IdentityError) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
}

/// WebPKI client verification plus "must be an edge".
#[derive(Debug)]
struct EdgeClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for EdgeClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let ok = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        edge_id(end_entity).map_err(reject)?;
        Ok(ok)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// WebPKI server verification (chain + DNS name = peer id) plus "must be
/// that edge".
#[derive(Debug)]
struct EdgeServerVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
}

impl ServerCertVerifier for EdgeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ok = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let id = edge_id(end_entity).map_err(reject)?;
        let expected = server_name.to_str();
        if id.as_str() != expected {
            return Err(reject(IdentityError::WrongEdge {
                expected: expected.to_string(),
                found: id.to_string(),
            }));
        }
        Ok(ok)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The rustls server side of octo: client certificates required, edges only.
pub fn server_config(creds: &Credentials) -> Result<rustls::ServerConfig, TlsError> {
    let provider = provider();
    let inner =
        WebPkiClientVerifier::builder_with_provider(creds.roots()?, provider.clone()).build()?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(EdgeClientVerifier { inner }))
        .with_single_cert(creds.chain.clone(), creds.key.clone_key())?;
    cfg.alpn_protocols = vec![ALPN.to_vec()];
    Ok(cfg)
}

/// The rustls client side of octo: the server must be the edge named by
/// the server name, and we present our own certificate.
pub fn client_config(creds: &Credentials) -> Result<rustls::ClientConfig, TlsError> {
    let provider = provider();
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
        creds.roots()?,
        provider.clone(),
    )
    .build()?;
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(EdgeServerVerifier { inner }))
        .with_client_auth_cert(creds.chain.clone(), creds.key.clone_key())?;
    cfg.alpn_protocols = vec![ALPN.to_vec()];
    Ok(cfg)
}
