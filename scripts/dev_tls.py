"""A self-signed TLS certificate for a dev stage's custom domain (never for prod: use a real ACM certificate).

    python scripts/dev_tls.py --domain lisa-dev.example.com --out .lisa/tls

writes `<out>/cert.pem` and `<out>/key.pem` (the key readable by its owner only), then prints how to import the
certificate into ACM and which config.yaml keys take its ARN (`restApiConfig.domainName`, `.sslCertIamArn`).
Clients trust it with `pytest tests/integration --verify <out>/cert.pem` or `curl --cacert <out>/cert.pem`.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def create_certificate(
    domain: str, out: Path, *, days: int = 365, extra_names: tuple[str, ...] = ()
) -> tuple[Path, Path]:
    """Write a self-signed P-256 certificate for `domain` (+ `extra_names`, IPs allowed) and its key; return paths."""
    if not domain or any(c.isspace() for c in domain):
        raise ValueError(f"domain must be a host name, got {domain!r}")
    if not 1 <= days <= 825:
        raise ValueError("days must be between 1 and 825")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, domain), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "LISA dev")]
    )
    alt_names: list[x509.GeneralName] = []
    for value in (domain, *extra_names):
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(value)))
        except ValueError:
            alt_names.append(x509.DNSName(value))
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    out.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = out / "cert.pem", out / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key_bytes)
    os.chmod(key_path, 0o600)
    return cert_path, key_path


def main(argv: list[str] | None = None) -> None:
    """Write the dev stage's self-signed certificate and key (see docs/deploy.md)."""
    parser = argparse.ArgumentParser(description="Create a self-signed certificate for a LISA dev stage.")
    parser.add_argument("--domain", required=True, help="the API's custom domain, e.g. lisa-dev.example.com")
    parser.add_argument("--out", default=".lisa/tls", type=Path)
    parser.add_argument("--days", default=365, type=int)
    parser.add_argument("--also", action="append", default=[], help="another DNS name or IP for the certificate")
    args = parser.parse_args(argv)
    try:
        cert, key = create_certificate(args.domain, args.out, days=args.days, extra_names=tuple(args.also))
    except ValueError as error:
        parser.error(str(error))
    print(f"wrote {cert} and {key}")
    print("import it into ACM (same region as the API):")
    print(f"  aws acm import-certificate --certificate fileb://{cert} --private-key fileb://{key}")
    print("then in config.yaml:")
    print(f"  restApiConfig:\n    domainName: {args.domain}\n    sslCertIamArn: <the CertificateArn printed by ACM>")


if __name__ == "__main__":
    main()
