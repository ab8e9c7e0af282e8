#!/usr/bin/env python3
"""Interoperability with a mainstream OAuth client we did not write: Authlib.

Driven by tests/it/sdk.rs against a running stead. It
  1. reads the realm's metadata (RFC 8414) and takes its token_endpoint,
  2. obtains tokens with Authlib's OAuth2Session.fetch_token (password grant,
     subject_username as an extra parameter) with client_secret_post and
     client_secret_basic,
  3. checks that a refusal surfaces as Authlib's OAuthError with the OAuth code,
  4. verifies each token, and the token the Rust SDK obtained (SDK_TOKEN),
     with an independent JOSE implementation (authlib.jose, else joserfc)
     against the realm's JWKS,
and prints one JSON object with the token responses and the verified claims.

Input (environment): ISSUER, AUDIENCE, CLIENT_ID, CLIENT_SECRET, SCOPE,
USERNAME, and optionally POST_CLIENT_ID/POST_CLIENT_SECRET/POST_SCOPE (a
client with awkward characters, used with client_secret_post: Authlib sends
client_secret_basic credentials without the form-encoding RFC 6749 §2.3.1
asks for, so such a client only works with client_secret_post there) and
SDK_TOKEN.
Needs: python3 -m pip install authlib requests
"""

import json
import os
import sys
import warnings

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.integrations.base_client.errors import OAuthError

warnings.simplefilter("ignore")

ALGORITHMS = ["ES256", "RS256", "EdDSA"]


def env(name, default=None):
    value = os.environ.get(name, default)
    if value is None:
        sys.exit(f"authlib_interop: {name} is not set")
    return value


def metadata(issuer):
    path = issuer.split("://", 1)[1].split("/", 1)[1]
    origin = issuer[: len(issuer) - len(path) - 1]
    url = f"{origin}/.well-known/oauth-authorization-server/{path}"
    response = requests.get(url, timeout=10)
    response.raise_for_status()
    doc = response.json()
    if doc["issuer"] != issuer:
        sys.exit(f"authlib_interop: metadata names issuer {doc['issuer']!r}, not {issuer!r}")
    return doc


def fetch(token_endpoint, client_id, client_secret, method, scope, username):
    session = OAuth2Session(
        client_id, client_secret, token_endpoint_auth_method=method, scope=scope
    )
    token = session.fetch_token(
        token_endpoint, grant_type="password", subject_username=username
    )
    return dict(token)


def verifier(jwks, issuer, audience):
    """Returns verify(token) -> (header, claims), with an independent JOSE library."""
    try:
        from authlib.jose import JsonWebKey, JsonWebToken

        key_set = JsonWebKey.import_key_set(jwks)
        jwt = JsonWebToken(ALGORITHMS)
        options = {
            "iss": {"essential": True, "value": issuer},
            "aud": {"essential": True, "value": audience},
            "sub": {"essential": True},
            "exp": {"essential": True},
        }

        def verify(token):
            claims = jwt.decode(token, key_set, claims_options=options)
            claims.validate(leeway=30)
            return dict(claims.header), dict(claims)

        return "authlib.jose", verify
    except ImportError:
        from joserfc import jwt
        from joserfc.jwk import KeySet

        key_set = KeySet.import_key_set(jwks)
        registry = jwt.JWTClaimsRegistry(
            leeway=30,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            sub={"essential": True},
            exp={"essential": True},
        )

        def verify(token):
            decoded = jwt.decode(token, key_set, algorithms=ALGORITHMS)
            registry.validate(decoded.claims)
            return dict(decoded.header), dict(decoded.claims)

        return "joserfc", verify


def main():
    issuer = env("ISSUER")
    audience = env("AUDIENCE")
    client_id = env("CLIENT_ID")
    client_secret = env("CLIENT_SECRET")
    scope = env("SCOPE")
    username = env("USERNAME")

    doc = metadata(issuer)
    token_endpoint = doc["token_endpoint"]
    out = {"token_endpoint": token_endpoint, "tokens": {}, "verified": {}}

    out["tokens"]["client_secret_post"] = fetch(
        token_endpoint, client_id, client_secret, "client_secret_post", scope, username
    )
    out["tokens"]["client_secret_basic"] = fetch(
        token_endpoint, client_id, client_secret, "client_secret_basic", scope, username
    )
    if os.environ.get("POST_CLIENT_ID"):
        out["tokens"]["awkward_client_secret_post"] = fetch(
            token_endpoint,
            env("POST_CLIENT_ID"),
            env("POST_CLIENT_SECRET"),
            "client_secret_post",
            env("POST_SCOPE", scope),
            username,
        )

    try:
        fetch(token_endpoint, client_id, client_secret + "-wrong", "client_secret_post", scope, username)
        sys.exit("authlib_interop: a wrong secret got a token")
    except OAuthError as e:
        out["wrong_secret_error"] = e.error

    jwks = requests.get(doc["jwks_uri"], timeout=10).json()
    library, verify = verifier(jwks, issuer, audience)
    out["verifier"] = library
    to_verify = {name: t["access_token"] for name, t in out["tokens"].items()}
    if os.environ.get("SDK_TOKEN"):
        to_verify["sdk"] = os.environ["SDK_TOKEN"]
    for name, token in to_verify.items():
        header, claims = verify(token)
        if header.get("typ", "").lower() not in ("at+jwt", "application/at+jwt"):
            sys.exit(f"authlib_interop: {name}: typ is {header.get('typ')!r}")
        out["verified"][name] = claims

    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
