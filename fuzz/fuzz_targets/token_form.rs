//! The token request body: arbitrary bytes into
//! the strict `application/x-www-form-urlencoded` parser. It must never
//! panic, and what it accepts must obey SPEC §2 and survive a round trip.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stead_server::fuzzing::{parse_token_form, TokenForm};

type Fields<'a> = [(&'static str, Option<&'a str>); 7];

fn fields(f: &TokenForm) -> Fields<'_> {
    [
        ("grant_type", f.grant_type.as_deref()),
        ("client_id", f.client_id.as_deref()),
        ("client_secret", f.client_secret.as_deref()),
        ("scope", f.scope.as_deref()),
        ("subject_username", f.subject_username.as_deref()),
        ("subject_userid", f.subject_userid.as_deref()),
        ("subject_email", f.subject_email.as_deref()),
    ]
}

/// Form-urlencodes `s` by hand (independently of the parser under test):
/// unreserved bytes stay, space becomes `+`, everything else `%XX`.
fn encode(s: &str, out: &mut String) {
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(form) = parse_token_form(data) else { return };
    let known = fields(&form);

    for (name, value) in known {
        let Some(value) = value else { continue };
        assert!(!value.chars().any(char::is_control), "{name} holds a control character: {value:?}");
        assert!(!value.is_empty() || name == "scope", "{name} is empty");
    }

    // A lenient decoder (the `url` crate's) must agree on everything the
    // strict one accepts: each known parameter appears once, with this value.
    for (name, value) in known {
        let mut seen = form_urlencoded::parse(data).filter(|(n, _)| n == name).map(|(_, v)| v.into_owned());
        assert_eq!(seen.next().as_deref(), value, "lenient decoder disagrees on {name}");
        assert_eq!(seen.next(), None, "{name} accepted although given twice");
    }

    // Round trip: encoding the accepted parameters again parses to the same values.
    let mut body = String::new();
    for (name, value) in known {
        let Some(value) = value else { continue };
        if !body.is_empty() {
            body.push('&');
        }
        body.push_str(name);
        body.push('=');
        encode(value, &mut body);
    }
    let again = parse_token_form(body.as_bytes()).unwrap_or_else(|e| panic!("re-encoded body {body:?} refused: {e:?}"));
    assert_eq!(fields(&again), known, "round trip through {body:?}");
});
