"""Host-side values shared across processes: float64 sums and a check that every host holds the same thing.

JAX runs with 32-bit types by default, so a float64 array crosses hosts as two float32 parts (the value rounded
to float32, and the rounding error), which keeps about 48 bits of mantissa. Every host then adds the parts in
the same order, so all hosts end with bit-identical float64 results.
"""

from __future__ import annotations

import hashlib

import jax
import numpy as np
from jax.experimental import multihost_utils

from ldae_jax.errors import UserError


def sum_float64(x: np.ndarray) -> np.ndarray:
    """The sum of `x` over all processes, in float64, identical on every process."""
    x = np.asarray(x, np.float64)
    if jax.process_count() == 1:
        return x
    hi = x.astype(np.float32)
    lo = (x - hi.astype(np.float64)).astype(np.float32)
    parts = multihost_utils.process_allgather(np.stack([hi, lo]))  # [P, 2, ...]
    parts = np.asarray(parts, np.float64)
    return (parts[:, 0] + parts[:, 1]).sum(axis=0)


def check_same_on_all_hosts(text: str, what: str) -> None:
    """Raise on every host unless every host passes the same `text` (compared by sha256)."""
    if jax.process_count() == 1:
        return
    digest = np.frombuffer(hashlib.sha256(text.encode()).digest(), np.uint8).astype(np.int32)
    every = np.asarray(multihost_utils.process_allgather(digest))
    if not (every == every[0]).all():
        differing = [i for i in range(every.shape[0]) if not (every[i] == every[0]).all()]
        raise UserError(f"{what} differs between hosts (processes {differing} vs 0); all hosts must run the same "
                        "code, config and data")
