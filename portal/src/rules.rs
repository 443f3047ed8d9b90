//! The portal's input rules and the exact messages it shows when one is broken.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::LazyLock;

/// The messages, verbatim. The three the seed names (`USER ID Duplicate Error`, `USER EMAIL
/// Duplicate Error`, `INTERNAL ERROR`) are part of the public contract.
pub(crate) mod msg {
    /// Sign-up: the user ID breaks the seed's rule.
    pub const USER_ID_INVALID: &str =
        "User ID must be 5 to 20 letters or digits, with no spaces or special characters.";
    /// Sign-up: no `Not existed` answer for this user ID in this session.
    pub const USER_ID_UNCHECKED: &str =
        "Please click Duplicate Check for this user ID before submitting.";
    /// Sign-up: the user ID has an account.
    pub const USER_ID_TAKEN: &str = "USER ID Duplicate Error";
    /// Sign-up: the e-mail address has an account.
    pub const EMAIL_TAKEN: &str = "USER EMAIL Duplicate Error";
    /// Anything the server could not do (the log or the projection is unavailable).
    pub const INTERNAL: &str = "INTERNAL ERROR";
    /// Password shorter than 5 characters.
    pub const PASSWORD_SHORT: &str = "Password must be at least 5 characters.";
    /// Password longer than 1024 bytes.
    pub const PASSWORD_LONG: &str = "Password must be at most 1024 bytes.";
    /// Password and confirmation differ.
    pub const PASSWORD_MISMATCH: &str = "Password and Confirm Password do not match.";
    /// Password equals the user ID (ignoring case).
    pub const PASSWORD_IS_USER_ID: &str = "Password cannot be your user ID.";
    /// Password in the common-passwords list.
    pub const PASSWORD_COMMON: &str =
        "This password is one of the most common passwords; choose another.";
    /// E-mail address not plausible.
    pub const EMAIL_INVALID: &str = "E-mail address is not valid.";
    /// Invite-only sign-up without a valid code.
    pub const INVITE_INVALID: &str = "Invite code is not valid.";
    /// Sign-up closed.
    pub const SIGNUP_CLOSED: &str =
        "Sign-up is closed on this server. Ask its operator for an account.";
    /// Sign-in failed, for an unknown user and a wrong password alike.
    pub const LOGIN_FAILED: &str = "Incorrect user ID or password.";
    /// Sign-in refused by the throttle.
    pub const LOGIN_THROTTLED: &str =
        "Too many failed sign-ins for this account or from your address. Try again later.";
    /// Current password wrong when changing it or removing the account.
    pub const CURRENT_PASSWORD_WRONG: &str = "Current password is not correct.";
    /// Too many password hashes queued.
    pub const BUSY: &str = "The server is busy. Try again in a moment.";
    /// CSRF token or origin check failed.
    pub const FORBIDDEN: &str =
        "This form has expired or was sent from another site. Reload the page and try again.";
    /// A group name that is not one DNS label.
    pub const GROUP_INVALID: &str = "Group name must be one DNS label: 1 to 63 letters, digits \
                                     or hyphens, not starting or ending with a hyphen.";
    /// A host name that is not one DNS label.
    pub const HOST_INVALID: &str = "Host name must be one DNS label: 1 to 63 letters, digits or \
                                    hyphens, not starting or ending with a hyphen.";
    /// A name longer than DNS allows.
    pub const NAME_TOO_LONG: &str = "The full name would be longer than 253 characters.";
    /// A group that is not one of the account's.
    pub const NO_SUCH_GROUP: &str = "That group is not one of your groups.";
    /// A zone the portal does not offer.
    pub const NO_SUCH_ZONE: &str = "That zone is not offered here.";
    /// A host password that breaks the rule.
    pub const HOST_PASSWORD_INVALID: &str = "Host password must be 3 to 64 characters: letters, \
                                             digits or punctuation, no spaces.";
    /// A port that is not 1–65535.
    pub const PORT_INVALID: &str = "Port must be a number from 1 to 65535.";
    /// An IP address that does not parse or cannot be a host's.
    pub const IP_INVALID: &str = "IP address is not valid.";
    /// The host was changed (the seed's popup).
    pub const HOST_CHANGED: &str = "YOUR HOST IS SUCCESSFULLY CHANGED!!";
    /// A host has as many update tokens as it may.
    pub const TOKENS_FULL: &str = "This host has 10 update tokens: revoke one first.";
    /// The password was changed.
    pub const PASSWORD_CHANGED: &str =
        "Your password was changed. Other sessions of your account were signed out.";
}

/// Longest password accepted, in bytes (argon2 takes any length; this bounds the work a
/// request can ask for). Never truncated.
pub(crate) const PASSWORD_BYTES_MAX: usize = 1024;
/// Shortest password, in characters (the seed's rule).
pub(crate) const PASSWORD_CHARS_MIN: usize = 5;

/// The most common passwords of at least 5 characters, lowercase, one a line.
static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../data/common-passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
});

/// The first rule `password` breaks, if any (the sign-up form's rules, which `ddnsd user add`
/// applies too).
pub fn password_problem(password: &str, confirm: &str, user_id: &str) -> Option<&'static str> {
    if password.chars().count() < PASSWORD_CHARS_MIN {
        Some(msg::PASSWORD_SHORT)
    } else if password.len() > PASSWORD_BYTES_MAX {
        Some(msg::PASSWORD_LONG)
    } else if password != confirm {
        Some(msg::PASSWORD_MISMATCH)
    } else if password.eq_ignore_ascii_case(user_id.trim()) {
        Some(msg::PASSWORD_IS_USER_ID)
    } else if COMMON_PASSWORDS.contains(password.to_lowercase().as_str()) {
        Some(msg::PASSWORD_COMMON)
    } else {
        None
    }
}

/// The e-mail address, trimmed and lowercased, if it is plausible: one `@`, a local part of
/// 1–64 visible characters without the ones that need quoting, a domain of two or more LDH
/// labels, 254 characters in all.
pub fn email(input: &str) -> Option<String> {
    let email = input.trim();
    if email.len() > 254 {
        return None;
    }
    let (local, domain) = email.split_once('@')?;
    let local_ok = (1..=64).contains(&local.len())
        && local
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"\"(),:;<>@[\\]".contains(&b))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..");
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && !tld.bytes().all(|b| b.is_ascii_digit()));
    (local_ok && domain_ok).then(|| email.to_ascii_lowercase())
}

/// A host password: 3–64 visible ASCII characters (the seed's DVRs take 3–8 lowercase ones).
pub fn host_password_ok(password: &str) -> bool {
    (3..=64).contains(&password.len()) && password.bytes().all(|b| b.is_ascii_graphic())
}

/// An optional port: empty is `None`.
pub(crate) fn port(input: &str) -> Result<Option<u16>, &'static str> {
    let input = input.trim();
    if input.is_empty() {
        return Ok(None);
    }
    match input.parse::<u16>() {
        Ok(0) | Err(_) => Err(msg::PORT_INVALID),
        Ok(port) => Ok(Some(port)),
    }
}

/// An optional address for a host's record: empty is `None`; unspecified, multicast and
/// broadcast addresses are refused.
pub(crate) fn ip(input: &str) -> Result<Option<IpAddr>, &'static str> {
    let input = input.trim();
    if input.is_empty() {
        return Ok(None);
    }
    let addr: IpAddr = input.parse().map_err(|_| msg::IP_INVALID)?;
    let unusable = addr.is_unspecified()
        || addr.is_multicast()
        || matches!(addr, IpAddr::V4(v4) if v4.is_broadcast());
    if unusable {
        return Err(msg::IP_INVALID);
    }
    Ok(Some(addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_rules_in_order() {
        assert_eq!(
            password_problem("abcd", "abcd", "alice1"),
            Some(msg::PASSWORD_SHORT)
        );
        assert_eq!(
            password_problem("äöüßé", "äöüßé", "alice1"),
            None,
            "5 characters"
        );
        let long = "x".repeat(1025);
        assert_eq!(
            password_problem(&long, &long, "alice1"),
            Some(msg::PASSWORD_LONG)
        );
        let max = "xy".repeat(512);
        assert_eq!(
            password_problem(&max, &max, "alice1"),
            None,
            "1024 bytes, no truncation"
        );
        assert_eq!(
            password_problem("abcdef", "abcdeg", "alice1"),
            Some(msg::PASSWORD_MISMATCH)
        );
        assert_eq!(
            password_problem("Alice1", "Alice1", "alice1"),
            Some(msg::PASSWORD_IS_USER_ID)
        );
        assert_eq!(
            password_problem("Password", "Password", "alice1"),
            Some(msg::PASSWORD_COMMON)
        );
        assert_eq!(
            password_problem("qwerty123", "qwerty123", "alice1"),
            Some(msg::PASSWORD_COMMON)
        );
        assert_eq!(
            password_problem("tangerine-4-lamps", "tangerine-4-lamps", "alice1"),
            None
        );
    }

    #[test]
    fn common_list_is_loaded() {
        assert!(COMMON_PASSWORDS.len() >= 200, "{}", COMMON_PASSWORDS.len());
        assert!(COMMON_PASSWORDS.iter().all(|p| *p == p.to_lowercase()));
    }

    #[test]
    fn emails() {
        assert_eq!(
            email(" Alice@Example.COM "),
            Some("alice@example.com".into())
        );
        assert_eq!(
            email("a.b+tag&x'y@mail.example.org"),
            Some("a.b+tag&x'y@mail.example.org".into())
        );
        for bad in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "alice@example",
            "alice@@example.com",
            "al ice@example.com",
            "<script>@example.com",
            "alice@exa_mple.com",
            "alice@-example.com",
            "alice@example.c",
            "alice@1.2.3.4",
            ".alice@example.com",
            "a..b@example.com",
        ] {
            assert_eq!(email(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn host_passwords_ports_and_ips() {
        assert!(host_password_ok("abc"));
        assert!(host_password_ok("abcdefgh"));
        assert!(!host_password_ok("ab"));
        assert!(!host_password_ok("has space"));
        assert!(!host_password_ok(&"a".repeat(65)));
        assert_eq!(port(""), Ok(None));
        assert_eq!(port(" 8080 "), Ok(Some(8080)));
        for bad in ["0", "65536", "-1", "http"] {
            assert_eq!(port(bad), Err(msg::PORT_INVALID));
        }
        assert_eq!(ip(""), Ok(None));
        assert_eq!(
            ip("192.0.2.1"),
            Ok(Some("192.0.2.1".parse().expect("literal")))
        );
        assert_eq!(
            ip("2001:db8::1"),
            Ok(Some("2001:db8::1".parse().expect("literal")))
        );
        for bad in [
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "ff02::1",
            "1.2.3",
            "x",
        ] {
            assert_eq!(ip(bad), Err(msg::IP_INVALID), "{bad}");
        }
    }
}
