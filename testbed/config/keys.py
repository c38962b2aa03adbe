"""Authentication keys as a person writes them: ``ID:HEX`` (docs/ICD.md section 13)."""

from __future__ import annotations

import os
from pathlib import Path

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


def read_key_file(path: Path) -> tuple[int, bytes]:
    """The key in ``path`` (one line ``ID:HEX``); raises ValueError saying what is wrong,
    never the key: unreadable, readable by its group or others, or not a key."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise ValueError(
            f"{path} can be read by others (mode {mode:o}): a key must be its owner's "
            f"alone; run chmod 600 {path}"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ValueError(f"cannot read {path}: {why}") from None
    try:
        return parse_key(text)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def write_key_file(path: Path, key_id: int, key: bytes) -> None:
    """Write ``ID:HEX`` to ``path``, readable by its owner only, replacing it whole."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(f"{key_id}:{key.hex()}\n")
    os.chmod(tmp, 0o600)
    tmp.replace(path)
