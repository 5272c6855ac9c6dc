"""Extracting downloaded archives (tar, tar.gz/.bz2/.xz, zip) without trusting their contents.

:func:`safe_extract` reads the whole member list first and refuses the archive, writing nothing,
when any member would land outside the destination folder or is something a dataset never
needs:

* a name that is absolute or climbs out with ``..`` (``../evil.txt``, ``/etc/x``);
* a symbolic or hard link whose target lies outside the folder, or is absolute;
* a path that passes through a symbolic link of the archive itself (a link that stays inside
  the folder, followed by ``..``, could otherwise reach out of it);
* a device file, a FIFO or any other special file (tar); a symbolic link (zip, which Python
  cannot extract as a link).

Only then are the members extracted. Every refusal is a :class:`DataFileError` naming the
archive and the member.
"""
from __future__ import annotations

import lzma
import os
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path

from datamodules.base import DataFileError

__all__ = ["safe_extract"]

_FilterError = getattr(tarfile, "FilterError", ())  # Python >= 3.11.4 (and 3.8.17, 3.9.17 ...)


def _advice(archive: Path) -> str:
    return f"delete {archive} and download it again from its official source"


def _walk(start: list[str], path: str, links: set[str]) -> list[str] | None:
    """Follow ``path`` (POSIX, relative) from the folder ``start`` (a list of components below
    the destination) without touching the disk: the components it ends on, or ``None`` when it
    leaves the destination or goes through one of the archive's own symbolic links ``links``."""
    parts = list(start)
    steps = [p for p in path.split("/") if p not in ("", ".")]
    for i, step in enumerate(steps):
        if step == "..":
            if not parts:
                return None
            parts.pop()
            continue
        parts.append(step)
        if i < len(steps) - 1 and "/".join(parts) in links:
            return None  # a link followed by more steps: where it leads depends on the link
    return parts


def _is_absolute(name: str) -> bool:
    return name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":")  # POSIX, or C:...


def _inside(dest: Path, parts: list[str]) -> bool:
    """Whether the path ``parts`` below ``dest`` stays in it once links already on disk (left
    there before this extraction) are resolved."""
    root = os.path.realpath(dest)
    target = os.path.realpath(os.path.join(root, *parts)) if parts else root
    return target == root or target.startswith(root + os.sep)


def _check(archive: Path, dest: Path, entries: list[tuple[str, str, str]]) -> None:
    """``entries``: (member name, kind, link target) with kind ``file``, ``dir``, ``symlink``,
    ``hardlink`` or a description of a special file. Raise on the first unsafe member."""
    links = set()
    for name, kind, _ in entries:
        if kind == "symlink":
            parts = _walk([], name, set())
            if parts:
                links.add("/".join(parts))
    for name, kind, target in entries:
        def refuse(why: str) -> None:
            raise DataFileError(f"{archive} holds the member {name!r}, which {why}; nothing was "
                                f"extracted: {_advice(archive)}")

        if kind not in ("file", "dir", "symlink", "hardlink"):
            refuse(f"is {kind} (a dataset archive holds only files, folders and links)")
        if _is_absolute(name):
            refuse(f"has an absolute path and would be written outside {dest}")
        parts = _walk([], name, links)
        if parts is None or not _inside(dest, parts):
            refuse(f"would be written outside {dest}")
        if kind == "symlink":
            if _is_absolute(target):
                refuse(f"is a symbolic link to the absolute path {target!r}, outside {dest}")
            end = _walk(parts[:-1], target, links)
            if end is None or not _inside(dest, end):
                refuse(f"is a symbolic link to {target!r}, which points outside {dest}")
        elif kind == "hardlink":
            end = None if _is_absolute(target) else _walk([], target, links)
            if end is None or not _inside(dest, end):
                refuse(f"is a hard link to {target!r}, which lies outside {dest}")


def _tar_kind(member: tarfile.TarInfo) -> str:
    if member.isreg():
        return "file"
    if member.isdir():
        return "dir"
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hardlink"
    if member.ischr() or member.isblk():
        return "a device file"
    if member.isfifo():
        return "a FIFO"
    return "a special file"


def _zip_kind(info: zipfile.ZipInfo) -> str:
    kind = stat.S_IFMT(info.external_attr >> 16)  # the Unix file type, when the zip records one
    if info.is_dir():
        return "dir"
    if kind == stat.S_IFLNK:
        return "a symbolic link (which Python extracts as a plain file, not a link)"
    if kind not in (0, stat.S_IFREG):
        return "a special file"
    return "file"


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike) -> list[str]:
    """Extract the tar (plain or compressed) or zip ``archive`` into the folder ``dest``
    (created if needed), after checking every member (see the module docstring); the names
    of the members extracted. A file that is neither, or one cut short, is a
    :class:`DataFileError` naming it."""
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise FileNotFoundError(f"{archive}: no such archive")
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                infos = zf.infolist()
                _check(archive, dest, [(i.filename, _zip_kind(i), "") for i in infos])
                dest.mkdir(parents=True, exist_ok=True)
                zf.extractall(dest)
                return [i.filename for i in infos]
        if tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                members = tf.getmembers()  # reads the whole archive: most truncations fail here
                _check(archive, dest, [(m.name, _tar_kind(m), m.linkname) for m in members])
                dest.mkdir(parents=True, exist_ok=True)
                if hasattr(tarfile, "data_filter"):  # also drops set-uid bits and odd permissions
                    tf.extractall(dest, members=members, filter="data")
                else:
                    tf.extractall(dest, members=members)
                return [m.name for m in members]
    except DataFileError:
        raise
    except _FilterError as err:  # a second line of defence behind _check
        raise DataFileError(f"{archive} holds a member that cannot be extracted safely ({err}): "
                            f"{_advice(archive)}") from None
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError, OSError) as err:
        if isinstance(err, OSError) and err.errno is not None:
            raise  # the disk, not the archive (no space left, permission denied ...)
        raise DataFileError(f"{archive} is truncated or corrupt ({err.__class__.__name__}: {err}): "
                            f"{_advice(archive)}") from None
    raise DataFileError(f"{archive} is not a tar or zip archive, or is cut short before its first "
                        f"member: {_advice(archive)}")
