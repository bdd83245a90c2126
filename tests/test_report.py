"""The model-selection review report, written from real recommendations (the data-aware fields
filled by hand with plausible values), read as files and as a person sees it in headless Chromium."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import zoo
from zoo.cli import cli
from zoo.errors import UsageError
from zoo.report import write_report
from zoo.runs import get_run, save_run

IMAGE_TASK = "classify photos of dog breeds"
DATA_URI = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
# The plots' bar colours. Without the images the page has < 1000 px of this blue (links, a border) and none
# of this green; the rendered plots fill tens of thousands.
PALETTE = {"blue": (31, 95, 191), "green": (76, 154, 91)}


pytestmark = pytest.mark.usefixtures("fresh_state")  # conftest: no warm recommender state


@dataclass
class Probe:
    """Shaped like a probe result: accuracy with its interval (fractions), and how it was measured."""

    accuracy: float
    accuracy_lo: float
    accuracy_hi: float
    macro_f1: float
    macro_f1_lo: float
    macro_f1_hi: float
    folds: int = 5
    seed: int = 0
    seconds: float = 3.2
    device: str = "cpu"


@dataclass
class Plan:
    """Shaped like a transfer plan: rendered field by field, whatever its fields are."""

    strategy: str = "fine-tune the last two stages"
    freeze: list[str] = field(default_factory=lambda: ["stem", "stages.0", "stages.1"])
    epochs: int = 12
    batch_size: int = 32
    param_groups: list[dict] = field(default_factory=lambda: [
        {"name": "head", "lr": 1e-3, "weight_decay": 0.0}, {"name": "stages.2-3", "lr": 1e-4, "weight_decay": 0.05}])


def make_images(root, classes=("beagle", "husky", "poodle"), n=4):
    rng = np.random.default_rng(0)
    for k, c in enumerate(classes):
        (root / c).mkdir(parents=True)
        for i in range(n):
            base = np.zeros((48, 64, 3), np.uint8)
            base[..., k] = np.linspace(40, 250, 64, dtype=np.uint8)[None, :]
            noise = rng.integers(0, 60, base.shape, dtype=np.uint8)
            Image.fromarray(base + noise).save(root / c / f"{c}_{i}.png")
    (root / "beagle" / "broken.jpg").write_bytes(b"not a jpeg")
    return root


def data_aware(rec, data_dir, shape="data_rank"):
    """Fill what the data-aware path does: a data summary, scores fused with the description score,
    probe results for the top 3, a plan. ``shape``: ``data_rank`` is the summary zoo.data_rank writes
    (source, a skipped count with reasons and examples); ``pairs`` an older, simpler one (path, a list of
    (item, reason)) that the report must read too."""
    rng = np.random.default_rng(1)
    broken = str(data_dir / "beagle" / "broken.jpg")
    why = "unreadable image: cannot identify image file"
    counts = {"beagle": 4, "husky": 4, "poodle": 4}
    rec.data = {"content_hash": "3f9a0c1d2e4b5a69", "modality": "image", "task": "classification", "n": 12,
                "class_counts": counts}
    if shape == "data_rank":
        rec.data |= {"source": str(data_dir), "classes": list(counts), "available": dict(counts),
                     "max_samples_per_class": 300, "skipped": 1, "skipped_reasons": {why: 1},
                     "skipped_examples": [[broken, why]],
                     "description": f"{data_dir}: 12 images; 3 classes (beagle: 4, husky: 4, poodle: 4)."}
    else:
        rec.data |= {"path": str(data_dir), "skipped": [[broken, why]]}
    rec.scores = ["logme", "knn"]
    rec.probe_top = 3
    accs = [(0.91, 0.86, 0.95), (0.89, 0.84, 0.93), (0.78, 0.72, 0.83)]
    if shape == "data_rank":  # score = 0.3 x min-max(description) + 0.7 x data, as zoo.fusion does
        rec.fusion = {"description": 0.3, "data": 0.7, "fused_scores": ["logme", "knn"]}
        desc = [c.score for c in rec.candidates]
        lo, hi = min(desc), max(desc)
        for i, c in enumerate(rec.candidates):
            data = 1.0 - i / max(1, len(rec.candidates) - 1)
            c.components = {**c.components, "description": c.score, "data": data}
            c.score = 0.3 * ((c.score - lo) / (hi - lo) if hi > lo else 0.5) + 0.7 * data
    for i, c in enumerate(rec.candidates):
        c.data_scores = {"logme": float(1.2 - 0.15 * i + rng.normal(0, 0.02)), "knn": float(0.9 - 0.04 * i)}
        c.data_seconds, c.data_cached = 4.0 + i, i % 2 == 0
        if i < 3:
            a, lo, hi = accs[i]
            probe = Probe(a, lo, hi, a - 0.02, lo - 0.02, hi - 0.02, seconds=2.0 + i)
            # the renderer takes a dataclass or a dict
            c.probe = probe if i != 1 else {k: getattr(probe, k) for k in probe.__dataclass_fields__}
    rec.candidates[1].data_warnings = ["images are 64 px, far below the model's 224 px input"]
    rec.best.plan = Plan()
    return rec


@pytest.fixture
def report_dir(tmp_path):
    data = make_images(tmp_path / "dogs")
    rec = data_aware(zoo.recommend(IMAGE_TASK, top_k=5, max_params=400_000_000), data)
    paths = write_report(rec, tmp_path / "review", options={
        "top_k": 5, "max_params": 400_000_000, "data": str(data), "scores": ["logme", "knn"], "probe_top": 3,
        "max_samples": 300, "device": "auto", "progress": True, "on_plan": print})
    return rec, paths


def embedded_images(page: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(m))) for m in DATA_URI.findall(page)]


def outside_code(page: str) -> str:
    return re.sub(r"<pre>.*?</pre>", "", page, flags=re.S)


def test_report_files_self_contained(report_dir):
    rec, paths = report_dir
    page = paths.html.read_text()
    # no external URL anywhere: every src is a data URI, every href an anchor in the page
    assert not re.search(r"https?://", outside_code(page))
    for attr, value in re.findall(r'\b(src|href)\s*=\s*"([^"]*)"', page):
        assert value.startswith("data:image/png;base64,") if attr == "src" else value.startswith("#"), value
    assert "<link" not in page and "<script" not in page and "@import" not in page and "url(" not in page
    assert "default-src 'none'" in page

    images = embedded_images(page)
    assert len(images) >= 5 + 3  # class counts, components, Pareto, probe, agreement + thumbnails
    for im in images:
        px = np.asarray(im.convert("L"), dtype=float)
        assert px.std() > 5, "an embedded image is blank"

    for text in (rec.best.id, "Start from", IMAGE_TASK, "natural-images",
                 "3f9a0c1d2e4b5a69", "broken.jpg", "unreadable image", "beagle", "fine-tune the last two stages",
                 "param_groups", "stages.2-3", "Statistically tied alternatives", "91.0% [86.0, 95.0]",
                 "12 images; 3 classes", "Skipped 1 item(s): 1 unreadable image", "0.7 x data", "--scores logme,knn",
                 "rec.best.load(num_classes=K)", "K = 3", "Pareto front", "Spearman"):
        assert text in page, text
    tied = rec.candidates[1].id  # 89% [84, 93] overlaps the pick's 91% [86, 95]; 78% [72, 83] does not
    assert f"<strong>{tied}</strong>: probe accuracy" in page
    assert f"<strong>{rec.candidates[2].id}</strong>: probe accuracy" not in page

    md = paths.markdown.read_text()
    figures = re.findall(r"\]\((report_files/[^)]+\.png)\)", md)
    assert figures and all((paths.directory / f).is_file() for f in figures)
    assert {p.name for p in paths.figures} == {f.split("/")[1] for f in figures}
    for heading in ("## Recommendation", "## The task", "## Constraints", "## Data", "## Data fit", "## Candidates",
                    "## Probe", "## License and size flags", "## Transfer plan", "## Reproducibility"):
        assert heading in md and f">{heading[3:]}</h2>" in page
    assert not re.search(r"https?://", re.sub(r"```.*?```", "", md, flags=re.S))

    doc = json.loads(paths.json.read_text())
    assert doc["run"]["task"] == IMAGE_TASK and doc["run"]["data"]["content_hash"] == "3f9a0c1d2e4b5a69"
    derived = doc["derived"]
    assert derived["recommendation"]["id"] == rec.best.id and derived["recommendation"]["ties_judged"]
    assert [t["id"] for t in derived["recommendation"]["tied"]] == [tied]
    assert derived["probe"][rec.best.id]["accuracy"] == 0.91
    assert set(derived["agreement"]) == {"logme", "knn", "score"}
    assert derived["plan"][rec.best.id]["epochs"] == 12
    assert derived["reproducibility"]["seeds"] == "0" and derived["reproducibility"]["device"] == "cpu"
    # a data-fit warning is filed under its own heading, not among the license and size flags
    assert derived["data_fit"] == {rec.candidates[1].id: ["images are 64 px, far below the model's 224 px input"]}
    assert not any("64 px" in f for fl in derived["flags"].values() for f in fl)
    fit = md[md.index("## Data fit"):md.index("## Candidates")]
    flags = md[md.index("## License and size flags"):md.index("## Transfer plan")]
    assert "64 px" in fit and "64 px" not in flags


def test_flags_and_pareto_front(tmp_path):
    rec = zoo.recommend(IMAGE_TASK, top_k=8, allow_unknown=True, max_params=100_000_000)
    paths = write_report(rec, tmp_path / "r")
    doc = json.loads(paths.json.read_text())["derived"]
    flags = doc.get("flags", {})
    for c in rec.candidates:
        got = " ".join(flags.get(c.id, []))
        if c.record.license_class == "non-commercial":
            assert "non-commercial license" in got
        if c.record.license_class == "unknown":
            assert "unknown license" in got
        if c.record.params is None:
            assert "parameter count unknown" in got
    pts = doc["pareto"]["points"]
    front = doc["pareto"]["front"]
    for pid, params, score in pts:  # nothing on the front is beaten by a model no bigger than it
        if pid in front:
            assert not any(p2 <= params and s2 > score for i2, p2, s2 in pts if i2 != pid)
        else:
            assert any(p2 <= params and s2 >= score for i2, p2, s2 in pts if i2 != pid)


def test_text_only_recommendation_says_what_was_not_run(tmp_path):
    rec = zoo.recommend("sentiment of tweets about our product", top_k=3)
    paths = write_report(rec, tmp_path / "r")
    page = paths.html.read_text()
    assert rec.best.id in page
    assert page.count("Not run") >= 2 and "Not made" in page  # data, probe; plan
    assert "--data PATH/TO/DATA" in page and "--probe-top 3" in page
    assert "not judged: no probe was run" in page
    assert "none used (no data, no probe)" in page
    doc = json.loads(paths.json.read_text())
    assert doc["derived"]["data"] is None and doc["derived"]["probe"] is None and doc["derived"]["plan"] is None
    for im in embedded_images(page):
        assert np.asarray(im.convert("L"), dtype=float).std() > 5


def test_empty_recommendation_still_reports(tmp_path):
    rec = zoo.recommend(IMAGE_TASK, max_params=1000)
    assert not rec.candidates
    page = write_report(rec, tmp_path / "r").html.read_text()
    assert "No recommendation" in page and "max_params" in page


def test_report_of_a_stored_run_through_the_cli(tmp_path):
    db = str(tmp_path / "user.db")
    data = make_images(tmp_path / "dogs")
    rec = data_aware(zoo.recommend(IMAGE_TASK, top_k=4), data, shape="pairs")
    run_id = save_run(rec, options={"top_k": 4, "data": str(data), "probe_top": 3}, db=db)
    stored = get_run(run_id, db=db)
    assert stored.best.plan["epochs"] == 12 and stored.candidates[1].probe["accuracy"] == 0.89

    out = tmp_path / "review"
    res = CliRunner().invoke(cli, ["report", run_id, "--out", str(out), "--db", db], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "report.html" in res.output
    page = (out / "report.html").read_text()
    assert run_id in page and f"zoo report {run_id} --out DIR" in page and rec.best.id in page
    assert "91.0% [86.0, 95.0]" in page and "zoo recommend" in page and "--probe-top 3" in page
    assert "Skipped 1 item(s): 1 unreadable image" in page and "broken.jpg" in page and "Examples from the data" in page
    doc = json.loads((out / "report.json").read_text())
    assert doc["run"]["id"] == run_id
    res = CliRunner().invoke(cli, ["report", "latest", "--out", str(out), "--db", db, "--json"])
    assert json.loads(res.output)["html"] == str(out / "report.html")


def test_out_must_be_a_directory(tmp_path):
    rec = zoo.recommend(IMAGE_TASK, top_k=2)
    f = tmp_path / "taken"
    f.write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        write_report(rec, f)


# ---------------------------------------------------------------------------------------------
# As a person sees it: headless Chromium, no network


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; CI must install it (.ci/run: apt-get install chromium)")
        pytest.skip("chromium not installed: apt-get install chromium (.ci/run installs it, and assembles "
                    "all-mpnet-base-v2 for the backbone tests)")
    return exe


def browse(exe: str, tmp_path, url: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
           f"--user-data-dir={tmp_path / 'profile'}",
           # no network: every host name fails to resolve, and no proxy is tried
           "--host-resolver-rules=MAP * ~NOTFOUND", "--no-proxy-server", *args, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def test_report_renders_in_headless_chromium(report_dir, tmp_path):
    exe = chromium()
    rec, paths = report_dir
    url = paths.html.resolve().as_uri()

    dom = browse(exe, tmp_path, url, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "Start from" in dom.stdout and rec.best.id in dom.stdout
    lead = re.search(r'<p class="lead">(.*?)</p>', dom.stdout, flags=re.S)
    assert lead and rec.best.id in lead.group(1)
    assert dom.stdout.count("data:image/png;base64,") == paths.html.read_text().count("data:image/png;base64,")

    shot = tmp_path / "page.png"
    res = browse(exe, tmp_path, url, f"--screenshot={shot}", "--window-size=1200,9000", "--hide-scrollbars")
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    page = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert page.reshape(-1, 3).std(axis=0).max() > 10, "the screenshot is a single colour"
    # The plots drew: their colours (used nowhere else on the page) cover real areas of the screenshot.
    for name, rgb in PALETTE.items():
        near = (np.abs(page - np.array(rgb)).sum(axis=2) < 30).sum()
        assert near > 5000, f"{name} plot colour covers only {near} px: are the plots blank?"
    # The top of the page (the recommendation) is not blank either.
    top = page[:600]
    assert (top.sum(axis=2) < 300).sum() > 500, "no dark text in the first 600 px"
