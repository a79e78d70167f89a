"""Helpers of the tests that fill a disk under a run: a small tmpfs of its own, and a filler that takes its free
space at a chosen moment (a user's disk filling up while a run writes)."""

import contextlib
import os
import shutil
import subprocess
import threading
import time

import pytest


@contextlib.contextmanager
def small_disk(folder, size):
    """A tmpfs of ``size`` bytes mounted at ``folder`` (created) for the block; skips the test where mounting
    is not allowed (not root, no CAP_SYS_ADMIN, no mount command)."""
    folder = str(folder)
    os.makedirs(folder, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", folder],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a small tmpfs to fill ({exc})")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {done.stderr.strip()}")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", folder], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", folder], capture_output=True)  # a process still holds a file there


def free(folder) -> int:
    return shutil.disk_usage(str(folder)).free


def fill(folder, leave=0, name="filler.bin") -> str:
    """Take all but about ``leave`` bytes of the free space of ``folder``'s filesystem with one file: grown in
    steps, each smaller once the disk refuses one, so a run writing there meanwhile does not make it fail."""
    path = os.path.join(str(folder), name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        for step in (2**20, 2**16, 2**12):
            while free(folder) - leave >= step:
                try:
                    os.posix_fallocate(fd, size, step)
                except OSError:  # the run took the space meanwhile: a smaller step
                    break
                size += step
    finally:
        os.close(fd)
    return path


@contextlib.contextmanager
def fill_when(folder, appears, leave=0, timeout=600):
    """Fill ``folder``'s disk (``fill``) as soon as a file whose path ``appears(path)`` accepts shows up
    anywhere under ``folder``: watched from a thread every 2 ms while the block runs. Yields a dict whose
    "filled" is the path that triggered it (None while not yet)."""
    state = {"filled": None}
    stop = threading.Event()

    def watch():
        deadline = time.monotonic() + timeout
        while not stop.is_set() and time.monotonic() < deadline:
            for root, _, files in os.walk(str(folder)):
                hit = next((os.path.join(root, f) for f in files if appears(os.path.join(root, f))), None)
                if hit:
                    fill(folder, leave, name="zz-filler.bin")
                    state["filled"] = hit
                    return
            time.sleep(0.002)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        stop.set()
        thread.join()
