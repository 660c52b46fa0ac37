"""The rows of the deconstruction ladder (docs/paper_notes.md 1.1-1.5), each a few fields away from its parent
row, with the facts the report and the figures read (which claims a row takes part in, its place in Figure 6's trajectory,
whether it is a point of the accuracy-vs-d sweep; its tokenizer, d and image size come from its config).

    python -m ldae_jax.main --config=configs/ladder/rows.py:row=t3.step2,scale=small --workdir=workdirs/t3.step2
    python -m ldae_jax.ladder --rows='t3.*' --scale=small          # several rows, with a report

`scale=paper` is ImageNet 256 px, DiT-L size (1/2L + 1/2L), 400 epochs, batch 2048, center crop (the ladder
uses no augmentation); `scale=small` runs on the embedded Fashion-MNIST on a CPU in about two minutes
(28 px, 7x7 patches so 16 tokens of D = 49, a 2 + 2 block width-96 network, 600 steps at batch 128). Latent
sizes shrink with the patch: small d = paper d / 4 (paper d = 32 of D = 768 -> d = 8 of D = 49), and Figure 5's
pixel tokenizer keeps 16 tokens at 28/16/8/4 px (patches 7/4/2/1) for the paper's 256/128/64/32 px (patches 16/8/4/2).
`scale=cifar` is the small recipe on CIFAR-10 (TFDS `cifar10`, prepared beforehand): 32 px RGB, 8x8 patches, so
16 tokens of D = 192 = 768 / 4, the same small d, and pixel rows at 32/16/8/4 px (patches 8/4/2/1).

Table 1's rows use the convolutional VAE tokenizer; rows 1-2 train it with a perceptual loss on VGG16 features,
whose weights the user provides (`vgg16=PATH` here, `--vgg16` in the runner). Table 1's two claims that do not
depend on the tokenizer, class conditioning and the noise schedule, are also rows on the patch-PCA setting
(`t1.cls`, `t1.ddpm`), which run anywhere. Paper numbers are ImageNet linear-probe top-1.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from typing import Callable

from ldae_jax import config_lib, schema
from ldae_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class Row:
    name: str
    parent: str | None
    change: str  # what this row changes from its parent, as the paper words it
    paper: float | None  # the paper's linear-probe top-1 (ImageNet), None where it gives none
    apply: Callable  # (config, scale) -> None, edits the parent's config in place
    paper_fid: float | None = None  # the paper's FID-50K (Table 1 only)
    claims: dict = dataclasses.field(default_factory=dict)  # {claim id (claims.py): its side, 'better' / 'worse'}
    trajectory: int | None = None  # its place in Figure 6's bars (0 = the first), None when not in it
    sweep: bool = False  # a point of Table 2's / Figure 5's accuracy against d per token

    def facts(self, scale: str) -> dict:
        """What the figures need of its config at `scale`: tokenizer kind, d, image size, patch size."""
        c = get_config(f"row={self.name},scale={scale}")
        return {"kind": c.tokenizer.kind, "d": c.tokenizer.d, "image_size": c.data.image_size,
                "patch_size": c.tokenizer.patch_size}


ROWS: dict[str, Row] = {}

SCALES = ("small", "paper", "tiny", "cifar")  # tiny: the small rows cut to a few steps, for tests
SMALL_D = {8: 2, 16: 4, 32: 8, 64: 16, 128: 32}  # paper d -> small d (D = 768 -> 49 or 192)
PIXEL = {256: (16, 28, 7), 128: (8, 16, 4), 64: (4, 8, 2), 32: (2, 4, 1)}  # res -> (paper patch, small px, patch)
PIXEL_CIFAR = {256: (32, 8), 128: (16, 4), 64: (8, 2), 32: (4, 1)}  # res -> (cifar px, patch): 16 tokens each


def _row(name, parent, change, paper, apply=lambda c, s: None, paper_fid=None, claims=None, trajectory=None,
         sweep=False):
    ROWS[name] = Row(name, parent, change, paper, apply, paper_fid, claims or {}, trajectory, sweep)


def _d(d):
    def apply(c, scale):
        c.tokenizer.d = d if scale == "paper" else SMALL_D[d]
    return apply


def _set(**fields):
    """Sets 'section__field' (or 'section__group__field') = value on the config, the same at every scale."""
    def apply(c, scale):
        for key, value in fields.items():
            *path, field = key.split("__")
            node = c
            for name in path:
                node = node[name]
            node[field] = value
    return apply


def _chain(*fns):
    def apply(c, scale):
        for fn in fns:
            fn(c, scale)
    return apply


# Table 3 step 0 = Table 2's patch-wise PCA at d = 32 = Table 1 row 5 with the PCA tokenizer: the root.
_row("t3.step0", None, "patch-wise PCA, d=32; noise prediction, linear gamma^2, latent in and out", 65.1,
     _chain(_d(32), _set(objective__input="latent", objective__output="latent", objective__target="eps",
                         noise__schedule="linear_gamma_sq")),
     claims={"schedule_pca": "better", "cls_pca": "better"}, trajectory=7)
_row("t3.step1", "t3.step0", "+ predict clean data", 62.4, _set(objective__target="clean"), trajectory=8)
_row("t3.step2", "t3.step1", "+ remove input scaling (sigma linear to sqrt 2)", 63.6,
     _set(noise__schedule="sigma_linear"), trajectory=9)
_row("t3.step3", "t3.step2", "+ image input via inverse PCA", 63.6, _set(objective__input="image"), trajectory=10)
_row("t3.step4", "t3.step3", "+ image output via inverse PCA", 63.9, _set(objective__output="image"),
     trajectory=11)
# The l-DAE row also probes the two baselines (raw pixels, the same network at random init) with the same head:
# the report sets l-DAE against raw pixels at every budget. Its children that pre-train differently drop them.
_row("t3.step5", "t3.step4", "+ predict the original image, residual weight 0.1 (= l-DAE)", 64.5,
     _set(objective__target="original", probe__baselines="random_init,pixels"),
     claims={"multi_level": "better"}, trajectory=12)
_row("t3.single", "t3.step5", "single noise level sigma = sqrt(1/3)", 61.5,
     _set(noise__schedule="single_level", probe__baselines=""), claims={"multi_level": "worse"})


# Table 1 with the conv VAE tokenizer (d = 16: 32 x 32 x 4 latents at 256 px; 8 x 8 x 4 at 32 px, stride 4, at
# small scale). Rows 1-2 need the user's VGG16 weights for the perceptual loss (`vgg16=PATH`).
def _conv(c, scale):
    c.tokenizer.update(kind="conv_vae", d=16, patch_size=16 if scale == "paper" else 8)  # a token: stride x 2 px
    c.objective.update(input="latent", output="latent", target="eps", class_conditional=True)
    c.noise.schedule = "ddpm_linear_beta"
    c.tokenizer.conv_vae.update(perceptual_weight=1.0, adversarial_weight=0.5)
    if scale == "paper":
        c.tokenizer.conv_vae.adversarial_start = 25_000
    else:
        c.data.image_size = 32
        c.tokenizer.conv_vae.update(stride=4, width=32, steps=4 if scale == "tiny" else 1500, lr=1e-3,
                                    adversarial_start=2 if scale == "tiny" else 500)


_row("t1.row1", None, "DiT: conv VAE with perceptual + adversarial losses, class-conditional, DDPM schedule", 57.5,
     _conv, paper_fid=11.6, claims={"cls_conv": "worse"}, trajectory=0)
_row("t1.row2", "t1.row1", "- class conditioning", 62.5, _set(objective__class_conditional=False), paper_fid=30.9,
     claims={"cls_conv": "better"}, trajectory=1)
_row("t1.row3", "t1.row2", "- perceptual loss (retrained tokenizer)", 58.4,
     _set(tokenizer__conv_vae__perceptual_weight=0.0), paper_fid=54.3, claims={"adversarial": "worse"},
     trajectory=2)
_row("t1.row4", "t1.row3", "- adversarial loss (a plain KL-VAE)", 59.0,
     _set(tokenizer__conv_vae__adversarial_weight=0.0), paper_fid=75.6,
     claims={"adversarial": "better", "schedule_conv": "worse"}, trajectory=3)
_row("t1.row5", "t1.row4", "+ linear gamma^2 schedule", 63.4, _set(noise__schedule="linear_gamma_sq"), paper_fid=93.2,
     claims={"schedule_conv": "better", "patch_vs_conv": "worse"}, trajectory=4)

# Table 1's two claims on the patch-PCA setting (t3.step0), runnable without VGG16 weights.
_row("t1.cls", "t3.step0", "+ class conditioning (Table 1 row 1 vs 2: 57.5 vs 62.5)", None,
     _set(objective__class_conditional=True), claims={"cls_pca": "worse"})
_row("t1.ddpm", "t3.step0", "DDPM linear-beta schedule (Table 1 row 4 vs 5: 59.0 vs 63.4)", None,
     _set(noise__schedule="ddpm_linear_beta"), claims={"schedule_pca": "worse"})
_row("t1.sigma", "t1.ddpm", "+ DiT's learned variance (2x output, hybrid loss; not given: notes 2.3)", None,
     _set(objective__learn_sigma=True))

# Table 2: tokenizer x d, on the t3.step0 setting.
_T2 = {"pca": {8: 56.0, 16: 63.4, 32: 65.1, 64: 60.0, 128: 53.9},
       "vae": {8: 58.3, 16: 64.9, 32: 64.8, 64: 56.8},  # d = 128 column empty (docs/paper_notes.md 1.2)
       "ae": {8: 59.9, 16: 64.7, 32: 64.6, 64: 59.9}}
_T2_KIND = {"pca": "pca", "vae": "patch_vae", "ae": "patch_ae"}
_T2_CLAIMS = {"pca": {"latent_vs_pixels": "better", "pca_vs_ae": "better", "pca_vs_vae": "better", "peak_d": "point"},
              "ae": {"pca_vs_ae": "worse"}, "vae": {"pca_vs_vae": "worse"}}
for _kind, _numbers in _T2.items():
    for _dim in (8, 16, 32, 64, 128):
        _claims = dict(_T2_CLAIMS[_kind], **({"patch_vs_conv": "better"} if (_kind, _dim) == ("pca", 16) else {}))
        _row(f"t2.{_kind}.d{_dim}", "t3.step0", f"patch-wise {_kind.upper()}, d={_dim}", _numbers.get(_dim),
             _chain(_d(_dim), _set(tokenizer__kind=_T2_KIND[_kind])), claims=_claims,
             trajectory={("vae", 16): 5, ("ae", 16): 6}.get((_kind, _dim)), sweep=True)

# Figure 5: the pixel tokenizer, 256 tokens (16 at small scale) at every resolution.
_F5 = {256: 23.6, 64: 58.5}  # the other two points are not mapped with certainty (docs/paper_notes.md 1.3)


def _pixel(res):
    def apply(c, scale):
        paper_patch, small_px, small_patch = PIXEL[res]
        c.tokenizer.kind = "pixel"
        c.data.image_size, c.tokenizer.patch_size = {"paper": (res, paper_patch), "cifar": PIXEL_CIFAR[res]}.get(
            scale, (small_px, small_patch))
        c.tokenizer.d = c.tokenizer.patch_size**2 * (1 if c.data.name == "fashion_mnist_local" else 3)
    return apply


for _res in PIXEL:
    _row(f"f5.pixel.r{_res}", "t3.step0", f"pixel tokenizer, {_res} px, patch {PIXEL[_res][0]}", _F5.get(_res),
         _pixel(_res), claims={"latent_vs_pixels": "worse"}, sweep=True)

# An open question (docs/paper_notes.md 3.3): whitened vs unwhitened PCA latents, on l-DAE, at two d.
for _dim in (16, 32):
    _row(f"w.plain.d{_dim}", "t3.step5", f"l-DAE, unwhitened latents, d={_dim}", 64.5 if _dim == 32 else None,
         _chain(_d(_dim), _set(probe__baselines="") if _dim != 32 else _set()), claims={f"whiten_d{_dim}": "better"})
    _row(f"w.whiten.d{_dim}", f"w.plain.d{_dim}", f"l-DAE, whitened latents, d={_dim}", None,
         _set(tokenizer__pca__whiten=True), claims={f"whiten_d{_dim}": "worse"})


# Appendix A: the probe of one pre-trained l-DAE (t3.step5), at a fixed t with clean or noisy input, and at
# other blocks. These rows share t3.step5's pre-training; only the probe runs again.
_APPENDIX_T = {"clean": {0: 64.1, 10: 64.5, 20: 64.1, 40: 63.3, 80: 62.2},
               "noisy": {0: 64.2, 10: 65.0, 20: 65.0, 40: 65.0, 80: 64.5}}
for _input, _numbers in _APPENDIX_T.items():
    for _t, _top1 in _numbers.items():
        _row(f"a.t{_t}.{_input}", "t3.step5", f"probe at t={_t}, {_input} input", _top1,
             _set(probe__t=_t, probe__noisy=_input == "noisy", probe__baselines=""))


def _block(k):
    def apply(c, scale):
        c.probe.block = k if scale == "paper" else k * (c.model.encoder_depth + c.model.decoder_depth) // 24
        c.probe.baselines = ""
    return apply


# Blocks k of the 24-block network (k/24 of the depth at small scale: 6, 12, 18, 24 -> 1, 2, 3, 4 of 4). Blocks
# count from 1 as the paper's "output of block k" and probe.block do: the label gives both scales' k, which is the
# number probe.json's protocol.block and the probe's console table show at that scale.
for _k, _top1 in {6: None, 12: 64.5, 18: None, 24: None}.items():
    _where = {12: ", the encoder's last", 24: ", the decoder's last"}.get(_k, "")
    _row(f"a.block{_k}", "t3.step5", f"probe the output of block {_k} of 24 (small scale: {_k // 6} of 4{_where})",
         _top1, _block(_k))


# Table 4 at small scale: l-DAE against MAE on the same data, encoder and probe. The MAE rows keep the l-DAE row's
# encoder (2 blocks of width 96 at small scale) and optimizer, with MAE's weight decay 0.05 and its own decoder
# (small: 2 blocks of width 64; paper: 8 of 512); probed and fine-tuned at t = 0, the only step MAE trains at.
# `t4.mae.time` trains MAE for as long as l-DAE's 600 steps take: an MAE step ran 2.15x faster (1.90-2.35 over 5
# rounds; bench/table4_cost.py on a 2-core AMD EPYC, 2026-12-02), so 600 x 2.15 ~ 1300 steps. The paper compares
# at equal epochs (t4.mae).
MAE_EQUAL_TIME_STEPS = 1300


def _mae(c, scale):
    c.objective.kind = "mae"
    c.tokenizer.kind = "pixel"
    c.tokenizer.d = c.tokenizer.patch_size**2 * (1 if c.data.name == "fashion_mnist_local" else 3)
    c.probe.update(t=0, baselines="")
    c.finetune.t = 0
    c.train.weight_decay = 0.05
    if scale == "paper":
        c.mae.update(decoder_width=512, decoder_depth=8, decoder_heads=16)
    else:
        c.mae.update(decoder_width=64, decoder_depth=2, decoder_heads=4)


_row("t4.ldae", "t3.step5", "l-DAE, the last row of Table 3 (Table 4: l-DAE ViT-B 66.6)", 66.6)
_row("t4.mae", "t3.step5", "MAE: 75% of pixel patches masked, encoder on the rest, its own decoder (ViT-B 68.0)",
     68.0, _mae)


def _equal_time(c, scale):
    """The small scale's measured count (cifar takes it too); tiny doubles its steps; paper keeps equal epochs."""
    if scale in ("small", "cifar"):
        c.train.total_steps = MAE_EQUAL_TIME_STEPS
    elif scale == "tiny":
        c.train.total_steps *= 2


_row("t4.mae.time", "t4.mae", f"MAE for l-DAE's wall time ({MAE_EQUAL_TIME_STEPS} steps at small scale)", None,
     _equal_time)


def lineage(name: str) -> list[Row]:
    """The row and its ancestors, root first."""
    chain = []
    while name is not None:
        chain.append(ROWS[name])
        name = ROWS[name].parent
    return chain[::-1]


def select(patterns: str) -> list[str]:
    """Row names matching comma-separated names or shell patterns ('t3.*'), in registry order."""
    wanted = [p.strip() for p in patterns.split(",") if p.strip()]
    unknown = [p for p in wanted if not fnmatch.filter(ROWS, p)]
    if unknown or not wanted:
        raise UserError(f"unknown ladder row(s) {unknown or patterns!r}; known rows: {', '.join(ROWS)}")
    return [name for name in ROWS if any(fnmatch.fnmatch(name, p) for p in wanted)]


def base(scale: str):
    """The settings every row shares, at `scale`."""
    c = schema.defaults()
    c.data.augment = "center_crop"  # the ladder's pre-training uses no augmentation (docs/paper_notes.md 1)
    if scale == "paper":
        return c
    c.data.eval_split = "test"
    if scale == "cifar":  # the small recipe on CIFAR-10: 32 px RGB, 8x8 patches, so 16 tokens of D = 192
        c.data.update(name="cifar10", image_size=32)
        c.tokenizer.patch_size = 8
    else:
        c.data.update(name="fashion_mnist_local", image_size=28)
        c.tokenizer.patch_size = 7
    c.tokenizer.num_patches = 200_000
    c.tokenizer.patch_ae.steps = 2000
    c.model.update(size="mini", width=96, num_heads=4, encoder_depth=2, decoder_depth=2, dtype="float32")
    c.train.update(batch_size=128, total_steps=600, warmup_epochs=0.25, base_lr=2e-3, log_every=100,
                   checkpoint_every=300)
    c.probe.update(epochs=30, batch_size=1024, feature_batch_size=1000, baselines="")
    # kNN every 300 steps on 2000 train / 1000 test images: 2 evaluations at budget 1, 4.8% of a row's training
    # steps' time in one run, where every 200 took 5.6% (the median of 16 evidence runs; 2-core AMD EPYC,
    # 2026-12-02)
    c.knn.update(every_steps=300, train_examples=2000, test_examples=1000)
    c.fid.update(num_samples=2000, reference_examples=2000, num_steps=50, batch_size=250)  # FID-2K, ~10 min
    # Fine-tuning (the Table 4 rows): 3 epochs without Mixup, CutMix or RandAugment, which at this scale cost more
    # than they give (docs/protocols_small.md), about 2 minutes on 2 CPU cores.
    c.finetune.update(epochs=3.0, warmup_epochs=0.5, batch_size=256, eval_batch_size=1000, mixup=0.0, cutmix=0.0,
                      rand_augment="", ema=0.0, log_every=200)
    if scale == "tiny":  # seconds per row, for tests
        c.data.train_split, c.data.eval_split = "train[:1024]", "test[:200]"
        c.tokenizer.num_patches = 4000
        c.tokenizer.patch_ae.steps = 20
        c.model.update(width=32, num_heads=2, encoder_depth=2, decoder_depth=2)
        c.train.update(batch_size=64, total_steps=3, log_every=3, checkpoint_every=3)
        c.probe.update(epochs=2, batch_size=256, feature_batch_size=200)
        c.knn.update(every_steps=3, train_examples=200, test_examples=100)
        c.finetune.update(epochs=0.0, total_steps=2, batch_size=64, eval_batch_size=200)
        c.fid.update(num_samples=8, reference_examples=8, num_steps=4, batch_size=8)
    return c


def get_config(arg: str = ""):
    """'row=R,scale=S,seed=N[,budget=B][,vgg16=PATH][,inception=PATH]' -> the row's config
    (configs/ladder/rows.py). `budget=B` trains B times the scale's steps (same recipe, same warm-up, the
    schedule's decay stretched): the report's budget trends."""
    args = config_lib.parse_arg(arg, row="t3.step5", scale="small", seed=0, budget=1, vgg16="", inception="")
    if args.scale not in SCALES:
        raise UserError(f"scale must be one of {', '.join(SCALES)}, got {args.scale!r}")
    if args.budget < 1:
        raise UserError(f"budget must be a whole multiple of the scale's training steps (1, 4, 16, ...), got "
                        f"{args.budget}")
    select(args.row)  # a clear error for an unknown name
    if args.row not in ROWS:
        raise UserError(f"row must be one row name, got the pattern {args.row!r}")
    c = base(args.scale)
    c.seed = args.seed
    for row in lineage(args.row):
        row.apply(c, args.scale)
    if args.budget != 1:
        if not c.train.total_steps:
            raise UserError(f"budget={args.budget}: scale {args.scale!r} trains by epochs; set the epochs instead")
        c.train.total_steps *= args.budget
    c.tokenizer.conv_vae.perceptual_weights = args.vgg16
    c.fid.inception_weights = args.inception
    return c
