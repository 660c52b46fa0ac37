"""The paper's claims the ladder report decides. A row takes part in a claim by naming it (`rows.Row.claims`),
on the 'better' or 'worse' side, or as a 'point' of a sweep; nothing here knows row names."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Claim:
    id: str
    text: str  # the claim, as the report states it
    paper: str  # the paper's numbers for it
    kind: str = "pair"  # 'pair': the best 'better' row beats the best 'worse' row; 'peak': the sweep peaks inside
    margin: float | None = None  # 'as good as': better is not worse by more than this many points


CLAIMS = {c.id: c for c in (
    Claim("latent_vs_pixels", "a low-dimensional latent beats pixels", "65.1 (PCA d=32) vs 58.5 (best pixel)"),
    Claim("pca_vs_ae", "PCA is as good as a trained patch AE (not 1 point worse)", "65.1 vs 64.7 (best of each)",
          margin=1.0),
    Claim("pca_vs_vae", "PCA is as good as a trained patch VAE (not 1 point worse)", "65.1 vs 64.9 (best of each)",
          margin=1.0),
    Claim("schedule_conv", "the linear gamma^2 schedule beats DDPM's (conv VAE)", "63.4 vs 59.0 (Table 1 rows 5, 4)"),
    Claim("schedule_pca", "the linear gamma^2 schedule beats DDPM's (patch PCA)", "63.4 vs 59.0 (Table 1 rows 5, 4)"),
    Claim("cls_conv", "class conditioning hurts (conv VAE)", "62.5 vs 57.5"),
    Claim("cls_pca", "class conditioning hurts (patch PCA)", "62.5 vs 57.5 (Table 1 rows 2, 1)"),
    Claim("adversarial", "removing the adversarial loss helps a little", "59.0 vs 58.4 (Table 1 rows 4, 3)"),
    Claim("patch_vs_conv", "a patch-wise tokenizer beats the conv VAE, d=16",
          "63.4 vs 63.4 (PCA); 64.9, 64.7 (VAE, AE) vs 63.4"),
    Claim("multi_level", "multi-level noise beats a single level", "64.5 vs 61.5"),
    Claim("whiten_d16", "unwhitened beats whitened PCA, d=16", "open (docs/paper_notes.md 3.3)"),
    Claim("whiten_d32", "unwhitened beats whitened PCA, d=32", "open (docs/paper_notes.md 3.3)"),
    Claim("peak_d", "accuracy peaks at a small d (not at the ends of the sweep)", "peak at d=32 of 8..128", "peak"),
)}
