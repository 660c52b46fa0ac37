"""Preemption notices (SIGTERM): finish the current step, checkpoint, exit cleanly.

One process: our own SIGTERM handler sets a flag. Several processes: JAX's preemption sync manager (started
by `jax.distributed.initialize`) receives the signal on any host and makes every host agree on the same
step, which `reached` reports; all hosts then save that step together.
"""

from __future__ import annotations

import signal
import threading

import jax
from jax.experimental import multihost_utils


class PreemptionWatch:
    def __init__(self):
        self.requested = False
        self._previous = None
        self._multi = jax.process_count() > 1
        if not self._multi and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum, frame):
        self.requested = True

    def reached(self, step: int) -> bool:
        """True at the step where every process should save and stop."""
        if self._multi:
            return multihost_utils.reached_preemption_sync_point(step)
        return self.requested

    def close(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None
