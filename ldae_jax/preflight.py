"""The one check before compute, and the plan it resolves.

`check(config, stages)` finds every mistake that can be found without reading data, compiling or touching a
device: each field's name, type, choice and range; combinations of fields (objective x tokenizer x schedule,
d within the token's dimension, the probed block within the network); every file the config names (tokenizer
weights, Inception, fine-tune init); whether the dataset is prepared and its splits exist (metadata only); the
global batch against the devices the run will have; what each stage needs of the workdir (a checkpoint, a
tokenizer file fitted for this config). `--dry_run` runs it
and prints the plan, every real run runs it before it reads data, the ladder runs it for every planned row and
`launch/launch.py` runs it (through `--dry_run`) with the device count of the job it is about to submit.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np
from etils import epath
from jax.sharding import AbstractMesh, AxisType

from ldae_jax import config_lib, experiment, objectives
from ldae_jax.data import datasets, in_memory
from ldae_jax.errors import UserError
from ldae_jax.models import vit
from ldae_jax.runtime import precision
from ldae_jax.tokenizers import registry
from ldae_jax.train import sharding, state as state_lib


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a run will do, resolved from its config (the dry run prints `describe()`)."""

    config: object
    stages: tuple  # the Stage entries (modes.py) it runs
    dataset: datasets.Description
    kind: object  # the tokenizer's registry entry
    model_cfg: vit.ModelConfig
    devices: int
    mesh: tuple[int, int]  # (data, fsdp)
    total_steps: int
    peak_lr: float
    options: object = None  # the stages' modes.Options, for the names of the files they write
    hosts: int = 1  # processes of the job: each reads its own slice of the data

    @functools.cached_property
    def _state(self):
        return _state_shapes(self.model_cfg, self.config.train.grad_clip > 0)

    @property
    def num_params(self) -> int:
        return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(self._state.params))

    @property
    def bytes_per_device(self) -> int:
        """Parameters + AdamW state on one device of the mesh (computed when asked: tracing a paper-size model
        takes seconds, which the ladder's check of every row does not need)."""
        mesh = AbstractMesh(self.mesh, ("data", "fsdp"), axis_types=(AxisType.Auto,) * 2)
        shardings = state_lib.state_shardings(self._state, mesh)
        return (sharding.bytes_per_device(self._state.params, shardings.params)
                + sharding.bytes_per_device(self._state.opt_state, shardings.opt_state))

    def _reading(self) -> str:
        """How pre-training reads its split: from host memory when it fits `data.in_memory_mb` (in_memory.py)."""
        c = self.config.data
        size = in_memory.decoded_bytes(self.dataset.examples[c.train_split] // self.hosts, c.image_size,
                                       self.dataset.channels)
        if c.augment == "center_crop" and 0 < size <= c.in_memory_mb * 2**20:
            return f"; held in host memory ({size / 2**20:.0f} MiB per host)"
        return "; streamed through tf.data"

    def describe(self, workdir: str | None = None) -> str:
        c, t, m = self.config, self.config.tokenizer, self.model_cfg
        num_train = self.dataset.examples[c.data.train_split]
        tokens, dim = m.num_tokens, t.patch_size**2 * self.dataset.channels
        epochs = self.total_steps * c.train.batch_size / max(num_train, 1)
        used = self.mesh[0] * self.mesh[1]
        lines = [
            f"data      {c.data.name}: {num_train} train ({c.data.train_split}), "
            f"{self.dataset.examples[c.data.eval_split]} eval ({c.data.eval_split}), {self.dataset.channels} "
            f"channel(s), {self.dataset.num_classes} classes, {c.data.image_size} px{self._reading()}",
            f"tokenizer {t.kind} ({self.kind.summary}): {tokens} tokens of d={t.d} of D={dim} "
            f"({t.patch_size}x{t.patch_size} patches)",
            f"objective {c.objective.input} in, {c.objective.output} out, target {c.objective.target}; "
            f"noise {c.noise.schedule}",
            f"model     {c.model.size}: width {m.width}, {m.encoder_depth} + {m.decoder_depth} blocks, "
            f"{m.num_heads} heads, {self.num_params / 1e6:.2f}M parameters, {m.dtype} compute"
            + ("" if c.model.dtype == m.dtype else f" ({precision.resolve(c.model.dtype)[1]})"),
            f"training  {self.total_steps} steps ({epochs:.1f} epochs), global batch {c.train.batch_size} = "
            f"{c.train.batch_size // used} per device on {used}{'' if used == self.devices else f' of {self.devices}'}"
            f" device(s) (mesh data {self.mesh[0]} x fsdp {self.mesh[1]}), peak lr {self.peak_lr:.2e}",
            f"memory    {self.bytes_per_device / 2**20:.1f} MiB per device for parameters + AdamW state "
            "(activations not included: python -m ldae_jax.train.memory --activations estimates them)",
            "stages    " + "; ".join(f"{s.name} -> {s.output(c, self.options)}" for s in self.stages),
        ]
        if workdir:
            lines.append(f"workdir   {workdir}")
        return "\n".join(lines)


@functools.lru_cache(maxsize=64)
def _state_shapes(model_cfg: vit.ModelConfig, clipped: bool):
    """The train state's shapes (eval_shape, nothing allocated), once per model: the ladder checks dozens of rows
    that share one, and a paper-size model takes seconds to trace. Its shapes do not depend on the lr or betas."""
    train = type("TrainFields", (), dict(b1=0.9, b2=0.95, weight_decay=0.0, grad_clip=1.0 if clipped else 0.0))
    tx = state_lib.make_optimizer(train, state_lib.learning_rate(1e-4, 256, 1, 2))
    return state_lib.abstract_state(model_cfg, tx, jax.random.key(0))


def _needs_checkpoint(config, stages) -> bool:
    """Whether a stage reads the pre-training checkpoint before a pre-training stage of this command writes it."""
    names = [s.name for s in stages]
    needing = [s.name for s in stages if s.needs_checkpoint(config)]
    return bool(needing) and ("pretrain" not in names or names.index("pretrain") > names.index(needing[0]))


def check(config, stages, *, devices: int | None = None, processes: int = 1, workdir: str | None = None,
          local: bool = True, options=None) -> Plan:
    """Raise a UserError for the first mistake in `config` for running `stages` (Stage entries, modes.py) on
    `devices` devices in `processes` processes (default: this process's view of the job); return the resolved
    plan. `local=False`: the job runs elsewhere (a pod, a cluster), so the dataset's known sizes stand in for
    its metadata and the files the config names and the workdir are not looked at here. `options` (the stages'
    modes.Options) only shapes the plan's file names."""
    config_lib.check_fields(config)
    dataset = datasets.describe(config.data, local=local)
    kind = registry.check(config, dataset.channels, local=local)
    objectives.check(config, kind)
    model_cfg = experiment.model_config(config, dataset.channels, dataset.num_classes)
    # MAE's decoder has its own width: only the encoder's blocks can be probed
    depth = model_cfg.encoder_depth + (model_cfg.decoder_depth if model_cfg.kind != "mae" else 0)
    if config.probe.block > depth:
        raise UserError(f"probe.block={config.probe.block} is past the network's last block ({depth}); use 0 for "
                        f"the encoder's output (block {model_cfg.encoder_depth}) or 1..{depth}")
    for name in ("probe.t", "finetune.t"):
        section, field = name.split(".")
        if config[section][field] >= config.noise.T:
            raise UserError(f"{name}={config[section][field]} is not a step of the noise schedule: it must be "
                            f"below noise.T={config.noise.T}")
    if devices is None:
        devices, processes = jax.device_count(), jax.process_count()
    if devices % processes:
        raise UserError(f"{devices} devices cannot be split evenly over {processes} hosts")
    mesh = sharding.mesh_shape(config.mesh.data, config.mesh.fsdp, devices, processes)
    for stage in [None, *stages]:
        field = "train.batch_size" if stage is None else stage.batch_field
        if field:
            section, name = field.split(".")
            sharding.check_batch_size(config[section][name], mesh[0] * mesh[1], processes, field)
    for stage in stages:
        stage.check(config, local=local)
    if local and workdir and kind.file and (epath.Path(workdir) / kind.file).exists():  # fitted for another config?
        kind.load(config, str(epath.Path(workdir) / kind.file), dataset.channels)
    if local and workdir and _needs_checkpoint(config, stages):
        ckpts = epath.Path(workdir) / "checkpoints"
        if not (ckpts.is_dir() and any(p.name.isdigit() for p in ckpts.iterdir())):
            raise UserError(f"{ckpts} holds no checkpoint: pre-train first (--mode=pretrain, or --mode=all)")

    num_train = dataset.examples[config.data.train_split]
    if num_train < config.train.batch_size:
        raise UserError(f"{config.data.train_split!r} has {num_train} examples, fewer than one batch of "
                        f"train.batch_size={config.train.batch_size}")
    total_steps, _, _ = state_lib.optimizer(config.train, num_train)
    peak = config.train.base_lr * config.train.batch_size / 256
    return Plan(config, tuple(stages), dataset, kind, model_cfg, devices, mesh, total_steps, peak, options,
                processes)
