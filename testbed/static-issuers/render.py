#!/usr/bin/env python3
"""Renders the conformance test's static issuers (testbed/conformance/issuers.yaml).

    render.py ISSUERS_YAML PKI_DIR BASE_URL CA_FILE OUT_DIR > jwt-entries.yaml

For each issuer NAME: OUT_DIR/NAME/.well-known/openid-configuration (or, with
`discovery: elsewhere`, OUT_DIR/NAME-discovery/openid-configuration, named by discoveryURL) and
OUT_DIR/NAME/keys (a JWKS with the public halves of PKI_DIR/static-NAME-rsa.key and
static-NAME-ec.key, kids NAME-rsa and NAME-ec). On stdout: the issuers' `jwt` entries, as YAML
list items for the kube-apiserver's AuthenticationConfiguration, with issuer.url,
issuer.discoveryURL and issuer.certificateAuthority filled in.
"""
import base64
import json
import os
import subprocess
import sys

import yaml


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def rsa_jwk(key: str, kid: str) -> dict:
    out = subprocess.run(["openssl", "rsa", "-in", key, "-noout", "-modulus"],
                         check=True, capture_output=True, text=True).stdout
    modulus = bytes.fromhex(out.strip().split("=", 1)[1])
    return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
            "n": b64url(modulus), "e": "AQAB"}


def ec_jwk(key: str, kid: str) -> dict:
    der = subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    point = der[-65:]  # uncompressed P-256 point: 0x04 || X || Y
    if point[0] != 4:
        raise SystemExit(f"{key}: not an uncompressed P-256 public key")
    return {"kty": "EC", "use": "sig", "alg": "ES256", "kid": kid, "crv": "P-256",
            "x": b64url(point[1:33]), "y": b64url(point[33:65])}


def write_json(path: str, value: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(value, f, indent=1)
    os.replace(path + ".tmp", path)


def main() -> None:
    issuers_yaml, pki, base, ca_file, out = sys.argv[1:6]
    with open(issuers_yaml) as f:
        issuers = yaml.safe_load(f)["issuers"]
    with open(ca_file) as f:
        ca = f.read()
    entries = []
    for issuer in issuers:
        name = issuer["name"]
        url = f"{base}/{name}"
        keys = {"keys": [rsa_jwk(f"{pki}/static-{name}-rsa.key", f"{name}-rsa"),
                         ec_jwk(f"{pki}/static-{name}-ec.key", f"{name}-ec")]}
        write_json(f"{out}/{name}/keys", keys)
        discovery = {
            "issuer": url,
            "jwks_uri": f"{url}/keys",
            "authorization_endpoint": f"{url}/authorize",
            "token_endpoint": f"{url}/token",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        }
        jwt = issuer["jwt"]
        fields = {"url": url}
        if issuer.get("discovery") == "elsewhere":
            fields["discoveryURL"] = f"{base}/{name}-discovery/openid-configuration"
            write_json(f"{out}/{name}-discovery/openid-configuration", discovery)
        else:
            write_json(f"{out}/{name}/.well-known/openid-configuration", discovery)
        fields.update(jwt["issuer"])
        fields["certificateAuthority"] = ca
        jwt["issuer"] = fields
        entries.append(jwt)
    # Multi-line strings (the CA) as literal blocks.
    yaml.SafeDumper.add_representer(
        str, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", v, style="|" if "\n" in v else None))
    # One YAML list item per issuer, indented to sit under the file's `jwt:`.
    text = yaml.safe_dump(entries, sort_keys=False, allow_unicode=True, width=1000)
    sys.stdout.write("".join("  " + line if line.strip() else line
                             for line in text.splitlines(keepends=True)))


if __name__ == "__main__":
    main()
