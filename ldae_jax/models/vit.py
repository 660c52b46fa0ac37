"""The denoising Transformer of l-DAE: a ViT over patch tokens, conditioned on the noise level t by adaLN.

One network of `encoder_depth + decoder_depth` blocks (docs/paper_notes.md 3.1-3.2): the split only says where the
probe reads features (the output of block `encoder_depth`, global-average-pooled). No class token; fixed 2-D
sin-cos position embeddings; each block owns a two-layer MLP of the t embedding, with hidden width
`cond_hidden_ratio * width` (1/4 in the paper), whose output is the LayerNorm shift and scale (and, with
`adaln_zero`, DiT's residual gates). Parameters are float32; `dtype` sets the compute precision.

Shapes: B batch, N tokens, D = p*p*C values per patch, d latent values per token, W width.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ldae_jax.models import dense
from ldae_jax.runtime import precision

# Sizes (width, encoder_depth, decoder_depth, heads). The paper's decoder always matches the encoder.
SIZES = {
    "mini": (128, 3, 3, 4),  # the CPU quickstart
    "tiny": (192, 6, 6, 3),
    "small": (384, 6, 6, 6),
    "B": (768, 12, 12, 12),
    "half_L": (1024, 12, 12, 16),  # ViT-1/2L encoder + 1/2L decoder = DiT-L, the paper's default
    "L": (1024, 24, 24, 16),
}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything that fixes the network's shapes; built from the `model` section of a config."""

    num_tokens: int
    in_dim: int  # size of one input token: D = p*p*C for image input, d for latent input
    out_dim: int  # size of one output token
    width: int
    encoder_depth: int
    decoder_depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    cond_hidden_ratio: float = 0.25
    t_freq_dim: int = 256
    adaln_zero: bool = False
    dtype: str = "float32"  # the compute dtype, resolved ('auto' never reaches here)
    remat: bool = False  # recompute each block's activations in the backward pass: less memory, ~1/3 more compute
    scan_layers: bool = False  # blocks stacked and applied with lax.scan: compile time independent of depth
    num_classes: int = 0  # > 0: class-conditional, with a learned label embedding (index num_classes = null)
    attention: str = "xla"  # 'xla': jax.nn.dot_product_attention | 'einsum': explicit, heads-first (see Block)
    kind: str = "denoise"  # 'denoise': this module's DenoisingViT | 'mae': models/mae.py
    decoder_width: int = 0  # 'mae': the decoder's own width and heads (its depth is decoder_depth)
    decoder_heads: int = 0

    @property
    def depth(self) -> int:
        return self.encoder_depth + self.decoder_depth


def model_config_from(cfg, *, num_tokens: int, in_dim: int, out_dim: int, num_classes: int = 0,
                      mae=None) -> ModelConfig:
    """Build a ModelConfig from a `config.model` ConfigDict; `size` fills any field left at 0. `mae` (a config's
    `mae` section) makes it MAE's network: the encoder of `model`, MAE's own decoder."""
    if cfg.size not in SIZES:
        raise ValueError(f"model.size={cfg.size!r} is unknown; choose one of {sorted(SIZES)}")
    width, enc, dec, heads = SIZES[cfg.size]
    width = cfg.get("width", 0) or width
    heads = cfg.get("num_heads", 0) or heads
    if width % heads:
        raise ValueError(f"model width {width} is not divisible by num_heads {heads}")
    if cfg.dtype not in precision.DTYPES:
        raise ValueError(f"model.dtype={cfg.dtype!r}: use one of {', '.join(precision.DTYPES)}")
    fields = dict(
        num_tokens=num_tokens,
        in_dim=in_dim,
        out_dim=out_dim,
        width=width,
        encoder_depth=cfg.get("encoder_depth", 0) or enc,
        decoder_depth=cfg.get("decoder_depth", -1) if cfg.get("decoder_depth", -1) >= 0 else dec,
        num_heads=heads,
        mlp_ratio=cfg.get("mlp_ratio", 4.0),
        cond_hidden_ratio=cfg.get("cond_hidden_ratio", 0.25),
        adaln_zero=cfg.get("adaln_zero", False),
        dtype=precision.resolve(cfg.dtype)[0],  # 'auto': what this machine computes fastest
        remat=cfg.get("remat", False),
        scan_layers=cfg.get("scan_layers", False),
        num_classes=num_classes,
        attention=_check_attention(cfg.get("attention", "xla")),
    )
    return ModelConfig(**{**fields, **_mae_fields(mae)})


def _mae_fields(mae) -> dict:
    if mae is None:
        return {}
    if mae.decoder_width % mae.decoder_heads:
        raise ValueError(f"mae.decoder_width {mae.decoder_width} is not divisible by mae.decoder_heads "
                         f"{mae.decoder_heads}")
    return {"kind": "mae", "decoder_depth": mae.decoder_depth, "decoder_width": mae.decoder_width,
            "decoder_heads": mae.decoder_heads}


ATTENTION = ("xla", "einsum")


def _check_attention(name: str) -> str:
    if name not in ATTENTION:
        raise ValueError(f"model.attention={name!r}: use one of {ATTENTION}")
    return name


@functools.lru_cache(maxsize=None)
def sincos_2d(num_tokens: int, width: int) -> np.ndarray:
    """Fixed 2-D sin-cos position embedding [N, W] for a square grid (half the channels per axis).

    A compile-time constant, not model state: checkpoints hold only learned parameters.
    """
    side = math.isqrt(num_tokens)
    if side * side != num_tokens or width % 4:
        raise ValueError(f"need a square token grid and width % 4 == 0, got N={num_tokens}, W={width}")
    omega = 1.0 / 10000 ** (np.arange(width // 4, dtype=np.float64) / (width // 4))
    ys, xs = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")

    def axis(pos):
        angles = pos.reshape(-1, 1) * omega[None]
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

    return np.concatenate([axis(ys), axis(xs)], axis=1).astype(np.float32)


def timestep_embedding(t: jax.Array, dim: int, max_period: float = 10000.0) -> jax.Array:
    """Sinusoidal embedding [B, dim] of integer steps t [B] (as in DDPM/DiT)."""
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    angles = t.astype(jnp.float32)[:, None] * freqs[None]
    return jnp.concatenate([jnp.cos(angles), jnp.sin(angles)], axis=-1)


def _linear(din, dout, rngs, dtype, zero=False):
    return dense.linear(din, dout, rngs, dtype, zero)


def _modulate(x, shift, scale):
    return x * (1 + scale[:, None]) + shift[:, None]


class Conditioning(nnx.Module):
    """Two-layer MLP from the t embedding to `chunks` per-channel vectors (shift, scale[, gate] ...)."""

    def __init__(self, cfg: ModelConfig, chunks: int, rngs: nnx.Rngs):
        hidden = max(1, int(cfg.width * cfg.cond_hidden_ratio))
        self.chunks = chunks
        self.fc1 = _linear(cfg.t_freq_dim, hidden, rngs, cfg.dtype)
        # Zero init: every LayerNorm starts un-modulated (and, with adaLN-Zero, every block as the identity).
        self.fc2 = _linear(hidden, chunks * cfg.width, rngs, cfg.dtype, zero=True)

    def __call__(self, t_emb):
        return jnp.split(self.fc2(nnx.silu(self.fc1(t_emb))), self.chunks, axis=-1)


class Block(nnx.Module):
    """Pre-LN Transformer block whose two LayerNorms are modulated by t."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        w, dt, act = cfg.width, cfg.dtype, dense.activation_dtype(cfg.dtype)
        self.num_heads = cfg.num_heads
        self.attention_impl = cfg.attention
        self.adaln_zero = cfg.adaln_zero
        self.cond = Conditioning(cfg, 6 if cfg.adaln_zero else 4, rngs)
        self.norm1 = nnx.LayerNorm(w, epsilon=1e-6, use_scale=False, use_bias=False, dtype=act, rngs=rngs)
        self.qkv = _linear(w, 3 * w, rngs, dt)
        self.proj = _linear(w, w, rngs, dt)
        self.norm2 = nnx.LayerNorm(w, epsilon=1e-6, use_scale=False, use_bias=False, dtype=act, rngs=rngs)
        hidden = int(w * cfg.mlp_ratio)
        self.fc1 = _linear(w, hidden, rngs, dt)
        self.fc2 = _linear(hidden, w, rngs, dt)

    def attention(self, x):
        b, n, w = x.shape
        h = self.num_heads
        if self.attention_impl == "xla":
            q, k, v = jnp.split(self.qkv(x).reshape(b, n, 3 * h, w // h), 3, axis=2)
            return self.proj(jax.nn.dot_product_attention(q, k, v).reshape(b, n, w))
        # 'einsum': the same attention written out, with q, k, v taken as [B, heads, N, head_dim] in one transpose;
        # it skips layout copies around XLA's batched dots: 1.06x on one CPU, 0.87x on another (bench/README.md).
        q, k, v = self.qkv(x).reshape(b, n, 3, h, w // h).transpose(2, 0, 3, 1, 4)
        logits = jnp.einsum("bhqd,bhkd->bhqk", q, k, preferred_element_type=jnp.float32) * (w // h) ** -0.5
        probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
        return self.proj(jnp.einsum("bhqk,bhkd->bqhd", probs, v).reshape(b, n, w))

    def __call__(self, x, t_emb):
        mods = self.cond(t_emb)
        if self.adaln_zero:
            shift1, scale1, gate1, shift2, scale2, gate2 = (m[:, None] for m in mods)
        else:
            shift1, scale1, shift2, scale2 = (m[:, None] for m in mods)
            gate1 = gate2 = 1.0
        h = self.norm1(x) * (1 + scale1) + shift1
        x = x + gate1 * self.attention(h)
        h = self.norm2(x) * (1 + scale2) + shift2
        return x + gate2 * self.fc2(nnx.gelu(self.fc1(h), approximate=True))


def _apply_block(block, x, t_emb):
    return block(x, t_emb)


def _stacked_blocks(cfg: ModelConfig, rngs: nnx.Rngs):
    """All blocks as one module whose parameters have a leading [depth] axis (for lax.scan)."""

    @nnx.split_rngs(splits=cfg.depth)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def make(rngs):
        return Block(cfg, rngs)

    return make(rngs)


class DenoisingViT(nnx.Module):
    """tokens x_t [B, N, in_dim], steps t [B] (and labels [B] if class-conditional) -> tokens [B, N, out_dim]."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.embed = _linear(cfg.in_dim, cfg.width, rngs, cfg.dtype)
        if cfg.scan_layers:
            self.blocks = _stacked_blocks(cfg, rngs)
        else:
            self.blocks = nnx.List([Block(cfg, rngs) for _ in range(cfg.depth)])
        self.final_cond = Conditioning(cfg, 2, rngs)
        self.final_norm = nnx.LayerNorm(
            cfg.width, epsilon=1e-6, use_scale=False, use_bias=False, dtype=dense.activation_dtype(cfg.dtype),
            rngs=rngs)
        self.head = _linear(cfg.width, cfg.out_dim, rngs, cfg.dtype, zero=True)
        if cfg.num_classes:  # added to the t embedding, so every block's adaLN MLP sees (t, y), as in DiT
            self.label_embed = nnx.Embed(cfg.num_classes + 1, cfg.t_freq_dim,
                                         embedding_init=nnx.initializers.normal(0.02), rngs=rngs)

    def _stem(self, x, t, y):
        act = dense.activation_dtype(self.cfg.dtype)
        pos = jnp.asarray(sincos_2d(self.cfg.num_tokens, self.cfg.width), act)
        x = self.embed(x.astype(act)) + pos
        cond = timestep_embedding(t, self.cfg.t_freq_dim)
        if self.cfg.num_classes:
            if y is None:
                raise ValueError("a class-conditional network needs labels y (the null label is num_classes)")
            cond = cond + self.label_embed(y)
        return x, cond.astype(act)

    def _run_blocks(self, x, t_emb, num_blocks: int, remat: bool):
        """The first `num_blocks` blocks, unrolled or scanned."""
        if not self.cfg.scan_layers:
            apply = nnx.remat(_apply_block) if remat else _apply_block
            for block in self.blocks[:num_blocks]:
                x = apply(block, x, t_emb)
            return x
        graphdef, stacked = nnx.split(self.blocks)
        stacked = jax.tree.map(lambda a: a[:num_blocks], stacked)

        def body(x, layer):
            return nnx.merge(graphdef, layer)(x, t_emb), None

        x, _ = jax.lax.scan(jax.checkpoint(body) if remat else body, x, stacked)
        return x

    def __call__(self, x: jax.Array, t: jax.Array, y: jax.Array | None = None) -> jax.Array:
        x, t_emb = self._stem(x, t, y)
        x = self._run_blocks(x, t_emb, self.cfg.depth, self.cfg.remat)
        shift, scale = self.final_cond(t_emb)
        return self.head(_modulate(self.final_norm(x), shift, scale)).astype(jnp.float32)

    def features(self, x: jax.Array, t: jax.Array, num_blocks: int | None = None,
                 y: jax.Array | None = None) -> jax.Array:
        """Global-average-pooled output [B, W] of block `num_blocks` (default: the encoder's last)."""
        k = self.cfg.encoder_depth if num_blocks is None else num_blocks
        if not 0 <= k <= self.cfg.depth:
            raise ValueError(f"cannot read block {k} of a {self.cfg.depth}-block network")
        x, t_emb = self._stem(x, t, y)
        return self._run_blocks(x, t_emb, k, remat=False).astype(jnp.float32).mean(axis=1)
