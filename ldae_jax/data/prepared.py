"""An optional prepared cache: one split of a dataset, centre-cropped and resized once, stored as raw uint8.

Why: a host whose CPUs cannot decode (and resize) full-resolution JPEGs fast enough reads this instead. The
stored images are exactly `eval_batches` outputs, i.e. `pipeline.center_crop(decode(jpeg), image_size)`, kept as
uncompressed bytes (`tfds.features.Tensor`, `Encoding.BYTES`: no PNG/JPEG codec on read). The cost is disk:
S*S*C bytes per image (196 KB at 256 px; ~9.8 GB for ImageNet validation, ~250 GB for train).

Make one:  python -m ldae_jax.data.prepared --dataset=imagenet2012 --data_dir=... --split=validation \\
               --image_size=256 --out_dir=...
It is a TFDS dataset `prepared_images/<dataset>-<split>-<size>` in `out_dir`; open it with `prepared_builder`.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from ldae_jax import cli
from ldae_jax.data import pipeline, sources
from ldae_jax.data.splits import base_split, num_examples
from ldae_jax.errors import DataError

NAME = "prepared_images"

# A cache is stored in source order (disable_shuffling, for eval) and training reads it with shuffled files on
# purpose; TFDS warns about that once per epoch, which says nothing to a user.
logging.getLogger("absl").addFilter(lambda record: "is an ordered dataset" not in record.getMessage())


def config_name(source: str, split: str, image_size: int) -> str:
    """The TFDS config name of a cache: one per (source dataset, split, image size)."""
    return f"{source}-{split}-{image_size}"


class PreparedImagesConfig(tfds.core.BuilderConfig):
    """A cache's identity plus its features (read back from features.json when opening an existing cache)."""

    def __init__(self, *, source: str, split: str, image_size: int, features: tfds.features.FeaturesDict, **kwargs):
        super().__init__(name=config_name(source, split, image_size), version="1.0.0", **kwargs)
        self.source, self.split, self.image_size, self.features = source, split, image_size, features


class PreparedImages(tfds.core.GeneratorBasedBuilder):
    """`prepared_images`: one split of a source builder as centre-cropped uint8 [S, S, C] images, in source order."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Centre crops from pipeline.eval_batches, raw uint8 bytes."}
    BUILDER_CONFIG_CLASS = PreparedImagesConfig

    def __init__(self, *, source_builder: tfds.core.DatasetBuilder | None = None, batch_size: int = 256, **kwargs):
        self.source_builder, self.batch_size = source_builder, batch_size
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        config = self.builder_config
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"{config.source} {config.split!r}, centre-cropped to {config.image_size} px (ldae_jax cache).",
            features=config.features,
            supervised_keys=("image", "label"),
            disable_shuffling=True,  # keep the source's read order: eval_batches gives the same batches
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing is downloaded
        if self.source_builder is None:
            raise DataError(f"{self.name}/{self.builder_config.name} can only be made by prepared.prepare().")
        return {self.builder_config.split: self._generate_examples()}

    def _generate_examples(self) -> Iterator[tuple[int, dict]]:
        config = self.builder_config
        total = num_examples(self.source_builder, config.split)
        batches = pipeline.eval_batches(self.source_builder, split=config.split, global_batch_size=self.batch_size,
                                        image_size=config.image_size, process_index=0, process_count=1)
        start, done, last_print = time.perf_counter(), 0, 0.0
        for batch in batches:
            for image, label in zip(batch["image"][batch["mask"]], batch["label"][batch["mask"]]):
                yield done, {"image": image, "label": int(label)}
                done += 1
            elapsed = time.perf_counter() - start
            if elapsed - last_print >= 10 or done == total:
                rate = done / max(elapsed, 1e-9)
                eta = (total - done) / max(rate, 1e-9)
                print(f"prepared {done}/{total} images, {rate:.0f} images/s, ETA {eta / 60:.1f} min", flush=True)
                last_print = elapsed


def _cache_dir(out_dir: str, name: str) -> str:
    return os.path.join(out_dir, NAME, name, "1.0.0")


def prepare(builder: tfds.core.DatasetBuilder, split: str, out_dir: str, image_size: int, *,
            batch_size: int = 256) -> PreparedImages:
    """Writes `split` of `builder` centre-cropped to `image_size` into `out_dir`; returns the prepared builder."""
    if split not in builder.info.splits:  # a sliced split ('train[:10%]') would be a cache of another split
        raise DataError(f"Split {split!r} is not a split of {builder.name} ({', '.join(builder.info.splits)}); "
                        "a cache holds one whole split.")
    if image_size < 1 or batch_size < 1:
        raise DataError(f"image_size={image_size} and batch_size={batch_size} must be positive.")
    source = pipeline._check_image_args(builder, image_size, "center_crop", pipeline.MAE_SCALE, pipeline.MAE_RATIO)
    if not isinstance(source, tfds.features.Image):
        raise DataError(f"{builder.name} already holds raw uint8 tensors; it is a cache, not a source.")
    label = builder.info.features["label"]
    names = getattr(label, "names", None)
    features = tfds.features.FeaturesDict({
        "image": tfds.features.Tensor(shape=(image_size, image_size, source.shape[-1]), dtype=np.uint8,
                                      encoding=tfds.features.Encoding.BYTES),
        "label": tfds.features.ClassLabel(names=names) if names else tfds.features.ClassLabel(
            num_classes=label.num_classes),
    })
    config = PreparedImagesConfig(source=builder.name, split=split, image_size=image_size, features=features)
    prepared = PreparedImages(data_dir=out_dir, config=config, source_builder=builder, batch_size=batch_size)
    if prepared.is_prepared():
        print(f"{prepared.data_dir} is already prepared.", flush=True)
    else:
        prepared.download_and_prepare(download_config=tfds.download.DownloadConfig(
            try_download_gcs=False, compute_stats=tfds.download.ComputeStatsMode.SKIP))
    return prepared


def prepared_builder(out_dir: str, source: str, split: str, image_size: int) -> PreparedImages:
    """Opens the cache of (source, split, image_size) in `out_dir`; a missing one is a DataError naming the fix."""
    name = config_name(source, split, image_size)
    path = _cache_dir(out_dir, name)
    if not os.path.isfile(os.path.join(path, "dataset_info.json")):
        root = os.path.join(out_dir, NAME)
        found = sorted(os.listdir(root)) if os.path.isdir(root) else []
        others = f"it holds only {', '.join(found)}" if found else "it holds no cache"
        raise DataError(f"No prepared cache {name} (dataset {source}, split {split!r}, {image_size} px) in {out_dir}: "
                        f"{others}. Make it with `python -m ldae_jax.data.prepared --dataset={source} "
                        f"--split={split} --image_size={image_size} --out_dir={out_dir} --data_dir=...`, or set "
                        "data.prepared_dir='' to read the source dataset.")
    features = tfds.features.FeatureConnector.from_config(path)
    if features["image"].shape[:2] != (image_size, image_size):  # a renamed or hand-copied directory
        raise DataError(f"{path} holds {features['image'].shape} images, not {image_size} px; prepare it again.")
    config = PreparedImagesConfig(source=source, split=split, image_size=image_size, features=features)
    builder = PreparedImages(data_dir=out_dir, config=config)
    if not builder.is_prepared():
        raise DataError(f"{builder.data_dir} is incomplete (an interrupted prepare?); delete it and prepare again.")
    return builder


@dataclasses.dataclass(frozen=True)
class _SplitsInfo:
    features: tfds.features.FeaturesDict
    splits: "_RoutedSplits"


class _RoutedSplits:
    def __init__(self, caches: dict):
        self._caches = caches

    def __getitem__(self, split):
        return self._caches[base_split(split)].info.splits[split]

    def __contains__(self, split) -> bool:
        return base_split(split) in self._caches

    def __iter__(self):
        return iter(self._caches)


class PreparedSplits:
    """Several one-split caches behind the builder interface the pipeline uses (info, name, as_dataset).

    Why: a run reads a train and an eval split from one `Experiment.builder`; a cache holds one split, so this routes
    each call by split name ('train[:90%]' and its per-process slices go to the 'train' cache).
    """

    def __init__(self, caches: dict[str, PreparedImages]):
        first = next(iter(caches.values()))
        self._caches, self.name, self.builder_config = caches, first.name, first.builder_config
        self.info = _SplitsInfo(first.info.features, _RoutedSplits(caches))
        self.data_dir = {split: cache.data_dir for split, cache in caches.items()}

    def as_dataset(self, *, split, **kwargs):
        return self._caches[base_split(split)].as_dataset(split=split, **kwargs)


def open_splits(out_dir: str, source: str, splits, image_size: int) -> PreparedSplits:
    """The caches of `splits` (slices allowed) of `source` at `image_size` in `out_dir`, as one builder."""
    caches = {}
    for split in splits:
        name = base_split(split)
        if name not in caches:
            caches[name] = prepared_builder(out_dir, source, name, image_size)
    labels = {str(cache.info.features["label"].num_classes) for cache in caches.values()}
    if len(labels) > 1:
        raise DataError(f"The caches of {', '.join(caches)} in {out_dir} disagree on the number of classes "
                        f"({', '.join(sorted(labels))}); prepare them again from one source.")
    return PreparedSplits(caches)


# ------------------------------------------------------------------------------------------------- CLI


def parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(prog="python -m ldae_jax.data.prepared", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="imagenet2012", help="source TFDS dataset (prepared in --data_dir)")
    p.add_argument("--data_dir", default="", help="source TFDS data_dir; '' = TFDS default")
    p.add_argument("--split", default="validation", help="whole split to cache")
    p.add_argument("--image_size", type=int, default=256, help="side of the stored centre crops")
    p.add_argument("--out_dir", required=True, help="where the cache is written (a TFDS data_dir)")
    p.add_argument("--batch_size", type=int, default=256, help="decode batch size")
    p.add_argument("--dry_run", action="store_true", help="check the arguments without reading any data, then stop")
    return p


def main(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    if args.image_size < 1 or args.batch_size < 1:
        raise DataError(f"--image_size={args.image_size} and --batch_size={args.batch_size} must be positive.")
    sources.check_name(args.dataset)
    if args.dry_run:
        name = config_name(args.dataset, args.split, args.image_size)
        print(f"dry run: the arguments are valid; would write {name} into {args.out_dir}")
        return
    builder = sources.get_source(args.dataset, args.data_dir or None)
    cache = prepare(builder, args.split, args.out_dir, args.image_size, batch_size=args.batch_size)
    print(f"Done: {cache.data_dir}; train with data.prepared_dir={args.out_dir}.")


if __name__ == "__main__":
    cli.run(main)
