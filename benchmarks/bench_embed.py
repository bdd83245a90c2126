"""Text-embedding speed: cold ``zoo recommend``-style start (import + model load + one query) in fresh
processes, warm single-query latency, and throughput on card-like texts, for the ONNX and the
sentence-transformers backends of ``zoo.embed``.

    python benchmarks/bench_embed.py [--runs 5] [--texts 2000] [--model NAME_OR_FOLDER]

The ONNX export is made first (once, cached in ZOO_CACHE_DIR or ~/.cache/zoo) so cold runs measure
the steady state. Prints figures only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QUERY = "detect pneumonia in chest X-rays"

# Runs in a fresh interpreter; reports its own phases, the parent adds interpreter start-up.
_COLD = r"""
import json, sys, time
t0 = time.perf_counter()
backend, model = sys.argv[1], sys.argv[2] or None
phases = {}
if backend == "onnx":
    import numpy, tokenizers, onnxruntime  # noqa: F401
    phases["import numpy+tokenizers+onnxruntime"] = time.perf_counter() - t0
else:
    from zoo._compat import ensure_torchvision
    ensure_torchvision()
    import sentence_transformers  # noqa: F401
    phases["import torch+sentence_transformers"] = time.perf_counter() - t0
t = time.perf_counter()
import zoo.embed
phases["import zoo.embed"] = time.perf_counter() - t
t = time.perf_counter()
emb = zoo.embed.get_embedder(model, backend=backend)
phases["get_embedder (session/model load)"] = time.perf_counter() - t
t = time.perf_counter()
emb.encode([QUERY_TEXT])
phases["first encode"] = time.perf_counter() - t
phases["in-process total"] = time.perf_counter() - t0
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "transformers", "sentence_transformers"})
print(json.dumps({"phases": phases, "backend": emb.backend, "heavy": heavy}))
""".replace("QUERY_TEXT", repr(QUERY))


def cold(backend: str, model: str | None, runs: int, env: dict) -> None:
    walls, phase_runs, info = [], [], {}
    for _ in range(runs):
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _COLD, backend, model or ""], capture_output=True, text=True,
                              env=env, cwd=ROOT)
        walls.append(time.perf_counter() - t)
        if proc.returncode != 0:
            sys.exit(f"cold {backend} run failed:\n{proc.stderr}")
        info = json.loads(proc.stdout.strip().splitlines()[-1])
        phase_runs.append(info["phases"])
    print(f"\ncold process, backend={backend} (ran as {info['backend']}; heavy modules loaded: "
          f"{', '.join(info['heavy']) or 'none'}), median of {runs}:")
    print(f"  wall, fresh process        {statistics.median(walls) * 1000:8.0f} ms   "
          f"(min {min(walls) * 1000:.0f}, max {max(walls) * 1000:.0f})")
    for name in phase_runs[0]:
        print(f"  {name:<35} {statistics.median(r[name] for r in phase_runs) * 1000:8.1f} ms")


_VOCAB = (
    "image classification backbone pretrained fine-tuned features transfer learning medical imaging "
    "satellite remote sensing retrieval detection segmentation top-1 accuracy parameters GFLOPs input "
    "resolution license permissive apache research only distillation self-supervised contrastive masked "
    "autoencoder linear probe few-shot domain shift robust augmentation recipe epochs throughput latency "
    "mobile edge deployment fp16 int8 quantized weights checkpoint timm huggingface hub multilingual "
    "sentence embeddings speech audio spectrogram patch tokens attention convolution"
)


def card_texts(n: int, words: int = 60, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    archs = ["ResNet-50", "ViT-B/16", "ConvNeXt-T", "EfficientNet-B3", "DeiT-S", "Swin-T", "BERT-base", "wav2vec2",
             "DINOv2 ViT-S/14", "CLIP ViT-L/14", "MobileNetV3", "RegNetY-8GF", "BEiT-L", "RoBERTa-large"]
    data = ["ImageNet-1k", "ImageNet-21k", "LAION-2B", "JFT-300M", "CheXpert", "COCO", "LibriSpeech", "Wikipedia",
            "iNaturalist", "Places365", "MIMIC-CXR", "OpenImages"]
    vocab = _VOCAB.split()
    out = []
    for _ in range(n):
        head = (f"{rng.choice(archs)} pretrained on {rng.choice(data)}, top-1 {rng.uniform(70, 90):.1f}%, "
                f"{rng.randint(3, 600)}M params.")
        body = " ".join(rng.choice(vocab) for _ in range(words - len(head.split())))
        out.append(f"{head} {body.capitalize()}.")
    return out


def warm(backend: str, model: str | None, texts: list[str]) -> None:
    from zoo.embed import get_embedder

    emb = get_embedder(model, backend=backend)
    emb.encode([QUERY])
    lat = []
    for _ in range(30):
        t = time.perf_counter()
        emb.encode([QUERY])
        lat.append(time.perf_counter() - t)
    emb.encode(texts[:64])
    t = time.perf_counter()
    emb.encode(texts, batch_size=64)
    dt = time.perf_counter() - t
    print(f"\nwarm, backend={emb.backend}: 1-query latency median {statistics.median(lat) * 1000:.1f} ms "
          f"(p90 {sorted(lat)[int(0.9 * len(lat))] * 1000:.1f} ms); {len(texts)} card texts in {dt:.2f} s = "
          f"{len(texts) / dt:.0f} texts/s")


def export_times(model: str | None, runs: int, env: dict) -> None:
    """The set-up step's cost: ``python -m zoo.embed`` in a fresh process with an empty ZOO_CACHE_DIR."""
    import tempfile

    walls = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="zoo-export-") as cache:
            t = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "zoo.embed", *([model] if model else [])], env={
                **env, "ZOO_CACHE_DIR": cache}, cwd=ROOT, capture_output=True, text=True)
            walls.append(time.perf_counter() - t)
            if proc.returncode != 0:
                sys.exit(f"export failed:\n{proc.stderr}")
    print(f"one-time ONNX export (python -m zoo.embed, empty cache), {runs} runs on {os.cpu_count()} CPU cores "
          f"(load average {os.getloadavg()[0]:.1f}): median {statistics.median(walls):.1f} s, min {min(walls):.1f} s, "
          f"max {max(walls):.1f} s")
    print("its messages, last run:\n" + proc.stderr.strip())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--texts", type=int, default=2000)
    ap.add_argument("--model", default=None, help="model name or folder (default: ZOO_EMBED_MODEL or all-MiniLM-L6-v2)")
    ap.add_argument("--export", action="store_true",
                    help="only time the one-time ONNX export (python -m zoo.embed into an empty cache), --runs times")
    args = ap.parse_args()
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    if args.export:
        export_times(args.model, args.runs, env)
        return

    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "zoo.embed", *([args.model] if args.model else [])], check=True,
                   env=env, cwd=ROOT, capture_output=True)
    print(f"export ready (python -m zoo.embed: {time.perf_counter() - t:.1f} s; includes the export only if it "
          f"was not cached)")
    base = []
    for _ in range(args.runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        base.append(time.perf_counter() - t)
    print(f"python -c pass: {statistics.median(base) * 1000:.0f} ms; cpus: {os.cpu_count()}")

    cold("onnx", args.model, args.runs, env)
    cold("sentence-transformers", args.model, args.runs, env)

    texts = card_texts(args.texts)
    print(f"\ncard texts: {len(texts)}, ~{statistics.mean(len(x.split()) for x in texts):.0f} words each")
    warm("onnx", args.model, texts)
    warm("sentence-transformers", args.model, texts)


if __name__ == "__main__":
    main()
