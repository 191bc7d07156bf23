#!/bin/sh
# config.yaml `caBundle` in the staging image (container images take no layers): the base64 PEM in $1, written to
# $2 (default /opt/lisa-ca/bundle.pem, where the zip Lambdas' layer puts it; gpu_stack points AWS_CA_BUNDLE,
# REQUESTS_CA_BUNDLE and SSL_CERT_FILE there). Nothing without a bundle; a bundle without a certificate fails.
set -eu
encoded="${1:-}"
target="${2:-/opt/lisa-ca/bundle.pem}"
[ -n "$encoded" ] || exit 0
mkdir -p "$(dirname "$target")"
printf '%s' "$encoded" | base64 -d > "$target"
grep -q -- "-----BEGIN CERTIFICATE-----" "$target" || { echo "caBundle: no PEM certificate" >&2; exit 1; }
