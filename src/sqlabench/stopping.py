"""How a run stops: Ctrl-C, a kill and a closed terminal all end it the same way.

SIGINT, SIGTERM and SIGHUP each raise KeyboardInterrupt, so one path (pytest's own, then the
runner's) stops the benchmarks, saves what was measured and stops the servers and the proxy.
Some steps must not be cut in half: starting or stopping a server or the proxy (a half-started
one would be left running) and saving the result. `signals_deferred` holds a stop signal that
arrives during such a step and delivers it right after, to whatever handled it before.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
SIGNAL_NAMES = {
    signal.SIGINT: "Ctrl-C (SIGINT)",
    signal.SIGTERM: "SIGTERM",
    signal.SIGHUP: "SIGHUP",
}


class Stopped(KeyboardInterrupt):
    """A stop signal other than Ctrl-C, raised where Ctrl-C would raise KeyboardInterrupt."""

    def __init__(self, signum: int) -> None:
        super().__init__(SIGNAL_NAMES.get(signal.Signals(signum), str(signum)))
        self.signum = signum


_received: list[int] = []


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Stopped(signum)


def install_stop_handlers() -> None:
    """Make SIGINT, SIGTERM and SIGHUP stop a run alike (call once, from the main thread)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _raise_stopped)


def stop_signal_name() -> str:
    """The stop signal this process received first, by name ('a signal' if none was seen)."""
    return SIGNAL_NAMES[signal.Signals(_received[0])] if _received else "a signal"


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold stop signals for the duration of the block; deliver the first one after it.

    Nested blocks hand a held signal outwards, so it is delivered once, after the outermost.
    Outside the main thread (where handlers cannot be set) the block runs unprotected.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        held.append(signum)

    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    for s in STOP_SIGNALS:
        signal.signal(s, hold)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if held:
            signal.raise_signal(held[0])
