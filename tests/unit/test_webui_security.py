"""The UI's hardening headers as configuration builds them (the front door and the deployed stack use the same),
the origins presigned uploads go to, and the config key for extra sign-in origins."""

from __future__ import annotations

import pytest

from chalicelib import aws
from chalicelib.config import ConfigError, parse_config
from chalicelib.webui.security import content_security_policy, ui_security_headers


def test_the_policy_admits_only_the_uis_files_data_images_and_the_origins_it_calls() -> None:
    policy = content_security_policy(
        ["https://idp.example.com/realms/lisa/", "http://127.0.0.1:5000/lisa-rag-docs/a.txt?X-Amz=1"]
    )
    directives = dict(d.split(" ", 1) for d in policy.split("; "))
    assert directives == {
        "default-src": "'none'",
        "script-src": "'self'",
        "style-src": "'self'",
        "img-src": "'self' data:",
        "font-src": "'self'",
        "connect-src": "'self' http://127.0.0.1:5000 https://idp.example.com",  # origins only, each once
        "manifest-src": "'self'",
        "form-action": "'self'",
        "base-uri": "'none'",
        "frame-ancestors": "'none'",
    }


def test_the_headers_skip_an_unset_authority_and_refuse_what_is_no_origin() -> None:
    headers = ui_security_headers([None, "https://lisa-rag-docs.s3.amazonaws.com"])
    assert "connect-src 'self' https://lisa-rag-docs.s3.amazonaws.com;" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    for bad in ("idp.example.com", "javascript:alert(1)", "https://a.example.com;script-src *", "https://a b"):
        with pytest.raises(ValueError, match="not an http"):
            content_security_policy([bad])


def test_presigned_uploads_go_to_the_configured_endpoint_or_the_regions_s3(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LISA_AWS_ENDPOINT_URL", "http://127.0.0.1:5999")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5998")  # never used for a deployment's region
    aws.reset()
    try:
        assert aws.presigned_put_origin("lisa-rag-docs") == "http://127.0.0.1:5999"
        assert aws.presigned_put_origin("acme-docs", region="us-east-1") == "https://acme-docs.s3.amazonaws.com"
        china = aws.presigned_put_origin("acme-docs", region="cn-north-1")
        assert china == "https://acme-docs.s3.cn-north-1.amazonaws.com.cn"
    finally:
        monkeypatch.undo()
        aws.reset()


def test_connect_origins_must_be_https_origins() -> None:
    base = {"deploymentName": "lisa", "s3BucketModels": "lisa-models"}
    cognito = "https://acme.auth.us-east-1.amazoncognito.com"
    config = parse_config({**base, "authConfig": {"connectOrigins": [f"{cognito}/"]}})
    assert config.auth_config.connect_origins == [cognito]
    for bad, reason in (("http://idp.example.com", "https://"), (f"{cognito}/oauth2/token", "no path")):
        with pytest.raises(ConfigError, match=reason):
            parse_config({**base, "authConfig": {"connectOrigins": [bad]}})
