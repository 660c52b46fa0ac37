"""ldae_jax: latent Denoising Autoencoders in JAX/Flax."""

import os

# TensorFlow serves tf.data only. Unless the user chose otherwise, keep its C++ logging (and oneDNN's start-up
# line, which ignores the log level) off the console, so a command's first line is its own. Read by TensorFlow
# when it is first imported, which every command does after this.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
