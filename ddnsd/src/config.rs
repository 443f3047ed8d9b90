//! The configuration: defaults, then the config file, then `DDNSD_*` environment variables
//! (nested keys joined with `__`, e.g. `DDNSD_INGEST__CIPHER_FORM=true`), then flags.

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ddns_dns::DoqConfig;
use ddns_ingest::{IngestConfig, QuicConfig, TlsConfig, VendorConfig, VendorKey};
use ddns_log::KafkaConfig;
use ddns_portal::PortalConfig;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Everything `ddnsd serve` needs.
#[derive(Clone, Debug, Deserialize)]
pub struct Config {
    /// Where the log, the snapshot and generated keys live.
    pub data_dir: PathBuf,
    /// What this node serves.
    pub role: Role,
    /// Which log holds the events.
    pub log: LogKind,
    /// The Kafka topic, when `log = "kafka"`.
    #[serde(default)]
    pub kafka: KafkaConfig,
    /// The device API's address.
    pub http_listen: SocketAddr,
    /// The device API over HTTPS, beside `http_listen`: on when `[tls]` is set (default
    /// 127.0.0.1:8443 then), refused without it.
    #[serde(default)]
    pub https_listen: Option<SocketAddr>,
    /// The certificate every TLS listener presents (`[tls] cert_file`, `key_file`); with it the
    /// portal speaks HTTPS only, on `portal_listen`. Unset (the default): no TLS anywhere.
    #[serde(default, deserialize_with = "tls_files")]
    pub tls: Option<TlsConfig>,
    /// The DNS server's address (UDP and TCP).
    pub dns_listen: SocketAddr,
    /// DNS over QUIC (RFC 9250) on this UDP address, if set; needs `[tls]` (UDP 853 in
    /// production).
    #[serde(default)]
    pub doq_listen: Option<SocketAddr>,
    /// DNS over QUIC's limits (`[doq]`: idle timeout, connections, streams per connection).
    #[serde(default)]
    pub doq: DoqConfig,
    /// The QUIC device channel (ALPN `ddns/1`) on this UDP address, if set; needs `[tls]`.
    #[serde(default)]
    pub quic_listen: Option<SocketAddr>,
    /// The QUIC device channel's limits (`[quic]`: idle timeout, connections, handshakes/s).
    #[serde(default)]
    pub quic: QuicConfig,
    /// Prometheus metrics (`/metrics`) on this address, if set.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// The web portal's address.
    pub portal_listen: SocketAddr,
    /// The web portal (`[portal]`: brand, zones, signup, …; its `listen` is `portal_listen`).
    #[serde(default)]
    pub portal: PortalConfig,
    /// TTL of host records, in seconds.
    pub ttl_secs: u32,
    /// Name servers published at every zone's apex (default `ns1.<zone>`).
    #[serde(default)]
    pub name_servers: Vec<String>,
    /// The HTTP front door.
    #[serde(default)]
    pub ingest: IngestConfig,
    /// Device vendors. A vendor without keys gets one generated in the data dir on first start.
    pub vendors: Vec<VendorFile>,
}

/// What a node serves. Every role runs a projector: DNS answers from it, and ingest learns from
/// it the outcome of each event it appended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The device API and DNS.
    #[default]
    All,
    /// The device API only (no DNS listener).
    Ingest,
    /// DNS only (no device API).
    Dns,
}

impl Role {
    pub fn serves_http(self) -> bool {
        matches!(self, Role::All | Role::Ingest)
    }

    pub fn serves_dns(self) -> bool {
        matches!(self, Role::All | Role::Dns)
    }
}

/// Where events are kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogKind {
    /// The embedded log in `<data_dir>/log`: one node.
    #[default]
    Local,
    /// A Kafka topic (`[kafka]`): many ingest and DNS nodes share it.
    Kafka,
}

/// A vendor as written in the config file: keys are optional there.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct VendorFile {
    /// See [`VendorConfig::name`].
    pub name: String,
    /// See [`VendorConfig::zone`].
    pub zone: String,
    /// See [`VendorConfig::keys`]; empty → the key file in `<data_dir>/keys/`.
    #[serde(default)]
    pub keys: Vec<KeyFile>,
    /// See [`VendorConfig::max_age_secs`].
    #[serde(default)]
    pub max_age_secs: Option<u64>,
    /// See [`VendorConfig::fields`].
    #[serde(default)]
    pub fields: Vec<String>,
}

/// A key as written in the config file.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct KeyFile {
    /// The key id.
    pub id: u16,
    /// 64 hex digits.
    pub secret_hex: String,
}

/// `[tls]` as written: both files or neither (flags may give one and the file the other).
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct TlsFiles {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
}

fn tls_files<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<TlsConfig>, D::Error> {
    match TlsFiles::deserialize(d)? {
        TlsFiles {
            cert_file: Some(cert_file),
            key_file: Some(key_file),
        } => Ok(Some(TlsConfig {
            cert_file,
            key_file,
        })),
        TlsFiles {
            cert_file: None,
            key_file: None,
        } => Ok(None),
        _ => Err(serde::de::Error::custom(
            "set both tls.cert_file and tls.key_file (--tls-cert, --tls-key), or neither",
        )),
    }
}

/// Where HTTPS listens when `[tls]` is set and `https_listen` is not.
const HTTPS_LISTEN_DEFAULT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8443);

/// The defaults: everything runs on one machine with no other services.
#[derive(Serialize)]
struct Defaults {
    data_dir: &'static str,
    role: Role,
    log: LogKind,
    http_listen: &'static str,
    dns_listen: &'static str,
    portal_listen: &'static str,
    ttl_secs: u32,
    vendors: Vec<VendorFile>,
}

impl Default for Defaults {
    fn default() -> Defaults {
        Defaults {
            data_dir: "./data",
            role: Role::All,
            log: LogKind::Local,
            http_listen: "127.0.0.1:8080",
            dns_listen: "127.0.0.1:5353",
            portal_listen: "127.0.0.1:8081",
            ttl_secs: 60,
            vendors: vec![VendorFile {
                name: "demo".into(),
                zone: "dyn.example".into(),
                keys: vec![],
                max_age_secs: None,
                fields: vec!["port".into(), "fw".into(), "hw".into()],
            }],
        }
    }
}

/// Flags that override the file and the environment.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub https_listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doq_listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quic_listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub portal_listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "TlsFiles::is_empty")]
    pub tls: TlsFiles,
}

impl TlsFiles {
    fn is_empty(&self) -> bool {
        self.cert_file.is_none() && self.key_file.is_none()
    }
}

impl Config {
    /// Layers defaults, `file`, the environment and `overrides`.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Defaults::default()));
        if let Some(file) = file {
            if !file.exists() {
                bail!("config file {} does not exist", file.display());
            }
            figment = figment.merge(Toml::file(file));
        }
        let config: Config = figment
            .merge(Env::prefixed("DDNSD_").split("__"))
            .merge(Serialized::defaults(overrides))
            .extract()
            .context("reading the configuration")?;
        if config.vendors.is_empty() {
            bail!("no vendors configured");
        }
        let mut config = config;
        config.portal.listen = config.portal_listen;
        match (&config.tls, config.https_listen) {
            (Some(_), None) => config.https_listen = Some(HTTPS_LISTEN_DEFAULT),
            (None, Some(addr)) => bail!("https_listen = {addr} needs [tls] cert_file and key_file"),
            _ => {}
        }
        // DNS over QUIC is TLS: no certificate, no listener (and no silent plain fallback).
        if let (None, Some(addr)) = (&config.tls, config.doq_listen) {
            bail!(
                "doq_listen = {addr} needs [tls] cert_file and key_file (--tls-cert, --tls-key): \
                 DNS over QUIC presents the certificate every TLS listener shares"
            );
        }
        // The QUIC device channel is TLS too.
        if let (None, Some(addr)) = (&config.tls, config.quic_listen) {
            bail!(
                "quic_listen = {addr} needs [tls] cert_file and key_file (--tls-cert, --tls-key): \
                 the QUIC device channel presents the certificate every TLS listener shares"
            );
        }
        // The portal's listener speaks TLS when there is a certificate: its cookie and its
        // origin check must then be the HTTPS ones.
        if config.tls.is_some() {
            config.portal.tls = true;
        }
        Ok(config)
    }

    /// The zones the portal offers: `[portal] zones`, or else the first vendor's zone, so one
    /// namespace is shared out of the box.
    pub fn portal_zones(&self) -> anyhow::Result<Vec<ddns_core::Fqdn>> {
        let zones = match self.portal.zones.is_empty() {
            true => vec![self.vendors[0].zone.clone()],
            false => self.portal.zones.clone(),
        };
        zones
            .iter()
            .map(|z| ddns_core::Fqdn::parse(z).with_context(|| format!("portal zone {z:?}")))
            .collect()
    }

    /// The portal's settings, with its zones filled in.
    pub fn portal_config(&self) -> anyhow::Result<PortalConfig> {
        let mut portal = self.portal.clone();
        portal.zones = self
            .portal_zones()?
            .iter()
            .map(|z| z.as_str().to_owned())
            .collect();
        Ok(portal)
    }

    /// The admin socket of a running server (`ddnsd user …`, `ddnsd host …`).
    pub fn admin_socket(&self) -> PathBuf {
        self.data_dir.join("admin.sock")
    }

    /// The vendors with their keys, generating and storing a key for any vendor without one.
    pub fn vendors_with_keys(&self) -> anyhow::Result<Vec<VendorConfig>> {
        let mut taken: Vec<u16> = self
            .vendors
            .iter()
            .flat_map(|v| v.keys.iter().map(|k| k.id))
            .collect();
        self.vendors
            .iter()
            .map(|vendor| {
                let keys = if vendor.keys.is_empty() {
                    vec![self.stored_key(&vendor.name, &mut taken)?]
                } else {
                    vendor
                        .keys
                        .iter()
                        .map(|k| VendorKey {
                            id: k.id,
                            secret_hex: k.secret_hex.clone(),
                        })
                        .collect()
                };
                Ok(VendorConfig {
                    name: vendor.name.clone(),
                    zone: vendor.zone.clone(),
                    keys,
                    max_age_secs: vendor.max_age_secs,
                    fields: vendor.fields.clone(),
                })
            })
            .collect()
    }

    /// The QUIC device channel's stateless-reset key: `<data_dir>/keys/quic-reset.key` (64 hex
    /// digits), created on the first start with the channel on. Kept across restarts, so that
    /// the reset a device gets for its old connection after a restart is one it recognizes.
    pub fn quic_reset_key(&self) -> anyhow::Result<[u8; 32]> {
        let dir = self.data_dir.join("keys");
        let path = dir.join("quic-reset.key");
        let parse = |text: &str| -> anyhow::Result<[u8; 32]> {
            let text = text.trim();
            let mut key = [0u8; 32];
            anyhow::ensure!(text.len() == 64, "expected 64 hex digits");
            for (i, byte) in key.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)?;
            }
            Ok(key)
        };
        if let Ok(text) = fs::read_to_string(&path) {
            return parse(&text).with_context(|| format!("{}", path.display()));
        }
        let key: [u8; 32] = rand::random();
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        write_private(&path, format!("{hex}\n").as_bytes())?;
        Ok(key)
    }

    /// `<data_dir>/keys/<vendor>.key` (`ID HEX`), created with a fresh random key if absent.
    fn stored_key(&self, vendor: &str, taken: &mut Vec<u16>) -> anyhow::Result<VendorKey> {
        if vendor.is_empty()
            || !vendor
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!("vendor name {vendor:?}: use letters, digits, - and _");
        }
        let dir = self.data_dir.join("keys");
        let path = dir.join(format!("{vendor}.key"));
        if let Ok(text) = fs::read_to_string(&path) {
            let (id, secret_hex) = text
                .trim()
                .split_once(' ')
                .with_context(|| format!("{}: expected `ID HEX`", path.display()))?;
            let id = id
                .parse()
                .with_context(|| format!("{}: bad key id", path.display()))?;
            taken.push(id);
            return Ok(VendorKey {
                id,
                secret_hex: secret_hex.into(),
            });
        }
        let id = (1..=u16::MAX)
            .find(|id| !taken.contains(id))
            .context("no free key id")?;
        taken.push(id);
        let secret: [u8; 32] = rand::random();
        let secret_hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        write_private(&path, format!("{id} {secret_hex}\n").as_bytes())?;
        tracing::info!(vendor, key_id = id, path = %path.display(), "created a vendor key");
        Ok(VendorKey { id, secret_hex })
    }
}

/// Writes a file only its owner can read, failing if it exists (two processes racing to create
/// a key must not end up with different keys).
fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents)?;
    file.sync_all()?;
    Ok(())
}
