"""Train state, optimizer and the jitted l-DAE train step.

The model is Flax NNX, used functionally: its graph definition is static and its parameters travel as a
plain nested dict, so the state is an ordinary pytree that jit, sharding rules and orbax all understand.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct

from ldae_jax import config_lib, objectives
from ldae_jax.models.mae import MaskedAutoencoder
from ldae_jax.models.vit import DenoisingViT, ModelConfig
from ldae_jax.train import sharding


@struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    opt_state: Any


def learning_rate(base_lr: float, batch_size: int, warmup_steps: int, total_steps: int) -> optax.Schedule:
    """lr = base_lr * batch / 256, linear warm-up then half-cycle cosine to 0 (docs/paper_notes.md 3.4)."""
    peak = base_lr * batch_size / 256
    warmup_steps = min(warmup_steps, total_steps)
    return optax.warmup_cosine_decay_schedule(0.0, peak, warmup_steps, max(total_steps, warmup_steps + 1), 0.0)


def optimizer(train_cfg, num_train: int):
    """(total steps, lr schedule, optimizer) of a pre-training run on `num_train` examples; epochs become steps
    here and nowhere else."""
    total_steps = config_lib.steps(num_train, train_cfg.batch_size, epochs=train_cfg.num_epochs,
                                   total_steps=train_cfg.total_steps)
    warmup_steps = config_lib.steps(num_train, train_cfg.batch_size, epochs=train_cfg.warmup_epochs)
    lr_fn = learning_rate(train_cfg.base_lr, train_cfg.batch_size, warmup_steps, total_steps)
    return total_steps, lr_fn, make_optimizer(train_cfg, lr_fn)


def make_optimizer(cfg, lr: optax.Schedule) -> optax.GradientTransformation:
    """AdamW (the paper's optimizer is not stated; DiT/MAE use AdamW); optional global-norm clipping."""
    # With weight decay (MAE's 0.05), only matrices decay, not biases or the mask token (MAE's rule); without it
    # the optimizer state keeps the structure every earlier checkpoint has.
    mask = (lambda params: jax.tree.map(lambda p: p.ndim >= 2, params)) if cfg.weight_decay > 0 else None
    adamw = optax.adamw(lr, b1=cfg.b1, b2=cfg.b2, weight_decay=cfg.weight_decay, mask=mask)
    return optax.chain(optax.clip_by_global_norm(cfg.grad_clip), adamw) if cfg.grad_clip > 0 else adamw


def build_model(model_cfg: ModelConfig, rngs: nnx.Rngs):
    """The network of `model_cfg.kind`: l-DAE's denoising ViT or MAE."""
    return (MaskedAutoencoder if model_cfg.kind == "mae" else DenoisingViT)(model_cfg, rngs=rngs)


def model_graph(model_cfg: ModelConfig):
    """The static graph definition of the model, built without allocating parameters."""
    return nnx.split(nnx.eval_shape(lambda: build_model(model_cfg, nnx.Rngs(0))))[0]


def init_params(model_cfg: ModelConfig, key: jax.Array) -> dict:
    return nnx.state(build_model(model_cfg, nnx.Rngs(params=key))).to_pure_dict()


def _init_fn(model_cfg: ModelConfig, tx: optax.GradientTransformation):
    def init(key):
        params = init_params(model_cfg, key)
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))

    return init


def abstract_state(model_cfg: ModelConfig, tx: optax.GradientTransformation, key: jax.Array) -> TrainState:
    """Shapes and dtypes of the train state, computed without allocating it."""
    return jax.eval_shape(_init_fn(model_cfg, tx), key)


def create_state(model_cfg: ModelConfig, tx: optax.GradientTransformation, key: jax.Array, shardings):
    """Initialise directly into the sharded layout (jit with out_shardings, after eval_shape), so no host
    ever materialises a full replicated copy of a large model."""
    return jax.jit(_init_fn(model_cfg, tx), out_shardings=shardings)(key)


def state_shardings(abstract_state: TrainState, mesh):
    return TrainState(
        step=sharding.replicated(mesh),
        params=sharding.tree_shardings(abstract_state.params, mesh),
        opt_state=sharding.tree_shardings(abstract_state.opt_state, mesh),
    )


def make_train_step(graphdef, tx, tokenizer, schedule, objective, *, seed: int, state_shardings, mesh) -> Callable:
    """A jitted (state, images uint8 [B,H,W,C], labels [B]) -> (state, metrics) step; the state is donated.

    The step's randomness is fold_in(seed, step), so a resumed run draws exactly what an uninterrupted one
    would, with no RNG in the checkpoint.
    """
    base_key = jax.random.key(seed)

    def step_fn(state: TrainState, images: jax.Array, labels: jax.Array):
        rng = jax.random.fold_in(base_key, state.step)
        x0 = images.astype(jnp.float32) / 127.5 - 1.0

        def loss_fn(params):
            model = nnx.merge(graphdef, params)
            loss, _ = objectives.loss(model, objective, tokenizer, schedule, x0, labels, rng)
            return loss

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        grad_norm = optax.global_norm(grads)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        # Divergence guard: a step with a non-finite loss or gradient leaves params and optimizer untouched, so
        # a checkpoint can never hold NaNs; the loop stops on it or (train.skip_nonfinite) counts and goes on.
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        keep = lambda new, old: jnp.where(finite, new, old)  # noqa: E731
        params = jax.tree.map(keep, params, state.params)
        opt_state = jax.tree.map(keep, opt_state, state.opt_state)
        metrics = {"loss": loss, "grad_norm": grad_norm, "nonfinite": (~finite).astype(jnp.int32)}
        return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics

    return jax.jit(
        step_fn,
        in_shardings=(state_shardings, sharding.batch_sharding(mesh), sharding.batch_sharding(mesh)),
        out_shardings=(state_shardings, sharding.replicated(mesh)),
        donate_argnums=(0,),
    )
