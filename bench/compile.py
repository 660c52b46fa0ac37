"""Compile time and memory of the ImageNet train step, with and without `scan_layers` and `remat` (issue 6).

    .venv/bin/python bench/compile.py [--sizes B,L] [--batch 2]

For each model size of `configs/imagenet.py` (256 px, patch 16, d = 32) and each (scan_layers, remat) pair -- remat
is the model's one policy switch, `jax.checkpoint` of every block (nnx.remat when unrolled) -- the jitted step of
`state.make_train_step` is lowered on jax.ShapeDtypeStruct inputs (`train.memory.lower_train_step`: nothing big is
allocated) and compiled for one device at `--batch` images. Each case runs in a fresh child process, so no
compilation cache is shared and the peak RSS is that case's own. Reported: trace+lower and compile seconds, XLA's
memory_analysis (arguments, outputs, temporaries) and the child's peak RSS above its RSS after imports.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")


def _rss_peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def measure_case(size: str, batch: int, scan: bool, remat: bool, image_size: int = 256) -> dict:
    """One case, in this process: lower + compile times and memory figures."""
    from configs import imagenet
    from ldae_jax.train import memory

    config = imagenet.get_config(f"model={size}" if size in imagenet.MODELS else "")
    if size not in imagenet.MODELS:  # small sizes (tests): the ImageNet recipe with another model.size
        config.model.size = size
    config.data.image_size = image_size
    rss0 = _rss_peak_bytes()
    start = time.perf_counter()
    lowered = memory.lower_train_step(config, size, batch, remat=remat, scan_layers=scan)
    lower_s = time.perf_counter() - start
    start = time.perf_counter()
    compiled = lowered.compile()
    compile_s = time.perf_counter() - start
    mem = compiled.memory_analysis()
    return {"size": size, "batch": batch, "image_size": image_size, "scan_layers": scan, "remat": remat,
            "lower_s": lower_s, "compile_s": compile_s,
            "argument_bytes": int(mem.argument_size_in_bytes), "output_bytes": int(mem.output_size_in_bytes),
            "temp_bytes": int(mem.temp_size_in_bytes), "generated_code_bytes": int(mem.generated_code_size_in_bytes),
            "rss_peak_delta_bytes": _rss_peak_bytes() - rss0}


def run_case(size: str, batch: int, scan: bool, remat: bool, image_size: int = 256) -> dict:
    """measure_case in a fresh child process (clean caches, its own peak RSS)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--case", json.dumps([size, batch, scan, remat, image_size])]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        return {"size": size, "batch": batch, "scan_layers": scan, "remat": remat, "error": proc.stderr[-2000:]}
    return json.loads(lines[-1])


def table(cases: list[dict]) -> str:
    mib = lambda b: f"{b / 2**20:,.0f}"  # noqa: E731
    rows = ["| model | batch | scan_layers | remat | lower s | compile s | args MiB | temp MiB | peak RSS +MiB |",
            "|---|---|---|---|---|---|---|---|---|"]
    for c in cases:
        if "error" in c:
            rows.append(f"| {c['size']} | {c['batch']} | {c['scan_layers']} | {c['remat']} | failed: "
                        f"{c['error'].strip().splitlines()[-1][:80] if c['error'].strip() else '?'} |||||")
            continue
        rows.append(f"| {c['size']} | {c['batch']} | {c['scan_layers']} | {c['remat']} | {c['lower_s']:.1f} | "
                    f"{c['compile_s']:.1f} | {mib(c['argument_bytes'])} | {mib(c['temp_bytes'])} | "
                    f"{mib(c['rss_peak_delta_bytes'])} |")
    return "\n".join(rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="B,L", help="model sizes (configs/imagenet.py: B, half_L, L)")
    p.add_argument("--batch", type=int, default=2, help="images per device in the compiled step")
    p.add_argument("--case", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.case:
        print(json.dumps(measure_case(*json.loads(args.case))))
        return
    load = os.getloadavg()[0]
    cases = [run_case(size, args.batch, scan, remat)
             for size, scan, remat in itertools.product(args.sizes.split(","), (False, True), (False, True))]
    res = {"bench": "compile", "backend": "cpu", "cases": cases, "loadavg": [load, os.getloadavg()[0]]}
    print(table(cases))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
