"""Reading a checkpoint file into a state dict (safetensors, or ``torch.load`` with ``weights_only=True``),
shared by the timm and torchvision adapters."""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path
from typing import Any


def _load_state_dict(path: Path) -> dict[str, Any]:
    """The tensors of a ``.safetensors`` file, or of a torch checkpoint (unwrapped from a ``state_dict``,
    ``model`` or ``model_state`` entry when it holds one)."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        with warnings.catch_warnings():  # a refused pickle is said below; torch's note on its protocol is noise
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # the pickle names something other than tensors: code to run
        from zoo.errors import UntrustedModel

        found = re.search(r"(?:Unsupported global|Unsupported operand|GLOBAL)[^\n]*", str(e))
        what = f" ({found.group(0).strip()[:160]})" if found else ""
        raise UntrustedModel(
            f"{path} is refused: it is a pickle that asks to build objects other than tensors{what}, which could run "
            "code. zoo reads checkpoints with torch.load(weights_only=True) only; use its safetensors file, or "
            "re-save the state dict from a trusted copy with torch.save(model.state_dict(), ...).") from None
    if isinstance(sd, dict):
        for key in ("state_dict", "model", "model_state"):
            if key in sd and isinstance(sd[key], dict):
                sd = sd[key]
                break
    return sd

