"""The prepared cache gives the JPEG path's centre crops exactly, and opens with clear errors when it does not fit."""
from __future__ import annotations

import contextlib
import time
from unittest import mock

import numpy as np
import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.core import dataset_builder

from ldae_jax.data import pipeline, prepared, splits
from ldae_jax.errors import DataError

# The real methods, taken at import (before `mock_root` patches them for every builder).
_REAL_INIT = dataset_builder.DatasetBuilder.__init__
_REAL_METHODS = {"download_and_prepare": dataset_builder.DatasetBuilder.download_and_prepare,
                 "as_dataset": dataset_builder.DatasetBuilder.as_dataset,
                 "_as_dataset": dataset_builder.FileReaderBuilder._as_dataset}
SIZE = 64


@contextlib.contextmanager
def real_cache():
    """Inside `mock_root`: the mock imagenet2012 stays mocked, but the cache is really written and read."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(dataset_builder.DatasetBuilder, "__init__", _REAL_INIT))
        for name, fn in _REAL_METHODS.items():
            stack.enter_context(mock.patch.object(prepared.PreparedImages, name, fn))
        yield


def _eval(builder):
    batches = list(pipeline.eval_batches(builder, split="validation", global_batch_size=16, image_size=SIZE,
                                         process_index=0, process_count=1))
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def _train(builder, augment, n=6):
    it = pipeline.train_iterator(builder, split="validation", global_batch_size=8, image_size=SIZE, augment=augment,
                                 seed=3, process_index=0, process_count=1)
    return [next(it) for _ in range(n)]  # 5 steps an epoch: crosses into epoch 1


def test_prepared_matches_jpeg_centre_crops(mock_root, tmp_path):
    source = tfds.builder("imagenet2012", data_dir=mock_root)
    out = str(tmp_path / "cache")
    with real_cache():
        start = time.perf_counter()
        cache = prepared.prepare(source, "validation", out, SIZE, batch_size=16)
        print(f"prepare: {time.perf_counter() - start:.2f} s")
        cache = prepared.prepared_builder(out, "imagenet2012", "validation", SIZE)
        assert cache.info.splits["validation"].num_examples == 40
        routed = prepared.open_splits(out, "imagenet2012", ("validation[:50%]",), SIZE)
        assert routed.data_dir == {"validation": cache.data_dir}
        assert splits.num_examples(routed, "validation[:50%]") == 20
        half = list(pipeline.eval_batches(routed, split="validation[:50%]", global_batch_size=8, image_size=SIZE,
                                          process_index=1, process_count=2))  # a per-process slice of a slice
        assert sum(b["mask"].sum() for b in half) == 10

        want, got = _eval(source), _eval(cache)
        assert got["image"].dtype == np.uint8 and got["image"].shape == (48, SIZE, SIZE, 3)
        for key in ("image", "label", "mask"):
            assert np.array_equal(want[key], got[key]), key
        assert got["mask"].sum() == 40 and got["image"][~got["mask"]].max() == 0 and want["image"].std() > 10

        # Same read order and one shard on both sides, so the shuffles (and epochs) line up exactly.
        for w, g in zip(_train(source, "center_crop"), _train(cache, "center_crop")):
            assert np.array_equal(w["image"], g["image"]) and np.array_equal(w["label"], g["label"])

        crops = _train(cache, "random_resized_crop", n=2)
        assert all(b["image"].dtype == np.uint8 and b["image"].shape == (8, SIZE, SIZE, 3) for b in crops)
        assert not np.array_equal(crops[0]["image"], _train(cache, "center_crop", n=1)[0]["image"])

        with pytest.raises(DataError, match="holds 64 px images, not image_size=32"):
            next(pipeline.eval_batches(cache, split="validation", global_batch_size=8, image_size=32,
                                       process_index=0, process_count=1))
        timings = {}
        for name, builder in [("source (mock JPEG)", source), ("prepared", cache)]:
            _eval(builder)  # warm up tf.function tracing
            start = time.perf_counter()
            _eval(builder)
            timings[name] = 40 / (time.perf_counter() - start)
        print("eval_batches images/s on 40 images: " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))

    with pytest.raises(DataError, match=r"No prepared cache imagenet2012-validation-32 .* holds only "
                                        r"imagenet2012-validation-64\. Make it with"):
        prepared.prepared_builder(out, "imagenet2012", "validation", 32)
    with pytest.raises(DataError, match="holds no cache"):
        prepared.prepared_builder(str(tmp_path / "nothing"), "imagenet2012", "validation", SIZE)
    with pytest.raises(DataError, match="a cache holds one whole split"):
        prepared.prepare(source, "validation[:10]", out, SIZE)


@pytest.mark.slow
def test_a_run_reads_its_train_and_eval_splits_from_caches(tmp_path, mock_root):
    """data.prepared_dir: pre-training (random resized crops of the cached squares) and the probe run on caches."""
    from ldae_jax import modes
    from tests.test_imagenet import shrunk

    out = str(tmp_path / "cache")
    source = tfds.builder("imagenet2012", data_dir=mock_root)
    with real_cache():
        for split in ("train", "validation"):
            prepared.prepare(source, split, out, 256, batch_size=16)
        result = modes.run(shrunk(mock_root, data__prepared_dir=out), str(tmp_path / "run"), "pretrain_probe")
    assert 0 <= result["probe"]["results"]["l-DAE"]["test_top1"] <= 100
    with pytest.raises(DataError, match="No prepared cache imagenet2012-train-128"):
        modes.run(shrunk(mock_root, data__prepared_dir=out, data__image_size=128), str(tmp_path / "x"), "pretrain")
