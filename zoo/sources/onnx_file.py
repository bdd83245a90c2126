"""The catalog record of a local ``.onnx`` file, from its graph alone: modality from the inputs' names and
ranks, parameters from the initializers (shape and index constants of type int32/int64/bool excluded),
feature dimension from the first float output. Part of the local source (``zoo.sources.local``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from zoo.record import ModelRecord


class NotDescribed(ValueError):
    """The graph does not say what the model is (no input zoo recognises): describe it in a manifest."""


_ONNX_SKIP_INIT = {6, 7, 9}  # INT32, INT64, BOOL: shape and index constants, not weights
_ONNX_FLOAT = {1, 10, 11, 16}  # FLOAT, FLOAT16, DOUBLE, BFLOAT16
_TEXT_INPUTS = {"input_ids", "attention_mask", "token_type_ids", "input_mask", "segment_ids"}
_AUDIO_INPUTS = ("input_values", "input_features", "audio", "waveform", "wav", "pcm", "mel", "spectrogram")


def _dims(value_info: Any) -> list[int | str]:
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in shape.dim]


def onnx_record(p: Path, model_id: str, *, source: str, tokenizer: Path | None) -> ModelRecord:
    """The record of one ``.onnx`` file, read with ``load_external_data=False`` (no weights in memory)."""
    import onnx

    model = onnx.load(str(p), load_external_data=False)
    g = model.graph
    init_names = {i.name for i in g.initializer}
    params = sum(math.prod(i.dims) for i in g.initializer if i.data_type not in _ONNX_SKIP_INIT)
    inputs = [(i.name, i.type.tensor_type.elem_type, _dims(i)) for i in g.input if i.name not in init_names]
    outputs = [(o.name, o.type.tensor_type.elem_type, _dims(o)) for o in g.output]

    names = {n.lower() for n, _, _ in inputs}
    has_text = bool(names & _TEXT_INPUTS)
    image_in = next(((n, dims) for n, t, dims in inputs if t in _ONNX_FLOAT and len(dims) == 4), None)
    video_in = any(t in _ONNX_FLOAT and len(dims) == 5 for _, t, dims in inputs)
    audio_in = any(t in _ONNX_FLOAT and len(dims) in (2, 3) and any(a in n.lower() for a in _AUDIO_INPUTS)
                   for n, t, dims in inputs)
    if has_text and image_in:
        modality = "multimodal"
    elif has_text:
        modality = "text"
    elif image_in:
        modality = "image"
    elif video_in:
        modality = "video"
    elif audio_in:
        modality = "audio"
    else:
        desc = ", ".join(f"{n}{dims}" for n, _, dims in inputs) or "none"
        raise NotDescribed(f"cannot tell the modality of {p} from its inputs ({desc}); describe it in a manifest.")

    input_size = None
    if image_in:
        dims = image_in[1]
        c_first = [x for x in dims[1:] if isinstance(x, int) and x > 0]
        if len(c_first) == 3 and dims[1] in (1, 3, 4):
            input_size = [int(dims[1]), int(dims[2]), int(dims[3])]
        elif len(c_first) == 3 and dims[3] in (1, 3, 4):
            input_size = [int(dims[3]), int(dims[1]), int(dims[2])]
    feature_dim = next((dims[-1] for _, t, dims in outputs if t in _ONNX_FLOAT and dims
                        and isinstance(dims[-1], int) and dims[-1] > 0), None)
    tok = tokenizer if modality in ("text", "multimodal") else None
    meta = {m.key: m.value for m in model.metadata_props}
    return ModelRecord(
        id=model_id,
        modality=modality,
        tasks=[],
        architecture=None,
        library="onnx",
        params=params,
        feature_dim=feature_dim,
        input_size=input_size,
        tokenizer=str(tok) if tok else None,
        description=(model.doc_string.strip()[:400] if model.doc_string.strip()
                     else f"Local ONNX model {p.name} ({modality}; inputs {', '.join(n for n, _, _ in inputs)})."),
        weights=f"file:{p}",
        source=source,
        source_version=None,
        sources={"metadata": f"file:{p}"},
        extra={
            "path": str(p),
            "inputs": [{"name": n, "elem_type": t, "shape": dims} for n, t, dims in inputs],
            "outputs": [{"name": n, "elem_type": t, "shape": dims} for n, t, dims in outputs],
            "opset": max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None),
            "producer": f"{model.producer_name} {model.producer_version}".strip() or None,
            **({"metadata_props": meta} if meta else {}),
        },
    )
