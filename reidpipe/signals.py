"""Stop signals, handled as Ctrl-C is.

``timeout``, ``docker stop`` and systemd stop a process with SIGTERM; closing its terminal sends
SIGHUP. :func:`signals_as_interrupts` turns both into a :class:`Terminated` (a ``KeyboardInterrupt``)
in the main thread, so every ``except KeyboardInterrupt`` that finalises outputs after Ctrl-C also
does it after them; the process then exits ``128 + signal`` (130 SIGINT, 143 SIGTERM, 129 SIGHUP).

:func:`hold_signals` holds SIGINT/SIGTERM/SIGHUP back while outputs are being finalised (a second
Ctrl-C must not leave half of them): finalising runs to its end and ``release()`` returns the
signals received meanwhile. Both are no-ops outside the main thread (Python delivers signals only there).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

STOP_SIGNALS = tuple(
    s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None
)


class Terminated(KeyboardInterrupt):
    """A stop signal other than SIGINT, raised where the main thread was."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def signal_of(exc: BaseException) -> int:
    """The signal a ``KeyboardInterrupt`` stands for (SIGINT unless it is a :class:`Terminated`)."""
    return getattr(exc, "signum", signal.SIGINT)


def exit_code(signum: int) -> int:
    return 128 + int(signum)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def _handlers(handler, signums) -> Iterator[None]:
    if not _in_main_thread():
        yield
        return
    previous = {s: signal.signal(s, handler) for s in signums}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def signals_as_interrupts() -> contextlib.AbstractContextManager:
    """Within the block, SIGTERM and SIGHUP raise :class:`Terminated` (SIGINT keeps raising
    ``KeyboardInterrupt``)."""

    def raise_terminated(signum, _frame):
        raise Terminated(signum)

    return _handlers(raise_terminated, [s for s in STOP_SIGNALS if s != signal.SIGINT])


class HeldSignals:
    """SIGINT/SIGTERM/SIGHUP recorded instead of acted on, from construction until :meth:`release`
    (which restores the previous handlers and returns the signals received meanwhile)."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self._previous: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {}
        if _in_main_thread():
            self._previous = {s: signal.signal(s, self._record) for s in STOP_SIGNALS}

    def _record(self, signum, _frame) -> None:
        self.received.append(signum)

    def release(self) -> list[int]:
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous = {}
        return list(self.received)


def act_on(received: list[int]) -> None:
    """Act now on the first stop signal held back (:meth:`HeldSignals.release`'s list), as its
    delivery would have: its Python handler is called (a :class:`Terminated` or ``KeyboardInterrupt``
    raised here), or, under the default or an ignoring handler, the signal is raised to the process's
    own disposition. Nothing when none was received."""
    if not received:
        return
    handler = signal.getsignal(received[0])
    if callable(handler):
        handler(received[0], None)
    else:
        signal.raise_signal(received[0])


def hold_signals() -> HeldSignals:
    """Hold stop signals back while outputs are finalised: ``held = hold_signals()`` ... ``held.release()``
    (in a ``finally``)."""
    return HeldSignals()
