"""The report's content, built from a ``StoredRun`` as document blocks plus a machine-readable
summary. Every section is present whatever the run had: a part that was not run (no data, no probe,
no plan) says so and gives the command that runs it."""

from __future__ import annotations

import shlex
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo import vocab
from zoo.format import and_list, fmt_params
from zoo.report import analysis as an
from zoo.report import plots
from zoo.report.doc import Bullets, Code, Document, Gallery, Image, Para, Section, Table
from zoo.runs import StoredCandidate, StoredRun, contributions
from zoo.statements import constraint_text, order_note, rank_phrase, scope_sentence

SHORT = {"domain_similarity": "sim", "domain_match": "match", "quality": "quality", "popularity": "pop",
         "size_fit": "size"}
MAX_THUMBS = 8
MAX_TEXT_EXAMPLES = 6
DATA_PLACEHOLDER = "PATH/TO/DATA"


@dataclass
class Built:
    doc: Document
    summary: dict[str, Any] = field(default_factory=dict)  # derived facts for report.json


def _params(n: Any) -> str:
    return fmt_params(n if isinstance(n, int) else None)


def _pct(v: Any) -> str:
    return f"{float(v):.0%}" if isinstance(v, (int, float)) else "-"


def _num(v: Any, digits: int = 3) -> str:
    if isinstance(v, bool) or v is None:
        return "-" if v is None else str(v)
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _value_text(v: Any) -> str:
    """A plan or probe field in words: lists joined, dicts as key=value, floats rounded."""
    if isinstance(v, dict):
        return "; ".join(f"{k}={_value_text(x)}" for k, x in v.items()) or "-"
    if isinstance(v, (list, tuple)):
        return ", ".join(_value_text(x) for x in v) or "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return "-" if v is None else str(v)


class _Builder:
    def __init__(self, run: StoredRun):
        self.run = run
        self.ties = an.ties(run)
        self.flags = {c.id: an.flags_for(c, run.options) for c in run.candidates}
        self.summary: dict[str, Any] = {}
        self.data_cmd = an.recommend_command(run, data=run.data_path or DATA_PLACEHOLDER)
        self.probe_cmd = an.recommend_command(run, data=run.data_path or DATA_PLACEHOLDER,
                                              probe_top=run.probe_top or 3)

    # -- recommendation -----------------------------------------------------------------------
    def recommendation(self) -> Section:
        run, t = self.run, self.ties
        s = Section("Recommendation", "recommendation")
        pick = run.best
        if pick is None:
            s.blocks.append(Para(f"No recommendation: {run.empty_reason or 'no candidate satisfies the constraints.'}",
                                 "warn"))
            self.summary["recommendation"] = None
            return s
        probe = an.probe_metric(pick.probe)
        lead = f"Start from **{pick.id}** ({rank_phrase(run)}, score {pick.score:.3f})"
        if probe is not None:
            lead += f"; probe accuracy {probe.text()}"
        s.blocks.append(Para(lead + ".", "lead"))
        if pick.reason:
            s.blocks.append(Para(f"Why: {pick.reason}."))
        for f in self.flags.get(pick.id, []):
            s.blocks.append(Para(f"Flag: {f}.", "warn"))
        for w in pick.data_warnings:
            s.blocks.append(Para(f"Data fit: {w}.", "warn"))
        if t.judged:
            if t.tied:
                s.blocks.append(Para(f"Statistically tied alternatives ({t.method}):"))
                s.blocks.append(Bullets([f"**{c.id}**: {why}" for c, why in t.tied]))
            else:
                s.blocks.append(Para("No statistically tied alternative: no other probed candidate's accuracy "
                                     "interval overlaps the pick's."))
        else:
            s.blocks.append(Para(f"Statistically tied alternatives: {t.method}. A linear probe on your data gives "
                                 f"accuracy intervals to judge ties by: `{self.probe_cmd}`.", "note"))
            runners = run.candidates[1:3]
            if runners:
                s.blocks.append(Para("Next by the description score: " + "; ".join(
                    f"{c.id} ({c.score:.3f})" for c in runners) + "."))
        if t.best_probe is not None:
            m = an.probe_metric(t.best_probe.probe)
            s.blocks.append(Para(f"Note: {t.best_probe.id} had the highest probe accuracy "
                                 f"({m.text() if m else '?'})."))
        k = len((run.data or {}).get("class_counts") or {})
        s.blocks.append(Para("Load it with its own preprocessing and a new head:"))
        s.blocks.append(Code(self.snippet(pick, k)))
        self.summary["recommendation"] = {
            "id": pick.id, "score": pick.score, "reason": pick.reason, "flags": self.flags.get(pick.id, []),
            "probe_accuracy": None if probe is None else {"value": probe.value, "lo": probe.lo, "hi": probe.hi},
            "tied": [{"id": c.id, "why": why} for c, why in t.tied], "ties_judged": t.judged, "ties_method": t.method,
        }
        return s

    def snippet(self, pick: StoredCandidate, k: int) -> str:
        classes = (f"K = {k}  # classes in your data" if k else "K = 2  # the number of classes in your task")
        return "\n".join([
            "import zoo",
            "",
            "# pinned by id, so this loads the chosen backbone even after the registry changes",
            an.api_call(self.run, pick.id),
            classes,
            "backbone = rec.best.load(num_classes=K)  # LoadedBackbone: .model, .head, .preprocess, .feature_dim",
            "model, head, preprocess = backbone.model, backbone.head, backbone.preprocess",
        ])

    # -- task ---------------------------------------------------------------------------------
    def task(self) -> Section:
        u = self.run.understanding
        s = Section("The task", "task")
        s.blocks.append(Para(f"As given: “{self.run.task}”"))
        s.blocks.append(Para(f"Understood as: modality **{u.modality}** ({u.modality_how(long=True)})."))
        s.blocks += [Para(line) for line in u.notes()]
        if u.datasets:
            s.blocks.append(Para("The task names known datasets, taken as evidence for the modality and the "
                                 "domain tags: " + ", ".join(u.datasets) + "."))
        if u.domains:
            s.blocks.append(Table(["domain tag", "confidence", "meaning"],
                                  [[d, _pct(c), vocab.DOMAINS.get(d, "")] for d, c in u.domains.items()],
                                  caption="Inferred domain tags", numeric=[1]))
        else:
            s.blocks.append(Para("No domain tag was inferred: the ranking leans on the card similarity and "
                                 "the quality prior."))
        others = sorted(((m, c) for m, c in u.modality_scores.items() if m != u.modality), key=lambda t: -t[1])[:2]
        if others and not u.modality_fixed:
            s.blocks.append(Para("Other modalities considered: " + ", ".join(f"{m} ({_pct(c)})" for m, c in others)
                                 + ". Give `--modality` if the inference is wrong."))
        return s

    # -- constraints --------------------------------------------------------------------------
    def constraints(self) -> Section:
        run = self.run
        s = Section("Constraints", "constraints")
        rows = [[c.name, _value_text(c.value), str(c.excluded), str(c.excluded_unknown), str(c.remaining)] for c in run.constraints]
        if rows:
            s.blocks.append(Table(["constraint", "value", "excluded", "of which unknown", "remaining"], rows,
                                  numeric=[2, 3, 4]))
        if run.constraints:
            s.blocks.append(Bullets([constraint_text(c, run.understanding) for c in run.constraints]))
        if not any(c.name not in ("modality", "candidates") for c in run.constraints):
            s.blocks.append(Para("No constraint beyond the modality: license, size and latency were not "
                                 "restricted (`--license-class`, `--max-params`, `--max-latency-ms`)."))
        s.blocks.append(Para(scope_sentence(run)))
        shown = {k: v for k, v in run.options.items() if v not in (None, False, [], "")}
        if shown:
            s.blocks.append(Para("Options: " + ", ".join(f"{k}={_value_text(v)}" for k, v in shown.items()) + "."))
        return s

    # -- data ---------------------------------------------------------------------------------
    def data(self) -> Section:
        run = self.run
        s = Section("Data", "data")
        d = run.data
        if not d:
            s.blocks.append(Para("Not run: no sample data was given, so the ranking uses the task description "
                                 f"and the priors only. To score the candidates on your data: `{self.data_cmd}`",
                                 "note"))
            self.summary["data"] = None
            return s
        path = run.data_path
        if d.get("description"):
            s.blocks.append(Para(str(d["description"])))
        facts = [f"source: `{path}`" if path else "source: not recorded",
                 f"content hash: `{d.get('content_hash') or '-'}`"]
        for key in ("modality", "task", "n"):
            if d.get(key) is not None:
                facts.append(f"{'samples' if key == 'n' else key}: {d[key]}")
        if d.get("max_samples_per_class"):
            facts.append(f"at most {d['max_samples_per_class']} per class")
        s.blocks.append(Bullets(facts))
        counts = d.get("class_counts") or {}
        if counts:
            avail = d.get("available") or {}
            if avail and any(avail.get(k, v) != v for k, v in counts.items()):
                rows = [[str(k), str(v), str(avail.get(k, "-"))] for k, v in counts.items()]
                s.blocks.append(Table(["class", "samples used", "available"], rows, caption=f"{len(counts)} classes",
                                      numeric=[1, 2]))
            else:
                s.blocks.append(Table(["class", "samples"], [[str(k), str(v)] for k, v in counts.items()],
                                      caption=f"{len(counts)} classes", numeric=[1]))
            if len(counts) >= 2:
                s.blocks.append(Image("class_counts.png", plots.class_counts_plot(counts), "Samples per class",
                                      alt="bar chart of samples per class"))
        s.blocks.extend(self._skipped(d.get("skipped"), d.get("skipped_reasons"), d.get("skipped_examples")))
        s.blocks.extend(self._examples(d, path))
        if run.not_scored:
            s.blocks.append(Para("Strong candidates that could not be scored on the data:"))
            s.blocks.append(Bullets([f"{i}: {why}" for i, why in run.not_scored.items()]))
        return s

    @staticmethod
    def _skipped(skipped: Any, reasons: Any = None, examples: Any = None) -> list[Any]:
        """What was skipped and why, from a count with reasons and examples (zoo.data_rank's summary)
        or from a list of (item, reason) pairs."""
        def pairs_of(items: Any) -> list[tuple[str, str]]:
            return [(str(an.get(x, "item", "path", default="?")), str(an.get(x, "reason", default="?")))
                    if isinstance(x, dict) else (str(x[0]), str(x[1]))
                    if isinstance(x, (list, tuple)) and len(x) == 2 else (str(x), "?") for x in items or []]

        pairs = pairs_of(examples) or (pairs_of(skipped) if isinstance(skipped, list) else [])
        n = skipped if isinstance(skipped, int) else len(skipped) if isinstance(skipped, list) else 0
        if isinstance(skipped, dict):
            reasons, n = skipped, sum(int(v) for v in skipped.values())
        if not n:
            return [Para("Nothing was skipped.")]
        if isinstance(reasons, dict) and reasons:
            kinds = Counter({str(why).split(":", 1)[0]: 0 for why in reasons})
            for why, k in reasons.items():
                kinds[str(why).split(":", 1)[0]] += int(k)
        else:
            kinds = Counter(r.split(":", 1)[0] for _, r in pairs)
        why = ", ".join(f"{k} {r}" for r, k in kinds.most_common()) if kinds else "unreadable or malformed"
        out: list[Any] = [Para(f"Skipped {n} item(s): {why}." + (" Examples:" if pairs else ""))]
        if pairs:
            out.append(Bullets([f"`{Path(i).name}`: {r}" for i, r in pairs[:5]]))
        return out

    def _examples(self, d: dict[str, Any], path: str | None) -> list[Any]:
        """A few thumbnails (images) or texts, from the data itself when it is still where it was."""
        given = d.get("examples")
        items: list[tuple[str, str]] = []  # (label, path or text)
        modality = d.get("modality")
        if isinstance(given, list) and given:
            items = [(str(an.get(e, "label", default="")), str(an.get(e, "path", "text", default="")))
                     if isinstance(e, dict) else ("", str(e)) for e in given]
        elif path:
            try:
                from zoo.data import load_sample

                kw = {k: d.get(k) or self.run.options.get(k) for k in ("text_column", "label_column")}
                kw = {k: v for k, v in kw.items() if v}
                sample = load_sample(path, max_samples_per_class=2, **kw)
            except Exception as e:  # noqa: BLE001 - data moved or changed since the run: the report still renders
                return [Para(f"Examples not shown: {e}", "note")]
            modality = sample.modality
            labels = list(sample.labels) if sample.labels is not None and sample.task == "classification" else []
            by_class: dict[str, list[str]] = {}
            for i, item in enumerate(sample.items or []):
                label = sample.classes[int(labels[i])] if labels else ""
                by_class.setdefault(label, []).append(str(item))
            # One per class first, then a second: the examples show the spread of classes.
            for rnd in range(2):
                for label, its in by_class.items():
                    if len(its) > rnd:
                        items.append((label, its[rnd]))
        if not items:
            return []
        if modality == "image":
            thumbs = []
            for i, (label, p) in enumerate(items[:MAX_THUMBS]):
                try:
                    png = plots.thumbnail(p)
                except OSError:
                    continue  # unreadable now: the data summary already lists what was skipped
                thumbs.append(Image(f"example_{i}.png", png, label or Path(p).name, alt=f"example image {label}",
                                    width=112))
            return [Gallery(thumbs, "Examples from the data:")] if thumbs else []
        rows = [[label or "-", text if len(text) <= 200 else text[:199] + "…"]
                for label, text in items[:MAX_TEXT_EXAMPLES]]
        return [Table(["label", "text"], rows, caption="Examples from the data")]

    # -- candidates ---------------------------------------------------------------------------
    def _confidence(self) -> list[Any]:
        """How sure the data-aware ranking is (zoo.confidence), as measured when it ran."""
        conf = self.run.confidence
        if not conf:
            return []
        n, asked = int(conf.get("n_boot") or 0), int(conf.get("n_boot_asked") or 0)
        head = (f"**Confidence**: {conf['top']} stays first in {100 * float(conf['stays_first']):.0f} % of {n} "
                f"resamples of your sample" + (f" ({asked} asked; capped to bound the time)" if asked > n else ""))
        tied = list(conf.get("tied") or [])
        text = head + (f"; tied with it: {', '.join(tied)}." if tied else "; no candidate is tied with it.")
        blocks: list[Any] = [Para(text, "warn" if tied else "text")]
        if tied:
            blocks.append(Para(f"The leaders are tied: the scores cannot tell {and_list([conf['top'], *tied])} "
                               "apart on this sample.", "warn"))
        if conf.get("probe_note"):
            blocks.append(Para(conf["probe_note"][0].upper() + conf["probe_note"][1:] + ".", "note"))
        blocks.append(Para(f"({conf.get('rule', '')}; {', '.join(conf.get('scorers') or [])} recomputed on each "
                           "half-sample of the rows; zoo.confidence.)", "note"))
        return blocks

    def candidates(self) -> Section:
        run = self.run
        s = Section("Candidates", "candidates")
        if not run.candidates:
            s.blocks.append(Para(run.empty_reason or "No candidate satisfies the constraints.", "warn"))
            return s
        comps = list(run.weights) + sorted({k for c in run.candidates for k in c.components} - set(run.weights)
                                           - {"cosine"})
        rows = []
        for c in run.candidates:
            rows.append([str(c.rank), c.id, f"{c.score:.3f}", *(_num(c.components.get(k), 2) for k in comps),
                         _params(c.record.get("params")), str(c.record.get("license_class") or "-"),
                         f"+{len(c.variants)}" if c.variants else ""])
        s.blocks.append(Table(["#", "id", "score", *(SHORT.get(k, k) for k in comps), "params", "license", "tags"],
                              rows, numeric=list(range(2, 3 + len(comps)))))
        note = order_note(run)
        if note:
            s.blocks.append(Para(note, "note"))
        s.blocks.append(Para("Components: " + "; ".join(
            f"{SHORT.get(k, k)} = {k} (weight {w:g})" for k, w in run.weights.items())
            + ". Each is in [0, 1]; a prior the model lacks is 0.5."))
        fusion = run.fusion or {}
        if "data" in fusion:
            s.blocks.append(Para(
                f"With your data the score is {float(fusion.get('description', 0)):g} x description (the weighted sum "
                f"above, min-max scaled over the scored candidates) + {float(fusion['data']):g} x data (the mean "
                f"z-score of {', '.join(fusion.get('fused_scores') or run.scores)} over the candidates, "
                "min-max scaled)"
                + (f" + {float(fusion['size_prior']):g} x size prior (log parameter count, min-max scaled; "
                   "unknown size 0.5)" if fusion.get("size_prior") else "") + "."))
            for name, why in (fusion.get("not_fused") or {}).items():
                s.blocks.append(Para(f"Not fused: {name} ({why}).", "note"))
        s.blocks.extend(self._confidence())
        s.blocks.append(Para("Reasons:"))
        s.blocks.append(Bullets([f"**{c.id}** (#{c.rank}): {c.reason or 'no particular reason recorded'}"
                                 + (f" (other tags: {', '.join(c.variants[:3])}"
                                    + (", …" if len(c.variants) > 3 else "") + ")" if c.variants else "")
                                 for c in run.candidates]))
        parts = [(c.id, contributions(run, c)) for c in run.candidates]
        names = list(dict.fromkeys(k for _, p in parts for k in p))
        weights = {"data": float((run.fusion or {}).get("data", 0)),
                   "size_prior": float((run.fusion or {}).get("size_prior", 0)),
                   "description": float((run.fusion or {}).get("description", 0)), **run.weights}
        legend = {k: f"{k} (x{weights[k]:g})" if k in weights else k for k in names}
        s.blocks.append(Image("components.png", plots.components_plot(parts, legend),
                              "Each candidate's score split into what each component adds",
                              alt="stacked bar chart of score components"))
        s.blocks.extend(self._data_scores())
        s.blocks.extend(self._pareto())
        return s

    def _data_scores(self) -> list[Any]:
        run = self.run
        names = list(dict.fromkeys([*run.scores, *(k for c in run.candidates for k in c.data_scores)]))
        if not names:
            return [Para(f"Data scores: not run (no sample data). `{self.data_cmd}`", "note")]
        rows = [[c.id, *(_num(c.data_scores.get(n), 3) for n in names),
                 "-" if c.data_seconds is None else f"{c.data_seconds:.1f}",
                 "-" if c.data_cached is None else ("yes" if c.data_cached else "no")] for c in run.candidates]
        return [Table(["id", *names, "extract s", "cached"], rows, caption="Transferability scores on your data",
                      numeric=list(range(1, len(names) + 2)))]

    def _pareto(self) -> list[Any]:
        run = self.run
        probed = {c.id: an.probe_metric(c.probe) for c in run.candidates}
        use_probe = sum(1 for c in run.candidates if probed[c.id] and isinstance(c.record.get("params"), int)) >= 2
        out: list[Any] = []
        same = _same_probe_accuracy(run)
        if use_probe and same is not None:  # a flat line: the plot would say nothing about accuracy
            sized = [c for c in run.candidates if probed[c.id] and isinstance(c.record.get("params"), int)]
            small = min(sized, key=lambda c: c.record["params"])
            out.append(Para(f"Probe accuracy against size: not plotted, every probed model scored {same:.1f}%; the "
                            f"smallest of them, {small.id} ({_params(small.record['params'])} parameters), is as "
                            "accurate as any on this sample. The fused score against size follows.", "note"))
            use_probe = False
        pts = []
        for c in run.candidates:
            p = c.record.get("params")
            if not isinstance(p, int) or p <= 0:
                continue
            if use_probe:
                m = probed[c.id]
                if m is not None:
                    pts.append((c.id, float(p), m.pct()[0]))
            else:
                pts.append((c.id, float(p), c.score))
        unknown = sum(1 for c in run.candidates if not isinstance(c.record.get("params"), int))
        ylabel = "probe accuracy (%)" if use_probe else "fused score"
        if len(pts) < 2:
            return [*out, Para(f"{ylabel.capitalize()} against size: not plotted, fewer than two candidates have a "
                               f"known parameter count ({unknown} of {len(run.candidates)} unknown).", "note")]
        front = an.pareto_front(pts)
        self.summary["pareto"] = {"metric": ylabel, "front": front, "points": pts}
        pick = run.best.id if run.best else None
        caption = (f"{ylabel.capitalize()} against parameter count; the Pareto front (no smaller model does better) "
                   f"is joined: {', '.join(front)}"
                   + (f". {unknown} candidate(s) with an unknown size are not shown" if unknown else ""))
        return [*out, Image("pareto.png", plots.pareto_plot(pts, front, pick, ylabel), caption,
                            alt=f"{ylabel} against parameter count with the Pareto front")]

    # -- probe --------------------------------------------------------------------------------
    def probe(self) -> Section:
        run = self.run
        s = Section("Probe", "probe")
        probed = [(c, an.probe_metric(c.probe)) for c in run.candidates if c.probe]
        if not probed:
            s.blocks.append(Para("Not run: no candidate was probed. A linear probe trains a classifier on each top "
                                 "candidate's frozen features with cross-validation and reports accuracy with an "
                                 f"interval: `{self.probe_cmd}`", "note"))
            self.summary["probe"] = None
            return s
        extra = ["macro_f1", "folds", "seed", "seconds", "device"]
        rows = []
        for c, m in probed:
            f1 = an.probe_metric(c.probe, "macro_f1")
            rows.append([c.id, m.text() if m else "-", f1.text() if f1 else "-",
                         *(_num(an.get(c.probe, k), 1) for k in extra[1:])])
        s.blocks.append(Table(["id", "accuracy [interval]", "macro F1 [interval]", *extra[1:]], rows,
                              caption="Linear probe on your data", numeric=[3, 4, 5]))
        tied = {c.id for c, _ in self.ties.tied}
        plot_rows = [(c.id, *m.pct(), "pick" if c.id == (run.best.id if run.best else None)
                      else "tied" if c.id in tied else "other") for c, m in probed if m is not None]
        same = _same_probe_accuracy(run)
        if same is not None:  # every model at the same accuracy: a plot of one vertical line says nothing
            easy = "the sample is too easy to separate them" if same >= 99.95 else "the probe does not separate them"
            s.blocks.append(Para(f"Every probed model ({len(plot_rows)}) scored {same:.1f}% probe accuracy: {easy}. "
                                 "No plot is drawn; probe more or harder data (`--max-samples`, more classes) or "
                                 "fine-tune the candidates to tell them apart.", "note"))
        elif plot_rows:
            s.blocks.append(Image("probe.png", plots.probe_plot(plot_rows),
                                  "Probe accuracy with its interval; overlapping intervals are statistical ties",
                                  alt="probe accuracy with error bars"))
        agree = an.agreement(run)
        self.summary["probe"] = {c.id: an.as_dict(c.probe) for c, _ in probed}
        self.summary["agreement"] = {k: {"spearman": v["spearman"], "n": len(v["points"])} for k, v in agree.items()}
        if agree and all(v["spearman"] is None for v in agree.values()):
            why = (f"every probed model has the same probe accuracy ({same:.1f}%)" if same is not None
                   else f"it needs at least three probed candidates whose scores and accuracies differ "
                        f"({min(len(v['points']) for v in agree.values())} probed)")
            s.blocks.append(Para(f"Agreement between the scores and the probe: not measurable, {why}. No plot is "
                                 "drawn.", "note"))
        elif agree:
            s.blocks.append(Image("agreement.png", plots.agreement_plot(agree),
                                  "Agreement between the scores and the probe: each score against probe accuracy",
                                  alt="scores against probe accuracy"))
            few = min(len(v["points"]) for v in agree.values()) < 5
            s.blocks.append(Table(["score", "Spearman vs probe", "candidates"],
                                  [[k, "-" if v["spearman"] is None else f"{v['spearman']:+.2f}", str(len(v["points"]))]
                                   for k, v in agree.items()], numeric=[1, 2],
                                  caption="Rank agreement with the probe" + (
                                      ": with fewer than 5 probed candidates it is indicative only" if few else "")))
        else:
            s.blocks.append(Para("Agreement between scores and probe: needs at least two probed candidates.", "note"))
        return s

    # -- data fit -----------------------------------------------------------------------------
    def data_fit(self) -> Section:
        """Where the sample does not fit a candidate (zoo.scoring.fit_warnings): its own heading, not a flag."""
        run = self.run
        s = Section("Data fit", "data-fit")
        if not run.data:
            s.blocks.append(Para("Not checked: no sample data was given. With data, zoo says where it does not fit a "
                                 "model: images far from its input size, grayscale into colour or the reverse, texts "
                                 f"longer than its token limit or in a language it was not trained on. `{self.data_cmd}`",
                                 "note"))
            self.summary["data_fit"] = None
            return s
        warned = {c.id: list(c.data_warnings) for c in run.candidates if c.data_warnings}
        self.summary["data_fit"] = warned
        if warned:
            s.blocks.append(Table(["id", "where the data does not fit"], [[k, "; ".join(v)] for k, v in warned.items()]))
        else:
            n = sum(1 for c in run.candidates if c.data_scores or c.data_seconds is not None)
            s.blocks.append(Para(f"No data-fit warning for the {n} candidate{'s' if n != 1 else ''} shown that were "
                                 "scored on your data (checked: image size against each model's input, grayscale "
                                 "against colour, text length against its token limit, the texts' language)."))
        return s

    # -- flags --------------------------------------------------------------------------------
    def flag_section(self) -> Section:
        s = Section("License and size flags", "flags")
        rows = [[c.id, "; ".join(self.flags[c.id])] for c in self.run.candidates if self.flags[c.id]]
        self.summary["flags"] = {k: v for k, v in self.flags.items() if v}
        if rows:
            s.blocks.append(Table(["id", "flags"], rows))
        else:
            s.blocks.append(Para("No flags: every candidate has a known permissive or copyleft license and a known "
                                 "size within the budget."))
        s.blocks.append(Para("License classes: " + "; ".join(f"{k}: {v}" for k, v in vocab.LICENSE_CLASSES.items())
                             + "."))
        return s

    # -- plan ---------------------------------------------------------------------------------
    def plan(self) -> Section:
        s = Section("Transfer plan", "plan")
        planned = [c for c in self.run.candidates if c.plan]
        if not planned:
            s.blocks.append(Para("Not made: a transfer plan (what to freeze, learning rates, epochs) is made for the "
                                 f"top pick when sample data is given: `{self.data_cmd}`", "note"))
            self.summary["plan"] = None
            return s
        for c in planned:
            plan = an.as_dict(c.plan)
            scalars = [[k, _value_text(v)] for k, v in plan.items()
                       if not (isinstance(v, list) and v and all(isinstance(x, dict) for x in v))]
            s.blocks.append(Table(["field", "value"], scalars, caption=f"Plan for {c.id}"))
            for k, v in plan.items():
                if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
                    keys = list(dict.fromkeys(key for x in v for key in x))
                    s.blocks.append(Table(keys, [[_value_text(x.get(key)) for key in keys] for x in v], caption=k))
        self.summary["plan"] = {c.id: an.as_dict(c.plan) for c in planned}
        return s

    # -- reproducibility ----------------------------------------------------------------------
    def reproducibility(self) -> Section:
        run = self.run
        s = Section("Reproducibility", "reproducibility")
        v = run.versions
        seeds, devices = an.seeds_and_devices(run)
        rows = [
            ["run id", run.id or "not stored"],
            ["created", run.created_at or "-"],
            ["zoo version", v.get("zoo", "-")],
            ["registry version", v.get("registry") or "-"],
            ["embedding model", run.embed_model or "-"],
            ["data hash", run.data_hash or "no data"],
            ["seeds", ", ".join(map(str, seeds)) or "none used (no data, no probe)"],
            ["device", ", ".join(devices) or ("not recorded" if run.data else "none (no model was run)")],
            ["recommendation time", f"{run.seconds:.2f} s"],
        ]
        extract = [c.data_seconds for c in run.candidates if c.data_seconds is not None]
        if extract:
            cached = sum(1 for c in run.candidates if c.data_cached)
            rows.append(["feature extraction", f"{sum(extract):.1f} s over {len(extract)} models ({cached} cached)"])
        probe_s = [float(x) for c in run.candidates if c.probe
                   for x in [an.get(c.probe, "seconds")] if isinstance(x, (int, float))]
        if probe_s:
            rows.append(["probe", f"{sum(probe_s):.1f} s over {len(probe_s)} models"])
        rows += [[k, val] for k, val in v.items() if k not in ("zoo", "registry")]
        s.blocks.append(Table(["what", "value"], rows))
        s.blocks.append(Para("The same recommendation again:"))
        s.blocks.append(Code(an.recommend_command(run), "sh"))
        if run.id:
            s.blocks.append(Para(f"This report again: `zoo report {shlex.quote(run.id)} --out DIR`; "
                                 f"compare with a later run: `zoo runs compare {shlex.quote(run.id)} OTHER_ID`."))
        self.summary["reproducibility"] = {r[0]: r[1] for r in rows}
        return s


def _same_probe_accuracy(run: StoredRun) -> float | None:
    """The probe accuracy (percent) when at least two candidates were probed and all scored the same, else None."""
    accs = [m.pct()[0] for c in run.candidates if c.probe for m in [an.probe_metric(c.probe)] if m is not None]
    if len(accs) < 2 or max(accs) - min(accs) > 1e-9:
        return None
    return accs[0]


def build(run: StoredRun) -> Built:
    b = _Builder(run)
    sections = [b.recommendation(), b.task(), b.constraints(), b.data(), b.data_fit(), b.candidates(), b.probe(),
                b.flag_section(), b.plan(), b.reproducibility()]
    sub = f"Model-selection review · run {run.id or 'not stored'}"
    if run.created_at:
        sub += f" · {run.created_at}"
    title = f"Which backbone for “{run.task}”"
    return Built(Document(title, sub, sections), b.summary)
