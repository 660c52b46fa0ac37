"""The exported encoder in PyTorch: timm's VisionTransformer, built from the file's metadata alone, loads it
strictly and computes the JAX classifier's features and logits.

Run by launch/test_torch.sh in .venv-torch (no JAX there): tests/torch/make_reference.py has written the file and
the JAX outputs to $LDAE_TORCH_REFERENCE beforehand. This test also writes a file as timm itself saves one, with
the model's outputs, for tests/torch/check_import.py to read back into JAX.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # the main suite (.venv, no torch) skips this file
timm = pytest.importorskip("timm")
from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from timm.models.vision_transformer import VisionTransformer  # noqa: E402

REF = os.environ.get("LDAE_TORCH_REFERENCE", "")
pytestmark = pytest.mark.skipif(not REF, reason="needs LDAE_TORCH_REFERENCE: run `bash launch/test_torch.sh`")


def timm_model(path):
    with safe_open(path, framework="pt") as f:
        kwargs = json.loads(f.metadata()["timm_kwargs"])
    model = VisionTransformer(**kwargs)
    model.load_state_dict(load_file(path), strict=True)
    return model.eval(), kwargs


def outputs(model, images_nchw):
    with torch.no_grad():
        x = torch.from_numpy(images_nchw)
        features = model.forward_head(model.forward_features(x), pre_logits=True)
        return features.numpy(), model(x).numpy()


def test_timm_computes_the_jax_features_and_logits():
    torch.manual_seed(0)
    model, kwargs = timm_model(os.path.join(REF, "vit.safetensors"))
    assert isinstance(model.blocks[0].mlp.act, timm.layers.activations.GELUTanh)
    ref = np.load(os.path.join(REF, "reference.npz"))
    features, logits = outputs(model, ref["images_nchw"])
    diffs = {"features": float(np.abs(features - ref["features"]).max()),
             "logits": float(np.abs(logits - ref["logits"]).max()),
             "features_scale": float(np.abs(ref["features"]).max()), "logits_scale": float(np.abs(ref["logits"]).max())}
    print(f"\n[torch] timm {timm.__version__}, torch {torch.__version__}, VisionTransformer(**{kwargs}); "
          f"max |timm - JAX|: {diffs}")
    with open(os.path.join(REF, "torch_diffs.json"), "w") as f:
        json.dump(diffs, f)
    np.testing.assert_allclose(features, ref["features"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(logits, ref["logits"], rtol=1e-4, atol=1e-4)
    exact_gelu = VisionTransformer(**{**kwargs, "act_layer": None})  # the default: exact GELU
    exact_gelu.load_state_dict(model.state_dict(), strict=True)
    assert not np.allclose(outputs(exact_gelu.eval(), ref["images_nchw"])[1], ref["logits"], rtol=1e-4, atol=1e-4)


def test_write_a_timm_saved_file_for_the_jax_import():
    """A timm model of the same layout with its own random weights, saved as timm users save one (no metadata)."""
    torch.manual_seed(1)
    _, kwargs = timm_model(os.path.join(REF, "vit.safetensors"))
    model = VisionTransformer(**kwargs).eval()
    with torch.no_grad():
        for p in model.parameters():  # timm zero-initialises some biases: make every term count
            p.add_(0.05 * torch.randn_like(p))
    save_file(model.state_dict(), os.path.join(REF, "timm_written.safetensors"))
    images = np.random.default_rng(3).uniform(-1, 1, (3, 3, kwargs["img_size"], kwargs["img_size"]))
    images = images.astype(np.float32)
    features, logits = outputs(model, images)
    np.savez(os.path.join(REF, "timm_outputs.npz"), images_nchw=images, features=features, logits=logits,
             num_heads=kwargs["num_heads"])
