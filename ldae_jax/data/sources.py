"""The source datasets a run can read: the local Fashion-MNIST builder and stock TFDS datasets, never downloaded.

`fashion_mnist_local` is prepared on demand from the Debian IDX files; `cifar10` and `imagenet2012` must already
be prepared in the TFDS data_dir, and a missing one is a DataError that says how to prepare it.
"""

from __future__ import annotations

import tensorflow_datasets as tfds

from ldae_jax.data import fashion_mnist
from ldae_jax.errors import DataError

DATASETS = ("fashion_mnist_local", "cifar10", "imagenet2012")


def check_name(name: str) -> None:
    if name not in DATASETS:
        raise DataError(f"Unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}.")


def tfds_builder(name: str, data_dir: str | None) -> tfds.core.DatasetBuilder:
    """The stock TFDS builder of `name`, which must be prepared; its info is read, not its data."""
    builder = tfds.builder(name, data_dir=data_dir)
    if not builder.is_prepared():
        root = builder.data_dir_root
        if name == "imagenet2012":
            how = (f"put the two manual-download tars from image-net.org, ILSVRC2012_img_train.tar (138 GB) and "
                   f"ILSVRC2012_img_val.tar (6.3 GB), in {root}/downloads/manual/, then run `tfds build "
                   f"imagenet2012 --data_dir={root}` (about 150 GB more disk; README 'ImageNet data' has the steps)")
        else:
            how = (f"run `tfds build {name} --data_dir={root}` on a machine with internet access and copy "
                   f"{root}/{name} here")
        raise DataError(f"{name} is not prepared in {builder.data_dir}: {how}.")
    return builder


def get_source(name: str, data_dir: str | None) -> tfds.core.DatasetBuilder:
    """A prepared builder of `name`; `fashion_mnist_local` is prepared here on first use (about 9 s)."""
    check_name(name)
    if name == "fashion_mnist_local":
        return fashion_mnist.prepared_builder(data_dir)
    return tfds_builder(name, data_dir)
