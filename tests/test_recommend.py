"""Recommendation from a task description, on the real shipped catalog with the real encoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import zoo
from zoo import vocab
from zoo.cli import cli
from zoo.errors import UnknownModel, UsageError, WeightsUnavailable
from zoo.recommender import _STATE, SERVES, group_key
from zoo.record import ModelRecord
from zoo.registry import Registry
from zoo.vectors import EmbeddingStore, VectorIndex

pytestmark = pytest.mark.usefixtures("fresh_state")  # conftest: no warm recommender state


@pytest.fixture
def without_task_examples():
    """Understanding without zoo.understand's task examples, to see another piece of evidence alone."""
    from zoo.recommender import load_state

    understander = load_state().understander
    understander.leave_out_examples(every=True)
    yield
    understander.leave_out_examples()


def test_radiology_task_understood_and_ranked():
    rec = zoo.recommend("detect pneumonia in chest X-rays", top_k=5)
    u = rec.understanding
    assert u.modality == "image" and not u.modality_given and u.modality_confidence > 0.5
    assert "medical-radiology" in u.domains
    assert all(c.record.modality in SERVES["image"] for c in rec.candidates)
    top3 = [c.record for c in rec.candidates[:3]]
    assert all("medical-radiology" in r.domains for r in top3), [r.id for r in top3]
    best = rec.best
    assert set(best.components) >= {"domain_similarity", "domain_match", "quality", "popularity", "size_fit"}
    assert best.score == pytest.approx(sum(w * best.components[k] for k, w in rec.weights.items()))
    assert [c.rank for c in rec.candidates] == list(range(1, len(rec.candidates) + 1))
    assert rec.seconds > 0 and rec.embed_model.startswith("sentence-transformers/all-MiniLM-L6-v2@")


def test_text_task_gets_text_models():
    rec = zoo.recommend("classify clauses in commercial contracts", top_k=5)
    assert rec.understanding.modality == "text"
    assert "legal" in rec.understanding.domains
    assert all(c.record.modality == "text" for c in rec.candidates)
    assert sum("legal" in c.record.domains for c in rec.candidates) >= 3


def test_hard_constraints_are_never_violated():
    rec = zoo.recommend("classify photos of dog breeds", license_classes=["permissive"], max_params=30_000_000,
                        max_latency_ms=20, top_k=20)
    assert rec.candidates
    for c in rec.candidates:
        r = c.record
        assert r.license_class == "permissive" and r.params <= 30_000_000 and r.cpu_latency_ms <= 20
    assert rec.excluded_unknown > 0  # unknown sizes/latencies are excluded, and counted
    loose = zoo.recommend("classify photos of dog breeds", license_classes=["permissive"], max_params=30_000_000,
                          max_latency_ms=20, top_k=500, allow_unknown=True)
    assert loose.considered > rec.considered


def test_empty_result_names_the_constraint():
    rec = zoo.recommend("classify photos of dog breeds", max_params=1000)
    assert rec.candidates == []
    assert "max_params" in rec.empty_reason
    with pytest.raises(UsageError, match="max_params"):
        _ = rec.best


def test_near_duplicates_grouped():
    rec = zoo.recommend("classify photos of dog breeds", top_k=15)
    keys = [group_key(c.record) for c in rec.candidates]
    assert len(keys) == len(set(keys))
    assert any(c.variants for c in rec.candidates)
    flat = zoo.recommend("classify photos of dog breeds", top_k=40, group=False)
    assert len({group_key(c.record) for c in flat.candidates}) < len(flat.candidates)


def test_candidates_shortlist_is_ranked_whole():
    ids = ["timm:resnet50.a1_in1k", "local:cifar_resnet20.c10", "hf:microsoft/rad-dino"]
    rec = zoo.recommend("spot lung problems on X-ray pictures", candidates=ids)
    assert sorted(c.id for c in rec.candidates) == sorted(ids)
    assert rec.candidates[0].id == "hf:microsoft/rad-dino"
    with pytest.raises(UnknownModel, match="timm:resnet50.a1_in1k"):
        zoo.recommend("x-ray", candidates=["timm:resnet50.a1_in1"])


def test_explain_why_not():
    cand, rec = zoo.explain("timm:resnet50.a1_in1k", "detect pneumonia in chest X-rays")
    assert cand.failed_constraint is None and cand.score < rec.best.score
    assert cand.components["domain_match"] < rec.best.components["domain_match"]
    cand, _ = zoo.explain("hf:microsoft/rad-dino-maira-2", "detect pneumonia in chest X-rays",
                          license_classes=["permissive"])
    assert cand.failed_constraint == "license_class: fails ['permissive']"


def test_user_models_are_embedded_once(tmp_path):
    m = tmp_path / "m.yaml"
    m.write_text("models:\n  - id: local:sonar-net\n    modality: audio\n    domains: [environmental-audio]\n"
                 "    description: detects submarines from underwater sonar recordings\n")
    zoo.index("manifest", path=m)
    rec = zoo.recommend("recognise submarines in underwater sonar audio", top_k=3)
    assert rec.candidates[0].id == "local:sonar-net"
    with Registry() as reg:
        rows = reg.conn.execute("SELECT key, embed_model FROM main.text_embeddings").fetchall()
    cards = [r[0] for r in rows if r[0].startswith("card:")]
    assert cards == ["card:local:sonar-net"]  # the catalog's card vectors are shipped, not redone


def test_embedding_store_only_embeds_new_or_changed(tmp_path):
    class Counting:
        model_id, dim, calls = "fake@1", 4, 0

        def encode(self, texts, progress=False):
            Counting.calls += len(texts)
            return np.array([[len(t), 1, 0, 0] for t in texts], np.float32)

    reg = Registry(db=tmp_path / "u.db", catalog=tmp_path / "none.db", create=True)
    store, emb = EmbeddingStore(reg), Counting()
    store.ensure([("a", "one"), ("b", "three")], emb)
    store.ensure([("a", "one"), ("b", "three")], emb)
    assert Counting.calls == 2
    v = store.ensure([("a", "one"), ("b", "changed text")], emb)
    assert Counting.calls == 3 and v[1][0] == len("changed text")


def test_vector_index_exact_and_approximate():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(50, 32))
    x = centers[rng.integers(0, 50, 20_000)] + 0.1 * rng.normal(size=(20_000, 32))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = [f"m{i}" for i in range(len(x))]
    exact = VectorIndex.build(ids, x, approximate=False)
    ann = VectorIndex.build(ids, x, approximate=True)
    q = x[123]
    got, sims = exact.search(q, 10)
    assert got[0] == "m123" and np.all(np.diff(sims) <= 1e-6)
    brute = np.argsort(-(x @ q))[:10]
    assert set(got) == {ids[i] for i in brute}
    approx, _ = ann.search(q, 10)
    assert ann.approximate and len(set(approx) & set(got)) >= 7


def test_load_best_backbone_offline():
    rec = zoo.recommend("recognise objects in tiny 32x32 images", candidates=["local:cifar_resnet20.c10"])
    loaded = rec.best.load(num_classes=5)
    assert loaded.head.out_features == 5 and loaded.feature_dim == 64
    img = np.zeros((32, 32, 3), np.uint8)
    from PIL import Image

    x = loaded.preprocess(Image.fromarray(img))
    assert tuple(x.shape) == (3, 32, 32)
    rec = zoo.recommend("chest x-ray", candidates=["hf:microsoft/rad-dino"])
    with pytest.raises(WeightsUnavailable, match=r"HF_HUB_OFFLINE.*`zoo fetch hf:microsoft/rad-dino` or "
                                                 r"`hf download microsoft/rad-dino`"):
        rec.best.load(num_classes=2)


def test_bad_input():
    for nothing in ("   ", "???", "-- !"):
        with pytest.raises(UsageError, match="Describe the task"):
            zoo.recommend(nothing)
    with pytest.raises(UsageError, match="data"):
        zoo.recommend("x-ray", data="somewhere")
    with pytest.raises(UsageError, match="modality"):
        zoo.recommend("x-ray", modality="smell")


def test_cli_recommend_table_json_and_explain():
    res = CliRunner().invoke(cli, ["recommend", "detect pneumonia in chest X-rays", "--top", "3"])
    assert res.exit_code == 0, res.output
    assert "Understood as: modality image" in res.output and "medical-radiology" in res.output
    assert "sim" in res.output and "match" in res.output
    res = CliRunner().invoke(cli, ["recommend", "sentiment of tweets", "--json", "--top", "2",
                                   "--license-class", "permissive"])
    data = json.loads(res.output)
    assert len(data["candidates"]) == 2 and data["understanding"]["modality"] == "text"
    assert all(c["record"]["license_class"] == "permissive" for c in data["candidates"])
    res = CliRunner().invoke(cli, ["recommend", "dog photos", "--max-params", "1k"])
    assert res.exit_code == 1 and "max_params" in res.output
    res = CliRunner().invoke(cli, ["explain", "timm:resnet50.a1_in1k", "detect pneumonia in chest X-rays"])
    assert res.exit_code == 0 and "below the top pick" in res.output


def test_record_components_rule_for_missing_priors():
    # a model without an ImageNet top-1 or downloads sits in the middle of those scales
    rec = zoo.recommend("recognise objects in tiny 32x32 images", candidates=[
        "local:cifar_resnet20.c10", "timm:resnet50.a1_in1k", "timm:resnet18.a1_in1k"])
    by_id = {c.id: c for c in rec.candidates}
    assert by_id["local:cifar_resnet20.c10"].components["quality"] == 0.5
    assert by_id["timm:resnet50.a1_in1k"].components["quality"] > by_id["timm:resnet18.a1_in1k"].components["quality"]
    assert all(c.components["popularity"] == 0.5 for c in rec.candidates)
    assert isinstance(by_id["timm:resnet50.a1_in1k"].record, ModelRecord)


def test_cli_recommend_imports_no_torch(use_cache, tmp_path):
    import os
    import subprocess
    import sys

    code = (
        "import sys; from zoo.cli import main; sys.argv=['zoo', 'recommend', 'detect pneumonia in chest X-rays'];\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'timm', 'transformers', 'sentence_transformers') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    env = {**os.environ, "ZOO_CACHE_DIR": str(use_cache), "ZOO_DB": str(tmp_path / "u.db")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert "Understood as: modality image" in out
    assert out.strip().splitlines()[-1] == "HEAVY []", out


def test_percentile_rule_and_vectorised_columns_match_records():
    from zoo.recommender import RecordColumns, _percentile, component_matrix, load_state

    # unknown values sit at the neutral middle; ties share a rank; extremes clip to [0, 1]
    p = _percentile([None, 1.0, 2.0, 2.0, 3.0])
    assert p[0] == 0.5 and p[2] == p[3] and p[1] < p[2] < p[4] <= 1.0 and p.min() >= 0.0

    # the warm path slices columns precomputed for the whole registry; it must give what the
    # records themselves give, for an arbitrary subset in an arbitrary order
    state = load_state()
    rng = np.random.default_rng(0)
    subset = [state.records[i] for i in rng.choice(len(state.records), 300, replace=False)]
    q = state.embedder.encode(["segment tumours in brain MRI"])[0]
    und = state.understander.understand("segment tumours in brain MRI", q)
    cols, cos = state.columns_and_cosines(q, subset)
    assert list(cols.ids) == [r.id for r in subset]
    direct = state.card_index.cosines(q, [f"card:{r.id}" for r in subset])
    np.testing.assert_allclose(cos, direct, atol=1e-6)
    fast = component_matrix(cols, cos, und, max_params=50_000_000)
    slow = component_matrix(RecordColumns(subset), direct, und, max_params=50_000_000)
    np.testing.assert_allclose(fast, slow, atol=1e-6)
    assert fast[:, 2].max() > 0  # some record carries an inferred domain


def test_card_evidence_is_the_best_cards_per_modality():
    from zoo.understand import card_evidence

    mods = np.array(["image", "image", "image", "image", "text", "audio"])
    cos = np.array([0.1, 0.9, 0.5, 0.7, 0.4, -0.2])
    ev = card_evidence(mods, cos, top=3)
    assert ev == pytest.approx({"image": (0.9 + 0.7 + 0.5) / 3, "text": 0.4, "audio": -0.2})
    assert card_evidence(np.array([], dtype=str), np.array([])) == {}


@pytest.mark.parametrize(("task", "modality"), [
    ("dialogue state tracking on MultiWOZ-style task-oriented conversations", "text"),
    ("sketch-based image retrieval", "image"),
])
def test_jargon_named_by_model_cards_decides_modality(task, modality, monkeypatch, without_task_examples):
    # Phrases alone read these as audio / multimodal; the registry's cards know the jargon (MultiWOZ is
    # also a named dataset: that evidence is switched off to see the cards' own, and so are the task
    # examples, which also know these two).
    from zoo import understand

    monkeypatch.setattr(understand, "NAMED_MIX", 0.0)
    rec = zoo.recommend(task, top_k=3)
    assert rec.understanding.modality == modality
    monkeypatch.setattr(understand, "CARD_WEIGHT", 0.0)
    assert zoo.recommend(task, top_k=3).understanding.modality != modality


def test_warm_state_is_reused_until_the_database_changes(tmp_path):
    from zoo.recommender import load_state

    with Registry() as reg:  # an existing user database, closed: SQLite removes its -wal file
        db_path = reg.db_path
    _STATE.clear()
    assert not db_path.with_name(db_path.name + "-wal").exists()
    state = load_state()
    zoo.recommend("detect pneumonia in chest X-rays", top_k=3)
    assert load_state() is state  # opening the database (an empty -wal file) is not a change
    m = tmp_path / "m.yaml"
    m.write_text("models:\n  - id: local:sonar-net\n    modality: audio\n    domains: [environmental-audio]\n"
                 "    description: detects submarines from underwater sonar recordings\n")
    zoo.index("manifest", path=m)
    rec = zoo.recommend("recognise submarines in underwater sonar audio", top_k=3)
    assert rec.candidates[0].id == "local:sonar-net"  # a write is seen by the next call
    assert load_state() is not state


def test_quoted_examples_are_a_placeholder_for_the_modality_only():
    from zoo.understand import QUOTE_PLACEHOLDER, modality_text

    assert modality_text("type 'red bike on a brick wall' and get the photos") == (
        f"type {QUOTE_PLACEHOLDER} and get the photos")
    assert modality_text('a kid says \u201cturn left\u201d or "stop"') == (
        f"a kid says {QUOTE_PLACEHOLDER} or {QUOTE_PLACEHOLDER}")
    assert modality_text("my phone's photo library, the dogs' photos") is None  # apostrophes are not quotes


@pytest.mark.parametrize(("task", "modality", "misread_as_written"), [
    ("type 'kids playing football in the park' and get the matching photos from our archive", "multimodal", False),
    # read as written, "sunset over the sea" makes this a photo task
    ("users write a query like 'sunset over the sea' and the app shows the photos that match", "multimodal", True),
])
def test_a_quoted_query_does_not_decide_the_modality(task, modality, misread_as_written, monkeypatch):
    # The quoted words are the content of a query ("red bike", "rain"), not the input the model reads.
    from zoo import understand

    rec = zoo.recommend(task, top_k=3)
    assert rec.understanding.modality == modality
    if misread_as_written:
        monkeypatch.setattr(understand, "modality_text", lambda text: None)
        assert zoo.recommend(task, top_k=3).understanding.modality != modality


@pytest.mark.parametrize(("task", "modality", "domain"), [
    ("PCam", "image", "medical-pathology"),
    ("Messidor-2", "image", "medical-ophthalmology"),
    ("FUNSD", "image", "documents"),
    ("VoxCeleb1 EER", "audio", "speech"),
])
def test_a_named_dataset_decides_modality_and_domain(task, modality, domain, monkeypatch):
    # A bare dataset name embeds as noise (PCam reads as speech, FUNSD as social media); the name is exact.
    from zoo import understand

    u = zoo.recommend(task, top_k=3).understanding
    assert (u.modality, next(iter(u.domains))) == (modality, domain)
    assert u.datasets and f"names {u.datasets[0]}" in u.summary()
    monkeypatch.setattr(understand, "NAMED_MIX", 0.0)
    v = zoo.recommend(task, top_k=3).understanding
    assert (v.modality, next(iter(v.domains))) != (modality, domain) and v.datasets == []


@pytest.mark.parametrize(("task", "name"), [
    ("zero-shot ImageNet classification from text prompts", "ImageNet"), ("COCO image captioning", "COCO")])
def test_a_named_image_dataset_leaves_image_or_image_text_to_the_words(task, name, monkeypatch,
                                                                      without_task_examples):
    # Without the task examples: most that name COCO are image+text tasks, so with them a bare "COCO"
    # reads as image+text, which is the words' say, not the split's.
    from zoo import understand

    u = zoo.recommend(task, top_k=3).understanding
    assert u.modality == "multimodal" and u.datasets
    assert zoo.recommend(name, top_k=3).understanding.modality == "image"  # the bare name is still an image task
    monkeypatch.setattr(understand, "JOINT_WITH_TEXT", ())  # the whole named share to the dataset's modality
    assert zoo.recommend(task, top_k=3).understanding.modality == "image"


def test_split_joint_moves_a_named_share_in_the_descriptions_proportion():
    from zoo.understand import _split_joint

    mods = ["image", "text", "audio", "video", "multimodal"]
    share = np.array([1.0, 0.0, 0.0, 0.0, 0.0])
    out = _split_joint(share, np.array([0.2, 0.1, 0.0, 0.1, 0.6]), mods)
    assert np.allclose(out, [0.25, 0, 0, 0, 0.75]) and out.sum() == pytest.approx(1.0)
    text_only = np.array([0.0, 1.0, 0.0, 0.0, 0.0])  # a text dataset's share stays where it is
    assert np.allclose(_split_joint(text_only, np.array([0.2, 0.1, 0.0, 0.1, 0.6]), mods), text_only)


def test_calibration_softens_the_modality_confidence_without_changing_the_choice(monkeypatch):
    from zoo import understand

    task = "read the text on street signs in photos"
    calibrated = zoo.recommend(task, top_k=1).understanding
    monkeypatch.setattr(understand, "MODALITY_CALIBRATION", 1.0)
    raw = zoo.recommend(task, top_k=1).understanding
    assert calibrated.modality == raw.modality
    assert calibrated.modality_confidence < raw.modality_confidence
    assert sum(calibrated.modality_scores.values()) == pytest.approx(1.0)


def test_an_unsure_modality_names_the_runner_up():
    from zoo.understand import UNSURE_BELOW, TaskUnderstanding

    scores = {"image": 0.6, "text": 0.1, "audio": 0.0, "video": 0.0, "multimodal": 0.3}
    unsure = TaskUnderstanding("t", "image", 0.6, False, {}, modality_scores=scores)
    assert UNSURE_BELOW > 0.6
    assert unsure.doubt() == ("Unsure of the modality: image 60%, multimodal 30%. "
                              "If the model should read multimodal, pass --modality multimodal.")
    assert TaskUnderstanding("t", "image", 0.95, False, {}, modality_scores=scores).doubt() is None
    assert TaskUnderstanding("t", "image", 0.6, True, {}, modality_scores=scores).doubt() is None  # given


def test_cli_says_when_it_is_unsure_of_the_modality():
    out = CliRunner().invoke(cli, ["recommend", "read the text on street signs in photos", "--top", "2"])
    assert out.exit_code == 0, out.output
    assert "Unsure of the modality: " in out.output and "pass --modality" in out.output  # image or image+text
    sure = CliRunner().invoke(cli, ["recommend", "detect pneumonia in chest X-rays", "--top", "2"])
    assert "Unsure" not in sure.output


def test_video_tasks_rank_video_models_before_frame_level_image_backbones():
    rec = zoo.recommend("Kinetics-400 action recognition", top_k=8)
    mods = [c.record.modality for c in rec.candidates]
    assert rec.understanding.modality == "video" and mods[0] == "video" and "image" in mods
    first_image = mods.index("image")
    assert set(mods[:first_image]) == {"video"} and set(mods[first_image:]) == {"image"}
    image = rec.candidates[first_image]
    assert image.score > rec.candidates[0].score  # tiered, not outscored: the image model scores higher
    assert "after every video model" in image.reason
    assert "after every" not in rec.candidates[0].reason


@pytest.mark.parametrize(("task", "kind"), [
    ("forecast electricity demand from hourly meter readings", "time series"),
    ("predict customer churn from a table of account features", "tabular data"),
    ("classify 3D point clouds from lidar", "3D data"),
])
def test_a_task_on_data_no_model_reads_is_flagged(task, kind):
    u = zoo.recommend(task, top_k=2).understanding
    assert u.out_of_scope == kind
    assert "no model in the registry reads" in u.scope_warning() and u.doubt() is None
    out = CliRunner().invoke(cli, ["recommend", task, "--top", "2"])
    assert out.exit_code == 0 and "Out of scope? This reads like a task on " + kind in out.output
    assert zoo.recommend(task, top_k=2, modality="text").understanding.out_of_scope is None  # the user decided


def test_in_scope_tasks_are_not_flagged():
    for task in ("detect pneumonia in chest X-rays", "sort my bank statement lines into spending categories",
                 "EMNIST balanced (47 classes)", "recognise machine faults from the sound of the motor"):
        assert zoo.recommend(task, top_k=1).understanding.scope_warning() is None, task


def test_explain_says_why_a_higher_scoring_frame_model_ranks_after_the_video_models():
    out = CliRunner().invoke(cli, ["explain", "timm:resnet50.a1_in1k", "Kinetics-400 action recognition"])
    assert out.exit_code == 0, out.output
    assert "above the top pick yet ranks after it" in out.output and "after every video model" in out.output
    assert "below the top pick" not in out.output


def test_a_named_datasets_main_tag_leads_the_domains_without_moving_the_modality(monkeypatch):
    from zoo import understand

    u = zoo.recommend("MNIST", top_k=3).understanding
    assert u.modality == "image" and next(iter(u.domains)) == "handwriting"
    # the main-tag scaling is for the reported tags only: the modality posterior is the sum-scaled mixture's
    mix = understand._mix
    monkeypatch.setattr(understand, "_mix", lambda p, named, by_max=False: mix(p, named))
    v = zoo.recommend("MNIST", top_k=3).understanding
    assert v.modality_scores == pytest.approx(u.modality_scores) and next(iter(v.domains)) != "handwriting"



def test_a_description_in_another_language_says_so_everywhere(tmp_path):
    task = "Klassifiziere Röntgenbilder der Lunge nach Lungenentzündung"
    rec = zoo.recommend(task, top_k=2)
    assert rec.understanding.language == "German (de)"
    assert any("German (de)" in line and "English" in line for line in rec.understanding.notes())
    assert zoo.recommend("detect pneumonia in chest X-rays", top_k=2).understanding.language is None
    out = CliRunner().invoke(cli, ["recommend", task, "--top", "2"])
    assert out.exit_code == 0, out.output
    assert "The description is in German (de)" in out.output
    shown = CliRunner().invoke(cli, ["runs", "show", "latest"])
    assert "The description is in German (de)" in shown.output
    js = CliRunner().invoke(cli, ["recommend", task, "--top", "2", "--json"])
    assert json.loads(js.output)["understanding"]["language"] == "German (de)"


def test_a_long_brief_is_read_to_its_end():
    background = " ".join(["Our team is small and the budget was approved last month after a long wait."] * 30)
    task = "We need to recognise which bird species is singing in recordings from garden microphones."
    assert len(background.split()) > 300  # far past the encoder's 256 word pieces
    rec = zoo.recommend(f"{background} {task}", top_k=3)
    assert rec.understanding.modality == "audio"
    out = CliRunner().invoke(cli, ["recommend", f"{background} {task}", "--top", "1"])
    task_line = next(line for line in out.output.splitlines() if line.startswith("Task: "))
    assert len(task_line) < 320 and task_line.endswith("…")


def test_cli_embed_model_option_reaches_the_api(tmp_path):
    from zoo.embed import DEFAULT_MODEL

    out = CliRunner().invoke(cli, ["recommend", "detect pneumonia in chest X-rays", "--top", "2", "--json",
                                   "--embed-model", DEFAULT_MODEL])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["embed_model"].startswith(DEFAULT_MODEL)
    missing = CliRunner().invoke(cli, ["recommend", "x-ray", "--embed-model", str(tmp_path / "no-such-model")])
    assert missing.exit_code != 0 and "no-such-model" in missing.output


def test_task_examples_join_the_modality_evidence_and_a_set_can_be_left_out():
    from zoo.recommender import load_state
    from zoo.understand import task_examples

    ex = next(e for e in task_examples() if e["text"] == "zero-shot ImageNet top-1")
    understander = load_state().understander
    try:
        assert zoo.recommend(ex["text"], top_k=3).understanding.modality == ex["modality"] == "multimodal"
        understander.leave_out_examples(every=True)  # phrases, cards and the named dataset read "image"
        assert zoo.recommend(ex["text"], top_k=3).understanding.modality == "image"
        understander.leave_out_examples({ex["source"]})  # so do the other writers' examples
        assert zoo.recommend(ex["text"], top_k=3).understanding.modality == "image"
    finally:
        understander.leave_out_examples()


def test_task_examples_are_what_the_description_sets_give_and_never_the_test_half():
    import subprocess
    import sys

    from zoo.understand import task_examples

    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, str(root / "scripts" / "build_task_examples.py"), "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    examples = task_examples()
    sources = {e["source"] for e in examples}
    assert "test" not in sources and "dev" in sources
    assert {e["modality"] for e in examples} <= set(vocab.MODALITIES)
    assert len({(e["source"], e["id"]) for e in examples}) == len(examples)


def test_a_description_query_runs_with_one_blas_thread(monkeypatch):
    from contextlib import contextmanager

    from threadpoolctl import threadpool_info

    from zoo import recommender
    from zoo.threads import one_blas_thread

    def numpy_blas() -> list[int]:  # the BLAS behind NumPy's products (SciPy may load another, later)
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas" and "numpy" in i["filepath"]]

    before = numpy_blas()
    assert before, "NumPy's BLAS is not visible to threadpoolctl"
    with one_blas_thread():
        assert numpy_blas() == [1] * len(before)
    assert numpy_blas() == before
    entered = []

    @contextmanager
    def spy():
        with one_blas_thread():
            entered.append(True)
            yield

    monkeypatch.setattr(recommender, "one_blas_thread", spy)
    zoo.recommend("detect pneumonia in chest X-rays", top_k=3)
    assert entered == [True]
