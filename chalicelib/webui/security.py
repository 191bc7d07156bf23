"""The browser-hardening headers of the chat UI's responses (its page and its files), built from configuration.

One definition for both hosts of the UI: the local front door sets them on `/`, `/assets/*` and the other files, and
the deployed stack sets them in API Gateway's S3 integration responses. The Content-Security-Policy admits the UI's
own files only (no inline script or style: the Vite build has none, keep it so), `data:` images (the page's icon),
and lets the page call its own origin, the OIDC authority (discovery, token endpoint) and the origin of the
presigned S3 URLs documents are uploaded to. Framing is refused, referrers are never sent (they would carry the
OIDC `code` and `state` of a sign-in redirect), and files are never content-sniffed.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit


def origin(url: str) -> str:
    """`scheme://host[:port]` of an absolute http(s) URL; ValueError naming it otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c in parts.netloc for c in " ;,'\""):
        raise ValueError(f"not an http(s) URL: {url!r}")
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(connect_to: Iterable[str]) -> str:
    """The UI's policy; `connect_to` are URLs (or origins) the page may call besides its own origin."""
    origins = sorted({origin(url) for url in connect_to})
    directives = {
        "default-src": ["'none'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'", *origins],
        "manifest-src": ["'self'"],
        "form-action": ["'self'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


def ui_security_headers(connect_to: Iterable[str | None]) -> dict[str, str]:
    """Every header the UI's responses carry; `connect_to` as for `content_security_policy` (None entries, e.g. an
    unset authority, are skipped)."""
    return {
        "Content-Security-Policy": content_security_policy(url for url in connect_to if url),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
        "Referrer-Policy": "no-referrer",
    }
