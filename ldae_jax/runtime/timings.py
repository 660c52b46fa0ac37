"""Where a run's wall time went: phases timed where they happen, printed as one table at the end of the run and
saved as `timings.json`, so the next optimisation is chosen from data, not guessed.

    with timings.record() as t:        # modes.run, around a whole command
        with timings.phase("probe"):   # anywhere below it; phases nest ("probe / pixels features")
            ...
    print(t.table())

Outside `record()` a phase costs one clock read and records nothing.

`Countdown` is the console's side of a stage while it runs: `NAME: n/N UNIT (p%), ETA ...` lines, rate-limited, and
a done line with the stage's time (the PCA's patches, the probe's features and head, kNN, FID, fine-tuning's
evaluation), on process 0 only.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Callable

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


def format_duration(seconds: float) -> str:
    """'4m05s', or '1h02m' from an hour."""
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def format_seconds(seconds: float) -> str:
    """A stage's time: '3.2s' under a minute, else as format_duration."""
    return f"{seconds:.1f}s" if seconds < 60 else format_duration(seconds)


def _is_main_process() -> bool:
    import jax  # here, so that importing timings stays light

    return jax.process_index() == 0


class Countdown:
    """The console lines of one stage of `total` units of work (images, patches, epochs): what it is doing and
    when it will be done. Printed by process 0 only, on stdout (never in metrics.jsonl).

        countdown = timings.Countdown("  train features", 60000, "images")
        for ...:
            countdown.update(done)                  # the units done so far; prints a line when one is due
        countdown.finish(f"{n} x {dim}")            # '  train features: 60000 x 128 in 12.3s'

    `NAME: n/N UNIT (p%), ETA 1m05s` lines are rate-limited: the first once `first_s` seconds have passed since
    the first unit was done (a stage shorter than that prints only its done line), then at most one per `every_s`
    seconds and only when
    another 10% of the work is done or a minute has passed since the last line. `announce` prints a line first,
    `NAME: N UNIT ...` (or `NAME: ANNOUNCE ...` for a string), for a stage whose first unit is slow (the input
    pipeline's start, a compilation), which would otherwise pass without a line.
    The ETA is the rest of the work at the rate since the first update: the first unit carries the stage's
    one-off costs (compilation, the input pipeline's start), which are not the rate of the rest.
    """

    def __init__(self, name: str, total: int, unit: str = "", *, announce: bool | str = False, first_s: float = 3.0,
                 every_s: float = 10.0, quiet: bool = False, clock: Callable[[], float] = time.perf_counter,
                 out: Callable[[str], None] | None = None):
        """`quiet`: no lines, only the ETA (`eta_s`) for a caller that prints its own; `out`: where lines go
        (default: print on process 0, nothing elsewhere)."""
        self.name, self.total, self.unit = name, max(int(total), 0), unit
        self.first_s, self.every_s, self.clock = first_s, every_s, clock
        if quiet:
            out = lambda line: None  # noqa: E731
        self.out = out if out is not None else (
            (lambda line: print(line, flush=True)) if _is_main_process() else (lambda line: None))
        self.start = clock()
        self.first: tuple[int, float] | None = None  # (units, time) at the first update
        self.last_line: tuple[int, float] | None = None  # (units, time) at the last line printed
        if announce:
            what = announce if isinstance(announce, str) else f"{self.total}{' ' + unit if unit else ''}"
            self.out(f"{name}: {what} ...")

    def eta_s(self, done: int, now: float | None = None) -> float | None:
        """Seconds left at the rate since the first update; None before a second update."""
        now = self.clock() if now is None else now
        if self.first is None or done <= self.first[0] or now <= self.first[1]:
            return None
        rate = (done - self.first[0]) / (now - self.first[1])
        return max(self.total - done, 0) / rate

    def line(self, done: int, now: float | None = None) -> str:
        """`NAME: n/N UNIT (p%), ETA 1m05s` (no ETA before the second update)."""
        eta = self.eta_s(done, now)
        pct = 100 * done / self.total if self.total else 100.0
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.name}: {done}/{self.total}{unit} ({pct:.0f}%)" + (
            "" if eta is None else f", ETA {format_duration(eta)}")

    def due(self, done: int, now: float) -> bool:
        if done >= self.total or self.first is None or done <= self.first[0]:
            return False  # the done line follows; no rate yet
        if self.last_line is None:  # the first ETA from a rate measured over `first_s` at least
            return now - self.first[1] >= self.first_s
        since_units, since_s = done - self.last_line[0], now - self.last_line[1]
        return since_s >= self.every_s and (since_units >= 0.1 * self.total or since_s >= 6 * self.every_s)

    def update(self, done: int) -> None:
        """`done` units of the stage are done (a count, not an increment); prints a line when one is due."""
        now = self.clock()
        if self.first is None:
            self.first = (done, now)
            return
        if self.due(done, now):
            self.out(self.line(done, now))
            self.last_line = (done, now)

    def finish(self, summary: str | None = None) -> float:
        """Prints `NAME: SUMMARY in 12.3s` (SUMMARY by default `N UNIT`) and returns the stage's seconds."""
        seconds = self.clock() - self.start
        summary = summary if summary is not None else f"{self.total} {self.unit}".strip()
        self.out(f"{self.name}: {summary} in {format_seconds(seconds)}")
        return seconds
