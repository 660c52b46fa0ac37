"""Small helpers shared by the tests."""


def set_fields(config, **fields):
    """config with each 'section__field' (or 'section__group__field') = value set in place; returns config."""
    for key, value in fields.items():
        *path, name = key.split("__")
        node = config
        for part in path:
            node = node[part]
        node[name] = value
    return config


def pretrain(config, workdir, **kwargs):
    """The pre-training loop on a fresh Experiment of (config, workdir), as `--mode=pretrain` runs it."""
    from ldae_jax import experiment
    from ldae_jax.train import pretrain as pretrain_lib

    return pretrain_lib.train(experiment.Experiment(config, str(workdir)), **kwargs)


def call_main(argv, capsys):
    """(exit code, stdout, stderr) of `python -m ldae_jax.main ARGV`, in this process."""
    from ldae_jax import cli, main as main_lib

    code = 0
    try:
        cli.run(main_lib.main, argv)
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err
