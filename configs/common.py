"""Pieces shared by every config: the default l-DAE recipe as a ConfigDict, and `parse_arg`.

The defaults are the paper's l-DAE recipe where it states one (PAPER.md 2-4); each field the paper leaves
open is marked [open] with the reason for the value chosen.
"""

import math

import ml_collections


def parse_arg(arg: str, **defaults) -> ml_collections.ConfigDict:
    """'a=1,b=x,flag' -> ConfigDict(a=1, b='x', flag=True); keys must be among `defaults`."""
    out = ml_collections.ConfigDict(defaults)
    for item in filter(None, (arg or "").split(",")):
        key, _, value = item.partition("=")
        if key not in defaults:
            raise ValueError(f"unknown config argument {key!r}; known: {sorted(defaults)}")
        kind = type(defaults[key])
        out[key] = True if not _ else (value.lower() in ("1", "true", "yes") if kind is bool else kind(value))
    return out


def ldae_base() -> ml_collections.ConfigDict:
    """The l-DAE recipe at ImageNet scale (ViT-1/2L + 1/2L, 400 epochs, batch 2048)."""
    c = ml_collections.ConfigDict()
    c.seed = 0

    c.data = ml_collections.ConfigDict()
    c.data.name = "imagenet2012"
    c.data.data_dir = ""  # '' = TFDS default ($TFDS_DATA_DIR or ~/tensorflow_datasets)
    c.data.prepared_dir = ""  # '' = read the source dataset; else a prepared.py cache of uint8 centre crops there
    c.data.image_size = 256
    c.data.augment = "random_resized_crop"  # PAPER 1.6: +0.5 over center crop
    c.data.flip = False  # [open] DiT flips; the paper does not say
    c.data.train_split = "train"
    c.data.eval_split = "validation"

    c.pca = ml_collections.ConfigDict()
    c.pca.patch_size = 16
    c.pca.d = 32  # [open] inferred from Table 3 starting at 65.1 (the d=32 column of Table 2)
    c.pca.whiten = False  # [open] the paper's V is a plain orthonormal basis
    c.pca.num_patches = 1_000_000  # [open] patches drawn from the train split for the covariance
    c.pca.w_res = 0.1  # weight of the PCA residual subspace in the loss (Eq. 4)

    c.tokenizer = ml_collections.ConfigDict()
    c.tokenizer.kind = "pca"  # 'pca' | 'patch_ae' | 'patch_vae' | 'pixel' (Table 2, Figure 5); shape from `pca`
    c.tokenizer.ae_steps = 2000  # [open] patch AE/VAE training recipe ([NOT FOUND] in the paper)
    c.tokenizer.ae_batch_size = 4096  # patches per step
    c.tokenizer.ae_lr = 3e-2  # Adam, cosine decay to 0
    c.tokenizer.kl_weight = 1e-3  # [open] patch/conv VAE: weight of KL[q(z|x) | N(0, I)] against the reconstruction
    # Conv VAE (Table 1): stride 8 and d = pca.d = 4 x latent channels (32 x 32 x 4 at 256 px -> d = 16).
    c.tokenizer.conv_stride = 8
    c.tokenizer.conv_width = 128  # [open] channels of every level (LDM's KL-VAE starts at 128 and grows)
    c.tokenizer.conv_steps = 50_000  # [open] the retrained tokenizers' recipes are [NOT FOUND]
    c.tokenizer.conv_batch_size = 64
    c.tokenizer.conv_lr = 1e-4  # Adam (b1 0.5, b2 0.9, as VQGAN/LDM)
    c.tokenizer.conv_checkpoint_every = 1000  # steps between saves of its training state (resumed on restart)
    c.tokenizer.perceptual_weight = 0.0  # > 0: LPIPS-style VGG16 loss (Table 1 rows 1-2; LDM uses 1.0)
    c.tokenizer.perceptual_weights = ""  # path of the user-provided VGG16 .npz (see tokenizers/perceptual.py)
    c.tokenizer.adversarial_weight = 0.0  # > 0: patch-discriminator loss (Table 1 rows 1-3; LDM uses 0.5)
    c.tokenizer.adversarial_start = 0  # step at which the discriminator and its loss start (LDM: 50001)

    c.objective = ml_collections.ConfigDict()
    c.objective.input = "image"  # 'image': decode(z_t) (Table 3 step 3 onward) | 'latent': z_t
    c.objective.output = "image"  # 'image': patches, mapped to latents by encode (step 4 onward) | 'latent'
    c.objective.target = "original"  # 'original' (Eq. 4, l-DAE) | 'clean' (z0, Eq. 3) | 'eps' (noise, Eq. 2)
    c.objective.class_conditional = False  # Table 1 row 1: the label embedding is added to the t embedding
    c.objective.label_dropout = 0.1  # DiT's rate of null labels when class-conditional
    c.objective.learn_sigma = False  # DiT's learned variance (2x output, hybrid loss); [NOT FOUND] for Table 1

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
    c.model.dtype = "bfloat16"  # compute precision; parameters stay float32
    c.model.remat = False  # recompute block activations in the backward pass (less memory, more compute)
    c.model.scan_layers = False  # stack the blocks and lax.scan over them (compile time independent of depth)
    c.model.attention = "xla"  # 'xla': jax.nn.dot_product_attention | 'einsum': written out, heads-first

    c.train = ml_collections.ConfigDict()
    c.train.batch_size = 2048
    c.train.num_epochs = 400.0
    c.train.warmup_epochs = 100.0
    c.train.total_steps = 0  # >0 overrides num_epochs
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
    c.probe.block = 0  # 0 = model.encoder_depth
    c.probe.epochs = 90
    c.probe.batch_size = 16384
    c.probe.optimizer = "adam"  # on cached features; 'lars' with base_lr 0.1 is MAE's protocol
    c.probe.base_lr = 1e-3  # lr = base_lr * batch / 256
    c.probe.baselines = "random_init,pixels"  # also probed with the same head and budget; '' for none
    c.probe.feature_batch_size = 1024
    c.probe.mode = "cached"  # 'cached': features once, head on device (fast) | 'paper': MAE's protocol below
    c.probe.lars_base_lr = 0.1  # paper mode: LARS (momentum 0.9), lr = 0.1 * batch / 256 (MAE; PAPER.md 4.1)
    c.probe.warmup_epochs = 10  # paper mode: linear warm-up, then cosine
    c.probe.checkpoint_every = 1000  # paper mode: steps between saves of the head (resumed on restart)

    c.finetune = ml_collections.ConfigDict()  # end-to-end fine-tuning (PAPER.md 4.2; `python -m ldae_jax.finetune`)
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
