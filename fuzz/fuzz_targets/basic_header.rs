//! HTTP Basic client authentication (RFC 6749 §2.3.1) and its combination
//! with body credentials.
//!
//! Input: line 1 is the raw `Authorization` header value; lines 2 and 3,
//! when present, are the body's `client_id` and `client_secret`. Line 1 is
//! also sent base64-encoded as `Basic <line 1>`, so the fuzzer reaches the
//! decoding of the credentials without having to learn base64.

#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use stead_core::Credentials;
use stead_server::fuzzing::{combine_credentials, parse_authorization};

/// Form-urlencodes `s` by hand: unreserved bytes stay, the rest is `%XX`.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The `percent-encoding` crate's decoding of one form component: `+` is
/// a space, malformed escapes stay as they are, invalid UTF-8 is replaced.
fn lenient(raw: &[u8]) -> String {
    let plus: Vec<u8> = raw.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect();
    percent_encoding::percent_decode(&plus).decode_utf8_lossy().into_owned()
}

fn check_basic(header: &[u8], creds: &Option<Credentials>) {
    match creds {
        None | Some(Credentials::MalformedBasic) => {}
        Some(Credentials::Basic { client_id, secret }) => {
            assert!(header.len() >= 5 && header[..5].eq_ignore_ascii_case(b"basic"), "Basic from {header:?}");
            assert!(!client_id.is_empty(), "empty client_id accepted");
            assert!(!client_id.chars().any(char::is_control), "control character in client_id {client_id:?}");
            // Round trip: encode the credentials again, they read back the same.
            let again =
                format!("Basic {}", STANDARD.encode(format!("{}:{}", encode(client_id), encode(secret.expose()))));
            match parse_authorization(again.as_bytes()) {
                Some(Some(Credentials::Basic { client_id: id2, secret: s2 })) => {
                    assert_eq!(&id2, client_id, "round trip of client_id");
                    assert_eq!(s2.expose(), secret.expose(), "round trip of the secret");
                }
                other => panic!("re-encoded credentials {again:?} read as {other:?}"),
            }
        }
        Some(other) => panic!("the Authorization header alone gave {other:?}"),
    }
}

fn check_combine(basic: Option<Credentials>, body_id: Option<String>, body_secret: Option<String>) {
    let out = combine_credentials(basic.clone(), body_id.clone(), body_secret.clone());
    match &out {
        Credentials::None => assert!(basic.is_none() && body_id.is_none(), "credentials dropped"),
        Credentials::Basic { client_id, .. } => {
            assert_eq!(Some(&out), basic.as_ref(), "Basic credentials altered");
            assert!(body_secret.is_none(), "body secret ignored next to Basic");
            assert!(body_id.as_ref().is_none_or(|id| id == client_id), "differing body client_id ignored");
        }
        Credentials::Body { client_id, secret } => {
            assert!(basic.is_none(), "Basic credentials ignored");
            assert_eq!(Some(client_id), body_id.as_ref());
            assert_eq!(secret.as_ref().map(|s| s.expose()), body_secret.as_deref());
        }
        Credentials::MalformedBasic => {
            assert_eq!(basic, Some(Credentials::MalformedBasic));
            assert!(body_id.is_none() && body_secret.is_none(), "body credentials ignored");
        }
        Credentials::Both => {
            assert!(basic.is_some() && (body_id.is_some() || body_secret.is_some()), "Both without both");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut lines = data.splitn(3, |&b| b == b'\n');
    let header = lines.next().unwrap_or_default();
    let body_id = lines.next().map(|b| String::from_utf8_lossy(b).into_owned());
    let body_secret = lines.next().map(|b| String::from_utf8_lossy(b).into_owned());

    // The raw header value, when it is one HTTP allows.
    if let Some(creds) = parse_authorization(header) {
        check_basic(header, &creds);
        check_combine(creds, body_id.clone(), body_secret.clone());
    }

    // The same bytes as the base64 payload of a Basic header.
    let wrapped = format!("Basic {}", STANDARD.encode(header));
    let creds = parse_authorization(wrapped.as_bytes()).expect("base64 is a valid header value");
    match &creds {
        Some(Credentials::MalformedBasic) => {}
        Some(Credentials::Basic { client_id, secret }) => {
            // A lenient decoder agrees on what the strict one accepted.
            let colon = header.iter().position(|&b| b == b':').expect("Basic credentials without ':'");
            assert_eq!(&lenient(&header[..colon]), client_id, "lenient decoder disagrees on client_id");
            assert_eq!(lenient(&header[colon + 1..]), secret.expose(), "lenient decoder disagrees on the secret");
        }
        other => panic!("a Basic header gave {other:?}"),
    }
    check_basic(wrapped.as_bytes(), &creds);
    check_combine(creds, body_id, body_secret);
});
