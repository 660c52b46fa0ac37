"""The context of one run, built once from (config, workdir) and handed to every stage: the device mesh, the
dataset, the objective and noise schedule, the model definition and the optimizer; the tokenizer and the
restored parameters on first use (a figure of the schedules needs neither, a probe needs both).

Stages read what they need from it (`exp.tokenizer`, `exp.restore_params()`, ...) and never rebuild it, so
`--mode=all` fits or loads the tokenizer once and restores the checkpoint once.
"""

from __future__ import annotations

import functools

import jax

from ldae_jax import config_lib, diffusion, objectives
from ldae_jax.data import datasets, splits
from ldae_jax.errors import UserError
from ldae_jax.models.vit import ModelConfig, model_config_from
from ldae_jax.tokenizers import registry
from ldae_jax.train import checkpoint, sharding, state as state_lib


def model_config(config, channels: int, num_classes: int) -> ModelConfig:
    """The network of a run, from its config and its dataset's image channels and classes."""
    t = config.tokenizer
    obj = objectives.objective_from(config, num_classes)
    in_dim, out_dim = obj.dims(t.patch_size**2 * channels, t.d)
    try:
        return model_config_from(config.model, num_tokens=(config.data.image_size // t.patch_size) ** 2,
                                 in_dim=in_dim, out_dim=out_dim, num_classes=obj.num_classes,
                                 mae=config.mae if obj.kind == "mae" else None)
    except ValueError as e:  # a size, width or dtype the model does not have
        raise UserError(str(e)) from None


class Experiment:
    """config, workdir, mesh, builder (the dataset), num_classes, channels, objective, schedule, model_cfg; and
    on first use tokenizer, restore_params()."""

    def __init__(self, config, workdir: str):
        self.config, self.workdir = config, workdir
        config_lib.prepare_workdir(workdir)
        self.mesh = sharding.make_mesh(config.mesh.data, config.mesh.fsdp)
        sharding.check_batch(config.train.batch_size, self.mesh)
        self.builder = datasets.open_dataset(config.data)
        self.num_classes = int(self.builder.info.features["label"].num_classes)
        self.channels = int(self.builder.info.features["image"].shape[-1])
        self.objective = objectives.objective_from(config, self.num_classes)
        self.schedule = diffusion.schedule_from_config(config.noise)
        self.model_cfg = model_config(config, self.channels, self.num_classes)
        self._params = None

    @functools.cached_property
    def tokenizer(self):
        """The run's tokenizer, loaded from the workdir (checked against the config) or fitted and saved there."""
        return registry.load_or_fit(self.config, self.workdir, self.builder)

    def num_examples(self, split: str) -> int:
        return splits.num_examples(self.builder, split)

    def optimizer(self):
        """(total steps, lr schedule, optimizer) of the pre-training."""
        return state_lib.optimizer(self.config.train, self.num_examples(self.config.data.train_split))

    def meta(self) -> dict:
        """What this run's checkpoints record about it (config fingerprint, tokenizer hash)."""
        return checkpoint.run_meta(self.config, self.tokenizer)

    def checkpointer(self) -> checkpoint.Checkpointer:
        return checkpoint.Checkpointer(f"{self.workdir}/checkpoints", keep=self.config.train.keep_checkpoints)

    def restore_params(self) -> tuple[int, dict]:
        """(step, params) of the latest pre-training checkpoint, verified to belong to this config and tokenizer;
        read once per run."""
        if self._params is None:
            _, _, tx = self.optimizer()
            abstract = state_lib.abstract_state(self.model_cfg, tx, jax.random.key(self.config.seed))
            ckpt = self.checkpointer()
            try:
                restored = checkpoint.restore_latest(ckpt, abstract, state_lib.state_shardings(abstract, self.mesh),
                                                     self.meta(), self.workdir)
            finally:
                ckpt.close()
            if restored is None:
                raise UserError(f"no checkpoint in {self.workdir}/checkpoints: pre-train first "
                                "(--mode=pretrain or all)")
            self._params = (int(restored.step), restored.params)
        return self._params

    def remember_params(self, step: int, params) -> None:
        """What pre-training ended with (also its last checkpoint), so the stages after it need not read it."""
        self._params = (int(step), params)
