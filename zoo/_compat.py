"""Make ``import torchvision`` (and so timm, transformers' vision models, sentence-transformers)
work when the installed torchvision wheel was built against a different torch build.

PyPI's torchvision is compiled against CUDA torch; with the CPU torch its ``_C`` extension fails
to load, and ``torchvision._meta_registrations`` then dies on ``register_fake("torchvision::nms")``
because the op was never defined. Defining the op schemas (no kernels) lets the import finish;
the detection ops stay unavailable, which a backbone registry never calls. On a normal install the
extension loads and this module does nothing.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_done = False
_lib = None  # keep the Library alive: dropping it unregisters the schemas


def ensure_torchvision() -> None:
    """Call before importing torchvision, timm, transformers models or sentence-transformers."""
    global _done, _lib
    if _done or "torchvision" in sys.modules:
        _done = True
        return
    _done = True
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return
    import torch

    if _extension_loads(torch, Path(spec.submodule_search_locations[0])):
        return
    if hasattr(torch.ops, "torchvision") and hasattr(torch.ops.torchvision, "nms"):
        return
    _lib = torch.library.Library("torchvision", "DEF")
    for schema in _SCHEMAS:
        _lib.define(schema)


def _extension_loads(torch, package_dir: Path) -> bool:
    for lib in sorted(package_dir.glob("_C*.so")) + sorted(package_dir.glob("_C*.pyd")):
        try:
            torch.ops.load_library(str(lib))
            return True
        except (OSError, RuntimeError):
            return False
    return False
