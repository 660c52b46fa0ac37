"""The longer Fashion-MNIST run (about an hour on 2 CPU cores): a deeper, wider l-DAE than the quickstart.

    python -m ldae_jax.main --config=configs/fashion_mnist.py --workdir=workdirs/fashion_mnist

ViT-Tiny width (192, 3 heads), 4 + 4 blocks, 7x7 patches with a d=16 PCA latent, 3000 steps at batch 256
(12.8 epochs). The README's results table gives the measured probe accuracy next to its baselines.
Variant `d=N` changes the latent dimension, e.g. `configs/fashion_mnist.py:d=8`.
"""

from configs import quickstart
from ldae_jax import config_lib


def get_config(arg: str = ""):
    args = config_lib.parse_arg(arg, d=16)
    c = quickstart.get_config()
    c.tokenizer.d = args.d
    c.model.size = "tiny"
    c.model.encoder_depth = 4
    c.model.decoder_depth = 4
    c.train.total_steps = 3000
    c.train.checkpoint_every = 500
    c.probe.epochs = 50
    c.knn.every_steps = 500
    return c
