"""Layer-mean features of transformer text encoders (issue 20 item 1): which layers zoo scores, and the pooling.

zoo scores a transformer text encoder (a ``text`` record loaded by the ``sentence-transformers`` or the
``transformers`` adapter) on the **mean over its transformer layers of the attention-mask mean-pooled hidden
states** (``hidden_states[1:]``: the embedding output is not a layer), not on the model's own pooled output.
TransformerRanker (Garbas et al., ACL Findings 2024) found this "layer mean" ranks language models far better
than the last layer; bench_ranking.py adopted it by the rule pre-registered there (BENCHMARKS.md, "Ranking that
beats the priors (issue 20)"). ONNX exports and averaged word vectors expose no layers and keep their features;
vision-language text towers keep their projected embedding (the projection is what the tower is for).

The choice is a ``layers`` value, the one thing :func:`zoo.backbones.load_backbone`, :func:`zoo.features.extract`
(and its cache key) and ``Candidate.load()`` pass around:

- ``None``: the model's own output (the sentence-transformers pipeline's ``sentence_embedding``, the
  ``transformers`` adapter's pooling of the last hidden states);
- ``"all"`` (:data:`ALL`): every transformer layer, 1..L;
- a sequence of layer numbers (1-based, 1..L): the mean over those layers.

:func:`scoring_layers` is the rule zoo scores with; a loaded backbone's ``layers`` says what its
:meth:`~zoo.backbones.LoadedBackbone.features` returns (the resolved numbers), :func:`describe` says it in words.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from zoo.errors import UsageError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from zoo.record import ModelRecord

ALL = "all"
LayerSpec = str | Sequence[int] | None
# The adapters that load transformer text encoders with layers zoo can read (hidden_states).
LAYERED_LIBRARIES = ("sentence-transformers", "transformers")


def scoring_layers(record: ModelRecord, modality: str | None = None) -> str | None:
    """The layers zoo scores ``record`` on for ``modality`` data (default: the record's own): :data:`ALL` for a
    transformer text encoder, None (the model's own output) for every other model and for precomputed arrays."""
    data = modality or record.modality
    if data == "text" and record.modality == "text" and record.library in LAYERED_LIBRARIES:
        return ALL
    return None


def requested(record: ModelRecord, modality: str, layers: LayerSpec = "auto") -> LayerSpec:
    """The layers asked for on ``modality`` data: ``"auto"`` is :func:`scoring_layers`; precomputed arrays have none."""
    if modality == "array":
        return None
    return scoring_layers(record, modality) if layers == "auto" else check_spec(layers)


def check_spec(layers: LayerSpec) -> LayerSpec:
    """``layers`` as given, checked for its form (the numbers are checked against the model by :func:`resolve`)."""
    if layers is None or layers == ALL:
        return layers
    if isinstance(layers, str) or not isinstance(layers, Sequence) or not layers \
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in layers):
        raise UsageError(f"layers must be None (the model's own output), {ALL!r} or a non-empty list of layer "
                         f"numbers (1 = the first transformer layer), got {layers!r}.")
    return tuple(layers)


def resolve(layers: LayerSpec, n_layers: int, model_id: str = "") -> tuple[int, ...] | None:
    """The layer numbers ``layers`` stands for in a model with ``n_layers`` transformer layers (None stays None)."""
    layers = check_spec(layers)
    if layers is None:
        return None
    if layers == ALL:
        return tuple(range(1, n_layers + 1))
    bad = [i for i in layers if not 1 <= i <= n_layers]
    if bad:
        raise UsageError(f"{model_id or 'this model'} has transformer layers 1-{n_layers}; layers {bad} do not exist.")
    return tuple(layers)


def describe(layers: Sequence[int] | None) -> str:
    """In words: "mean of layers 1-6" (a contiguous run), "mean of layers 2, 4", or the model's own output."""
    if not layers:
        return "the model's own pooled output"
    nums = list(layers)
    if len(nums) > 1 and nums == list(range(nums[0], nums[-1] + 1)):
        return f"mean of layers {nums[0]}-{nums[-1]}"
    return f"mean of layer{'s' if len(nums) > 1 else ''} {', '.join(map(str, nums))}"


def layer_mean(hidden_states: Sequence[torch.Tensor], mask: torch.Tensor | None,
               layers: Sequence[int]) -> torch.Tensor:
    """``(N, hidden)``: the mean over ``layers`` (1-based into ``hidden_states``, whose [0] is the embedding
    output) of each layer's attention-mask mean over tokens (a row of padding only divides by 1, not 0)."""
    import torch

    first = hidden_states[0]
    if mask is None:
        m = torch.ones(first.shape[:2], dtype=first.dtype, device=first.device).unsqueeze(-1)
    else:
        m = mask.unsqueeze(-1).to(first.dtype)
    count = m.sum(1).clamp(min=1.0)
    pooled = [(hidden_states[i] * m).sum(1) / count for i in layers]
    return torch.stack(pooled).mean(0)


def encode_layer_mean(auto: Any, inputs: dict[str, torch.Tensor], layers: Sequence[int]) -> np.ndarray:
    """The layer-mean features of one tokenised batch: the HF model ``auto`` run with ``output_hidden_states``,
    then :func:`layer_mean` under the batch's attention mask, as float32 NumPy on the CPU."""
    out = auto(**inputs, output_hidden_states=True, return_dict=True)
    return layer_mean(out.hidden_states, inputs.get("attention_mask"), layers).float().cpu().numpy()
