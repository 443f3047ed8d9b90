//! Where a connection comes from, and when a move is real: the socket-free core of the
//! migration-driven updates.
//!
//! quinn migrates a connection to a new remote address as soon as a packet arrives from it,
//! then validates the new path (PATH_CHALLENGE) and reverts to the old one if validation fails
//! within 3 PTO. It has no event for either and no public "validated" flag, so a [`Watch`]
//! compares `remote_address()` each time it is told to look and decides:
//!
//! - the same IP on another port (a NAT rebinding its mapping): nothing to publish;
//! - another address family: never published (one connection per family);
//! - a new IP: a candidate, published only if the connection is still there when quinn's
//!   path validation has certainly ended ([`confirm_delay`]); back on the old IP before that:
//!   forgotten; yet another IP: the new one becomes the candidate, its clock starts over;
//! - a confirmed move that was refused (the device's quota, a server error) is retried no
//!   sooner than [`RETRY_AFTER`], and dropped if the connection moves again.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// The initial RTT the channel's connections use for a path they know nothing of (Chromium's
/// QUIC default; RFC 9002's 333 ms would hold every confirmation for 3 s more).
pub(crate) const INITIAL_RTT: Duration = Duration::from_millis(100);

/// quinn's default `max_ack_delay`, which every PTO includes.
const MAX_ACK_DELAY: Duration = Duration::from_millis(25);

/// Slack past the end of path validation, for the timers' and the scheduler's jitter.
const CONFIRM_MARGIN: Duration = Duration::from_millis(250);

/// The longest a move waits for confirmation (a path with an RTT of seconds).
const CONFIRM_MAX: Duration = Duration::from_secs(60);

/// How long after a refused update (911, 12) a confirmed move is tried again.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(10);

/// A PTO for a path of `rtt` as RFC 9002 computes it before any variance is measured
/// (`rttvar = rtt / 2`): `rtt + 4 × rttvar + max_ack_delay`.
fn pto(rtt: Duration) -> Duration {
    rtt * 3 + MAX_ACK_DELAY
}

/// How long a new IP must hold before it is published: quinn gives up validating a new path
/// after `3 × max(PTO of the new path, PTO of the old)`, and a fresh path's PTO comes from
/// [`INITIAL_RTT`]; so a move still in place after that (and a margin) is one quinn accepted.
/// On loopback: 3 × 325 ms + 250 ms ≈ 1.2 s.
pub(crate) fn confirm_delay(rtt_before: Duration) -> Duration {
    (pto(INITIAL_RTT).max(pto(rtt_before)) * 3 + CONFIRM_MARGIN).min(CONFIRM_MAX)
}

/// What one look at the remote address found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Nothing new.
    Same,
    /// The same IP on another port: nothing to publish.
    PortOnly,
    /// An address of the other family: never published on this connection.
    OtherFamily,
    /// The connection's addresses are not published (IPv6 without the device's consent).
    NotFollowed,
    /// A new IP, now the candidate, to be confirmed at the instant given.
    Moved(Instant),
    /// The candidate, not yet confirmed (or a refused one not yet due for a retry).
    Waiting,
    /// Back on the published IP before the candidate was confirmed.
    Reverted,
    /// The candidate held: publish it.
    Confirmed(IpAddr),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Candidate {
    ip: IpAddr,
    confirm_at: Instant,
    /// A refused attempt was reported to the device already (report each candidate once).
    refused: bool,
}

/// One connection's address, as far as publishing goes.
#[derive(Clone, Debug)]
pub(crate) struct Watch {
    /// The family of the connection (fixed at its HELLO).
    v6: bool,
    /// Its addresses are published (IPv4 always; IPv6 when the device asked).
    follow: bool,
    /// The IP last published (or found in the record): what a move is a move from.
    published: Option<IpAddr>,
    /// The remote address at the last look.
    last: SocketAddr,
    /// The RTT while on the published IP, for the confirmation delay of the next move.
    rtt: Duration,
    candidate: Option<Candidate>,
    /// After a refused attempt, no new attempt before this.
    retry_at: Option<Instant>,
}

impl Watch {
    /// The watch of a connection just authenticated from `remote`, whose record holds
    /// `published` for that family. If the connection comes from another IP, that IP is a
    /// candidate confirmed at once: the handshake has just validated the address.
    pub(crate) fn new(
        remote: SocketAddr,
        follow_v6: bool,
        published: Option<IpAddr>,
        rtt: Duration,
        now: Instant,
    ) -> Watch {
        let ip = remote.ip().to_canonical();
        let v6 = ip.is_ipv6();
        Watch {
            v6,
            follow: !v6 || follow_v6,
            published,
            last: SocketAddr::new(ip, remote.port()),
            rtt,
            candidate: (published != Some(ip)).then_some(Candidate {
                ip,
                confirm_at: now,
                refused: false,
            }),
            retry_at: None,
        }
    }

    /// True if this connection's address is published.
    pub(crate) fn follows(&self) -> bool {
        self.follow
    }

    /// The next instant a look is due without any news (a confirmation, a retry).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        if !self.follow {
            return None;
        }
        let candidate = self.candidate?;
        Some(match self.retry_at {
            Some(retry) => retry.max(candidate.confirm_at),
            None => candidate.confirm_at,
        })
    }

    /// A look at the remote address.
    pub(crate) fn observe(&mut self, remote: SocketAddr, rtt: Duration, now: Instant) -> Seen {
        let ip = remote.ip().to_canonical();
        let remote = SocketAddr::new(ip, remote.port());
        let port_only = remote != self.last && ip == self.last.ip();
        self.last = remote;
        if !self.follow {
            return Seen::NotFollowed;
        }
        if ip.is_ipv6() != self.v6 {
            return Seen::OtherFamily;
        }
        if Some(ip) == self.published {
            self.rtt = rtt;
            return match self.candidate.take() {
                Some(_) => {
                    self.retry_at = None;
                    Seen::Reverted
                }
                None if port_only => Seen::PortOnly,
                None => Seen::Same,
            };
        }
        match self.candidate {
            Some(candidate) if candidate.ip == ip => {
                let due = now >= candidate.confirm_at && self.retry_at.is_none_or(|at| now >= at);
                if due {
                    Seen::Confirmed(ip)
                } else {
                    Seen::Waiting
                }
            }
            _ => {
                let confirm_at = now + confirm_delay(self.rtt);
                self.candidate = Some(Candidate {
                    ip,
                    confirm_at,
                    refused: false,
                });
                self.retry_at = None;
                Seen::Moved(confirm_at)
            }
        }
    }

    /// `ip` is in the record now (published, or found already there, or the device is gone):
    /// nothing more to do until the next move.
    pub(crate) fn settled(&mut self, ip: IpAddr) {
        self.published = Some(ip);
        if self.candidate.is_some_and(|c| c.ip == ip) {
            self.candidate = None;
        }
        self.retry_at = None;
    }

    /// The attempt to publish the candidate was refused: retry later. True if this is the
    /// candidate's first refusal (the one to report to the device).
    pub(crate) fn refused(&mut self, now: Instant) -> bool {
        self.retry_at = Some(now + RETRY_AFTER);
        match &mut self.candidate {
            Some(candidate) => !std::mem::replace(&mut candidate.refused, true),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("an address")
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("an address"))
    }

    const RTT: Duration = Duration::from_millis(1);

    #[test]
    fn the_confirmation_outlasts_path_validation() {
        // 3 × PTO(100 ms) + margin on a fast path; 3 × PTO of the old path on a slow one.
        assert_eq!(confirm_delay(RTT), Duration::from_millis(3 * 325 + 250));
        assert_eq!(
            confirm_delay(Duration::from_millis(300)),
            Duration::from_millis(3 * 925 + 250)
        );
        assert_eq!(confirm_delay(Duration::from_secs(30)), CONFIRM_MAX);
    }

    #[test]
    fn a_new_ip_is_published_once_it_held() {
        let t0 = Instant::now();
        let mut watch = Watch::new(addr("127.0.0.2:4000"), false, ip("127.0.0.2"), RTT, t0);
        assert_eq!(watch.deadline(), None);
        assert_eq!(watch.observe(addr("127.0.0.2:4000"), RTT, t0), Seen::Same);
        // A NAT rebinding: another port only.
        assert_eq!(
            watch.observe(addr("127.0.0.2:4001"), RTT, t0),
            Seen::PortOnly
        );
        let t1 = t0 + Duration::from_secs(1);
        let confirm_at = t1 + confirm_delay(RTT);
        assert_eq!(
            watch.observe(addr("127.0.0.3:4001"), RTT, t1),
            Seen::Moved(confirm_at)
        );
        assert_eq!(watch.deadline(), Some(confirm_at));
        let early = confirm_at - Duration::from_millis(1);
        assert_eq!(
            watch.observe(addr("127.0.0.3:4001"), RTT, early),
            Seen::Waiting
        );
        // The port may change meanwhile: the IP is what counts.
        assert_eq!(
            watch.observe(addr("127.0.0.3:4002"), RTT, confirm_at),
            Seen::Confirmed("127.0.0.3".parse().expect("valid"))
        );
        watch.settled("127.0.0.3".parse().expect("valid"));
        assert_eq!(watch.deadline(), None);
        assert_eq!(
            watch.observe(addr("127.0.0.3:4002"), RTT, confirm_at),
            Seen::Same
        );
    }

    #[test]
    fn a_move_that_reverts_or_moves_on_is_not_published() {
        let t0 = Instant::now();
        let mut watch = Watch::new(addr("10.0.0.1:1"), false, ip("10.0.0.1"), RTT, t0);
        assert!(matches!(
            watch.observe(addr("10.0.0.9:1"), RTT, t0),
            Seen::Moved(_)
        ));
        // quinn's path validation failed: back to the old path.
        assert_eq!(watch.observe(addr("10.0.0.1:1"), RTT, t0), Seen::Reverted);
        assert_eq!(watch.deadline(), None);
        // Flapping: each new IP starts the clock over.
        let t1 = t0 + Duration::from_millis(500);
        assert!(matches!(
            watch.observe(addr("10.0.0.2:1"), RTT, t0),
            Seen::Moved(_)
        ));
        let Seen::Moved(at) = watch.observe(addr("10.0.0.3:1"), RTT, t1) else {
            panic!("a move");
        };
        assert_eq!(at, t1 + confirm_delay(RTT));
        assert_eq!(
            watch.observe(addr("10.0.0.3:1"), RTT, at),
            Seen::Confirmed("10.0.0.3".parse().expect("valid"))
        );
    }

    #[test]
    fn a_refused_move_is_retried_later_and_reported_once() {
        let t0 = Instant::now();
        let mut watch = Watch::new(addr("10.0.0.1:1"), false, ip("10.0.0.1"), RTT, t0);
        let Seen::Moved(at) = watch.observe(addr("10.0.0.2:1"), RTT, t0) else {
            panic!("a move");
        };
        assert!(matches!(
            watch.observe(addr("10.0.0.2:1"), RTT, at),
            Seen::Confirmed(_)
        ));
        assert!(watch.refused(at), "the first refusal is reported");
        assert_eq!(watch.deadline(), Some(at + RETRY_AFTER));
        assert_eq!(watch.observe(addr("10.0.0.2:1"), RTT, at), Seen::Waiting);
        let later = at + RETRY_AFTER;
        assert!(matches!(
            watch.observe(addr("10.0.0.2:1"), RTT, later),
            Seen::Confirmed(_)
        ));
        assert!(!watch.refused(later), "reported once");
        // A new move drops the refused candidate and its retry.
        let Seen::Moved(next) = watch.observe(addr("10.0.0.3:1"), RTT, later) else {
            panic!("a move");
        };
        assert_eq!(watch.deadline(), Some(next));
    }

    #[test]
    fn a_connection_from_a_new_ip_publishes_it_at_once() {
        let t0 = Instant::now();
        let watch = Watch::new(addr("10.0.0.5:1"), false, ip("10.0.0.1"), RTT, t0);
        assert_eq!(watch.deadline(), Some(t0));
        let mut watch = Watch::new(addr("10.0.0.5:1"), false, None, RTT, t0);
        assert_eq!(
            watch.observe(addr("10.0.0.5:1"), RTT, t0),
            Seen::Confirmed("10.0.0.5".parse().expect("valid"))
        );
    }

    #[test]
    fn ipv6_is_followed_only_when_asked_and_families_never_mix() {
        let t0 = Instant::now();
        let mut private = Watch::new(addr("[2001:db8::1]:1"), false, None, RTT, t0);
        assert!(!private.follows());
        assert_eq!(private.deadline(), None);
        assert_eq!(
            private.observe(addr("[2001:db8::2]:1"), RTT, t0),
            Seen::NotFollowed
        );
        let mut public = Watch::new(addr("[2001:db8::1]:1"), true, ip("2001:db8::1"), RTT, t0);
        assert!(public.follows());
        assert!(matches!(
            public.observe(addr("[2001:db8::2]:1"), RTT, t0),
            Seen::Moved(_)
        ));
        let mut v4 = Watch::new(addr("10.0.0.1:1"), false, ip("10.0.0.1"), RTT, t0);
        assert_eq!(
            v4.observe(addr("[2001:db8::2]:1"), RTT, t0),
            Seen::OtherFamily
        );
        // A v4-mapped address is IPv4.
        assert_eq!(v4.observe(addr("[::ffff:10.0.0.1]:1"), RTT, t0), Seen::Same);
        assert_eq!(
            v4.observe(addr("[::ffff:10.0.0.1]:2"), RTT, t0),
            Seen::PortOnly
        );
    }
}
