"""ldae_jax: latent Denoising Autoencoders (l-DAE) and the DiT -> l-DAE deconstruction ladder in JAX/Flax.

Pins are the set tested together on Python 3.11 (Debian 12, CPU); see README "Install" for GPU, TPU and macOS,
and `bash launch/check_extras.sh` for a check that they resolve on the package index.
"""
from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    "jax==0.10.2",
    "jaxlib==0.10.2",
    "flax==0.12.8",
    "optax==0.2.8",
    "orbax-checkpoint==0.12.8",
    # tf.data only; the CPU build so TensorFlow never competes for an accelerator. It has no macOS wheels, where
    # the stock build is CPU-only anyway (resolved for macOS arm64 with `pip install --dry-run --platform`).
    "tensorflow-cpu==2.21.0; sys_platform != 'darwin'",
    "tensorflow==2.21.0; sys_platform == 'darwin'",
    # clu.metric_writers imports tensorboard, which TF 2.21 no longer pulls in.
    "tensorboard==2.21.0",
    "tensorflow-datasets==4.9.10",
    # tfds 4.9.10 imports it on Python 3.11 without declaring it.
    "importlib_resources==7.1.0",
    "ml-collections==1.1.0",
    # Paths that work the same for local folders and gs:// buckets (TPU pods share a bucket workdir).
    "etils[epath]==1.15.0",
    "clu==0.0.12",
    "numpy==2.4.6",
    "protobuf==7.36.2",
    "ml-dtypes==0.6.0",
    "matplotlib==3.11.2",
    # Student's t quantiles of the ladder report's confidence intervals (jax already needs scipy).
    "scipy==1.17.1",
    # The timm-compatible export of the fine-tuning encoder (ldae_jax/export.py).
    "safetensors==0.8.0",
]

setup(
    name="ldae_jax",
    version="0.1.0",
    description="latent Denoising Autoencoders (l-DAE) in JAX/Flax, TPU-first",
    packages=find_packages(include=["ldae_jax", "ldae_jax.*", "configs", "configs.*"]),
    python_requires=">=3.11",
    install_requires=INSTALL_REQUIRES,
    extras_require={
        "test": ["pytest==9.2.0"],
        "cuda": ["jax[cuda12]==0.10.2"],
        "tpu": ["jax[tpu]==0.10.2"],
    },
)
