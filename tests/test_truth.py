"""Every statement zoo prints is computed from what ran (issue 18): one test per thing a fresh user found
false or missing, each on real runs (real models, the real catalog, real files)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

import zoo
from zoo.cli import cli
from zoo.config import REPO_DIR

CIFAR = ["local:cifar_resnet20.c10", "local:cifar_resnet32.c10"]
XRAY = "detect pneumonia in chest X-rays"
DIGITS = "classify handwritten digits"


pytestmark = pytest.mark.usefixtures("fresh_cache")  # conftest: no warm state, no feature entries


@pytest.fixture
def digits_per_class() -> int:
    return 10


def section(md: str, title: str) -> str:
    """The Markdown of one report section, up to the next heading."""
    start = md.index(f"## {title}\n")
    nxt = md.find("\n## ", start + 3)
    return md[start:] if nxt < 0 else md[start:nxt]


# -- "(given)" ------------------------------------------------------------------------------------


def test_modality_is_given_only_when_passed(digits_folder, tmp_path):
    from zoo.report import write_report
    from zoo.runs import StoredRun

    rec = zoo.recommend(DIGITS, data=digits_folder, candidates=CIFAR, scores=["knn"])
    u = rec.understanding
    assert "modality image (from the data)" in u.summary() and "given" not in u.summary()
    assert (u.modality, u.modality_source, u.modality_given) == ("image", "data", False)
    md = write_report(rec, tmp_path / "r").markdown.read_text()
    assert "from the data" in section(md, "The task") and "given with --modality" not in md

    res = CliRunner().invoke(cli, ["recommend", DIGITS, "--data", str(digits_folder), "--candidates", ",".join(CIFAR),
                                   "--scores", "knn"])
    assert res.exit_code == 0, res.output
    assert "Understood as: modality image (from the data)" in res.output and "(given)" not in res.output

    given = zoo.recommend(DIGITS, data=digits_folder, candidates=CIFAR, scores=["knn"], modality="image")
    assert given.understanding.modality_given and "modality image (given)" in given.understanding.summary()
    # a run stored before modality_source: the data set the modality, not --modality
    old = StoredRun.from_recommendation(rec).to_dict()
    old["understanding"] |= {"modality_given": True, "modality_source": None}
    old |= {"id": "20261201-120000-abcd", "created_at": "2026-12-01T12:00:00Z"}
    back = StoredRun.from_dict(old)
    assert back.understanding.modality_source == "data" and not back.understanding.modality_given


# -- counts ---------------------------------------------------------------------------------------


def test_rank_and_counts_are_of_the_candidates_scored(digits_folder, tmp_path):
    from zoo.report import write_report

    rec = zoo.recommend(DIGITS, data=digits_folder, score_top=2, scores=["knn"])
    assert len(rec.candidates) == 2 and rec.considered > 1000
    md = write_report(rec, tmp_path / "r").markdown.read_text()
    assert "rank 1 of 2 candidates scored on your data" in section(md, "Recommendation")
    assert rec.ranked_among == 2
    assert (f"{rec.considered:,} candidates passed the constraints and were ranked on the task description; 2 of "
            "them were scored on your data") in section(md, "Constraints")
    assert f"rank 1 of {rec.considered}" not in md and f"{rec.considered} candidates were scored" not in md

    res = CliRunner().invoke(cli, ["recommend", DIGITS, "--data", str(digits_folder), "--score-top", "2",
                                   "--scores", "knn", "--top", "1"])
    assert res.exit_code == 0, res.output
    assert "2 of them were scored on your data" in res.output  # --top 1 shows one; two were scored


# -- reasons --------------------------------------------------------------------------------------


def test_a_reason_names_the_card_only_when_it_is_close_in_absolute_terms():
    xray = zoo.recommend(XRAY, candidates=[*CIFAR, "local:mobilenet_v2.tv_in1k"])
    top = xray.candidates[0]
    assert top.components["domain_similarity"] == 1.0  # the top of the min-max scaled column ...
    assert top.components["cosine"] < 0.3  # ... is far from the task in raw terms
    for c in xray.candidates:
        assert "card" not in c.reason, c.reason

    from zoo.recommender import CARD_CLOSE_COSINE

    digits = zoo.recommend(DIGITS, candidates=["hf:farleyknight-org-username/vit-base-mnist", *CIFAR])
    close = next(c for c in digits.candidates if c.id == "hf:farleyknight-org-username/vit-base-mnist")
    assert close.components["cosine"] >= CARD_CLOSE_COSINE
    assert f"card closely matches the task (cosine {close.components['cosine']:.2f})" in close.reason
    for c in digits.candidates:
        if c.components["cosine"] < CARD_CLOSE_COSINE:
            assert "closely matches" not in c.reason


# -- --probe-top ----------------------------------------------------------------------------------


def test_after_probe_top_the_table_says_why_scores_are_not_in_order(digits_folder, tmp_path):
    from zoo.report import write_report

    res = CliRunner().invoke(cli, ["recommend", DIGITS, "--data", str(digits_folder), "--candidates",
                                   ",".join([*CIFAR, "local:cifar_resnet44.c10"]), "--scores", "knn",
                                   "--probe-top", "2"])
    assert res.exit_code == 0, res.output
    note = "Ranks 1-2 are ordered by linear-probe accuracy on your data (--probe-top 2), not by score"
    assert note in res.output
    table_end = res.output.index("3  local:")  # the note follows the table, before the reasons
    assert table_end < res.output.index(note) < res.output.index("1. local:")
    # a rank correlation of two probed models is always +-1: not printed as if it were a finding
    assert "Agreement of the fused score with the probe: not measured (2 probed candidates" in res.output
    assert "(Spearman)" not in res.output
    rec = zoo.recommend(DIGITS, data=digits_folder, candidates=[*CIFAR, "local:cifar_resnet44.c10"], scores=["knn"],
                        probe_top=2)
    scores = [c.score for c in rec.candidates]
    expected = ("out of order there" if scores != sorted(scores, reverse=True) else "the two orders agree")
    md = write_report(rec, tmp_path / "r").markdown.read_text()
    assert note in section(md, "Candidates") and expected in section(md, "Candidates")


# -- degenerate plots -----------------------------------------------------------------------------


def test_plots_without_information_are_replaced_by_a_sentence(tmp_path):
    from zoo.report import write_report

    rec = zoo.recommend("classify photos of dog breeds", top_k=3)
    rec.data = {"source": str(tmp_path), "content_hash": "0", "modality": "image", "task": "classification", "n": 30,
                "class_counts": {"a": 15, "b": 15}}
    rec.scores, rec.probe_top = ["knn"], 3
    for i, c in enumerate(rec.candidates):
        c.data_scores = {"knn": 1.0 - 0.1 * i}
        c.probe = {"accuracy": 1.0, "accuracy_ci": [1.0, 1.0], "macro_f1": 1.0, "macro_f1_ci": [1.0, 1.0],
                   "folds": 5, "seed": 0, "seconds": 1.0, "device": "cpu"}
    paths = write_report(rec, tmp_path / "r")
    names = {p.name for p in paths.figures}
    assert "probe.png" not in names and "agreement.png" not in names
    md = paths.markdown.read_text()
    probe = section(md, "Probe")
    assert "Every probed model (3) scored 100.0% probe accuracy: the sample is too easy to separate them" in probe
    assert "not measurable, every probed model has the same probe accuracy (100.0%)" in probe
    cands = section(md, "Candidates")
    assert "Probe accuracy against size: not plotted, every probed model scored 100.0%" in cands
    assert "rho n/a" not in md


# -- constraints ----------------------------------------------------------------------------------


def test_constraints_are_said_in_words_with_the_domain_models_a_size_limit_drops():
    res = CliRunner().invoke(cli, ["recommend", XRAY, "--max-params", "150M", "--top", "3"])
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.output.splitlines() if ln.startswith("Constraints: "))
    assert re.search(r"modality image \(inferred, \d+%\): [\d,]+ models of other modalities left out", line), line
    m = re.search(r"at most 150\.0M parameters: ([\d,]+) larger models and ([\d,]+) whose size is unknown left out "
                  r"\(of those, (\d+) are pretrained for medical-radiology: ([^;]+); --allow-unknown keeps them\)", line)
    assert m, line
    assert "hf:google/cxr-foundation" in m.group(4)  # no source states its size
    assert "max_params=" not in res.output and "(-" not in line


# -- data-fit warnings ----------------------------------------------------------------------------


def test_data_fit_warnings_have_their_own_heading(digits_folder, tmp_path):
    from zoo.report import write_report

    rec = zoo.recommend(DIGITS, data=digits_folder, candidates=["local:cifar_resnet20.c10", "local:mobilenet_v2.tv_in1k"],
                        scores=["knn"])
    mobile = next(c for c in rec.candidates if c.id == "local:mobilenet_v2.tv_in1k")
    assert any("expects 224 px" in w for w in mobile.data_warnings)
    md = write_report(rec, tmp_path / "r").markdown.read_text()
    assert "expects 224 px" in section(md, "Data fit")
    assert "expects 224 px" not in section(md, "License and size flags")


# -- the Hub wait, said first ---------------------------------------------------------------------


def test_zoo_says_it_checks_the_hub_before_waiting(hf_cache):
    from zoo.fetching import REACHABILITY_TIMEOUT_S, FetchPolicy

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    said: list[tuple[float, str]] = []
    policy = FetchPolicy.make(True, say=lambda text: said.append((time.perf_counter(), text)))
    policy.endpoint = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    assert policy.reachable() is False
    took = time.perf_counter() - t0
    assert said[0][1] == f"Checking that the Hub at http://127.0.0.1:{port} answers (at most 5 s) …"
    assert said[0][0] - t0 < 0.5 and took <= REACHABILITY_TIMEOUT_S + 1
    assert said[1][1].startswith("The Hub is unreachable")


# -- the one-time export --------------------------------------------------------------------------


def test_the_export_is_a_setup_step_that_says_how_long_it_takes(use_cache):
    from conftest import EXPORT_MESSAGES

    assert EXPORT_MESSAGES, "the session's export ran before this test"
    first = EXPORT_MESSAGES[0]
    assert re.search(r"exporting the query encoder .* to ONNX, once \((about \d+ s|\d+-\d+ s on 2 CPU cores).*"
                     r"`python -m zoo\.embed` does it at set-up\)", first), first
    assert any("importing torch and transformers" in m for m in EXPORT_MESSAGES)
    assert re.search(r"\[ *\d+ s\] done: ", EXPORT_MESSAGES[-1]), EXPORT_MESSAGES[-1]
    env = {**os.environ, "ZOO_CACHE_DIR": str(use_cache)}
    setup = subprocess.run([sys.executable, "-m", "zoo.embed"], capture_output=True, text=True, env=env, check=False)
    assert setup.returncode == 0 and "query encoder ready" in setup.stdout and "exporting" not in setup.stderr
    first_use = subprocess.run([sys.executable, "-m", "zoo", "recommend", XRAY, "--top", "1", "--json"],
                               capture_output=True, text=True, env=env, check=False)
    assert first_use.returncode == 0 and "exporting" not in first_use.stderr
    assert json.loads(first_use.stdout)["candidates"]


# -- near-duplicates and sizes --------------------------------------------------------------------


def test_the_int8_onnx_twin_is_grouped_with_its_model():
    from zoo.recommender import group_key

    twin, orig = zoo.show("local:all-MiniLM-L6-v2.int8-onnx"), zoo.show("local:all-MiniLM-L6-v2")
    assert twin.same_weights_as == orig.id and "same_weights_as" in twin.sources
    assert group_key(twin) == group_key(orig)
    rec = zoo.recommend("sentence embeddings for semantic search", candidates=[orig.id, twin.id,
                                                                            "local:glove-6b-50d.avg"])
    ids = [c.id for c in rec.candidates]
    assert len(ids) == 2 and (orig.id in ids) != (twin.id in ids)
    lead = next(c for c in rec.candidates if c.id in (orig.id, twin.id))
    assert lead.variants == [twin.id if lead.id == orig.id else orig.id]


def test_curated_hub_models_carry_cited_sizes():
    from zoo.sources.manifest import iter_records

    curated = list(iter_records(REPO_DIR / "zoo" / "manifests" / "curated.yaml"))
    sized = [r for r in curated if r.params is not None]
    assert len(sized) >= 130
    for r in sized:
        assert r.sources.get("params"), f"{r.id}: params without a source"
        assert zoo.show(r.id).params == r.params  # the shipped catalog was rebuilt with them
    for mid in ("hf:microsoft/rad-dino", "hf:microsoft/rad-dino-maira-2", "hf:owkin/phikon", "hf:paige-ai/Virchow"):
        assert zoo.show(mid).params, mid


# -- estimates ------------------------------------------------------------------------------------


def test_estimates_come_from_this_machines_measurements(digits_folder, tmp_path, monkeypatch, one_torch_thread):
    from zoo import estimates
    from zoo.data import load_sample
    from zoo.features import clear_cache, extract
    from zoo.scoring import make_plan

    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))  # no measurement yet
    r20, r56 = zoo.show("local:cifar_resnet20.c10"), zoo.show("local:cifar_resnet56.c10")
    sample = load_sample(digits_folder)
    (plan,) = make_plan([r20], sample, device="cpu")
    assert plan.estimate_basis == "default" and "no measurement on this machine yet" in plan.estimate_detail

    feats = extract(r20, sample, device="cpu")
    (m,) = estimates.measurements()
    assert (m.model_id, m.device, m.n, m.work) == (r20.id, "cpu", 30, 32 * 32)
    assert m.seconds == pytest.approx(feats.seconds, rel=1e-6) and m.forward_seconds > 0

    clear_cache()
    twice = load_sample(digits_folder)
    p20, p56 = make_plan([r20, r56], twice, device="cpu")
    assert p20.estimate_basis == "measured" and r20.id in p20.estimate_detail
    assert p56.estimate_basis == "cost model" and "fitted on 1 image model(s) measured on cpu" in p56.estimate_detail
    own = m.seconds - m.import_seconds  # the same pass again, its libraries already imported
    assert own / 3 < p20.estimate_seconds < own * 3
    assert p56.estimate_seconds > p20.estimate_seconds  # three times the parameters, the same input size

    res = CliRunner().invoke(cli, ["score", "--data", str(digits_folder), "--models", f"{r20.id},{r56.id}",
                                   "--scores", "knn"])
    assert res.exit_code == 0, res.output
    assert re.search(rf"estimate: {re.escape(r20.id)}: [\d.]+ s, measured: ", res.output), res.output
    assert re.search(rf"estimate: {re.escape(r56.id)}: [\d.]+ s, cost model: ", res.output), res.output


# -- the API documents itself ---------------------------------------------------------------------


def test_returned_dataclasses_document_every_field():
    from zoo.backbones import LoadedBackbone
    from zoo.fetching import FetchReport
    from zoo.plan import PlannedModel, TransferPlan
    from zoo.probe import ProbeReport, ProbeResult
    from zoo.recommender import Candidate, Recommendation
    from zoo.report import ReportPaths
    from zoo.scoring import ModelScore, ScoreReport
    from zoo.understand import TaskUnderstanding

    for cls in (LoadedBackbone, Candidate, Recommendation, TaskUnderstanding, ModelScore, ScoreReport, FetchReport,
                ProbeResult, ProbeReport, TransferPlan, PlannedModel, ReportPaths):
        doc = cls.__doc__ or ""
        assert not doc.startswith(cls.__name__ + "("), f"{cls.__name__} has no docstring"
        missing = [f.name for f in dataclasses.fields(cls) if not f.name.startswith("_") and f"``{f.name}``" not in doc]
        assert not missing, f"{cls.__name__}'s docstring does not say what {missing} hold"
    lb = LoadedBackbone.__doc__
    assert "PIL.Image" in lb and "pooled features" in lb and "never logits" in lb
    load = Candidate.load.__doc__
    assert "pooled features" in load and "PIL image" in load and "not logits" in load


# -- README -------------------------------------------------------------------------------------


def test_readme_says_what_the_tests_need_and_ci_does_it():
    readme = (REPO_DIR / "README.md").read_text()
    ci = (REPO_DIR / ".ci" / "run").read_text()
    for needed in ("python scripts/assemble_mpnet.py", "apt-get install chromium", "`.ci/run`"):
        assert needed in readme, needed
    assert "export ASSEMBLE_MPNET=1" in ci and "install -y -qq --no-install-recommends chromium" in ci
    assert "ASSEMBLE_MPNET" in (REPO_DIR / "scripts" / "install_assets.sh").read_text()
    for test, words in (("test_backbones.py", "python scripts/assemble_mpnet.py"), ("test_report.py", "apt-get install")):
        src = (REPO_DIR / "tests" / test).read_text()
        skip = next(ln for ln in src.splitlines() if "pytest.skip(" in ln and words in ln)
        assert ".ci/run" in skip + src[src.index(skip) + len(skip):][:200], test
    install = re.findall(r"```sh\n(.*?)```", readme, flags=re.S)[0]
    assert "python -m zoo.embed" in install  # the one-time export is a set-up step
