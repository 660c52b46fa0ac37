#!/usr/bin/env bash
# The evaluation protocols side by side on one small l-DAE checkpoint (Fashion-MNIST, CPU): the fast cached
# probe, the paper-protocol probe (same epochs and batch), and fine-tuning. Results: docs/protocols_small.md.
# Needs the ladder run of t3.step5 first:
#   .venv/bin/python -m ldae_jax.ladder --rows=t3.step5 --scale=small --workdir=workdirs/ladder_small
set -euo pipefail
cd "$(dirname "$0")/.."
source launch/env.sh
WORKDIR=${WORKDIR:-workdirs/ladder_small/t3.step5/seed0}
CONFIG=configs/ladder/rows.py:row=t3.step5,scale=small
run() { .venv/bin/python -m ldae_jax.main --config="$CONFIG" --workdir="$WORKDIR" "$@"; }
run --mode=probe --config.probe.mode=cached --probe_file=probe_cached.json
run --mode=probe --config.probe.mode=paper --probe_file=probe_paper.json
# Fine-tuning: the paper's recipe with the length scaled to this data (10 epochs, 1 warm-up, batch 256).
run --mode=finetune --config.finetune.epochs=10 --config.finetune.warmup_epochs=1 \
  --config.finetune.batch_size=256 --config.finetune.eval_batch_size=1000 --config.finetune.log_every=200
# The same length without Mixup/CutMix/RandAugment and with a shorter EMA (a copy of the run, so the two
# fine-tunings keep separate checkpoints):
LIGHT=${LIGHT:-workdirs/protocols_light}
mkdir -p "$LIGHT" && cp -rn "$WORKDIR"/{checkpoints,pca.npz,config.json} "$LIGHT"/
WORKDIR=$LIGHT run --mode=finetune --config.finetune.epochs=10 --config.finetune.warmup_epochs=1 \
  --config.finetune.batch_size=256 --config.finetune.eval_batch_size=1000 --config.finetune.log_every=200 \
  --config.finetune.mixup=0 --config.finetune.cutmix=0 --config.finetune.rand_augment= --config.finetune.ema=0.999
