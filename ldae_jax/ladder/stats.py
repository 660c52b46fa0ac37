"""Differences between two rows' accuracies over seeds, with a 95% confidence interval, and the verdict a claim
reads from it.

Two rows that share the seeds and the data order (the same examples, in the same order, at each seed) are
compared paired by seed: the interval is Student's t on the per-seed differences, which removes what the seed
does to both rows alike. Otherwise the rows are compared unpaired (Welch's t). One seed, or one pair, gives no
interval: the verdict says so.
"""

from __future__ import annotations

import dataclasses
import math
import statistics

from scipy import stats as scipy_stats

LEVEL = 0.95


@dataclasses.dataclass(frozen=True)
class Difference:
    mean: float  # a - b, in points
    low: float | None  # the 95% interval; None with too few seeds
    high: float | None
    n: int  # seed pairs (paired) or the smaller seed count (unpaired)
    paired: bool

    def text(self) -> str:
        if self.low is None:
            return f"{self.mean:+.2f} (n={self.n}, no interval)"
        return f"{self.mean:+.2f} [{self.low:+.2f}, {self.high:+.2f}] (n={self.n}{', paired' if self.paired else ''})"


def mean_interval(values: list[float]) -> tuple[float, float | None]:
    """(mean, half-width of its 95% t interval, None for fewer than 2 values)."""
    m = statistics.fmean(values)
    if len(values) < 2:
        return m, None
    t = scipy_stats.t.ppf(0.5 + LEVEL / 2, len(values) - 1)
    return m, float(t * statistics.stdev(values) / math.sqrt(len(values)))


def difference(a: dict, b: dict, paired: bool) -> Difference | None:
    """a - b for {seed: accuracy} dicts; paired over the seeds both have when `paired`, else Welch. None when a
    side has no result."""
    if not a or not b:
        return None
    if paired:
        seeds = sorted(set(a) & set(b))
        if seeds:
            diffs = [a[s] - b[s] for s in seeds]
            m, half = mean_interval(diffs)
            return Difference(m, None if half is None else m - half, None if half is None else m + half,
                              len(seeds), True)
    xa, xb = list(a.values()), list(b.values())
    m = statistics.fmean(xa) - statistics.fmean(xb)
    if len(xa) < 2 or len(xb) < 2:
        return Difference(m, None, None, min(len(xa), len(xb)), False)
    va, vb = statistics.variance(xa) / len(xa), statistics.variance(xb) / len(xb)
    se = math.sqrt(va + vb)
    if se == 0:
        return Difference(m, m, m, min(len(xa), len(xb)), False)
    dof = (va + vb) ** 2 / (va**2 / (len(xa) - 1) + vb**2 / (len(xb) - 1))
    half = float(scipy_stats.t.ppf(0.5 + LEVEL / 2, dof) * se)
    return Difference(m, m - half, m + half, min(len(xa), len(xb)), False)


def verdict(diff: Difference | None, margin: float | None = None) -> str:
    """The claim 'a > b' (or, with `margin`, 'a is not worse than b by more than margin points') read from the
    interval: reproduces, opposite, or undecided at this scale."""
    if diff is None:
        return "not run"
    if diff.low is None:
        return f"undecided (n={diff.n}: no interval)"
    bound = -margin if margin is not None else 0.0
    if diff.low > bound:
        return "reproduces"
    if diff.high < bound:
        return "opposite"
    return "undecided at this scale"
