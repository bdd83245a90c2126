"""Adapter fixes found by benchmarks/loader_coverage.py, each on a small model of its own config with random
weights, saved in the layout of its Hub repo and loaded from a ``file:`` folder:

- timm tags whose pretrained_cfg has ``crop_mode`` ``squash`` (131 catalog tags) or ``border`` (6) are
  preprocessed as timm's own eval transform does (zoo used to centre-crop them all);
- GPT-2-style tokenizers without a pad token batch texts of different lengths (padded with end-of-text);
- TrOCR-style ``vision-encoder-decoder`` repos (which ``AutoModel`` does not map) load their image encoder.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from zoo._compat import ensure_torchvision  # noqa: E402

ensure_torchvision()

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from zoo import backbones as bb  # noqa: E402
from zoo.record import ModelRecord  # noqa: E402

skdata = pytest.importorskip("skimage.data", reason="scikit-image provides the test photos")
TEXTS = ["a gorgeous , witty , seductive movie .", "dull .",
         "the film is strictly routine , with a story that never quite comes together and a cast that seems lost ."]


@pytest.mark.parametrize("crop_mode", ["squash", "border"])
def test_timm_crop_mode_follows_the_pretrained_cfg(tmp_path, crop_mode):
    import timm
    from timm.models._hub import save_for_hf

    model = timm.create_model("test_vit.r160_in1k", pretrained=False)
    save_for_hf(model, str(tmp_path), safe_serialization=True)
    cfg_path = tmp_path / "config.json"
    doc = json.loads(cfg_path.read_text())
    doc["pretrained_cfg"]["crop_mode"] = crop_mode
    cfg_path.write_text(json.dumps(doc))
    pc = doc["pretrained_cfg"]
    rec = ModelRecord(id=f"local:test_vit-{crop_mode}", library="timm", weights=f"file:{tmp_path}",
                      input_size=list(pc["input_size"]), mean=list(pc["mean"]), std=list(pc["std"]),
                      interpolation=pc["interpolation"], crop_pct=pc["crop_pct"])
    lb = bb.load_backbone(rec, device="cpu", fetch=False)
    photo = skdata.coffee()  # 400 x 600: a centre crop, a squash and a padded border all differ
    ref = timm.data.create_transform(**timm.data.resolve_data_config(pretrained_cfg=pc))(Image.fromarray(photo))
    x = lb.preprocess(photo)
    assert tuple(x.shape) == tuple(pc["input_size"])
    assert float((x - ref).abs().max()) < 1e-4
    centre = timm.data.create_transform(**{**timm.data.resolve_data_config(pretrained_cfg=pc), "crop_mode": "center"})
    assert float((centre(Image.fromarray(photo)) - ref).abs().max()) > 0.1  # the mode matters on this photo
    assert lb.features(torch.stack([x])).shape == (1, lb.feature_dim)


def _bpe(specials: list[str]) -> tuple[dict, list]:
    from tokenizers import ByteLevelBPETokenizer

    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(TEXTS * 20, vocab_size=300, special_tokens=specials, show_progress=False)
    model = json.loads(tok._tokenizer.to_str())["model"]
    return model["vocab"], [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]


def test_transformers_text_without_a_pad_token_batches(tmp_path):
    from transformers import GPT2Config, GPT2Model, GPT2Tokenizer

    vocab, merges = _bpe(["<|endoftext|>"])
    tok = GPT2Tokenizer(vocab=vocab, merges=merges)
    assert tok.pad_token is None  # as GPT-2's own tokenizer (DialogRPT's repos)
    tok.save_pretrained(str(tmp_path))
    GPT2Model(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1, n_head=2, bos_token_id=tok.eos_token_id,
                         eos_token_id=tok.eos_token_id)).save_pretrained(str(tmp_path))
    rec = ModelRecord(id="local:tiny-gpt2", modality="text", library="transformers", weights=f"file:{tmp_path}")
    lb = bb.load_backbone(rec, device="cpu", fetch=False)
    feats = lb.features(TEXTS)
    assert feats.shape == (3, 32) and np.isfinite(feats).all()
    one = lb.features(TEXTS[1:2])  # padding is masked out of the mean: alone or in a batch, the same vector
    np.testing.assert_allclose(feats[1], one[0], atol=1e-5)


def test_transformers_vision_encoder_decoder_loads_its_encoder(tmp_path):
    from transformers import (
        TrOCRConfig,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessor,
    )

    enc = ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                    image_size=64, patch_size=16)
    dec = TrOCRConfig(d_model=32, decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=64, vocab_size=100,
                      is_decoder=True, add_cross_attention=True)
    VisionEncoderDecoderModel(VisionEncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)).save_pretrained(
        str(tmp_path))
    ViTImageProcessor(size={"height": 64, "width": 64}).save_pretrained(str(tmp_path))
    rec = ModelRecord(id="local:tiny-trocr", modality="image", library="transformers", weights=f"file:{tmp_path}")
    lb = bb.load_backbone(rec, device="cpu", fetch=False)
    x = torch.stack([lb.preprocess(skdata.chelsea()), lb.preprocess(skdata.coffee())])
    assert tuple(x.shape) == (2, 3, 64, 64)
    feats = lb.features(x)
    assert feats.shape == (2, 32) and np.isfinite(feats).all()
    assert "encoder" in lb.note
