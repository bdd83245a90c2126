"""Reading a checkpoint file into a state dict (safetensors, or ``torch.load`` with ``weights_only=True``),
shared by the timm and torchvision adapters."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _load_state_dict(path: Path) -> dict[str, Any]:
    """The tensors of a ``.safetensors`` file, or of a torch checkpoint (unwrapped from a ``state_dict``,
    ``model`` or ``model_state`` entry when it holds one)."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    sd = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(sd, dict):
        for key in ("state_dict", "model", "model_state"):
            if key in sd and isinstance(sd[key], dict):
                sd = sd[key]
                break
    return sd

