"""The config schema: every field of a run with its default (the paper's l-DAE recipe at ImageNet scale), the
values and ranges each field may take, and the names fields had before they were renamed.

Experiment files (`configs/*.py`) start from `defaults()` and change a few fields. Where the paper states a
value it is used (docs/paper_notes.md gives the section); a field the paper leaves open is marked [open] with
the reason for the value chosen.
"""

from __future__ import annotations

import math

import ml_collections


def defaults() -> ml_collections.ConfigDict:
    """The l-DAE recipe at ImageNet scale (ViT-1/2L + 1/2L, 400 epochs, batch 2048)."""
    c = ml_collections.ConfigDict()
    c.seed = 0

    c.data = ml_collections.ConfigDict()
    c.data.name = "imagenet2012"  # 'fashion_mnist_local' | 'cifar10' | 'imagenet2012'
    c.data.data_dir = ""  # '' = TFDS default ($TFDS_DATA_DIR or ~/tensorflow_datasets)
    c.data.prepared_dir = ""  # '' = read the source dataset; else a data/prepared.py cache of centre crops there
    c.data.image_size = 256
    c.data.augment = "random_resized_crop"  # docs/paper_notes.md 1.6: +0.5 over center crop
    c.data.flip = False  # [open] DiT flips; the paper does not say
    c.data.train_split = "train"
    c.data.eval_split = "validation"
    # A centre-crop run whose decoded split takes at most this many MB per host reads it once and cuts batches
    # from memory (no epoch-boundary stall); 0 = always stream through tf.data (ldae_jax/data/in_memory.py).
    c.data.in_memory_mb = 1024

    # The tokenizer: its kind, the geometry every kind shares, then one group per kind for its own recipe.
    c.tokenizer = ml_collections.ConfigDict()
    c.tokenizer.kind = "pca"  # 'pca' | 'patch_ae' | 'patch_vae' | 'pixel' | 'conv_vae' (ldae_jax/tokenizers/)
    c.tokenizer.patch_size = 16  # pixels per token side (D = patch_size^2 x channels); conv_vae: 2 x stride
    c.tokenizer.d = 32  # [open] latent dims per token; Table 3 starts at 65.1, the d = 32 column of Table 2
    c.tokenizer.num_patches = 1_000_000  # [open] train patches drawn to fit the PCA or train a patch AE/VAE
    c.tokenizer.pca = ml_collections.ConfigDict()
    c.tokenizer.pca.whiten = False  # [open] the paper's V is a plain orthonormal basis
    c.tokenizer.patch_ae = ml_collections.ConfigDict()  # 'patch_ae' and 'patch_vae' ([NOT FOUND] in the paper)
    c.tokenizer.patch_ae.steps = 2000
    c.tokenizer.patch_ae.batch_size = 4096  # patches per step
    c.tokenizer.patch_ae.lr = 3e-2  # Adam, cosine decay to 0
    c.tokenizer.patch_ae.kl_weight = 1e-3  # patch_vae: weight of KL[q(z|x) | N(0, I)] against the reconstruction
    c.tokenizer.conv_vae = ml_collections.ConfigDict()  # Table 1: d = 4 x latent channels (2 x 2 positions a token)
    c.tokenizer.conv_vae.stride = 8
    c.tokenizer.conv_vae.width = 128  # [open] channels of every level (LDM's KL-VAE starts at 128 and grows)
    c.tokenizer.conv_vae.steps = 50_000  # [open] the retrained tokenizers' recipes are [NOT FOUND]
    c.tokenizer.conv_vae.batch_size = 64
    c.tokenizer.conv_vae.lr = 1e-4  # Adam (b1 0.5, b2 0.9, as VQGAN/LDM)
    c.tokenizer.conv_vae.kl_weight = 1e-3  # [open]
    c.tokenizer.conv_vae.checkpoint_every = 1000  # steps between saves of its training state (resumed on restart)
    c.tokenizer.conv_vae.perceptual_weight = 0.0  # > 0: LPIPS-style VGG16 loss (Table 1 rows 1-2; LDM uses 1.0)
    c.tokenizer.conv_vae.perceptual_weights = ""  # the user's VGG16 .npz (ldae_jax/tokenizers/perceptual.py)
    c.tokenizer.conv_vae.adversarial_weight = 0.0  # > 0: patch-discriminator loss (Table 1 rows 1-3; LDM 0.5)
    c.tokenizer.conv_vae.adversarial_start = 0  # step at which the discriminator and its loss start (LDM: 50001)

    c.objective = ml_collections.ConfigDict()
    c.objective.kind = "denoise"  # 'denoise': the ladder's objectives below | 'mae': MAE (the `mae` section)
    c.objective.input = "image"  # 'image': decode(z_t) (Table 3 step 3 onward) | 'latent': z_t
    c.objective.output = "image"  # 'image': patches, mapped to latents by encode (step 4 onward) | 'latent'
    c.objective.target = "original"  # 'original' (Eq. 4, l-DAE) | 'clean' (z0, Eq. 3) | 'eps' (noise, Eq. 2)
    c.objective.w_res = 0.1  # target 'original': weight of the tokenizer's residual subspace in the loss (Eq. 4)
    c.objective.class_conditional = False  # Table 1 row 1: the label embedding is added to the t embedding
    c.objective.label_dropout = 0.1  # DiT's rate of null labels when class-conditional
    c.objective.learn_sigma = False  # DiT's learned variance (2x output, hybrid loss); [NOT FOUND] for Table 1

    # MAE (objective.kind='mae', models/mae.py): its masking and its own decoder; the encoder is `model`'s (its
    # width, heads and encoder_depth; model.decoder_depth is l-DAE's decoder and not used by MAE).
    # MAE's published ViT-B/L recipe: 75% masked, normalised-pixel target, a decoder of 8 blocks of width 512.
    c.mae = ml_collections.ConfigDict()
    c.mae.mask_ratio = 0.75
    c.mae.norm_pix_loss = True
    c.mae.decoder_width = 512
    c.mae.decoder_depth = 8
    c.mae.decoder_heads = 16

    c.noise = ml_collections.ConfigDict()
    c.noise.schedule = "sigma_linear"  # gamma = 1, sigma linear in [0, sqrt 2] (Table 3 step 2 onward)
    c.noise.T = 1000
    c.noise.sigma_max = math.sqrt(2)
    c.noise.single_sigma = math.sqrt(1 / 3)  # for schedule='single_level'; [open] sqrt(1/3) vs 1/3

    c.model = ml_collections.ConfigDict()
    c.model.size = "half_L"
    c.model.width = 0  # 0 = from size
    c.model.num_heads = 0
    c.model.encoder_depth = 0
    c.model.decoder_depth = -1  # -1 = from size
    c.model.mlp_ratio = 4.0
    c.model.cond_hidden_ratio = 0.25  # the paper's conditioning MLP at 1/4 width
    c.model.adaln_zero = False  # DiT's residual gates; the l-DAE text describes LN scale and bias only
    # Compute precision; parameters stay float32. 'auto': bfloat16 on TPU, GPU and CPUs with native bf16 dot
    # products (AVX512_BF16, AMX), float32 on other CPUs (ldae_jax/runtime/precision.py).
    c.model.dtype = "auto"
    c.model.remat = False  # recompute block activations in the backward pass (less memory, more compute)
    c.model.scan_layers = False  # stack the blocks and lax.scan over them (compile time independent of depth)
    c.model.attention = "xla"  # 'xla': jax.nn.dot_product_attention | 'einsum': written out, heads-first

    c.train = ml_collections.ConfigDict()
    c.train.batch_size = 2048
    c.train.num_epochs = 400.0
    c.train.warmup_epochs = 100.0
    c.train.total_steps = 0  # > 0 overrides num_epochs
    c.train.base_lr = 1e-4  # lr = base_lr * batch / 256
    c.train.b1 = 0.9
    c.train.b2 = 0.95  # [open] MAE's pre-training value; DiT uses 0.999
    c.train.weight_decay = 0.0
    c.train.grad_clip = 0.0  # 0 = off; the paper reports none
    c.train.skip_nonfinite = False  # True: skip (and count) steps with a non-finite loss/gradient; False: stop
    c.train.log_every = 100
    c.train.checkpoint_every = 1000
    c.train.keep_checkpoints = 3

    c.mesh = ml_collections.ConfigDict()
    c.mesh.data = -1  # -1 = all devices not used by fsdp
    c.mesh.fsdp = 1

    c.probe = ml_collections.ConfigDict()
    c.probe.t = 10  # fixed t of 1000 at probe time, clean input (Appendix A default)
    c.probe.noisy = False
    c.probe.block = 0  # 0 = model.encoder_depth; else the output of block k (1-based) is probed
    c.probe.epochs = 90
    c.probe.batch_size = 16384
    c.probe.optimizer = "adam"  # on cached features; 'lars' with base_lr 0.1 is MAE's protocol
    c.probe.base_lr = 1e-3  # lr = base_lr * batch / 256
    c.probe.baselines = "random_init,pixels"  # also probed with the same head and budget; '' for none
    c.probe.feature_batch_size = 1024
    c.probe.mode = "cached"  # 'cached': features once, head on device (fast) | 'paper': MAE's protocol below
    c.probe.lars_base_lr = 0.1  # paper mode: LARS (momentum 0.9), lr = 0.1 * batch / 256 (MAE; docs/paper_notes.md 4.1)
    c.probe.warmup_epochs = 10  # paper mode: linear warm-up, then cosine
    c.probe.checkpoint_every = 1000  # paper mode: steps between saves of the head (resumed on restart)

    # The weighted kNN evaluator (ldae_jax/evaluate/knn.py): inside pre-training every `every_steps` steps on the
    # probe's features of the first `train_examples` of data.train_split against the first `test_examples` of
    # data.eval_split; the probe also reports it on its full features. DINO's k and temperature.
    c.knn = ml_collections.ConfigDict()
    c.knn.every_steps = 5000  # 0 = off; at ImageNet scale 50 evaluations of 60k images cost ~0.2% of the run
    c.knn.train_examples = 50_000
    c.knn.test_examples = 10_000
    c.knn.k = 20
    c.knn.temperature = 0.07

    c.finetune = ml_collections.ConfigDict()  # end-to-end fine-tuning (docs/paper_notes.md 4.2; `--mode=finetune`)
    c.finetune.init = ""  # '' = the workdir's latest pre-training checkpoint; or an exported .safetensors file
    c.finetune.t = 10  # the fixed t folded into the LayerNorms; [NOT FOUND], the probe's default
    c.finetune.epochs = 100.0
    c.finetune.total_steps = 0  # > 0 overrides epochs
    c.finetune.batch_size = 1024
    c.finetune.base_lr = 1e-3  # lr = base_lr * batch / 256: 4e-3 at batch 1024 (the paper's)
    c.finetune.warmup_epochs = 5.0  # [NOT FOUND]; MAE's
    c.finetune.weight_decay = 0.05
    c.finetune.b1 = 0.9
    c.finetune.b2 = 0.999  # [NOT FOUND] optimizer; AdamW as MAE
    c.finetune.layer_decay = 0.75  # lr of block i scaled by decay^(depth + 1 - layer); paper: 0.85 B, 0.65 L
    c.finetune.drop_path = 0.1
    c.finetune.mixup = 0.8
    c.finetune.cutmix = 1.0
    c.finetune.label_smoothing = 0.1  # [NOT FOUND]; MAE's
    c.finetune.rand_augment = "9,0.5"  # magnitude, magnitude std (2 ops per image); '' = off
    c.finetune.ema = 0.9999  # EMA of the weights, evaluated beside the raw weights; 0 = off
    c.finetune.log_every = 100
    c.finetune.checkpoint_every = 1000
    c.finetune.eval_batch_size = 1024

    c.fid = ml_collections.ConfigDict()  # generation quality (Table 1's FID-50K column; `--mode=fid`)
    c.fid.inception_weights = ""  # the user's Inception-v3 .npz (see ldae_jax/evaluate/inception.py)
    c.fid.num_samples = 50_000  # generated images (FID-50K)
    c.fid.reference = "train"  # 'train' | 'eval': the split the generated images are compared with
    c.fid.reference_examples = 50_000  # the first examples of that split (fewer if it is smaller)
    c.fid.num_steps = 250  # [NOT FOUND] in the paper; DiT's evaluation: 250 DDPM steps
    c.fid.eta = 1.0  # 1 = DDPM (uses a learned variance), 0 = DDIM
    c.fid.guidance = 0.0  # classifier-free guidance scale for class-conditional rows; [NOT FOUND]
    c.fid.batch_size = 256
    return c


# Fields with a fixed set of values (tokenizer.kind, data.name and model.size are checked against the tokenizer
# registry, the dataset list and the model sizes themselves).
CHOICES = {
    "data.augment": ("center_crop", "random_resized_crop"),
    "objective.kind": ("denoise", "mae"),
    "objective.input": ("image", "latent"),
    "objective.output": ("image", "latent"),
    "objective.target": ("original", "clean", "eps"),
    "noise.schedule": ("ddpm_linear_beta", "linear_gamma_sq", "sigma_linear", "single_level"),
    "model.dtype": ("auto", "float32", "bfloat16"),
    "model.attention": ("xla", "einsum"),
    "probe.mode": ("cached", "paper"),
    "probe.optimizer": ("adam", "lars"),
    "fid.reference": ("train", "eval"),
}

# Ranges in interval notation: '[a, b]' closed, '(a, b)' open, 'inf' unbounded. Counts that must be positive,
# rates in [0, 1), and so on; a field not listed here may take any value of its type.
RANGES = {
    "tokenizer.patch_size": "[1, inf)", "tokenizer.d": "[1, inf)", "tokenizer.num_patches": "[2, inf)",
    "tokenizer.patch_ae.steps": "[1, inf)", "tokenizer.patch_ae.batch_size": "[1, inf)",
    "tokenizer.patch_ae.lr": "(0, inf)", "tokenizer.patch_ae.kl_weight": "[0, inf)",
    "tokenizer.conv_vae.stride": "[2, inf)", "tokenizer.conv_vae.width": "[1, inf)",
    "tokenizer.conv_vae.steps": "[1, inf)", "tokenizer.conv_vae.batch_size": "[1, inf)",
    "tokenizer.conv_vae.lr": "(0, inf)", "tokenizer.conv_vae.kl_weight": "[0, inf)",
    "tokenizer.conv_vae.checkpoint_every": "[1, inf)", "tokenizer.conv_vae.perceptual_weight": "[0, inf)",
    "tokenizer.conv_vae.adversarial_weight": "[0, inf)", "tokenizer.conv_vae.adversarial_start": "[0, inf)",
    "data.image_size": "[1, inf)", "data.in_memory_mb": "[0, inf)",
    "objective.w_res": "[0, inf)", "objective.label_dropout": "[0, 1)",
    "mae.mask_ratio": "(0, 1)", "mae.decoder_width": "[4, inf)", "mae.decoder_depth": "[1, inf)",
    "mae.decoder_heads": "[1, inf)",
    "noise.T": "[1, inf)", "noise.sigma_max": "(0, inf)", "noise.single_sigma": "(0, inf)",
    "model.width": "[0, inf)", "model.num_heads": "[0, inf)", "model.encoder_depth": "[0, inf)",
    "model.decoder_depth": "[-1, inf)", "model.mlp_ratio": "(0, inf)", "model.cond_hidden_ratio": "(0, inf)",
    "train.batch_size": "[1, inf)", "train.num_epochs": "[0, inf)", "train.warmup_epochs": "[0, inf)",
    "train.total_steps": "[0, inf)", "train.base_lr": "(0, inf)", "train.b1": "[0, 1)", "train.b2": "[0, 1)",
    "train.weight_decay": "[0, inf)", "train.grad_clip": "[0, inf)", "train.log_every": "[1, inf)",
    "train.checkpoint_every": "[1, inf)", "train.keep_checkpoints": "[1, inf)",
    "mesh.data": "[-1, inf)", "mesh.fsdp": "[-1, inf)",
    "probe.t": "[0, inf)", "probe.block": "[0, inf)", "probe.epochs": "[1, inf)", "probe.batch_size": "[1, inf)",
    "probe.base_lr": "(0, inf)", "probe.feature_batch_size": "[1, inf)", "probe.lars_base_lr": "(0, inf)",
    "probe.warmup_epochs": "[0, inf)", "probe.checkpoint_every": "[1, inf)",
    "knn.every_steps": "[0, inf)", "knn.train_examples": "[1, inf)", "knn.test_examples": "[1, inf)",
    "knn.k": "[1, inf)", "knn.temperature": "(0, inf)",
    "finetune.t": "[0, inf)", "finetune.epochs": "[0, inf)", "finetune.total_steps": "[0, inf)",
    "finetune.batch_size": "[1, inf)", "finetune.base_lr": "(0, inf)", "finetune.warmup_epochs": "[0, inf)",
    "finetune.weight_decay": "[0, inf)", "finetune.b1": "[0, 1)", "finetune.b2": "[0, 1)",
    "finetune.layer_decay": "(0, 1]", "finetune.drop_path": "[0, 1)", "finetune.mixup": "[0, inf)",
    "finetune.cutmix": "[0, inf)", "finetune.label_smoothing": "[0, 1)", "finetune.ema": "[0, 1)",
    "finetune.log_every": "[1, inf)", "finetune.checkpoint_every": "[1, inf)",
    "finetune.eval_batch_size": "[1, inf)",
    "fid.num_samples": "[2, inf)", "fid.reference_examples": "[2, inf)", "fid.num_steps": "[1, inf)",
    "fid.eta": "[0, 1]", "fid.guidance": "[0, inf)", "fid.batch_size": "[1, inf)",
}

# Old name -> new name(s), for workdirs (config.json, checkpoint records) written before the tokenizer fields
# moved out of `pca.*`. Reading an old workdir renames its fields; a config or command line that uses an old
# name is refused with the new one.
RENAMED = {
    "pca.patch_size": ("tokenizer.patch_size",),
    "pca.d": ("tokenizer.d",),
    "pca.num_patches": ("tokenizer.num_patches",),
    "pca.whiten": ("tokenizer.pca.whiten",),
    "pca.w_res": ("objective.w_res",),
    "tokenizer.ae_steps": ("tokenizer.patch_ae.steps",),
    "tokenizer.ae_batch_size": ("tokenizer.patch_ae.batch_size",),
    "tokenizer.ae_lr": ("tokenizer.patch_ae.lr",),
    "tokenizer.kl_weight": ("tokenizer.patch_ae.kl_weight", "tokenizer.conv_vae.kl_weight"),
    "tokenizer.conv_stride": ("tokenizer.conv_vae.stride",),
    "tokenizer.conv_width": ("tokenizer.conv_vae.width",),
    "tokenizer.conv_steps": ("tokenizer.conv_vae.steps",),
    "tokenizer.conv_batch_size": ("tokenizer.conv_vae.batch_size",),
    "tokenizer.conv_lr": ("tokenizer.conv_vae.lr",),
    "tokenizer.conv_checkpoint_every": ("tokenizer.conv_vae.checkpoint_every",),
    "tokenizer.perceptual_weight": ("tokenizer.conv_vae.perceptual_weight",),
    "tokenizer.perceptual_weights": ("tokenizer.conv_vae.perceptual_weights",),
    "tokenizer.adversarial_weight": ("tokenizer.conv_vae.adversarial_weight",),
    "tokenizer.adversarial_start": ("tokenizer.conv_vae.adversarial_start",),
}
