"""How a run stops: Ctrl-C, a kill and a closed terminal all end it the same way, once.

One handler serves SIGINT, SIGTERM and SIGHUP. It always records the signal and raises
KeyboardInterrupt (the way pytest and the runner stop) only where raising is safe: a second
Ctrl-C while the run saves its result and stops its servers is recorded, never raised into the
middle of that work. Five signals end the process at once, as a last resort.

Where raising is not safe (starting or stopping a server or the proxy, pytest-benchmark saving
its JSON, the runner saving the result), code runs inside `stops_held()`; a signal that arrives
there is raised when the block ends, if raising is allowed around it. Code that checks for a
stop itself (the runner, between passes and after the benchmarks) asks `requested()`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)  # Windows has no SIGHUP
_NAMES = {"SIGINT": "Ctrl-C (SIGINT)", "SIGTERM": "SIGTERM", "SIGHUP": "SIGHUP"}

FORCE_AFTER = 5
"""The fifth stop signal while stops are held ends the process at once (something hangs)."""

_received: list[int] = []


class _StopState:
    raising = True
    """Whether a stop signal raises KeyboardInterrupt where it lands."""
    pending = 0
    """Signals that arrived while raising was not allowed, not yet raised."""


_state = _StopState()


def _on_stop(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    if _state.raising:
        # every signal raises where raising is allowed: a KeyboardInterrupt raised inside a
        # weakref callback or __del__ is swallowed by Python, and the next one must still stop
        raise KeyboardInterrupt(signal_name(signum))
    _state.pending += 1
    if len(_received) >= FORCE_AFTER:
        # a last resort when stopping hangs (a server that never answers): the default action
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


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


class _Raising:
    """Allow or forbid raising for a block; a signal held inside is raised after, if allowed.

    A class rather than a generator: the state is restored in __exit__ itself, whatever is
    raised around it.
    """

    def __init__(self, allowed: bool, deliver: bool = True) -> None:
        self.allowed = allowed
        self.deliver = deliver
        self.before = True

    def __enter__(self) -> None:
        self.before = _state.raising
        _state.raising = self.allowed
        if self.allowed:
            _raise_if_pending()

    def __exit__(self, *exc: object) -> None:
        _state.raising = self.before
        if self.before and self.deliver and exc[0] is None:
            _raise_if_pending()


def _raise_if_pending() -> None:
    if _state.pending:
        _state.pending = 0
        raise KeyboardInterrupt(stop_signal_name())


def stops_held(deliver: bool = True) -> _Raising:
    """A block a stop signal must not cut in half: it is raised after, where allowed.

    With `deliver=False` it stays pending for whoever checks `requested()` next (a hook whose
    caller must not see an exception: pluggy warns about one raised in a hookwrapper).
    """
    return _Raising(False, deliver)


def stops_raise() -> _Raising:
    """A block a stop signal interrupts at once (a signal already waiting is raised first)."""
    return _Raising(True)


def acknowledge() -> None:
    """The stops that arrived have been handled: do not raise them when a held block ends."""
    _state.pending = 0


def ending() -> None:
    """The process is exiting after a stop: further stop signals are ignored.

    Ignored, not held: Python puts its own signal handlers back to the default action while it
    shuts down, and a late Ctrl-C would then kill the process (status -2 instead of 130); it
    leaves ignored signals ignored.
    """
    _state.raising = False
    if threading.current_thread() is threading.main_thread():
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)


def reset() -> None:
    """Forget every signal (for tests that run several runs in one process)."""
    _received.clear()
    _state.raising, _state.pending = True, 0
