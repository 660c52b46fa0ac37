"""RandAugment of MAE's fine-tuning recipe, on the host (tf.data); Mixup / CutMix run on device (`evaluate/mixup.py`).

RandAugment reimplements timm's `rand-m9-mstd0.5-inc1` (timm's `auto_augment.py`, which MAE fine-tuning uses) with
stateless TF ops only, so an image's augmentation is a function of its [2] seed (the pipeline derives that from the
step) and a restarted run sees the same images. Per image, `num_layers` ops are drawn uniformly with replacement from
`RAND_INCREASING_TRANSFORMS`; each is applied with probability 0.5 and its own magnitude m ~ N(9, 0.5) clipped to
[0, 10]; signed arguments get a random sign. Ops and their arguments for m in [0, 10] (timm's 'increasing' mappings):

- AutoContrast, Equalize, Invert: no argument (PIL ImageOps semantics: per-channel min/max stretch; per-channel
  histogram equalisation with PIL's lookup table; 255 - x).
- Rotate: +-30 m/10 degrees, counter-clockwise about the image centre.
- PosterizeIncreasing: keep 4 - int(4 m/10) high bits (4 -> 0; at m = 9 one bit).
- SolarizeIncreasing: invert pixels >= 256 - int(256 m/10) (threshold 256 -> 0; 256 is the identity).
- SolarizeAdd: add int(110 m/10) to pixels < 128, saturating at 255.
- ColorIncreasing, ContrastIncreasing, BrightnessIncreasing, SharpnessIncreasing: PIL ImageEnhance blend factor
  max(0.1, 1 +- 0.9 m/10), truncated to uint8 like PIL's blend. Colour's degenerate is PIL's luma
  (299 R + 587 G + 114 B) / 1000; contrast's the rounded mean luma; sharpness' the 3x3 [1 1 1; 1 5 1; 1 1 1] / 13
  smoothing with the one-pixel border kept.
- ShearX, ShearY: shear factor +-0.3 m/10.
- TranslateXRel, TranslateYRel: shift by +-0.45 m/10 of the width / height (timm's default translate_pct).

Grayscale (C = 1, Fashion-MNIST): Color is the identity (the image is its own luma); every other op acts on the
single channel. Geometric ops fill uncovered pixels with MAE's ImageNet mean (124, 116, 104), timm's `img_mean`
hparam, for C = 3 and with timm's default 128 for C = 1 (`fill` overrides it).

Deviations from timm/PIL: geometric ops interpolate bilinearly (`ImageProjectiveTransformV3` has no bicubic; MAE's
timm uses bicubic), and at the image border TF blends into the fill over one pixel where PIL cuts hard and clamps
neighbours; interpolated values are rounded to the nearest integer. Other ops match PIL's integer arithmetic up to
float32 rounding of the level arithmetic (int(m / 10 * 256) etc.) at exact boundaries.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import tensorflow as tf

from ldae_jax.data import tf_setup  # noqa: F401  (TF only runs host-side augmentation here: no GPUs for it)

MAX_LEVEL = 10.0  # timm's _LEVEL_DENOM: magnitudes live in [0, 10]
TRANSLATE_PCT = 0.45  # timm's default translate_pct
IMAGENET_FILL = (124, 116, 104)  # round(255 * IMAGENET_DEFAULT_MEAN): timm's img_mean hparam in MAE's transform
GRAY_FILL = 128  # timm's default _FILL, used for one-channel images


# ------------------------------------------------------------------------------------------------- helpers


def _channels(image: tf.Tensor) -> int:
    """The static channel count: colour ops branch on it in Python, so it must be known when tracing."""
    if image.shape.rank != 3 or image.shape[-1] not in (1, 3):
        raise ValueError(f"RandAugment needs a [H, W, C] image with a static C of 1 or 3, got shape {image.shape}.")
    return image.shape[-1]


def _to_uint8(x: tf.Tensor) -> tf.Tensor:
    """Saturate and truncate, like PIL's uint8 blend."""
    return tf.cast(tf.clip_by_value(x, 0.0, 255.0), tf.uint8)


def _blend(degenerate: tf.Tensor, image: tf.Tensor, factor) -> tf.Tensor:
    """PIL's Image.blend(degenerate, image, factor): factor 1 is the image, 0 the degenerate, > 1 extrapolates."""
    degenerate = tf.cast(degenerate, tf.float32)
    return _to_uint8(degenerate + tf.cast(factor, tf.float32) * (tf.cast(image, tf.float32) - degenerate))


def _luma(image: tf.Tensor) -> tf.Tensor:
    """int32 [H, W, 1]: PIL's RGB -> L conversion (fixed point, rounded); a one-channel image is its own luma."""
    x = tf.cast(image, tf.int32)
    if _channels(image) == 1:
        return x
    weighted = x[..., 0:1] * 19595 + x[..., 1:2] * 38470 + x[..., 2:3] * 7471 + 0x8000
    return tf.bitwise.right_shift(weighted, 16)


def _fill_values(image: tf.Tensor, fill: int | Sequence[int] | None) -> tf.Tensor:
    channels = _channels(image)
    if fill is None:
        fill = IMAGENET_FILL if channels == 3 else GRAY_FILL
    values = [float(fill)] * channels if isinstance(fill, (int, float)) else [float(v) for v in fill]
    if len(values) != channels:
        raise ValueError(f"fill {fill!r} does not match {channels} channels.")
    return tf.constant(values, tf.float32)


def _affine(image: tf.Tensor, matrix: Sequence, fill) -> tf.Tensor:
    """PIL's Image.transform(AFFINE, matrix) in TF pixel-centre coordinates: output (x, y) reads input
    (a0 x + a1 y + a2, b0 x + b1 y + b2). Shifting by the fill first turns TF's scalar zero fill into a per-channel
    one, exactly (bilinear interpolation is linear)."""
    fill_values = _fill_values(image, fill)
    transform = tf.cast(tf.stack(list(matrix) + [0.0, 0.0]), tf.float32)[None]
    shifted = tf.cast(image, tf.float32) - fill_values
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=shifted[None], transforms=transform, output_shape=tf.shape(image)[:2], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="CONSTANT")[0]
    return _to_uint8(tf.round(out + fill_values))


def _centre(image: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(cx, cy) of the image in TF coordinates, the w/2, h/2 of PIL's half-pixel-offset coordinates."""
    shape = tf.cast(tf.shape(image), tf.float32)
    return (shape[1] - 1.0) / 2.0, (shape[0] - 1.0) / 2.0


# ----------------------------------------------------------------------------------------------------- ops
# Every op is fn(image uint8 [H, W, C], arg, fill=None) -> uint8 [H, W, C]; `arg` is the op's own argument (degrees,
# bits, threshold, factor, ...), not the magnitude; `fill` only matters for the geometric ops.


def auto_contrast(image, arg=0.0, fill=None):
    """Stretch each channel to [0, 255] (PIL's int() truncation); a constant channel is left alone."""
    del arg, fill
    x = tf.cast(image, tf.float32)
    lo = tf.reduce_min(x, axis=[0, 1])
    hi = tf.reduce_max(x, axis=[0, 1])
    stretched = tf.floor((x - lo) * 255.0 / tf.maximum(hi - lo, 1.0))  # exact at lo -> 0 and hi -> 255
    return _to_uint8(tf.where(hi > lo, stretched, x))


def equalize(image, arg=0.0, fill=None):
    """PIL's ImageOps.equalize per channel: lut[i] = (step // 2 + #pixels below i) // step, where step is the number
    of pixels below the channel's top value over 256; step 0 (one value, or very few pixels) keeps the channel."""
    del arg, fill
    channels = _channels(image)
    x = tf.reshape(tf.cast(image, tf.int32), [-1, channels])
    index = x + tf.range(channels) * 256  # one 256-bin histogram per channel, from one bincount
    hist = tf.reshape(tf.math.bincount(tf.reshape(index, [-1]), minlength=256 * channels,
                                       maxlength=256 * channels, dtype=tf.int32), [channels, 256])
    step = tf.reduce_sum(tf.cast(x < tf.reduce_max(x, axis=0), tf.int32), axis=0) // 256  # [C]
    below = tf.cumsum(hist, axis=1, exclusive=True)
    lut = tf.minimum((below + step[:, None] // 2) // tf.maximum(step, 1)[:, None], 255)
    lut = tf.where(step[:, None] > 0, lut, tf.range(256)[None])
    return tf.reshape(tf.cast(tf.gather(tf.reshape(lut, [-1]), index), tf.uint8), tf.shape(image))


def invert(image, arg=0.0, fill=None):
    del arg, fill
    return 255 - image


def rotate(image, degrees, fill=None):
    """PIL's Image.rotate(degrees): counter-clockwise about the centre, same size."""
    theta = -tf.cast(degrees, tf.float32) * (3.141592653589793 / 180.0)
    cos, sin = tf.cos(theta), tf.sin(theta)
    cx, cy = _centre(image)
    return _affine(image, [cos, sin, cx - cos * cx - sin * cy, -sin, cos, cy + sin * cx - cos * cy], fill)


def posterize(image, bits, fill=None):
    """Keep the `bits` most significant bits (0 bits: black)."""
    del fill
    shift = 8 - tf.clip_by_value(tf.cast(bits, tf.int32), 0, 8)
    mask = 256 - tf.bitwise.left_shift(1, shift)
    return tf.cast(tf.bitwise.bitwise_and(tf.cast(image, tf.int32), mask), tf.uint8)


def solarize(image, threshold, fill=None):
    """Invert the pixels >= threshold; threshold 256 is the identity."""
    del fill
    x = tf.cast(image, tf.int32)
    return tf.cast(tf.where(x < tf.cast(threshold, tf.int32), x, 255 - x), tf.uint8)


def solarize_add(image, add, fill=None, threshold: int = 128):
    """Add `add` to the pixels below `threshold`, saturating."""
    del fill
    x = tf.cast(image, tf.int32)
    return tf.cast(tf.where(x < threshold, tf.minimum(x + tf.cast(add, tf.int32), 255), x), tf.uint8)


def color(image, factor, fill=None):
    """PIL's ImageEnhance.Color: blend with the luma image (the identity for one channel)."""
    del fill
    if _channels(image) == 1:
        return tf.identity(image)
    return _blend(tf.broadcast_to(_luma(image), tf.shape(image)), image, factor)


def contrast(image, factor, fill=None):
    """PIL's ImageEnhance.Contrast: blend with a flat image of the rounded mean luma."""
    del fill
    mean = tf.floor(tf.reduce_mean(tf.cast(_luma(image), tf.float32)) + 0.5)
    return _blend(tf.fill(tf.shape(image), mean), image, factor)


def brightness(image, factor, fill=None):
    """PIL's ImageEnhance.Brightness: blend with black."""
    del fill
    return _blend(tf.zeros_like(image), image, factor)


def sharpness(image, factor, fill=None):
    """PIL's ImageEnhance.Sharpness: blend with the SMOOTH-filtered image, whose one-pixel border is the original."""
    del fill
    x = tf.cast(image, tf.float32)
    kernel = tf.constant([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0
    planes = tf.transpose(x, [2, 0, 1])[..., None]  # channels as a batch: one kernel serves C = 1 and 3
    smooth = tf.round(tf.nn.conv2d(planes, kernel[:, :, None, None], strides=1, padding="VALID"))
    smooth = tf.pad(tf.transpose(smooth[..., 0], [1, 2, 0]), [[1, 1], [1, 1], [0, 0]])
    shape = tf.shape(image)
    rows, cols = tf.range(shape[0])[:, None, None], tf.range(shape[1])[None, :, None]
    interior = (rows > 0) & (rows < shape[0] - 1) & (cols > 0) & (cols < shape[1] - 1)
    return _blend(tf.where(interior, smooth, x), image, factor)


def shear_x(image, factor, fill=None):
    """PIL's transform(AFFINE, (1, factor, 0, 0, 1, 0)); the 0.5 factor offset is PIL's pixel-centre convention."""
    return _affine(image, [1.0, factor, 0.5 * factor, 0.0, 1.0, 0.0], fill)


def shear_y(image, factor, fill=None):
    return _affine(image, [1.0, 0.0, 0.0, factor, 1.0, 0.5 * factor], fill)


def translate_x_rel(image, fraction, fill=None):
    """Shift by fraction * width pixels (positive: content moves left, as in timm)."""
    pixels = tf.cast(fraction, tf.float32) * tf.cast(tf.shape(image)[1], tf.float32)
    return _affine(image, [1.0, 0.0, pixels, 0.0, 1.0, 0.0], fill)


def translate_y_rel(image, fraction, fill=None):
    pixels = tf.cast(fraction, tf.float32) * tf.cast(tf.shape(image)[0], tf.float32)
    return _affine(image, [1.0, 0.0, 0.0, 0.0, 1.0, pixels], fill)


# ------------------------------------------------------------------------------------------ level mappings


def _signed(value, negate):
    return tf.where(negate, -value, value)


def _no_arg(magnitude, negate):
    del negate
    return tf.zeros_like(magnitude)


def _rotate_level(magnitude, negate):
    return _signed(magnitude / MAX_LEVEL * 30.0, negate)


def _posterize_increasing_level(magnitude, negate):
    del negate
    return 4.0 - tf.floor(magnitude / MAX_LEVEL * 4.0)


def _solarize_increasing_level(magnitude, negate):
    del negate
    return 256.0 - tf.floor(magnitude / MAX_LEVEL * 256.0)


def _solarize_add_level(magnitude, negate):
    del negate
    return tf.floor(magnitude / MAX_LEVEL * 110.0)


def _enhance_increasing_level(magnitude, negate):
    return tf.maximum(0.1, 1.0 + _signed(magnitude / MAX_LEVEL * 0.9, negate))


def _shear_level(magnitude, negate):
    return _signed(magnitude / MAX_LEVEL * 0.3, negate)


def _translate_rel_level(magnitude, negate):
    return _signed(magnitude / MAX_LEVEL * TRANSLATE_PCT, negate)


Op = Callable[..., tf.Tensor]
# timm name -> (op, magnitude -> argument); the order is timm's _RAND_INCREASING_TRANSFORMS.
_TABLE: dict[str, tuple[Op, Callable]] = {
    "AutoContrast": (auto_contrast, _no_arg),
    "Equalize": (equalize, _no_arg),
    "Invert": (invert, _no_arg),
    "Rotate": (rotate, _rotate_level),
    "PosterizeIncreasing": (posterize, _posterize_increasing_level),
    "SolarizeIncreasing": (solarize, _solarize_increasing_level),
    "SolarizeAdd": (solarize_add, _solarize_add_level),
    "ColorIncreasing": (color, _enhance_increasing_level),
    "ContrastIncreasing": (contrast, _enhance_increasing_level),
    "BrightnessIncreasing": (brightness, _enhance_increasing_level),
    "SharpnessIncreasing": (sharpness, _enhance_increasing_level),
    "ShearX": (shear_x, _shear_level),
    "ShearY": (shear_y, _shear_level),
    "TranslateXRel": (translate_x_rel, _translate_rel_level),
    "TranslateYRel": (translate_y_rel, _translate_rel_level),
}
RAND_INCREASING_TRANSFORMS = tuple(_TABLE)
OPS: dict[str, Op] = {name: op for name, (op, _) in _TABLE.items()}
LEVEL_TO_ARG: dict[str, Callable] = {name: level for name, (_, level) in _TABLE.items()}


# ------------------------------------------------------------------------------------------------ RandAugment


def _sample_magnitude(seed: tf.Tensor, magnitude: float, magnitude_std: float) -> tf.Tensor:
    """timm's AugmentOp: N(m, std), U(0, m) for std = inf, m for std <= 0; clipped to [0, 10]."""
    if magnitude_std == float("inf"):
        value = tf.random.stateless_uniform([], seed, 0.0, magnitude)
    elif magnitude_std > 0:
        value = magnitude + magnitude_std * tf.random.stateless_normal([], seed)
    else:
        value = tf.constant(magnitude, tf.float32)
    return tf.clip_by_value(value, 0.0, MAX_LEVEL)


def _apply(name: str, image: tf.Tensor, magnitude: tf.Tensor, negate: tf.Tensor, fill) -> tf.Tensor:
    op, level = _TABLE[name]
    return op(image, level(magnitude, negate), fill=fill)


def rand_augment(image: tf.Tensor, seed: tf.Tensor, num_layers: int = 2, magnitude: float = 9,
                 magnitude_std: float = 0.5, prob: float = 0.5,
                 fill: int | Sequence[int] | None = None) -> tf.Tensor:
    """timm's RandAugment `rand-m{magnitude}-mstd{magnitude_std}-inc1` of one uint8 [H, W, C] image (C = 1 or 3).

    A pure function of (image, seed): `seed` is a stateless [2] int seed; layer l uses the l-th of
    `stateless_split(seed, num_layers)`, which draws its op, whether it applies, its magnitude and its sign. Graph
    friendly: one `switch_case` per layer runs only the chosen op.
    """
    image = tf.convert_to_tensor(image)
    if image.dtype != tf.uint8:
        raise ValueError(f"rand_augment takes uint8 images, got {image.dtype}.")
    _channels(image)
    if num_layers <= 0:
        return image
    shape = image.shape
    names = RAND_INCREASING_TRANSFORMS
    for layer_seed in tf.unstack(tf.random.experimental.stateless_split(seed, num_layers)):
        op_seed, apply_seed, magnitude_seed, sign_seed = tf.unstack(
            tf.random.experimental.stateless_split(layer_seed, 4))
        index = tf.random.stateless_uniform([], op_seed, 0, len(names), dtype=tf.int32)
        applied = tf.random.stateless_uniform([], apply_seed) < prob
        index = tf.where(applied, index, len(names))  # the last branch is the identity
        level = _sample_magnitude(magnitude_seed, float(magnitude), float(magnitude_std))
        negate = tf.random.stateless_uniform([], sign_seed) > 0.5
        branches = [functools.partial(_apply, name, image, level, negate, fill) for name in names]
        branches.append(functools.partial(tf.identity, image))
        image = tf.switch_case(index, branches)
        image.set_shape(shape)
    return image


# ------------------------------------------------------------------------------------------- Mixup / CutMix
