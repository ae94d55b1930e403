"""Session tokens and the backend API key (spec §13)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_BYTES = 32  # 256 bits, above SES-8's 128


def new_token() -> str:
    """A fresh bearer token from the OS's secure random source (SES-8)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """What the store keeps instead of the token (SES-9).

    A fast hash suffices because tokens carry 256 bits of entropy: there is nothing to
    brute-force, so a slow password hash would only cost every connect.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def api_key_matches(presented: str, configured: str) -> bool:
    """Compare API keys in constant time (API-3)."""
    return hmac.compare_digest(presented.encode("utf-8"), configured.encode("utf-8"))
