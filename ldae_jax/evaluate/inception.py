"""Inception-v3 pool3 features for FID, as a pure JAX function over a parameter dict with PyTorch names.

FID compares two image sets through the mean and covariance of a fixed network's features: the 2048-d global
average of Inception-v3's last mixed block ("pool3"). FIDs are only comparable with published ones when the network
and its weights are exactly the reference ones, so this is the FID variant of pytorch-fid (the TF 2015-12-05 graph
in torchvision's inception_v3 layout; its average-pool branches ignore the padding, and Mixed_7c's pool branch is a
max pool), run on the weights pytorch-fid ships.

Those weights cannot be downloaded here: the user provides an .npz whose keys are the PyTorch state-dict keys,
e.g. `Conv2d_1a_3x3.conv.weight` [out, in, kh, kw] (OIHW, as in PyTorch), `Conv2d_1a_3x3.bn.weight`, `.bn.bias`,
`.bn.running_mean`, `.bn.running_var`, `Mixed_5b.branch1x1.conv.weight`, ... (`expected_shapes()` lists them all);
other keys (fc.*, AuxLogits.*, num_batches_tracked) are ignored. Where torch is installed, convert pytorch-fid's
file (github.com/mseitzer/pytorch-fid, release fid_weights) with

    np.savez(path, **{k: v.numpy() for k, v in torch.load('pt_inception-2015-12-05-6726825d.pth').items()})

The network is described once, by `NETWORK` below; the parameter shapes and the forward pass both walk it.
"""

from __future__ import annotations

import functools
import zipfile
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath

from ldae_jax.errors import UserError
from ldae_jax.runtime import timings

RESOLUTION = 299  # the input size the network was trained at; every image is resized to it
FEATURE_DIM = 2048
BN_EPS = 1e-3  # torchvision's BasicConv2d
_BN_KEYS = ("weight", "bias", "running_mean", "running_var")
_FORMAT_HINT = "the format and the conversion from pytorch-fid's .pth are in ldae_jax/evaluate/inception.py"


class Conv(NamedTuple):
    """torchvision's BasicConv2d: conv (no bias) + BatchNorm (running stats) + ReLU. `name` is its state-dict
    prefix inside the enclosing block."""
    name: str
    out: int
    kernel: tuple[int, int]
    stride: int
    pad: tuple[int, int]


class Pool(NamedTuple):
    """3x3 pool. "avg" divides by the in-image positions only (pytorch-fid's count_include_pad=False)."""
    kind: str  # "max" or "avg"
    stride: int
    pad: int


class Concat(NamedTuple):
    """Branches that all read the block's input, concatenated over channels; each branch is a tuple of layers
    applied in order. `name` prefixes the state-dict keys inside ("" for the 1x3 / 3x1 split in InceptionE)."""
    name: str
    branches: tuple


def _conv(name: str, out: int, kernel=1, stride: int = 1, pad=0) -> Conv:
    pair = lambda v: tuple(v) if isinstance(v, tuple) else (v, v)  # noqa: E731
    return Conv(name, out, pair(kernel), stride, pair(pad))


_ROW7, _COL7 = {"kernel": (1, 7), "pad": (0, 3)}, {"kernel": (7, 1), "pad": (3, 0)}
_AVG = Pool("avg", 1, 1)
_MAX_DOWN = Pool("max", 2, 0)


def _inception_a(name: str, pool_features: int) -> Concat:
    return Concat(name, (
        (_conv("branch1x1", 64),),
        (_conv("branch5x5_1", 48), _conv("branch5x5_2", 64, 5, pad=2)),
        (_conv("branch3x3dbl_1", 64), _conv("branch3x3dbl_2", 96, 3, pad=1), _conv("branch3x3dbl_3", 96, 3, pad=1)),
        (_AVG, _conv("branch_pool", pool_features)),
    ))


def _inception_b(name: str) -> Concat:
    return Concat(name, (
        (_conv("branch3x3", 384, 3, stride=2),),
        (_conv("branch3x3dbl_1", 64), _conv("branch3x3dbl_2", 96, 3, pad=1),
         _conv("branch3x3dbl_3", 96, 3, stride=2)),
        (_MAX_DOWN,),
    ))


def _inception_c(name: str, channels_7x7: int) -> Concat:
    c7 = channels_7x7
    return Concat(name, (
        (_conv("branch1x1", 192),),
        (_conv("branch7x7_1", c7), _conv("branch7x7_2", c7, **_ROW7), _conv("branch7x7_3", 192, **_COL7)),
        (_conv("branch7x7dbl_1", c7), _conv("branch7x7dbl_2", c7, **_COL7), _conv("branch7x7dbl_3", c7, **_ROW7),
         _conv("branch7x7dbl_4", c7, **_COL7), _conv("branch7x7dbl_5", 192, **_ROW7)),
        (_AVG, _conv("branch_pool", 192)),
    ))


def _inception_d(name: str) -> Concat:
    return Concat(name, (
        (_conv("branch3x3_1", 192), _conv("branch3x3_2", 320, 3, stride=2)),
        (_conv("branch7x7x3_1", 192), _conv("branch7x7x3_2", 192, **_ROW7), _conv("branch7x7x3_3", 192, **_COL7),
         _conv("branch7x7x3_4", 192, 3, stride=2)),
        (_MAX_DOWN,),
    ))


def _inception_e(name: str, pool: Pool) -> Concat:
    def split(row_name: str, col_name: str) -> Concat:  # 1x3 and 3x1 on the same input, concatenated
        return Concat("", ((_conv(row_name, 384, (1, 3), pad=(0, 1)),), (_conv(col_name, 384, (3, 1), pad=(1, 0)),)))
    return Concat(name, (
        (_conv("branch1x1", 320),),
        (_conv("branch3x3_1", 384), split("branch3x3_2a", "branch3x3_2b")),
        (_conv("branch3x3dbl_1", 448), _conv("branch3x3dbl_2", 384, 3, pad=1),
         split("branch3x3dbl_3a", "branch3x3dbl_3b")),
        (pool, _conv("branch_pool", 192)),
    ))


# 3 x 299 x 299 -> 2048 x 8 x 8 (then the global average). Spatial sizes: 149, 147, 147, 73, 73, 71, 35 (Mixed_5*),
# 17 (Mixed_6*), 8 (Mixed_7*).
NETWORK = (
    _conv("Conv2d_1a_3x3", 32, 3, stride=2),
    _conv("Conv2d_2a_3x3", 32, 3),
    _conv("Conv2d_2b_3x3", 64, 3, pad=1),
    _MAX_DOWN,
    _conv("Conv2d_3b_1x1", 80),
    _conv("Conv2d_4a_3x3", 192, 3),
    _MAX_DOWN,
    _inception_a("Mixed_5b", 32), _inception_a("Mixed_5c", 64), _inception_a("Mixed_5d", 64),
    _inception_b("Mixed_6a"),
    *(_inception_c(f"Mixed_6{s}", c7) for s, c7 in zip("bcde", (128, 160, 160, 192))),
    _inception_d("Mixed_7a"),
    _inception_e("Mixed_7b", _AVG),  # pytorch-fid's FIDInceptionE_1
    _inception_e("Mixed_7c", Pool("max", 1, 1)),  # FIDInceptionE_2: the TF graph has a max pool here
)


def _inner_prefix(block: Concat, prefix: str) -> str:
    return f"{prefix}{block.name}." if block.name else prefix


def _add_shapes(layer, prefix: str, in_channels: int, shapes: dict) -> int:
    """Adds the parameter shapes of `layer` to `shapes`; returns its output channel count."""
    if isinstance(layer, Pool):
        return in_channels
    if isinstance(layer, Conv):
        key = prefix + layer.name
        shapes[f"{key}.conv.weight"] = (layer.out, in_channels, *layer.kernel)
        shapes.update({f"{key}.bn.{stat}": (layer.out,) for stat in _BN_KEYS})
        return layer.out
    total = 0
    for branch in layer.branches:
        channels = in_channels
        for step in branch:
            channels = _add_shapes(step, _inner_prefix(layer, prefix), channels, shapes)
        total += channels
    return total


def expected_shapes() -> dict[str, tuple]:
    """Every parameter the features need, by state-dict key: conv weights OIHW, BatchNorm vectors [out]."""
    shapes = {}
    out = 3
    for layer in NETWORK:
        out = _add_shapes(layer, "", out, shapes)
    assert out == FEATURE_DIM, out
    return shapes


@functools.lru_cache(maxsize=2)
def load_inception(path: str) -> dict:
    """The Inception-v3 parameters from a user-provided .npz, checked key by key, as float32 numpy arrays. Cached:
    FID is computed at several points of a run with the same file."""
    if not path:
        raise UserError("FID needs Inception-v3 weights, which cannot be downloaded here: set fid.inception_weights "
                        "to an .npz of pytorch-fid's pt_inception-2015-12-05-6726825d.pth state dict, converted with "
                        "np.savez(path, **{k: v.numpy() for k, v in torch.load(pth).items()}) "
                        "(see ldae_jax/evaluate/inception.py)")
    if not epath.Path(path).is_file():
        raise UserError(f"fid.inception_weights={path!r} does not exist; provide the Inception-v3 .npz there "
                        f"({_FORMAT_HINT})")
    shapes = expected_shapes()
    try:
        with epath.Path(path).open("rb") as f, np.load(f, allow_pickle=False) as npz:
            present = set(npz.files)
            params = {k: np.asarray(npz[k], np.float32) for k in shapes if k in present}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise UserError(f"fid.inception_weights={path!r} is not a readable .npz ({e}); {_FORMAT_HINT}") from e
    wrong = [(k, s, params[k].shape if k in params else "missing") for k, s in shapes.items()
             if k not in params or params[k].shape != s]
    if wrong:
        key, shape, got = wrong[0]
        more = f" (and {len(wrong) - 1} more keys missing or mis-shaped)" if len(wrong) > 1 else ""
        raise UserError(f"{path}: {key} should have shape {shape}, got {got}{more}; {_FORMAT_HINT}")
    return params


def random_params(seed: int = 0) -> dict:
    """Parameters of the right shapes (He-normal convs, BatchNorm near identity with small random stats), for tests
    and benchmarks where the real weights are not at hand. The features are then meaningless as FID features."""
    rng = np.random.default_rng(seed)
    params = {}
    for key, shape in expected_shapes().items():
        if key.endswith(".conv.weight"):
            std = np.sqrt(2.0 / np.prod(shape[1:]))  # He-normal over fan-in = in * kh * kw
            params[key] = (rng.standard_normal(shape, np.float32) * std).astype(np.float32)
        elif key.endswith((".bn.weight", ".bn.running_var")):
            params[key] = rng.uniform(0.8, 1.2, shape).astype(np.float32)
        else:  # bias, running_mean
            params[key] = (0.1 * rng.standard_normal(shape)).astype(np.float32)
    return params


def avg_pool_excluding_padding(x: jax.Array, size: int = 3, stride: int = 1, pad: int = 1) -> jax.Array:
    """Average pool over NHWC that divides each window by its in-image positions (PyTorch's count_include_pad=False,
    which pytorch-fid's blocks use to match the TF graph; counting the zero padding would darken the borders)."""
    window, strides = (1, size, size, 1), (1, stride, stride, 1)
    padding = ((0, 0), (pad, pad), (pad, pad), (0, 0))
    total = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, strides, padding)
    ones = jnp.ones((1, x.shape[1], x.shape[2], 1), x.dtype)
    count = jax.lax.reduce_window(ones, 0.0, jax.lax.add, window, strides, padding)
    return total / count


def _max_pool(x: jax.Array, size: int, stride: int, pad: int) -> jax.Array:
    padding = ((0, 0), (pad, pad), (pad, pad), (0, 0))
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, size, size, 1), (1, stride, stride, 1), padding)


def basic_conv(params: dict, key: str, conv: Conv, x: jax.Array) -> jax.Array:
    """Conv (no bias) + inference BatchNorm + ReLU on NHWC input; the weight is stored OIHW, as PyTorch saves it.
    Full float32 precision: FID is compared across papers, so no TF32 / bf16 passes on GPU / TPU."""
    kernel = jnp.transpose(params[f"{key}.conv.weight"], (2, 3, 1, 0))  # OIHW -> HWIO
    y = jax.lax.conv_general_dilated(x, kernel, (conv.stride, conv.stride), [(p, p) for p in conv.pad],
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                     precision=jax.lax.Precision.HIGHEST)
    scale = params[f"{key}.bn.weight"] * jax.lax.rsqrt(params[f"{key}.bn.running_var"] + BN_EPS)
    shift = params[f"{key}.bn.bias"] - params[f"{key}.bn.running_mean"] * scale
    return jax.nn.relu(y * scale + shift)


def _apply(params: dict, layer, prefix: str, x: jax.Array) -> jax.Array:
    if isinstance(layer, Pool):
        if layer.kind == "avg":
            return avg_pool_excluding_padding(x, 3, layer.stride, layer.pad)
        return _max_pool(x, 3, layer.stride, layer.pad)
    if isinstance(layer, Conv):
        return basic_conv(params, prefix + layer.name, layer, x)
    outs = []
    for branch in layer.branches:
        y = x
        for step in branch:
            y = _apply(params, step, _inner_prefix(layer, prefix), y)
        outs.append(y)
    return jnp.concatenate(outs, axis=-1)


def resize_for_inception(images: jax.Array) -> jax.Array:
    """[B, H, W, C] -> [B, 299, 299, C], bilinear without antialiasing, as pytorch-fid's F.interpolate(bilinear,
    align_corners=False): its half-pixel sampling is jax.image.resize's, and it does not antialias when it shrinks
    (jax's default antialias=True would blur large images first and change the features)."""
    if images.shape[1:3] == (RESOLUTION, RESOLUTION):
        return images
    return jax.image.resize(images, (images.shape[0], RESOLUTION, RESOLUTION, images.shape[-1]), "bilinear",
                            antialias=False)


def features(params: dict, images: jax.Array) -> jax.Array:
    """images [B, H, W, C] in [-1, 1], C = 1 (repeated to RGB) or 3 -> pool3 features float32 [B, 2048].

    Images are resized to 299 x 299 as pytorch-fid does (bilinear, align_corners=False: `resize_for_inception`)
    and fed in [-1, 1], which is where pytorch-fid's normalize_input maps its [0, 1] input."""
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"images should be [B, H, W, 1 or 3] in [-1, 1], got shape {images.shape}")
    x = resize_for_inception(jnp.asarray(images, jnp.float32))
    if x.shape[-1] == 1:
        x = jnp.repeat(x, 3, axis=-1)  # after the resize: the same result on a third of the pixels
    for layer in NETWORK:
        x = _apply(params, layer, "", x)
    return jnp.mean(x, axis=(1, 2))


_jitted_features = jax.jit(features)  # module-level, so each input shape compiles once per process


def batched_features(params: dict, images: np.ndarray, batch_size: int = 64,
                     progress: str | None = None) -> np.ndarray:
    """features over a host array [n, H, W, C] in batches (the last one padded, so one compiled shape) -> [n, 2048]
    numpy. The parameters go to the device once per call. `progress` names the work in the console's
    `NAME: n/N images (p%), ETA ...` lines and its done line (timings.Countdown; None: silent)."""
    images = np.asarray(images)
    if batch_size < 1:
        raise ValueError(f"batch_size should be >= 1, got {batch_size}")
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"images should be [n, H, W, 1 or 3] in [-1, 1], got shape {images.shape}")
    n = len(images)
    if n == 0:
        return np.zeros((0, FEATURE_DIM), np.float32)
    size = min(batch_size, n)
    device_params = jax.device_put(params)
    countdown = timings.Countdown(progress or "", n, "images", quiet=progress is None)
    outs = []
    for start in range(0, n, size):
        batch = np.asarray(images[start:start + size], np.float32)
        if len(batch) < size:
            batch = np.concatenate([batch, np.zeros((size - len(batch), *batch.shape[1:]), np.float32)])
        outs.append(_jitted_features(device_params, batch))  # dispatched asynchronously; read back below
        if progress is not None and len(outs) > 1:  # the batch before this one is done: one stays in flight
            jax.block_until_ready(outs[-2])
            countdown.update(start)
    feats = np.concatenate([np.asarray(o) for o in outs])[:n]
    if progress is not None:
        countdown.finish(f"{n} images")
    return feats
