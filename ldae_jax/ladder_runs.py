"""The runs of a ladder invocation: plan them (one per distinct config), run them here one after another, print
their commands for a cluster, and gather their probe results. The CLI is `ldae_jax.ladder`."""

from __future__ import annotations

import json
import time

CONFIG_FILE = "configs/ladder/rows.py"


def plan(rows: list[str], scale: str, seeds: list[int]):
    """[(row, seed, config, run_key)]; run_key is the first row with an identical config (shared run)."""
    from configs.ladder import rows as rows_lib
    from ldae_jax import config_lib, objectives
    from ldae_jax.tokenizers import tokenizer as tok_lib
    from ldae_jax.train import checkpoint

    from configs import common

    out, seen = [], {}
    for seed in seeds:
        for row in rows:
            config = rows_lib.get_config(f"row={row},scale={scale},seed={seed}")
            config_lib.check_fields(config, common.ldae_base())
            tok_lib.check_config(config)
            objectives.objective_from(config, num_classes=10)
            key = json.dumps(checkpoint.config_fingerprint(config), sort_keys=True)
            out.append((row, seed, config, seen.setdefault(key, f"{row}/seed{seed}")))
    return out


def run_dir(root: str, run_key: str) -> str:
    return f"{root}/{run_key}"


def run_local(planned, root: str) -> None:
    from ldae_jax import stages

    todo = [p for p in planned if p[3] == f"{p[0]}/seed{p[1]}"]
    start = time.perf_counter()
    for i, (row, seed, config, key) in enumerate(todo):
        workdir = run_dir(root, key)
        if _read_probe(workdir) is not None:
            print(f"[{i + 1}/{len(todo)}] {key}: done earlier", flush=True)
            continue
        elapsed = time.perf_counter() - start
        eta = f", ETA {elapsed / i * (len(todo) - i) / 60:.0f} min" if i else ""
        print(f"[{i + 1}/{len(todo)}] {key}{eta}", flush=True)
        if stages.run(config, workdir, "pretrain_probe").get("pretrain", {}).get("preempted"):
            print("Preempted: rerun the same command to resume the ladder.", flush=True)
            return


def print_commands(planned, root: str, scale: str) -> None:
    for row, seed, _, key in planned:
        if key == f"{row}/seed{seed}":
            print(f"python -m ldae_jax.main --config={CONFIG_FILE}:row={row},scale={scale},seed={seed} "
                  f"--workdir={run_dir(root, key)} --mode=pretrain_probe")


def _read_probe(workdir: str):
    from etils import epath

    path = epath.Path(workdir) / "probe.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())["results"]["l-DAE"]["test_top1"]


def gather(planned, root: str) -> dict:
    """{row: [top-1 per seed that finished]}."""
    results = {}
    for row, seed, _, key in planned:
        top1 = _read_probe(run_dir(root, key))
        results.setdefault(row, [])
        if top1 is not None:
            results[row].append(top1)
    return results
