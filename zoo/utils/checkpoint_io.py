"""Checkpoint files that are never half-written.

Lightning writes a checkpoint through fsspec: into a file in the system's temporary folder, then
moved into place. When that folder is on another filesystem than the run (a RAM-backed ``/tmp``,
a cluster's scratch disk), the move is a copy, and a process killed during the copy leaves a
truncated ``last.ckpt`` -- the one file a resume needs. Nothing is flushed to the disk either, so
a machine that loses power may keep a file of zeros.

:class:`AtomicCheckpointIO` writes beside the target (``.<name>.tmp-<pid>``, same filesystem),
flushes it to the disk, then renames it over the target with ``os.replace``, which POSIX makes
atomic: a reader -- or a resume after ``SIGKILL`` -- sees the old complete file or the new
complete file, never a mixture. A temporary file left by a killed process is removed by the next
save into that folder. ``zoo-train`` installs it on every trainer (it changes how a checkpoint is
written, not what it holds).
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

TMP_MARK = ".tmp-"


def _temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")


def _is_stale_temporary(p: Path) -> bool:
    """A temporary file of this writer whose process is gone."""
    if not (p.name.startswith(".") and TMP_MARK in p.name):
        return False
    pid = p.name.rsplit(TMP_MARK, 1)[1]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return int(pid) == os.getpid()  # our own, from a save that failed earlier


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)`` such that ``path`` is either untouched or complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".*{TMP_MARK}*"):
        if _is_stale_temporary(stale):
            stale.unlink(missing_ok=True)
    buffer = io.BytesIO()
    torch.save(obj, buffer)  # serialise first: an error here leaves no file at all
    tmp = _temporary_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO for local files, written atomically (see the module's text);
    remote URLs (``s3://`` ...) go to Lightning's own writer."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO.save_checkpoint takes no storage_options")
        if "://" in str(path) and not str(path).startswith("file://"):
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_torch_save(checkpoint, str(path).removeprefix("file://"))
