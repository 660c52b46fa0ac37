"""The ImageNet recipes (configs/imagenet.py): every variant builds at the paper's sizes, and the whole
program (pre-training, both probes, fine-tuning) runs a few steps on tfds.testing.mock_data with the recipe's
geometry (256 px, 16 px patches, d = 32) and a shrunken network."""

import jax
import numpy as np
import pytest

from configs import imagenet
from ldae_jax import modes
from ldae_jax.errors import UserError
from ldae_jax.models import vit
from ldae_jax.train import state as state_lib
from helpers import set_fields

ENCODER_PARAMS = {"B": (86e6, 100e6), "half_L": (150e6, 175e6), "L": (300e6, 345e6)}  # ViT + adaLN MLPs


@pytest.mark.parametrize("model", imagenet.MODELS)
def test_every_recipe_builds_at_the_paper_size(model):
    for epochs in imagenet.EPOCHS:
        for augment in imagenet.AUGMENT:
            c = imagenet.get_config(f"model={model},epochs={epochs},augment={augment}")
            assert (c.train.batch_size, c.train.base_lr, c.train.warmup_epochs) == (2048, 1e-4, 100.0)
            assert c.train.num_epochs == epochs and c.data.augment == augment and c.tokenizer.d == 32
    cfg = vit.model_config_from(c.model, num_tokens=256, in_dim=768, out_dim=768)
    params = jax.eval_shape(lambda: state_lib.init_params(cfg, jax.random.key(0)))
    blocks = params["blocks"]
    per_block = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(blocks)) / cfg.depth
    encoder = per_block * cfg.encoder_depth + sum(int(np.prod(a.shape)) for a in jax.tree.leaves(params["embed"]))
    low, high = ENCODER_PARAMS[model]
    assert low <= encoder <= high, encoder
    with pytest.raises(ValueError, match="not one of the paper's recipes"):
        imagenet.get_config("model=H")


def shrunk(mock_root, **fields):
    """The ViT-B recipe with its data and geometry, on mock ImageNet, with a 1 + 1-block width-64 network."""
    c = imagenet.get_config("model=B,epochs=400")
    c.data.update(data_dir=mock_root)
    c.model.update(width=64, num_heads=2, encoder_depth=1, decoder_depth=1, dtype="float32", scan_layers=False)
    c.tokenizer.num_patches = 2000
    c.train.update(batch_size=8, total_steps=2, log_every=1, checkpoint_every=2)
    c.probe.update(feature_batch_size=8, batch_size=16, epochs=1, baselines="")
    c.finetune.update(batch_size=8, total_steps=2, log_every=1, eval_batch_size=8)
    return set_fields(c, **fields)


@pytest.mark.slow
def test_recipe_runs_every_program_on_mock_imagenet(tmp_path, mock_root):
    workdir = str(tmp_path / "run")
    out = modes.run(shrunk(mock_root), workdir, "pretrain_probe")
    assert 0 <= out["probe"]["results"]["l-DAE"]["test_top1"] <= 100
    paper = modes.run(shrunk(mock_root, probe__mode="paper", probe__batch_size=8), workdir, "probe",
                       options=modes.Options(probe_file="probe_paper.json"))["probe"]["results"]["l-DAE"]
    assert 0 <= paper["test_top1"] <= 100 and paper["steps"] == 40 // 8
    tuned = modes.run(shrunk(mock_root), workdir, "finetune")["finetune"]
    assert set(tuned["top1"]) == {"final", "ema"} and tuned["step"] == 2
    exported = modes.run(shrunk(mock_root), workdir, "export")["export"]
    assert exported["timm_kwargs"]["patch_size"] == 16 and exported["timm_kwargs"]["img_size"] == 256
    again = modes.run(shrunk(mock_root, finetune__init=exported["path"]), str(tmp_path / "from_file"), "finetune")
    assert again["finetune"]["step"] == 2  # fine-tuned from the exported file, without the pre-training run


def test_finetune_config_mistakes_are_user_errors(tmp_path, mock_root):
    for fields, match in [({"finetune__rand_augment": "9"}, "magnitude,std"),
                          ({"finetune__layer_decay": 1.5}, "layer_decay"), ({"finetune__ema": 1.0}, "ema")]:
        with pytest.raises(UserError, match=match):
            modes.run(shrunk(mock_root, **fields), str(tmp_path), "finetune")
