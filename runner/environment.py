"""Environment variables a runner part sets for the settings it publishes, put back as they were when it stops."""

from __future__ import annotations

import os


class EnvironmentChanges:
    """`set(key, value)` remembers the first previous value of each key; `restore()` puts them all back."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def set(self, key: str, value: str) -> None:
        """Set `key` (its value before the first set is kept for `restore`)."""
        self._saved.setdefault(key, os.environ.get(key))
        os.environ[key] = value

    def restore(self) -> None:
        """Every key back to its value before (unset if it had none); safe to call twice."""
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved.clear()
