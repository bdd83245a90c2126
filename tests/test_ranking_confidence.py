"""`zoo recommend --data` says how sure its ranking is (zoo.confidence) and probes tied leaders (real SQLite
registry; real offline models on digits, and precomputed features in an .npz where every candidate is identical)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import zoo
from zoo.cli import cli

CIFAR = ["local:cifar_resnet20.c10", "local:cifar_resnet32.c10", "local:mini_xception.fer2013"]
TWINS = ["local:cifar_resnet20.c10", "local:cifar_resnet32.c10"]


pytestmark = pytest.mark.usefixtures("fresh_cache")  # conftest: no warm state, no feature entries


@pytest.fixture
def digits_per_class() -> int:
    return 10


@pytest.fixture
def twins_npz(tmp_path):
    """Precomputed features (an .npz sample): every model gets the same features, so candidates are identical."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    x = rng.normal(size=(60, 8)).astype(np.float32)
    x[:, :3] += 2.0 * np.eye(3)[y]
    path = tmp_path / "feats.npz"
    np.savez(path, x=x, y=y)
    return path


def test_real_models_carry_the_confidence_and_the_pick_follows_a_tie_probe(digits_folder):
    rec = zoo.recommend("classify handwritten digits", data=digits_folder, candidates=CIFAR,
                        scores=["logme", "knn", "shrinkage_hscore"])
    conf = rec.confidence
    assert conf is not None and conf.n_boot > 0 and set(conf.first_share) == set(CIFAR)
    assert 0.0 <= conf.stays_first <= 1.0 and conf.scorers
    if conf.tied:  # 30 rows: the leaders may well be tied, and then they were probed and the probe decided
        probed = [c for c in rec.candidates if c.probe is not None]
        assert {conf.top, *conf.tied} <= {c.id for c in probed}
        assert rec.candidates[0].id == rec.probe_summary["best"]
        assert "the measured probe accuracy decides" in conf.probe_note and rec.probe_summary["reason"] == conf.probe_note
    else:
        assert conf.top == rec.candidates[0].id and conf.stays_first >= 0.5


def test_identical_candidates_are_tied_probed_and_said_everywhere(twins_npz, tmp_path):
    kw = {"candidates": TWINS, "scores": ["logme", "knn"], "data_weight": 1.0, "size_weight": 0.0}
    rec = zoo.recommend("classify small photos", data=twins_npz, **kw)
    conf = rec.confidence
    assert conf.tied == [c for c in TWINS if c != conf.top]
    assert conf.stays_first == pytest.approx(0.5)
    # the tied leaders were probed by default and the probe's pick leads
    assert all(c.probe is not None for c in rec.candidates)
    assert rec.candidates[0].id == rec.probe_summary["best"]
    assert "tied leaders probed" in conf.probe_note
    # the order note names what ran: the tie probe, not a --probe-top the user did not give
    from zoo.statements import order_note

    note = order_note(rec) or ""
    assert "the tied leaders, probed within --probe-budget" in note and "--probe-top" not in note
    # no probe when the budget is 0: the tie is said, and why nothing was probed
    unprobed = zoo.recommend("classify small photos", data=twins_npz, probe_budget=0, **kw)
    assert unprobed.confidence.tied and all(c.probe is None for c in unprobed.candidates)
    assert "not probed" in unprobed.confidence.probe_note
    # the CLI's lines say it, the report draws it, and --json carries it (the tied run, rendered as the CLI does)
    from zoo.cli.recommend_cmd import confidence_lines
    from zoo.report import write_report
    from zoo.runs import jsonable

    lines = "\n".join(confidence_lines(unprobed))
    assert "stays first in 50 % of" in lines and "tied with it:" in lines
    assert "The leaders are tied" in lines and "not probed (--probe-budget 0)" in lines
    paths = write_report(unprobed, tmp_path / "rep")
    md = paths.markdown.read_text()
    assert "**Confidence**" in md and "tied with it:" in md and "The leaders are tied" in md
    assert json.loads(paths.json.read_text())["run"]["confidence"]["tied"] == unprobed.confidence.tied
    assert jsonable(unprobed)["confidence"]["stays_first"] == pytest.approx(0.5)
    # end to end: the command prints the confidence and --json carries it
    args = ["recommend", "classify small photos", "--data", str(twins_npz), "--candidates", ",".join(TWINS),
            "--scores", "logme,knn", "--probe-budget", "0"]
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 0, out.output
    assert "Confidence: " in out.output and "resamples of your sample" in out.output
    js = CliRunner().invoke(cli, [*args, "--json"])
    assert js.exit_code == 0, js.output
    assert json.loads(js.output)["confidence"]["n_boot"] > 0


def test_a_not_informative_score_is_said_and_not_fused(digits_folder):
    # 30 rows, 64-dim CIFAR-ResNet features: n <= d + 1, H-score would be C - 1 = 2 for every model
    rec = zoo.recommend("classify handwritten digits", data=digits_folder, candidates=CIFAR[:2],
                        scores=["logme", "hscore"], fused_scores=["logme", "hscore"], probe_budget=0)
    for c in rec.candidates:
        assert "hscore" not in c.data_scores and "C - 1" in c.data_not_informative["hscore"]
    assert rec.fusion["fused_scores"] == ["logme"] and "C - 1" in rec.fusion["not_fused"]["hscore"]
    out = CliRunner().invoke(cli, ["score", "--data", str(digits_folder), "--models", ",".join(CIFAR[:2]),
                                   "--scores", "logme,hscore"])
    assert out.exit_code == 0, out.output
    assert "n/i" in out.output and "not informative" in out.output and "C - 1 = 2" in out.output


def test_the_cli_names_one_pick_after_a_tie_probe(twins_npz, capsys):
    # identical features: the leaders are tied and probed; the probe line names the best once, lists the
    # others as tied, and offers no second "pick" (the smallest tied model only as an alternative by size)
    from zoo.cli.recommend_cmd import _echo_data_table

    rec = zoo.recommend("classify small photos", data=twins_npz, candidates=TWINS, scores=["logme", "knn"],
                        data_weight=1.0, size_weight=0.0)
    assert rec.probe_summary is not None
    _echo_data_table(rec)
    text = capsys.readouterr().out
    line = next(x for x in text.splitlines() if x.startswith("Probe of the top"))
    best = line.split("Best ", 1)[1].split(";", 1)[0]
    assert best == rec.candidates[0].id
    tied = line.split("statistically tied with it (intervals overlap): ", 1)[1]
    assert best not in tied and [t for t in TWINS if t != best][0] in tied
    assert "practical pick" not in text and text.count(" is the pick") == 1


def test_reasons_shared_but_for_the_id_are_said_once(digits_folder):
    from zoo.statements import group_reasons

    hub = ["timm:vit_huge_patch14_clip_224.laion2b_ft_in1k", "hf:microsoft/dit-base"]
    out = CliRunner().invoke(cli, ["recommend", "classify handwritten digits", "--data", str(digits_folder),
                                   "--candidates", ",".join([CIFAR[0], *hub]), "--scores", "logme",
                                   "--probe-budget", "0", "--no-fetch"])
    assert out.exit_code == 0, out.output
    block = out.output.split("Not scored (2):", 1)[1]
    assert "2 candidates (" in block and all(h in block for h in hub)
    assert block.count("offline mode is on") == 1 or block.count("not on this machine") == 1
    groups = group_reasons({"a:model-one": "x a:model-one y", "b:model-two": "x b:model-two y",
                            "c:third": "other failure"})
    assert groups == [("x ID y", ["a:model-one", "b:model-two"]), ("other failure", ["c:third"])]
    from zoo.format import and_list  # "cannot tell a, b and c apart", not "a and b, c"

    assert [and_list(x) for x in (["a"], ["a", "b"], ["a", "b", "c"])] == ["a", "a and b", "a, b and c"]
