"""RandAugment ops (TF, host) and Mixup / CutMix (JAX, device) of the fine-tuning recipe."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf

from ldae_jax.data import augment
from ldae_jax.evaluate import mixup

LS, K = 0.1, 16


def _image(channels: int, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size + 4, channels), dtype=np.uint8)


def _seed(i: int) -> tf.Tensor:
    return tf.constant([7, i], tf.int64)


# ------------------------------------------------------------------------------------------------ RandAugment


@pytest.mark.parametrize("channels", [1, 3])
def test_rand_augment_deterministic_per_seed_and_varies_across_seeds(channels):
    image = _image(channels)
    outs = [augment.rand_augment(tf.constant(image), _seed(i)).numpy() for i in range(12)]
    np.testing.assert_array_equal(outs[3], augment.rand_augment(tf.constant(image), _seed(3)).numpy())
    assert all(out.shape == image.shape and out.dtype == np.uint8 for out in outs)
    assert len({out.tobytes() for out in outs}) > 4
    assert any(not np.array_equal(out, image) for out in outs)


def test_rand_augment_in_tf_data_map_matches_eager():
    """Graph mode (tf.data map, per-example folded seeds, batched) for C = 1 and 3; stateless ops make it equal the
    eager result."""
    base = tf.constant([3, 4], tf.int64)
    for channels, size in [(1, 28), (3, 40)]:
        images = np.stack([_image(channels, size, seed=i) for i in range(6)])
        ds = tf.data.Dataset.from_tensor_slices(images).enumerate().map(
            lambda i, x: augment.rand_augment(x, tf.random.experimental.stateless_fold_in(base, i)),
            num_parallel_calls=2).batch(3)
        batches = list(ds.as_numpy_iterator())
        assert [b.shape for b in batches] == [(3, size, size + 4, channels)] * 2
        assert all(b.dtype == np.uint8 for b in batches)
        eager = augment.rand_augment(tf.constant(images[4]), tf.random.experimental.stateless_fold_in(base, 4))
        np.testing.assert_array_equal(batches[1][1], eager.numpy())


def test_transform_list_is_timms_increasing_set():
    assert augment.RAND_INCREASING_TRANSFORMS == (
        "AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeIncreasing", "SolarizeIncreasing", "SolarizeAdd",
        "ColorIncreasing", "ContrastIncreasing", "BrightnessIncreasing", "SharpnessIncreasing", "ShearX", "ShearY",
        "TranslateXRel", "TranslateYRel")
    assert set(augment.OPS) == set(augment.LEVEL_TO_ARG) == set(augment.RAND_INCREASING_TRANSFORMS)


def test_level_mappings_at_both_ends():
    def arg(name, magnitude, negate=False):
        return float(augment.LEVEL_TO_ARG[name](tf.constant(magnitude), tf.constant(negate)))

    assert arg("Rotate", 10.0) == pytest.approx(30.0) and arg("Rotate", 10.0, True) == pytest.approx(-30.0)
    assert (arg("PosterizeIncreasing", 0.0), arg("PosterizeIncreasing", 9.0), arg("PosterizeIncreasing", 10.0)) == (
        4.0, 1.0, 0.0)
    assert (arg("SolarizeIncreasing", 0.0), arg("SolarizeIncreasing", 10.0)) == (256.0, 0.0)
    assert (arg("SolarizeAdd", 0.0), arg("SolarizeAdd", 10.0)) == (0.0, 110.0)
    assert arg("ContrastIncreasing", 10.0) == pytest.approx(1.9)
    assert arg("ContrastIncreasing", 10.0, True) == pytest.approx(0.1)
    assert arg("ShearX", 10.0, True) == pytest.approx(-0.3) and arg("TranslateYRel", 10.0) == pytest.approx(0.45)


_TYPICAL_ARG = {"Rotate": 25.0, "PosterizeIncreasing": 1.0, "SolarizeIncreasing": 40.0, "SolarizeAdd": 99.0,
                "ColorIncreasing": 1.8, "ContrastIncreasing": 0.2, "BrightnessIncreasing": 1.7,
                "SharpnessIncreasing": 0.3, "ShearX": 0.27, "ShearY": -0.27, "TranslateXRel": 0.4,
                "TranslateYRel": -0.4}


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", augment.RAND_INCREASING_TRANSFORMS)
def test_each_op_keeps_shape_and_dtype(name, channels):
    image = tf.constant(_image(channels, 20))
    out = augment.OPS[name](image, _TYPICAL_ARG.get(name, 0.0))
    assert out.shape == image.shape and out.dtype == tf.uint8


@pytest.mark.parametrize("channels", [1, 3])
def test_exact_ops(channels):
    image = _image(channels)
    x = tf.constant(image)
    np.testing.assert_array_equal(augment.OPS["Invert"](x).numpy(), 255 - image)
    np.testing.assert_array_equal(augment.OPS["SolarizeIncreasing"](x, 256.0).numpy(), image)
    np.testing.assert_array_equal(augment.OPS["SolarizeIncreasing"](x, 0.0).numpy(), 255 - image)
    np.testing.assert_array_equal(augment.OPS["Rotate"](x, 0.0).numpy(), image)
    np.testing.assert_array_equal(augment.OPS["PosterizeIncreasing"](x, 2.0).numpy(), image & 0xC0)
    np.testing.assert_array_equal(augment.OPS["PosterizeIncreasing"](x, 0.0).numpy(), 0 * image)
    for name in ("ColorIncreasing", "ContrastIncreasing", "BrightnessIncreasing", "SharpnessIncreasing"):
        np.testing.assert_array_equal(augment.OPS[name](x, 1.0).numpy(), image)  # factor 1: the image itself

    low = image // 4 + 50  # each channel spans about [50, 113]: stretched to [0, 255]
    stretched = augment.OPS["AutoContrast"](tf.constant(low)).numpy().astype(int)
    low = low.astype(int)
    lo, hi = low.min(axis=(0, 1)), low.max(axis=(0, 1))
    np.testing.assert_array_equal(stretched.min(axis=(0, 1)), 0)
    np.testing.assert_array_equal(stretched.max(axis=(0, 1)), 255)
    np.testing.assert_array_equal(stretched, (low - lo) * 255 // (hi - lo))


def test_geometric_ops_move_pixels_and_fill():
    square = _image(3, 16)[:, :16]
    np.testing.assert_array_equal(augment.OPS["Rotate"](tf.constant(square), 90.0).numpy(), np.rot90(square))
    image = _image(1, 10)  # width 14: 0.5 of it is 7 whole pixels, content moves left
    out = augment.OPS["TranslateXRel"](tf.constant(image), 0.5).numpy()
    np.testing.assert_array_equal(out[:, :7], image[:, 7:])
    assert (out[:, 7:] == augment.GRAY_FILL).all()
    out = augment.OPS["TranslateYRel"](tf.constant(_image(3, 10)), -0.3, fill=(1, 2, 3)).numpy()
    np.testing.assert_array_equal(out[3:], _image(3, 10)[:-3])
    np.testing.assert_array_equal(out[:3], np.broadcast_to([1, 2, 3], out[:3].shape))
    sheared = augment.OPS["ShearX"](tf.constant(image), 0.3).numpy()
    assert not np.array_equal(sheared, image) and (sheared == augment.GRAY_FILL).any()


def test_color_is_identity_on_grayscale():
    image = _image(1)
    np.testing.assert_array_equal(augment.OPS["ColorIncreasing"](tf.constant(image), 1.9).numpy(), image)


@pytest.mark.parametrize("channels", [1, 3])
def test_equalize_flattens_a_narrow_ramp(channels):
    ramp = (60 + np.arange(64 * 64) // 64).astype(np.uint8).reshape(64, 64, 1)  # 64 levels in [60, 124)
    image = np.repeat(ramp, channels, axis=-1)
    out = augment.OPS["Equalize"](tf.constant(image)).numpy()
    for c in range(channels):
        counts = np.histogram(out[..., c], bins=8, range=(0, 256))[0]
        assert out[..., c].min() == 0 and out[..., c].max() >= 250
        assert counts.min() > 0.8 * counts.mean() and counts.max() < 1.4 * counts.mean(), counts  # PIL: top level high
        assert np.histogram(image[..., c], bins=8, range=(0, 256))[0].max() == len(ramp.ravel()) // 2


@pytest.mark.parametrize("channels", [1, 3])
def test_ops_match_pillow(channels):
    """timm's ops are PIL's: the pixel ops agree exactly (AutoContrast within PIL's float truncation), the geometric
    ones up to bilinear-vs-PIL rounding and the one-pixel fill border."""
    pil = pytest.importorskip("PIL.Image")
    from PIL import ImageEnhance, ImageOps

    image = np.clip(np.random.default_rng(1).normal(100, 30, (37, 41, channels)), 0, 255).astype(np.uint8)
    as_pil = pil.fromarray(image[..., 0] if channels == 1 else image)
    fill = augment.IMAGENET_FILL if channels == 3 else augment.GRAY_FILL
    affine = functools.partial(as_pil.transform, as_pil.size, pil.AFFINE, resample=pil.BILINEAR, fillcolor=fill)
    cases = [("AutoContrast", 0, ImageOps.autocontrast(as_pil), 1), ("Equalize", 0, ImageOps.equalize(as_pil), 0),
             ("PosterizeIncreasing", 3, ImageOps.posterize(as_pil, 3), 0),
             ("SolarizeIncreasing", 90, ImageOps.solarize(as_pil, 90), 0),
             ("ColorIncreasing", 1.7, ImageEnhance.Color(as_pil).enhance(1.7), 0),
             ("ContrastIncreasing", 0.3, ImageEnhance.Contrast(as_pil).enhance(0.3), 0),
             ("BrightnessIncreasing", 1.6, ImageEnhance.Brightness(as_pil).enhance(1.6), 0),
             ("SharpnessIncreasing", 1.8, ImageEnhance.Sharpness(as_pil).enhance(1.8), 0),
             ("Rotate", 23.0, as_pil.rotate(23.0, resample=pil.BILINEAR, fillcolor=fill), None),
             ("ShearX", 0.2, affine((1, 0.2, 0, 0, 1, 0)), None),
             ("ShearY", -0.25, affine((1, 0, 0, -0.25, 1, 0)), None),
             ("TranslateXRel", 0.3, affine((1, 0, 0.3 * 41, 0, 1, 0)), None)]
    for name, arg, expected, tolerance in cases:
        expected = np.asarray(expected).reshape(image.shape).astype(int)
        diff = np.abs(augment.OPS[name](tf.constant(image), arg).numpy().astype(int) - expected)
        if tolerance is None:  # geometric: rounding in the interior, differences only along the fill border
            assert np.median(diff) == 0 and (diff > 1).mean() < 0.05, name
        else:
            assert diff.max() <= tolerance, name


def test_rand_augment_rejects_bad_inputs():
    with pytest.raises(ValueError, match="uint8"):
        augment.rand_augment(tf.zeros([8, 8, 3], tf.float32), _seed(0))
    with pytest.raises(ValueError, match="static C"):
        augment.rand_augment(tf.zeros([8, 8, 4], tf.uint8), _seed(0))


# ------------------------------------------------------------------------------------------- Mixup / CutMix

_mix = jax.jit(mixup.mixup_cutmix, static_argnames=(
    "num_classes", "mixup_alpha", "cutmix_alpha", "switch_prob", "label_smoothing", "mix_prob"))


def _batch(b: int = 8, h: int = 12, w: int = 10, c: int = 3):
    images = jax.random.normal(jax.random.PRNGKey(0), (b, h, w, c))
    return images, jnp.arange(b, dtype=jnp.int32)  # distinct labels: lam is readable from the targets


def _lam_from_targets(targets, labels):
    """Row i's own class gets lam (1 - ls) + ls / K (the partner has another class)."""
    own = np.asarray(targets)[np.arange(len(labels)), np.asarray(labels)]
    return (own - LS / K) / (1 - LS)


def test_no_alphas_is_only_label_smoothing():
    images, labels = _batch()
    out, targets = _mix(jax.random.PRNGKey(1), images, labels, K, mixup_alpha=0.0, cutmix_alpha=0.0)
    np.testing.assert_array_equal(out, images)
    expected = np.full((8, K), LS / K, np.float32)
    expected[np.arange(8), np.arange(8)] += 1 - LS
    np.testing.assert_allclose(targets, expected, rtol=1e-6)


def test_default_targets_are_distributions():
    images, labels = _batch()
    for i in range(4):
        out, targets = _mix(jax.random.PRNGKey(i), images, labels % 3, K)
        assert out.shape == images.shape and out.dtype == images.dtype and targets.shape == (8, K)
        np.testing.assert_allclose(np.asarray(targets).sum(axis=1), 1.0, rtol=1e-5)
        assert (np.asarray(targets) >= LS / K - 1e-7).all()


def test_cutmix_pastes_a_box_and_lam_is_the_kept_area():
    images, labels = _batch()
    flipped, seen_partial = np.asarray(images[::-1]), False
    for i in range(12):
        out, targets = _mix(jax.random.PRNGKey(i), images, labels, K, switch_prob=1.0)  # always CutMix
        out = np.asarray(out)
        kept, pasted = out == np.asarray(images), out == flipped
        assert (kept | pasted).all()
        assert (kept.all(axis=-1) | pasted.all(axis=-1)).all()  # whole pixels, all channels alike
        kept_fraction = kept.all(axis=-1).mean(axis=(1, 2))
        lam = _lam_from_targets(targets, labels)
        np.testing.assert_allclose(lam, kept_fraction, atol=1e-5)
        np.testing.assert_allclose(lam, lam[0], atol=1e-6)  # one box for the whole batch
        seen_partial |= 0 < kept_fraction[0] < 1
        np.testing.assert_allclose(np.asarray(targets).sum(axis=1), 1.0, rtol=1e-5)
    assert seen_partial


def test_mixup_blends_with_the_reversed_batch():
    images, labels = _batch()
    lams = []
    for i in range(6):
        out, targets = _mix(jax.random.PRNGKey(i), images, labels, K, switch_prob=0.0)  # always Mixup
        lam = _lam_from_targets(targets, labels)
        np.testing.assert_allclose(lam, lam[0], atol=1e-6)
        expected = lam[0] * np.asarray(images) + (1 - lam[0]) * np.asarray(images[::-1])
        np.testing.assert_allclose(out, expected, atol=1e-5)
        lams.append(lam[0])
    assert len(set(np.round(lams, 4))) == len(lams) and all(0 <= v <= 1 for v in lams)


def test_mix_prob_zero_and_cutmix_only():
    images, labels = _batch()
    out, targets = _mix(jax.random.PRNGKey(0), images, labels, K, mix_prob=0.0)
    np.testing.assert_array_equal(out, images)
    out, targets = jax.jit(functools.partial(mixup.mixup_cutmix, num_classes=K, mixup_alpha=0.0))(
        jax.random.PRNGKey(3), images, labels)
    kept = (np.asarray(out) == np.asarray(images)).all(axis=-1).mean(axis=(1, 2))
    np.testing.assert_allclose(_lam_from_targets(targets, labels), kept, atol=1e-5)
