"""Where a run's wall time went: phases timed where they happen, printed as one table at the end of the run and
saved as `timings.json`, so the next optimisation is chosen from data, not guessed.

    with timings.record() as t:        # modes.run, around a whole command
        with timings.phase("probe"):   # anywhere below it; phases nest ("probe / pixels features")
            ...
    print(t.table())

Outside `record()` a phase costs one clock read and records nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import time

from ldae_jax.runtime import atomic

_ACTIVE: list["Timings"] = []


class Timings:
    """Seconds per phase path (a tuple of names), in the order phases first started; repeats add up."""

    def __init__(self):
        self.seconds: dict[tuple, float] = {}
        self.stack: list[str] = []
        self.start = time.perf_counter()

    def add(self, path: tuple, seconds: float) -> None:
        self.seconds[path] = self.seconds.get(path, 0.0) + seconds

    def total(self) -> float:
        return time.perf_counter() - self.start

    def rows(self) -> list[tuple[int, str, float]]:
        """(depth, name, seconds) per phase, parents above their children, and a parent's time in none of its
        children as its last child '(rest)'."""
        out = []

        def walk(parent: tuple) -> float:
            inside = 0.0
            for path, seconds in list(self.seconds.items()):
                if path[:-1] != parent:
                    continue
                inside += seconds
                out.append((len(path) - 1, path[-1], seconds))
                children = walk(path)
                if children and seconds - children > 0.05 * seconds:
                    out.append((len(path), "(rest)", seconds - children))
            return inside

        walk(())
        return out

    def table(self, before: dict | None = None) -> str:
        """The console table; `before` adds phases timed outside this process (name -> seconds) at its top."""
        total = self.total()
        lines = ["Where the time went:", f"  {'phase':<40} {'seconds':>8} {'share':>6}"]
        for name, seconds in (before or {}).items():
            lines.append(f"  {name:<40} {seconds:8.1f} {'':>6}")
        timed = 0.0
        for depth, name, seconds in self.rows():
            timed += seconds if depth == 0 else 0.0
            lines.append(f"  {'  ' * depth + name:<40} {seconds:8.1f} {100 * seconds / total:5.1f}%")
        lines.append(f"  {'(not in a phase)':<40} {total - timed:8.1f} {100 * (total - timed) / total:5.1f}%")
        lines.append(f"  {'this command':<40} {total:8.1f} {100.0:5.1f}%")
        return "\n".join(lines)

    def as_json(self) -> dict:
        return {"total_s": self.total(), "phases": [
            {"phase": " / ".join(p), "seconds": s} for p, s in self.seconds.items()]}


@contextlib.contextmanager
def record():
    """Collect the phases timed until the block ends (one command)."""
    timings = Timings()
    _ACTIVE.append(timings)
    try:
        yield timings
    finally:
        _ACTIVE.remove(timings)


@contextlib.contextmanager
def phase(name: str):
    """Time the block as `name`, inside whatever phase encloses it."""
    if not _ACTIVE:
        yield
        return
    timings = _ACTIVE[-1]
    timings.stack.append(name)
    path, start = tuple(timings.stack), time.perf_counter()
    timings.seconds.setdefault(path, 0.0)  # the order phases first started
    try:
        yield
    finally:
        timings.add(path, time.perf_counter() - start)
        timings.stack.pop()


def add(name: str, seconds: float) -> None:
    """Record `seconds` spent in `name` (inside the enclosing phase) that were measured piecemeal, like the
    wait for each batch."""
    if _ACTIVE:
        _ACTIVE[-1].add(tuple(_ACTIVE[-1].stack) + (name,), seconds)


def process_age() -> float | None:
    """Seconds since this process started (imports and JAX's start-up before any phase), or None off Linux."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = float(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(uptime - start_ticks / os.sysconf("SC_CLK_TCK"), 0.0)
    except (OSError, ValueError, IndexError):
        return None


_STARTUP_TOLD: list = []


def startup_seconds() -> float | None:
    """The process's age the first time a command in it asks (its start-up), None after (a ladder runs many
    commands in one process: only the first had a start-up)."""
    if _STARTUP_TOLD:
        return None
    _STARTUP_TOLD.append(True)
    return process_age()


def write(timings: Timings, path) -> None:
    """`timings.json`: replaced whole, like every file a run writes."""
    atomic.write(path, json.dumps(timings.as_json(), indent=2))
