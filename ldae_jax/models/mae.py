"""MAE (He et al., 2022) on this codebase's ViT, for the paper's Table 4 comparison under one data pipeline, one
network and one probe.

Each example keeps a random `1 - mask_ratio` of its patch tokens. The encoder (the same blocks as l-DAE's, at
the fixed step t = 0: its adaLN MLPs then give constants, i.e. plain LayerNorm weights) sees only the kept
tokens with their positions, never a mask token. A decoder of its own width and depth gets the encoded tokens
back in place, a learned mask token everywhere else and its own position embedding, and predicts every patch's
pixels; the loss is on the masked patches (objectives.mae_loss, which draws the mask). Probing and fine-tuning
see all tokens, no mask: `features` is the encoder's global average pool exactly as `vit.DenoisingViT.features`,
and the encoder's parameters are named as l-DAE's (`embed`, `blocks`), so the fold to a plain ViT
(models/fold.py) and the timm export read them unchanged.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from ldae_jax.models import dense
from ldae_jax.models.vit import (Block, Conditioning, ModelConfig, _linear, _modulate, sincos_2d,
                                 timestep_embedding)


def decoder_config(cfg: ModelConfig) -> ModelConfig:
    """The decoder's blocks: MAE's own width and heads, the encoder's other settings."""
    return dataclasses.replace(cfg, width=cfg.decoder_width, num_heads=cfg.decoder_heads)


class MaskedAutoencoder(nnx.Module):
    """tokens [B, N, D] and kept indices [B, K] -> the predicted patches [B, N, out_dim]."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        if cfg.scan_layers or cfg.num_classes:
            raise ValueError("MAE has no scanned layers and no class conditioning")
        self.cfg = cfg
        dec = decoder_config(cfg)
        act = dense.activation_dtype(cfg.dtype)
        self.embed = _linear(cfg.in_dim, cfg.width, rngs, cfg.dtype)
        self.blocks = nnx.List([Block(cfg, rngs) for _ in range(cfg.encoder_depth)])
        self.encoder_cond = Conditioning(cfg, 2, rngs)
        self.encoder_norm = nnx.LayerNorm(cfg.width, epsilon=1e-6, use_scale=False, use_bias=False, dtype=act,
                                          rngs=rngs)
        self.decoder_embed = _linear(cfg.width, dec.width, rngs, cfg.dtype)
        self.mask_token = nnx.Param(0.02 * jax.random.normal(rngs.params(), (dec.width,)))
        self.decoder_blocks = nnx.List([Block(dec, rngs) for _ in range(cfg.decoder_depth)])
        self.final_cond = Conditioning(dec, 2, rngs)
        self.final_norm = nnx.LayerNorm(dec.width, epsilon=1e-6, use_scale=False, use_bias=False, dtype=act,
                                        rngs=rngs)
        self.head = _linear(dec.width, cfg.out_dim, rngs, cfg.dtype)

    def _t(self, batch: int):
        """The t = 0 embedding every block's adaLN MLP reads in training."""
        return timestep_embedding(jnp.zeros((batch,), jnp.int32), self.cfg.t_freq_dim).astype(
            dense.activation_dtype(self.cfg.dtype))

    def _embed(self, x):
        act = dense.activation_dtype(self.cfg.dtype)
        return self.embed(x.astype(act)) + jnp.asarray(sincos_2d(self.cfg.num_tokens, self.cfg.width), act)

    def encode(self, x: jax.Array, keep: jax.Array) -> jax.Array:
        """The encoder's output [B, K, W] for the kept tokens only (positions added before the selection)."""
        h = jnp.take_along_axis(self._embed(x), keep[..., None], axis=1)
        t_emb = self._t(x.shape[0])
        for block in self.blocks:
            h = block(h, t_emb)
        shift, scale = self.encoder_cond(t_emb)
        return _modulate(self.encoder_norm(h), shift, scale)

    def __call__(self, x: jax.Array, keep: jax.Array) -> jax.Array:
        b, n = x.shape[:2]
        dec = decoder_config(self.cfg)
        act = dense.activation_dtype(self.cfg.dtype)
        visible = self.decoder_embed(self.encode(x, keep))
        full = jnp.broadcast_to(self.mask_token.value.astype(act), (b, n, dec.width))
        full = full.at[jnp.arange(b)[:, None], keep].set(visible.astype(act))
        full = full + jnp.asarray(sincos_2d(n, dec.width), act)
        t_emb = self._t(b)
        for block in self.decoder_blocks:
            full = block(full, t_emb)
        shift, scale = self.final_cond(t_emb)
        return self.head(_modulate(self.final_norm(full), shift, scale)).astype(jnp.float32)

    def features(self, x: jax.Array, t: jax.Array, num_blocks: int | None = None,
                 y: jax.Array | None = None) -> jax.Array:
        """Global-average-pooled output [B, W] of encoder block `num_blocks` (default: the last) on all tokens,
        at step t (MAE trains at t = 0, which the check before compute holds the probe and fine-tuning to)."""
        del y
        k = self.cfg.encoder_depth if num_blocks is None else num_blocks
        if not 0 <= k <= self.cfg.encoder_depth:
            raise ValueError(f"cannot read block {k} of a {self.cfg.encoder_depth}-block MAE encoder")
        h = self._embed(x)
        t_emb = timestep_embedding(t, self.cfg.t_freq_dim).astype(h.dtype)
        for block in self.blocks[:k]:
            h = block(h, t_emb)
        return h.astype(jnp.float32).mean(axis=1)
