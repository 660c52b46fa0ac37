"""Huge pages for the host memory of CPU runs: the one glibc setting that makes XLA:CPU train steps 1.3x faster.

Why: XLA:CPU allocates each step's temporaries anew, glibc serves such large blocks with mmap and unmaps them on
free, so every step faults its whole working set back in 4 KiB at a time: about 100k page faults and a quarter
of the CPU time in the kernel for a quickstart step. With `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`, malloc
marks those blocks for transparent huge pages (where /sys/kernel/mm/transparent_hugepage/enabled is `madvise` or
`always`): about 500 faults a step (bench/README.md). glibc reads tunables only when a process starts, so the
launch scripts export it (launch/env.sh; `environ` for Python launchers) and a CPU run started without it
prints how to set it (`hint`). Harmless elsewhere: an older glibc ignores the tunable, and accelerator runs
keep their tensors off the host heap.
"""

from __future__ import annotations

import os

TUNABLE = "glibc.malloc.hugetlb=1"


def active(env=None) -> bool:
    """Whether GLIBC_TUNABLES in `env` (default: this process's environment) asks malloc for huge pages."""
    tunables = (os.environ if env is None else env).get("GLIBC_TUNABLES", "")
    return any(t.replace(" ", "") in (TUNABLE, "glibc.malloc.hugetlb=2") for t in tunables.split(":"))


def environ(env=None) -> dict:
    """A copy of `env` (default: os.environ) with the tunable added to any GLIBC_TUNABLES already there."""
    env = dict(os.environ if env is None else env)
    if not active(env):
        env["GLIBC_TUNABLES"] = ":".join(t for t in (env.get("GLIBC_TUNABLES", ""), TUNABLE) if t)
    return env


def hint(backend: str) -> str | None:
    """A one-line note for a CPU run whose process started without the tunable; None when there is nothing to say."""
    if backend != "cpu" or active() or not os.path.exists("/proc/self"):  # Linux only
        return None
    return (f"note: host malloc returns XLA's step buffers to the OS each step; `export GLIBC_TUNABLES={TUNABLE}` "
            "before starting makes CPU train steps about 1.3x faster (the launch/*.sh scripts do it)")
