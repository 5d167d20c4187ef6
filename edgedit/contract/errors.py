"""Errors that the CLI turns into one clear line on stderr and an exit code."""


class EdgeditError(Exception):
    """A failure the user can act on. The message says what, where, and what to do."""

    exit_code = 2  # bad usage or bad input


class CheckFailed(EdgeditError):
    """The work ran but a check failed (e.g. export parity, quantization accuracy)."""

    exit_code = 1


class MissingDependency(EdgeditError):
    """An optional dependency is not installed."""
