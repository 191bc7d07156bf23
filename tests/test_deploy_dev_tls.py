"""scripts/dev_tls.py: the certificate it writes serves real TLS on loopback, and a client trusting it connects."""

from __future__ import annotations

import http.server
import ssl
import stat
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from dev_tls import create_certificate  # noqa: E402


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello over tls")

    def log_message(self, *args: object) -> None:
        pass


def test_certificate_serves_tls_that_a_trusting_client_accepts(tmp_path: Path) -> None:
    cert, key = create_certificate("lisa-dev.example.com", tmp_path, extra_names=("localhost", "127.0.0.1"))
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    server = http.server.HTTPServer(("127.0.0.1", 0), _Hello)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"https://127.0.0.1:{server.server_address[1]}/"
        assert httpx.get(url, verify=ssl.create_default_context(cafile=str(cert))).text == "hello over tls"
        with pytest.raises(httpx.ConnectError):
            httpx.get(url)  # not trusted by default: self-signed
    finally:
        server.shutdown()
        server.server_close()


def test_cli_writes_files_and_prints_the_config_keys(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "dev_tls.py"), "--domain", "dev.lisa.test", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert (tmp_path / "cert.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert "sslCertIamArn" in result.stdout
    assert "aws acm import-certificate" in result.stdout


def test_bad_input_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="host name"):
        create_certificate("not a domain", tmp_path)
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "dev_tls.py"),
            "--domain",
            "x.test",
            "--days",
            "0",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "days must be between" in result.stderr
