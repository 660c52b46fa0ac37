"""Stopping cleanly on SIGTERM (a preemption notice) and SIGINT (Ctrl-C), in every stage.

A run installs one handler for both signals for its whole length (`modes.run`); a signal only sets a flag.
Loops that can resume (pre-training, fine-tuning, the conv VAE, the paper-protocol probe) poll `reached(step)`,
save their state and stop; work that cannot resume (a PCA fit, the cached probe's features) polls `stop_here`,
which raises `Preempted` with a line saying what to rerun. The command line prints that one line and exits 0
for SIGTERM, 130 for SIGINT. A second SIGINT stops at once, without saving.

Several processes: JAX's preemption sync manager (started by `jax.distributed.initialize`) receives SIGTERM on
any host and makes every host agree on one step, which `reached` reports; a SIGINT is turned into a SIGTERM of
the same process, so it takes the same agreed path.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

import jax
from jax.experimental import multihost_utils

from ldae_jax.errors import Preempted

EXIT_CODES = {signal.SIGTERM: 0, signal.SIGINT: 130}
_received: list[int] = []  # the signals of the open run, in order
_last: list[int] = []  # the first signal of the run that ended last (what the command line exits with)
_depth = 0  # nested watches (a ladder's runs, a run's stages) share one installation
_previous: dict = {}


def _on_signal(signum, frame) -> None:
    del frame
    if signum == signal.SIGINT and jax.process_count() > 1:
        os.kill(os.getpid(), signal.SIGTERM)  # JAX's sync manager agrees on a step for SIGTERM only
        return
    if signum == signal.SIGINT and signal.SIGINT in _received:
        print("error: interrupted again: stopping now, without saving", file=sys.stderr, flush=True)
        os._exit(130)
    _received.append(signum)


def received() -> int | None:
    """The first signal of the open run (SIGTERM or SIGINT), else of the run that ended last, or None."""
    return _received[0] if _received else (_last[0] if _last else None)


def exit_code() -> int:
    return EXIT_CODES.get(received(), 0)


class PreemptionWatch:
    """SIGTERM and SIGINT handled while it is open (the main thread only; other threads poll the flag)."""

    def __init__(self):
        global _depth
        self._multi = jax.process_count() > 1
        self._installed = threading.current_thread() is threading.main_thread()
        if self._installed:
            if _depth == 0:
                _received.clear()
                _last.clear()
                _previous[signal.SIGINT] = signal.getsignal(signal.SIGINT)
                signal.signal(signal.SIGINT, _on_signal)
                if not self._multi:  # several processes: JAX's manager owns SIGTERM
                    _previous[signal.SIGTERM] = signal.getsignal(signal.SIGTERM)
                    signal.signal(signal.SIGTERM, _on_signal)
            _depth += 1

    def reached(self, step: int) -> bool:
        """True at the step where every process should save and stop."""
        if self._multi:
            return multihost_utils.reached_preemption_sync_point(step)
        return bool(_received)

    def close(self) -> None:
        global _depth
        if self._installed:
            self._installed = False
            _depth -= 1
            if _depth == 0:
                for s, handler in _previous.items():
                    signal.signal(s, handler)
                _previous.clear()
                _last[:] = _received[:1]
                _received.clear()

    def __enter__(self) -> "PreemptionWatch":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def line(what: str) -> str:
    """The one line a stopped stage prints: 'Preempted (SIGTERM): ...' or 'Interrupted (SIGINT): ...'."""
    sig = received() or signal.SIGTERM
    return f"{'Interrupted' if sig == signal.SIGINT else 'Preempted'} ({signal.Signals(sig).name}): {what}"


def stop_here(what: str) -> None:
    """Raise Preempted if a signal arrived while a watch is open: for work with nothing to save (`what` says
    what is lost)."""
    if _received and _depth:
        raise Preempted(f"stopped during {what}, which has nothing to save: rerun the same command to do it again")
