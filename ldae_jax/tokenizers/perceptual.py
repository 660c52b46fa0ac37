"""LPIPS-style perceptual distance on VGG16 features, for the conv VAE tokenizer of Table 1 rows 1-2.

The VGG16 weights are ImageNet-supervised (which is why the paper calls those rows not self-supervised) and
cannot be downloaded here: the user provides them as an .npz with, for each of the 13 convolutions,
`convB_L/kernel` [3, 3, in, out] (HWIO) and `convB_L/bias` [out], B = block 1-5, L = layer in the block (as in
torchvision's vgg16 `features`, transposed from OIHW). The distance, as LPIPS without its learned linear heads:
at the last convolution of each block, features are unit-normalised over channels, and the squared difference
is averaged over positions and summed over the five blocks.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath

from ldae_jax.errors import UserError

BLOCKS = (2, 2, 3, 3, 3)  # convolutions per VGG16 block
LAYERS = tuple(f"conv{b + 1}_{i + 1}" for b, n in enumerate(BLOCKS) for i in range(n))
WIDTHS = (64, 128, 256, 512, 512)
_MEAN = np.array([0.485, 0.456, 0.406], np.float32)  # torchvision's ImageNet normalisation
_STD = np.array([0.229, 0.224, 0.225], np.float32)


def expected_shapes() -> dict:
    shapes, cin = {}, 3
    for b, n in enumerate(BLOCKS):
        for i in range(n):
            name = f"conv{b + 1}_{i + 1}"
            shapes[f"{name}/kernel"], shapes[f"{name}/bias"] = (3, 3, cin, WIDTHS[b]), (WIDTHS[b],)
            cin = WIDTHS[b]
    return shapes


@functools.lru_cache(maxsize=2)
def load_vgg16(path: str) -> dict:
    """The VGG16 parameters from a user-provided .npz, checked key by key; a clear error when missing. Cached:
    the ladder checks every row's config before it runs, and each conv-VAE row then trains with the same file."""
    if not path:
        raise UserError("tokenizer.conv_vae.perceptual_weight > 0 needs VGG16 weights, which cannot be downloaded "
                        "here: set tokenizer.conv_vae.perceptual_weights to an .npz with conv1_1/kernel ... "
                        "conv5_3/bias (HWIO), e.g. converted from torchvision's vgg16; or set "
                        "tokenizer.conv_vae.perceptual_weight=0")
    if not epath.Path(path).is_file():
        raise UserError(f"tokenizer.conv_vae.perceptual_weights={path!r} does not exist; provide the VGG16 .npz there")
    with epath.Path(path).open("rb") as f, np.load(f, allow_pickle=False) as npz:
        params = {k: np.asarray(npz[k], np.float32) for k in npz.files}
    for key, shape in expected_shapes().items():
        if key not in params or params[key].shape != shape:
            got = params[key].shape if key in params else "missing"
            raise UserError(f"{path}: {key} should have shape {shape}, got {got}; the format is in "
                            "ldae_jax/tokenizers/perceptual.py")
    return params


def _features(params: dict, images: jax.Array) -> list[jax.Array]:
    """images [B, H, W, C] in [-1, 1] (C = 1 is repeated to RGB) -> the last activation of each block."""
    x = (images + 1.0) / 2.0
    if x.shape[-1] == 1:
        x = jnp.repeat(x, 3, axis=-1)
    x = (x - _MEAN) / _STD
    out = []
    for b, n in enumerate(BLOCKS):
        if b:
            x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "SAME")
        for i in range(n):
            name = f"conv{b + 1}_{i + 1}"
            x = jax.lax.conv_general_dilated(x, params[f"{name}/kernel"], (1, 1), "SAME",
                                             dimension_numbers=("NHWC", "HWIO", "NHWC"))
            x = jax.nn.relu(x + params[f"{name}/bias"])
        out.append(x)
    return out


def distance(params: dict, a: jax.Array, b: jax.Array) -> jax.Array:
    """Per-example LPIPS-style distance [B] between image batches a, b [B, H, W, C] in [-1, 1]."""
    total = 0.0
    for fa, fb in zip(_features(params, a), _features(params, b)):
        unit = lambda f: f / jnp.sqrt(jnp.sum(jnp.square(f), axis=-1, keepdims=True) + 1e-10)  # noqa: E731
        total = total + jnp.mean(jnp.sum(jnp.square(unit(fa) - unit(fb)), axis=-1), axis=(1, 2))
    return total
