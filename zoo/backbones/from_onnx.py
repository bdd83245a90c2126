"""The ``onnx`` adapter: a frozen onnxruntime text encoder with its WordPiece tokenizer file."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from zoo.backbones.core import LoadedBackbone, register_adapter
from zoo.errors import ZooError
from zoo.record import ModelRecord
from zoo.weights import resolve_weights


def _wordpiece_tokenizer(record: ModelRecord, default_max_length: int):
    """A ``tokenizers.Tokenizer`` from ``extra.tokenizer_file`` with truncation/padding set for this model."""
    from tokenizers import Tokenizer

    loc = record.extra.get("tokenizer_file")
    if not loc:
        raise ZooError(f"{record.id}: the record names no tokenizer (extra.tokenizer_file)")
    path = resolve_weights(record, str(loc))
    tok = Tokenizer.from_file(str(path))
    max_len = int(record.max_length or default_max_length)
    # The shipped tokenizer.json hard-codes truncation and fixed padding at 128: replace both.
    tok.no_truncation()
    tok.no_padding()
    tok.enable_truncation(max_length=max_len)
    pad_token = "[PAD]" if tok.token_to_id("[PAD]") is not None else "<pad>"
    tok.enable_padding(pad_id=tok.token_to_id(pad_token) or 0, pad_token=pad_token)
    return tok, max_len


@register_adapter("onnx")
def _load_onnx(record: ModelRecord, *, device: str) -> LoadedBackbone:
    import onnxruntime as ort

    path = resolve_weights(record)
    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    sess = ort.InferenceSession(str(path), providers=providers)
    input_names = [i.name for i in sess.get_inputs()]
    output_names = [o.name for o in sess.get_outputs()]
    # paraphrase-MiniLM-L3-v2 was trained with max_seq_length 128; use the record's value when it has one.
    tok, max_len = _wordpiece_tokenizer(record, 128)
    sentence_output = record.extra.get("sentence_output")
    if sentence_output is not None and str(sentence_output) not in output_names:
        raise ZooError(f"{record.id}: the graph has no output {sentence_output!r} (outputs: {output_names})")

    def preprocess(texts: Sequence[str]) -> dict[str, np.ndarray]:
        enc = tok.encode_batch(list(texts))
        feeds = {
            "input_ids": np.array([e.ids for e in enc], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64),
        }
        return {k: v for k, v in feeds.items() if k in input_names}

    def run(texts: Sequence[str]) -> np.ndarray:
        feeds = preprocess(texts)
        if sentence_output is not None:
            return sess.run([str(sentence_output)], feeds)[0]
        hidden = sess.run([output_names[0]], feeds)[0]
        mask = feeds["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(1) / np.clip(mask.sum(1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)

    dim = int(run(["a"]).shape[1])
    how = (f"the graph's pooled output {sentence_output!r} (masked mean, not normalised)" if sentence_output is not None
           else "masked mean of the token outputs, L2-normalised")
    note = (f"Frozen ONNX extractor ({how}; max_length {max_len}): onnxruntime runs inference only, so the "
            "encoder cannot be fine-tuned here; train the head on its features.")
    return LoadedBackbone(record=record, model=None, head=None, preprocess=preprocess, feature_dim=dim,
                          trainable=False, note=note, _features_fn=run)

