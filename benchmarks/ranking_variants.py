"""Issue 20's candidate variants and calibration for ``bench_ranking.py`` (pre-registered there in PREREGISTERED).

Every variant is a switch on top of the shipped fusion, computed from what the benchmark already has (zoo's
raw scores, the cached features of the sample) plus, for ``layer_mean``, the other features of the two
transformer text encoders:

- ``layer_mean``: the mean over the transformer layers of the attention-mask mean-pooled hidden states
  (TransformerRanker's "layer mean", Garbas et al., ACL Findings 2024) replaces the pooled features of
  all-MiniLM-L6-v2 and all-mpnet-base-v2; the fused scorers are recomputed on them. ADOPTED, and since issue
  20 item 1 zoo's default (``zoo.backbones.layers``): in a run of this zoo the switch is on in "zoo: with data"
  (:func:`shipped`), and turning it off puts back the pooled features (``variants["pooled"]``: the scorers on
  ``zoo.features.extract(..., layers=None)``). A stored run from before holds the layer-mean scores instead
  (``variants["layer_mean"]``, from :func:`layer_mean_features`, an implementation kept apart from zoo's and
  cached under ``<zoo cache>/bench_layer_mean``; tests/test_layer_mean.py checks that zoo's features equal it);
- ``source_heads``: NCE and LEEP join the fused scorers when every candidate has a source head;
- ``non_embedding_size``: the size prior counts parameters outside the embedding tables;
- ``saturation``: H-score and TransRate join the fused scorers, each left out of a task where any candidate is
  in its ill-posed regime (H-score: n <= d + 1; TransRate: the smallest class has fewer rows than d).
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import numpy as np

TRANSFORMER_TEXT = ("local:all-MiniLM-L6-v2", "local:all-mpnet-base-v2")
SWITCHES = ("layer_mean", "source_heads", "non_embedding_size", "saturation")
SOURCE = ("nce", "leep")
SATURABLE = ("hscore", "transrate")
TABLES = ("word_embeddings", "position_embeddings", "token_type_embeddings")


# ----------------------------------------------------------------------------------- layer-mean features


def layer_mean_features(record: Any, sample: Any, batch_size: int = 32) -> tuple[np.ndarray, list[int]]:
    """``(features (n, d), layers used)``: the mean over transformer layers 1..L of the mask-mean-pooled hidden
    states of ``sample``'s texts under the sentence-transformers ``record`` (cached by model and sample)."""
    from zoo.embed import cache_dir

    key = hashlib.sha256(json.dumps([record.id, sample.content_hash, list(sample.items)]).encode()).hexdigest()[:24]
    folder = cache_dir() / "bench_layer_mean"
    path, meta = folder / f"{key}.npy", folder / f"{key}.json"
    if path.is_file() and meta.is_file():
        return np.load(path), json.loads(meta.read_text())["layers"]
    import torch

    from zoo.backbones import load_backbone

    st = load_backbone(record, device="cpu").model  # a SentenceTransformer (the adapter's model)
    transformer, tokenizer = st[0].auto_model, st.tokenizer
    max_len = int(st.max_seq_length)
    texts = list(sample.items)
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            enc = tokenizer(texts[i:i + batch_size], padding=True, truncation=True, max_length=max_len,
                            return_tensors="pt")
            hidden = transformer(**enc, output_hidden_states=True).hidden_states[1:]  # [0] is the embedding output
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = [(h * mask).sum(1) / mask.sum(1).clamp(min=1.0) for h in hidden]
            out.append(torch.stack(pooled).mean(0).numpy())
    feats = np.concatenate(out).astype(np.float32)
    layers = list(range(1, len(hidden) + 1))
    folder.mkdir(parents=True, exist_ok=True)
    np.save(path, feats)
    meta.write_text(json.dumps({"model": record.id, "layers": layers, "n": len(texts)}))
    return feats, layers


# ----------------------------------------------------------------------------------- size


_NON_EMB: dict[str, int] = {}


def non_embedding_params(record: Any) -> int:
    """Parameters outside the token / position / token-type embedding tables (averaged GloVe: 0; models
    without embedding tables: all their parameters). Prefers the catalog's own figure when it records one."""
    if record.id not in _NON_EMB:
        _NON_EMB[record.id] = _non_embedding_params(record)
    return _NON_EMB[record.id]


def _non_embedding_params(record: Any) -> int:
    for attr in ("non_embedding_params", "params_non_embedding"):
        v = getattr(record, attr, None)
        if v is not None:
            return int(v)
    total = int(record.params or 0)
    if record.modality != "text":
        return total
    if record.library == "glove" or "glove" in record.id:
        return 0
    if record.library in ("sentence-transformers", "transformers"):
        from zoo.backbones import load_backbone

        model = load_backbone(record, device="cpu").model
        import torch

        emb = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Embedding))
        return total - int(emb)
    if record.library == "onnx":
        return total - _onnx_embedding_params(record)
    return total


def _onnx_embedding_params(record: Any) -> int:
    import onnx

    from zoo.weights import resolve_weights

    path = resolve_weights(record)
    model = onnx.load(str(path), load_external_data=False)
    n = 0
    for init in model.graph.initializer:
        # the tables themselves (int8 exports name them .weight_q, next to a per-row .weight_scale)
        if any(t in init.name for t in TABLES) and init.name.endswith((".weight", ".weight_q")):
            n += int(np.prod(init.dims))
    return n


# ----------------------------------------------------------------------------------- saturation


def ill_posed(name: str, n: int, d: int, min_class: int) -> str | None:
    """Why scorer ``name`` is not informative on ``n`` rows of ``d``-dim features (None when it is)."""
    if name == "hscore" and n <= d + 1:
        return f"H-score with n={n} <= d+1={d + 1}: it equals C-1 for any features"
    if name == "transrate" and min_class < d:
        return f"TransRate with {min_class} rows in the smallest class < d={d}: it ranks by dimension"
    return None


# ----------------------------------------------------------------------------------- the variant fusion


def variant_inputs(sample: Any, records: dict[str, Any], dims: dict[str, int],
                   score_names: tuple[str, ...], shipped_layer_mean: bool = True) -> dict[str, Any]:
    """What the variants need for one task (JSON-able): sample shape, feature dims, non-embedding parameter
    counts, and for the transformer text encoders the scorers on the features the run's zoo did not score:
    the pooled output (``pooled``) when it scored the layer mean (``shipped_layer_mean``, this zoo), else the
    layer mean (``layer_mean``: a stored run from before zoo shipped it)."""
    from zoo import scores as scorers
    from zoo.backbones.layers import scoring_layers
    from zoo.features import extract

    labels = sample.labels
    out: dict[str, Any] = {"n": int(len(labels)), "min_class": int(np.bincount(labels).min()), "dims": dict(dims),
                           "layer_mean": {}, "layers": {}, "non_embedding_params": {}}
    if shipped_layer_mean:
        out["pooled"] = {}
    for m, rec in records.items():
        try:
            out["non_embedding_params"][m] = non_embedding_params(rec)
        except Exception as e:  # noqa: BLE001 - a count that cannot be made leaves the raw count (said)
            print(f"non-embedding parameters of {m}: {type(e).__name__}: {e}; raw count used", flush=True)
            out["non_embedding_params"][m] = int(rec.params or 0)
        if shipped_layer_mean and scoring_layers(rec, sample.modality) is not None:
            lm, pooled = extract(rec, sample), extract(rec, sample, layers=None).features  # zoo's cache: no new pass
            out["pooled"][m] = {s: float(scorers.get_score(s)(pooled, labels)) for s in score_names}
            out["layers"][m] = lm.layers
            out["dims"][m], out["dims"][f"{m}#layer_mean"] = int(pooled.shape[1]), int(lm.features.shape[1])
        elif not shipped_layer_mean and m in TRANSFORMER_TEXT and sample.modality == "text":
            lm, layers = layer_mean_features(rec, sample)
            out["layer_mean"][m] = {s: float(scorers.get_score(s)(lm, labels)) for s in score_names}
            out["layers"][m] = layers
            out["dims"][f"{m}#layer_mean"] = int(lm.shape[1])
    return out


def shipped(result: dict[str, Any]) -> set[str]:
    """The switches on in the zoo that scored ``result``: ``layer_mean`` when its raw scores are on the layer-mean
    features (its variant inputs hold the pooled scores instead), none in a run from before zoo shipped it."""
    return {"layer_mean"} if "pooled" in result.get("variants", {}) else set()


def variant_fused(result: dict[str, Any], on: frozenset[str] | set[str]) -> dict[str, float]:
    """The fusion with exactly the switches in ``on`` turned on (``shipped(result)``: the shipped fusion, rebuilt)."""
    from zoo import fusion

    v = result["variants"]
    models = result.get("candidates", result["models"])
    raw = {m: dict(result["raw_scores"][m]) for m in models}
    # The raw scores are on the features the run's zoo scored; the variant inputs hold the other kind.
    other = v.get("layer_mean", {}) if "layer_mean" in on else v.get("pooled", {})
    for m, sc in other.items():
        if m in raw:
            raw[m].update(sc)
    used = list(fusion.FUSED_SCORES)
    if "source_heads" in on and all(all(s in raw[m] and math.isfinite(raw[m][s]) for s in SOURCE) for m in models):
        used += [s for s in SOURCE if s not in used]
    if "saturation" in on:
        for s in SATURABLE:
            dims = [v["dims"].get(f"{m}#layer_mean" if "layer_mean" in on and f"{m}#layer_mean" in v["dims"] else m)
                    for m in models]
            if all(s in raw[m] for m in models) and not any(
                    ill_posed(s, v["n"], int(d or 0), v["min_class"]) for d in dims):
                used.append(s)
    data = fusion.data_component(raw, tuple(used))
    sizes = v["non_embedding_params"] if "non_embedding_size" in on else result["params"]
    # log(0) has no value: a model with no parameters outside its lookup table counts as 1 (the smallest).
    prior = fusion.size_component({m: max(int(sizes.get(m) or 0), 1) if sizes.get(m) is not None else None
                                   for m in models})
    return fusion.fuse_scores(result["description"], data, fusion.DATA_WEIGHT, prior, fusion.SIZE_WEIGHT)


def loto_choice(results: list[dict[str, Any]], switch: str, evaluate: Any) -> dict[str, bool]:
    """Per task: is ``switch`` on? Chosen on the OLD counted tasks other than the task (held-out tasks: on all
    old counted tasks); on iff it raises mean weighted tau there (ties: lower mean regret; still tied: off). On and
    off are on top of the switches each run shipped with (:func:`shipped`)."""
    old = [r for r in results if not r["saturated"] and not r["heldout"]]
    choice = {}
    for r in results:
        train = [o for o in old if o["task"] != r["task"]]
        if not train:
            choice[r["task"]] = False
            continue
        on = [evaluate(o, variant_fused(o, shipped(o) | {switch})) for o in train]
        off = [evaluate(o, variant_fused(o, shipped(o) - {switch})) for o in train]
        t_on, t_off = np.mean([x[0] for x in on]), np.mean([x[0] for x in off])
        r_on, r_off = np.mean([x[1] for x in on]), np.mean([x[1] for x in off])
        choice[r["task"]] = bool(t_on > t_off + 1e-12 or (abs(t_on - t_off) <= 1e-12 and r_on < r_off - 1e-12))
    return choice


# ----------------------------------------------------------------------------------- calibration


def seed_noise(gt_results: dict[str, dict[str, dict[str, Any]]]) -> float:
    """The ground truth's seed noise: the mean over models of |acc(seed 0) - acc(seed 1)|."""
    d = [abs(s["0"]["accuracy"] - s["1"]["accuracy"]) for s in gt_results.values() if {"0", "1"} <= set(s)]
    return float(np.mean(d)) if d else 0.0


BUCKETS = ((0.0, 0.5, "< 50 %"), (0.5, 0.9, "50-90 %"), (0.9, 1.0 + 1e-9, ">= 90 %"))


def calibration_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows``: one per (task, sample seed) with ``stays_first`` and ``pick_or_tied``; one row per bucket."""
    out = []
    for lo, hi, name in BUCKETS:
        got = [r for r in rows if lo <= r["stays_first"] < hi]
        hits = sum(bool(r["pick_or_tied"]) for r in got)
        out.append({"bucket": name, "n": len(got), "pick_or_tied": hits,
                    "share": (hits / len(got)) if got else math.nan,
                    "tasks": [f"{r['task']}/s{r['seed']}" for r in got]})
    return out
