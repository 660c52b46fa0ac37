"""A TFDS builder for Fashion-MNIST that reads the Debian package's local IDX files.

Why not the stock `fashion_mnist` builder: it downloads, and it rejects the Debian files by checksum (they were
re-gzipped; the pixels are identical). This builder never downloads and never writes outside its `data_dir`.
"""
from __future__ import annotations

import contextlib
import fcntl
import gzip
import os
from collections.abc import Iterator

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from ldae_jax.data import tf_setup  # noqa: F401  (hides GPUs from TensorFlow)
from ldae_jax.errors import DataError

DEFAULT_SOURCE_DIR = "/usr/share/datasets/fashion-mnist"
SOURCE_DIR_ENV = "LDAE_FASHION_MNIST_DIR"
LABEL_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
# split -> (images file, labels file, number of examples)
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60_000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10_000),
}
_IDX_UBYTE = {1: 0x00000801, 3: 0x00000803}  # magic number of an unsigned-byte IDX file, by number of dims


def resolve_source_dir(source_dir: str | None = None) -> str:
    """The argument, else $LDAE_FASHION_MNIST_DIR, else the Debian install location."""
    return source_dir or os.environ.get(SOURCE_DIR_ENV) or DEFAULT_SOURCE_DIR


def read_idx(path: str, ndim: int) -> np.ndarray:
    """Reads a gzipped unsigned-byte IDX file with `ndim` dims; a bad header or size is a DataError."""
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path} is not a readable gzip file ({e}); reinstall dataset-fashion-mnist.") from e
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is too short for an IDX header; reinstall dataset-fashion-mnist.")
    magic = int.from_bytes(data[:4], "big")
    if magic != _IDX_UBYTE[ndim]:
        raise DataError(f"{path} has IDX magic {magic:#010x}, expected {_IDX_UBYTE[ndim]:#010x}; "
                        "wrong or corrupt file, reinstall dataset-fashion-mnist.")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if len(data) - header != int(np.prod(shape)):
        raise DataError(f"{path} holds {len(data) - header} bytes after its header, but the header says "
                        f"{shape}; the file is truncated or corrupt, reinstall dataset-fashion-mnist.")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def read_split(source_dir: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 [n, 28, 28, 1] and labels uint8 [n] of one split, checked against the known sizes."""
    images_file, labels_file, n = FILES[split]
    images = read_idx(os.path.join(source_dir, images_file), ndim=3)
    labels = read_idx(os.path.join(source_dir, labels_file), ndim=1)
    if images.shape != (n, 28, 28) or labels.shape != (n,):
        raise DataError(f"{split} files in {source_dir} hold images {images.shape} and labels {labels.shape}, "
                        f"expected ({n}, 28, 28) and ({n},); reinstall dataset-fashion-mnist.")
    if labels.max() >= len(LABEL_NAMES):
        raise DataError(f"{os.path.join(source_dir, labels_file)} has label {labels.max()} > 9; "
                        "reinstall dataset-fashion-mnist.")
    return images[..., None], labels


def check_source_dir(source_dir: str) -> None:
    """Fails with the fix (apt-get or the env var) when any of the 4 files is missing."""
    missing = [name for files in FILES.values() for name in files[:2]
               if not os.path.isfile(os.path.join(source_dir, name))]
    if missing:
        raise DataError(f"Fashion-MNIST files {missing} not found in {source_dir}: run "
                        f"`apt-get update && apt-get install -y dataset-fashion-mnist`, or set {SOURCE_DIR_ENV} "
                        "to the directory holding the 4 .gz IDX files.")


def split_sizes(source_dir: str) -> dict[str, int]:
    """{split: examples} from the image files' IDX headers (16 bytes each), for a check before any data is read."""
    check_source_dir(source_dir)
    sizes = {}
    for split, (images_file, _, _) in FILES.items():
        path = os.path.join(source_dir, images_file)
        try:
            with gzip.open(path, "rb") as f:
                header = f.read(8)
        except (OSError, EOFError) as e:
            raise DataError(f"{path} is not a readable gzip file ({e}); reinstall dataset-fashion-mnist.") from e
        if len(header) < 8 or int.from_bytes(header[:4], "big") != _IDX_UBYTE[3]:
            raise DataError(f"{path} is not an IDX image file; wrong or corrupt file, reinstall dataset-fashion-mnist.")
        sizes[split] = int.from_bytes(header[4:8], "big")
    return sizes


class FashionMnistLocal(tfds.core.GeneratorBasedBuilder):
    """Fashion-MNIST (60k train / 10k test, 28x28x1, 10 classes) from local IDX files; `fashion_mnist_local`."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Read from the Debian package dataset-fashion-mnist."}

    def __init__(self, *, source_dir: str | None = None, **kwargs):
        self.source_dir = resolve_source_dir(source_dir)
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="Fashion-MNIST (Xiao et al., 2017), read from the local IDX files.",
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(28, 28, 1)),
                "label": tfds.features.ClassLabel(names=LABEL_NAMES),
            }),
            supervised_keys=("image", "label"),
            homepage="https://github.com/zalandoresearch/fashion-mnist",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing is downloaded
        check_source_dir(self.source_dir)
        # Read (and so validate) both splits before TFDS writes anything.
        arrays = {split: read_split(self.source_dir, split) for split in FILES}
        return {split: self._generate_examples(*arrays[split]) for split in FILES}

    def _generate_examples(self, images: np.ndarray, labels: np.ndarray) -> Iterator[tuple[int, dict]]:
        # The same PNG bytes TFDS would write, encoded in one graph call: TFDS encodes each array with its own
        # eager op, which was over half of the preparation time.
        for i, (png, label) in enumerate(zip(_encode_png(images), labels)):
            yield i, {"image": png, "label": int(label)}


@tf.function(autograph=False)
def _encode_png_graph(images):
    return tf.map_fn(tf.io.encode_png, images, fn_output_signature=tf.string)


def _encode_png(images: np.ndarray) -> np.ndarray:
    """PNG bytes of each uint8 [h, w, c] image, as TFDS's Image feature encodes them (identical bytes)."""
    return _encode_png_graph(tf.constant(images)).numpy()


@contextlib.contextmanager
def _lock(path: str):
    """An exclusive file lock, so processes sharing a data_dir prepare it once (not for remote paths)."""
    if "://" in path:
        yield
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def prepared_builder(data_dir: str | None = None, source_dir: str | None = None) -> FashionMnistLocal:
    """The builder, prepared into `data_dir` from the local files unless it already is (about 9 s once, on 2 cores)."""
    builder = FashionMnistLocal(data_dir=data_dir, source_dir=source_dir)
    if builder.is_prepared():
        return builder
    check_source_dir(builder.source_dir)
    with _lock(os.path.join(os.fspath(builder.data_dir_root), f".{builder.name}.lock")):
        # Re-read: another process may have prepared it while this one waited for the lock.
        builder = FashionMnistLocal(data_dir=data_dir, source_dir=source_dir)
        if not builder.is_prepared():
            builder.download_and_prepare(download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    return builder
