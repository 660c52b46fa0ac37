"""The deconstruction ladder: its rows as data (`rows`), the paper's claims (`claims`), planning, running and
gathering runs (`runs`), the report (`report`), named small ablations (`ablations`) and the command line
(`python -m ldae_jax.ladder`)."""
