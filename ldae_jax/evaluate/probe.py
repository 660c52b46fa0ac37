"""The linear-probe program: probe a run's latest checkpoint and its baselines, write `probe.json`, print a table.

Baselines get the same head, budget and protocol: 'random_init' is the same network before training
(the pre-training init, seed included), 'pixels' the raw image (average-pooled to at most 32 x 32).
"""

from __future__ import annotations

import json
import time

import jax
from etils import epath

from ldae_jax.errors import UserError
from ldae_jax.evaluate import linear_probe
from ldae_jax.train import pretrain, state as state_lib

BASELINES = ("random_init", "pixels")


def describe(config, step: int, encoder_depth: int) -> dict:
    p = config.probe
    return {
        "l-DAE": f"l-DAE, step {step}, t={p.t} {'noisy' if p.noisy else 'clean'}, block {p.block or encoder_depth}",
        "random_init": "same network, random init",
        "pixels": "raw pixels",
    }


def run_probe(config, workdir: str, output: str = "probe.json") -> dict:
    """Top-1 (%) of the linear probe for the run in `workdir` and the configured baselines, saved as `output`."""
    baselines = [b for b in config.probe.baselines.split(",") if b]
    unknown = set(baselines) - set(BASELINES)
    if unknown:
        raise UserError(f"probe.baselines: unknown {sorted(unknown)}; choose from {BASELINES}")
    run = pretrain.setup_run(config, workdir)
    step, params = pretrain.restore_params(config, workdir, run)
    graphdef = state_lib.model_graph(run.model_cfg)
    p = config.probe
    model_fn = linear_probe.model_features_fn(run, graphdef, t=p.t, noisy=p.noisy, block=p.block, seed=config.seed)
    candidates = {"l-DAE": lambda images, i: model_fn(params, images, i)}
    if "random_init" in baselines:
        init = state_lib.init_params(run.model_cfg, jax.random.key(config.seed))
        candidates["random_init"] = lambda images, i: model_fn(init, images, i)
    if "pixels" in baselines:
        pixels = jax.jit(linear_probe.pixel_features)
        candidates["pixels"] = lambda images, i: pixels(images)

    num_classes = run.builder.info.features["label"].num_classes
    results = {}
    for name, features in candidates.items():
        start = time.perf_counter()
        if jax.process_index() == 0:
            print(f"Probing {name}:", flush=True)
        train = linear_probe.extract(run, features, config.data.train_split, p.feature_batch_size, "train")
        test = linear_probe.extract(run, features, config.data.eval_split, p.feature_batch_size, "test")
        out = linear_probe.train_linear_probe(
            train, test, num_classes=num_classes, epochs=p.epochs, batch_size=p.batch_size, base_lr=p.base_lr,
            optimizer=p.optimizer,
            seed=config.seed,
        )
        out["seconds"] = time.perf_counter() - start
        out["feature_dim"] = int(train[0].shape[1])
        results[name] = out
        if jax.process_index() == 0:
            print(f"  top-1 {out['test_top1']:.2f}% (train {out['train_top1']:.2f}%) in {out['seconds']:.0f}s",
                  flush=True)

    summary = {"step": step, "protocol": dict(p), "results": results}
    if jax.process_index() == 0:
        (epath.Path(workdir) / output).write_text(json.dumps(summary, indent=2))
        print(format_table(summary, describe(config, step, run.model_cfg.encoder_depth)))
    return summary


def format_table(summary: dict, labels: dict) -> str:
    rows = ["| features | dim | linear-probe top-1 (%) |", "|---|---|---|"]
    for name, r in summary["results"].items():
        rows.append(f"| {labels.get(name, name)} | {r['feature_dim']} | {r['test_top1']:.2f} |")
    return "\n".join(rows)
