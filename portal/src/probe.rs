//! The reachability probe: a host whose owner gave a port is OK only while a TCP connection to
//! its address and port succeeds, ERROR while it fails (SPEC §4, the seed's "Not connected to
//! DVR"). A status is state of the fold, so the probe appends `HostStatusChanged` only when a
//! host's status changes: a host that stays down costs one event, not one per round.
//!
//! Bounded on every side: off unless configured, one round per interval, a connect timeout, a
//! cap on connections at once, and never a connection to loopback, private, shared (CGNAT),
//! link-local, multicast or unspecified addresses unless `allow_private` says so: the probe
//! must not become a way to scan the operator's own network through a host record.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ddns_core::{EventBody, Fqdn, HostStatus, State};
use ddns_projector::Committer;
use serde::Deserialize;
use tokio::sync::Semaphore;

/// The probe's settings (`[portal.probe]`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ProbeConfig {
    /// Probe at all (default: no).
    pub enabled: bool,
    /// Seconds between rounds.
    pub interval_secs: u64,
    /// How long a connection may take before the host counts as unreachable.
    pub timeout_ms: u64,
    /// Connections at once.
    pub concurrency: usize,
    /// Also probe loopback, private, link-local and multicast addresses (test beds only).
    pub allow_private: bool,
}

impl Default for ProbeConfig {
    fn default() -> ProbeConfig {
        ProbeConfig {
            enabled: false,
            interval_secs: 300,
            timeout_ms: 3_000,
            concurrency: 32,
            allow_private: false,
        }
    }
}

/// What one round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeRound {
    /// Hosts connected to.
    pub probed: usize,
    /// Hosts whose status changed (an event each).
    pub changed: usize,
    /// Hosts with a port left alone because their address may not be probed.
    pub skipped: usize,
}

/// Probes hosts' ports and records their status through a [`Committer`].
pub struct Prober {
    committer: Arc<Committer>,
    config: ProbeConfig,
}

/// A host to probe: its name, zone, where to connect, and its status now.
struct Target {
    fqdn: Fqdn,
    zone: Fqdn,
    addr: SocketAddr,
    status: HostStatus,
}

impl Prober {
    /// A prober committing through `committer`.
    pub fn new(committer: Arc<Committer>, config: ProbeConfig) -> Prober {
        Prober { committer, config }
    }

    /// Runs a round every `interval_secs`, forever (returns at once when disabled).
    pub async fn run(self) {
        if !self.config.enabled {
            return;
        }
        let mut every =
            tokio::time::interval(Duration::from_secs(self.config.interval_secs.max(1)));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let round = self.round().await;
            tracing::debug!(?round, "probe round");
        }
    }

    /// Probes every host that has a port and has been updated at least once.
    pub async fn round(&self) -> ProbeRound {
        let mut round = ProbeRound::default();
        let targets = self
            .committer
            .view()
            .with_state(|state| targets(state, self.config.allow_private, &mut round.skipped));
        let permits = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let timeout = Duration::from_millis(self.config.timeout_ms);
        let mut probes = tokio::task::JoinSet::new();
        for target in targets {
            let permits = permits.clone();
            probes.spawn(async move {
                let _permit = permits.acquire_owned().await.expect("never closed");
                let connected =
                    tokio::time::timeout(timeout, tokio::net::TcpStream::connect(target.addr))
                        .await
                        .is_ok_and(|c| c.is_ok());
                (target, connected)
            });
        }
        while let Some(done) = probes.join_next().await {
            let Ok((target, connected)) = done else {
                continue;
            };
            round.probed += 1;
            let status = if connected {
                HostStatus::Ok
            } else {
                HostStatus::Error
            };
            if status == target.status {
                continue;
            }
            let body = EventBody::HostStatusChanged {
                zone: target.zone,
                fqdn: target.fqdn,
                status,
            };
            if self.committer.commit(body).await.is_some() {
                round.changed += 1;
            }
        }
        metrics::counter!("ddns_portal_probes_total").increment(round.probed as u64);
        round
    }
}

fn targets(state: &State, allow_private: bool, skipped: &mut usize) -> Vec<Target> {
    state
        .account_hosts()
        .filter(|(_, host)| host.status != HostStatus::Standby)
        .filter_map(|(fqdn, host)| {
            let port = host.port?;
            let ip = host.v4.map(IpAddr::V4).or(host.v6.map(IpAddr::V6))?;
            if !allow_private && !is_public(ip) {
                *skipped += 1;
                return None;
            }
            Some(Target {
                fqdn: fqdn.clone(),
                zone: host.zone.clone(),
                addr: SocketAddr::new(ip, port),
                status: host.status,
            })
        })
        .collect()
}

/// True if `ip` is on the public internet: not loopback, private (RFC 1918, IPv6 unique
/// local), shared (RFC 6598), link-local, multicast, broadcast, unspecified or documentation.
fn is_public(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_unspecified()
                || v4.is_documentation()
                || (a == 100 && (64..128).contains(&b))
                || a == 0)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_multicast()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

#[cfg(test)]
mod tests {
    use ddns_core::{AccountId, Label, Outcome};

    use super::*;
    use crate::fixture::Backend;

    #[test]
    fn only_public_addresses_are_probed() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.1.1",
            "224.0.0.1",
            "255.255.255.255",
            "0.0.0.0",
            "192.0.2.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::",
            "2001:db8::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(private.parse().expect("valid")), "{private}");
        }
        for public in ["8.8.8.8", "203.0.114.1", "2a00:1450::1", "::ffff:8.8.4.4"] {
            assert!(is_public(public.parse().expect("valid")), "{public}");
        }
    }

    /// A host `cam.dyn.example` of account 1 with `port`, updated by its DVR to 127.0.0.1.
    async fn host_with_port(backend: &Backend, port: u16) -> Fqdn {
        let zone = Fqdn::parse("dyn.example").expect("valid");
        let created = backend
            .commit(EventBody::HostCreated {
                zone: zone.clone(),
                account: AccountId(1),
                group: None,
                host: Label::parse("cam").expect("valid"),
                password_hash: "unused".into(),
                port: Some(port),
            })
            .await;
        let Outcome::Created(fqdn) = created else {
            panic!("{created:?}");
        };
        let set = EventBody::HostAddressSet {
            zone,
            fqdn: fqdn.clone(),
            addr: "127.0.0.1".parse().expect("valid"),
            account: None,
        };
        assert_eq!(backend.commit(set).await, Outcome::Modified);
        fqdn
    }

    fn status(backend: &Backend, fqdn: &Fqdn) -> HostStatus {
        backend
            .view
            .with_state(|s| s.account_host(fqdn).expect("exists").status)
    }

    fn test_config(allow_private: bool) -> ProbeConfig {
        ProbeConfig {
            enabled: true,
            timeout_ms: 2_000,
            allow_private,
            ..ProbeConfig::default()
        }
    }

    #[tokio::test]
    async fn a_host_is_ok_while_its_port_answers_and_error_once_it_does_not() {
        let backend = Backend::new(&["dyn.example"]).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let port = listener.local_addr().expect("bound").port();
        let fqdn = host_with_port(&backend, port).await;
        let prober = Prober::new(backend.committer.clone(), test_config(true));

        let round = prober.round().await;
        assert_eq!((round.probed, round.changed), (1, 0), "already OK");
        assert_eq!(status(&backend, &fqdn), HostStatus::Ok);

        drop(listener);
        let round = prober.round().await;
        assert_eq!((round.probed, round.changed), (1, 1));
        assert_eq!(status(&backend, &fqdn), HostStatus::Error);
        // Still down: no second event.
        let events = backend.view.applied().total();
        assert_eq!(prober.round().await.changed, 0);
        assert_eq!(backend.view.applied().total(), events);
    }

    #[tokio::test]
    async fn private_addresses_are_not_probed_unless_allowed() {
        let backend = Backend::new(&["dyn.example"]).await;
        // Nothing listens on this port, so a probe would say ERROR.
        let fqdn = host_with_port(&backend, 9).await;
        let prober = Prober::new(backend.committer.clone(), test_config(false));
        let round = prober.round().await;
        assert_eq!((round.probed, round.skipped), (0, 1));
        assert_eq!(status(&backend, &fqdn), HostStatus::Ok);
    }
}
