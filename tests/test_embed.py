"""zoo.embed: the ONNX backend matches sentence-transformers, stays free of torch, and its cache and
model identity are robust. One ONNX export per test session (into a temporary cache dir)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from zoo import embed
from zoo.embed import DEFAULT_MODEL, EmbedError, get_embedder, model_identity

pytestmark = pytest.mark.slow

HEAVY = ("torch", "transformers", "sentence_transformers")

TEXTS = [
    "detect pneumonia in chest X-rays",
    "cat",
    "",
    "   ",
    "Which backbone should I fine-tune for 10-class satellite image classification with 500 labels?",
    "transfer learning " * 300,  # ~600 tokens: truncated at max_seq_length (256)
    ("ResNet-50 trained on ImageNet-1k with the A1 recipe. " * 12) + "Good for low-data medical imaging.",
    "Erkennung von Lungenentzündung auf Röntgenbildern des Brustkorbs",
    "détection de la pneumonie sur des radiographies thoraciques",
    "胸部X光片中的肺炎检测",
    "胸部X線写真で肺炎を検出する",
    "обнаружение пневмонии на рентгеновских снимках",
    "كشف الالتهاب الرئوي في صور الأشعة السينية",
    "ViT-B/16 @ 224px, IN-21k→IN-1k ft, top-1 85.4%, 86.6M params, 17.6 GFLOPs",
    "def f(x):\n    return torch.nn.functional.gelu(x @ W.T + b)",
    "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2",
    "[CLS] literal special tokens [SEP] and [MASK] in text",
    "SPEAKER DIARIZATION ON 8KHZ TELEPHONE AUDIO!!!",
    "🙂 emoji and symbols ∑∫√ ±",
    "a\tb\nc  d",
]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Nothing a test does lands in the real ~/.cache/zoo (hash memos included)."""
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "zoo-cache"))
    monkeypatch.delenv("ZOO_EMBED_MODEL", raising=False)


@pytest.fixture(scope="session")
def st_vectors(onnx_cache):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOO_CACHE_DIR", str(onnx_cache))
        st = get_embedder(backend="sentence-transformers")
        return st.model_id, st.dim, st.encode(TEXTS)


def test_onnx_matches_sentence_transformers(use_cache, st_vectors):
    onnx = get_embedder(backend="onnx")
    assert onnx.backend == "onnx"
    st_id, st_dim, ref = st_vectors
    got = onnx.encode(TEXTS)
    assert got.dtype == np.float32 and got.shape == ref.shape == (len(TEXTS), onnx.dim) and onnx.dim == st_dim == 384
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cos = (got * ref).sum(axis=1)
    worst = int(cos.argmin())
    assert cos.min() >= 0.999, f"row {worst} ({TEXTS[worst][:40]!r}): cosine {cos[worst]:.6f}"
    # same identity for both backends: stored vectors stay valid across them
    assert onnx.model_id == st_id and onnx.model_id.startswith(DEFAULT_MODEL + "@")
    # batching (and so padding) does not change the vectors; order is preserved
    small = onnx.encode(TEXTS, batch_size=3)
    assert (small * got).sum(axis=1).min() >= 0.99999
    single = onnx.encode([TEXTS[5]])
    assert float(single[0] @ got[5]) >= 0.99999


def test_encode_shapes(use_cache):
    emb = get_embedder()
    assert emb.backend == "onnx"
    assert emb.encode([]).shape == (0, emb.dim)
    assert emb.encode("one query").shape == (1, emb.dim)
    with pytest.raises(TypeError):
        emb.encode(["ok", None])


def test_onnx_path_imports_no_torch(use_cache):
    code = (
        "import json, sys\n"
        "from zoo.embed import get_embedder\n"
        "e = get_embedder()\n"
        "v = e.encode(['detect pneumonia in chest X-rays'])\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "print(json.dumps({'backend': e.backend, 'shape': list(v.shape), 'heavy': heavy}))\n"
    )
    env = {**os.environ, "ZOO_CACHE_DIR": str(use_cache), "HF_HUB_OFFLINE": "1"}
    env.pop("ZOO_EMBED_MODEL", None)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60,
                          cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"backend": "onnx", "shape": [1, 384], "heavy": []}
    assert "exporting" not in proc.stderr


def test_model_id_follows_the_files(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    _, src = embed.resolve_model(None)
    folder = tmp_path / "my-minilm"
    shutil.copytree(src, folder)
    assert model_identity() == model_identity(src) and model_identity().startswith(DEFAULT_MODEL + "@")

    first = model_identity(folder)
    assert first.startswith("my-minilm@") and first.split("@")[1] == model_identity().split("@")[1]
    assert model_identity(folder) == first  # memoised, stable

    (folder / "README.md").write_text("edited docs do not change the vectors")
    assert model_identity(folder) == first

    weights = folder / "model.safetensors"
    with open(weights, "r+b") as f:  # flip one byte of tensor data, same size
        f.seek(-5, os.SEEK_END)
        b = f.read(1)
        f.seek(-5, os.SEEK_END)
        f.write(bytes([b[0] ^ 0x01]))
    second = model_identity(folder)
    assert second != first

    cfg = json.loads((folder / "config.json").read_text())
    cfg["layer_norm_eps"] = 1e-6
    (folder / "config.json").write_text(json.dumps(cfg))
    third = model_identity(folder)
    assert third not in (first, second)

    pooling = folder / "1_Pooling" / "config.json"
    pooling.write_text(pooling.read_text().replace('"pooling_mode_cls_token": false', '"pooling_mode_cls_token": true'))
    assert model_identity(folder) not in (first, second, third)


def test_truncated_export_is_made_again(onnx_cache, tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    shutil.copytree(onnx_cache / "onnx", cache / "onnx")
    monkeypatch.setenv("ZOO_CACHE_DIR", str(cache))
    (path,) = (cache / "onnx").glob("*/model.onnx")
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)

    emb = get_embedder(backend="onnx")
    err = capsys.readouterr().err
    assert "truncated" in err and "exporting" in err
    assert emb.onnx_path == path and path.stat().st_size == json.loads((path.parent / "meta.json").read_text())["size"]
    assert emb.encode(["cat"]).shape == (1, 384)


def test_unreadable_export_is_reported_not_crashed(onnx_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    (src,) = (onnx_cache / "onnx").glob("*/meta.json")
    meta = json.loads(src.read_text())
    out = embed._export_dir(meta["model_id"])
    out.mkdir(parents=True)
    (out / "model.onnx").write_bytes(b"\x00garbage" * 100)
    meta["size"] = 800
    (out / "meta.json").write_text(json.dumps(meta))
    session, problem = embed._try_open_export(out, meta["model_id"])
    assert session is None and problem.startswith("unreadable by onnxruntime")
    assert embed._try_open_export(out, "other/model@123")[1].startswith("stale")
    with pytest.raises(EmbedError, match="unreadable by onnxruntime"):
        embed._onnx_embedder(embed.ModelSpec(embed.resolve_model(None)[1]), meta["model_id"], allow_export=False)
    (out / "meta.json").unlink()
    assert embed._try_open_export(out, meta["model_id"])[1].startswith("incomplete")


def test_models_outside_the_onnx_path(tmp_path):
    folder = tmp_path / "with-dense"
    (folder / "2_Dense").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8}))
    (folder / "tokenizer.json").write_text("{}")
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
    ]))
    spec = embed.ModelSpec(folder)
    assert "Dense" in spec.onnx_problem
    with pytest.raises(EmbedError, match="cannot run this model"):
        get_embedder(folder, backend="onnx")

    (folder / "modules.json").unlink()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 8}))
    assert "llama" in embed.ModelSpec(folder).onnx_problem


def test_bad_arguments(tmp_path):
    with pytest.raises(EmbedError, match="backend"):
        get_embedder(backend="tensorrt")
    with pytest.raises(EmbedError, match="does not exist"):
        get_embedder(str(tmp_path / "nope"))


def test_pooling_modes_match_sentence_transformers_definitions():
    hidden = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    mask = np.array([[1, 1, 0], [1, 0, 0]])
    np.testing.assert_allclose(embed._pool(hidden, mask, ("mean",)), [[1, 2], [6, 7]])
    np.testing.assert_allclose(embed._pool(hidden, mask, ("cls",)), [[0, 1], [6, 7]])
    np.testing.assert_allclose(embed._pool(hidden, mask, ("max",)), [[2, 3], [6, 7]])
    both = embed._pool(hidden, mask, ("cls", "mean_sqrt_len_tokens"))
    np.testing.assert_allclose(both, [[0, 1, 2 / np.sqrt(2), 4 / np.sqrt(2)], [6, 7, 6, 7]], rtol=1e-6)


def test_env_var_picks_the_model(monkeypatch, tmp_path):
    default_id = model_identity()
    monkeypatch.setenv("ZOO_EMBED_MODEL", str(embed.resolve_model(DEFAULT_MODEL)[1]))
    assert model_identity() == default_id
    monkeypatch.setenv("ZOO_EMBED_MODEL", "all-MiniLM-L6-v2")
    assert model_identity() == default_id
    monkeypatch.setenv("ZOO_EMBED_MODEL", str(tmp_path / "missing"))
    with pytest.raises(EmbedError, match="does not exist"):
        get_embedder()


def test_query_chunks_keep_sentences_whole_and_within_budget():
    from zoo.embed import query_chunks

    text = "First sentence is here. Thanks! " + " ".join(f"w{i}" for i in range(25)) + ". Last one; with a clause."
    parts = query_chunks(text, budget=10)
    assert parts[0] == "First sentence is here. Thanks!"  # a two-word sentence joins the one before
    assert all(len(p.split()) <= 10 for p in parts)
    assert " ".join(parts).split() == text.split()  # nothing lost, nothing reordered


def test_a_long_query_is_not_truncated(use_cache):
    emb = get_embedder()
    short = "bird songs recorded by garden microphones"
    assert np.allclose(emb.encode_query(short), emb.encode([short])[0])  # what fits is encoded as it is
    padding = "The budget was approved after a long meeting with the whole team. " * 40
    plain = emb.encode([padding + short])[0]  # the encoder alone never reads the end
    assert np.allclose(plain, emb.encode([padding])[0], atol=1e-3)
    ref = emb.encode(["classify sound recordings", "classify images", "classify text documents"])
    for reference in (None, ref):
        long = emb.encode_query(padding + short, reference)
        assert abs(np.linalg.norm(long) - 1) < 1e-5
        assert long @ emb.encode([short])[0] > plain @ emb.encode([short])[0] + 0.05
