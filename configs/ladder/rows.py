"""One row of the deconstruction ladder as a config: `configs/ladder/rows.py:row=R,scale=S,seed=N`.

    python -m ldae_jax.main --config=configs/ladder/rows.py:row=t3.step2,scale=small --workdir=workdirs/t3.step2
    python -m ldae_jax.ladder --rows='t3.*' --scale=small          # several rows, with a report

The rows, their parents and the paper's numbers are in `ldae_jax/ladder/rows.py`; scales are `small`
(Fashion-MNIST on a CPU, about two minutes a row), `tiny` (a few steps, for tests), `cifar` and `paper`
(ImageNet). Optional `vgg16=PATH` and `inception=PATH` name the user's weights files.
"""

from ldae_jax.ladder import rows


def get_config(arg: str = ""):
    return rows.get_config(arg)
