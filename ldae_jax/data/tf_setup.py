"""TensorFlow is used for tf.data only and must not take accelerator memory: importing this hides GPUs from it.
Every data module that imports TensorFlow imports this first."""

import tensorflow as tf


def hide_gpus() -> None:
    try:
        tf.config.set_visible_devices([], "GPU")
    except (RuntimeError, ValueError):  # devices already initialised, or a TF build without GPU support
        pass


hide_gpus()
