//! TLS interception: a local certificate authority cordon creates on first start, leaf
//! certificates issued per destination and cached, and the client side that verifies
//! upstreams against the system's roots (plus a configured bundle). A bad upstream certificate
//! is an error, never accepted quietly.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// Leaves kept at once; the cache starts over when full.
const LEAF_CACHE: usize = 4096;

/// Why TLS interception cannot be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// Reading or writing the CA files.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The CA files exist but are not a usable CA.
    #[error("the CA in {0} is unusable: {1}")]
    BadCa(PathBuf, String),
    /// Issuing a certificate or building a TLS configuration failed.
    #[error("TLS setup: {0}")]
    Setup(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_owned(),
        source,
    }
}

/// cordon's local certificate authority.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    cert_path: PathBuf,
    leaves: Mutex<HashMap<String, Arc<ServerConfig>>>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("cert_path", &self.cert_path)
            .finish_non_exhaustive()
    }
}

impl Authority {
    /// Loads the CA from `dir` (`ca.pem`, `ca.key`), creating it on first use: the key file
    /// 0600, the directory 0700.
    pub fn load_or_create(dir: &Path) -> Result<Authority, TlsError> {
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca.key");
        if !cert_path.exists() || !key_path.exists() {
            create(dir, &cert_path, &key_path)?;
        }
        let mode = fs::metadata(&key_path)
            .map_err(io_err(&key_path))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(TlsError::BadCa(
                key_path,
                format!(
                    "the key file is readable by others (mode {:o}); chmod 600 it",
                    mode & 0o777
                ),
            ));
        }
        let key_pem = fs::read_to_string(&key_path).map_err(io_err(&key_path))?;
        let cert_pem = fs::read_to_string(&cert_path).map_err(io_err(&cert_path))?;
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| TlsError::BadCa(key_path.clone(), e.to_string()))?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)
            .map_err(|e| TlsError::BadCa(cert_path.clone(), e.to_string()))?;
        Ok(Authority {
            issuer,
            cert_path,
            leaves: Mutex::new(HashMap::new()),
        })
    }

    /// The CA certificate, for the sandbox's trust variables.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// A server configuration presenting a leaf for `host` (a name or an IP literal).
    pub fn server_config(&self, host: &str) -> Result<Arc<ServerConfig>, TlsError> {
        let mut cache = self
            .leaves
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = cache.get(host) {
            return Ok(Arc::clone(c));
        }
        let config = Arc::new(self.issue(host)?);
        if cache.len() >= LEAF_CACHE {
            cache.clear();
        }
        cache.insert(host.to_owned(), Arc::clone(&config));
        Ok(config)
    }

    fn issue(&self, host: &str) -> Result<ServerConfig, TlsError> {
        let setup = |e: rcgen::Error| TlsError::Setup(e.to_string());
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![match host.parse::<std::net::IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(host.try_into().map_err(setup)?),
        }];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host);
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = time_offset(-86_400);
        params.not_after = time_offset(30 * 86_400);
        let key = KeyPair::generate().map_err(setup)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(setup)?;
        let chain = vec![cert.der().clone()];
        let key = PrivateKeyDer::try_from(key.serialize_der())
            .map_err(|e| TlsError::Setup(e.to_string()))?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| TlsError::Setup(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

fn time_offset(secs: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::seconds(secs)
}

/// The crypto provider: ring, so the build needs no cmake or assembler beyond a C compiler.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn create(dir: &Path, cert_path: &Path, key_path: &Path) -> Result<(), TlsError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))?;
    let setup = |e: rcgen::Error| TlsError::Setup(e.to_string());
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "cordon local interception CA");
    dn.push(DnType::OrganizationName, "cordon");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = time_offset(-86_400);
    params.not_after = time_offset(5 * 365 * 86_400);
    let key = KeyPair::generate().map_err(setup)?;
    let cert = params.self_signed(&key).map_err(setup)?;
    // The key first, created 0600 from the start (never briefly readable).
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(key_path)
        .map_err(io_err(key_path))?;
    io::Write::write_all(&mut f, key.serialize_pem().as_bytes()).map_err(io_err(key_path))?;
    f.sync_all().map_err(io_err(key_path))?;
    fs::write(cert_path, cert.pem()).map_err(io_err(cert_path))?;
    fs::set_permissions(cert_path, fs::Permissions::from_mode(0o644)).map_err(io_err(cert_path))?;
    tracing::info!(ca = %cert_path.display(), "created cordon's interception CA");
    Ok(())
}

/// The client side: the system's roots (unless `system_roots` is false) plus every certificate
/// in `extra` PEM files. No other certificate is accepted.
pub fn client_config(system_roots: bool, extra: &[PathBuf]) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    if system_roots {
        let found = rustls_native_certs::load_native_certs();
        for cert in found.certs {
            let _ = roots.add(cert);
        }
    }
    for path in extra {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| TlsError::BadCa(path.clone(), e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::BadCa(path.clone(), e.to_string()))?;
        if certs.is_empty() {
            return Err(TlsError::BadCa(
                path.clone(),
                "no certificate in the file".into(),
            ));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| TlsError::BadCa(path.clone(), e.to_string()))?;
        }
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
