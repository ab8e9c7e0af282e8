//! `stead token`: the client side (SPEC §7). Performs the token request of
//! SPEC §2 against stead or any compatible server and prints the answer.

use anyhow::{bail, Context};
use clap::builder::NonEmptyStringValueParser;
use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use stead_client::{ClientAuth, ClientCredentials, Error, Subject, TokenClient, TokenEndpoint, Verifier};

/// The environment variable read for the secret when no --client-secret-*
/// flag is given.
const SECRET_ENV: &str = "STEAD_CLIENT_SECRET";

/// The exit status of a usage error, as clap uses.
const USAGE: u8 = 2;

// The client secret is deliberately not accepted as a command-line value:
// the command line of a process is visible to other users of the machine.
#[derive(clap::Args, Debug)]
#[command(
    group(clap::ArgGroup::new("subject").required(true).multiple(true).args(["username", "userid", "email"])),
    group(clap::ArgGroup::new("secret").multiple(false).args(["client_secret_env", "client_secret_file", "client_secret_stdin"])),
    after_help = "The client secret is read from --client-secret-env, --client-secret-file or \
        --client-secret-stdin, else from the STEAD_CLIENT_SECRET environment variable. It cannot \
        be given as a command-line value, which other users of the machine could see.\n\n\
        Exit status: 0 when a token was issued, 1 when the server refused the request or \
        could not be reached, 2 on a usage error."
)]
pub struct TokenArgs {
    /// The realm's URL (its issuer), e.g.
    /// https://HOST/system/auth/TENANT-U, or its full token endpoint ending
    /// in /oauth2/token.
    #[arg(long, env = "STEAD_TOKEN_URL", value_name = "URL")]
    url: TokenEndpoint,

    /// The client id.
    #[arg(long, env = "STEAD_CLIENT_ID", value_name = "ID", value_parser = NonEmptyStringValueParser::new())]
    client_id: String,

    /// Read the client secret from the environment variable VAR (its name,
    /// not the secret).
    #[arg(long, value_name = "VAR", value_parser = NonEmptyStringValueParser::new())]
    client_secret_env: Option<String>,

    /// Read the client secret from the file PATH; a trailing newline is
    /// ignored.
    #[arg(long, value_name = "PATH")]
    client_secret_file: Option<PathBuf>,

    /// Read the client secret from standard input; a trailing newline is
    /// ignored.
    #[arg(long)]
    client_secret_stdin: bool,

    /// A scope to request. Repeat the flag, or separate scopes with spaces.
    #[arg(long = "scope", value_name = "SCOPE", required = true)]
    scopes: Vec<String>,

    /// Act for the user with this username (a -U realm).
    #[arg(long, value_name = "USERNAME", value_parser = NonEmptyStringValueParser::new())]
    username: Option<String>,

    /// Act for the user with this id (a -U realm). May be combined with
    /// --username; both must name the same user.
    #[arg(long, value_name = "ID", value_parser = NonEmptyStringValueParser::new())]
    userid: Option<String>,

    /// Act for the customer with this email (a -C realm).
    #[arg(long, value_name = "EMAIL", value_parser = NonEmptyStringValueParser::new(), conflicts_with_all = ["username", "userid"])]
    email: Option<String>,

    /// Authenticate with HTTP Basic (client_secret_basic) instead of sending
    /// the id and secret in the form body (client_secret_post).
    #[arg(long)]
    basic: bool,

    /// Print only the access token.
    #[arg(long, conflicts_with = "decode")]
    raw: bool,

    /// Print the access token's header and claims, decoded but NOT verified
    /// (add --verify to verify them).
    #[arg(long)]
    decode: bool,

    /// Verify the issued token as a resource server would: with the keys the
    /// realm publishes (found through its metadata), its typ, issuer (the
    /// realm's URL), expiry, and AUDIENCE as the audience. Exit 1 when it
    /// does not verify.
    #[arg(long, value_name = "AUDIENCE", value_parser = NonEmptyStringValueParser::new())]
    verify: Option<String>,
}

/// Runs `stead token`: exit 0 with the token printed, 1 when refused or
/// unreachable, 2 on a usage error.
pub async fn run(args: TokenArgs) -> anyhow::Result<ExitCode> {
    if args.scopes.iter().all(|s| s.trim().is_empty()) {
        return Ok(usage_error("--scope needs at least one non-empty scope"));
    }
    let Some(secret) = client_secret(&args)? else {
        return Ok(usage_error(&format!(
            "no client secret: use --client-secret-env, --client-secret-file or --client-secret-stdin, or set {SECRET_ENV}"
        )));
    };
    let subject = match (args.username, args.userid, args.email) {
        (Some(username), Some(userid), None) => Subject::UsernameAndUserId { username, userid },
        (Some(username), None, None) => Subject::Username(username),
        (None, Some(userid), None) => Subject::UserId(userid),
        (None, None, Some(email)) => Subject::Email(email),
        _ => return Ok(usage_error("give --username and/or --userid, or --email")),
    };
    let endpoint = args.url;
    if endpoint.is_insecure() {
        eprintln!("stead: warning: sending the client secret over unencrypted http to {}", endpoint.url());
    }
    let credentials = ClientCredentials::new(args.client_id, secret);
    let auth = if args.basic { ClientAuth::Basic } else { ClientAuth::Body };
    let scopes: Vec<&str> = args.scopes.iter().map(String::as_str).collect();

    let client = TokenClient::new()?;
    let reply = match client.request_token_reply(&endpoint, &credentials, auth, &scopes, &subject).await {
        Ok(reply) => reply,
        Err(e @ Error::OAuth { .. }) => {
            eprintln!("stead: token request refused: {e}");
            return Ok(ExitCode::FAILURE);
        }
        Err(e @ Error::InvalidRequest(_)) => return Ok(usage_error(&e.to_string())),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("token request to {endpoint} failed"))),
    };

    if let Some(audience) = &args.verify {
        let verifier = Verifier::builder(endpoint.issuer()).audience(audience.as_str()).build()?;
        match verifier.verify(&reply.token.access_token).await {
            Ok(token) => eprintln!(
                "stead: token verified: {} acts for {} {} with scopes {:?}, issued by {}",
                token.actor().unwrap_or("(no actor)"),
                token.subject_type_str().unwrap_or("subject"),
                token.subject(),
                token.scopes().join(" "),
                token.issuer(),
            ),
            Err(e) => {
                eprintln!("stead: the issued token does not verify: {e}");
                return Ok(ExitCode::FAILURE);
            }
        }
    }

    let out = if args.raw {
        reply.token.access_token
    } else if args.decode {
        let jwt = stead_client::decode_jwt(&reply.token.access_token)
            .context("the server issued a token, but --decode cannot read it; use --raw to print it")?;
        serde_json::to_string_pretty(&jwt)?
    } else {
        serde_json::to_string_pretty(&reply.body)?
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{out}").and_then(|()| stdout.flush()).context("cannot write to standard output")?;
    Ok(ExitCode::SUCCESS)
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("stead: error: {message}");
    ExitCode::from(USAGE)
}

/// The secret from the source the flags name, else from STEAD_CLIENT_SECRET;
/// `None` when there is no source at all.
fn client_secret(args: &TokenArgs) -> anyhow::Result<Option<String>> {
    let secret = if let Some(var) = &args.client_secret_env {
        match std::env::var(var) {
            Ok(secret) => secret,
            Err(std::env::VarError::NotPresent) => {
                bail!("--client-secret-env: the environment variable {var} is not set")
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                bail!("--client-secret-env: the environment variable {var} is not UTF-8")
            }
        }
    } else if let Some(path) = &args.client_secret_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the client secret from {}", path.display()))?;
        strip_newline(text)
    } else if args.client_secret_stdin {
        strip_newline(read_stdin_secret()?)
    } else {
        match std::env::var(SECRET_ENV) {
            Ok(secret) => secret,
            Err(std::env::VarError::NotPresent) => return Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => {
                bail!("the environment variable {SECRET_ENV} is not UTF-8")
            }
        }
    };
    if secret.is_empty() {
        bail!("the client secret is empty");
    }
    Ok(Some(secret))
}

/// Standard input up to its end, or one line when it is a terminal.
fn read_stdin_secret() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let mut text = String::new();
    if stdin.is_terminal() {
        eprint!("client secret: ");
        std::io::stderr().flush().ok();
        stdin.lock().read_line(&mut text)
    } else {
        stdin.lock().read_to_string(&mut text)
    }
    .context("cannot read the client secret from standard input")?;
    Ok(text)
}

/// Removes one trailing `\n` or `\r\n`, as left by `echo` or an editor.
fn strip_newline(mut text: String) -> String {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        token: TokenArgs,
    }

    fn parse(args: &[&str]) -> Result<TokenArgs, clap::Error> {
        let base = ["stead-token", "--url", "https://h/system/auth/T-U", "--client-id", "c", "--scope", "s"];
        Cli::try_parse_from(base.iter().chain(args)).map(|cli| cli.token)
    }

    #[test]
    fn strips_exactly_one_trailing_newline() {
        assert_eq!(strip_newline("s3cret\n".into()), "s3cret");
        assert_eq!(strip_newline("s3cret\r\n".into()), "s3cret");
        assert_eq!(strip_newline("s3cret\n\n".into()), "s3cret\n");
        assert_eq!(strip_newline("s3cret ".into()), "s3cret ");
    }

    #[test]
    fn subject_flags() {
        assert!(parse(&["--username", "pa"]).is_ok());
        assert!(parse(&["--userid", "1001"]).is_ok());
        assert!(parse(&["--username", "pa", "--userid", "1001"]).is_ok());
        assert!(parse(&["--email", "j@x.io"]).is_ok());
        for bad in [&[][..], &["--email", "j@x.io", "--username", "pa"], &["--username", ""]] {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn secret_sources_are_exclusive_and_never_argv() {
        let err = parse(&["--username", "pa", "--client-secret-env", "X", "--client-secret-stdin"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(parse(&["--username", "pa", "--client-secret", "oops"]).is_err());
        let args = parse(&["--username", "pa", "--client-secret-file", "/run/secret", "--scope", "a b"]).unwrap();
        assert_eq!(args.scopes, ["s", "a b"]);
        assert!(parse(&["--username", "pa", "--raw", "--decode"]).is_err());
        assert_eq!(parse(&["--username", "pa", "--verify", "aud"]).unwrap().verify.as_deref(), Some("aud"));
        assert!(parse(&["--username", "pa", "--verify", ""]).is_err());
    }

    #[test]
    fn reads_the_secret_from_a_file() {
        let path = std::env::temp_dir().join(format!("stead-token-test-{}", std::process::id()));
        std::fs::write(&path, "from-file\n").unwrap();
        let args = parse(&["--username", "pa", "--client-secret-file", path.to_str().unwrap()]).unwrap();
        assert_eq!(client_secret(&args).unwrap().as_deref(), Some("from-file"));
        std::fs::write(&path, "\n").unwrap();
        assert!(client_secret(&args).unwrap_err().to_string().contains("empty"));
        std::fs::remove_file(&path).unwrap();
        assert!(client_secret(&args).is_err());
    }
}
