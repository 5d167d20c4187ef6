"""Errors that the CLI turns into one clear line on stderr and an exit code.

Messages speak the library's language: an argument or field is named by its keyword in backticks
(`workspace_mb 15 is outside 16..65536`), which a Python caller passes; the CLI prints the option
that sets it instead (`--workspace-mb 15 ...`, edgedit/cli/common.py: `cli_words`). Nothing below
the CLI spells an option.
"""


class EdgeditError(Exception):
    """A failure the user can act on. The message says what, where, and what to do."""

    exit_code = 2  # bad usage or bad input


class CheckFailed(EdgeditError):
    """The work ran but a check failed (e.g. export parity, quantization accuracy)."""

    exit_code = 1


class MissingDependency(EdgeditError):
    """An optional dependency is not installed."""


class BackendFailed(EdgeditError):
    """A backend cannot run the model on this machine although the input is fine (e.g. torch.compile's
    C++ compiler fails for this CPU). `edgedit bench` and the demo report such a row as skipped."""

    exit_code = 1
