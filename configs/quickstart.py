"""Quickstart: l-DAE on the embedded Fashion-MNIST (60k/10k real images), on a laptop CPU.

    python -m ldae_jax.main --config=configs/quickstart.py --workdir=workdirs/quickstart

Fits a 7x7 patch PCA (d=16 of D=49), pre-trains a 3+3-block width-128 l-DAE for 1200 steps at batch 256,
then linear-probes it next to two baselines (the same network at random init, and raw pixels), classifies
each by weighted kNN (also every 300 steps during training) and prints a table. About 7 minutes on 2 CPU
cores; see the README for the measured numbers.
Variants (`--config=configs/quickstart.py:tiny`): `tiny` runs 20 steps on 2k images, for tests.
"""

from ldae_jax import config_lib, schema


def get_config(arg: str = ""):
    args = config_lib.parse_arg(arg, tiny=False)
    c = schema.defaults()
    c.data.name = "fashion_mnist_local"
    c.data.image_size = 28
    c.data.augment = "center_crop"
    c.data.eval_split = "test"
    c.tokenizer.patch_size = 7  # 16 tokens of D = 49
    c.tokenizer.d = 16
    c.tokenizer.num_patches = 200_000
    c.model.size = "mini"
    c.model.dtype = "auto"  # bfloat16 where this CPU multiplies it natively (1.4x the step), else float32
    # model.attention stays "xla": which of xla/einsum is faster depends on the CPU (bench/README.md)
    c.train.batch_size = 256
    c.train.total_steps = 1200
    c.train.warmup_epochs = 1.0
    c.train.base_lr = 1e-3
    c.train.log_every = 100
    c.train.checkpoint_every = 400
    c.probe.epochs = 30
    c.probe.batch_size = 1024
    c.probe.feature_batch_size = 1000
    c.knn.update(every_steps=300, train_examples=5000, test_examples=1000)  # 4 evaluations, ~2% of training
    if args.tiny:
        c.data.train_split = "train[:2048]"  # TFDS slicing
        c.data.eval_split = "test[:500]"
        c.tokenizer.num_patches = 5_000
        c.model.width = 32
        c.model.num_heads = 2
        c.model.encoder_depth = 1
        c.model.decoder_depth = 1
        c.train.batch_size = 64
        c.train.total_steps = 20
        c.train.log_every = 5
        c.train.checkpoint_every = 10
        c.probe.epochs = 3
        c.probe.batch_size = 256
        c.probe.feature_batch_size = 250
        c.knn.update(every_steps=10, train_examples=500, test_examples=200)
    return c
