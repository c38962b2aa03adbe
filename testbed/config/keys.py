"""Authentication keys as a person writes them: ``ID:HEX`` (docs/ICD.md section 13)."""

from __future__ import annotations

from protocol.auth import MIN_KEY_LEN

MAX_KEY_ID = 0xFFFF
KEY_FORMAT = f"ID:HEX, a key id 1..{MAX_KEY_ID} and a key of at least {MIN_KEY_LEN} octets"


def parse_key(text: str) -> tuple[int, bytes]:
    """``ID:HEX`` -> (key id, key); raises ValueError naming what is wrong."""
    kid, sep, hexkey = text.strip().partition(":")
    try:
        key_id, key = int(kid, 0), bytes.fromhex(hexkey)
    except ValueError:
        raise ValueError(f"expected {KEY_FORMAT}, e.g. 1:00112233...") from None
    if not sep or not 1 <= key_id <= MAX_KEY_ID or len(key) < MIN_KEY_LEN:
        raise ValueError(f"expected {KEY_FORMAT}, got id {key_id} and {len(key)} octets")
    return key_id, key
