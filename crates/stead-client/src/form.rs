//! `application/x-www-form-urlencoded` encoding (RFC 6749 Appendix B).

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Everything but the RFC 3986 unreserved characters is percent-encoded;
/// the space is then written as `+`.
const FORM: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Form-urlencodes one name or value: space becomes `+`, every other byte
/// outside `[A-Za-z0-9-._~]` becomes `%XX` (so `+` is `%2B`, `%` is `%25`).
pub(crate) fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for part in utf8_percent_encode(value, FORM) {
        // The encoder yields literal runs and single `%XX` escapes; a space
        // is always a lone `%20`.
        if part == "%20" {
            out.push('+');
        } else {
            out.push_str(part);
        }
    }
    out
}

/// Encodes name/value pairs as a form body.
pub(crate) fn body(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (name, value) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(&encode(name));
        out.push('=');
        out.push_str(&encode(value));
    }
    out
}

#[cfg(test)]
pub(crate) fn decode(value: &str) -> String {
    let plus_as_space = value.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space).decode_utf8().expect("valid UTF-8").into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_per_rfc_6749_appendix_b() {
        // The example of RFC 6749 Appendix B.
        assert_eq!(encode(" %&+£€"), "+%25%26%2B%C2%A3%E2%82%AC");
        assert_eq!(encode("a-b.c_d~e"), "a-b.c_d~e");
        assert_eq!(encode("a:b=c/d"), "a%3Ab%3Dc%2Fd");
        assert_eq!(encode("%20"), "%2520");
    }

    #[test]
    fn round_trips() {
        for s in ["", "plain", "p:%+ q", "=&;#?/\\\"'", "ünïcødé 🦀", "%20+%2B"] {
            assert_eq!(decode(&encode(s)), s);
        }
    }

    #[test]
    fn builds_a_body() {
        assert_eq!(
            body(&[("grant_type", "password"), ("scope", "a b"), ("x", "1&y=2")]),
            "grant_type=password&scope=a+b&x=1%26y%3D2"
        );
    }
}
