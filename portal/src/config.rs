//! [`PortalConfig`]: what an operator sets, with the defaults a fresh install runs with.

use std::net::SocketAddr;

use ddns_core::{Fqdn, NameError};
use serde::Deserialize;

use crate::probe::ProbeConfig;

/// The portal's settings (the `[portal]` table of the config file).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct PortalConfig {
    /// Where the portal listens (`--portal-listen`).
    pub listen: SocketAddr,
    /// The service's name on every page: `Welcome to <brand> DDNS Service`.
    pub brand: String,
    /// The zones offered to portal users; the first is the default. Empty here means "the
    /// binary fills in the demo vendor's zone"; [`crate::Portal::new`] refuses an empty list.
    pub zones: Vec<String>,
    /// Who may create an account.
    pub signup: SignupMode,
    /// Codes accepted in the sign-up form's `invite` field when `signup = "invite"`.
    pub invite_codes: Vec<String>,
    /// True when users reach the portal over HTTPS (directly or through a TLS-terminating
    /// proxy): the session cookie becomes `__Host-ddnsd_session` with `Secure`, and a POST's
    /// `Origin` must be `https://`.
    pub tls: bool,
    /// Most sessions kept at once; past it the oldest (anonymous ones first) are evicted.
    pub sessions_max: usize,
    /// A session unused this long is ended.
    pub session_idle_secs: u64,
    /// A session is ended this long after it began, used or not.
    pub session_lifetime_secs: u64,
    /// Failed sign-ins per account in one window before sign-in is refused for the rest of it.
    pub login_failures_max: u32,
    /// Failed sign-ins per source address (IPv6: per /64) in one window before refusal.
    pub login_source_failures_max: u32,
    /// The throttling window.
    pub login_window_secs: u64,
    /// The reachability probe of hosts with a port (`[portal.probe]`).
    pub probe: ProbeConfig,
}

impl Default for PortalConfig {
    fn default() -> Self {
        PortalConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            brand: "ddnsd".to_owned(),
            zones: Vec::new(),
            signup: SignupMode::Open,
            invite_codes: Vec::new(),
            tls: false,
            sessions_max: 100_000,
            session_idle_secs: 30 * 60,
            session_lifetime_secs: 12 * 60 * 60,
            login_failures_max: 5,
            login_source_failures_max: 50,
            login_window_secs: 15 * 60,
            probe: ProbeConfig::default(),
        }
    }
}

/// Who may create an account.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SignupMode {
    /// Anyone.
    #[default]
    Open,
    /// Whoever has an operator-issued invite code (public sign-up is how free DDNS services get
    /// abused for phishing).
    Invite,
    /// Nobody; operators create accounts with `ddnsd user add`.
    Closed,
}

/// A configuration the portal cannot run with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `zones` is empty.
    #[error("the portal offers no zone: set portal.zones")]
    NoZone,
    /// A zone is not a valid domain name.
    #[error("portal zone {zone:?}: {source}")]
    BadZone {
        /// The zone as configured.
        zone: String,
        /// Why it is not a name.
        source: NameError,
    },
    /// `signup = "invite"` with no codes: nobody could sign up.
    #[error("signup = \"invite\" but invite_codes is empty")]
    NoInviteCode,
    /// A limit that must be at least 1 is 0.
    #[error("portal.{0} must be at least 1")]
    Zero(&'static str),
}

impl PortalConfig {
    /// The offered zones, parsed.
    pub(crate) fn parsed_zones(&self) -> Result<Vec<Fqdn>, ConfigError> {
        if self.zones.is_empty() {
            return Err(ConfigError::NoZone);
        }
        let mut zones = Vec::with_capacity(self.zones.len());
        for zone in &self.zones {
            let parsed = Fqdn::parse(zone).map_err(|source| ConfigError::BadZone {
                zone: zone.clone(),
                source,
            })?;
            if !zones.contains(&parsed) {
                zones.push(parsed);
            }
        }
        Ok(zones)
    }

    /// Checks everything but the zones.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        if self.signup == SignupMode::Invite && self.invite_codes.iter().all(|c| c.is_empty()) {
            return Err(ConfigError::NoInviteCode);
        }
        for (name, value) in [
            ("sessions_max", self.sessions_max as u64),
            ("session_idle_secs", self.session_idle_secs),
            ("session_lifetime_secs", self.session_lifetime_secs),
            ("login_failures_max", u64::from(self.login_failures_max)),
            (
                "login_source_failures_max",
                u64::from(self.login_source_failures_max),
            ),
            ("login_window_secs", self.login_window_secs),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        Ok(())
    }
}
