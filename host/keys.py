"""Authentication keys as a person types them: ``ID:HEX`` (docs/ICD.md section 13)."""

from __future__ import annotations

from protocol.auth import MIN_KEY_LEN


def parse_key(text: str) -> tuple[int, bytes]:
    """``ID:HEX`` -> (key id, key); raises ValueError naming what is wrong."""
    kid, sep, hexkey = text.partition(":")
    try:
        key_id, key = int(kid, 0), bytes.fromhex(hexkey)
    except ValueError:
        raise ValueError(f"key {text!r}: expected ID:HEX, e.g. 1:00112233...") from None
    if not sep or not 1 <= key_id <= 0xFFFF or len(key) < MIN_KEY_LEN:
        raise ValueError(
            f"key {text!r}: key id must be 1..65535 and the key at least {MIN_KEY_LEN} "
            f"octets, got id {key_id} and {len(key)} octets"
        )
    return key_id, key
