"""How a run stops: Ctrl-C, a kill and a closed terminal all end it the same way, once.

One handler serves SIGINT, SIGTERM and SIGHUP. It always records the signal; it raises
KeyboardInterrupt (the way pytest and the runner stop) only where raising is safe, and only
for the first signal: a second Ctrl-C while the run saves its result and stops its servers is
recorded, never raised into the middle of that work.

Where raising is not safe (starting or stopping a server or the proxy, pytest-benchmark saving
its JSON, the runner saving the result), code runs inside `stops_held()`; a signal that arrives
there is raised when the block ends, if raising is allowed around it. Code that checks for a
stop itself (the runner, between passes and after the benchmarks) asks `requested()`.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)  # Windows has no SIGHUP
_NAMES = {"SIGINT": "Ctrl-C (SIGINT)", "SIGTERM": "SIGTERM", "SIGHUP": "SIGHUP"}

_received: list[int] = []
_state = {"raising": True, "raised": False}


def _on_stop(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    if _state["raising"] and not _state["raised"]:
        _state["raised"] = True
        raise KeyboardInterrupt(signal_name(signum))


def signal_name(signum: int) -> str:
    return _NAMES.get(signal.Signals(signum).name, signal.Signals(signum).name)


def install_stop_handlers() -> None:
    """Make every stop signal end a run as Ctrl-C does (call from the main thread)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _on_stop)


@contextlib.contextmanager
def stop_handlers() -> Iterator[None]:
    """The stop handlers for the duration of the block (a run called as a library)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    install_stop_handlers()
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def requested() -> bool:
    """Whether a stop signal has arrived in this process."""
    return bool(_received)


def stop_signal_name() -> str:
    """The first stop signal this process received, by name ('a signal' if none was seen)."""
    return signal_name(_received[0]) if _received else "a signal"


@contextlib.contextmanager
def _raising(allowed: bool) -> Iterator[None]:
    before = _state["raising"]
    _state["raising"] = allowed
    try:
        if allowed:
            _raise_if_pending()
        yield
    finally:
        _state["raising"] = before
        if before:
            _raise_if_pending()


def _raise_if_pending() -> None:
    if _received and not _state["raised"]:
        _state["raised"] = True
        raise KeyboardInterrupt(stop_signal_name())


def stops_held() -> contextlib.AbstractContextManager[None]:
    """A block a stop signal must not cut in half: it is raised after, where allowed."""
    return _raising(False)


def stops_raise() -> contextlib.AbstractContextManager[None]:
    """A block a stop signal interrupts at once (a signal already waiting is raised first)."""
    return _raising(True)


def acknowledge() -> None:
    """The stop that arrived has been handled: do not raise it when a held block ends."""
    if _received:
        _state["raised"] = True


def reset() -> None:
    """Forget every signal (for tests that run several runs in one process)."""
    _received.clear()
    _state.update(raising=True, raised=False)
