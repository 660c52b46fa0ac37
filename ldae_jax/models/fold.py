"""Folding the fixed-t adaLN modulation of l-DAE's encoder into plain LayerNorms (docs/paper_notes.md 4.2).

With t (and, for a class-conditional network, the null label) fixed, each block's conditioning MLP outputs
constants: norm(x) * (1 + scale) + shift is a LayerNorm with weight 1 + scale and bias shift, and DiT's
adaLN-Zero gates scale the attention / MLP output, so they fold into `proj` and `fc2`. The result is the
`classifier.ViTClassifier` parameter tree of the first `num_blocks` blocks; its pooled features equal the
denoising network's `features(x, t, num_blocks)` (tested).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ldae_jax.models import classifier, vit
from ldae_jax.errors import UserError


def classifier_config(model_cfg: vit.ModelConfig, *, num_blocks: int, num_classes: int,
                      drop_path: float = 0.0) -> classifier.ClassifierConfig:
    depth = model_cfg.encoder_depth if model_cfg.kind == "mae" else model_cfg.depth  # MAE: its encoder only
    if not 1 <= num_blocks <= depth:
        raise UserError(f"cannot fold {num_blocks} blocks of a {depth}-block network")
    return classifier.ClassifierConfig(
        num_tokens=model_cfg.num_tokens, in_dim=model_cfg.in_dim, width=model_cfg.width, depth=num_blocks,
        num_heads=model_cfg.num_heads, num_classes=num_classes, mlp_ratio=model_cfg.mlp_ratio,
        drop_path=drop_path, dtype=model_cfg.dtype)


def _dense(p, x):
    return x @ p["kernel"] + p["bias"]


def _block_params(params: dict, model_cfg: vit.ModelConfig, i: int) -> dict:
    blocks = params["blocks"]
    if model_cfg.scan_layers:  # one stacked tree with a leading [depth] axis
        return jax.tree.map(lambda a: a[i], blocks)
    return blocks[i]


def conditioning(params: dict, model_cfg: vit.ModelConfig, t: int) -> jax.Array:
    """The embedding [t_freq_dim] every adaLN MLP reads at step t (plus the null label's, if conditional)."""
    emb = vit.timestep_embedding(jnp.array([t]), model_cfg.t_freq_dim)[0]
    if model_cfg.num_classes:
        emb = emb + params["label_embed"]["embedding"][model_cfg.num_classes]
    return emb


def fold_encoder(params: dict, model_cfg: vit.ModelConfig, *, t: int, num_blocks: int, num_classes: int) -> dict:
    """The `ViTClassifier` parameters (float32 numpy) of the first `num_blocks` blocks at fixed step t; fc_norm
    starts as the identity LayerNorm (weight 1, bias 0) and the head at zero."""
    emb = conditioning(params, model_cfg, t)
    blocks = {}
    for i in range(num_blocks):
        p = _block_params(params, model_cfg, i)
        mods = _dense(p["cond"]["fc2"], jax.nn.silu(_dense(p["cond"]["fc1"], emb)))
        chunks = jnp.split(mods, 6 if model_cfg.adaln_zero else 4)
        if model_cfg.adaln_zero:
            shift1, scale1, gate1, shift2, scale2, gate2 = chunks
        else:
            (shift1, scale1, shift2, scale2), gate1, gate2 = chunks, 1.0, 1.0
        blocks[i] = {
            "norm1": {"scale": 1.0 + scale1, "bias": shift1},
            "qkv": p["qkv"],
            "proj": {"kernel": p["proj"]["kernel"] * gate1, "bias": p["proj"]["bias"] * gate1},
            "norm2": {"scale": 1.0 + scale2, "bias": shift2},
            "fc1": p["fc1"],
            "fc2": {"kernel": p["fc2"]["kernel"] * gate2, "bias": p["fc2"]["bias"] * gate2},
        }
    w = model_cfg.width
    out = {
        "embed": params["embed"],
        "pos_embed": vit.sincos_2d(model_cfg.num_tokens, w),
        "blocks": blocks,
        "fc_norm": {"scale": np.ones(w), "bias": np.zeros(w)},
        "head": {"kernel": np.zeros((w, num_classes)), "bias": np.zeros(num_classes)},
    }
    return jax.tree.map(lambda a: np.asarray(a, np.float32), out)
