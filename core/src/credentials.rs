//! Cluster credentials: the files `geomesh certs init` writes and every node
//! reads.
//!
//! One cluster CA (ECDSA P-256) signs one certificate per edge and selector,
//! and one for operators (role `operator`: the admin API and tools).
//! A node's id is its certificate's DNS SAN, and its role and id are also in
//! a URI SAN `urn:geomesh:<role>:<id>`: peers take a node's identity from
//! the certificate, never from a message. The Ed25519 join-token key pair
//! sits beside them. Layout (see [`TlsSettings`]):
//!
//! ```text
//! ca.pem  ca.key  token.key  token.pub  nodes/<id>.pem  nodes/<id>.key
//! nodes/operator.pem  nodes/operator.key  operator.token
//! ```
//!
//! `operator.token` is a random bearer token for the selectors' public
//! operating endpoints (the topology's `access.operator_token_file`).
//!
//! `ca.key` is needed only to issue certificates: keep it off the nodes.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::token::TokenSigner;
use crate::topology::{TlsSettings, Topology};

/// How long the CA is valid.
const CA_DAYS: i64 = 3650;
/// How long node certificates are valid (rotate by re-running with new ids or `--force`).
const NODE_DAYS: i64 = 825;

/// A node's role, as written in its URI SAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An edge bridge.
    Edge,
    /// A selector node.
    Selector,
    /// A person or tool operating the cluster (drain, membership, listings).
    Operator,
    /// A recording node (an octo peer of the edges).
    Recorder,
}

/// The id of the operator certificate `geomesh certs init` writes.
pub const OPERATOR_ID: &str = "operator";

impl Role {
    /// `edge` or `selector`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Edge => "edge",
            Role::Selector => "selector",
            Role::Operator => "operator",
            Role::Recorder => "recorder",
        }
    }

    /// The URI SAN naming a node of this role.
    pub fn uri(self, id: &str) -> String {
        format!("{URI_PREFIX}{}:{id}", self.as_str())
    }
}

/// What every node URI SAN starts with.
const URI_PREFIX: &str = "urn:geomesh:";

/// Why a certificate does not name a geomesh node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// Not a parseable X.509 certificate.
    #[error("certificate does not parse: {0}")]
    Parse(String),
    /// No `urn:geomesh:…` URI SAN.
    #[error("certificate has no urn:geomesh URI SAN")]
    NoGeomeshUri,
    /// More than one `urn:geomesh:…` URI SAN.
    #[error("certificate has several urn:geomesh URI SANs")]
    AmbiguousUri,
    /// A role other than `edge` or `selector`.
    #[error("certificate names an unknown role: {0}")]
    UnknownRole(String),
}

/// The node a DER certificate names in its one `urn:geomesh:<role>:<id>`
/// URI SAN — the reading side of [`Role::uri`]. The chain must have been
/// verified against the cluster CA first: this only reads.
pub fn node_identity(der: &[u8]) -> Result<(Role, String), IdentityError> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| IdentityError::Parse(e.to_string()))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| IdentityError::Parse(e.to_string()))?
        .ok_or(IdentityError::NoGeomeshUri)?;
    let mut found = None;
    for name in &san.value.general_names {
        if let GeneralName::URI(uri) = name
            && let Some(rest) = uri.strip_prefix(URI_PREFIX)
        {
            if found.is_some() {
                return Err(IdentityError::AmbiguousUri);
            }
            found = Some(rest.split_once(':').unwrap_or((rest, "")));
        }
    }
    let (role, id) = found.ok_or(IdentityError::NoGeomeshUri)?;
    let role = match role {
        "edge" => Role::Edge,
        "selector" => Role::Selector,
        "operator" => Role::Operator,
        "recorder" => Role::Recorder,
        other => return Err(IdentityError::UnknownRole(format!("{other} {id}"))),
    };
    Ok((role, id.to_string()))
}

/// The role and id of the first certificate of PEM text `pem` (see
/// [`node_identity`]).
pub fn pem_identity(pem: &[u8]) -> Result<(Role, String), IdentityError> {
    let (_, p) =
        x509_parser::pem::parse_x509_pem(pem).map_err(|e| IdentityError::Parse(e.to_string()))?;
    node_identity(&p.contents)
}

/// When the first certificate of PEM text `pem` expires, Unix seconds.
pub fn cert_not_after(pem: &[u8]) -> Result<u64, IdentityError> {
    let (_, p) =
        x509_parser::pem::parse_x509_pem(pem).map_err(|e| IdentityError::Parse(e.to_string()))?;
    let cert = p
        .parse_x509()
        .map_err(|e| IdentityError::Parse(e.to_string()))?;
    u64::try_from(cert.validity().not_after.timestamp())
        .map_err(|_| IdentityError::Parse("expiry before 1970".into()))
}

/// Why credentials could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// A file exists and `force` was not given.
    #[error("{0} already exists (use --force to overwrite every credential)")]
    Exists(PathBuf),
    /// Writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Certificate generation failed.
    #[error("certificate for {node}: {source}")]
    Certificate {
        /// The node (or `ca`).
        node: String,
        /// rcgen's error.
        source: rcgen::Error,
    },
    /// The token key could not be made.
    #[error(transparent)]
    Key(#[from] crate::token::KeyError),
}

/// What [`init`] wrote.
#[derive(Debug)]
pub struct Written {
    /// Every file, in writing order.
    pub files: Vec<PathBuf>,
}

fn cert_err(node: &str) -> impl FnOnce(rcgen::Error) -> CredentialsError + '_ {
    move |source| CredentialsError::Certificate {
        node: node.to_string(),
        source,
    }
}

fn validity(params: &mut CertificateParams, now: SystemTime, days: i64) {
    let now = time::OffsetDateTime::from(now);
    // An hour back tolerates clock skew between the issuing host and nodes.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(days);
}

/// Every edge, selector and recorder of `topology`: role, id and the IPs its
/// certificate names.
fn nodes(topology: &Topology) -> Vec<(Role, String, Vec<IpAddr>)> {
    let mut nodes = Vec::new();
    for e in &topology.edges {
        let mut ips = vec![e.public_ip, e.http.ip(), e.octo.ip()];
        ips.retain(|ip| !ip.is_unspecified());
        ips.dedup();
        nodes.push((Role::Edge, e.id.to_string(), ips));
    }
    for s in &topology.selectors {
        let mut ips = vec![s.api.ip(), s.raft.ip()];
        ips.retain(|ip| !ip.is_unspecified());
        ips.dedup();
        nodes.push((Role::Selector, s.id.to_string(), ips));
    }
    for r in &topology.recorders {
        let mut ips = vec![r.http.ip(), r.octo.ip()];
        ips.retain(|ip| !ip.is_unspecified());
        ips.dedup();
        nodes.push((Role::Recorder, r.id.to_string(), ips));
    }
    nodes.push((Role::Operator, OPERATOR_ID.to_string(), Vec::new()));
    nodes
}

/// A fresh operator token: 32 random bytes, base64url.
fn operator_token() -> Result<String, CredentialsError> {
    use base64::Engine;
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| crate::token::KeyError::Random(e.to_string()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b) + "\n")
}

/// Writes a cluster CA, one certificate per edge and selector of `topology`,
/// and the token key pair into `out`. Refuses to overwrite unless `force`.
pub fn init(
    topology: &Topology,
    out: &Path,
    force: bool,
    now: SystemTime,
) -> Result<Written, CredentialsError> {
    let layout = TlsSettings {
        dir: out.to_path_buf(),
    };
    let nodes = nodes(topology);
    let mut targets = vec![
        layout.ca_cert(),
        out.join("ca.key"),
        layout.token_key(),
        layout.token_public_key(),
        layout.operator_token(),
    ];
    for (_, id, _) in &nodes {
        targets.push(layout.node_cert(id));
        targets.push(layout.node_key(id));
    }
    if !force && let Some(existing) = targets.iter().find(|p| p.exists()) {
        return Err(CredentialsError::Exists(existing.clone()));
    }

    let mut files = Vec::new();
    let ca_key = KeyPair::generate().map_err(cert_err("ca"))?;
    let mut ca_params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "geomesh");
    dn.push(
        DnType::CommonName,
        format!("geomesh cluster CA ({})", topology.cluster.name),
    );
    ca_params.distinguished_name = dn;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut ca_params, now, CA_DAYS);
    let ca_cert = ca_params.self_signed(&ca_key).map_err(cert_err("ca"))?;
    write_listed(&mut files, layout.ca_cert(), &ca_cert.pem())?;
    write_listed(&mut files, out.join("ca.key"), &ca_key.serialize_pem())?;
    let issuer = Issuer::new(ca_params, ca_key);
    for node in &nodes {
        issue(&issuer, node, &layout, now, &mut files)?;
    }

    let token = TokenSigner::generate()?;
    write_listed(&mut files, layout.token_key(), &token.to_pem())?;
    write_listed(
        &mut files,
        layout.token_public_key(),
        &token.verifier().to_pem(),
    )?;
    write_listed(&mut files, layout.operator_token(), &operator_token()?)?;
    Ok(Written { files })
}

/// Issues certificates, with the existing CA in `out` (`ca.pem`,
/// `ca.key`), for the nodes of `topology` that have none yet: an edge or
/// selector added to the topology of a running cluster. Nothing existing
/// is touched.
pub fn add(topology: &Topology, out: &Path, now: SystemTime) -> Result<Written, CredentialsError> {
    let layout = TlsSettings {
        dir: out.to_path_buf(),
    };
    let read = |path: PathBuf| {
        fs::read_to_string(&path).map_err(|source| CredentialsError::Io { path, source })
    };
    let ca_key = KeyPair::from_pem(&read(out.join("ca.key"))?).map_err(cert_err("ca"))?;
    let issuer =
        Issuer::from_ca_cert_pem(&read(layout.ca_cert())?, ca_key).map_err(cert_err("ca"))?;
    let mut files = Vec::new();
    for node in nodes(topology) {
        if !layout.node_cert(&node.1).exists() {
            issue(&issuer, &node, &layout, now, &mut files)?;
        }
    }
    Ok(Written { files })
}

fn write_listed(
    files: &mut Vec<PathBuf>,
    path: PathBuf,
    contents: &str,
) -> Result<(), CredentialsError> {
    write_private(&path, contents.as_bytes())?;
    files.push(path);
    Ok(())
}

/// One node's key and certificate, signed by `issuer`.
fn issue(
    issuer: &Issuer<'_, KeyPair>,
    (role, id, ips): &(Role, String, Vec<IpAddr>),
    layout: &TlsSettings,
    now: SystemTime,
    files: &mut Vec<PathBuf>,
) -> Result<(), CredentialsError> {
    let key = KeyPair::generate().map_err(cert_err(id))?;
    let mut params = CertificateParams::new(vec![id.clone()]).map_err(cert_err(id))?;
    let uri = rcgen::string::Ia5String::try_from(role.uri(id)).map_err(cert_err(id))?;
    params.subject_alt_names.push(SanType::URI(uri));
    params
        .subject_alt_names
        .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "geomesh");
    dn.push(DnType::OrganizationalUnitName, role.as_str());
    dn.push(DnType::CommonName, id.as_str());
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // Every node is a TLS server (it accepts links) and a client (it dials them).
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    validity(&mut params, now, NODE_DAYS);
    let cert = params.signed_by(&key, issuer).map_err(cert_err(id))?;
    write_listed(files, layout.node_cert(id), &cert.pem())?;
    write_listed(files, layout.node_key(id), &key.serialize_pem())
}

/// Writes a file readable by its owner only (0600), creating 0700 parents.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), CredentialsError> {
    let io = |source| CredentialsError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
    }
    // Replace rather than truncate so a re-run never leaves a wider mode behind.
    let _ = fs::remove_file(path);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(contents).map_err(io)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const TOPO: &str = r#"
version: 1
cluster: { name: t }
tls: { dir: certs }
regions:
  - { id: eu, name: F, location: { lat: 50.1, lon: 8.7 }, provider: local, provider_region: x }
edges:
  - { id: edge-1, region: eu, public_ip: 127.0.0.1, http: 127.0.0.1:8081, octo: 127.0.0.1:4431, capacity: 10 }
selectors:
  - { id: sel-1, region: eu, api: 127.0.0.1:7001, raft: 127.0.0.1:7101 }
"#;

    #[test]
    fn writes_everything_private_and_refuses_to_overwrite() {
        let t = Topology::parse(TOPO, Path::new(".")).unwrap().topology;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("certs");
        let w = init(&t, &out, false, SystemTime::now()).unwrap();
        assert_eq!(w.files.len(), 11, "{:?}", w.files);
        for f in &w.files {
            let mode = fs::metadata(f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", f.display());
        }
        let pem = fs::read_to_string(out.join("nodes/edge-1.pem")).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(TokenSigner::load(&out.join("token.key")).is_ok());
        assert!(crate::token::TokenVerifier::load(&out.join("token.pub")).is_ok());

        let before = fs::read(out.join("ca.pem")).unwrap();
        assert!(matches!(
            init(&t, &out, false, SystemTime::now()),
            Err(CredentialsError::Exists(_))
        ));
        assert_eq!(
            fs::read(out.join("ca.pem")).unwrap(),
            before,
            "nothing overwritten"
        );
        init(&t, &out, true, SystemTime::now()).unwrap();
        assert_ne!(fs::read(out.join("ca.pem")).unwrap(), before);
    }

    #[test]
    fn add_issues_only_what_is_missing_with_the_same_ca() {
        let t = Topology::parse(TOPO, Path::new(".")).unwrap().topology;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("certs");
        init(&t, &out, false, SystemTime::now()).unwrap();
        let ca = fs::read(out.join("ca.pem")).unwrap();
        let edge1 = fs::read(out.join("nodes/edge-1.pem")).unwrap();
        let grown = TOPO.replace(
            "selectors:",
            "  - { id: edge-2, region: eu, public_ip: 127.0.0.2, http: 127.0.0.1:8082, octo: 127.0.0.1:4432, capacity: 10 }\nselectors:",
        );
        let t2 = Topology::parse(&grown, Path::new(".")).unwrap().topology;
        let w = add(&t2, &out, SystemTime::now()).unwrap();
        assert_eq!(w.files.len(), 2, "{:?}", w.files);
        assert_eq!(fs::read(out.join("ca.pem")).unwrap(), ca);
        assert_eq!(fs::read(out.join("nodes/edge-1.pem")).unwrap(), edge1);
        // The new certificate chains to the existing CA and names its node.
        let pem = fs::read_to_string(out.join("nodes/edge-2.pem")).unwrap();
        let der = pem_der(&pem);
        assert_eq!(node_identity(&der), Ok((Role::Edge, "edge-2".into())));
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let ca_der = pem_der(&String::from_utf8(ca).unwrap());
        let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
        assert!(cert.verify_signature(Some(ca_cert.public_key())).is_ok());
        assert!(add(&t2, &out, SystemTime::now()).unwrap().files.is_empty());
    }

    fn pem_der(pem: &str) -> Vec<u8> {
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap()
    }

    fn cert_with_uris(uris: &[&str]) -> Vec<u8> {
        let mut params = CertificateParams::new(vec!["n".to_string()]).unwrap();
        for u in uris {
            params
                .subject_alt_names
                .push(SanType::URI(u.to_string().try_into().unwrap()));
        }
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn node_identity_reads_what_role_uri_writes() {
        let der = cert_with_uris(&[&Role::Edge.uri("edge-1"), "https://example.invalid/x"]);
        assert_eq!(node_identity(&der), Ok((Role::Edge, "edge-1".into())));
        let der = cert_with_uris(&[&Role::Selector.uri("sel-1")]);
        assert_eq!(node_identity(&der), Ok((Role::Selector, "sel-1".into())));
        assert_eq!(
            node_identity(&cert_with_uris(&[])),
            Err(IdentityError::NoGeomeshUri)
        );
        assert_eq!(
            node_identity(&cert_with_uris(&[
                "urn:geomesh:edge:a",
                "urn:geomesh:edge:b"
            ])),
            Err(IdentityError::AmbiguousUri)
        );
        assert!(matches!(
            node_identity(&cert_with_uris(&["urn:geomesh:ghost:x"])),
            Err(IdentityError::UnknownRole(_))
        ));
        assert!(matches!(
            node_identity(b"not a certificate"),
            Err(IdentityError::Parse(_))
        ));
    }
}
