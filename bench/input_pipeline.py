"""Images/s of the tf.data input pipeline (`data/pipeline.py`) per host and per core, against the train step (issue 6).

    .venv/bin/python bench/input_pipeline.py [--jpegs 512] [--batches 10] [--data_dir DIR]

Sources: (a) the embedded Fashion-MNIST (train, centre crop 28 px, as the quickstart reads it); (b) ImageNet-shaped
JPEGs made here (500x375 random textures in a small local TFDS dataset, `BenchJpegs`), random-resized-crop to
256 px (decode_and_crop_jpeg) and centre crop; (c) the `prepared.py` cache of the same images, both augmentations;
plus `eval_batches` of each. Every source is timed twice, in a child process pinned to 1 core
(os.sched_setaffinity: the per-core number) and in one with all cores (the per-host number). The consumer is the
quickstart's jitted train step (`bench/train_step.build_jax`) on a fixed batch, all cores, in this process.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

JPEG_SHAPE = (375, 500, 3)  # a typical ImageNet photo: 500 wide, 375 high


def bench_jpegs_builder(data_dir: str, num: int):
    """A prepared local TFDS dataset of `num` 500x375 JPEGs with smooth random textures (realistic JPEG sizes)."""
    import numpy as np
    import tensorflow as tf
    import tensorflow_datasets as tfds

    class BenchJpegs(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
                "label": tfds.features.ClassLabel(num_classes=1000)}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            rng = np.random.default_rng(0)
            h, w, c = JPEG_SHAPE
            for i in range(num):
                coarse = rng.uniform(0, 255, (h // 8, w // 8, c)).astype(np.float32)
                smooth = tf.image.resize(coarse, (h, w), method="bicubic").numpy()
                image = np.clip(smooth + rng.normal(0, 12, (h, w, c)), 0, 255).astype(np.uint8)
                yield i, {"image": image, "label": int(rng.integers(1000))}

    builder = BenchJpegs(data_dir=data_dir)
    if not builder.is_prepared():
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
            try_download_gcs=False, compute_stats=tfds.download.ComputeStatsMode.SKIP))
    return builder


def rate(batches, n: int, warmup: int) -> float:
    """Images/s of `n` batches of an iterator after `warmup` untimed ones (which fill the prefetch buffers)."""
    for _ in range(warmup):
        next(batches)
    start, images = time.perf_counter(), 0
    for _ in range(n):
        images += len(next(batches)["image"])
    return images / (time.perf_counter() - start)


def measure_sources(data_dir: str, jpegs: int, batches: int, warmup: int = 2, batch: int = 32,
                    fashion_mnist: bool = True) -> dict:
    """{source/mode: images/s} of train_iterator and eval_batches for the three sources, in this process."""
    from ldae_jax.data import pipeline, prepared, sources, splits

    def train(builder, size, augment, batch):
        return rate(pipeline.train_iterator(builder, split="train", global_batch_size=batch, image_size=size,
                                            augment=augment, seed=0, process_index=0, process_count=1),
                    batches, warmup)

    def evaluate(builder, size, batch):
        it = pipeline.eval_batches(builder, split="train", global_batch_size=batch, image_size=size,
                                   process_index=0, process_count=1)
        return rate(it, min(batches, splits.num_examples(builder, "train") // batch - warmup), warmup)

    out = {}
    if fashion_mnist:
        fm = sources.get_source("fashion_mnist_local", os.path.join(data_dir, "tfds"))
        out["fashion_mnist/train"] = train(fm, 28, "center_crop", 256)
        out["fashion_mnist/eval"] = evaluate(fm, 28, 256)
    jp = bench_jpegs_builder(os.path.join(data_dir, "tfds"), jpegs)
    cache_dir = os.path.join(data_dir, "cache")
    with open(os.devnull, "w") as quiet:  # prepare() prints progress lines
        stdout, sys.stdout = sys.stdout, quiet
        try:
            cache = prepared.prepare(jp, "train", cache_dir, 256, batch_size=batch)
        finally:
            sys.stdout = stdout
    for name, builder in (("jpeg", jp), ("cache", cache)):
        for augment in ("random_resized_crop", "center_crop"):
            out[f"{name}/train_{augment}"] = train(builder, 256, augment, batch)
        out[f"{name}/eval"] = evaluate(builder, 256, batch)
    return out


def run_worker(cores: int, args, batches: int | None = None) -> dict:
    """measure_sources in a child process restricted to `cores` CPUs (affinity set before TF starts)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--cores", str(cores), "--jpegs", str(args.jpegs),
           "--batches", str(batches or args.batches), "--data_dir", args.data_dir]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        raise RuntimeError(f"worker ({cores} cores) failed: {proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def train_step_rate(config_spec: str = "configs/quickstart.py", steps: int = 10, overrides=()) -> dict:
    """Images/s the config's jitted train step consumes (fixed batch, all cores): `bench/train_step.build_jax`."""
    import jax

    import train_step as ts  # bench/train_step.py

    config = ts.load_config(config_spec, list(overrides))
    step, state, images, labels, spec = ts.build_jax(config)
    for _ in range(2):  # compile + one warm step
        state, metrics = step(state, images, labels)
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(steps):
        state, metrics = step(state, images, labels)
    jax.block_until_ready((state, metrics))
    sec = (time.perf_counter() - start) / steps
    return {"config": config_spec, "batch_size": spec["batch_size"], "images_per_s": spec["batch_size"] / sec}


def table(res: dict) -> str:
    one, all_, need = res["per_core"], res["per_host"], res["train_step"]["images_per_s"]
    rows = [f"input pipeline, images/s ({res['cores']} cores; quickstart train step consumes {need:.0f} images/s)",
            "| source / mode | 1 core | all cores | all cores / train step |", "|---|---|---|---|"]
    for key in one:
        rows.append(f"| {key} | {one[key]:.0f} | {all_[key]:.0f} | "
                    + (f"{all_[key] / need:.1f}x |" if key.startswith("fashion") else "- |"))
    rows.append(f"cache / JPEG per core: random_resized_crop {res['cache_over_jpeg_rrc']:.1f}x, "
                f"center_crop {res['cache_over_jpeg_center']:.1f}x, eval {res['cache_over_jpeg_eval']:.1f}x")
    return "\n".join(rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jpegs", type=int, default=512, help="ImageNet-shaped JPEGs to generate")
    p.add_argument("--batches", type=int, default=10, help="timed batches per measurement")
    p.add_argument("--steps", type=int, default=10, help="timed train steps")
    p.add_argument("--data_dir", default="", help="where the JPEGs and cache go (reused); default a temp dir")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--cores", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        if args.cores:
            os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:args.cores])
        print(json.dumps(measure_sources(args.data_dir, args.jpegs, args.batches)))
        return
    tmp = None if args.data_dir else tempfile.TemporaryDirectory(prefix="ldae_input_bench_")
    args.data_dir = args.data_dir or tmp.name
    cores = len(os.sched_getaffinity(0))
    load = os.getloadavg()[0]
    run_worker(cores, args, batches=1)  # builds the datasets once, untimed: both timed runs read the same files
    res = {"bench": "input_pipeline", "cores": cores, "per_core": run_worker(1, args),
           "per_host": run_worker(cores, args), "train_step": train_step_rate(steps=args.steps)}
    one = res["per_core"]
    res["cache_over_jpeg_rrc"] = one["cache/train_random_resized_crop"] / one["jpeg/train_random_resized_crop"]
    res["cache_over_jpeg_center"] = one["cache/train_center_crop"] / one["jpeg/train_center_crop"]
    res["cache_over_jpeg_eval"] = one["cache/eval"] / one["jpeg/eval"]
    res["fashion_mnist_over_train_step"] = res["per_host"]["fashion_mnist/train"] / res["train_step"]["images_per_s"]
    res["loadavg"] = [load, os.getloadavg()[0]]
    print(table(res))
    print(json.dumps(res))
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
