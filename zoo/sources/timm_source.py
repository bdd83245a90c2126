"""timm: every pretrained tag in the installed timm, offline.

Architecture, tag, pretraining data (from the tag), license, hub id, preprocessing and feature
dimension come from timm's ``PretrainedCfg``; the parameter count for each tag is counted on the
meta device (no weights); upstream results are joined from timm's published results CSVs.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from zoo import vocab
from zoo.config import timm_results_dir
from zoo.record import ModelRecord

# results CSV -> key prefix in ModelRecord.results
RESULT_FILES = {
    "results-imagenet.csv": "imagenet",
    "results-imagenet-real.csv": "imagenet_real",
    "results-imagenetv2-matched-frequency.csv": "imagenetv2",
    "results-sketch.csv": "imagenet_sketch",
    "results-imagenet-r.csv": "imagenet_r",
    "results-imagenet-a.csv": "imagenet_a",
}
CPU_BENCHMARK = "benchmark-infer-fp32-nchw-pt240-cpu-i7_12700h-dynamo.csv"

# Upstream metadata uses its own pretraining names (model_metadata-in1k.csv); map them onto ours.
_METADATA_PRETRAIN = {
    "in1k": ["in1k"], "in1k-dist": ["in1k"], "in1k-ap": ["in1k"], "in1k-adv": ["in1k"],
    "in21k": ["in21k", "in1k"], "in21k-selfsl": ["in21k", "in1k"], "jft300m-ns": ["jft", "in1k"],
    "yfc-semisl": ["yfcc100m", "in1k"], "ig1b-swsl": ["ig1b", "in1k"], "ig1b-wsl": ["ig1b", "in1k"],
}


def _float(v: str | None) -> float | None:
    try:
        return float(str(v).replace(",", ""))
    except (TypeError, ValueError):
        return None


def load_results(results_dir: Path | None = None) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Per pretrained tag: ImageNet-family results; per architecture: CPU latency (ms, batch 1)."""
    d = Path(results_dir) if results_dir else timm_results_dir()
    results: dict[str, dict[str, float]] = {}
    for fname, prefix in RESULT_FILES.items():
        path = d / fname
        if not path.exists():
            continue
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                entry = results.setdefault(row["model"], {})
                if f"{prefix}_top1" in entry:  # several image sizes: keep the first (timm's default size)
                    continue
                for metric in ("top1", "top5"):
                    v = _float(row.get(metric))
                    if v is not None:
                        entry[f"{prefix}_{metric}"] = v
    latency: dict[str, float] = {}
    bench = d / CPU_BENCHMARK
    if bench.exists():
        with bench.open(newline="") as f:
            for row in csv.DictReader(f):
                if row.get("infer_batch_size") == "1" and _float(row.get("infer_step_time")) is not None:
                    latency.setdefault(row["model"], _float(row["infer_step_time"]))  # type: ignore[arg-type]
    return results, latency


def load_metadata_pretrain(results_dir: Path | None = None) -> dict[str, list[str]]:
    d = Path(results_dir) if results_dir else timm_results_dir()
    path = d / "model_metadata-in1k.csv"
    out: dict[str, list[str]] = {}
    if path.exists():
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                mapped = _METADATA_PRETRAIN.get(row.get("pretrain", "").strip())
                if mapped:
                    out[row["model"]] = mapped
    return out


class _ParamCounter:
    """Parameter count and feature dim per (tag), built on the meta device, cached per config."""

    def __init__(self) -> None:
        self._cache: dict[tuple, tuple[int | None, int | None]] = {}

    def __call__(self, name: str, cfg: Any) -> tuple[int | None, int | None]:
        import timm
        import torch

        key = (cfg.architecture, cfg.num_classes, tuple(cfg.input_size or ()))
        if key not in self._cache:
            try:
                with torch.device("meta"):
                    m = timm.create_model(name, pretrained=False)
                params = sum(p.numel() for p in m.parameters())
                feat = getattr(m, "head_hidden_size", None) or getattr(m, "num_features", None)
                self._cache[key] = (int(params), int(feat) if feat else None)
            except Exception:  # a few architectures cannot be built on meta; their size stays unknown
                self._cache[key] = (None, None)
        return self._cache[key]


def _weights_location(cfg: Any) -> str | None:
    if cfg.hf_hub_id:
        return f"hf:{cfg.hf_hub_id}"
    if cfg.url:
        return f"url:{cfg.url}"
    return None


def _description(arch: str, tag: str, pre: list[str], cfg: Any) -> str:
    parts = [f"timm {arch} with pretrained tag '{tag}', an image backbone"]
    if pre:
        parts.append("pretrained on " + ", then ".join(vocab.PRETRAINING_DATA[p] for p in pre))
    text = "; ".join(parts) + "."
    if cfg.description:
        text += f" {cfg.description}"
    if cfg.paper_name:
        text += f" Paper: {cfg.paper_name}."
    if cfg.paper_ids:
        text += f" ({cfg.paper_ids})"
    if cfg.notes:
        text += " Notes: " + " ".join(cfg.notes)
    return text


def iter_records(
    *,
    names: list[str] | None = None,
    results_dir: str | Path | None = None,
    count_params: bool = True,
    progress: Callable[[int], None] | None = None,
    **_: Any,
) -> Iterator[ModelRecord]:
    from zoo._compat import ensure_torchvision

    ensure_torchvision()
    import timm
    from timm.models import get_pretrained_cfg

    results, latency = load_results(Path(results_dir) if results_dir else None)
    meta_pretrain = load_metadata_pretrain(Path(results_dir) if results_dir else None)
    counter = _ParamCounter()
    all_names = sorted(names if names is not None else timm.list_pretrained())

    cfgs = {n: get_pretrained_cfg(n) for n in all_names}
    first_with_weights: dict[tuple, str] = {}
    for n in all_names:
        c = cfgs[n]
        loc = (c.hf_hub_id, c.hf_hub_filename, c.url, c.file)
        if any(loc):
            first_with_weights.setdefault(loc, n)

    for name in all_names:
        cfg = cfgs[name]
        if cfg is None:
            continue
        arch, _, tag = name.partition(".")
        pre = vocab.pretraining_from_tag(tag) or meta_pretrain.get(arch, [])
        domains = ["natural-images"]
        if vocab.IMAGE_TEXT_DATA & set(pre):
            domains.append("web-image-text")
        if vocab.REMOTE_SENSING_DATA & set(pre):
            domains = ["remote-sensing"]
        params, feat = counter(name, cfg) if count_params else (None, None)
        loc = (cfg.hf_hub_id, cfg.hf_hub_filename, cfg.url, cfg.file)
        canonical = first_with_weights.get(loc)
        tasks = ["image-classification", "image-embedding"] if cfg.num_classes == 1000 else ["image-embedding"]
        yield ModelRecord(
            id=f"timm:{name}",
            modality="image",
            tasks=tasks,
            domains=domains,
            pretraining_data=pre,
            architecture=arch,
            library="timm",
            params=params,
            feature_dim=feat,
            input_size=list(cfg.input_size) if cfg.input_size else None,
            mean=[float(x) for x in cfg.mean] if cfg.mean else None,
            std=[float(x) for x in cfg.std] if cfg.std else None,
            interpolation=cfg.interpolation or None,
            crop_pct=float(cfg.crop_pct) if cfg.crop_pct else None,
            license=cfg.license,
            results=results.get(name, {}),
            cpu_latency_ms=latency.get(arch),
            description=_description(arch, tag, pre, cfg),
            weights=_weights_location(cfg),
            same_weights_as=f"timm:{canonical}" if canonical and canonical != name else None,
            source_version=f"timm {timm.__version__}",
            revision=timm.__version__,
            sources={"metadata": "timm PretrainedCfg", "results": "timm results CSVs (pytorch-image-models)"},
            extra={"tag": tag, "hf_hub_id": cfg.hf_hub_id, "num_classes": cfg.num_classes,
                   "test_input_size": list(cfg.test_input_size) if cfg.test_input_size else None},
        )
        if progress:
            progress(1)
