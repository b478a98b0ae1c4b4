"""Opaque public ids: what signed links carry instead of row ids or contacts."""

import secrets


def new_public_id() -> str:
    # 96 random bits: unguessable, and short enough to keep SMS links short.
    return secrets.token_urlsafe(12)
