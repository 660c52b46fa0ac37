"""ldae_jax/runtime/host_malloc.py: the GLIBC_TUNABLES helpers, and the page faults the tunable saves XLA:CPU."""
import os
import re
import subprocess
import sys

import pytest

from ldae_jax.runtime import host_malloc


def test_environ_adds_the_tunable_once_and_keeps_others():
    env = host_malloc.environ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2", "A": "1"})
    assert env == {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1", "A": "1"}
    assert host_malloc.environ(env) == env and host_malloc.active(env)
    assert host_malloc.environ({}) == {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
    assert not host_malloc.active({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"})


def test_hint_only_for_cpu_runs_started_without_it(monkeypatch):
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    assert "GLIBC_TUNABLES=glibc.malloc.hugetlb=1" in host_malloc.hint("cpu")
    assert host_malloc.hint("gpu") is None and host_malloc.hint("tpu") is None
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1")
    assert host_malloc.hint("cpu") is None


CHILD = r"""
import resource, jax, jax.numpy as jnp
f = jax.jit(lambda x: x * 2.0 + 1.0)
x = jnp.ones((4096, 4096), jnp.float32)  # 64 MiB in and out: above glibc's largest mmap threshold (32 MiB)
f(x).block_until_ready()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    f(x).block_until_ready()  # each output is freed when the next call replaces it, as a train step's are
print("faults", (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 5)
"""


def _faults_per_call(env) -> int:
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True).stdout
    return int(re.search(r"faults (\d+)", out).group(1))


@pytest.mark.skipif(not os.path.exists("/sys/kernel/mm/transparent_hugepage/enabled") or "[never]" in open(
    "/sys/kernel/mm/transparent_hugepage/enabled").read(), reason="no transparent huge pages on this kernel")
def test_tunable_cuts_the_page_faults_of_repeated_xla_calls():
    plain = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    without, with_ = _faults_per_call(plain), _faults_per_call(host_malloc.environ(plain))
    assert without > 8000  # 64 MiB of fresh 4 KiB pages a call: 16384 faults
    assert with_ < without / 5, (without, with_)
