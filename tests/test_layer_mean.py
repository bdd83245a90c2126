"""Layer-mean features of transformer text encoders (issue 20 item 1, zoo.backbones.layers) with the REAL offline
all-MiniLM-L6-v2: zoo's scored features equal the benchmark's own implementation, are cached under a key that names
the layers, recorded on the candidate and in the stored run, and handed over again by Candidate.load()."""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks import ranking_variants as rv  # noqa: E402
from zoo import backbones as bb  # noqa: E402
from zoo import features as zf  # noqa: E402
from zoo.data import load_sample  # noqa: E402
from zoo.errors import UsageError  # noqa: E402
from zoo.record import ModelRecord  # noqa: E402
from zoo.sources.manifest import iter_records  # noqa: E402
from zoo.weights import is_available  # noqa: E402

RECORDS = {r.id: r for r in iter_records(ROOT / "zoo" / "manifests" / "offline.yaml")}
MINILM = RECORDS["local:all-MiniLM-L6-v2"]
L3_ONNX = RECORDS["local:paraphrase-MiniLM-L3-v2.onnx"]
pytestmark = pytest.mark.skipif(not is_available(MINILM.weights), reason="all-MiniLM-L6-v2 not installed")

ROWS = [
    ("A man is playing a guitar.", "music"), ("Someone strums an acoustic guitar for hours on end.", "music"),
    ("The band played all night.", "music"), ("She sang a song with the choir.", "music"),
    ("The orchestra tuned its violins before the concert began.", "music"),
    ("The new tax law takes effect next year.", "law"), ("Parliament changed the income tax rules.", "law"),
    ("The court ruled on the contract.", "law"), ("A judge dismissed the appeal.", "law"),
    ("The lawyers filed a motion to delay the trial until spring.", "law"),
    ("The striker scored twice in the final.", "sport"), ("Rain stopped the cricket match.", "sport"),
    ("She won the marathon in record time.", "sport"), ("The team lost at home again.", "sport"),
    ("A late goal decided the derby in front of a full stadium.", "sport"),
]


@pytest.fixture(autouse=True)
def _cache(use_cache):
    zf.clear_cache()  # the shared test cache (conftest's use_cache: the query encoder exported once) starts empty


@pytest.fixture
def texts_csv(tmp_path) -> Path:
    path = tmp_path / "texts.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(ROWS)
    return path


def test_scored_features_are_the_benchmarks_layer_mean_cached_under_their_own_key(texts_csv):
    sample = load_sample(texts_csv)
    scored = zf.extract(MINILM, sample)
    ref, layers = rv.layer_mean_features(MINILM, sample)
    assert scored.layers == layers == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose(scored.features, ref, atol=1e-5)
    # The pooled output is another cache entry: cached first, it is never read back as the layer mean.
    pooled = zf.extract(MINILM, sample, layers=None)
    assert pooled.layers is None and pooled.key != scored.key and not pooled.cached
    np.testing.assert_allclose(np.linalg.norm(pooled.features, axis=1), 1.0, atol=1e-5)  # sentence_embedding
    assert np.abs(pooled.features - scored.features).max() > 0.1
    again = zf.extract(MINILM, sample)
    assert again.cached and again.layers == layers
    np.testing.assert_array_equal(again.features, scored.features)
    info = {e["key"]: e for e in zf.cache_info()}
    assert info[scored.key]["layers"] == layers and info[pooled.key]["layers"] is None
    meta = (zf.features_dir() / f"{scored.key}.json").read_text()
    assert '"mean of layers 1-6"' in meta
    assert zf.cached(MINILM, sample)[0].tobytes() == scored.features.tobytes()  # the bootstrap's read
    # Models without layers keep their features and their old key (no "layers" in it).
    assert bb.layers.scoring_layers(L3_ONNX) is None and bb.layers.scoring_layers(MINILM) == "all"
    assert zf.feature_key(L3_ONNX, sample) == zf.feature_key(L3_ONNX, sample, layers=None)


def test_load_backbone_layers_and_the_transformers_adapter(texts_csv):
    texts = [t for t, _ in ROWS]
    plain = bb.load_backbone(MINILM, device="cpu")
    assert plain.layers is None and plain.layers_text == "the model's own pooled output"
    lm = bb.load_backbone(MINILM, device="cpu", layers="all")
    assert lm.layers == (1, 2, 3, 4, 5, 6) and lm.layers_text == "mean of layers 1-6"
    feats = lm.features(texts, batch_size=4)  # batches of 4: padding does not change a row
    np.testing.assert_allclose(feats, zf.extract(MINILM, load_sample(texts_csv)).features, atol=1e-5)
    assert feats.shape == (len(texts), lm.feature_dim)
    # The same weights through the transformers adapter (AutoModel): the same layer mean; its last layer alone is
    # the adapter's own mean pooling.
    tf = ModelRecord(id="local:minilm-as-transformers", modality="text", library="transformers",
                     weights=f"file:{bb.resolve_weights(MINILM)}", max_length=256, feature_dim=384)
    np.testing.assert_allclose(bb.load_backbone(tf, device="cpu", layers="all").features(texts), feats, atol=1e-5)
    last = bb.load_backbone(tf, device="cpu", layers=[6])
    np.testing.assert_allclose(last.features(texts), bb.load_backbone(tf, device="cpu").features(texts), atol=1e-5)
    with pytest.raises(UsageError, match="layers 1-6"):
        bb.load_backbone(MINILM, device="cpu", layers=[7])
    with pytest.raises(UsageError, match="no transformer layers"):
        bb.load_backbone(L3_ONNX, device="cpu", layers=[1])
    assert bb.load_backbone(L3_ONNX, device="cpu", layers="all").layers is None  # no layers: its own output


def test_candidate_records_the_layers_and_load_hands_over_the_scored_features(texts_csv):
    import zoo
    from zoo.runs import StoredRun, get_run, save_run

    rec = zoo.recommend("sort short news sentences by topic", data=texts_csv, candidates=[MINILM.id, L3_ONNX.id],
                        scores=["logme", "knn"], probe_budget=0)
    cands = {c.id: c for c in rec.candidates}
    assert cands[MINILM.id].feature_layers == [1, 2, 3, 4, 5, 6] and cands[L3_ONNX.id].feature_layers is None
    sample = load_sample(texts_csv)
    scored = zf.extract(MINILM, sample)  # the cache entry zoo scored (read back, nothing extracted)
    assert scored.cached
    texts = [str(t) for t in sample.items]
    backbone = cands[MINILM.id].load(device="cpu")
    assert backbone.layers == (1, 2, 3, 4, 5, 6)
    np.testing.assert_allclose(backbone.features(texts), scored.features, atol=1e-5)
    onnx = cands[L3_ONNX.id].load(device="cpu")
    np.testing.assert_allclose(onnx.features(texts), zf.extract(L3_ONNX, sample).features, atol=1e-5)
    # The stored run keeps the layers, and its candidates load the same extractor.
    stored = {c.id: c for c in get_run(save_run(rec, options={})).candidates}
    assert stored[MINILM.id].feature_layers == [1, 2, 3, 4, 5, 6] and stored[L3_ONNX.id].feature_layers is None
    np.testing.assert_allclose(stored[MINILM.id].load(device="cpu").features(texts), scored.features, atol=1e-5)
    built = {c.id: c for c in StoredRun.from_recommendation(rec).candidates}
    assert built[MINILM.id].feature_layers == [1, 2, 3, 4, 5, 6]


def test_probe_measures_the_layer_mean_and_reprobes_a_pooled_result(texts_csv):
    from zoo.probe import probe
    from zoo.probe.results import ProbeResult, features_match

    first = probe(texts_csv, [MINILM.id], folds=3)
    res = first.results[0]
    assert res.feature_layers == [1, 2, 3, 4, 5, 6] and not res.from_registry
    second = probe(texts_csv, [MINILM.id], folds=3)
    assert second.results[0].from_registry and second.results[0].feature_layers == [1, 2, 3, 4, 5, 6]
    old = ProbeResult(**{**res.__dict__, "feature_layers": None})  # stored before zoo scored the layer mean
    assert not features_match(old, MINILM, "text") and features_match(res, MINILM, "text")
    assert features_match(old, L3_ONNX, "text")


def _result(shipped: bool) -> dict:
    """A stored bench_ranking result of three text models; scores chosen so the switch flips the order."""
    raw_lm = {"a": {"logme": 1.0, "knn": 0.9}, "b": {"logme": 0.0, "knn": 0.1}, "c": {"logme": 0.5, "knn": 0.5}}
    pooled = {"a": {"logme": -1.0, "knn": 0.0}}
    v = {"n": 30, "min_class": 10, "dims": {"a": 384, "b": 384, "c": 50}, "layers": {"a": [1, 2]},
         "non_embedding_params": {"a": 1, "b": 1, "c": 1}}
    if shipped:  # this zoo: raw scores on the layer mean, the pooled ones kept aside
        raw, v["pooled"], v["layer_mean"] = raw_lm, pooled, {}
    else:  # a run from before: raw scores on the pooled features
        raw, v["layer_mean"] = {**raw_lm, "a": pooled["a"]}, {"a": raw_lm["a"]}
    return {"task": "t", "models": ["a", "b", "c"], "candidates": ["a", "b", "c"], "raw_scores": raw,
            "description": {"a": 0.5, "b": 0.5, "c": 0.5}, "params": {"a": 10, "b": 10, "c": 10}, "variants": v}


def test_benchmark_layer_mean_switch_is_the_default_and_its_off_state_is_the_pooled_features():
    new, old = _result(True), _result(False)
    assert rv.shipped(new) == {"layer_mean"} and rv.shipped(old) == set()
    on_new, off_new = rv.variant_fused(new, {"layer_mean"}), rv.variant_fused(new, set())
    assert on_new == rv.variant_fused(old, {"layer_mean"}) and off_new == rv.variant_fused(old, set())
    assert on_new["a"] > on_new["c"] and off_new["a"] < off_new["c"]


def test_the_cli_says_which_features_were_scored(texts_csv):
    from click.testing import CliRunner

    from zoo.cli import cli

    run = CliRunner()
    out = run.invoke(cli, ["score", "--data", str(texts_csv), "--models", f"{MINILM.id},{L3_ONNX.id}",
                           "--scores", "logme"])
    assert out.exit_code == 0, out.output
    rows = {line.split()[0]: line for line in out.output.splitlines() if line.startswith("local:")}
    assert "mean of layers 1-6" in rows[MINILM.id] and "mean of layers" not in rows[L3_ONNX.id]
    shown = run.invoke(cli, ["cache", "show"])
    assert shown.exit_code == 0, shown.output
    assert "mean of layers 1-6" in shown.output and "model output" in shown.output
    rec = run.invoke(cli, ["recommend", "sort short news sentences by topic", "--data", str(texts_csv),
                           "--candidates", MINILM.id, "--scores", "logme", "--probe-budget", "0"])
    assert rec.exit_code == 0, rec.output
    assert "features scored: mean of layers 1-6" in rec.output
