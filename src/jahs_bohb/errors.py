"""The one exception type for bad user input: its message is a complete, one-line diagnosis."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config value, path or search-space expression that cannot work; the message says the fix."""
