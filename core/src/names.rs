//! DNS names as ddnsd uses them: a [`Label`] is one validated host label, an [`Fqdn`] a validated
//! lowercase domain name. Both are kept in presentation form without the trailing dot, lowercase,
//! so that comparing two names is comparing two strings.

use std::fmt;

/// Why a name was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// Empty after trimming, or an empty label inside a name (`a..b`).
    #[error("empty label")]
    Empty,
    /// A label longer than 63 octets.
    #[error("label longer than 63 octets")]
    LabelTooLong,
    /// A name longer than 253 octets in presentation form.
    #[error("name longer than 253 octets")]
    NameTooLong,
    /// A character outside letters, digits and hyphen.
    #[error("character {0:?} not allowed in a host name")]
    BadChar(char),
    /// A label that starts or ends with a hyphen.
    #[error("label starts or ends with a hyphen")]
    EdgeHyphen,
    /// A single label was expected and the input has dots.
    #[error("expected one label, found a dotted name")]
    NotOneLabel,
}

/// One DNS label under LDH rules (RFC 1123): 1–63 octets of letters, digits and hyphens, not
/// starting or ending with a hyphen; trimmed of white space and case-folded on parse.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label(String);

impl Label {
    /// Validates, trims and lowercases `input`.
    pub fn parse(input: &str) -> Result<Label, NameError> {
        let trimmed = input.trim();
        if trimmed.contains('.') {
            return Err(NameError::NotOneLabel);
        }
        check_label(trimmed)?;
        Ok(Label(trimmed.to_ascii_lowercase()))
    }

    /// The label, lowercase.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn check_label(label: &str) -> Result<(), NameError> {
    if label.is_empty() {
        return Err(NameError::Empty);
    }
    if label.len() > 63 {
        return Err(NameError::LabelTooLong);
    }
    if let Some(c) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(NameError::BadChar(c));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(NameError::EdgeHyphen);
    }
    Ok(())
}

/// A fully qualified domain name: LDH labels, lowercase, no trailing dot (`cam42.dyn.example`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fqdn(String);

impl Fqdn {
    /// Validates `input` (one trailing dot allowed), lowercasing it.
    pub fn parse(input: &str) -> Result<Fqdn, NameError> {
        let trimmed = input.trim();
        let name = trimmed.strip_suffix('.').unwrap_or(trimmed);
        if name.len() > 253 {
            return Err(NameError::NameTooLong);
        }
        for label in name.split('.') {
            check_label(label)?;
        }
        Ok(Fqdn(name.to_ascii_lowercase()))
    }

    /// `label.self`, or an error if the result is longer than a name may be.
    pub fn child(&self, label: &Label) -> Result<Fqdn, NameError> {
        let name = format!("{}.{}", label.0, self.0);
        if name.len() > 253 {
            return Err(NameError::NameTooLong);
        }
        Ok(Fqdn(name))
    }

    /// The name without its first label; none for a single label.
    pub fn parent(&self) -> Option<Fqdn> {
        self.0
            .split_once('.')
            .map(|(_, parent)| Fqdn(parent.to_owned()))
    }

    /// True if `self` is `zone` or lies below it.
    pub fn is_within(&self, zone: &Fqdn) -> bool {
        is_within(&self.0, &zone.0)
    }

    /// The name, lowercase, without the trailing dot.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// True if the lowercase name `name` is `zone` or lies below it (both without trailing dot).
pub(crate) fn is_within(name: &str, zone: &str) -> bool {
    name == zone
        || (name.len() > zone.len()
            && name.ends_with(zone)
            && name.as_bytes()[name.len() - zone.len() - 1] == b'.')
}

impl fmt::Display for Fqdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_is_trimmed_and_case_folded() {
        assert_eq!(
            Label::parse("  Cam-42 \t").map(|l| l.0),
            Ok("cam-42".into())
        );
    }

    #[test]
    fn label_rules() {
        assert_eq!(Label::parse(""), Err(NameError::Empty));
        assert_eq!(Label::parse("   "), Err(NameError::Empty));
        assert_eq!(Label::parse(&"a".repeat(64)), Err(NameError::LabelTooLong));
        assert!(Label::parse(&"a".repeat(63)).is_ok());
        assert_eq!(Label::parse("-ab"), Err(NameError::EdgeHyphen));
        assert_eq!(Label::parse("ab-"), Err(NameError::EdgeHyphen));
        assert_eq!(Label::parse("a_b"), Err(NameError::BadChar('_')));
        assert_eq!(Label::parse("a b"), Err(NameError::BadChar(' ')));
        assert_eq!(Label::parse("ä"), Err(NameError::BadChar('ä')));
        assert_eq!(Label::parse("a.b"), Err(NameError::NotOneLabel));
        assert!(Label::parse("0").is_ok());
    }

    #[test]
    fn fqdn_rules() {
        let zone = Fqdn::parse("Dyn.Example.").expect("valid");
        assert_eq!(zone.as_str(), "dyn.example");
        let host = zone
            .child(&Label::parse("cam").expect("valid"))
            .expect("fits");
        assert_eq!(host.as_str(), "cam.dyn.example");
        assert!(host.is_within(&zone));
        assert!(zone.is_within(&zone));
        assert!(!Fqdn::parse("xdyn.example").expect("valid").is_within(&zone));
        assert_eq!(Fqdn::parse("a..b"), Err(NameError::Empty));
        let long = Fqdn::parse(&vec!["a".repeat(60); 4].join(".")).expect("243 octets");
        assert_eq!(
            long.child(&Label::parse(&"b".repeat(20)).expect("valid")),
            Err(NameError::NameTooLong)
        );
    }
}
