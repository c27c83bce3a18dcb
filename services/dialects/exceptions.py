"""Errors raised by the pure dialect mappings."""

from __future__ import annotations


class MappingError(ValueError):
    """A request is well formed but cannot be mapped; ``field`` names the part at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
