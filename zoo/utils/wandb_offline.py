"""Read the metrics of an offline Weights & Biases run without uploading it.

An offline run stores its records in ``offline-run-*/run-<id>.wandb``: a 7-byte header
(``:W&B``, a 2-byte magic, a version byte) followed by 32 KiB blocks of framed records (a 4-byte
checksum, a 2-byte little-endian length, a 1-byte type: full, first, middle or last fragment);
each record is a ``wandb_internal_pb2.Record`` protobuf. We keep its ``history`` rows.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

_HEADER = 7
_BLOCK = 32768
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _records(data: bytes):
    if data[:4] != b":W&B":
        raise ValueError("not a wandb run file (missing ':W&B' header)")
    pos, pending = _HEADER, b""
    while pos + 7 <= len(data):
        left_in_block = _BLOCK - pos % _BLOCK
        if left_in_block < 7:  # the block tail is padding
            pos += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        pos += 7
        chunk = data[pos:pos + length]
        pos += length
        if kind == 0 and length == 0:
            continue
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            yield pending + chunk
            pending = b""


def read_history(run_file: str | Path) -> list[dict]:
    """The logged history rows (``{"metric": value, ...}``) of a ``run-*.wandb`` file."""
    from wandb.proto import wandb_internal_pb2 as pb

    rows = []
    for raw in _records(Path(run_file).read_bytes()):
        rec = pb.Record()
        rec.ParseFromString(raw)
        if rec.WhichOneof("record_type") != "history":
            continue
        row = {}
        for item in rec.history.item:
            key = item.key or "/".join(item.nested_key)
            row[key] = json.loads(item.value_json)
        rows.append(row)
    return rows


def find_run_files(root: str | Path) -> list[Path]:
    return sorted(Path(root).glob("**/offline-run-*/run-*.wandb"))
