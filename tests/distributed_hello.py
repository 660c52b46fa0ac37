"""A stand-in for ldae_jax.main in tests of `launch.py local`: join the multi-process job, check its size, exit 0.

    python -m tests.distributed_hello --coordinator_address=HOST:PORT --num_processes=N --process_id=I \
        [--expect_devices=D] [--fail_process=I]

It takes the same three distributed flags as ldae_jax.main and ignores the launcher's --config/--workdir, so it
proves that the launcher really starts a JAX multi-process job, in seconds instead of a training run's minutes.
"""

import argparse
import sys


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--coordinator_address", required=True)
    parser.add_argument("--num_processes", type=int, required=True)
    parser.add_argument("--process_id", type=int, required=True)
    parser.add_argument("--expect_devices", type=int, help="fail unless the job has this many devices in all")
    parser.add_argument("--fail_process", type=int, help="this process fails at once (tests the failure report)")
    args, _ = parser.parse_known_args()
    if args.process_id == args.fail_process:
        sys.exit(f"process {args.process_id}: failing on purpose (--fail_process)")

    import jax
    from jax.experimental import multihost_utils

    jax.distributed.initialize(args.coordinator_address, args.num_processes, args.process_id)
    assert jax.process_count() == args.num_processes, jax.process_count()
    assert args.expect_devices is None or jax.device_count() == args.expect_devices, jax.device_count()
    multihost_utils.sync_global_devices("distributed_hello")  # a real cross-process collective
    print(f"hello from process {jax.process_index()} of {jax.process_count()}: "
          f"{jax.local_device_count()} local devices, {jax.device_count()} in all", flush=True)


if __name__ == "__main__":
    main()
