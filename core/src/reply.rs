//! The device API's reply codes (SPEC §2), as the text a device reads.

use std::fmt;
use std::net::IpAddr;

use crate::fold::Outcome;
use crate::names::Fqdn;

/// One reply of the device API; `Display` gives the exact text on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `01`: the requested host label is not a valid DNS label.
    InvalidHostname,
    /// `02`: the `mac` credential is missing, malformed, not ours, stale or replayed.
    InvalidMac,
    /// `04`: `myip` is not an IP address we accept.
    InvalidIp,
    /// `07`: another device owns the name.
    NameTaken,
    /// `08`: nothing changed.
    NoChange,
    /// `09`: an address changed.
    Modified,
    /// `10|fqdn`: the device now owns this name.
    Created(Fqdn),
    /// `911`: flood detected.
    Flood,
    /// `12`: the server could not do it; nothing was acknowledged.
    ServerError,
    /// `13`: the device has no record.
    NotFound,
    /// `14|ip`: the device's registered address.
    Registered(IpAddr),
    /// `15`: deleted.
    Deleted,
    /// `16`: the delete could not be made durable.
    DeleteFailed,
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::InvalidHostname => f.write_str("01"),
            Reply::InvalidMac => f.write_str("02"),
            Reply::InvalidIp => f.write_str("04"),
            Reply::NameTaken => f.write_str("07"),
            Reply::NoChange => f.write_str("08"),
            Reply::Modified => f.write_str("09"),
            Reply::Created(fqdn) => write!(f, "10|{fqdn}"),
            Reply::Flood => f.write_str("911"),
            Reply::ServerError => f.write_str("12"),
            Reply::NotFound => f.write_str("13"),
            Reply::Registered(ip) => write!(f, "14|{ip}"),
            Reply::Deleted => f.write_str("15"),
            Reply::DeleteFailed => f.write_str("16"),
        }
    }
}

impl From<Outcome> for Reply {
    fn from(outcome: Outcome) -> Reply {
        match outcome {
            Outcome::Created(fqdn) => Reply::Created(fqdn),
            Outcome::Modified => Reply::Modified,
            Outcome::NoChange => Reply::NoChange,
            Outcome::NameTaken => Reply::NameTaken,
            Outcome::NotFound => Reply::NotFound,
            Outcome::Removed => Reply::Deleted,
            // Outcomes of account events, which the device API never appends.
            Outcome::Done | Outcome::UserIdTaken | Outcome::EmailTaken | Outcome::NotEmpty => {
                Reply::ServerError
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_text_of_every_reply() {
        let fqdn = Fqdn::parse("cam.dyn.example").expect("valid");
        let cases = [
            (Reply::InvalidHostname, "01"),
            (Reply::InvalidMac, "02"),
            (Reply::InvalidIp, "04"),
            (Reply::NameTaken, "07"),
            (Reply::NoChange, "08"),
            (Reply::Modified, "09"),
            (Reply::Created(fqdn), "10|cam.dyn.example"),
            (Reply::Flood, "911"),
            (Reply::ServerError, "12"),
            (Reply::NotFound, "13"),
            (
                Reply::Registered("192.0.2.1".parse().expect("valid")),
                "14|192.0.2.1",
            ),
            (
                Reply::Registered("2001:db8::1".parse().expect("valid")),
                "14|2001:db8::1",
            ),
            (Reply::Deleted, "15"),
            (Reply::DeleteFailed, "16"),
        ];
        for (reply, text) in cases {
            assert_eq!(reply.to_string(), text);
        }
    }
}
