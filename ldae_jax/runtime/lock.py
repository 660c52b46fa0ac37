"""A run owns its workdir: a lease file that names the run holding it, renewed while it runs.

`workdir/.lock.json` holds the run's identity (a random id, the command, the host and pid of process 0, when it
started) and when it was last renewed. A second run on a busy workdir stops at once with one error line that
names the holder; a lease not renewed for `stale_s` belongs to a run that died (kill -9, a lost host) and is
taken over with a warning. Process 0 of a multi-host run takes the lease for all its processes and tells them
the outcome, so they stop together. The file goes through etils.epath, so a `gs://` workdir works too: there a
takeover is confirmed by reading the lease back after writing it (the last writer wins), on a local disk the
first lease is created exclusively.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
import uuid

import jax
import numpy as np
from etils import epath
from jax.experimental import multihost_utils

from ldae_jax.errors import UserError
from ldae_jax.runtime import atomic

FILE = ".lock.json"
RENEW_S = 20.0  # how often a live run rewrites its lease
STALE_S = 120.0  # a lease older than this is a dead run's


class WorkdirBusy(UserError):
    """Another live run holds the workdir."""


def _write(path: epath.Path, lease: dict) -> None:
    atomic.write(path, json.dumps(lease, indent=1))


def _read(path: epath.Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (ValueError, OSError):  # a torn or unreadable lease: nobody can prove they hold it
        return {}


def _create_exclusive(path: epath.Path, lease: dict) -> bool:
    """Create the lease only if there is none (local disks); False when another run created it first."""
    try:
        fd = os.open(os.fspath(path), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(lease, indent=1))
    return True


def describe(lease: dict, now: float | None = None) -> str:
    now = time.time() if now is None else now
    age = now - lease.get("renewed", 0)
    return (f"run {lease.get('run', '?')} ({lease.get('command', '?')}) on {lease.get('host', '?')} pid "
            f"{lease.get('pid', '?')}, started {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(lease.get('started', 0)))}"
            f" UTC, last renewed {age:.0f} s ago")


class WorkdirLock:
    """Held from `acquire()` to `release()` (or use as a context manager); a thread renews the lease."""

    def __init__(self, workdir: str, command: str = "", *, stale_s: float = STALE_S, renew_s: float = RENEW_S,
                 take_over: bool = False):
        self.path = epath.Path(workdir) / FILE
        self.stale_s, self.renew_s, self.take_over = stale_s, renew_s, take_over
        self.lease = {"run": uuid.uuid4().hex[:12], "command": command or " ".join(sys.argv[:3]),
                      "host": socket.gethostname(), "pid": os.getpid(), "started": time.time(), "renewed": time.time()}
        self._stop = threading.Event()
        self._thread = None

    def acquire(self) -> "WorkdirLock":
        """Takes the lease or raises WorkdirBusy naming the run that holds it."""
        local = "://" not in os.fspath(self.path)
        if local and _create_exclusive(self.path, self.lease):
            return self._start()
        held = _read(self.path)
        if held is not None and held.get("run") != self.lease["run"]:
            age = time.time() - held.get("renewed", 0)
            if held and age < self.stale_s and not self.take_over:
                raise WorkdirBusy(
                    f"workdir {os.fspath(self.path.parent)} is in use by {describe(held)}; wait for it to end, "
                    f"use another --workdir, or pass --take_over if that run is dead (a lease older than "
                    f"{self.stale_s:.0f} s is taken over without asking)")
            print(f"WARNING: taking over the workdir lease of {describe(held) if held else 'an unreadable lease'}",
                  file=sys.stderr, flush=True)
        _write(self.path, self.lease)
        time.sleep(0.05 if local else 1.0)  # a racing writer shows up in the read-back
        if (_read(self.path) or {}).get("run") != self.lease["run"]:
            raise WorkdirBusy(f"workdir {os.fspath(self.path.parent)} was taken by {describe(_read(self.path) or {})}"
                              " at the same moment; use another --workdir")
        return self._start()

    def _start(self) -> "WorkdirLock":
        self._thread = threading.Thread(target=self._renew, name="workdir-lease", daemon=True)
        self._thread.start()
        return self

    def _renew(self) -> None:
        while not self._stop.wait(self.renew_s):
            held = _read(self.path)
            if held is not None and held.get("run") not in (None, self.lease["run"]):
                print(f"WARNING: the workdir lease was taken over by {describe(held)}", file=sys.stderr, flush=True)
                return
            self.lease["renewed"] = time.time()
            try:
                _write(self.path, self.lease)
            except OSError:  # a full disk: the run's own saves will report it
                pass

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        held = _read(self.path)
        if held is not None and held.get("run") == self.lease["run"]:
            try:
                self.path.unlink()
            except OSError:
                pass

    def __enter__(self) -> "WorkdirLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def hold(workdir: str, command: str = "", *, take_over: bool = False):
    """The workdir's lease for this run, as a context manager: process 0 takes it for every process, and every
    process stops with the same error when it is busy."""
    epath.Path(workdir).mkdir(parents=True, exist_ok=True)
    if jax.process_count() == 1:
        return WorkdirLock(workdir, command, take_over=take_over).acquire()
    held, error = None, ""
    if jax.process_index() == 0:
        try:
            held = WorkdirLock(workdir, command, take_over=take_over).acquire()
        except WorkdirBusy as e:
            error = str(e)
    ok = multihost_utils.broadcast_one_to_all(np.array(held is not None if jax.process_index() == 0 else False))
    if not bool(ok):
        raise WorkdirBusy(error or f"workdir {workdir} is in use by another run (process 0 says which)")
    return held if held is not None else contextlib.nullcontext()  # the other processes: process 0 holds it
