"""What `model.dtype = 'auto'` computes in: bfloat16 where the hardware multiplies it natively (TPU, GPU, and
CPUs with AVX512_BF16 or AMX-BF16 dot products), float32 elsewhere, where bfloat16 would be emulated and slower.
Parameters stay float32 either way; only the compute precision changes.
"""

from __future__ import annotations

import functools

import jax

DTYPES = ("auto", "float32", "bfloat16")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # as /proc/cpuinfo names them


@functools.lru_cache(maxsize=None)
def cpu_flags() -> frozenset:
    """The CPU's feature flags (Linux /proc/cpuinfo); empty where they cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16(backend: str | None = None, flags: frozenset | None = None) -> tuple[bool, str]:
    """(whether bfloat16 dots are native here, why) for `backend` (default: JAX's)."""
    backend = backend or jax.default_backend()
    if backend != "cpu":
        return True, f"{backend} multiplies bfloat16 natively"
    found = sorted(set(BF16_CPU_FLAGS) & (cpu_flags() if flags is None else flags))
    if found:
        return True, f"this CPU has {', '.join(f.upper() for f in found)}"
    return False, "this CPU has no native bfloat16 dot products (no AVX512_BF16 or AMX-BF16)"


def resolve(dtype: str, backend: str | None = None, flags: frozenset | None = None) -> tuple[str, str]:
    """(the compute dtype, why) of a config's `model.dtype`."""
    if dtype != "auto":
        return dtype, "set in the config"
    native, why = native_bf16(backend, flags)
    return ("bfloat16" if native else "float32"), f"auto: {why}"
