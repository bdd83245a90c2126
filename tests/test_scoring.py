"""`zoo score`: real offline models on a real small image folder and a real text file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from zoo.cli import cli
from zoo.errors import UsageError
from zoo.scoring import score


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))


def test_score_image_models(digits_folder):
    ids = ["local:cifar_resnet20.c10", "local:cifar_resnet56.c10"]
    rep = score(digits_folder, ids, scores=["logme", "hscore", "knn"])
    assert rep.n == 36 and rep.classes == ["0", "1", "7"] and rep.task == "classification"
    assert [m.id for m in rep.models] == ids
    for m in rep.models:
        assert m.error is None and m.feature_dim == 64 and not m.cached
        assert set(m.scores) == {"logme", "knn"} and all(np.isfinite(list(m.scores.values())))
        # 36 rows of 64-dim features: n <= d + 1, so H-score would be C - 1 for every model (zoo.scores.regime)
        assert "C - 1 = 2" in m.not_informative["hscore"]
        assert 0 <= m.scores["knn"] <= 1
    again = score(digits_folder, ids, scores=["logme", "hscore", "knn"])
    assert all(m.cached for m in again.models)
    assert [m.scores for m in again.models] == [m.scores for m in rep.models]


def test_text_model_on_images_is_reported_not_crashed(digits_folder):
    rep = score(digits_folder, ["local:glove-6b-50d.avg"], scores=["logme"])
    assert rep.models[0].error and "image" in rep.models[0].error


def test_unlabelled_and_bad_scorer(tmp_path, digits_folder):
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in list((digits_folder / "0").iterdir())[:3]:
        (flat / p.name).write_bytes(p.read_bytes())
    with pytest.raises(UsageError, match="labels"):
        score(flat, ["local:cifar_resnet20.c10"])
    with pytest.raises(UsageError, match="logme"):
        score(digits_folder, ["local:cifar_resnet20.c10"], scores=["nope"])


def test_cli_score_text(tmp_path):
    rows = ["text,label"] + [f"great fun film number {i},pos" for i in range(8)] + \
           [f"dull boring mess number {i},neg" for i in range(8)]
    csv = tmp_path / "reviews.csv"
    csv.write_text("\n".join(rows))
    res = CliRunner().invoke(cli, ["score", "--data", str(csv), "--models", "local:glove-6b-50d.avg",
                                   "--scores", "logme,knn", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output[res.output.index("{"):])
    m = data["models"][0]
    assert m["id"] == "local:glove-6b-50d.avg" and m["feature_dim"] == 50
    assert m["scores"]["knn"] > 0.5  # the words separate the classes


def test_plan_estimates_and_fit_warnings(digits_folder):
    rep = score(digits_folder, ["local:cifar_resnet20.c10", "local:mobilenet_v2.tv_in1k"], scores=["knn"])
    plans = {p.id: p for p in rep.plan}
    assert all(not p.cached and p.estimate_seconds > 0 for p in rep.plan)
    # 32 px grayscale digits: fine for the CIFAR net apart from the channels; far too small for 224 px MobileNetV2
    assert any("grayscale" in w for w in plans["local:cifar_resnet20.c10"].warnings)
    assert any("expects 224 px" in w for w in plans["local:mobilenet_v2.tv_in1k"].warnings)
    again = score(digits_folder, ["local:cifar_resnet20.c10"], scores=["knn"])
    assert again.plan[0].cached and again.plan[0].estimate_seconds == 0


def test_cli_prints_plan_before_extracting(digits_folder):
    res = CliRunner().invoke(cli, ["score", "--data", str(digits_folder), "--models", "local:cifar_resnet20.c10",
                                   "--scores", "knn"])
    assert res.exit_code == 0, res.output
    assert "; estimate " in res.output and "warning: local:cifar_resnet20.c10: grayscale" in res.output
    assert res.output.index("; estimate ") < res.output.index("scoring local:cifar_resnet20.c10")


def test_estimate_uses_the_measured_speed(digits_folder, tmp_path):
    from zoo.features import cache_info
    from zoo.scoring import make_plan

    rep = score(digits_folder, ["local:cifar_resnet20.c10"], scores=["knn"])
    (entry,) = cache_info()
    assert entry["seconds"] > 0
    from zoo.data import load_sample
    from zoo.registry import Registry

    other = load_sample(digits_folder, max_samples_per_class=5)  # a different sample: not cached
    from zoo.estimates import measurements

    own = next(m for m in measurements() if m.model_id == "local:cifar_resnet20.c10")  # the newest: this run's
    assert own.n == entry["n"] and own.seconds == pytest.approx(rep.models[0].extract_seconds, rel=1e-6)
    with Registry() as reg:
        (plan,) = make_plan([reg.get("local:cifar_resnet20.c10")], other)
    assert not plan.cached and plan.estimate_basis == "measured"
    # the same images and model, fewer of them, torch already imported: its load plus its per-item time
    assert plan.estimate_seconds == pytest.approx(own.load_seconds + len(other) * own.item_seconds, rel=1e-6)
    assert rep.models[0].n == entry["n"]


def test_leep_and_nce_use_the_source_head_and_skip_without_one(digits_folder, tmp_path):
    rep = score(digits_folder, ["local:cifar_resnet20.c10"], scores=["leep", "nce", "knn"])
    m = rep.models[0]
    assert m.error is None and set(m.scores) == {"leep", "nce", "knn"}
    assert m.scores["leep"] < 0 and np.isfinite(m.scores["nce"])  # log-likelihoods
    rows = ["text,label"] + [f"great fun film {i},pos" for i in range(6)] + [f"dull boring mess {i},neg" for i in range(6)]
    csv = tmp_path / "r.csv"
    csv.write_text("\n".join(rows))
    text = score(csv, ["local:glove-6b-50d.avg"], scores=["leep", "knn"]).models[0]
    assert set(text.scores) == {"knn"} and "leep" in text.skipped


def test_a_model_that_raises_a_library_error_is_reported_and_the_others_are_scored(tmp_path, digits_folder):
    """One broken candidate never sinks a run: a garbage checkpoint makes torch.load raise its own error."""
    import zoo

    garbage = tmp_path / "broken.pth"
    garbage.write_bytes(b"this is not a protobuf" * 10)
    manifest = tmp_path / "broken.yaml"
    manifest.write_text(f"manifest: broken\nmodels:\n  - id: local:mobilenet_v2.broken\n    modality: image\n"
                        f"    library: torchvision\n    license: mit\n    weights: file:{garbage}\n")
    zoo.index("manifest", path=str(manifest))
    rep = score(digits_folder, ["local:mobilenet_v2.broken", "local:cifar_resnet20.c10"], scores=["knn"])
    broken, good = rep.models
    assert broken.error and "local:mobilenet_v2.broken could not be loaded or run" in broken.error and "ZOO_DEBUG" in broken.error
    assert good.error is None and 0 <= good.scores["knn"] <= 1
    res = CliRunner().invoke(cli, ["score", "--data", str(digits_folder), "--models",
                                   "local:mobilenet_v2.broken,local:cifar_resnet20.c10", "--scores", "knn"])
    assert res.exit_code == 0 and "Traceback" not in res.output and "local:cifar_resnet20.c10" in res.output
