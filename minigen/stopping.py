"""Why a training run stops before its last step: a stop signal, or divergence.

Stop signals. Ctrl-C (SIGINT) and a scheduler's SIGTERM are deferred while a run trains
(:func:`deferred_stop_signals`): the handler only records the signal, and the loop reads it
between steps, so a step is never cut in the middle (that would leave a half-updated
state). Under ``mpiexec`` the ranks agree on it at the same step boundary
(:func:`agreed_stop`): a signal that reached any rank stops them all after the same step,
rank 0 saves that step, and every rank raises :class:`TrainingInterrupted`, whose
``exit_code`` is the shell's 128 + signal number (130 for SIGINT, 143 for SIGTERM).
A repeat of the signal more than ``REPEAT_SECONDS`` after the first raises
``KeyboardInterrupt`` at once (the user insists); an earlier repeat is the same request
delivered twice (a launcher forwarding the terminal's Ctrl-C to its processes).

Divergence. No checkpoint holds a non-finite value: :func:`nonfinite_arrays` finds the
arrays of a state with a NaN or an infinity, and :class:`TrainingDiverged` names the last
checkpoint that holds a good state.
"""
import contextlib
import signal
import threading
import time

import numpy as np

from minigen import backend

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
REPEAT_SECONDS = 1.0


class TrainingDiverged(RuntimeError):
    """A metric or the state became NaN or infinite; the run stopped, and its checkpoint (if
    any) is the last good state."""


class TrainingInterrupted(KeyboardInterrupt):
    """A stop signal (Ctrl-C, SIGTERM) stopped the run at a step boundary, after saving a
    checkpoint of that step. ``signum`` is the signal, ``exit_code`` 128 + ``signum``."""

    def __init__(self, message, signum=signal.SIGINT):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + int(signum)


class _Received:
    """The first stop signal received while signals are deferred, and when."""

    signum = None
    at = 0.0
    depth = 0


def _on_stop_signal(signum, frame):
    if _Received.signum is None:
        _Received.signum, _Received.at = signum, time.monotonic()
    elif time.monotonic() - _Received.at > REPEAT_SECONDS:
        raise KeyboardInterrupt(f"signal {signum} received twice: stopped at once")


@contextlib.contextmanager
def deferred_stop_signals():
    """While active, SIGINT and SIGTERM are recorded (see :func:`stop_requested`) instead of
    stopping the process. Nested uses share the record; the outermost restores the previous
    handlers. Only the main thread can handle signals: elsewhere this does nothing, and a
    signal that was ignored when it started stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _Received.depth:
        _Received.depth += 1
        try:
            yield
        finally:
            _Received.depth -= 1
        return
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    _Received.signum, _Received.depth = None, 1
    try:
        for s, handler in previous.items():
            if handler not in (signal.SIG_IGN, None):
                signal.signal(s, _on_stop_signal)
        yield
    finally:
        _Received.depth = 0
        for s, handler in previous.items():
            if handler is not None:
                signal.signal(s, handler)


def stop_requested():
    """The stop signal recorded since the outermost :func:`deferred_stop_signals` began, or
    None."""
    return _Received.signum


def agreed_stop(comm):
    """The stop signal that reached any rank of ``comm`` (SIGTERM before SIGINT when both
    did), or None: one small reduction, every rank must call it at the same point."""
    received = stop_requested()
    if comm.size == 1:
        return received
    flags = comm.allreduce_(np.array([float(received == s) for s in STOP_SIGNALS]))
    for s, flag in reversed(list(zip(STOP_SIGNALS, flags))):
        if flag > 0:
            return s
    return None


def nonfinite_arrays(tree, path=""):
    """The paths ("model/weight", ...) of the floating-point arrays in the nested
    dict/list ``tree`` that hold a NaN or an infinity."""
    if isinstance(tree, dict):
        return [p for key, item in tree.items() for p in nonfinite_arrays(item, f"{path}/{key}")]
    if isinstance(tree, (list, tuple)):
        return [p for i, item in enumerate(tree) for p in nonfinite_arrays(item, f"{path}/{i}")]
    if isinstance(tree, float) or getattr(getattr(tree, "dtype", None), "kind", None) in ("f", "c"):
        xp = backend.xp_of(tree)
        if not bool(xp.all(xp.isfinite(tree))):
            return [path.lstrip("/")]
    return []
