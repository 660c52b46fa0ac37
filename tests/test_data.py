"""Tests of ldae_jax.data: the local Fashion-MNIST builder (on the real Debian files) and the per-host pipeline."""
import collections
import gzip
import hashlib
import itertools
import json
import os
import re
import shutil
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from ldae_jax.data import datasets, fashion_mnist, pipeline, sources, splits
from ldae_jax.errors import DataError
from ldae_jax.errors import UserError

SOURCE_DIR = fashion_mnist.resolve_source_dir()
needs_debian_files = pytest.mark.skipif(
    not os.path.isfile(os.path.join(SOURCE_DIR, "train-images-idx3-ubyte.gz")),
    reason=f"Fashion-MNIST IDX files not in {SOURCE_DIR} (apt-get install -y dataset-fashion-mnist)")


@pytest.fixture(scope="session")
def fm_builder():
    """Fashion-MNIST prepared once per session (about 9 s) into the session's TFDS_DATA_DIR (tests/conftest.py),
    the same data_dir every run (and every process) of the session reads, so nothing prepares it twice."""
    if not os.path.isfile(os.path.join(SOURCE_DIR, "train-images-idx3-ubyte.gz")):
        pytest.skip(f"Fashion-MNIST IDX files not in {SOURCE_DIR}")
    return sources.get_source("fashion_mnist_local", None)


def _split_contents(builder, split):
    """Counter of (image bytes, label) over a split, read directly from TFDS."""
    data = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
    return collections.Counter(zip((x.tobytes() for x in data["image"]), data["label"].tolist()))


def _take(iterator, n):
    return list(itertools.islice(iterator, n))


# ------------------------------------------------------------------------------------- Fashion-MNIST builder


@needs_debian_files
def test_fashion_mnist_builder_matches_the_idx_files(fm_builder):
    assert fm_builder.name == "fashion_mnist_local" and str(fm_builder.version) == "1.0.0"
    assert splits.num_examples(fm_builder, "train") == 60_000
    assert splits.num_examples(fm_builder, "test") == 10_000
    assert fm_builder.info.features["label"].num_classes == 10
    test = tfds.as_numpy(fm_builder.as_dataset(split="test", batch_size=-1))
    assert test["image"].shape == (10_000, 28, 28, 1) and test["image"].dtype == np.uint8
    assert set(np.unique(test["label"])) == set(range(10))
    assert 60 < test["image"].mean() < 85 and 80 < test["image"].std() < 100  # Fashion-MNIST: ~73 and ~90
    images, labels = fashion_mnist.read_split(SOURCE_DIR, "test")
    assert np.bincount(test["label"], minlength=10).tolist() == np.bincount(labels, minlength=10).tolist()
    assert test["image"].astype(np.int64).sum() == images.astype(np.int64).sum()
    assert _split_contents(fm_builder, "test") == collections.Counter(
        zip((x.tobytes() for x in images), labels.tolist()))


@needs_debian_files
def test_png_bytes_are_the_ones_tfds_would_write():
    images, _ = fashion_mnist.read_split(SOURCE_DIR, "test")
    feature = tfds.features.Image(shape=(28, 28, 1))
    assert fashion_mnist._encode_png(images[:4]).tolist() == [feature.encode_example(x) for x in images[:4]]


@needs_debian_files
def test_prepared_builder_is_reused_without_preparing_again(fm_builder, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("prepared again")

    monkeypatch.setattr(fashion_mnist.FashionMnistLocal, "download_and_prepare", fail)
    again = sources.get_source("fashion_mnist_local", os.fspath(fm_builder.data_dir_root))
    assert again.info.splits["train"].num_examples == 60_000


def test_missing_files_say_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("LDAE_FASHION_MNIST_DIR", str(tmp_path / "empty"))
    with pytest.raises(DataError, match=r"apt-get install -y dataset-fashion-mnist.*LDAE_FASHION_MNIST_DIR") as e:
        sources.get_source("fashion_mnist_local", str(tmp_path / "data"))
    assert str(tmp_path / "empty") in str(e.value)


@pytest.mark.parametrize("content, message", [
    (b"\x00\x00\x08\x03" + (10).to_bytes(4, "big"), "magic"),  # an images header in a labels file
    (b"\x00\x00\x08\x01" + (10).to_bytes(4, "big") + bytes(9), "truncated"),
    (None, "not a readable gzip"),
])
def test_corrupt_idx_file_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "labels.gz"
    path.write_bytes(b"not gzip at all" if content is None else gzip.compress(content))
    with pytest.raises(DataError, match=message):
        fashion_mnist.read_idx(str(path), ndim=1)


@needs_debian_files
def test_corrupt_file_fails_preparation_cleanly(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in os.listdir(SOURCE_DIR):
        os.symlink(os.path.join(SOURCE_DIR, name), source / name)
    (source / "t10k-labels-idx1-ubyte.gz").unlink()
    (source / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01" + (9_999).to_bytes(4, "big")
                                                                     + bytes(9_999)))
    with pytest.raises(DataError, match=r"expected \(10000, 28, 28\) and \(10000,\)"):
        fashion_mnist.prepared_builder(str(tmp_path / "data"), source_dir=str(source))
    assert not fashion_mnist.FashionMnistLocal(data_dir=str(tmp_path / "data")).is_prepared()


# ---------------------------------------------------------------------- the prepared copy follows its source
# Small sources (64 train / 16 test images): each preparation takes under a second.

SMALL = {"train": 64, "test": 16}


@pytest.fixture
def small(monkeypatch):
    """Fashion-MNIST's file layout with small splits; returns a function writing a source dir, seeded."""
    monkeypatch.setattr(fashion_mnist, "FILES", {split: (*files[:2], SMALL[split])
                                                 for split, files in fashion_mnist.FILES.items()})
    monkeypatch.delenv(fashion_mnist.SOURCE_DIR_ENV, raising=False)

    def write(path, seed):
        rng = np.random.default_rng(seed)
        path.mkdir(parents=True, exist_ok=True)
        arrays = {}
        for split, (images_file, labels_file, n) in fashion_mnist.FILES.items():
            images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
            labels = rng.integers(0, 10, n, dtype=np.uint8)
            (path / images_file).write_bytes(gzip.compress(fashion_mnist.idx_bytes(images)))
            (path / labels_file).write_bytes(gzip.compress(fashion_mnist.idx_bytes(labels)))
            arrays[split] = collections.Counter(zip((x.tobytes() for x in images), labels.tolist()))
        return arrays

    return write


def _no_preparing(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("prepared again")

    monkeypatch.setattr(fashion_mnist.FashionMnistLocal, "download_and_prepare", fail)


def test_the_prepared_copy_records_its_source_files(small, tmp_path, capsys):
    contents = small(tmp_path / "a", seed=0)
    builder = fashion_mnist.prepared_builder(str(tmp_path / "data"), source_dir=str(tmp_path / "a"))
    assert _split_contents(builder, "train") == contents["train"]
    record = json.loads((tmp_path / "data/fashion_mnist_local/1.0.0/source.json").read_text())
    assert record["source_dir"] == str(tmp_path / "a")
    assert sorted(record["files"]) == sorted(fashion_mnist.CONTENT_SHA256)
    for name, entry in record["files"].items():
        path = tmp_path / "a" / name
        assert entry["path"] == str(path) and os.path.isabs(entry["path"])
        assert entry["size"] == path.stat().st_size
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert "remaking" not in capsys.readouterr().out  # a first copy is not a remake
    assert not list((tmp_path / "data").glob(".fashion_mnist_local.staging-*"))


def test_another_source_directory_remakes_the_copy_once(small, tmp_path, monkeypatch, capsys):
    data = str(tmp_path / "data")
    small(tmp_path / "a", seed=0)
    contents_b = small(tmp_path / "b", seed=1)
    fashion_mnist.prepared_builder(data, source_dir=str(tmp_path / "a"))
    first = capsys.readouterr()  # one line of ours, none of TFDS's ('Downloading and preparing ...', its bars)
    assert re.fullmatch(rf"Fashion-MNIST: preparing a TFDS copy of {tmp_path / 'a'} in {data} \(once, about 10 s\) "
                        r"\.\.\. [0-9.]+s\n", first.out), first.out
    assert "Generating" not in first.err and "Downloading" not in first.err + first.out
    monkeypatch.setenv(fashion_mnist.SOURCE_DIR_ENV, str(tmp_path / "b"))
    builder = fashion_mnist.prepared_builder(data)
    assert capsys.readouterr().out.splitlines() == [  # one line: which source, and why
        f"Fashion-MNIST: remaking the prepared copy in {builder.data_dir} from {tmp_path / 'b'} "
        f"($LDAE_FASHION_MNIST_DIR): it was made from {tmp_path / 'a'}."]
    assert _split_contents(builder, "train") == contents_b["train"]
    assert _split_contents(builder, "test") == contents_b["test"]
    assert fashion_mnist.read_record(builder)["source_dir"] == str(tmp_path / "b")
    assert not list((tmp_path / "data").glob(".fashion_mnist_local.staging-*"))
    _no_preparing(monkeypatch)
    fashion_mnist.prepared_builder(data)
    assert capsys.readouterr().out == ""


def test_changed_file_contents_remake_the_copy_even_with_the_same_size_and_mtime(small, tmp_path, capsys):
    data, a = str(tmp_path / "data"), tmp_path / "a"
    small(a, seed=0)
    labels_path = a / "train-labels-idx1-ubyte.gz"
    labels = fashion_mnist.read_idx(str(labels_path), ndim=1)
    labels_path.write_bytes(gzip.compress(fashion_mnist.idx_bytes(labels), compresslevel=0))  # stored: size = length
    fashion_mnist.prepared_builder(data, source_dir=str(a))
    before = labels_path.stat()
    new_labels = (labels + 1) % 10
    labels_path.write_bytes(gzip.compress(fashion_mnist.idx_bytes(new_labels), compresslevel=0))
    os.utime(labels_path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (labels_path.stat().st_size, labels_path.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    capsys.readouterr()
    builder = fashion_mnist.prepared_builder(data, source_dir=str(a))
    assert capsys.readouterr().out.splitlines() == [
        f"Fashion-MNIST: remaking the prepared copy in {builder.data_dir} from {a} (the source_dir argument): "
        f"train-labels-idx1-ubyte.gz in {a} changed since it was made."]
    stored = tfds.as_numpy(builder.as_dataset(split="train", batch_size=-1))
    assert collections.Counter(stored["label"].tolist()) == collections.Counter(new_labels.tolist())
    assert fashion_mnist.read_record(builder)["files"]["train-labels-idx1-ubyte.gz"]["sha256"] == \
        hashlib.sha256(labels_path.read_bytes()).hexdigest()


def test_an_unchanged_source_costs_a_stat_and_a_touched_one_a_hash(small, tmp_path, monkeypatch, capsys):
    data, a = str(tmp_path / "data"), tmp_path / "a"
    small(a, seed=0)
    fashion_mnist.prepared_builder(data, source_dir=str(a))
    _no_preparing(monkeypatch)
    hashed = []
    real = fashion_mnist._sha256
    monkeypatch.setattr(fashion_mnist, "_sha256", lambda path: hashed.append(path) or real(path))
    start = time.perf_counter()
    for _ in range(10):
        fashion_mnist.prepared_builder(data, source_dir=str(a))
    print(f"check of an unchanged source: {(time.perf_counter() - start) / 10 * 1e3:.2f} ms")
    assert hashed == []
    os.utime(a / "t10k-images-idx3-ubyte.gz")  # same contents, new mtime: hashed once, not remade
    builder = fashion_mnist.prepared_builder(data, source_dir=str(a))
    fashion_mnist.prepared_builder(data, source_dir=str(a))
    assert hashed == [str(a / "t10k-images-idx3-ubyte.gz")]
    assert fashion_mnist.read_record(builder)["files"]["t10k-images-idx3-ubyte.gz"]["mtime_ns"] == \
        (a / "t10k-images-idx3-ubyte.gz").stat().st_mtime_ns
    assert "remaking" not in capsys.readouterr().out


def test_a_copy_without_a_record_is_remade_once(small, tmp_path, monkeypatch, capsys):
    data, a = str(tmp_path / "data"), tmp_path / "a"
    small(a, seed=0)
    builder = fashion_mnist.prepared_builder(data, source_dir=str(a))
    (tmp_path / "data/fashion_mnist_local/1.0.0/source.json").unlink()  # as a copy made before records were kept
    capsys.readouterr()
    fashion_mnist.prepared_builder(data, source_dir=str(a))
    assert "no record of its source files" in capsys.readouterr().out
    assert fashion_mnist.read_record(builder)["source_dir"] == str(a)
    _no_preparing(monkeypatch)
    fashion_mnist.prepared_builder(data, source_dir=str(a))


@pytest.mark.parametrize("crash", ["while preparing", "before the record"])
def test_an_interrupted_remake_is_never_trusted(small, tmp_path, monkeypatch, capsys, crash):
    data = str(tmp_path / "data")
    contents_a, contents_b = small(tmp_path / "a", seed=0), small(tmp_path / "b", seed=1)
    fashion_mnist.prepared_builder(data, source_dir=str(tmp_path / "a"))

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        if crash == "while preparing":
            m.setattr(fashion_mnist.FashionMnistLocal, "_generate_examples", killed)
        else:
            m.setattr(fashion_mnist, "_write_record", killed)
        with pytest.raises(KeyboardInterrupt):
            fashion_mnist.prepared_builder(data, source_dir=str(tmp_path / "b"))
    capsys.readouterr()
    if crash == "while preparing":  # the old copy is intact, and still known as a's
        builder = fashion_mnist.prepared_builder(data, source_dir=str(tmp_path / "a"))
        assert "remaking" not in capsys.readouterr().out
        assert _split_contents(builder, "train") == contents_a["train"]
    else:  # b's copy is in place but has no record: not trusted, not even for b
        assert fashion_mnist.read_record(fashion_mnist.FashionMnistLocal(data_dir=data)) is None
        builder = fashion_mnist.prepared_builder(data, source_dir=str(tmp_path / "b"))
        assert "no record of its source files" in capsys.readouterr().out
        assert _split_contents(builder, "train") == contents_b["train"]
    assert not list((tmp_path / "data").glob(".fashion_mnist_local.staging-*"))


def test_source_files_gone_keep_the_copy_with_a_warning_or_refuse(small, tmp_path, monkeypatch, capsys):
    data, a = str(tmp_path / "data"), tmp_path / "a"
    contents = small(a, seed=0)
    fashion_mnist.prepared_builder(data, source_dir=str(a))
    (a / "train-images-idx3-ubyte.gz").unlink()
    capsys.readouterr()
    # The source it was made from, a file gone, none changed: the copy, with one warning naming that source.
    builder = fashion_mnist.prepared_builder(data, source_dir=str(a))
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("warning: Fashion-MNIST: train-images-idx3-ubyte.gz gone from "
                                               f"{a}, the source of the prepared copy")
    assert _split_contents(builder, "train") == contents["train"]
    # Another directory without the files: refused, naming the recorded source and how to use it.
    monkeypatch.setenv(fashion_mnist.SOURCE_DIR_ENV, str(tmp_path / "empty"))
    with pytest.raises(DataError, match=rf"it was made from {a}; and it cannot be remade.*"
                                        rf"set LDAE_FASHION_MNIST_DIR={a} to use the copy") as e:
        fashion_mnist.prepared_builder(data)
    assert "\n" not in str(e.value)
    # ... and the check before compute (what --dry_run runs) refuses it the same way, writing nothing
    config = ml_collections.ConfigDict({"name": "fashion_mnist_local", "data_dir": data, "prepared_dir": "",
                                        "train_split": "train", "eval_split": "test", "image_size": 28})
    with pytest.raises(DataError, match=rf"it was made from {a}; and it cannot be remade"):
        datasets.describe(config)
    # A changed file beside the gone one: refused too.
    monkeypatch.delenv(fashion_mnist.SOURCE_DIR_ENV)
    (a / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(fashion_mnist.idx_bytes(np.zeros(16, np.uint8))))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz in .* changed since it was made"):
        fashion_mnist.prepared_builder(data, source_dir=str(a))


# ------------------------------------------------------------------------- the IDX files from TFDS's builder


def test_download_writes_idx_files_from_tfds_fashion_mnist_on_mock_data(tmp_path):
    out = tmp_path / "idx"
    with tfds.testing.mock_data(num_examples=12, data_dir=str(tmp_path / "tfds")):
        with pytest.raises(DataError, match="not the published Fashion-MNIST's"):  # random images
            fashion_mnist.download(str(out), tfds_data_dir=str(tmp_path / "tfds"))
        assert not out.exists() or not list(out.iterdir())
        files = fashion_mnist.download(str(out), tfds_data_dir=str(tmp_path / "tfds"), check_contents=False)
        builder = tfds.builder("fashion_mnist", data_dir=str(tmp_path / "tfds"))
        stored = list(tfds.as_numpy(builder.as_dataset(split="train", shuffle_files=False).batch(100)))[0]
    assert sorted(os.path.basename(f) for f in files) == sorted(fashion_mnist.CONTENT_SHA256)
    images = fashion_mnist.read_idx(str(out / "train-images-idx3-ubyte.gz"), ndim=3)
    labels = fashion_mnist.read_idx(str(out / "train-labels-idx1-ubyte.gz"), ndim=1)
    order = fashion_mnist._original_order(builder, "train", 12)
    assert sorted(order.tolist()) == list(range(12)) and order.tolist() != list(range(12))
    np.testing.assert_array_equal(images[order], stored["image"][..., 0])  # the stored examples, put back in order
    np.testing.assert_array_equal(labels[order], stored["label"])
    assert fashion_mnist.read_idx(str(out / "t10k-labels-idx1-ubyte.gz"), ndim=1).shape == (12,)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


@needs_debian_files
def test_idx_files_written_from_a_prepared_builder_are_the_published_ones(fm_builder, tmp_path):
    """The order TFDS stores examples in is undone exactly: on TFDS's own writer (the copy of the Debian files,
    keyed by index like the stock builder), the written files are the published contents, byte for byte."""
    fashion_mnist.write_idx_files(fm_builder, str(tmp_path))  # checks the contents' sha256
    for name in fashion_mnist.CONTENT_SHA256:
        with gzip.open(tmp_path / name) as written, gzip.open(os.path.join(SOURCE_DIR, name)) as debian:
            assert written.read() == debian.read()
    assert fashion_mnist.has_published_files(str(tmp_path))


@needs_debian_files
def test_download_command_skips_a_directory_that_already_has_the_files(tmp_path, capsys, monkeypatch):
    for name in fashion_mnist.CONTENT_SHA256:
        shutil.copy(os.path.join(SOURCE_DIR, name), tmp_path / name)
    monkeypatch.setattr(fashion_mnist, "download", lambda *a, **k: pytest.fail("downloaded"))
    fashion_mnist.main(["--download", str(tmp_path)])
    assert capsys.readouterr().out.splitlines() == [f"{tmp_path} already holds the 4 Fashion-MNIST IDX files.",
                                                    f"Use them with: export LDAE_FASHION_MNIST_DIR={tmp_path}"]


# ---------------------------------------------------------------------------------------------- training


def _train(builder, **overrides):
    kwargs = dict(split="train[:1000]", global_batch_size=64, image_size=28, augment="random_resized_crop",
                  seed=3, flip=True, process_index=0, process_count=1)
    return pipeline.train_iterator(builder, **{**kwargs, **overrides})


def _assert_same_batches(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["image"], y["image"])
        np.testing.assert_array_equal(x["label"], y["label"])


@needs_debian_files
def test_train_stream_is_deterministic_and_resumes_exactly(fm_builder):
    # 1000 examples / 64 = 15 steps per epoch: 40 steps cross two epoch boundaries.
    stream = _take(_train(fm_builder), 40)
    assert stream[0]["image"].shape == (64, 28, 28, 1) and stream[0]["image"].dtype == np.uint8
    assert stream[0]["label"].shape == (64,) and stream[0]["label"].dtype == np.int32
    _assert_same_batches(stream, _take(_train(fm_builder), 40))
    for start in (1, 15, 17):
        _assert_same_batches(stream[start:], _take(_train(fm_builder, start_step=start), 40 - start))
    other = _take(_train(fm_builder, seed=4), 1)[0]
    assert not np.array_equal(other["image"], stream[0]["image"])
    assert not np.array_equal(stream[0]["label"], stream[15]["label"])  # epochs are shuffled differently


@needs_debian_files
def test_train_resume_on_the_second_of_two_processes(fm_builder):
    stream = _take(_train(fm_builder, process_index=1, process_count=2), 20)
    assert stream[0]["image"].shape == (32, 28, 28, 1)
    _assert_same_batches(stream[9:], _take(_train(fm_builder, process_index=1, process_count=2, start_step=9), 11))


@needs_debian_files
def test_processes_read_disjoint_slices_covering_the_split(fm_builder):
    # 1000 examples, 2 processes x 50 per batch: one epoch is exactly 10 host batches, nothing dropped.
    seen = []
    for index in range(2):
        batches = _take(_train(fm_builder, augment="center_crop", flip=False, global_batch_size=100,
                               process_index=index, process_count=2), 10)
        seen.append(collections.Counter((x.tobytes(), int(y)) for b in batches for x, y in zip(b["image"], b["label"])))
    assert sum(seen[0].values()) == sum(seen[1].values()) == 500
    assert seen[0] + seen[1] == _split_contents(fm_builder, "train[:1000]")


@needs_debian_files
@pytest.mark.parametrize("kwargs, message", [
    (dict(global_batch_size=63, process_count=2), "multiple of the process count"),
    (dict(augment="mixup"), "Unknown augment"),
    (dict(split="valid"), "Bad split 'valid'"),
    (dict(process_index=2, process_count=2), "process_index=2"),
    (dict(image_size=0), "image_size=0"),
    (dict(scale=(0.5, 0.2)), "Bad crop scale"),
    (dict(split="train[:10]"), "fewer than one host batch"),
])
def test_bad_train_arguments_fail_at_the_call(fm_builder, kwargs, message):
    with pytest.raises(DataError, match=message):
        _train(fm_builder, **kwargs)


# ----------------------------------------------------------------------------------- held in host memory


def _in_memory(builder, **overrides):
    return _train(builder, **{"augment": "center_crop", "in_memory_mb": 64, **overrides})


def _contents(batches):
    return collections.Counter((x.tobytes(), int(y)) for b in batches for x, y in zip(b["image"], b["label"]))


@needs_debian_files
def test_a_split_held_in_memory_visits_each_example_once_per_epoch_and_resumes_exactly(fm_builder):
    # 1000 examples, 2 processes x 50 per batch: 10 host batches an epoch, nothing dropped; 25 steps cross two
    # epoch boundaries.
    kw = dict(global_batch_size=100, process_count=2, flip=False)
    seen = []
    for index in range(2):
        stream = _take(_in_memory(fm_builder, process_index=index, **kw), 25)
        assert stream[0]["image"].shape == (50, 28, 28, 1) and stream[0]["image"].dtype == np.uint8
        assert stream[0]["label"].dtype == np.int32
        assert _contents(stream[:10]) == _contents(stream[10:20])  # each epoch: every host example once
        assert not np.array_equal(stream[0]["label"], stream[10]["label"])  # epochs in another order
        _assert_same_batches(stream, _take(_in_memory(fm_builder, process_index=index, **kw), 25))
        for start in (1, 10, 13):
            _assert_same_batches(stream[start:], _take(_in_memory(fm_builder, process_index=index, start_step=start,
                                                                  **kw), 25 - start))
        seen.append(_contents(stream[:10]))
    assert seen[0] + seen[1] == _split_contents(fm_builder, "train[:1000]")  # the hosts' slices are disjoint
    # The same examples as the tf.data stream of the same split, in another order.
    streamed = _take(_in_memory(fm_builder, process_index=0, in_memory_mb=0, **kw), 10)
    assert _contents(streamed) == seen[0]
    other = _take(_in_memory(fm_builder, process_index=0, seed=4, **kw), 1)[0]
    assert not np.array_equal(other["label"], _take(_in_memory(fm_builder, process_index=0, **kw), 1)[0]["label"])


@needs_debian_files
def test_flips_in_memory_mirror_the_drawn_half_and_leave_the_held_split_as_it_was(fm_builder):
    plain = _take(_in_memory(fm_builder, flip=False), 3)
    flipped = _take(_in_memory(fm_builder, flip=True), 3)
    mirrored = 0
    for a, b in zip(plain, flipped):
        np.testing.assert_array_equal(a["label"], b["label"])  # the same order: flips are drawn after it
        same = [np.array_equal(x, y) for x, y in zip(a["image"], b["image"])]
        mirror = [np.array_equal(x[:, ::-1], y) for x, y in zip(a["image"], b["image"])]
        assert all(s or m for s, m in zip(same, mirror))
        mirrored += sum(m and not s for s, m in zip(same, mirror))
    assert 0.35 < mirrored / (3 * 64) < 0.65
    _assert_same_batches(plain, _take(_in_memory(fm_builder, flip=False), 3))  # the held arrays never change


@needs_debian_files
def test_a_split_larger_than_in_memory_mb_streams_through_tf_data(fm_builder):
    # train[:1000] at 28 px is 0.75 MB decoded: held at 1 MB, streamed below it (and for other augmentations).
    held = _take(_in_memory(fm_builder, in_memory_mb=1), 2)
    assert not np.array_equal(held[0]["label"], _take(_in_memory(fm_builder, in_memory_mb=0), 1)[0]["label"])
    _assert_same_batches(_take(_train(fm_builder, in_memory_mb=64), 3), _take(_train(fm_builder), 3))
    with pytest.raises(DataError, match="in_memory_mb=-1"):
        _in_memory(fm_builder, in_memory_mb=-1)


@needs_debian_files
def test_eval_batches_from_memory_are_the_streamed_ones(fm_builder):
    for index in range(3):  # slices of 3 and 2 of test[:8], host batch 2: padding in the last batch of each
        kw = dict(split="test[:8]", global_batch_size=6, image_size=20, process_index=index, process_count=3)
        streamed = list(pipeline.eval_batches(fm_builder, **kw))
        held = list(pipeline.eval_batches(fm_builder, in_memory_mb=64, **kw))
        assert len(held) == len(streamed) == 2
        for a, b in zip(streamed, held):
            for key in ("image", "label", "mask"):
                np.testing.assert_array_equal(a[key], b[key])
                assert a[key].dtype == b[key].dtype


# ---------------------------------------------------------------------------------------------- evaluation


@needs_debian_files
def test_eval_batches_count_every_example_exactly_once(fm_builder):
    # 10000 test examples over 3 processes: slices of 3334, 3333, 3333; 128 per host batch.
    seen, counts = collections.Counter(), []
    for index in range(3):
        batches = list(pipeline.eval_batches(fm_builder, split="test", global_batch_size=384, image_size=28,
                                             process_index=index, process_count=3))
        counts.append(len(batches))
        for b in batches:
            assert b["image"].shape == (128, 28, 28, 1) and b["mask"].dtype == bool and b["label"].dtype == np.int32
            seen.update((x.tobytes(), int(y)) for x, y, m in zip(b["image"], b["label"], b["mask"]) if m)
    assert counts == [27, 27, 27]
    assert sum(seen.values()) == 10_000
    assert seen == _split_contents(fm_builder, "test")


@needs_debian_files
def test_eval_pads_whole_batches_for_a_short_slice(fm_builder):
    sizes = []
    for index in range(2):  # 7 examples: slices of 4 and 3; host batch 3 -> 2 batches each
        batches = list(pipeline.eval_batches(fm_builder, split="test[:7]", global_batch_size=6, image_size=16,
                                             process_index=index, process_count=2))
        sizes.append([int(b["mask"].sum()) for b in batches])
        assert batches[0]["image"].shape == (3, 16, 16, 1)
    assert sizes == [[3, 1], [3, 0]]


# ------------------------------------------------------------------------------------------- preprocessing


def test_center_crop_is_identity_at_size_and_crops_the_centre():
    import tensorflow as tf

    image = np.random.default_rng(0).integers(0, 256, (28, 28, 1), dtype=np.uint8)
    np.testing.assert_array_equal(pipeline.center_crop(tf.constant(image), 28).numpy(), image)
    wide = np.zeros((20, 40, 3), np.uint8)
    wide[:, 10:30] = 255  # the central square is white, the sides black
    out = pipeline.center_crop(tf.constant(wide), 10).numpy()
    assert out.shape == (10, 10, 3) and out[:, 1:-1].min() == 255


def test_random_ops_are_stateless_and_normalize_maps_to_unit_range():
    import tensorflow as tf

    image = tf.constant(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8))
    a = pipeline.random_resized_crop(image, 24, tf.constant([1, 2]))
    assert a.shape == (24, 24, 3) and a.dtype == tf.uint8
    np.testing.assert_array_equal(a, pipeline.random_resized_crop(image, 24, tf.constant([1, 2])))
    flips = {pipeline.random_flip(image, tf.constant([0, s])).numpy().tobytes() for s in range(8)}
    assert flips == {image.numpy().tobytes(), image.numpy()[:, ::-1].tobytes()}
    x = pipeline.normalize_images(np.array([0, 255], np.uint8))
    assert x.dtype == np.float32 and x.tolist() == [-1.0, 1.0]
    assert pipeline.normalize_images(np.array([0.0, 255.0])).dtype == np.float64
    y = pipeline.normalize_images(jnp.array([0, 255], jnp.uint8))
    assert isinstance(y, jax.Array) and y.dtype == jnp.float32 and y.tolist() == [-1.0, 1.0]


# ------------------------------------------------------------------------------------- stock TFDS datasets


def test_unknown_dataset_lists_the_known_ones(tmp_path):
    assert issubclass(DataError, UserError)  # entry points print it as one line
    with pytest.raises(DataError, match="Unknown dataset 'mnist'.*fashion_mnist_local, cifar10, imagenet2012"):
        sources.get_source("mnist", str(tmp_path))


@pytest.mark.parametrize("name, hint", [("cifar10", "tfds build cifar10"), ("imagenet2012", "downloads/manual/")])
def test_unprepared_stock_dataset_is_a_clear_error(tmp_path, name, hint):
    with pytest.raises(DataError, match=f"{name} is not prepared.*{hint}"):
        sources.get_source(name, str(tmp_path))


@pytest.mark.parametrize("name, image_size, eval_split, classes", [
    ("cifar10", 32, "test", 10), ("imagenet2012", 64, "validation", 1000)])
def test_stock_datasets_on_mock_data(mock_root, name, image_size, eval_split, classes):
    builder = sources.get_source(name, mock_root)
    batches = _take(pipeline.train_iterator(builder, split="train", global_batch_size=8, image_size=image_size,
                                            augment="random_resized_crop", flip=True, seed=0, process_index=1,
                                            process_count=2), 6)  # 20 per host / 4: crosses epoch boundaries
    for b in batches:
        assert b["image"].shape == (4, image_size, image_size, 3) and b["image"].dtype == np.uint8
        assert b["label"].dtype == np.int32 and 0 <= b["label"].min() and b["label"].max() < classes
    evals = list(pipeline.eval_batches(builder, split=eval_split, global_batch_size=16, image_size=image_size,
                                       process_index=0, process_count=2))
    assert [e["image"].shape for e in evals] == [(8, image_size, image_size, 3)] * 3
    assert sum(int(e["mask"].sum()) for e in evals) == 20

