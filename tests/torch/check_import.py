"""The import direction, after tests/torch: a file timm itself saved (no metadata) loads into the JAX classifier
with a given config and computes timm's features and logits. Run with .venv's python by launch/test_torch.sh."""

from __future__ import annotations

import os
import sys

import jax
import numpy as np
from flax import nnx

from ldae_jax.models import timm_format
from ldae_jax.models import classifier
from ldae_jax.tokenizers.patches import patchify


def main(ref_dir: str) -> None:
    ours = timm_format.load_safetensors(os.path.join(ref_dir, "vit.safetensors"))[1]
    ref = np.load(os.path.join(ref_dir, "timm_outputs.npz"))
    assert int(ref["num_heads"]) == ours.num_heads
    params, cfg, p, _, _ = timm_format.load_safetensors(os.path.join(ref_dir, "timm_written.safetensors"), cfg=ours)
    model = nnx.merge(nnx.graphdef(classifier.ViTClassifier(cfg, rngs=nnx.Rngs(0))), params)
    with jax.default_matmul_precision("highest"):
        tokens = patchify(ref["images_nchw"].transpose(0, 2, 3, 1), p)
        features, logits = np.asarray(model.features(tokens)), np.asarray(model(tokens))
    print(f"[check_import] a timm-saved file in JAX: max |JAX - timm| features "
          f"{np.abs(features - ref['features']).max():.2e}, logits {np.abs(logits - ref['logits']).max():.2e}")
    np.testing.assert_allclose(features, ref["features"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(logits, ref["logits"], rtol=1e-4, atol=1e-4)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: check_import.py REF_DIR")
    main(sys.argv[1])
