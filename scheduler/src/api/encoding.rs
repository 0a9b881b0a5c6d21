//! The HTTP decisions around a rendered list body, as pure functions:
//! which content coding to send for an `Accept-Encoding` (RFC 9110
//! §12.5.3, with q-values), the entity tag of each representation, and
//! whether an `If-None-Match` names it (§13.1.2, answered with 304).
//!
//! Only `gzip` besides `identity`: every client of Marathon's API that
//! compresses at all (Go's `net/http`, Python's `requests`, curl, browsers)
//! takes gzip, and flate2's pure-Rust backend is already here. `br` and
//! `zstd` are left out: the pure-Rust brotli port is a large crate that is
//! slow to build and to compress with, and the pure-Rust zstd encoders are
//! young with only their fastest levels, which on JSON compress no better
//! than gzip does.

/// A content coding Baton can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    /// The body as rendered.
    Identity,
    /// The body gzipped (RFC 1952).
    Gzip,
}

impl Coding {
    /// Its `Content-Encoding` value; `None` for identity, which is sent
    /// without one.
    pub fn content_encoding(self) -> Option<&'static str> {
        match self {
            Coding::Identity => None,
            Coding::Gzip => Some("gzip"),
        }
    }
}

/// Thousandths: q-values have at most three decimals (RFC 9110 §12.4.2).
type Quality = u16;

/// A q-value (`0`, `0.5`, `1.000`) in thousandths; `None` when malformed.
fn parse_quality(text: &str) -> Option<Quality> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = fraction
        .bytes()
        .zip([100, 10, 1])
        .fold(0u16, |sum, (d, unit)| sum + u16::from(d - b'0') * unit);
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The coding to answer with, given the request's `Accept-Encoding` field
/// values (each header line one item of `values`).
///
/// gzip when the client gives it a q-value above 0 and — if it rates
/// identity too, or `*` — no lower than identity's (a tie goes to the
/// smaller body); identity otherwise. With no
/// `Accept-Encoding` at all, identity: a client that did not ask may not
/// decode. Identity is acceptable unless `identity;q=0` (or `*;q=0` without
/// an `identity` entry) excludes it — and even then it is what is sent when
/// gzip is refused too, rather than a 406 that no Marathon client expects.
/// Malformed entries are ignored; `x-gzip` is gzip (RFC 9110 §8.4.1.3).
pub fn negotiate<'a>(values: impl IntoIterator<Item = &'a str>) -> Coding {
    let mut gzip: Option<Quality> = None;
    let mut identity: Option<Quality> = None;
    let mut any: Option<Quality> = None;
    for value in values {
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            if coding.is_empty() {
                continue;
            }
            let mut quality = Some(1000);
            for parameter in parts {
                if let Some((name, q)) = parameter.split_once('=')
                    && name.trim().eq_ignore_ascii_case("q")
                {
                    quality = parse_quality(q);
                }
            }
            let Some(quality) = quality else {
                continue;
            };
            let slot =
                if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                    &mut gzip
                } else if coding.eq_ignore_ascii_case("identity") {
                    &mut identity
                } else if coding == "*" {
                    &mut any
                } else {
                    continue;
                };
            // Listed twice: the more generous entry counts.
            *slot = Some(slot.map_or(quality, |q| q.max(quality)));
        }
    }
    let gzip = gzip.or(any).unwrap_or(0);
    // Identity competes only where the client rated it (or `*`).
    if gzip > 0 && identity.or(any).is_none_or(|identity| gzip >= identity) {
        Coding::Gzip
    } else {
        Coding::Identity
    }
}

/// The strong entity tag of one representation of a body whose content
/// digest is `digest` (hex): `"<digest>"` as rendered, `"<digest>-gzip"`
/// gzipped. Each representation has its own, as a cache that stores both
/// must tell them apart.
pub fn etag(digest: &str, coding: Coding) -> String {
    match coding {
        Coding::Identity => format!("\"{digest}\""),
        Coding::Gzip => format!("\"{digest}-gzip\""),
    }
}

/// Whether `If-None-Match` field values name `etag` (a quoted entity tag
/// as [`etag`] writes it), so that the answer is 304. `*` names any
/// current representation. The comparison is weak, as RFC 9110 requires
/// for this field: `W/"x"` names `"x"`. A malformed list names nothing
/// from the point where it goes wrong.
pub fn none_match<'a>(values: impl IntoIterator<Item = &'a [u8]>, etag: &str) -> bool {
    let wanted = etag.as_bytes();
    values.into_iter().any(|value| {
        let mut rest = value;
        loop {
            while let [b' ' | b'\t' | b',', tail @ ..] = rest {
                rest = tail;
            }
            if rest.is_empty() {
                return false;
            }
            if let [b'*', ..] = rest {
                return true;
            }
            if let [b'W', b'/', tail @ ..] = rest {
                rest = tail;
            }
            let [b'"', tail @ ..] = rest else {
                return false;
            };
            let Some(end) = tail.iter().position(|b| *b == b'"') else {
                return false;
            };
            // `tail[..end]` is the opaque tag without quotes.
            if wanted.len() == end + 2 && wanted[1..=end] == tail[..end] {
                return true;
            }
            rest = &tail[end + 1..];
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_values_are_read_to_three_decimals() {
        assert_eq!(parse_quality("1"), Some(1000));
        assert_eq!(parse_quality("1.000"), Some(1000));
        assert_eq!(parse_quality("0"), Some(0));
        assert_eq!(parse_quality("0.5"), Some(500));
        assert_eq!(parse_quality(" 0.125 "), Some(125));
        assert_eq!(parse_quality("0.0001"), None);
        assert_eq!(parse_quality("1.5"), None);
        assert_eq!(parse_quality("2"), None);
        assert_eq!(parse_quality("x"), None);
    }

    #[test]
    fn gzip_is_sent_only_to_clients_that_take_it() {
        let n = |values: &[&str]| negotiate(values.iter().copied());
        assert_eq!(n(&[]), Coding::Identity, "no header: as rendered");
        assert_eq!(
            n(&[""]),
            Coding::Identity,
            "an empty header refuses codings"
        );
        assert_eq!(n(&["gzip"]), Coding::Gzip);
        assert_eq!(n(&["GZip"]), Coding::Gzip, "codings are case-insensitive");
        assert_eq!(n(&["x-gzip"]), Coding::Gzip);
        assert_eq!(n(&["gzip, deflate, br"]), Coding::Gzip, "curl --compressed");
        assert_eq!(n(&["deflate", "gzip;q=0.8"]), Coding::Gzip, "several lines");
        assert_eq!(n(&["br, zstd"]), Coding::Identity, "nothing Baton has");
        assert_eq!(n(&["gzip;q=0"]), Coding::Identity);
        assert_eq!(
            n(&["gzip;q=0.5, identity"]),
            Coding::Identity,
            "identity preferred"
        );
        assert_eq!(
            n(&["gzip;q=0.5, identity;q=0.5"]),
            Coding::Gzip,
            "a tie: smaller"
        );
        assert_eq!(n(&["*"]), Coding::Gzip, "any coding");
        assert_eq!(n(&["*;q=0.1, identity"]), Coding::Identity);
        assert_eq!(
            n(&["*;q=0"]),
            Coding::Identity,
            "nothing acceptable: identity, not 406"
        );
        assert_eq!(n(&["identity;q=0"]), Coding::Identity);
        assert_eq!(n(&["identity;q=0, gzip;q=0.1"]), Coding::Gzip);
        assert_eq!(
            n(&["gzip;q=nonsense"]),
            Coding::Identity,
            "malformed: ignored"
        );
        assert_eq!(n(&["gzip ; Q=0.9"]), Coding::Gzip);
        assert_eq!(
            n(&["gzip;q=0, gzip;q=1"]),
            Coding::Gzip,
            "the generous entry"
        );
    }

    #[test]
    fn each_representation_has_its_own_strong_tag() {
        assert_eq!(etag("ab12", Coding::Identity), "\"ab12\"");
        assert_eq!(etag("ab12", Coding::Gzip), "\"ab12-gzip\"");
        assert_eq!(Coding::Gzip.content_encoding(), Some("gzip"));
        assert_eq!(Coding::Identity.content_encoding(), None);
    }

    #[test]
    fn if_none_match_names_a_tag_weakly_or_with_a_star() {
        let m = |values: &[&str], tag: &str| none_match(values.iter().map(|v| v.as_bytes()), tag);
        assert!(m(&["\"ab\""], "\"ab\""));
        assert!(m(&["W/\"ab\""], "\"ab\""), "weak comparison");
        assert!(m(&["\"x\", \"ab\""], "\"ab\""));
        assert!(m(&["\"x\"", "\"ab\""], "\"ab\""), "several lines");
        assert!(m(&["*"], "\"ab\""));
        assert!(!m(&["\"ab-gzip\""], "\"ab\""), "another representation");
        assert!(!m(&["\"ab\""], "\"ab-gzip\""));
        assert!(!m(&["\"a\""], "\"ab\""));
        assert!(!m(&["ab"], "\"ab\""), "unquoted: malformed");
        assert!(!m(&["\"ab"], "\"ab\""), "unterminated");
        assert!(!m(&[], "\"ab\""));
        assert!(m(&["\"a,b\", \"ab\""], "\"ab\""), "commas inside a tag");
    }
}
