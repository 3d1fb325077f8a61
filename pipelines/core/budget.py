"""A time budget for a piece of work, checked where the work can stop cleanly.

A thread cannot be killed from outside, so a request whose work runs too long is stopped by
the work itself: the caller starts a budget (:func:`start`, a context variable, so each
request's thread has its own), and the loops that read, parse and score in chunks call
:func:`check` between chunks. Past the deadline it raises :class:`BudgetExceeded`, the loop
unwinds, its memory is freed and the thread serves the next request; the web app answers
503 saying the budget and what to do. Code run outside any budget (training, the command
line) never stops: :func:`check` is then a no-op.
"""
from __future__ import annotations

import time
from contextvars import ContextVar

_deadline: ContextVar[tuple[float, float] | None] = ContextVar("fablens_deadline", default=None)


class BudgetExceeded(RuntimeError):
    """The work ran past its time budget (``seconds``)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        super().__init__(f"the work ran past its time budget of {seconds:g} s")


def start(seconds: float | None):
    """Give the current context ``seconds`` from now (None: no budget); returns a token for
    :func:`stop`."""
    return _deadline.set(None if seconds is None else (time.monotonic() + seconds, seconds))


def stop(token) -> None:
    """End the budget :func:`start` began."""
    _deadline.reset(token)


def remaining() -> float | None:
    """Seconds left (negative when past), or None without a budget."""
    found = _deadline.get()
    return None if found is None else found[0] - time.monotonic()


def check() -> None:
    """Raise :class:`BudgetExceeded` when the current budget is spent."""
    found = _deadline.get()
    if found is not None and time.monotonic() > found[0]:
        raise BudgetExceeded(found[1])
