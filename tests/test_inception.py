"""Inception-v3 FID features: the parameter layout, the forward pass on random weights, the weights file, and the
pieces of math (padding-excluding average pool, OIHW conv + BatchNorm, pytorch-fid's resize) against plain numpy.
Two 32 x 32 images a call (resized to 299 inside); two input shapes compile, so the file takes ~20 s on 2 cores."""

from __future__ import annotations

import re

import numpy as np
import pytest

from ldae_jax.errors import UserError
from ldae_jax.evaluate import inception

# torchvision's documented num_params for inception_v3 (Inception_V3_Weights.IMAGENET1K_V1), which also counts the
# 1000-class fc and the AuxLogits head (conv0 768->128 1x1, conv1 128->768 5x5, each with BN weight+bias; fc 768->1000).
TORCHVISION_NUM_PARAMS = 27_161_264
TORCHVISION_FC = 2048 * 1000 + 1000
TORCHVISION_AUX = (768 * 128 + 2 * 128) + (128 * 768 * 25 + 2 * 768) + (768 * 1000 + 1000)


@pytest.fixture(scope="module")
def params():
    return inception.random_params(0)


@pytest.fixture(scope="module")
def images():
    """Two different RGB images in [-1, 1]."""
    return np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def feats(params, images):
    return inception.batched_features(params, images)


def test_parameter_layout(params):
    shapes = inception.expected_shapes()
    assert len(shapes) == 94 * 5  # 94 BasicConv2d, each conv.weight + 4 BatchNorm vectors
    assert set(params) == set(shapes)
    assert all(params[k].shape == s and params[k].dtype == np.float32 for k, s in shapes.items())
    assert shapes["Conv2d_1a_3x3.conv.weight"] == (32, 3, 3, 3)
    assert shapes["Mixed_5b.branch_pool.conv.weight"] == (32, 192, 1, 1)
    assert shapes["Mixed_6b.branch7x7_2.conv.weight"] == (128, 128, 1, 7)
    assert shapes["Mixed_6e.branch7x7dbl_4.conv.weight"] == (192, 192, 7, 1)
    assert shapes["Mixed_7a.branch3x3_2.conv.weight"] == (320, 192, 3, 3)
    assert shapes["Mixed_7c.branch1x1.conv.weight"] == (320, 2048, 1, 1)
    assert shapes["Mixed_7c.branch3x3dbl_3b.conv.weight"] == (384, 384, 3, 1)
    # Every channel count in the table at once: the learnable sizes add up to torchvision's, less its two heads.
    learnable = sum(int(np.prod(s)) for k, s in shapes.items() if "running" not in k)
    assert learnable == TORCHVISION_NUM_PARAMS - TORCHVISION_FC - TORCHVISION_AUX


def test_features_shape_range_determinism(params, images, feats):
    assert feats.shape == (2, inception.FEATURE_DIM) and feats.dtype == np.float32
    assert np.isfinite(feats).all() and (feats >= 0).all()  # averages of ReLU outputs
    assert np.abs(feats[0] - feats[1]).max() > 1e-3 * np.abs(feats).max()
    np.testing.assert_array_equal(inception.batched_features(params, images), feats)
    # Batches of 2 over 3 images: the last batch is padded and the padding dropped; the same compiled shape.
    three = inception.batched_features(params, np.concatenate([images, images[:1]]), batch_size=2)
    np.testing.assert_allclose(three, np.concatenate([feats, feats[:1]]), rtol=1e-5, atol=1e-6)


def test_grayscale_is_repeated_to_rgb(params, images):
    gray = images[..., :1]
    np.testing.assert_allclose(inception.batched_features(params, gray),
                               inception.batched_features(params, np.repeat(gray, 3, axis=-1)), rtol=1e-5, atol=1e-6)


def test_bad_image_shapes_are_rejected(params):
    for shape in [(32, 32, 3), (1, 32, 32, 2)]:
        with pytest.raises(ValueError, match="images should be"):
            inception.features(params, np.zeros(shape, np.float32))
        with pytest.raises(ValueError, match="images should be"):
            inception.batched_features(params, np.zeros(shape, np.float32))


def test_weights_file_round_trip(params, images, feats, tmp_path):
    extra = {"fc.weight": np.zeros((1008, 2048), np.float32), "fc.bias": np.zeros(1008, np.float32),
             "Conv2d_1a_3x3.bn.num_batches_tracked": np.array(0, np.int64)}
    path = str(tmp_path / "inception.npz")
    np.savez(path, **params, **extra)
    loaded = inception.load_inception(path)
    assert set(loaded) == set(params)
    np.testing.assert_array_equal(inception.batched_features(loaded, images), feats)


def test_weights_file_errors(params, tmp_path):
    with pytest.raises(UserError, match="cannot be downloaded here: set fid.inception_weights"):
        inception.load_inception("")
    with pytest.raises(UserError, match="does not exist"):
        inception.load_inception(str(tmp_path / "missing.npz"))
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(UserError, match="not a readable .npz"):
        inception.load_inception(str(tmp_path / "text.npz"))
    key = "Mixed_6b.branch7x7_2.conv.weight"  # a 1x7 kernel saved as 7x1
    np.savez(tmp_path / "transposed.npz", **{**params, key: params[key].transpose(0, 1, 3, 2)})
    with pytest.raises(UserError, match=re.escape(f"{key} should have shape (128, 128, 1, 7), got (128, 128, 7, 1)")):
        inception.load_inception(str(tmp_path / "transposed.npz"))
    key = "Mixed_7c.branch_pool.bn.running_var"
    np.savez(tmp_path / "short.npz", **{k: v for k, v in params.items() if k != key})
    with pytest.raises(UserError, match=re.escape(f"{key} should have shape (192,), got missing")):
        inception.load_inception(str(tmp_path / "short.npz"))


def test_avg_pool_excludes_padding_like_count_include_pad_false():
    x = np.random.default_rng(1).normal(size=(2, 5, 6, 3)).astype(np.float32)
    for stride in (1, 2):
        out_h, out_w = (5 - 1) // stride + 1, (6 - 1) // stride + 1  # 3x3 window, 1 pixel of padding
        expected = np.zeros((2, out_h, out_w, 3), np.float32)
        for i in range(out_h):
            for j in range(out_w):
                rows = slice(max(i * stride - 1, 0), min(i * stride + 2, 5))
                cols = slice(max(j * stride - 1, 0), min(j * stride + 2, 6))
                expected[:, i, j] = x[:, rows, cols].mean(axis=(1, 2))  # the in-image positions only
        got = np.asarray(inception.avg_pool_excluding_padding(x, 3, stride, 1))
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    assert np.isclose(expected[0, 0, 0, 0], x[0, :2, :2, 0].mean())  # a corner averages 4 pixels, not 9


def test_basic_conv_reads_oihw_and_applies_batchnorm():
    """A direct numpy convolution: catches a swapped kh / kw (1x7 vs 7x1) or a wrong BatchNorm formula."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 7, 6, 3)).astype(np.float32)
    for conv in [inception.Conv("c", 4, (1, 3), 1, (0, 1)), inception.Conv("c", 4, (3, 1), 1, (1, 0)),
                 inception.Conv("c", 4, (3, 3), 2, (0, 0))]:
        (kh, kw), (ph, pw), s = conv.kernel, conv.pad, conv.stride
        p = {"c.conv.weight": rng.normal(size=(4, 3, kh, kw)).astype(np.float32),
             "c.bn.weight": rng.uniform(0.5, 2, 4).astype(np.float32),
             "c.bn.bias": rng.normal(size=4).astype(np.float32),
             "c.bn.running_mean": rng.normal(size=4).astype(np.float32),
             "c.bn.running_var": rng.uniform(0.5, 2, 4).astype(np.float32)}
        padded = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0))).astype(np.float64)
        out_h, out_w = (7 + 2 * ph - kh) // s + 1, (6 + 2 * pw - kw) // s + 1
        y = np.zeros((2, out_h, out_w, 4))
        for i in range(out_h):
            for j in range(out_w):
                window = padded[:, i * s:i * s + kh, j * s:j * s + kw, :]  # [B, kh, kw, in]
                y[:, i, j] = np.einsum("bhwc,ochw->bo", window, p["c.conv.weight"])
        bn = (y - p["c.bn.running_mean"]) / np.sqrt(p["c.bn.running_var"] + 1e-3) * p["c.bn.weight"] + p["c.bn.bias"]
        got = np.asarray(inception.basic_conv(p, "c", conv, x))
        np.testing.assert_allclose(got, np.maximum(bn, 0), rtol=1e-4, atol=1e-4)


def _torch_bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """F.interpolate(bilinear, align_corners=False) along one axis as a matrix: source = (dst + 0.5) * scale - 0.5,
    clamped at 0, between its two neighbours (the upper one clamped at the edge)."""
    dst = np.arange(n_out)
    src = np.maximum((dst + 0.5) * n_in / n_out - 0.5, 0.0)
    low = np.floor(src).astype(int)
    frac = src - low
    m = np.zeros((n_out, n_in))
    np.add.at(m, (dst, low), 1 - frac)
    np.add.at(m, (dst, np.minimum(low + 1, n_in - 1)), frac)
    return m


def test_resize_matches_pytorch_fid_interpolate():
    rng = np.random.default_rng(3)
    for h, w in [(13, 7), (450, 310)]:  # up and down: the latter is where an antialiasing resize would differ
        x = rng.uniform(-1, 1, (1, h, w, 2)).astype(np.float32)
        rows, cols = _torch_bilinear_matrix(h, 299), _torch_bilinear_matrix(w, 299)
        expected = np.einsum("ph,qw,bhwc->bpqc", rows, cols, x, optimize=True)
        np.testing.assert_allclose(np.asarray(inception.resize_for_inception(x)), expected, atol=1e-4)
