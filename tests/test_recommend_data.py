"""`zoo recommend --data`: the description ranking re-ranked by scores on the user's sample (real models)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import zoo
from zoo import fusion
from zoo.cli import cli
from zoo.errors import UsageError

CIFAR = ["local:cifar_resnet20.c10", "local:cifar_resnet32.c10", "local:mini_xception.fer2013"]


pytestmark = pytest.mark.usefixtures("fresh_cache")  # conftest: no warm state, no feature entries


@pytest.fixture
def digits_per_class() -> int:
    return 10  # the expected counts and scores below are for 10 per class


@pytest.fixture
def reviews(tmp_path):
    rows = ["text,label"] + [f"a great fun film number {i} loved it,pos" for i in range(10)] + \
           [f"a dull boring mess number {i} hated it,neg" for i in range(10)]
    path = tmp_path / "reviews.csv"
    path.write_text("\n".join(rows))
    return path


def test_shortlist_ranked_by_data_and_description(digits_folder):
    rec = zoo.recommend("classify handwritten digits", data=digits_folder, candidates=CIFAR,
                        scores=["logme", "knn", "shrinkage_hscore"])
    assert {c.id for c in rec.candidates} == set(CIFAR)
    assert rec.data["n"] == 30 and rec.data["class_counts"] == {"0": 10, "1": 10, "7": 10}
    w, sw = fusion.DATA_WEIGHT, fusion.SIZE_WEIGHT
    assert rec.scores == ["logme", "knn", "shrinkage_hscore"]
    assert rec.fusion["data"] == pytest.approx((1 - sw) * w) and rec.fusion["size_prior"] == sw
    for c in rec.candidates:
        assert set(c.data_scores) == {"logme", "knn", "shrinkage_hscore"}
        assert 0 <= c.components["data"] <= 1 and c.data_seconds is not None and c.data_cached is False
    # the fused score is exactly the documented formula; the size prior follows the parameter count
    desc = fusion.minmax([c.components["description"] for c in rec.candidates])
    for c, d in zip(rec.candidates, desc, strict=True):
        base = (1 - w) * d + w * c.components["data"]
        assert c.score == pytest.approx((1 - sw) * base + sw * c.components["size_prior"])
    by_size = sorted(rec.candidates, key=lambda c: c.record.params)
    assert by_size[0].components["size_prior"] == 0.0 and by_size[-1].components["size_prior"] == 1.0
    assert [c.score for c in rec.candidates] == sorted((c.score for c in rec.candidates), reverse=True)
    again = zoo.recommend("classify handwritten digits", data=digits_folder, candidates=CIFAR,
                          scores=["logme", "knn", "shrinkage_hscore"])
    assert all(c.data_cached for c in again.candidates)
    assert [c.id for c in again.candidates] == [c.id for c in rec.candidates]


def test_data_weight_one_follows_the_data_alone(digits_folder):
    rec = zoo.recommend("classify handwritten digits", data=digits_folder, candidates=CIFAR, scores=["knn"],
                        data_weight=1.0, size_weight=0.0, fused_scores=["knn"])
    knn = [c.data_scores["knn"] for c in rec.candidates]
    assert knn == sorted(knn, reverse=True)


def test_without_candidates_scores_available_models_and_names_the_absent(digits_folder):
    rec = zoo.recommend("classify handwritten digits", data=digits_folder, score_top=2, scores=["knn"])
    assert len(rec.candidates) == 2
    assert all(c.id.startswith("local:") for c in rec.candidates)  # only the offline zoo has weights here
    # offline (conftest): absent weights cannot be fetched, and each stronger candidate says why it was passed over
    from zoo.loadable import loadable_reason

    assert rec.not_scored
    for mid, why in rec.not_scored.items():
        assert ("weights not on this machine" in why and "HF_HUB_OFFLINE" in why and f"zoo fetch {mid}" in why) \
            or why == loadable_reason(zoo.show(mid)), (mid, why)


def test_text_data_picks_text_models(reviews):
    rec = zoo.recommend("sentiment of movie reviews", data=reviews, scores=["logme", "knn"],
                        candidates=["local:glove-6b-50d.avg", "local:paraphrase-MiniLM-L3-v2.onnx",
                                    "local:cifar_resnet20.c10"])
    assert rec.understanding.modality == "text"
    assert {c.id for c in rec.candidates} == {"local:glove-6b-50d.avg", "local:paraphrase-MiniLM-L3-v2.onnx"}


def test_bad_data_says_what_to_do(tmp_path, digits_folder, reviews):
    with pytest.raises(UsageError, match="--modality text"):
        zoo.recommend("classify digits", data=digits_folder, modality="text")
    with pytest.raises(UsageError, match="nope"):
        zoo.recommend("classify digits", data=digits_folder, scores=["nope"])
    with pytest.raises(UsageError, match="not found"):
        zoo.recommend("classify digits", data=tmp_path / "missing")


def test_cli_with_data_prints_plan_table_and_stores_the_run(digits_folder):
    runner = CliRunner()
    res = runner.invoke(cli, ["recommend", "classify handwritten digits", "--data", str(digits_folder),
                              "--candidates", ",".join(CIFAR[:2]), "--scores", "logme,knn"])
    assert res.exit_code == 0, res.output
    assert "; estimate " in res.output and "logme" in res.output and "Stored as run" in res.output
    assert res.output.index("; estimate ") < res.output.index("1  local:")
    listed = runner.invoke(cli, ["runs", "list", "--json"])
    assert listed.exit_code == 0 and "classify handwritten digits" in listed.output
    js = runner.invoke(cli, ["recommend", "classify handwritten digits", "--data", str(digits_folder),
                             "--candidates", ",".join(CIFAR[:2]), "--scores", "logme,knn", "--json"])
    data = json.loads(js.output[js.output.index("{"):])
    assert data["data"]["n"] == 30 and all(c["data_cached"] for c in data["candidates"])


def test_probe_top_reorders_the_top_k_by_probe_accuracy(digits_folder):
    rec = zoo.recommend("classify handwritten digits", data=digits_folder, candidates=CIFAR, scores=["knn"],
                        probe_top=2)
    top, rest = rec.candidates[:2], rec.candidates[2:]
    assert all(c.probe is not None and 0 <= c.probe.accuracy <= 1 for c in top)
    assert top[0].probe.accuracy >= top[1].probe.accuracy and all(c.probe is None for c in rest)
    assert rec.probe_top == 2 and rec.probe_summary["best"] == top[0].id
    assert [c.rank for c in rec.candidates] == [1, 2, 3]
    with pytest.raises(UsageError, match="--data"):
        zoo.recommend("classify handwritten digits", probe_top=2)


def test_unlabelled_data_ranks_by_domain_shift(tmp_path, digits_folder):
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in [*(digits_folder / "0").iterdir(), *(digits_folder / "7").iterdir()]:
        (flat / p.name.replace(".png", f"_{p.parent.name}.png")).write_bytes(p.read_bytes())
    rec = zoo.recommend("classify handwritten digits", data=flat, candidates=CIFAR[:2])
    assert rec.data["task"] == "unlabelled" and rec.scores == ["shift"]
    for c in rec.candidates:
        assert 0 <= c.data_scores["shift"] <= 1 and c.components["data"] == pytest.approx(1 - c.data_scores["shift"])


def test_best_carries_a_plan_and_loads_with_it_applied(digits_folder):
    from zoo.plan import PlannedModel, TransferPlan

    rec = zoo.recommend("classify handwritten digits", data=digits_folder, candidates=CIFAR[:2], scores=["knn"])
    best = rec.best
    assert isinstance(best.plan, TransferPlan) and best.plan.model_id == best.id
    assert best.plan.rules_fired and best.plan.signals["per_class"] == 10
    pm = best.load(num_classes=3, plan=True)
    assert isinstance(pm, PlannedModel) and pm.plan == best.plan and pm.head.out_features == 3
    # the optimizer groups carry the planned rates; what the plan freezes does not train
    assert {g["name"]: g["lr"] for g in pm.param_groups}["head"] == best.plan.lr_head
    trainable = sum(q.numel() for q in pm.model.parameters() if q.requires_grad)
    if best.plan.strategy == "linear_probe":
        assert trainable == 0
    else:
        assert trainable > 0 and pm.frozen_params > 0
    with pytest.raises(UsageError, match="num_classes"):
        best.load(plan=True)
    with pytest.raises(UsageError, match="no transfer plan"):
        rec.candidates[1].load(num_classes=3, plan=True)
