"""The timm format: l-DAE's folded encoder as a standard ViT checkpoint, safetensors with timm's
`VisionTransformer` names (written by the export stage, `ldae_jax/export.py`; read back for fine-tuning).

Why: the folded encoder (`models.fold`) is exactly a plain ViT, so other code bases (timm, PyTorch fine-tuning
recipes) can read it without any l-DAE code, and a ViT of this layout trained elsewhere can come back into
`classifier.ViTClassifier` for fine-tuning here.

The timm model that loads an exported file with `load_state_dict(strict=True)` and computes the same features
(tested to about 1e-5 against PyTorch in `tests/torch/`; checked with timm 1.0.31):

    timm.models.vision_transformer.VisionTransformer(
        img_size=S, patch_size=p, in_chans=C, num_classes=K, global_pool='avg', embed_dim=W, depth=L,
        num_heads=H, mlp_ratio=R, class_token=False, fc_norm=True, act_layer='gelu_tanh', drop_path_rate=r)

`act_layer='gelu_tanh'` (timm's GELUTanh, i.e. `nn.GELU(approximate='tanh')`) because our MLP uses the
tanh-approximate GELU and timm's default is the exact one. The LayerNorm epsilon (1e-6), qkv bias, average
pooling of all tokens (no class token) and `fc_norm` after the pooling are timm's defaults for these arguments.
`timm_kwargs` gives this dict; `save_safetensors` stores it, as JSON, in the file's metadata under
`timm_kwargs`, so `VisionTransformer(**json.loads(metadata['timm_kwargs']))` rebuilds the model.

Name and layout mapping (torch Linear weights are [out, in], ours [in, out]):

    embed.kernel [p*p*C, W], (p, p, C) rows  -> patch_embed.proj.weight [W, C, p, p] (conv, stride p) and .bias
    pos_embed [N, W]                         -> pos_embed [1, N, W] (row-major grid, as patchify and timm)
    blocks.i.{norm1,norm2}.{scale,bias}      -> blocks.i.{norm1,norm2}.{weight,bias}
    blocks.i.qkv / proj / fc1 / fc2          -> blocks.i.attn.qkv / attn.proj / mlp.fc1 / mlp.fc2 (.weight, .bias)
    fc_norm, head                            -> fc_norm, head

The qkv output needs no permutation: we split it as reshape(B, N, 3H, hd) into three groups of H heads, which
is timm's reshape(B, N, 3, H, hd) (tested).
"""

from __future__ import annotations

import dataclasses
import json
import math
import struct

import numpy as np

from etils import epath
from safetensors import SafetensorError
from safetensors.numpy import load, save

from ldae_jax.errors import UserError
from ldae_jax.models import classifier
from ldae_jax.runtime import atomic

FORMAT = "ldae_jax.vit_classifier.v1"  # the `format` metadata tag of files written here


def _geometry(cfg: classifier.ClassifierConfig, patch_size: int, channels: int) -> int:
    """The (square) image side; checks that p, C and the token count fit cfg."""
    if patch_size * patch_size * channels != cfg.in_dim:
        raise UserError(f"patch_size {patch_size} and {channels} channels make {patch_size ** 2 * channels}-value "
                        f"patches, but the classifier reads {cfg.in_dim}-value patches")
    side = math.isqrt(cfg.num_tokens)
    if side * side != cfg.num_tokens:
        raise UserError(f"timm's ViT needs a square token grid; the classifier has {cfg.num_tokens} tokens")
    return side * patch_size


def timm_kwargs(cfg: classifier.ClassifierConfig, patch_size: int, channels: int, image_size: int) -> dict:
    """Keyword arguments of timm's `VisionTransformer` with our layout (JSON-able; no torch import here)."""
    if image_size != _geometry(cfg, patch_size, channels):
        raise UserError(f"image_size {image_size} with patch_size {patch_size} gives "
                        f"{(image_size // patch_size) ** 2} tokens, but the classifier has {cfg.num_tokens}")
    return {
        "img_size": image_size, "patch_size": patch_size, "in_chans": channels, "num_classes": cfg.num_classes,
        "global_pool": "avg", "embed_dim": cfg.width, "depth": cfg.depth, "num_heads": cfg.num_heads,
        "mlp_ratio": cfg.mlp_ratio, "class_token": False, "fc_norm": True, "act_layer": "gelu_tanh",
        "drop_path_rate": cfg.drop_path,
    }


def expected_shapes(cfg: classifier.ClassifierConfig, patch_size: int, channels: int) -> dict[str, tuple]:
    """Every timm name of the state dict and its shape."""
    w, hidden, p = cfg.width, int(cfg.width * cfg.mlp_ratio), patch_size
    shapes = {"patch_embed.proj.weight": (w, channels, p, p), "patch_embed.proj.bias": (w,),
              "pos_embed": (1, cfg.num_tokens, w)}
    for i in range(cfg.depth):
        for name, (dout, din) in (("attn.qkv", (3 * w, w)), ("attn.proj", (w, w)), ("mlp.fc1", (hidden, w)),
                                  ("mlp.fc2", (w, hidden))):
            shapes[f"blocks.{i}.{name}.weight"], shapes[f"blocks.{i}.{name}.bias"] = (dout, din), (dout,)
        for norm in ("norm1", "norm2"):
            shapes[f"blocks.{i}.{norm}.weight"] = shapes[f"blocks.{i}.{norm}.bias"] = (w,)
    shapes["fc_norm.weight"] = shapes["fc_norm.bias"] = (w,)
    shapes["head.weight"], shapes["head.bias"] = (cfg.num_classes, w), (cfg.num_classes,)
    return shapes


_LINEARS = {"qkv": "attn.qkv", "proj": "attn.proj", "fc1": "mlp.fc1", "fc2": "mlp.fc2"}


def timm_state_dict(params: dict, cfg: classifier.ClassifierConfig, patch_size: int,
                    channels: int) -> dict[str, np.ndarray]:
    """The `ViTClassifier` parameter tree (e.g. `fold.fold_encoder`'s) as timm's state dict, float32 numpy."""
    _geometry(cfg, patch_size, channels)
    f32 = lambda a: np.ascontiguousarray(np.asarray(a, np.float32))  # noqa: E731
    p = patch_size
    kernel = np.asarray(params["embed"]["kernel"])
    out = {"patch_embed.proj.weight": f32(kernel.reshape(p, p, channels, cfg.width).transpose(3, 2, 0, 1)),
           "patch_embed.proj.bias": f32(params["embed"]["bias"]),
           "pos_embed": f32(np.asarray(params["pos_embed"])[None])}
    for i in range(cfg.depth):
        block = params["blocks"][i]
        for norm in ("norm1", "norm2"):
            out[f"blocks.{i}.{norm}.weight"] = f32(block[norm]["scale"])
            out[f"blocks.{i}.{norm}.bias"] = f32(block[norm]["bias"])
        for ours, theirs in _LINEARS.items():
            out[f"blocks.{i}.{theirs}.weight"] = f32(np.asarray(block[ours]["kernel"]).T)
            out[f"blocks.{i}.{theirs}.bias"] = f32(block[ours]["bias"])
    out["fc_norm.weight"], out["fc_norm.bias"] = f32(params["fc_norm"]["scale"]), f32(params["fc_norm"]["bias"])
    out["head.weight"], out["head.bias"] = f32(np.asarray(params["head"]["kernel"]).T), f32(params["head"]["bias"])
    _check_shapes(out, cfg, patch_size, channels, "the parameters")
    return out


def params_from_timm(state: dict, cfg: classifier.ClassifierConfig, patch_size: int, channels: int) -> dict:
    """The inverse of `timm_state_dict`: a `ViTClassifier` parameter tree (float32 numpy, int block keys)."""
    _check_shapes(state, cfg, patch_size, channels, "the state dict")
    f32 = lambda a: np.ascontiguousarray(np.asarray(a, np.float32))  # noqa: E731
    conv = np.asarray(state["patch_embed.proj.weight"])
    params = {"embed": {"kernel": f32(conv.transpose(2, 3, 1, 0).reshape(cfg.in_dim, cfg.width)),
                        "bias": f32(state["patch_embed.proj.bias"])},
              "pos_embed": f32(np.asarray(state["pos_embed"])[0]), "blocks": {}}
    for i in range(cfg.depth):
        block = {norm: {"scale": f32(state[f"blocks.{i}.{norm}.weight"]), "bias": f32(state[f"blocks.{i}.{norm}.bias"])}
                 for norm in ("norm1", "norm2")}
        for ours, theirs in _LINEARS.items():
            block[ours] = {"kernel": f32(np.asarray(state[f"blocks.{i}.{theirs}.weight"]).T),
                           "bias": f32(state[f"blocks.{i}.{theirs}.bias"])}
        params["blocks"][i] = block
    params["fc_norm"] = {"scale": f32(state["fc_norm.weight"]), "bias": f32(state["fc_norm.bias"])}
    params["head"] = {"kernel": f32(np.asarray(state["head.weight"]).T), "bias": f32(state["head.bias"])}
    return params


def _check_shapes(state: dict, cfg, patch_size: int, channels: int, what: str) -> None:
    want = expected_shapes(cfg, patch_size, channels)
    missing = [k for k in want if k not in state]
    if missing:
        raise UserError(f"{what} lack {missing[0]!r}" + (f" (and {len(missing) - 1} more keys)" if missing[1:] else "")
                        + f"; expected the {len(want)} keys of timm's VisionTransformer(class_token=False, "
                        f"global_pool='avg', fc_norm=True) with depth {cfg.depth}")
    extra = sorted(set(state) - set(want))
    if extra:
        raise UserError(f"{what} hold keys this layout lacks, e.g. {extra[0]!r} ({len(extra)} in all); only a ViT "
                        f"without class token, with average pooling and fc_norm, and depth {cfg.depth} can be read")
    for k, shape in want.items():
        if tuple(np.shape(state[k])) != shape:
            raise UserError(f"{what}: {k!r} has shape {tuple(np.shape(state[k]))}, expected {shape} "
                            f"(width {cfg.width}, {cfg.num_tokens} tokens, patch {patch_size}, {channels} channels, "
                            f"{cfg.num_classes} classes, mlp_ratio {cfg.mlp_ratio})")


def save_safetensors(path: str, params: dict, cfg: classifier.ClassifierConfig, patch_size: int, channels: int,
                     image_size: int) -> str:
    """Write the timm state dict and our metadata to `path`, replaced whole (`runtime/atomic.py`, gs:// too);
    returns path."""
    kwargs = timm_kwargs(cfg, patch_size, channels, image_size)
    metadata = {"format": FORMAT, "timm_kwargs": json.dumps(kwargs, sort_keys=True),
                "ldae_config": json.dumps(dataclasses.asdict(cfg), sort_keys=True)}
    data = save(timm_state_dict(params, cfg, patch_size, channels), metadata=metadata)
    epath.Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic.write(path, data)
    return str(epath.Path(path))


def _header_metadata(data: bytes) -> dict:
    """The `__metadata__` of a safetensors file (8-byte little-endian header size, then the JSON header)."""
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + size])
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    return header.get("__metadata__") or {}


def _config_of(state: dict, cfg: classifier.ClassifierConfig | None, patch_size, channels, image_size, path):
    """(cfg, p, C, S) of a file without our metadata: cfg from the caller, p and C read off the conv weight."""
    if cfg is None:
        raise UserError(
            f"{path} has no ldae_jax metadata (a 'format': {FORMAT!r} entry with 'timm_kwargs' and 'ldae_config', "
            "as save_safetensors writes); for a file written by timm/PyTorch, pass cfg=ClassifierConfig(...) "
            "(num_heads cannot be read off the weights)")
    conv = state.get("patch_embed.proj.weight")
    if conv is None or conv.ndim != 4 or conv.shape[2] != conv.shape[3]:
        raise UserError(f"{path} lacks a square 'patch_embed.proj.weight' [W, C, p, p]")
    p, c = patch_size or int(conv.shape[2]), channels or int(conv.shape[1])
    return cfg, p, c, image_size or _geometry(cfg, p, c)


def load_safetensors(path: str, *, cfg: classifier.ClassifierConfig | None = None, patch_size: int | None = None,
                     channels: int | None = None, image_size: int | None = None):
    """(params, cfg, patch_size, channels, image_size) of a file `save_safetensors` wrote, or of a timm ViT's
    state dict of the same layout (no metadata: then `cfg` is required and the geometry defaults to what the
    patch-embedding weight and cfg imply). Arguments given for a file with metadata must agree with it."""
    src = epath.Path(path)
    if not src.exists():
        raise UserError(f"no such file: {path} (expected a .safetensors file written by save_safetensors or timm)")
    data = src.read_bytes()
    try:
        metadata = _header_metadata(data)
        state = load(data)
    except KeyError as e:  # safetensors.numpy has no bfloat16 (numpy lacks it)
        raise UserError(f"{path} holds {e.args[0]} tensors, which safetensors' numpy reader cannot read; save a "
                        "float32 copy (in PyTorch: save_file({k: v.float() for k, v in sd.items()}, ...))") from None
    except (SafetensorError, ValueError, TypeError, struct.error) as e:
        raise UserError(f"{path} is not a readable safetensors file: {e}") from None
    if metadata.get("format") == FORMAT:
        try:
            kwargs = json.loads(metadata["timm_kwargs"])
            stored = classifier.ClassifierConfig(**json.loads(metadata["ldae_config"]))
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{path} has damaged ldae_jax metadata ({e!r}); re-export it") from None
        geometry = (kwargs["patch_size"], kwargs["in_chans"], kwargs["img_size"])
        for name, given, have in zip(("patch_size", "channels", "image_size", "cfg"),
                                     (patch_size, channels, image_size, cfg), (*geometry, stored)):
            if given is not None and given != have:
                raise UserError(f"{path} was exported with {name}={have}, not {given}")
        cfg, (patch_size, channels, image_size) = stored, geometry
    else:
        cfg, patch_size, channels, image_size = _config_of(state, cfg, patch_size, channels, image_size, path)
        timm_kwargs(cfg, patch_size, channels, image_size)  # checks the geometry against cfg
    state = {k: (v.astype(np.float32) if v.dtype != np.float32 else v) for k, v in state.items()}
    return params_from_timm(state, cfg, patch_size, channels), cfg, patch_size, channels, image_size
