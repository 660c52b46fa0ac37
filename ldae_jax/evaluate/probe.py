"""The linear-probe program: probe a run's latest checkpoint and its baselines, write `probe.json`, print a table,
and give TensorBoard the results (`probe/NAME/linear_top1`, `probe/NAME/knn_top1` at the checkpoint's step).
Every candidate also gets the weighted kNN accuracy (evaluate/knn.py) of the same features.

Baselines get the same head, budget and protocol: 'random_init' is the same network before training
(the pre-training init, seed included), 'pixels' the raw image (average-pooled to at most 32 x 32).
"""

from __future__ import annotations

import json
import time

import jax
from etils import epath

from clu import metric_writers

from ldae_jax.errors import UserError
from ldae_jax.evaluate import knn, linear_probe, paper_probe
from ldae_jax.runtime import timings
from ldae_jax.train import state as state_lib

BASELINES = ("random_init", "pixels")


def probed_block(config, encoder_depth: int) -> int:
    """The block whose output the probe reads, counted from 1 as the paper's "output of block k" (Appendix A):
    `probe.block`, whose 0 stands for the encoder's last block (`model.encoder_depth`). The console's table and
    probe.json's `protocol.block` give this number, never the 0."""
    return config.probe.block or encoder_depth


def describe(config, step: int, encoder_depth: int) -> dict:
    p = config.probe
    return {
        "l-DAE": f"l-DAE, step {step}, t={p.t} {'noisy' if p.noisy else 'clean'}, "
                 f"block {probed_block(config, encoder_depth)}",
        "random_init": "same network, random init",
        "pixels": "raw pixels",
    }


def baselines(config) -> list[str]:
    return [b for b in config.probe.baselines.split(",") if b]


def check(config, local: bool = True) -> None:
    """The probe's baselines, before any data is read."""
    del local  # no file named by the config
    unknown = set(baselines(config)) - set(BASELINES)
    if unknown:
        raise UserError(f"probe.baselines: unknown {', '.join(sorted(unknown))}; choose from {', '.join(BASELINES)} "
                        "(comma-separated, or '' for none)")


def run_probe(exp, output: str = "probe.json") -> dict:
    """Top-1 (%) of the linear probe for the run `exp` and the configured baselines, saved in its workdir as
    `output`."""
    run, config, workdir = exp, exp.config, exp.workdir
    step, params = exp.restore_params()
    graphdef = state_lib.model_graph(run.model_cfg)
    p = config.probe
    model_fn = linear_probe.model_features_fn(run, graphdef, t=p.t, noisy=p.noisy, block=p.block, seed=config.seed)
    candidates = {"l-DAE": (model_fn, params)}  # name -> (features(params, images, batch_index), params)
    if "random_init" in baselines(config):
        candidates["random_init"] = (model_fn, state_lib.init_params(run.model_cfg, jax.random.key(config.seed)))
    if "pixels" in baselines(config):
        pixels = jax.jit(linear_probe.pixel_features)
        candidates["pixels"] = (lambda _, images, i: pixels(images), None)

    num_classes = run.builder.info.features["label"].num_classes
    results = {}
    for name, (features, weights) in candidates.items():
        start = time.perf_counter()
        if jax.process_index() == 0:
            print(f"Probing {name} ({p.mode} protocol):", flush=True)
        if p.mode == "paper":
            with timings.phase(f"{name}: paper protocol"):
                out = paper_probe.train_and_evaluate(run, features, weights, num_classes=num_classes,
                                                     seed=config.seed,
                                                     state_path=str(epath.Path(workdir) / f"probe_state_{name}.npz"))
            dim = paper_probe.feature_dim(run, features, weights)
            with timings.phase(f"{name}: kNN"):  # no cached features here: the kNN evaluator's subsets
                def subset_features(images, i, features=features, weights=weights):
                    return features(weights, images, i)

                k = config.knn
                pair = [knn.first_examples(run, subset_features,
                                           knn.subset_batches(run, split, n, p.feature_batch_size)(), n)
                        for split, n in ((config.data.train_split, k.train_examples),
                                         (config.data.eval_split, k.test_examples))]
                out["knn_top1"] = knn.knn_top1(*pair, num_classes=num_classes, k=k.k, temperature=k.temperature)
                out["knn_examples"] = [len(pair[0][1]), len(pair[1][1])]
        else:
            def cached(images, i, features=features, weights=weights):
                return features(weights, images, i)

            with timings.phase(f"{name}: features"):
                train = linear_probe.extract(run, cached, config.data.train_split, p.feature_batch_size, "train")
                test = linear_probe.extract(run, cached, config.data.eval_split, p.feature_batch_size, "test")
            with timings.phase(f"{name}: linear head"):
                out = linear_probe.train_linear_probe(
                    train, test, num_classes=num_classes, epochs=p.epochs, batch_size=p.batch_size,
                    base_lr=p.base_lr, optimizer=p.optimizer, seed=config.seed)
            with timings.phase(f"{name}: kNN"):
                out["knn_top1"] = knn.knn_top1(train, test, num_classes=num_classes, k=config.knn.k,
                                               temperature=config.knn.temperature, progress="  kNN")
                out["knn_examples"] = [len(train[1]), len(test[1])]
            dim = int(train[0].shape[1])
        out["seconds"] = time.perf_counter() - start
        out["feature_dim"] = dim
        results[name] = out
        if jax.process_index() == 0:
            print(f"  top-1 {out['test_top1']:.2f}% (train {out['train_top1']:.2f}%), kNN {out['knn_top1']:.2f}% "
                  f"in {out['seconds']:.0f}s", flush=True)

    protocol = {**dict(p), "block": probed_block(config, run.model_cfg.encoder_depth)}
    summary = {"step": step, "protocol": protocol, "knn": dict(config.knn), "results": results}
    if jax.process_index() == 0:
        (epath.Path(workdir) / output).write_text(json.dumps(summary, indent=2))
        print(format_table(summary, describe(config, step, run.model_cfg.encoder_depth)))
    write_tensorboard(workdir, summary, output)
    return summary


def write_tensorboard(workdir: str, summary: dict, output: str) -> None:
    """The probe's numbers as TensorBoard scalars at the probed step, under the result file's name."""
    prefix = epath.Path(output).stem  # 'probe', or 'probe_ROW' for a ladder row that only changes the probe
    writer = metric_writers.create_default_writer(workdir, just_logging=jax.process_index() != 0,
                                                  asynchronous=False)
    scalars = {}
    for name, r in summary["results"].items():
        scalars[f"{prefix}/{name}/linear_top1"] = r["test_top1"]
        scalars[f"{prefix}/{name}/knn_top1"] = r["knn_top1"]
    writer.write_scalars(summary["step"], scalars)
    writer.close()


def format_table(summary: dict, labels: dict) -> str:
    rows = ["| features | dim | linear-probe top-1 (%) | kNN top-1 (%) |", "|---|---|---|---|"]
    for name, r in summary["results"].items():
        knn_top1 = f"{r['knn_top1']:.2f}" if "knn_top1" in r else ""
        rows.append(f"| {labels.get(name, name)} | {r['feature_dim']} | {r['test_top1']:.2f} | {knn_top1} |")
    return "\n".join(rows)
