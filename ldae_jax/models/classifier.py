"""The plain ViT that l-DAE's encoder becomes for fine-tuning and export (docs/paper_notes.md 4.2).

At a fixed t the adaLN modulation of every block is a constant, so it folds into ordinary LayerNorm scale and
bias (`fold.py`) and the encoder is a standard ViT: linear patch embedding, learned position embedding
(initialised from the fixed sin-cos one), pre-LN blocks, global average pooling, LayerNorm (`fc_norm`) and a
linear head, the layout of timm's `VisionTransformer(class_token=False, global_pool='avg')` (see `export.py`).
Drop path (stochastic depth) rises linearly over the blocks to `drop_path`, as timm and MAE.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from ldae_jax.models import dense, vit


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    num_tokens: int
    in_dim: int  # p*p*C: the patch vector (patches.patchify's (p, p, C) order)
    width: int
    depth: int
    num_heads: int
    num_classes: int
    mlp_ratio: float = 4.0
    drop_path: float = 0.0
    dtype: str = "float32"


_linear = dense.linear


def _norm(width, rngs, dtype):
    return nnx.LayerNorm(width, epsilon=1e-6, dtype=dense.activation_dtype(dtype), param_dtype=jnp.float32,
                         rngs=rngs)


def _drop_path(x, rate: float, rng):
    """Zeroes each example's residual branch with probability `rate` (rescaling the rest); identity if rng None."""
    if rng is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(rng, 1.0 - rate, (x.shape[0],) + (1,) * (x.ndim - 1))
    return jnp.where(keep, x / (1.0 - rate), 0.0)


class PlainBlock(nnx.Module):
    """Pre-LN Transformer block with ordinary (learned scale and bias) LayerNorms."""

    def __init__(self, cfg: ClassifierConfig, drop_path: float, rngs: nnx.Rngs):
        w, dt = cfg.width, cfg.dtype
        self.num_heads, self.drop_path = cfg.num_heads, drop_path
        self.norm1 = _norm(w, rngs, dt)
        self.qkv = _linear(w, 3 * w, rngs, dt)
        self.proj = _linear(w, w, rngs, dt)
        self.norm2 = _norm(w, rngs, dt)
        self.fc1 = _linear(w, int(w * cfg.mlp_ratio), rngs, dt)
        self.fc2 = _linear(int(w * cfg.mlp_ratio), w, rngs, dt)

    def __call__(self, x, rng=None):
        b, n, w = x.shape
        rngs = (None, None) if rng is None else jax.random.split(rng)
        q, k, v = jnp.split(self.qkv(self.norm1(x)).reshape(b, n, 3 * self.num_heads, w // self.num_heads), 3,
                            axis=2)
        x = x + _drop_path(self.proj(jax.nn.dot_product_attention(q, k, v).reshape(b, n, w)), self.drop_path,
                           rngs[0])
        h = self.fc2(nnx.gelu(self.fc1(self.norm2(x)), approximate=True))
        return x + _drop_path(h, self.drop_path, rngs[1])


class ViTClassifier(nnx.Module):
    """Patch vectors [B, N, in_dim] -> logits [B, num_classes]; `features` gives the pooled, normed [B, W]."""

    def __init__(self, cfg: ClassifierConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.embed = _linear(cfg.in_dim, cfg.width, rngs, cfg.dtype)
        self.pos_embed = nnx.Param(jnp.asarray(vit.sincos_2d(cfg.num_tokens, cfg.width)))
        rates = [cfg.drop_path * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]
        self.blocks = nnx.List([PlainBlock(cfg, r, rngs) for r in rates])
        self.fc_norm = _norm(cfg.width, rngs, cfg.dtype)
        self.head = _linear(cfg.width, cfg.num_classes, rngs, cfg.dtype, zero=True)

    def pooled(self, x, rng=None):
        """The global average of the last block's output [B, W] (l-DAE's probe features, before fc_norm)."""
        act = dense.activation_dtype(self.cfg.dtype)
        x = self.embed(x.astype(act)) + self.pos_embed.value.astype(act)
        for i, block in enumerate(self.blocks):
            x = block(x, None if rng is None else jax.random.fold_in(rng, i))
        return x.mean(axis=1)

    def features(self, x, rng=None):
        """fc_norm of the pooled tokens [B, W]: what the head reads (timm's pre-logits)."""
        return self.fc_norm(self.pooled(x, rng)).astype(jnp.float32)

    def __call__(self, x, rng=None):
        """rng: the drop-path randomness while training; None for evaluation."""
        return self.head(self.features(x, rng)).astype(jnp.float32)


def layer_ids(params: dict, depth: int) -> dict:
    """The layer index of every parameter, for layer-wise lr decay: embeddings 0, block i -> i + 1, the rest
    (fc_norm, head) depth + 1 (BEiT/MAE's assignment)."""
    def layer(path):
        top = path[0].key
        if top in ("embed", "pos_embed"):
            return 0
        if top == "blocks":
            return int(path[1].key) + 1
        return depth + 1

    return jax.tree_util.tree_map_with_path(lambda path, _: layer(path), params)
