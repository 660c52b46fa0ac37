"""l-DAE on ImageNet-1k at 256 px: the paper's recipes (docs/paper_notes.md 1.6, 1.7, 1.9, 3.4, 4.1, 4.2).

    python -m ldae_jax.main --config=configs/imagenet.py:model=half_L,epochs=400 --workdir=gs://BUCKET/ldae_hL400
    # on a pod: python launch/launch.py tpu run --accelerator-type=v3-256 ... (see launch/README.md)

Every variant: patch-wise PCA (16x16x3 patches, d = 32, unwhitened), image in / original image out with the
residual weight 0.1, sigma linear in [0, sqrt 2] (no input scaling), batch 2048, base lr 1e-4 per 256 (8e-4),
100 warm-up epochs then half-cycle cosine, weight decay 0, random resized crop (MAE's scale 0.2-1; the
paper's range is not given), no flip ([open]). The decoder has the encoder's size. Then
`--mode=probe` (the linear probe; `probe.mode=paper` for MAE's LARS protocol) and `ldae_jax.finetune`.

| variant | paper result (ImageNet top-1) | estimated time, TPU v3-256 |
|---|---|---|
| model=half_L,epochs=400,augment=center_crop | 64.5 linear probe (Sec. 5, center crop) | 12 h (the paper's figure for DiT-L) |
| model=half_L,epochs=400 (the default) | 65.0 linear probe | 12 h |
| model=half_L,epochs=800 | 67.5 linear probe | 24 h |
| model=half_L,epochs=1600 | 69.6 linear probe | 48 h |
| model=B,epochs=400 | 60.3 linear probe | ~7 h |
| model=L,epochs=400 | 70.9 linear probe | ~24 h |
| model=B,epochs=1600 | 66.6 linear probe (Table 4); 83.7 fine-tuned (Table B) | ~27 h |
| model=L,epochs=1600 | 75.0 linear probe (Table 4); 84.7 fine-tuned (Table B) | ~96 h |

Times other than DiT-L's are that figure scaled by the per-token FLOPs (B + B: 24 blocks of width 768, about
0.56x; L + L: 48 blocks of width 1024, 2x) and by epochs; none has been measured by us.
"""

from ldae_jax import config_lib, schema

MODELS = ("B", "half_L", "L")
EPOCHS = (400, 800, 1600)
AUGMENT = ("random_resized_crop", "center_crop")
FINETUNE_LAYER_DECAY = {"B": 0.85, "half_L": 0.75, "L": 0.65}  # docs/paper_notes.md 4.2 give B and L; 1/2L in between


def get_config(arg: str = ""):
    args = config_lib.parse_arg(arg, model="half_L", epochs=400, augment="random_resized_crop")
    for name, value, valid in (("model", args.model, MODELS), ("epochs", args.epochs, EPOCHS),
                               ("augment", args.augment, AUGMENT)):
        if value not in valid:
            raise ValueError(f"{name}={value!r} is not one of the paper's recipes; choose one of {valid}")
    c = schema.defaults()
    c.data.name = "imagenet2012"
    c.data.image_size = 256
    c.data.augment = args.augment
    c.model.size = args.model
    c.model.remat = args.model == "L"  # 48 blocks of width 1024: activations need recomputation at batch 8/chip
    c.model.scan_layers = True
    c.train.update(batch_size=2048, num_epochs=float(args.epochs), warmup_epochs=100.0, base_lr=1e-4,
                   weight_decay=0.0, checkpoint_every=2000)
    c.finetune.layer_decay = FINETUNE_LAYER_DECAY[args.model]
    return c
