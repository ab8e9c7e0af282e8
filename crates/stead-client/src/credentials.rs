//! Who asks (the client), how it authenticates, and for whom (the subject).

use crate::form;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::fmt;

/// A confidential client's id and secret. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    client_id: String,
    secret: String,
}

impl ClientCredentials {
    /// Credentials of the client `client_id`.
    pub fn new(client_id: impl Into<String>, secret: impl Into<String>) -> Self {
        ClientCredentials { client_id: client_id.into(), secret: secret.into() }
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The secret, for sending it; do not log it.
    pub fn expose_secret(&self) -> &str {
        &self.secret
    }

    /// The value of an `Authorization` header for HTTP Basic client
    /// authentication (RFC 6749 §2.3.1): `Basic base64(enc(id) ":" enc(secret))`
    /// where `enc` is `application/x-www-form-urlencoded`.
    pub fn basic_authorization(&self) -> String {
        let pair = format!("{}:{}", form::encode(&self.client_id), form::encode(&self.secret));
        format!("Basic {}", STANDARD.encode(pair))
    }
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials").field("client_id", &self.client_id).field("secret", &"[redacted]").finish()
    }
}

/// How the client authenticates at the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ClientAuth {
    /// `client_secret_post`: `client_id` and `client_secret` in the form
    /// body, as in the vendor's documentation.
    #[default]
    Body,
    /// `client_secret_basic`: an HTTP Basic `Authorization` header.
    Basic,
}

impl ClientAuth {
    /// The RFC 8414 / RFC 7591 name of the method.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuth::Body => "client_secret_post",
            ClientAuth::Basic => "client_secret_basic",
        }
    }
}

/// The user or customer the token acts for (SPEC §2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A user of the `-U` realm by username (`subject_username`).
    Username(String),
    /// A user of the `-U` realm by id (`subject_userid`).
    UserId(String),
    /// A user of the `-U` realm by username and id, which must name the
    /// same user.
    UsernameAndUserId {
        /// `subject_username`.
        username: String,
        /// `subject_userid`.
        userid: String,
    },
    /// A customer of the `-C` realm by email (`subject_email`).
    Email(String),
}

impl Subject {
    /// The form parameters naming this subject.
    pub fn params(&self) -> Vec<(&'static str, &str)> {
        match self {
            Subject::Username(u) => vec![("subject_username", u)],
            Subject::UserId(id) => vec![("subject_userid", id)],
            Subject::UsernameAndUserId { username, userid } => {
                vec![("subject_username", username), ("subject_userid", userid)]
            }
            Subject::Email(e) => vec![("subject_email", e)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Undoes `basic_authorization` the way a server does (RFC 6749 §2.3.1).
    fn decode_basic(header: &str) -> (String, String) {
        let b64 = header.strip_prefix("Basic ").unwrap();
        let pair = String::from_utf8(STANDARD.decode(b64).unwrap()).unwrap();
        let (id, secret) = pair.split_once(':').unwrap();
        (form::decode(id), form::decode(secret))
    }

    #[test]
    fn basic_form_encodes_before_base64() {
        let creds = ClientCredentials::new("a b", "p:%+ q");
        let header = creds.basic_authorization();
        let b64 = header.strip_prefix("Basic ").unwrap();
        assert_eq!(STANDARD.decode(b64).unwrap(), b"a+b:p%3A%25%2B+q");
        assert_eq!(decode_basic(&header), ("a b".to_owned(), "p:%+ q".to_owned()));
    }

    #[test]
    fn basic_round_trips_awkward_secrets() {
        for (id, secret) in [
            ("7121f585-e403-4531-9a38-1826ebc7e7d8", "use-a-long-random-secret-of-32+-characters"),
            ("id:with:colons", "::::"),
            ("ünï", "s3cr€t with spaces and %41 and +"),
            ("x", ""),
            ("plain", "a/b?c=d&e#f\"g'h\\i"),
        ] {
            let header = ClientCredentials::new(id, secret).basic_authorization();
            assert!(header.is_ascii());
            assert_eq!(decode_basic(&header), (id.to_owned(), secret.to_owned()), "{id} {secret}");
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let creds = ClientCredentials::new("the-id", "hunter2-very-secret");
        let shown = format!("{creds:?} {creds:#?}");
        assert!(shown.contains("the-id"));
        assert!(!shown.contains("hunter2"));
    }

    #[test]
    fn subject_parameters() {
        assert_eq!(Subject::Username("pa".into()).params(), [("subject_username", "pa")]);
        assert_eq!(Subject::UserId("1001".into()).params(), [("subject_userid", "1001")]);
        assert_eq!(Subject::Email("j@x.io".into()).params(), [("subject_email", "j@x.io")]);
        assert_eq!(
            Subject::UsernameAndUserId { username: "pa".into(), userid: "1001".into() }.params(),
            [("subject_username", "pa"), ("subject_userid", "1001")]
        );
    }
}
