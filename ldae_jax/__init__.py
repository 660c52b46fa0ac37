"""ldae_jax: latent Denoising Autoencoders in JAX/Flax."""
