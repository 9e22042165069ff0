//! TLS for the HTTP clients Steward opens (https:// upstreams, an https:// OTLP endpoint,
//! `steward check` against an https:// server): rustls with the `ring` crypto provider,
//! verifying certificates against the system's trust store (rustls-platform-verifier: the
//! system's CA bundle, or `SSL_CERT_FILE`) plus, per upstream, the roots of its `ca_file`.
//! Verification cannot be turned off. An upstream may also be shown a client certificate
//! (`client_cert` and `client_key`: mutual TLS).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Makes `ring` the process's rustls crypto provider. reqwest builds every client's TLS from
/// the process's provider and panics when there is none (Steward builds only `ring`, not
/// reqwest's default aws-lc-rs), so this runs before any client is built: first thing at start,
/// and again in each place of the library that builds one. Later calls do nothing.
pub fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if rustls::crypto::CryptoProvider::get_default().is_some() {
            return;
        }
        match rustls::crypto::ring::default_provider().install_default() {
            Ok(()) => {}
            // Another provider was installed in between (by a program embedding Steward's
            // library): reqwest uses that one, which serves as well.
            Err(_) => tracing::debug!("a rustls crypto provider was already installed"),
        }
    });
}

/// A reqwest client builder whose TLS verifies against the system's roots with a verifier built
/// once per process: reqwest would build one per client, reading and parsing the system's CA
/// bundle each time (milliseconds, which many short-lived clients, as tests make, add up).
pub fn client_builder() -> reqwest::ClientBuilder {
    install();
    static SYSTEM: OnceLock<Option<rustls::ClientConfig>> = OnceLock::new();
    let builder = reqwest::Client::builder();
    match SYSTEM.get_or_init(system_roots) {
        Some(config) => builder.tls_backend_preconfigured(config.clone()),
        // reqwest builds its own, and says what failed when the client is built.
        None => builder,
    }
}

fn system_roots() -> Option<rustls::ClientConfig> {
    let provider = rustls::crypto::CryptoProvider::get_default()?.clone();
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone()).ok()?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Some(config)
}

/// Certificate authorities an upstream's certificate may chain to besides the system's: the
/// certificates of a PEM file (`ca_file`), read once at start.
#[derive(Clone, PartialEq, Eq)]
pub struct ExtraRoots {
    path: PathBuf,
    pem: Vec<u8>,
}

impl ExtraRoots {
    /// Reads `path`; an error names the file and says what is wrong with it.
    pub fn read(path: &Path) -> Result<Self, String> {
        let shown = path.display();
        let pem = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        let roots = ExtraRoots {
            path: path.to_path_buf(),
            pem,
        };
        roots.certificates()?;
        Ok(roots)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its certificates, for `reqwest::ClientBuilder::tls_certs_merge`.
    pub fn certificates(&self) -> Result<Vec<reqwest::Certificate>, String> {
        let shown = self.path.display();
        let certificates = reqwest::Certificate::from_pem_bundle(&self.pem)
            .map_err(|e| format!("{shown} is not a PEM file of certificates: {e}"))?;
        if certificates.is_empty() {
            return Err(format!(
                "{shown} holds no certificate (no -----BEGIN CERTIFICATE----- block)"
            ));
        }
        Ok(certificates)
    }
}

/// The certificate and private key Steward shows an upstream that asks for one (mutual TLS):
/// the PEM files `client_cert` and `client_key`, read once at start.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    cert: PathBuf,
    key: PathBuf,
    /// The certificates, then the key: what `reqwest::Identity::from_pem` reads.
    pem: Vec<u8>,
}

impl ClientIdentity {
    /// Reads `cert` and `key`; an error names the file (`client_cert` or `client_key`) and
    /// says what is wrong with it.
    pub fn read(cert: &Path, key: &Path) -> Result<Self, String> {
        let read = |what: &str, path: &Path| {
            std::fs::read(path).map_err(|e| format!("{what} cannot read {}: {e}", path.display()))
        };
        let mut pem = read("client_cert", cert)?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem).unwrap_or_default();
        if certificates.is_empty() {
            return Err(format!(
                "client_cert {} holds no certificate (no -----BEGIN CERTIFICATE----- block)",
                cert.display()
            ));
        }
        let key_pem = read("client_key", key)?;
        use rustls::pki_types::{PrivateKeyDer, pem::PemObject};
        if PrivateKeyDer::from_pem_slice(&key_pem).is_err() {
            return Err(format!(
                "client_key {} holds no private key (no -----BEGIN PRIVATE KEY----- block, or an EC or RSA one)",
                key.display()
            ));
        }
        pem.push(b'\n');
        pem.extend(key_pem);
        let identity = ClientIdentity {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            pem,
        };
        identity.identity()?;
        Ok(identity)
    }

    pub fn cert_path(&self) -> &Path {
        &self.cert
    }

    /// For `reqwest::ClientBuilder::identity`.
    pub fn identity(&self) -> Result<reqwest::Identity, String> {
        reqwest::Identity::from_pem(&self.pem).map_err(|e| {
            format!(
                "client_cert {} and client_key {} do not make a client identity: {e}",
                self.cert.display(),
                self.key.display()
            )
        })
    }
}

/// The paths only: the key is a secret.
impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// The path only: the certificates are long.
impl fmt::Debug for ExtraRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExtraRoots")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Why a TLS handshake failed, in words an operator can act on, when `error` or one of its
/// causes is a rustls error (`None` for any other failure).
pub fn handshake_failure(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(format!("TLS handshake failed: {} ({tls})", explain(tls)));
        }
        next = wrapped(error).or_else(|| error.source());
    }
    None
}

/// The error an `io::Error` carries: its `source` skips it, and tokio-rustls reports a rustls
/// error inside one (which hyper-rustls wraps in another).
fn wrapped<'e>(
    error: &'e (dyn std::error::Error + 'static),
) -> Option<&'e (dyn std::error::Error + 'static)> {
    let inner = error.downcast_ref::<std::io::Error>()?.get_ref()?;
    Some(inner)
}

fn explain(error: &rustls::Error) -> &'static str {
    use rustls::CertificateError as C;
    use rustls::Error as E;
    match error {
        E::InvalidCertificate(C::UnknownIssuer) => {
            "its certificate is not signed by a certificate authority Steward trusts (for a private CA, give the CA's certificate as ca_file in its [[upstream]] table)"
        }
        E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            "its certificate is not valid for the host name in its URL"
        }
        E::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "its certificate has expired"
        }
        E::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => {
            "its certificate is not valid yet (check both machines' clocks)"
        }
        E::InvalidCertificate(C::Revoked) => "its certificate has been revoked",
        E::InvalidCertificate(_) => "its certificate was refused",
        E::AlertReceived(rustls::AlertDescription::CertificateRequired) => {
            "it requires a client certificate (give client_cert and client_key in its [[upstream]] table)"
        }
        E::AlertReceived(
            rustls::AlertDescription::BadCertificate
            | rustls::AlertDescription::UnknownCA
            | rustls::AlertDescription::CertificateUnknown,
        ) => "it refused the handshake (or the client certificate Steward showed it)",
        E::AlertReceived(_) => "it refused the handshake",
        E::InvalidMessage(_) => "it did not answer in TLS (is it an http:// server?)",
        _ => "the handshake did not complete",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upstream_asking_for_a_client_certificate_says_which_keys_give_one() {
        let alert = rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired);
        assert!(explain(&alert).contains("client_cert and client_key"));
    }

    #[test]
    fn a_client_key_without_a_key_is_refused_naming_it() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let cert = dir.path().join("cert.pem");
        // Not a valid certificate, but a certificate block: the key is checked next.
        std::fs::write(
            &cert,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .expect("written");
        let error = ClientIdentity::read(&cert, &cert).unwrap_err();
        assert!(
            error.starts_with("client_key") && error.contains("holds no private key"),
            "{error}"
        );
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_naming_it() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let missing = dir.path().join("missing.pem");
        let error = ExtraRoots::read(&missing).unwrap_err();
        assert!(error.contains("missing.pem"), "{error}");
        let key = dir.path().join("key.pem");
        std::fs::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .expect("written");
        let error = ExtraRoots::read(&key).unwrap_err();
        assert!(
            error.contains("key.pem") && error.contains("no certificate"),
            "{error}"
        );
    }

    #[test]
    fn a_rustls_error_inside_an_io_error_is_explained() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        // As hyper-rustls reports it: tokio-rustls's io::Error inside another.
        let io = std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, tls));
        let explained = handshake_failure(&io).expect("a TLS failure");
        assert!(
            explained.contains("not signed by a certificate authority Steward trusts")
                && explained.contains("ca_file"),
            "{explained}"
        );
        let other = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(handshake_failure(&other), None);
    }
}
