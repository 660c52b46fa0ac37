"""End-to-end fine-tuning of l-DAE's encoder for classification (docs/paper_notes.md 4.2; MAE's protocol).

The encoder of the run's latest pre-training checkpoint (or an exported .safetensors file) is folded at the
fixed `finetune.t` into a plain ViT (`models.fold`), given a zero-initialised head, and trained with AdamW,
layer-wise lr decay, drop path, Mixup / CutMix with label smoothing, RandAugment, and an EMA of the weights.
Everything lives under `workdir/finetune/` (orbax checkpoints, metrics.jsonl); the result is
`workdir/finetune.json` with the top-1 of the final weights and of their EMA. Resumes like pre-training: the
data position and the step's randomness are functions of the step.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
from etils import epath
from flax import nnx
from jax.experimental import multihost_utils

from ldae_jax import config_lib, objectives
from ldae_jax.data import augment, pipeline, splits
from ldae_jax.evaluate import mixup
from ldae_jax.errors import UserError
from ldae_jax.models import classifier, fold, timm_format
from ldae_jax.runtime import preemption, timings
from ldae_jax.train import checkpoint, metrics, sharding


def check_config(config, local: bool = True) -> None:
    """The RandAugment text and the init file, before any data is read (the fields' ranges are the schema's)."""
    f = config.finetune
    rand_augment(config)
    if local and f.init and not epath.Path(f.init).is_file():
        raise UserError(f"finetune.init={f.init!r} does not exist; give an exported .safetensors file, or '' for "
                        "the workdir's latest pre-training checkpoint")


def rand_augment(config) -> tuple[float, float] | None:
    """finetune.rand_augment 'magnitude,std' -> (magnitude, std), '' -> None."""
    text = config.finetune.rand_augment
    if not text:
        return None
    try:
        magnitude, std = (float(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"finetune.rand_augment={text!r}: write 'magnitude,std' such as '9,0.5', or '' for none")
    if not 0 <= magnitude <= 10 or std < 0:
        raise UserError(f"finetune.rand_augment={text!r}: magnitude must be in [0, 10] and std >= 0")
    return magnitude, std


def optimizer(config, params, depth: int, lr_fn) -> optax.GradientTransformation:
    """AdamW whose update of each parameter is scaled by layer_decay^(depth + 1 - layer) (BEiT/MAE); no weight
    decay on biases, norms and the position embedding."""
    f = config.finetune
    scales = jax.tree.map(lambda i: f.layer_decay ** (depth + 1 - i), classifier.layer_ids(params, depth))

    def decays(tree):
        return jax.tree_util.tree_map_with_path(lambda path, p: p.ndim > 1 and path[0].key != "pos_embed", tree)

    def scale(updates, state, params=None):
        return jax.tree.map(lambda u, s: u * s, updates, scales), state

    return optax.chain(optax.adamw(lr_fn, b1=f.b1, b2=f.b2, weight_decay=f.weight_decay, mask=decays),
                       optax.GradientTransformation(lambda _: optax.EmptyState(), scale))


def initial_params(exp, num_classes: int, ccfg) -> dict:
    """The folded encoder of the latest pre-training checkpoint, or the parameters of `finetune.init`."""
    f = exp.config.finetune
    if f.init:
        params, loaded_cfg, *_ = timm_format.load_safetensors(f.init)
        if (loaded_cfg.width, loaded_cfg.depth, loaded_cfg.in_dim) != (ccfg.width, ccfg.depth, ccfg.in_dim):
            raise UserError(f"finetune.init={f.init!r} holds a width-{loaded_cfg.width}, {loaded_cfg.depth}-block "
                            f"encoder of {loaded_cfg.in_dim}-value patches; the config builds width {ccfg.width}, "
                            f"{ccfg.depth} blocks, {ccfg.in_dim} values")
        if loaded_cfg.num_classes != num_classes:  # a new head for this dataset
            params = {**params, "head": {"kernel": np.zeros((ccfg.width, num_classes), np.float32),
                                         "bias": np.zeros((num_classes,), np.float32)}}
        return params
    _, pre = exp.restore_params()
    pre = multihost_utils.process_allgather(pre, tiled=True)
    return fold.fold_encoder(pre, exp.model_cfg, t=f.t, num_blocks=ccfg.depth, num_classes=num_classes)


def make_step(graphdef, tx, input_fn, *, num_classes: int, config, shardings):
    f = config.finetune
    base_key = jax.random.key(config.seed + 7)

    def step(state, images, labels):
        rng = jax.random.fold_in(base_key, state["step"])
        mix_rng, drop_rng = jax.random.split(rng)
        x0 = images.astype(jnp.float32) / 127.5 - 1.0
        x0, targets = mixup.mixup_cutmix(mix_rng, x0, labels, num_classes, mixup_alpha=f.mixup,
                                           cutmix_alpha=f.cutmix, label_smoothing=f.label_smoothing)
        tokens = input_fn(x0)

        def loss_fn(params):
            logits = nnx.merge(graphdef, params)(tokens, drop_rng)
            return optax.softmax_cross_entropy(logits, targets).mean()

        loss, grads = jax.value_and_grad(loss_fn)(state["params"])
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        ema = jax.tree.map(lambda e, p: f.ema * e + (1 - f.ema) * p, state["ema"], params)
        return {"step": state["step"] + 1, "params": params, "opt_state": opt_state, "ema": ema}, loss

    return jax.jit(step, in_shardings=(shardings, None, None), out_shardings=(shardings, None), donate_argnums=0)


def evaluate(run, graphdef, input_fn, trees: dict, batch_size: int) -> dict:
    """Top-1 (%) of each parameter tree in `trees` on the eval split (one centre crop, padding masked)."""
    predict = jax.jit(lambda p, images: jnp.argmax(nnx.merge(graphdef, p)(
        input_fn(images.astype(jnp.float32) / 127.5 - 1.0)), -1))
    batch_size = -(-batch_size // run.mesh.size) * run.mesh.size
    correct, total = {k: 0 for k in trees}, 0
    split = run.config.data.eval_split
    countdown = timings.Countdown(f"fine-tune: evaluating ({', '.join(trees)})",
                                  splits.num_examples(run.builder, split), "images")
    for local in pipeline.eval_batches(run.builder, split=run.config.data.eval_split, global_batch_size=batch_size,
                                       image_size=run.config.data.image_size,
                                       in_memory_mb=run.config.data.in_memory_mb):
        batch = sharding.global_batch(local, run.mesh)
        y, m = (np.asarray(multihost_utils.process_allgather(a, tiled=True)) for a in (batch["label"], batch["mask"]))
        total += int(m.sum())
        for name, params in trees.items():
            pred = np.asarray(multihost_utils.process_allgather(predict(params, batch["image"]), tiled=True))
            correct[name] += int(((pred == y) & m).sum())
        countdown.update(total)
    countdown.finish(f"{total} images")
    return {name: 100.0 * c / total for name, c in correct.items()}


def finetune(exp) -> dict:
    """Fine-tune the run `exp` to finetune's length (resuming), evaluate, write workdir/finetune.json; returns
    its contents."""
    run, config, workdir = exp, exp.config, exp.workdir
    f = config.finetune
    num_classes = run.builder.info.features["label"].num_classes
    depth = run.model_cfg.encoder_depth
    ccfg = fold.classifier_config(run.model_cfg, num_blocks=depth, num_classes=num_classes, drop_path=f.drop_path)
    graphdef = nnx.graphdef(nnx.eval_shape(lambda: classifier.ViTClassifier(ccfg, rngs=nnx.Rngs(0))))
    num_train = splits.num_examples(run.builder, config.data.train_split)
    total = config_lib.steps(num_train, f.batch_size, epochs=f.epochs, total_steps=f.total_steps)
    warmup = min(config_lib.steps(num_train, f.batch_size, epochs=f.warmup_epochs), total - 1)
    lr_fn = optax.warmup_cosine_decay_schedule(0.0, f.base_lr * f.batch_size / 256, warmup, total, 0.0)

    def input_fn(x0):  # the clean-input tokens the encoder was pre-trained on (patches, or latents)
        return objectives.network_input(run.objective, run.tokenizer, run.schedule, x0, None, None)

    root = epath.Path(workdir) / "finetune"
    root.mkdir(parents=True, exist_ok=True)
    ckpt = checkpoint.Checkpointer(str(root / "checkpoints"), keep=2)
    meta = exp.meta()  # the pre-training it starts from, and its recipe (changes refused)
    meta["fingerprint"].update({f"finetune.{k}": v for k, v in f.items()
                                if k not in ("log_every", "checkpoint_every", "eval_batch_size")})
    params = None
    if ckpt.latest_step() is None:
        params = initial_params(exp, num_classes, ccfg)
    abstract_params = jax.eval_shape(
        lambda: nnx.state(classifier.ViTClassifier(ccfg, rngs=nnx.Rngs(0))).to_pure_dict())
    tx = optimizer(config, abstract_params, depth, lr_fn)
    abstract = {"step": jax.ShapeDtypeStruct((), jnp.int32), "params": abstract_params,
                "opt_state": jax.eval_shape(tx.init, abstract_params), "ema": abstract_params}
    shardings = {"step": sharding.replicated(run.mesh), "params": sharding.tree_shardings(abstract_params, run.mesh),
                 "opt_state": sharding.tree_shardings(abstract["opt_state"], run.mesh),
                 "ema": sharding.tree_shardings(abstract_params, run.mesh)}
    if params is None:
        state = checkpoint.restore_latest(ckpt, abstract, shardings, meta, str(root))
        if jax.process_index() == 0:
            print(f"Resuming fine-tuning at step {int(state['step'])}", flush=True)
    else:
        params = jax.device_put(params, shardings["params"])
        state = jax.jit(lambda p: {"step": jnp.zeros((), jnp.int32), "params": p, "opt_state": tx.init(p), "ema": p},
                        out_shardings=shardings)(params)
    start = int(state["step"])
    if jax.process_index() == 0 and start < total:  # the first line comes after the first log_every steps
        print(f"Fine-tuning {depth} block{'s' * (depth != 1)} for {total} steps at batch {f.batch_size} (a line "
              f"every {f.log_every} steps; the first step compiles)", flush=True)
    step_fn = make_step(graphdef, tx, input_fn, num_classes=num_classes, config=config, shardings=shardings)
    batches = pipeline.train_iterator(run.builder, split=config.data.train_split, global_batch_size=f.batch_size,
                                      image_size=config.data.image_size, augment="random_resized_crop", flip=True,
                                      seed=config.seed + 7, start_step=start, rand_augment=rand_augment(config))
    log, watch = metrics.MetricsLog(str(root), resume_step=start), preemption.PreemptionWatch()
    float(lr_fn(start))  # the schedule's eager ops compile at their first call: not in the first interval
    progress = metrics.Progress(total, f.batch_size, start)
    pending, preempted = [], False
    try:
        for i in range(start, total):
            batch = sharding.global_batch({k: v for k, v in next(batches).items() if k in ("image", "label")},
                                          run.mesh)
            state, loss = step_fn(state, batch["image"], batch["label"])
            pending.append(loss)
            done = i + 1
            if i == start:  # the first step compiled and started the input pipeline: not in images/s or the ETA
                jax.block_until_ready(loss)
                progress.started(done)
            preempted = watch.reached(done)
            if done % f.log_every == 0 or done == total or preempted:
                scalars = {"loss": float(np.mean(jax.device_get(pending))), "lr": float(lr_fn(done - 1))}
                speed = {**progress.report(done), "interval_steps": len(pending)}  # fewer when preempted
                pending = []
                log.write(done, {**scalars, **speed})
                if jax.process_index() == 0:
                    print("fine-tune " + metrics.log_line(done, total, scalars, speed), flush=True)
            if done % f.checkpoint_every == 0 or done == total or preempted:
                ckpt.save(done, state, meta)
            if preempted and done < total:
                ckpt.wait()
                if jax.process_index() == 0:
                    print(preemption.line(f"fine-tuning checkpoint saved at step {done}; rerun to resume"),
                          flush=True)
                return {"preempted": True, "step": done}
    finally:
        watch.close()
        ckpt.close()
        log.close()
    trees = {"final": state["params"]}
    if f.ema > 0:
        trees["ema"] = state["ema"]
    top1 = evaluate(run, graphdef, input_fn, trees, f.eval_batch_size)
    out = {"step": int(state["step"]), "top1": top1, "num_blocks": depth, "t": f.t,
           "protocol": f.to_dict()}
    if jax.process_index() == 0:
        (epath.Path(workdir) / "finetune.json").write_text(json.dumps(out, indent=2))
        shown = ", ".join(f"{k} {v:.2f}%" for k, v in top1.items())
        print(f"Fine-tuned {depth} block{'s' * (depth != 1)} for {total} steps: top-1 {shown}", flush=True)
    return out

