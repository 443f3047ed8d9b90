//! TLS for every listener that speaks it (SPEC §3): one certificate setting, re-read on SIGHUP.
//!
//! [`TlsCertificate`] holds the chain and key read from `[tls] cert_file` and `key_file`
//! ([`TlsConfig`]) and is the certificate resolver of every TLS listener's `ServerConfig`
//! ([`TlsCertificate::server_config`], one per ALPN protocol: `http/1.1` for the device API and
//! the portal; DNS over QUIC and the QUIC device channel build theirs from it the same way).
//! Sharing the resolver rather than the files is what makes the setting one setting:
//! [`TlsCertificate::reload`] swaps the pair for every listener at once.
//!
//! - A reload changes what the handshakes that follow present; connections already
//!   established keep their keys and are not touched.
//! - A pair that does not load (unreadable, not PEM, a key that is not the certificate's) is
//!   an error, and the old pair stays: a half-copied file on SIGHUP must not take HTTPS down.
//! - The `ServerConfig`s are built once, so their session-ticket keys survive a reload and
//!   devices keep resuming their sessions (ingest/README.md has what each kind of handshake
//!   costs). Tickets are stateless (ring's ticketer, keys rotated every 6 hours), so a fleet's
//!   sessions take no server memory.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client may take to complete its TLS handshake after connecting.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the certificate and its key are (the `[tls]` table; `--tls-cert`, `--tls-key`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct TlsConfig {
    /// PEM: the server's certificate first, then the intermediates that chain it to a root.
    pub cert_file: PathBuf,
    /// PEM: the certificate's private key (PKCS#8, PKCS#1 or SEC1; RSA, ECDSA or Ed25519).
    pub key_file: PathBuf,
}

/// A certificate and key that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or is not PEM.
    #[error("{path}: {source}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("{0}: no CERTIFICATE in the file")]
    NoCertificate(PathBuf),
    /// The key is of a kind the crypto provider cannot sign with.
    #[error("{path}: {source}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// Why it was refused.
        source: rustls::Error,
    },
    /// The key is not the first certificate's, or the certificate does not parse.
    #[error("{key} does not match {cert}: {source}")]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls found.
        source: rustls::Error,
    },
    /// rustls refused to build a server configuration.
    #[error("building the TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The certificate every TLS listener presents: the certificate resolver of each listener's
/// [`ServerConfig`], so that [`TlsCertificate::reload`] changes it for all of them at once.
/// A reload that fails leaves the pair in use; open connections never see a reload.
#[derive(Debug)]
pub struct TlsCertificate {
    config: TlsConfig,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl TlsCertificate {
    /// Reads the certificate chain and key that `config` names.
    pub fn load(config: TlsConfig) -> Result<Arc<TlsCertificate>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let current = read_pair(&config, &provider)?;
        Ok(Arc::new(TlsCertificate {
            config,
            provider,
            current: RwLock::new(Arc::new(current)),
        }))
    }

    /// Reads the files again; new handshakes present what they hold from now on. On error the
    /// certificate in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let pair = read_pair(&self.config, &self.provider)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(pair);
        Ok(())
    }

    /// The files this certificate is read from.
    pub fn config(&self) -> &TlsConfig {
        &self.config
    }

    /// The chain and key new handshakes present.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A server configuration that presents this certificate (whatever it is at each
    /// handshake) and offers `alpn`, with TLS 1.2 and 1.3 and stateless session tickets.
    pub fn server_config(self: &Arc<Self>, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.ticketer = rustls::crypto::ring::Ticketer::new()?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// An acceptor for HTTP/1.1 listeners (ALPN `http/1.1`).
    pub fn http_acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, TlsError> {
        Ok(TlsAcceptor::from(self.server_config(&[b"http/1.1"])?))
    }
}

impl ResolvesServerCert for TlsCertificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The chain and key `config` names, checked to belong together.
fn read_pair(config: &TlsConfig, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let pem_error = |path: &Path| {
        let path = path.to_owned();
        move |source| TlsError::Pem { path, source }
    };
    let chain = CertificateDer::pem_file_iter(&config.cert_file)
        .map_err(pem_error(&config.cert_file))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error(&config.cert_file))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(config.cert_file.clone()));
    }
    let key =
        PrivateKeyDer::from_pem_file(&config.key_file).map_err(pem_error(&config.key_file))?;
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|source| TlsError::Key {
            path: config.key_file.clone(),
            source,
        })?;
    let pair = CertifiedKey::new(chain, key);
    pair.keys_match().map_err(|source| TlsError::Mismatch {
        cert: config.cert_file.clone(),
        key: config.key_file.clone(),
        source,
    })?;
    Ok(pair)
}

/// The server side of a TLS handshake on `stream`, within [`HANDSHAKE_TIMEOUT`].
pub async fn accept_tls<S>(acceptor: &TlsAcceptor, stream: S) -> io::Result<TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(accepted) => accepted,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "TLS handshake timed out",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_files_are_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = TlsConfig {
            cert_file: dir.path().join("cert.pem"),
            key_file: dir.path().join("key.pem"),
        };
        assert!(matches!(
            TlsCertificate::load(config.clone()),
            Err(TlsError::Pem { .. })
        ));
        std::fs::write(&config.cert_file, "not pem\n").expect("written");
        std::fs::write(&config.key_file, "not pem\n").expect("written");
        assert!(matches!(
            TlsCertificate::load(config),
            Err(TlsError::NoCertificate(_))
        ));
    }
}
