"""Parameter counts read from weight files without torch: the safetensors JSON header, or a torch zip
checkpoint's pickled tensor metadata through a restricted unpickler that builds no tensor and runs no code.

They count floating-point tensors only, minus BatchNorm running statistics, so they equal
``sum(p.numel() for p in model.parameters())`` (integer buffers such as ``position_ids`` are not parameters).
Used by the local source (``zoo.sources.local``) to describe a folder before anything is loaded.
"""

from __future__ import annotations

import collections
import json
import math
import pickle
import re
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

_BN_STATS = ("running_mean", "running_var", "num_batches_tracked")
_FLOAT_DTYPES = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2", "F8_E4M3FN", "F8_E5M2FNUZ", "F8_E4M3FNUZ"}




def _counts(name: str, dtype_is_float: bool) -> bool:
    return dtype_is_float and not name.endswith(_BN_STATS)


def safetensors_header(path: str | Path) -> dict[str, Any]:
    """The JSON header of a ``.safetensors`` file: ``{name: {"dtype", "shape", "data_offsets"}, ...}``."""
    p = Path(path)
    size = p.stat().st_size
    with open(p, "rb") as fh:
        head = fh.read(8)
        if len(head) != 8:
            raise ValueError(f"{p.name}: too short for a safetensors file")
        n = int.from_bytes(head, "little")
        if n <= 0 or n > min(size - 8, 100 * 2**20):
            raise ValueError(f"{p.name}: bad safetensors header length {n}")
        header = json.loads(fh.read(n).decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError(f"{p.name}: safetensors header is not a JSON object")
    return header


def safetensors_params(paths: Iterable[Path]) -> int:
    total = 0
    for p in paths:
        for name, info in safetensors_header(p).items():
            if name == "__metadata__" or not isinstance(info, dict):
                continue
            if _counts(name, str(info.get("dtype", "")).upper() in _FLOAT_DTYPES):
                total += math.prod(int(x) for x in info.get("shape", []))
    return total


class _TensorMeta:
    __slots__ = ("storage", "offset", "shape")

    def __init__(self, storage: Any, offset: int, shape: tuple[int, ...]):
        self.storage, self.offset, self.shape = storage, offset, tuple(int(x) for x in shape)


class _StorageType:
    def __init__(self, name: str):
        self.name = name


def _rebuild_tensor(storage, storage_offset, size, *_a, **_k):
    return _TensorMeta(storage, storage_offset, size)


def _rebuild_parameter(data, *_a, **_k):
    return data


class _MetaUnpickler(pickle.Unpickler):
    """Reads a torch zip checkpoint's ``data.pkl`` into shapes only: builds no tensor, imports nothing."""

    _ALLOWED = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module == "torch" and (name.endswith("Storage") or name in ("float32", "float16", "bfloat16", "int64")):
            return _StorageType(name)
        if module in ("builtins", "__builtin__") and name in ("set", "frozenset", "slice"):
            return {"set": set, "frozenset": frozenset, "slice": slice}[name]
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        return tuple(pid) if isinstance(pid, (list, tuple)) else pid


def _storage_is_float(storage: Any) -> bool:
    # pid = ("storage", storage_type, key, location, numel); storage_type is e.g. torch.FloatStorage
    st = storage[1] if isinstance(storage, tuple) and len(storage) > 1 else None
    name = getattr(st, "name", "")
    return name in ("FloatStorage", "HalfStorage", "BFloat16Storage", "DoubleStorage", "float32", "float16",
                    "bfloat16") or name.startswith("Float8")


def torch_bin_params(paths: Iterable[Path]) -> int | None:
    """Parameter count of torch zip checkpoints (``pytorch_model.bin``), or ``None`` if unreadable."""
    total = 0
    for p in paths:
        try:
            with zipfile.ZipFile(p) as zf:
                pkl = next((n for n in zf.namelist() if n.endswith("data.pkl")), None)
                if pkl is None:
                    return None
                obj = _MetaUnpickler(zf.open(pkl)).load()
        except (zipfile.BadZipFile, pickle.UnpicklingError, OSError, EOFError, ValueError, TypeError,
                AttributeError, IndexError, KeyError):
            return None
        seen: set[Any] = set()
        for name, t in _iter_tensors(obj, ""):
            key = (t.storage[2] if isinstance(t.storage, tuple) and len(t.storage) > 2 else id(t.storage),
                   t.offset, t.shape)
            if key in seen:  # tied weights share one storage
                continue
            seen.add(key)
            if _counts(name, _storage_is_float(t.storage)):
                total += math.prod(t.shape)
    return total


def _iter_tensors(obj: Any, prefix: str) -> Iterator[tuple[str, _TensorMeta]]:
    if isinstance(obj, _TensorMeta):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _iter_tensors(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _iter_tensors(v, f"{prefix}.{i}" if prefix else str(i))


_SHARD_ST = re.compile(r"^model-\d+-of-\d+\.safetensors$")
_SHARD_BIN = re.compile(r"^pytorch_model-\d+-of-\d+\.bin$")


def weight_files(d: Path, timm_style: bool = False) -> tuple[str, list[Path]]:
    """``("safetensors" | "bin" | "", files)``: one family of weight files, the preferred one first."""
    if (d / "model.safetensors").is_file():
        return "safetensors", [d / "model.safetensors"]
    if (d / "pytorch_model.bin").is_file():
        return "bin", [d / "pytorch_model.bin"]
    if timm_style:
        return "", []
    names = sorted(p.name for p in d.iterdir() if p.is_file())
    shards = [d / n for n in names if _SHARD_ST.match(n)]
    if shards:
        return "safetensors", shards
    shards = [d / n for n in names if _SHARD_BIN.match(n)]
    if shards:
        return "bin", shards
    other = [d / n for n in names if n.endswith(".safetensors")]
    if other:
        return "safetensors", other
    return "", []


def params_of(kind: str, files: list[Path]) -> int | None:
    if not files:
        return None
    if kind == "safetensors":
        return safetensors_params(files)
    return torch_bin_params(files)
