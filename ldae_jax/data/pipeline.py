"""The per-host tf.data input pipeline: TFDS builder -> host-local uint8 batches.

Every host reads only its own slice of a split (`tfds.split_for_jax_process`). The training stream is infinite and
a deterministic function of (seed, process slice): epoch e is shuffled with a seed made from (seed, process, e),
and augmentation uses stateless random ops keyed on (seed, process, e, position in the epoch). So `start_step`
resumes exactly, by skipping serialized records before any decoding. A centre-crop split small enough for host
memory (`in_memory_mb`) skips tf.data after one read and is cut by index (`in_memory.py`), which is as exact and
has no shuffle buffer to refill at each epoch. Images stay uint8; `normalize_images` maps them to [-1, 1] on
device.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from ldae_jax.data import augment as augment_lib, in_memory, tf_setup  # noqa: F401  (tf_setup hides GPUs from TF)
from ldae_jax.data.splits import num_examples
from ldae_jax.errors import DataError

AUGMENTS = ("center_crop", "random_resized_crop")
MAE_SCALE = (0.2, 1.0)  # MAE pre-training's RandomResizedCrop area range
MAE_RATIO = (3 / 4, 4 / 3)


# ------------------------------------------------------------------------------------------ preprocessing


def _resize(image: tf.Tensor, height, width) -> tf.Tensor:
    """Antialiased bicubic resize (the MAE/torchvision interpolation) of a uint8 image, back to uint8."""
    out = tf.image.resize(image, tf.stack([height, width]), method="bicubic", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(out), 0.0, 255.0), tf.uint8)


def center_crop(image: tf.Tensor, size: int) -> tf.Tensor:
    """uint8 [H, W, C] -> [size, size, C]: resize the shorter side to `size`, then crop the centre."""
    shape = tf.shape(image)
    height, width, short = shape[0], shape[1], tf.minimum(shape[0], shape[1])
    factor = size / tf.cast(short, tf.float64)
    new_h = tf.maximum(size, tf.cast(tf.round(tf.cast(height, tf.float64) * factor), tf.int32))
    new_w = tf.maximum(size, tf.cast(tf.round(tf.cast(width, tf.float64) * factor), tf.int32))
    image = tf.cond(short == size, lambda: image, lambda: _resize(image, new_h, new_w))
    top, left = (tf.shape(image)[0] - size) // 2, (tf.shape(image)[1] - size) // 2
    image = image[top:top + size, left:left + size]
    image.set_shape([size, size, image.shape[-1]])
    return image


def _crop_window(image_shape: tf.Tensor, seed: tf.Tensor, scale: Sequence[float],
                 ratio: Sequence[float]) -> tf.Tensor:
    """[offset_y, offset_x, height, width] of a random crop with area fraction in `scale`, aspect (w/h) in `ratio`."""
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        image_shape, bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4]), seed=seed,
        min_object_covered=0.0, aspect_ratio_range=tuple(ratio), area_range=tuple(scale), max_attempts=10,
        use_image_if_no_bounding_boxes=True)  # after 10 failed tries: the whole image
    return tf.stack([begin[0], begin[1], crop_size[0], crop_size[1]])


def random_resized_crop(image: tf.Tensor, size: int, seed: tf.Tensor, scale: Sequence[float] = MAE_SCALE,
                        ratio: Sequence[float] = MAE_RATIO) -> tf.Tensor:
    """uint8 [H, W, C] -> [size, size, C]: Inception-style random crop, resized; `seed` is a stateless [2] seed."""
    top, left, height, width = tf.unstack(_crop_window(tf.shape(image), seed, scale, ratio))
    return _resize(image[top:top + height, left:left + width], size, size)


def random_flip(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Horizontal flip with probability 1/2; `seed` is a stateless [2] seed."""
    return tf.image.stateless_random_flip_left_right(image, seed)


def normalize_images(images):
    """Pixel values [0, 255] -> [-1, 1]: uint8 becomes float32, a float input keeps its dtype (e.g. float64).

    jnp for jax arrays (on device, also under jit), np otherwise.
    """
    xp = jnp if isinstance(images, jax.Array) else np
    images = xp.asarray(images)
    if not xp.issubdtype(images.dtype, xp.floating):
        images = images.astype(xp.float32)
    return images / 127.5 - 1.0


def _decode_train(feature: tfds.features.Image, image_size: int, augment: str, flip: bool,
                  scale: Sequence[float], ratio: Sequence[float]):
    """(serialized example, stateless seed) -> augmented uint8 image; JPEGs decode only the crop window."""
    channels = feature.shape[-1]

    def decode(data: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        if augment == "center_crop":  # the identity on a prepared cache's [S, S, C] images
            image = center_crop(feature.decode_example(data), image_size)
        elif getattr(feature, "encoding_format", None) == "jpeg":  # a prepared cache's Tensor has none
            window = _crop_window(tf.image.extract_jpeg_shape(data), crop_seed, scale, ratio)
            image = _resize(tf.image.decode_and_crop_jpeg(data, window, channels=channels), image_size, image_size)
        else:
            image = random_resized_crop(feature.decode_example(data), image_size, crop_seed, scale, ratio)
        image.set_shape([image_size, image_size, channels])
        return random_flip(image, flip_seed) if flip else image

    return decode


# ------------------------------------------------------------------------------------------- iterators


def _options() -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = True  # parallel maps keep their order: the stream is reproducible
    options.threading.max_intra_op_parallelism = 1  # parallelism across examples, not inside one op
    return options


def _process_and_batch(global_batch_size: int, process_index: int | None,
                       process_count: int | None) -> tuple[int, int, int]:
    """(process_index, process_count, host batch size), defaulting to this JAX process."""
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
    if process_count < 1 or not 0 <= process_index < process_count:
        raise DataError(f"process_index={process_index} must be in [0, process_count={process_count}).")
    if global_batch_size < 1 or global_batch_size % process_count:
        raise DataError(f"global_batch_size={global_batch_size} must be a positive multiple of the "
                        f"process count {process_count}; change the batch size in the config.")
    return process_index, process_count, global_batch_size // process_count


def _is_prepared_image(feature) -> bool:
    """The image feature of a `prepared.py` cache: already-decoded uint8 [S, S, C] stored as raw bytes."""
    return (isinstance(feature, tfds.features.Tensor) and feature.np_dtype == np.uint8 and len(feature.shape) == 3
            and None not in feature.shape)


def _check_image_args(builder: tfds.core.DatasetBuilder, image_size: int, augment: str,
                      scale: Sequence[float], ratio: Sequence[float]) -> tfds.features.Image | tfds.features.Tensor:
    """The image feature: an Image, or a prepared cache's uint8 Tensor of side `image_size`.

    On a cache `center_crop` is the identity, but `random_resized_crop` crops the stored S-px centre square and
    resizes it: unlike the JPEG path, which crops the full-resolution image, it never sees the long side's ends and
    upsamples small crops from S px, not from the original resolution.
    """
    features = builder.info.features
    if not {"image", "label"} <= set(features.keys()) or not (
            isinstance(features["image"], tfds.features.Image) or _is_prepared_image(features["image"])):
        raise DataError(f"{builder.name} has features {list(features.keys())}; an 'image' Image and a 'label' "
                        "are needed.")
    if _is_prepared_image(features["image"]) and tuple(features["image"].shape[:2]) != (image_size, image_size):
        raise DataError(f"{builder.name} {builder.builder_config.name if builder.builder_config else ''} holds "
                        f"{features['image'].shape[0]} px images, not image_size={image_size}; prepare a cache "
                        "at this size.")
    if image_size < 1:
        raise DataError(f"image_size={image_size} must be positive.")
    if augment not in AUGMENTS:
        raise DataError(f"Unknown augment {augment!r}; choose one of {', '.join(AUGMENTS)}.")
    if not 0 < scale[0] <= scale[1] <= 1 or not 0 < ratio[0] <= ratio[1]:
        raise DataError(f"Bad crop scale={tuple(scale)} / ratio={tuple(ratio)}: need 0 < lo <= hi (<= 1 for scale).")
    return features["image"]


def train_iterator(builder: tfds.core.DatasetBuilder, *, split: str, global_batch_size: int, image_size: int,
                   augment: str, seed: int, start_step: int = 0, process_index: int | None = None,
                   process_count: int | None = None, flip: bool = False,
                   scale: Sequence[float] = MAE_SCALE, ratio: Sequence[float] = MAE_RATIO,
                   shuffle_buffer: int = 50_000, rand_augment: tuple[float, float] | None = None,
                   in_memory_mb: int = 0) -> Iterator[dict]:
    """Infinite host-local batches {"image": uint8 [b, S, S, C], "label": int32 [b]}, b = global / processes.

    `rand_augment` (magnitude, magnitude std) adds RandAugment after the crop and flip (fine-tuning).
    A centre-crop stream whose decoded host split takes at most `in_memory_mb` MB is read once and cut from
    memory (`in_memory.py`: no epoch-boundary stall; its order is another, equally exact, function of the seed).

    Each epoch yields `num_examples(host slice) // b` batches (the remainder is dropped), so step k is at
    (epoch, offset) = divmod(k, steps_per_epoch) and `start_step=k` gives exactly the batches an uninterrupted
    run sees from step k on. `shuffle_buffer` counts serialized records (memory: records x their size).
    """
    process_index, process_count, batch = _process_and_batch(global_batch_size, process_index, process_count)
    feature = _check_image_args(builder, image_size, augment, scale, ratio)
    if seed < 0 or start_step < 0 or shuffle_buffer < 1 or in_memory_mb < 0:
        raise DataError(f"seed={seed}, start_step={start_step}, in_memory_mb={in_memory_mb} must be >= 0 and "
                        f"shuffle_buffer={shuffle_buffer} > 0.")
    num_examples(builder, split)  # a bad split fails here, named as the user wrote it
    host_split = tfds.split_for_jax_process(split, process_index=process_index, process_count=process_count,
                                            drop_remainder=True)  # equal slices: equal epochs on all hosts
    host_examples = num_examples(builder, host_split)
    steps_per_epoch = host_examples // batch
    if steps_per_epoch == 0:
        raise DataError(f"{builder.name} {split!r} gives each of {process_count} processes {host_examples} examples, "
                        f"fewer than one host batch of {batch}; use a smaller batch or a larger split.")
    if augment == "center_crop" and rand_augment is None and _fits(host_examples, image_size, feature, in_memory_mb):
        images, labels = _held(builder, feature, host_split, image_size, host_examples)
        return in_memory.train_batches(images, labels, batch=batch, seed=seed, process_index=process_index,
                                       start_step=start_step, flip=flip)
    decode = _decode_train(feature, image_size, augment, flip, scale, ratio)

    def epoch_dataset(epoch: int, first_step: int) -> tf.data.Dataset:
        shuffle_seed, *aug_seed = np.random.SeedSequence([seed, process_index, epoch]).generate_state(3)
        aug_seed = tf.constant(np.array(aug_seed, np.int64))
        # No ordering guard: a prepared cache is stored in source order (for eval), training still shuffles it.
        read_config = tfds.ReadConfig(shuffle_seed=int(shuffle_seed), try_autocache=False, options=_options(),
                                      enable_ordering_guard=False)
        ds = builder.as_dataset(split=host_split, shuffle_files=True, read_config=read_config,
                                decoders={"image": tfds.decode.SkipDecoding()})
        ds = ds.shuffle(min(shuffle_buffer, host_examples), seed=int(shuffle_seed))
        # Skip still-serialized records; the position keys the augmentation, so it is the same after a resume.
        skip = first_step * batch
        ds = ds.skip(skip).enumerate(start=skip)

        def example(i, ex):
            example_seed = tf.random.experimental.stateless_fold_in(aug_seed, i)
            image = decode(ex["image"], example_seed)
            if rand_augment is not None:
                image = augment_lib.rand_augment(image, tf.random.experimental.stateless_fold_in(example_seed, 2),
                                                 magnitude=rand_augment[0], magnitude_std=rand_augment[1])
            return {"image": image, "label": tf.cast(ex["label"], tf.int32)}

        ds = ds.map(example, num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.batch(batch, drop_remainder=True).take(steps_per_epoch - first_step)
        return ds.prefetch(2).with_options(_options())

    def batches() -> Iterator[dict]:
        epoch, first_step = divmod(start_step, steps_per_epoch)
        while True:
            yielded = 0
            for yielded, example in enumerate(epoch_dataset(epoch, first_step).as_numpy_iterator(), 1):
                yield example
            if yielded == 0:
                raise DataError(f"{builder.name} {split!r} yielded no batch in epoch {epoch}; its files do not "
                                "match its metadata, prepare the dataset again.")
            epoch, first_step = epoch + 1, 0

    return batches()


def _fits(examples: int, image_size: int, feature, in_memory_mb: int) -> bool:
    return in_memory_mb > 0 and in_memory.decoded_bytes(examples, image_size, feature.shape[-1]) <= in_memory_mb * 2**20


def _centre_crops(builder, feature, host_split: str, image_size: int, host_examples: int) -> tf.data.Dataset:
    """The examples of `host_split` in stored order as {"image": its centre crop, "label", "mask": True}."""
    ds = builder.as_dataset(split=host_split, shuffle_files=False,
                            read_config=tfds.ReadConfig(try_autocache=False, options=_options()),
                            decoders={"image": tfds.decode.SkipDecoding()})

    def example(ex):
        image = center_crop(feature.decode_example(ex["image"]), image_size)
        return {"image": image, "label": tf.cast(ex["label"], tf.int32), "mask": tf.constant(True)}

    return ds.take(host_examples).map(example, num_parallel_calls=tf.data.AUTOTUNE)


def _held(builder, feature, host_split: str, image_size: int, host_examples: int):
    """(images, labels) of `host_split` from memory, read there by one centre-crop pass the first time."""
    return in_memory.host_arrays(
        builder, host_split, image_size,
        lambda: _centre_crops(builder, feature, host_split, image_size, host_examples).batch(1024)
        .prefetch(2).with_options(_options()).as_numpy_iterator())


def eval_batches(builder: tfds.core.DatasetBuilder, *, split: str, global_batch_size: int, image_size: int,
                 process_index: int | None = None, process_count: int | None = None,
                 in_memory_mb: int = 0) -> Iterator[dict]:
    """One centre-cropped pass over this host's slice: {"image": uint8 [b,S,S,C], "label": int32 [b], "mask": bool [b]}.

    Padding examples (mask False) fill the last batch and, where a host's slice is shorter, whole batches, so every
    host yields ceil(largest slice / b) batches and every example of the split is counted exactly once. A slice
    of at most `in_memory_mb` MB decoded is read once per process and then served from memory (same batches).
    """
    process_index, process_count, batch = _process_and_batch(global_batch_size, process_index, process_count)
    feature = _check_image_args(builder, image_size, "center_crop", MAE_SCALE, MAE_RATIO)
    num_examples(builder, split)  # a bad split fails here, named as the user wrote it
    host_splits = [tfds.split_for_jax_process(split, process_index=i, process_count=process_count)
                   for i in range(process_count)]
    sizes = [num_examples(builder, s) for s in host_splits]
    steps, host_examples = -(-max(sizes) // batch), sizes[process_index]
    host_split = host_splits[process_index]
    if _fits(host_examples, image_size, feature, in_memory_mb):
        images, labels = _held(builder, feature, host_split, image_size, host_examples)
        return in_memory.eval_batches(images, labels, batch=batch, steps=steps)
    ds = _centre_crops(builder, feature, host_split, image_size, host_examples)
    padding = tf.data.Dataset.from_tensors({
        "image": tf.zeros([image_size, image_size, feature.shape[-1]], tf.uint8),
        "label": tf.constant(0, tf.int32), "mask": tf.constant(False)})
    ds = ds.concatenate(padding.repeat(steps * batch - host_examples))
    ds = ds.batch(batch, drop_remainder=True).prefetch(2).with_options(_options())
    return ds.as_numpy_iterator()
