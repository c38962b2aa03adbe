"""The one error a config file gives: one line naming the file, the line and the key."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config file that cannot be used; ``str()`` is one line: ``FILE[:LINE]: what``."""

    def __init__(self, path: str, message: str, line: int | None = None) -> None:
        self.path = path
        self.line = line
        self.message = " ".join(message.split())
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {self.message}")
