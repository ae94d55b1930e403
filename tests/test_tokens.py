"""Tokens and the API key (SES-8, SES-9, API-3)."""

from __future__ import annotations

from reference.core.tokens import api_key_matches, hash_token, new_token


def test_tokens_are_long_random_and_stored_only_hashed() -> None:
    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    token = tokens.pop()
    assert len(token) >= 43  # 32 bytes of randomness, base64url
    digest = hash_token(token)
    assert digest != token and token not in digest
    assert len(digest) == 64 and digest == hash_token(token)


def test_api_key_comparison() -> None:
    assert api_key_matches("k3y", "k3y")
    assert not api_key_matches("k3y", "k3y ")
    assert not api_key_matches("", "k3y")
    assert api_key_matches("ключ", "ключ")  # non-ASCII keys do not crash compare_digest
