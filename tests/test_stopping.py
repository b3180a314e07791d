"""Stop signals: held where work must not be cut, raised where it may, never lost."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from sqlabench import stopping


@pytest.fixture(autouse=True)
def handlers() -> Iterator[None]:
    stopping.reset()
    with stopping.stop_handlers():
        yield
    stopping.reset()


def send(signum: int) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(0.01)  # let Python run the handler


def test_a_signal_raises_where_raising_is_allowed_and_every_one_does() -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):  # the second must raise too
        with pytest.raises(KeyboardInterrupt):
            send(signum)
    assert stopping.requested() and stopping.stop_signal_name() == "SIGTERM"


def test_a_held_signal_is_raised_after_the_held_block_not_inside_it() -> None:
    finished = False
    with pytest.raises(KeyboardInterrupt), stopping.stops_held():
        send(signal.SIGHUP)
        send(signal.SIGINT)
        finished = True  # the held work ran to its end
    assert finished


def test_held_inside_held_is_raised_once_at_the_outermost_allowed_end() -> None:
    raised_inside = False
    with pytest.raises(KeyboardInterrupt), stopping.stops_held():
        try:
            with stopping.stops_held():
                send(signal.SIGTERM)
        except KeyboardInterrupt:
            raised_inside = True
    assert not raised_inside


def test_a_pending_stop_is_raised_on_entering_a_block_that_allows_it() -> None:
    with stopping.stops_held():
        send(signal.SIGINT)
        with pytest.raises(KeyboardInterrupt), stopping.stops_raise():
            pytest.fail("the block must not start while a stop waits")
        stopping.acknowledge()


def test_acknowledged_stops_are_not_raised_again() -> None:
    with stopping.stops_held():
        send(signal.SIGTERM)
        stopping.acknowledge()
    assert stopping.requested()  # still known, for the run's outcome


def test_after_the_stop_is_handled_late_signals_are_ignored() -> None:
    """Python restores default handlers while it shuts down; ignored signals stay ignored."""
    stopping.ending()  # what the CLI does before it prints the stop and exits 130
    send(signal.SIGINT)  # raised here, or acted on by default, it would kill the process
    assert all(signal.getsignal(s) is signal.SIG_IGN for s in stopping.STOP_SIGNALS)
