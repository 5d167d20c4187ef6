"""Progress of long work. The library says what it is doing and how far it got (`task`); whoever
runs it decides how to show that (`reporting`): the CLI draws a bar with its ETA on stderr when
stderr is a terminal. Without a reporter (a Python caller, a test, the server's worker thread) a
task costs nothing. Torch-free."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar

Advance = Callable[[int], None]  # advance(k): k more units done
Reporter = Callable[[str, "int | None"], AbstractContextManager[Advance]]  # (label, total or None)

_REPORTER: ContextVar[Reporter | None] = ContextVar("edgedit_progress", default=None)


def _ignore(k: int = 1) -> None:
    pass


@contextmanager
def reporting(reporter: Reporter | None) -> Iterator[None]:
    """Show every task started in the block (and in the code it calls) with `reporter`."""
    token = _REPORTER.set(reporter)
    try:
        yield
    finally:
        _REPORTER.reset(token)


@contextmanager
def task(label: str, total: int | None = None) -> Iterator[Advance]:
    """A unit of long work: `label` (what), `total` (how many units, or None when unknown); yields
    `advance(k)`. Tasks nest (a calibration's sampling inside a quantization)."""
    reporter = _REPORTER.get()
    if reporter is None:
        yield _ignore
        return
    with reporter(label, total) as advance:
        yield advance
