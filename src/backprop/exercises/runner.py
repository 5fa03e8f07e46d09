"""The runner: calls the reader's function with a time limit, catches what it
raises, and unpacks what it returns."""

from __future__ import annotations

import signal
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import torch
from torch import Tensor

_TORCH_DIR = str(Path(torch.__file__).parent)
_PACKAGE_DIR = str(Path(__file__).parent)
# The library the reader calls: its lines are not the reader's.
_BACKPROP_DIR = str(Path(__file__).parent.parent)
_LIBRARY_DIRS = (_TORCH_DIR, _BACKPROP_DIR)

__all__ = ["Outcome", "clone_args", "describe_error", "run", "unpack", "where"]


class _TimeUp(BaseException):
    """Raised in the candidate by the alarm; a BaseException, so ``except Exception``
    in the candidate cannot swallow it."""


@dataclass
class Outcome:
    value: object = None
    error: BaseException | None = None
    timed_out: bool = False


def _run_with_alarm(function: Callable[[], object], seconds: float) -> Outcome:
    """Run in this (main) thread; SIGALRM interrupts it after ``seconds``.

    An alarm armed by someone else (a test runner's timeout) is put back
    afterwards with the time it had left, and is honoured if it falls due first.
    """
    started = time.monotonic()
    outer_delay, outer_interval = signal.getitimer(signal.ITIMER_REAL)
    outer_deadline = started + outer_delay if outer_delay > 0 else None

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        outer_due = outer_deadline is not None and time.monotonic() >= outer_deadline
        if outer_due and callable(outer_handler):
            outer_handler(signum, frame)
        raise _TimeUp

    outer_handler = signal.signal(signal.SIGALRM, on_alarm)
    delay = seconds if outer_deadline is None else min(seconds, outer_delay)
    signal.setitimer(signal.ITIMER_REAL, delay)
    try:
        return Outcome(value=function())
    except _TimeUp:
        return Outcome(timed_out=True)
    except Exception as error:  # the candidate's own mistake, to be reported
        return Outcome(error=error)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, outer_handler)
        if outer_deadline is not None:
            left = max(outer_deadline - time.monotonic(), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, left, outer_interval)


def _run_in_thread(function: Callable[[], object], seconds: float) -> Outcome:
    """Run in a daemon thread; stop waiting after ``seconds`` (it cannot be killed)."""
    outcome = Outcome()

    def target() -> None:
        try:
            outcome.value = function()
        except Exception as error:
            outcome.error = error

    worker = threading.Thread(target=target, daemon=True, name="exercise-candidate")
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        return Outcome(timed_out=True)
    return outcome


def run(function: Callable[[], object], seconds: float) -> Outcome:
    in_main = threading.current_thread() is threading.main_thread()
    if in_main and hasattr(signal, "setitimer"):
        return _run_with_alarm(function, seconds)
    return _run_in_thread(function, seconds)


def where(error: BaseException) -> str:
    """Where the error is, the reader's own line first: ' (in f, line n: ...)',
    then, when it was raised inside the library or torch, where that was."""
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if not frame.filename.startswith(_PACKAGE_DIR)
    ]
    if not frames:
        return ""
    mine = [f for f in frames if not f.filename.startswith(_LIBRARY_DIRS)]
    frame = (mine or frames)[-1]
    code = f": {frame.line.strip()}" if frame.line else ""
    text = f" (in {frame.name}, line {frame.lineno}{code}"
    # The library function the reader's line called, if the error came from it.
    called = frames[frames.index(frame) + 1 :]
    if mine and called and called[0].filename.startswith(_BACKPROP_DIR):
        module = Path(called[0].filename).stem
        text += f"; raised inside backprop's {module}.{called[0].name}"
    return text + ")"


def describe_error(error: BaseException) -> str:
    message = str(error).strip().splitlines()
    first = message[0] if message else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def clone_args(args: Sequence[object]) -> tuple[object, ...]:
    # The candidate gets copies, so an in-place change cannot affect the next case.
    return tuple(a.clone() if isinstance(a, Tensor) else a for a in args)


def unpack(
    result: object,
    grads: Sequence[str],
    bare: bool,
    what: str,
    noun: str = "gradient",
) -> tuple[object, ...] | str:
    """The returned gradients as a tuple, or a sentence saying why they cannot be.

    ``noun`` is what one returned tensor is: "gradient", or "value" for a forward.
    """
    count = len(grads)
    if bare:
        if isinstance(result, tuple | list):
            return (
                f"{what} returned a {type(result).__name__} of {len(result)}, but it "
                f"returns one {noun}, {grads[0]}, as a bare tensor (not in a tuple)."
            )
        return (result,)
    if not isinstance(result, tuple | list):
        got = "None" if result is None else f"a {type(result).__name__}"
        return (
            f"{what} returned {got}, but it returns a tuple of {count} gradients: "
            f"({', '.join(grads)})."
        )
    if len(result) != count:
        return (
            f"{what} returned {len(result)} values, but it returns {count}: "
            f"({', '.join(grads)}), in the order of the inputs."
        )
    return tuple(result)
