"""Image extraction end to end with 1, 2, … decoding threads (``ZOO_DECODE_WORKERS``), on the GPU when present.

    python benchmarks/bench_decode_workers.py                      # 3000 MNIST-5k PNGs, 3 models, 1/2/3/4 threads
    python benchmarks/bench_decode_workers.py --n 1000 --workers 1,2 --models local:cifar_resnet20.c10

``zoo.features.extract(record, sample, cache=False)`` over N MNIST-5k digits written as 28x28 PNGs (the
same draw as bench_features.py), each model at its own input size. One warm-up extraction per model
(CUDA context, cuDNN, model load), then ``--repeat`` rounds over the worker counts in rotating order;
the best round per count is printed with its forward and decoding seconds (decoding is summed over the
threads and divided by their number). Prints figures only; the default that zoo picks for each model is
marked with ``*``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=3000, help="images (at most 5000)")
    ap.add_argument("--models", default="local:mobilenet_v2.tv_in1k,local:mini_xception.fer2013,local:cifar_resnet20.c10")
    ap.add_argument("--workers", default="1,2,3,4", help="decoding thread counts, separated by commas")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()

    import torch

    from benchmarks.bench_features import write_images
    from zoo import features as zf
    from zoo.data import load_sample
    from zoo.sources.manifest import iter_records

    records = {r.id: r for r in iter_records(ROOT / "zoo" / "manifests" / "offline.yaml")}
    counts = [int(w) for w in args.workers.split(",")]
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    print(f"torch {torch.__version__}, GPU {gpu}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        sample = load_sample(write_images(Path(tmp) / "digits", args.n))
        print(f"{len(sample)} MNIST-5k PNGs (28x28 gray), batch 64, cache off")
        for rid in args.models.split(","):
            rec = records[rid]
            os.environ.pop("ZOO_DECODE_WORKERS", None)
            warm = zf.extract(rec, sample, cache=False)
            default = zf.decode_workers(warm.device, rec.input_size[-1])
            best: dict[int, tuple[float, float, float]] = {}
            for r in range(args.repeat):
                for w in counts[r % len(counts):] + counts[:r % len(counts)]:
                    os.environ["ZOO_DECODE_WORKERS"] = str(w)
                    t = time.perf_counter()
                    out = zf.extract(rec, sample, cache=False)
                    wall = time.perf_counter() - t
                    if w not in best or wall < best[w][0]:
                        best[w] = (wall, out.forward_seconds, out.decode_seconds)
            os.environ.pop("ZOO_DECODE_WORKERS", None)
            print(f"{rid} ({rec.input_size[-1]} px, {warm.device}; first call {len(sample) / warm.seconds:.0f} img/s "
                  f"with model load and warm-up)")
            for w in counts:
                wall, fwd, dec = best[w]
                mark = "*" if w == default else " "
                print(f"  {mark}{w} decoding thread(s): {len(sample) / wall:6.0f} img/s end to end; forward {fwd:.2f} s, "
                      f"decoding {dec:.2f} s, wall {wall:.2f} s")


if __name__ == "__main__":
    main()
