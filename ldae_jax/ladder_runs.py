"""The runs of a ladder invocation: plan them (one per distinct config), run them here one after another, print
their commands for a cluster, and gather their probe results. The CLI is `ldae_jax.ladder`."""

from __future__ import annotations

import dataclasses
import json
import time

CONFIG_FILE = "configs/ladder/rows.py"


@dataclasses.dataclass(frozen=True)
class PlannedRun:
    """One (row, seed): its config, the run it shares (rows with identical pre-training share one) and the file
    its probe result goes to (rows that differ only in the probe, like the appendix's, get their own)."""

    row: str
    seed: int
    config: object
    run_key: str
    probe_file: str


def plan(rows: list[str], scale: str, seeds: list[int], vgg16: str = "") -> list[PlannedRun]:
    """Every (row, seed), each config built and checked, so a mistake stops the ladder before any compute."""
    from configs import common
    from configs.ladder import rows as rows_lib
    from ldae_jax import config_lib, objectives
    from ldae_jax.tokenizers import tokenizer as tok_lib
    from ldae_jax.train import checkpoint

    out, owners = [], {}
    for seed in seeds:
        for row in rows:
            config = rows_lib.get_config(f"row={row},scale={scale},seed={seed},vgg16={vgg16}")
            config_lib.check_fields(config, common.ldae_base())
            tok_lib.check_config(config)
            objectives.objective_from(config, num_classes=10)
            key = json.dumps(checkpoint.config_fingerprint(config), sort_keys=True)
            owner_row, owner_probe = owners.setdefault(key, (row, dict(config.probe)))
            probe_file = "probe.json" if dict(config.probe) == owner_probe else f"probe_{row}.json"
            out.append(PlannedRun(row, seed, config, f"{owner_row}/seed{seed}", probe_file))
    return out


def run_dir(root: str, run_key: str) -> str:
    return f"{root}/{run_key}"


def run_local(planned: list[PlannedRun], root: str) -> None:
    """Runs what is not done yet, one after another, with progress and ETA; stops cleanly on preemption."""
    from ldae_jax import stages

    todo, seen = [], set()
    for p in planned:
        if (p.run_key, p.probe_file) not in seen:
            seen.add((p.run_key, p.probe_file))
            todo.append(p)
    start, ran = time.perf_counter(), 0
    for i, p in enumerate(todo):
        workdir = run_dir(root, p.run_key)
        label = f"{p.run_key}" + (f" ({p.probe_file})" if p.probe_file != "probe.json" else "")
        if _read_probe(workdir, p.probe_file) is not None:
            print(f"[{i + 1}/{len(todo)}] {label}: done earlier", flush=True)
            continue
        eta = f", ETA {(time.perf_counter() - start) / ran * (len(todo) - i) / 60:.0f} min" if ran else ""
        print(f"[{i + 1}/{len(todo)}] {label}{eta}", flush=True)
        out = stages.run(p.config, workdir, "pretrain_probe", probe_file=p.probe_file)
        ran += 1
        if out.get("pretrain", {}).get("preempted"):
            print("Preempted: rerun the same command to resume the ladder.", flush=True)
            return


def print_commands(planned: list[PlannedRun], root: str, scale: str, vgg16: str = "") -> None:
    """One command per distinct run (and per extra probe of a shared run), for a cluster scheduler."""
    seen = set()
    for p in planned:
        if (p.run_key, p.probe_file) in seen:
            continue
        seen.add((p.run_key, p.probe_file))
        extra = "" if p.probe_file == "probe.json" else f" --probe_file={p.probe_file}"
        vgg = f",vgg16={vgg16}" if vgg16 else ""
        print(f"python -m ldae_jax.main --config={CONFIG_FILE}:row={p.row},scale={scale},seed={p.seed}{vgg} "
              f"--workdir={run_dir(root, p.run_key)} --mode=pretrain_probe{extra}")


def _read_probe(workdir: str, probe_file: str):
    from etils import epath

    path = epath.Path(workdir) / probe_file
    if not path.exists():
        return None
    return json.loads(path.read_text())["results"]["l-DAE"]["test_top1"]


def gather(planned: list[PlannedRun], root: str) -> dict:
    """{row: [top-1 of each seed that finished]}."""
    results = {}
    for p in planned:
        top1 = _read_probe(run_dir(root, p.run_key), p.probe_file)
        results.setdefault(p.row, [])
        if top1 is not None:
            results[p.row].append(top1)
    return results
