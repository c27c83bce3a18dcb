"""Errors raised by the pure rule engine."""


class DataError(ValueError):
    """A KB or rule data file is invalid; the message names the file and the row."""
