//! A streaming reader of RFC 1035 master files ("zone files"), for importing hosts from BIND,
//! NSD or Knot. It yields the A and AAAA records; every other type is counted and skipped.
//!
//! Supported: `$ORIGIN`, `$TTL`, `@`, relative and absolute owners, a blank owner repeating the
//! previous one, TTL and class in either order (TTL units `s m h d w`), `;` comments, quoted
//! strings, and parentheses spanning lines. Refused with a line number: `$INCLUDE` and
//! `$GENERATE` (we read one file), escapes in names, classes other than IN, malformed addresses.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::IpAddr;

use crate::names::Fqdn;

/// One address record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressRecord {
    /// Its owner name.
    pub name: Fqdn,
    /// The A or AAAA data.
    pub addr: IpAddr,
    /// Its TTL, in seconds.
    pub ttl_secs: u32,
}

/// A line the reader cannot accept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ZoneFileError {
    /// Reading the input failed.
    #[error("reading the zone file: {0}")]
    Io(#[from] std::io::Error),
    /// A line is not valid.
    #[error("line {line}: {reason}")]
    Syntax {
        /// 1-based line number where the entry starts.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Reads address records from a master file, one entry at a time.
pub struct ZoneFileReader<R> {
    input: R,
    origin: Option<Fqdn>,
    default_ttl: Option<u32>,
    previous_owner: Option<Fqdn>,
    line_number: usize,
    skipped: BTreeMap<String, u64>,
    buffer: String,
}

impl<R: BufRead> ZoneFileReader<R> {
    /// A reader of `input`, with `origin` as the initial `$ORIGIN` (if any).
    pub fn new(input: R, origin: Option<Fqdn>) -> ZoneFileReader<R> {
        ZoneFileReader {
            input,
            origin,
            default_ttl: None,
            previous_owner: None,
            line_number: 0,
            skipped: BTreeMap::new(),
            buffer: String::new(),
        }
    }

    /// Records skipped so far, by type (`SOA`, `NS`, `MX`, …).
    pub fn skipped(&self) -> &BTreeMap<String, u64> {
        &self.skipped
    }

    /// The next address record, `None` at the end of the input.
    pub fn next_record(&mut self) -> Result<Option<AddressRecord>, ZoneFileError> {
        loop {
            let Some(entry) = self.next_entry()? else {
                return Ok(None);
            };
            if let Some(record) = self.entry(entry.line, entry.starts_blank, &entry.tokens)? {
                return Ok(Some(record));
            }
        }
    }

    /// The tokens of the next logical entry (parentheses joined), with its first line number
    /// and whether it starts with white space (a blank owner).
    fn next_entry(&mut self) -> Result<Option<Entry>, ZoneFileError> {
        let mut tokens = Vec::new();
        let mut depth = 0u32;
        let mut first_line = 0;
        let mut starts_blank = false;
        loop {
            self.buffer.clear();
            if self.input.read_line(&mut self.buffer)? == 0 {
                if depth > 0 {
                    return Err(syntax(first_line, "unclosed parenthesis"));
                }
                return Ok((!tokens.is_empty()).then_some(Entry {
                    line: first_line,
                    starts_blank,
                    tokens,
                }));
            }
            self.line_number += 1;
            if tokens.is_empty() && depth == 0 {
                first_line = self.line_number;
                starts_blank = self.buffer.starts_with([' ', '\t']);
            }
            tokenize(&self.buffer, &mut tokens, &mut depth)
                .map_err(|reason| syntax(self.line_number, reason))?;
            if depth == 0 && !tokens.is_empty() {
                return Ok(Some(Entry {
                    line: first_line,
                    starts_blank,
                    tokens,
                }));
            }
        }
    }

    fn entry(
        &mut self,
        line: usize,
        starts_blank: bool,
        tokens: &[String],
    ) -> Result<Option<AddressRecord>, ZoneFileError> {
        let mut rest = tokens;
        if let Some(directive) = rest[0].strip_prefix('$') {
            let argument = rest
                .get(1)
                .ok_or_else(|| syntax(line, "directive without argument"))?;
            match directive.to_ascii_uppercase().as_str() {
                "ORIGIN" => self.origin = Some(self.absolute(argument, line)?),
                "TTL" => {
                    self.default_ttl =
                        Some(parse_ttl(argument).ok_or_else(|| syntax(line, "bad $TTL"))?);
                }
                other => return Err(syntax(line, format!("${other} is not supported"))),
            }
            return Ok(None);
        }
        let owner = if starts_blank {
            self.previous_owner
                .clone()
                .ok_or_else(|| syntax(line, "no previous owner"))?
        } else {
            let owner = self.absolute(&rest[0], line)?;
            rest = &rest[1..];
            owner
        };
        self.previous_owner = Some(owner.clone());
        let mut ttl = None;
        loop {
            let Some(token) = rest.first() else {
                return Err(syntax(line, "no record type"));
            };
            if ttl.is_none()
                && let Some(value) = parse_ttl(token)
            {
                ttl = Some(value);
            } else if token.eq_ignore_ascii_case("IN") {
            } else if ["CH", "HS", "CS"]
                .iter()
                .any(|c| token.eq_ignore_ascii_case(c))
            {
                return Err(syntax(line, format!("class {token} is not supported")));
            } else {
                break;
            }
            rest = &rest[1..];
        }
        let kind = rest[0].to_ascii_uppercase();
        let data = &rest[1..];
        let addr = match kind.as_str() {
            "A" => data
                .first()
                .and_then(|d| d.parse::<std::net::Ipv4Addr>().ok())
                .map(IpAddr::V4),
            "AAAA" => data
                .first()
                .and_then(|d| d.parse::<std::net::Ipv6Addr>().ok())
                .map(IpAddr::V6),
            _ => {
                *self.skipped.entry(kind).or_default() += 1;
                return Ok(None);
            }
        };
        let addr = match (addr, data.len()) {
            (Some(addr), 1) => addr,
            _ => return Err(syntax(line, format!("bad {kind} data {data:?}"))),
        };
        let ttl_secs = ttl
            .or(self.default_ttl)
            .ok_or_else(|| syntax(line, "no TTL and no $TTL before it"))?;
        Ok(Some(AddressRecord {
            name: owner,
            addr,
            ttl_secs,
        }))
    }

    fn absolute(&self, name: &str, line: usize) -> Result<Fqdn, ZoneFileError> {
        if name.contains('\\') {
            return Err(syntax(
                line,
                format!("escapes in names are not supported: {name}"),
            ));
        }
        let full = if name == "@" {
            return self
                .origin
                .clone()
                .ok_or_else(|| syntax(line, "@ without $ORIGIN"));
        } else if name.ends_with('.') {
            name.to_owned()
        } else {
            let origin = self
                .origin
                .as_ref()
                .ok_or_else(|| syntax(line, format!("relative name {name} without $ORIGIN")))?;
            format!("{name}.{origin}")
        };
        Fqdn::parse(&full).map_err(|e| syntax(line, format!("name {name}: {e}")))
    }
}

/// One logical entry: its tokens, the line it starts on, and whether it starts with white space
/// (a blank owner).
struct Entry {
    line: usize,
    starts_blank: bool,
    tokens: Vec<String>,
}

fn syntax(line: usize, reason: impl Into<String>) -> ZoneFileError {
    ZoneFileError::Syntax {
        line,
        reason: reason.into(),
    }
}

/// Splits one physical line into tokens, dropping comments and tracking parentheses.
fn tokenize(line: &str, tokens: &mut Vec<String>, depth: &mut u32) -> Result<(), &'static str> {
    let mut chars = line.chars().peekable();
    let mut current = String::new();
    let flush = |current: &mut String, tokens: &mut Vec<String>| {
        if !current.is_empty() {
            tokens.push(std::mem::take(current));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            ';' => break,
            '"' => {
                flush(&mut current, tokens);
                let mut quoted = String::from("\"");
                loop {
                    match chars.next() {
                        Some('\\') => quoted.extend(chars.next()),
                        Some('"') => break,
                        Some(c) => quoted.push(c),
                        None => return Err("unterminated quoted string"),
                    }
                }
                tokens.push(quoted);
            }
            '(' => {
                flush(&mut current, tokens);
                *depth += 1;
            }
            ')' => {
                flush(&mut current, tokens);
                *depth = depth.checked_sub(1).ok_or("unbalanced )")?;
            }
            c if c.is_whitespace() => flush(&mut current, tokens),
            c => current.push(c),
        }
    }
    flush(&mut current, tokens);
    Ok(())
}

/// A TTL: seconds, or a sum of numbers with units (`1h30m`); `None` if it is not one.
fn parse_ttl(token: &str) -> Option<u32> {
    if !token.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let mut total: u64 = 0;
    let mut number: u64 = 0;
    let mut pending = false;
    for c in token.chars() {
        if let Some(digit) = c.to_digit(10) {
            number = number.checked_mul(10)?.checked_add(u64::from(digit))?;
            pending = true;
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        if !pending {
            return None;
        }
        total = total.checked_add(number.checked_mul(unit)?)?;
        number = 0;
        pending = false;
    }
    u32::try_from(total.checked_add(number)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    type Records = Vec<(String, String, u32)>;

    fn read(text: &str) -> Result<(Records, BTreeMap<String, u64>), String> {
        let mut reader = ZoneFileReader::new(text.as_bytes(), None);
        let mut out = Vec::new();
        while let Some(r) = reader.next_record().map_err(|e| e.to_string())? {
            out.push((r.name.to_string(), r.addr.to_string(), r.ttl_secs));
        }
        Ok((out, reader.skipped().clone()))
    }

    #[test]
    fn a_typical_zone() {
        let text = "\
$ORIGIN dyn.example.
$TTL 1h
@   IN SOA ns1 hostmaster ( 2024010101 ; serial
            3600 600 1209600 60 )
    IN NS  ns1
ns1       A     192.0.2.53
cam1  60  IN  A  192.0.2.1   ; a camera
          IN  AAAA 2001:db8::1
cam2  IN 2m A 192.0.2.2
WWW.Sub   A 192.0.2.3
abs.dyn.example. 1h30m A 192.0.2.4
txt   TXT \"a ; not a comment\" \"(\"
";
        let (records, skipped) = read(text).expect("valid");
        let expect = [
            ("ns1.dyn.example", "192.0.2.53", 3600),
            ("cam1.dyn.example", "192.0.2.1", 60),
            ("cam1.dyn.example", "2001:db8::1", 3600),
            ("cam2.dyn.example", "192.0.2.2", 120),
            ("www.sub.dyn.example", "192.0.2.3", 3600),
            ("abs.dyn.example", "192.0.2.4", 5400),
        ];
        let expect: Vec<_> = expect
            .iter()
            .map(|(n, a, t)| (n.to_string(), a.to_string(), *t))
            .collect();
        assert_eq!(records, expect);
        assert_eq!(skipped.get("SOA"), Some(&1));
        assert_eq!(skipped.get("NS"), Some(&1));
        assert_eq!(skipped.get("TXT"), Some(&1));
    }

    #[test]
    fn bad_input_names_its_line() {
        let cases = [
            (
                "cam A 192.0.2.1\n",
                "line 1: relative name cam without $ORIGIN",
            ),
            ("$ORIGIN z.\ncam 60 A 300.0.0.1\n", "line 2: bad A data"),
            (
                "$ORIGIN z.\ncam 60 A 192.0.2.1 extra\n",
                "line 2: bad A data",
            ),
            (
                "$ORIGIN z.\ncam 60 AAAA 192.0.2.1\n",
                "line 2: bad AAAA data",
            ),
            (
                "$ORIGIN z.\ncam A 192.0.2.1\n",
                "line 2: no TTL and no $TTL",
            ),
            ("$INCLUDE other.zone\n", "line 1: $INCLUDE is not supported"),
            ("$ORIGIN z.\n@ 60 SOA a b ( 1 2\n", "unclosed parenthesis"),
            ("$ORIGIN z.\ncam 60 CH A 192.0.2.1\n", "line 2: class CH"),
            ("$ORIGIN z.\nca\\.m 60 A 192.0.2.1\n", "line 2: escapes"),
            ("$ORIGIN z.\nca_m 60 A 192.0.2.1\n", "line 2: name ca_m"),
            (
                "$ORIGIN z.\n  60 A 192.0.2.1\n",
                "line 2: no previous owner",
            ),
            ("$ORIGIN z.\ncam )\n", "line 2: unbalanced )"),
            ("$ORIGIN z.\ncam 60\n", "line 2: no record type"),
            ("$TTL x\n", "line 1: bad $TTL"),
        ];
        for (text, expected) in cases {
            let error = read(text).expect_err(text);
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("60"), Some(60));
        assert_eq!(
            parse_ttl("1w2d3h4m5s"),
            Some(604_800 + 2 * 86_400 + 3 * 3600 + 4 * 60 + 5)
        );
        assert_eq!(parse_ttl("1H"), Some(3600));
        assert_eq!(parse_ttl("h"), None);
        assert_eq!(parse_ttl("1x"), None);
        assert_eq!(parse_ttl("99999999999"), None);
        assert_eq!(parse_ttl("IN"), None);
    }
}
