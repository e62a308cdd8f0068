//! Certificates for a keyguard reached over TCP: a private CA, the keyguard's server
//! certificate and the server's client certificate, and the rustls settings that require them
//! on both sides (mutual TLS: a client without a certificate from this CA is refused during the
//! handshake).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::KeyguardError;

/// The three files one side of a mutual-TLS connection needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificate that both sides' certificates must chain to.
    pub ca: PathBuf,
    /// This side's certificate.
    pub cert: PathBuf,
    /// This side's private key.
    pub key: PathBuf,
}

/// What [`generate`] wrote.
#[derive(Debug, Clone)]
pub struct GeneratedCerts {
    /// For `hearth keyguard --listen tcp:…`.
    pub keyguard: TlsFiles,
    /// For `hearth serve` (`keyguard.cert`, `keyguard.key`, `keyguard.ca`).
    pub client: TlsFiles,
    /// The CA's private key: needed only to make more certificates; keep it offline.
    pub ca_key: PathBuf,
}

/// Makes a CA, a keyguard certificate valid for `names` (DNS names or IP addresses) and a client
/// certificate, as PEM files in `dir` (private keys with mode 0600).
pub fn generate(dir: &Path, names: &[String]) -> Result<GeneratedCerts, KeyguardError> {
    let failed = |what: &str, e: rcgen::Error| KeyguardError::Setup(format!("cannot make the {what}: {e}"));
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, &e))?;

    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(|e| failed("CA", e))?;
    ca_params.distinguished_name.push(DnType::CommonName, "hearth keyguard CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().map_err(|e| failed("CA key", e))?;
    let ca_key_pem = ca_key.serialize_pem();
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(|e| failed("CA", e))?;

    let leaf = |common_name: &str, names: Vec<String>, usage: ExtendedKeyUsagePurpose| {
        let mut params = CertificateParams::new(names).map_err(|e| failed(common_name, e))?;
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().map_err(|e| failed(common_name, e))?;
        let cert = params.signed_by(&key, &ca).map_err(|e| failed(common_name, e))?;
        Ok::<_, KeyguardError>((cert.pem(), key.serialize_pem()))
    };
    let (server_cert, server_key) = leaf("hearth keyguard", names.to_vec(), ExtendedKeyUsagePurpose::ServerAuth)?;
    let (client_cert, client_key) = leaf("hearth server", Vec::new(), ExtendedKeyUsagePurpose::ClientAuth)?;

    let path = |name: &str| dir.join(name);
    write(&path("ca.crt"), &ca.pem(), false)?;
    write(&path("ca.key"), &ca_key_pem, true)?;
    write(&path("keyguard.crt"), &server_cert, false)?;
    write(&path("keyguard.key"), &server_key, true)?;
    write(&path("client.crt"), &client_cert, false)?;
    write(&path("client.key"), &client_key, true)?;
    Ok(GeneratedCerts {
        keyguard: TlsFiles { ca: path("ca.crt"), cert: path("keyguard.crt"), key: path("keyguard.key") },
        client: TlsFiles { ca: path("ca.crt"), cert: path("client.crt"), key: path("client.key") },
        ca_key: path("ca.key"),
    })
}

/// The keyguard's side: its certificate, and client certificates required from the CA.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, KeyguardError> {
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots(&files.ca)?))
        .build()
        .map_err(|e| KeyguardError::Setup(format!("client verification: {e}")))?;
    let config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(&files.cert)?, key(&files.key)?)
        .map_err(|e| KeyguardError::Setup(format!("{}: {e}", files.cert.display())))?;
    Ok(Arc::new(config))
}

/// The server's side: the keyguard's certificate must chain to the CA; ours goes along.
pub fn client_config(files: &TlsFiles) -> Result<Arc<rustls::ClientConfig>, KeyguardError> {
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots(&files.ca)?)
        .with_client_auth_cert(certs(&files.cert)?, key(&files.key)?)
        .map_err(|e| KeyguardError::Setup(format!("{}: {e}", files.cert.display())))?;
    Ok(Arc::new(config))
}

fn roots(ca: &Path) -> Result<rustls::RootCertStore, KeyguardError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs(ca)? {
        roots.add(cert).map_err(|e| KeyguardError::Setup(format!("{}: {e}", ca.display())))?;
    }
    Ok(roots)
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, KeyguardError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| KeyguardError::Setup(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(KeyguardError::Setup(format!("{}: no certificate", path.display())));
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, KeyguardError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| KeyguardError::Setup(format!("{}: {e}", path.display())))
}

fn write(path: &Path, contents: &str, private: bool) -> Result<(), KeyguardError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    options.open(path).and_then(|mut file| file.write_all(contents.as_bytes())).map_err(|e| io_error(path, &e))
}

fn io_error(path: &Path, error: &std::io::Error) -> KeyguardError {
    KeyguardError::Setup(format!("{}: {error}", path.display()))
}
