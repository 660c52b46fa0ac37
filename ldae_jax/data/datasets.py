"""The dataset of a run (`config.data`): opened for reading, or described from its metadata alone.

`open_dataset` gives the builder the pipeline reads: a source dataset, or with `data.prepared_dir` the
`prepared.py` caches of the run's splits behind one builder-like object (a cache holds one split).
`describe` answers what the check before a run needs (channels, classes, split sizes) without reading or
preparing any data: from the TFDS metadata, or for an unprepared Fashion-MNIST from its IDX file headers.
"""

from __future__ import annotations

import dataclasses
import types

import tensorflow_datasets as tfds

from ldae_jax.data import fashion_mnist, prepared, sources
from ldae_jax.errors import DataError, first_line


# What a run needs to know of each dataset when its data lives elsewhere (a bucket a pod reads): channels,
# classes and the sizes of its whole splits, as TFDS and the Debian files give them.
KNOWN = {"fashion_mnist_local": (1, 10, {"train": 60_000, "test": 10_000}),
         "cifar10": (3, 10, {"train": 50_000, "test": 10_000}),
         "imagenet2012": (3, 1000, {"train": 1_281_167, "validation": 50_000})}


@dataclasses.dataclass(frozen=True)
class Description:
    name: str
    channels: int
    num_classes: int
    examples: dict  # {split as the config writes it: number of examples}


def open_dataset(data) -> tfds.core.DatasetBuilder:
    """The builder of `config.data` (its train and eval splits); preparing Fashion-MNIST if it is not yet."""
    if data.prepared_dir:
        return prepared.open_splits(data.prepared_dir, data.name, (data.train_split, data.eval_split),
                                    data.image_size)
    return sources.get_source(data.name, data.data_dir or None)


def _count(split: str, sizes: dict, name: str) -> int:
    """Examples of `split` (slices like 'train[:10%]' allowed) given the whole splits' sizes."""
    infos = {k: types.SimpleNamespace(num_examples=v) for k, v in sizes.items()}
    try:
        parts = tfds.core.ReadInstruction.from_spec(split).to_absolute(infos)
    except (ValueError, KeyError, AttributeError) as e:
        raise DataError(f"Bad split {split!r} for {name}: {first_line(e)}") from None
    return sum(len(range(sizes[p.splitname])[p.from_:p.to]) for p in parts)


def describe(data, *, local: bool = True) -> Description:
    """Channels, classes and the sizes of the run's splits, from metadata only (nothing is read or prepared).
    With `local=False` (the data is where the job runs, not here) from the known sizes of the dataset instead."""
    splits = (data.train_split, data.eval_split)
    sources.check_name(data.name)
    if not local:
        channels, classes, sizes = KNOWN[data.name]
        return Description(data.name, channels, classes, {s: _count(s, sizes, data.name) for s in splits})
    if data.prepared_dir:
        builder = prepared.open_splits(data.prepared_dir, data.name, splits, data.image_size)
    elif data.name == "fashion_mnist_local":
        builder = fashion_mnist.FashionMnistLocal(data_dir=data.data_dir or None)
        if builder.is_prepared():
            fashion_mnist.check_prepared(builder)  # a copy of other files that cannot be remade: refused now
        else:
            sizes = fashion_mnist.split_sizes(builder.source_dir)
            examples = {s: _count(s, sizes, data.name) for s in splits}
            return Description(data.name, 1, len(fashion_mnist.LABEL_NAMES), examples)
    else:
        builder = sources.tfds_builder(data.name, data.data_dir or None)
    features = builder.info.features
    sizes = {name: builder.info.splits[name].num_examples for name in builder.info.splits}
    return Description(data.name, int(features["image"].shape[-1]), int(features["label"].num_classes),
                       {s: _count(s, sizes, data.name) for s in splits})
