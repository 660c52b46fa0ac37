"""The FID of a run (Table 1's FID-50K column): generate `fid.num_samples` images with the run's latest
checkpoint, and compare their Inception-v3 features with those of the reference split's centre crops.

Writes `workdir/fid.json`. The reference statistics are cached next to it (`fid_reference_<hash>.npz`, keyed by
the split, size, count and the Inception weights), since every run of a dataset compares with the same images.
Generation runs on process 0 (as the samples figure); the other hosts only join the parameter gather.
"""

from __future__ import annotations

import hashlib
import json
import time

import jax
import numpy as np
from etils import epath
from jax.experimental import multihost_utils

from ldae_jax.data import pipeline
from ldae_jax.evaluate import fid, generate, inception
from ldae_jax.tokenizers import files


def check_config(config, local: bool = True) -> None:
    """The Inception weights file, before any compute (the fid fields' ranges are the schema's)."""
    if local:
        inception.load_inception(config.fid.inception_weights)


def reference_statistics(config, builder, params: dict) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) of the Inception features of the reference split."""
    f = config.fid
    split = config.data.train_split if f.reference == "train" else config.data.eval_split
    images, seen = [], 0
    for batch in pipeline.eval_batches(builder, split=split, global_batch_size=f.batch_size,
                                       image_size=config.data.image_size, process_index=0, process_count=1):
        keep = batch["image"][batch["mask"]][: f.reference_examples - seen]
        images.append(keep.astype(np.float32) / 127.5 - 1.0)
        seen += len(keep)
        if seen >= f.reference_examples:
            break
    feats = inception.batched_features(params, np.concatenate(images), f.batch_size,
                                       progress="FID: reference features")
    return fid.statistics(feats)


def _reference_key(config) -> str:
    f = config.fid
    key = [config.data.name, config.data.train_split if f.reference == "train" else config.data.eval_split,
           config.data.image_size, f.reference_examples, f.inception_weights]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]


def run_fid(exp) -> dict:
    """Generates, measures and writes workdir/fid.json for the run `exp`; returns its contents."""
    run, config, workdir = exp, exp.config, exp.workdir
    f = config.fid
    step, params = exp.restore_params()
    params = multihost_utils.process_allgather(params, tiled=True)
    out = {"step": step, "num_samples": f.num_samples, "reference": f.reference, "num_steps": f.num_steps,
           "eta": f.eta, "guidance": f.guidance}
    if jax.process_index() != 0:
        return out
    start, weights = time.perf_counter(), inception.load_inception(f.inception_weights)
    cache = epath.Path(workdir) / f"fid_reference_{_reference_key(config)}.npz"
    if cache.exists():
        ref = files.read_npz(str(cache), remake="delete it: the FID stage computes the reference statistics again")
        ref_mean, ref_cov = ref["mean"], ref["cov"]
    else:
        print(f"FID: Inception features of up to {f.reference_examples} {f.reference} images", flush=True)
        ref_mean, ref_cov = reference_statistics(config, run.builder, weights)
        files.save_npz(str(cache), {"mean": ref_mean, "cov": ref_cov}, {}, dtype=np.float64)
    print(f"FID: generating {f.num_samples} images ({f.num_steps} steps, eta {f.eta})", flush=True)
    images = generate.generate_images(
        run, params, f.num_samples, jax.random.key(config.seed + 1), labels=generate.balanced_labels(
            run.objective, f.num_samples), num_steps=f.num_steps, eta=f.eta, guidance=f.guidance,
        batch_size=f.batch_size, progress="FID: generating")
    gen_mean, gen_cov = fid.statistics(inception.batched_features(weights, images, f.batch_size,
                                                                  progress="FID: features of the samples"))
    out["fid"] = fid.frechet_distance(gen_mean, gen_cov, ref_mean, ref_cov)
    out["seconds"] = time.perf_counter() - start
    (epath.Path(workdir) / "fid.json").write_text(json.dumps(out, indent=1))
    print(f"FID {out['fid']:.2f} ({f.num_samples} samples vs {f.reference}) in {out['seconds'] / 60:.1f} min",
          flush=True)
    return out
