"""The timm/safetensors export of the folded encoder: exact round trip, the layout conversions timm relies on
(checked in numpy/JAX here; against PyTorch itself in tests/torch), and clear errors for unusable files."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from safetensors import safe_open
from safetensors.numpy import save_file

from configs import quickstart
from ldae_jax import experiment, modes
from ldae_jax.errors import UserError
from ldae_jax.models import classifier, fold, timm_format
from ldae_jax.tokenizers.patches import patchify
from tests.test_data import needs_debian_files

P, C, S = 4, 3, 16  # patch, channels, image side: 16 tokens of 48 values
CFG = classifier.ClassifierConfig(num_tokens=16, in_dim=48, width=32, depth=2, num_heads=4, num_classes=5)


def random_params(cfg=CFG, seed=0):
    """Every parameter random and non-zero (head and fc_norm included), so any mix-up shows."""
    params = nnx.state(classifier.ViTClassifier(cfg, rngs=nnx.Rngs(seed))).to_pure_dict()
    leaves, treedef = jax.tree.flatten(params)
    rng = np.random.default_rng(seed)
    return jax.tree.unflatten(treedef, [np.asarray(a, np.float32) + 0.1 * rng.standard_normal(a.shape, np.float32)
                                        for a in leaves])


def images(b=2, seed=1):
    return np.random.default_rng(seed).standard_normal((b, S, S, C)).astype(np.float32)


def test_round_trip_is_exact(tmp_path):
    params = random_params()
    path = timm_format.save_safetensors(str(tmp_path / "sub" / "vit.safetensors"), params, CFG, P, C, S)
    assert [f.name for f in (tmp_path / "sub").iterdir()] == ["vit.safetensors"]  # no temp file left
    got, cfg, p, c, s = timm_format.load_safetensors(path)
    assert (cfg, p, c, s) == (CFG, P, C, S)
    assert jax.tree.structure(got) == jax.tree.structure(params)
    jax.tree.map(np.testing.assert_array_equal, got, params)
    with safe_open(path, framework="np") as f:
        meta = f.metadata()
    assert meta["format"] == timm_format.FORMAT
    assert json.loads(meta["timm_kwargs"]) == timm_format.timm_kwargs(CFG, P, C, S)
    assert timm_format.timm_kwargs(CFG, P, C, S)["act_layer"] == "gelu_tanh"
    model = nnx.merge(nnx.graphdef(classifier.ViTClassifier(cfg, rngs=nnx.Rngs(0))), got)  # loads into the model
    assert model(patchify(images(), P)).shape == (2, 5)


def test_patch_embedding_is_the_strided_conv():
    params = random_params()
    state = timm_format.timm_state_dict(params, CFG, P, C)
    x = images()
    ours = patchify(x, P) @ params["embed"]["kernel"] + params["embed"]["bias"]  # [B, N, W]
    conv = jax.lax.conv_general_dilated(jnp.asarray(x.transpose(0, 3, 1, 2)),  # NCHW, as timm reads images
                                        jnp.asarray(state["patch_embed.proj.weight"]), (P, P), "VALID",
                                        dimension_numbers=("NCHW", "OIHW", "NCHW"), precision=jax.lax.Precision.HIGHEST)
    conv = conv + state["patch_embed.proj.bias"][None, :, None, None]
    theirs = np.asarray(conv).reshape(2, CFG.width, -1).transpose(0, 2, 1)  # timm: flatten(2).transpose(1, 2)
    np.testing.assert_allclose(theirs, np.asarray(ours), rtol=1e-5, atol=1e-5)


def test_qkv_layout_matches_timm():
    params = random_params()
    state = timm_format.timm_state_dict(params, CFG, P, C)
    b, n, w, h = 2, CFG.num_tokens, CFG.width, CFG.num_heads
    x = np.random.default_rng(2).standard_normal((b, n, w)).astype(np.float32)
    qkv = params["blocks"][1]["qkv"]
    ours = jnp.split((x @ qkv["kernel"] + qkv["bias"]).reshape(b, n, 3 * h, w // h), 3, axis=2)  # as PlainBlock
    y = x @ state["blocks.1.attn.qkv.weight"].T + state["blocks.1.attn.qkv.bias"]
    theirs = y.reshape(b, n, 3, h, w // h).transpose(2, 0, 3, 1, 4)  # timm: [3, B, H, N, hd]
    for mine, other in zip(ours, theirs):
        np.testing.assert_allclose(np.asarray(mine).transpose(0, 2, 1, 3), other, rtol=1e-5, atol=1e-5)


def _layer_norm(x, weight, bias):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-6) * weight + bias


def _timm_forward(state, x, cfg):
    """timm's VisionTransformer(class_token=False, global_pool='avg', fc_norm=True, gelu_tanh) in numpy, read
    only from the exported state dict: (pre-logits, logits)."""
    b, h = x.shape[0], cfg.num_heads
    tokens = patchify(x, P) @ state["patch_embed.proj.weight"].transpose(2, 3, 1, 0).reshape(-1, cfg.width)
    t = tokens + state["patch_embed.proj.bias"] + state["pos_embed"]
    lin = lambda a, name: a @ state[name + ".weight"].T + state[name + ".bias"]  # noqa: E731
    for i in range(cfg.depth):
        pre = f"blocks.{i}."
        y = _layer_norm(t, state[pre + "norm1.weight"], state[pre + "norm1.bias"])
        q, k, v = lin(y, pre + "attn.qkv").reshape(b, -1, 3, h, cfg.width // h).transpose(2, 0, 3, 1, 4)
        logits = q @ k.transpose(0, 1, 3, 2) / np.sqrt(cfg.width // h)
        attn = np.exp(logits - logits.max(-1, keepdims=True))
        out = (attn / attn.sum(-1, keepdims=True)) @ v  # [B, H, N, hd]
        t = t + lin(out.transpose(0, 2, 1, 3).reshape(b, -1, cfg.width), pre + "attn.proj")
        y = lin(_layer_norm(t, state[pre + "norm2.weight"], state[pre + "norm2.bias"]), pre + "mlp.fc1")
        y = 0.5 * y * (1 + np.tanh(np.sqrt(2 / np.pi) * (y + 0.044715 * y ** 3)))
        t = t + lin(y, pre + "mlp.fc2")
    feats = _layer_norm(t.mean(1), state["fc_norm.weight"], state["fc_norm.bias"])
    return feats, lin(feats, "head")


def test_timm_forward_from_the_state_dict_matches_the_classifier():
    params = random_params()
    state = {k: v.astype(np.float64) for k, v in timm_format.timm_state_dict(params, CFG, P, C).items()}
    x = images(3)
    feats, logits = _timm_forward(state, x.astype(np.float64), CFG)
    model = nnx.merge(nnx.graphdef(classifier.ViTClassifier(CFG, rngs=nnx.Rngs(0))), params)
    tokens = patchify(x, P)
    np.testing.assert_allclose(np.asarray(model.features(tokens)), feats, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(model(tokens)), logits, rtol=1e-4, atol=1e-4)


def _timm_file(path, params, **overrides):
    """A file as timm/PyTorch writes it: the state dict, no metadata."""
    state = {**timm_format.timm_state_dict(params, CFG, P, C), **overrides}
    save_file({k: v for k, v in state.items() if v is not None}, str(path))
    return str(path)


def test_a_timm_file_without_metadata_needs_the_config(tmp_path):
    params = random_params()
    path = _timm_file(tmp_path / "timm.safetensors", params)
    with pytest.raises(UserError, match="no ldae_jax metadata.*cfg=ClassifierConfig"):
        timm_format.load_safetensors(path)
    tuned = dataclasses.replace(CFG, drop_path=0.1)
    got, cfg, p, c, s = timm_format.load_safetensors(path, cfg=tuned)
    assert (cfg, p, c, s) == (tuned, P, C, S)
    jax.tree.map(np.testing.assert_array_equal, got, params)
    with pytest.raises(UserError, match="8-value patches"):
        timm_format.load_safetensors(path, cfg=tuned, patch_size=2, channels=2)


def test_bad_files_give_user_errors(tmp_path):
    params = random_params()
    with pytest.raises(UserError, match="no such file"):
        timm_format.load_safetensors(str(tmp_path / "missing.safetensors"))
    (tmp_path / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(UserError, match="not a readable safetensors file"):
        timm_format.load_safetensors(str(tmp_path / "junk.safetensors"))
    path = _timm_file(tmp_path / "short.safetensors", params, **{"blocks.1.mlp.fc2.bias": None})
    with pytest.raises(UserError, match="'blocks.1.mlp.fc2.bias'"):
        timm_format.load_safetensors(path, cfg=CFG)
    path = _timm_file(tmp_path / "shape.safetensors", params, pos_embed=np.zeros((1, 17, 32), np.float32))
    with pytest.raises(UserError, match=r"'pos_embed' has shape \(1, 17, 32\), expected \(1, 16, 32\)"):
        timm_format.load_safetensors(path, cfg=CFG)
    path = _timm_file(tmp_path / "cls.safetensors", params, cls_token=np.zeros((1, 1, 32), np.float32))
    with pytest.raises(UserError, match="'cls_token'"):
        timm_format.load_safetensors(path, cfg=CFG)
    path = timm_format.save_safetensors(str(tmp_path / "ours.safetensors"), params, CFG, P, C, S)
    with pytest.raises(UserError, match="exported with patch_size=4, not 2"):
        timm_format.load_safetensors(path, patch_size=2)
    with pytest.raises(UserError, match="48-value patches"):
        timm_format.save_safetensors(str(tmp_path / "x.safetensors"), params, CFG, 2, C, S)


@pytest.mark.slow
@needs_debian_files
def test_export_mode_writes_the_folded_encoder_of_the_latest_checkpoint(tmp_path):
    """--mode=export after a tiny pre-training: the file holds the fold of the latest checkpoint at finetune.t."""
    config, workdir = quickstart.get_config("tiny"), str(tmp_path)
    modes.run(config, workdir, "pretrain")
    out = modes.run(config, workdir, "export")["export"]
    params, cfg, p, c, s = timm_format.load_safetensors(out["path"])
    run = experiment.Experiment(config, workdir)
    want = fold.fold_encoder(run.restore_params()[1], run.model_cfg, t=config.finetune.t,
                             num_blocks=run.model_cfg.encoder_depth, num_classes=10)
    jax.tree.map(np.testing.assert_array_equal, params, want)
    assert (cfg.depth, p * p * c, s) == (run.model_cfg.encoder_depth, run.model_cfg.in_dim, config.data.image_size)
