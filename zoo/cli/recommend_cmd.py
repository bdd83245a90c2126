"""``zoo recommend`` and ``zoo explain``: rank backbones for a task, and say why (not) one."""

from __future__ import annotations

from pathlib import Path

import click

from zoo.cli import options as opt
from zoo.cli.render import TASK_WIDTH, clip, echo_extraction_plan, echo_json, fmt_params, table

COMPONENTS = ("domain_similarity", "domain_match", "quality", "popularity", "size_fit")
SHORT = {"domain_similarity": "sim", "domain_match": "match", "quality": "quality", "popularity": "pop",
         "size_fit": "size"}


def constraint_options(f):
    for deco in reversed([
        opt.modality_option,
        opt.license_class_option,
        opt.max_params_option,
        click.option("--max-latency-ms", type=float, help="At most this CPU latency (batch 1, timm's benchmark)."),
        click.option("--max-input-size", type=int, help="Input resolution at most this many pixels per side."),
        opt.available_option,
        click.option("--allow-unknown", is_flag=True,
                     help="Keep models whose license, size or latency is unknown instead of excluding them."),
        click.option("--candidates", help="Only rank these: ids separated by commas, or a file with one id per line."),
        click.option("--embed-model", help="The sentence-transformers model that reads the task and the model cards "
                                           "(a Hub id or a local folder; default all-MiniLM-L6-v2, or "
                                           "$ZOO_EMBED_MODEL). A new model embeds every card once."),
        opt.db_option,
    ]):
        f = deco(f)
    return f


def _api_kwargs(kw: dict) -> dict:
    return {k: kw[k] for k in ("modality", "max_params", "max_latency_ms", "max_input_size", "available",
                               "allow_unknown", "candidates", "embed_model", "db")} | {
        "license_classes": list(kw["license_classes"]) or None}


def _understanding_lines(rec) -> list[str]:
    from zoo.statements import constraints_line

    u = rec.understanding
    lines = [f"Task: {clip(rec.task, TASK_WIDTH)}", f"Understood as: {u.summary()}", *u.notes()]
    line = constraints_line(rec)
    if line:
        lines.append(line)
    return lines


def data_options(f):
    for deco in reversed([
        click.option("--data", type=click.Path(),
                     help="Your labelled sample: an image folder root/<class>/..., CSV/TSV/JSONL with text and label "
                          "columns, or .npz (x, y). Candidates are then scored on it."),
        click.option("--max-samples", type=click.IntRange(min=2), default=300, show_default=True,
                     help="With --data: at most this many samples per class (stratified)."),
        click.option("--scores", help="With --data: scorers separated by commas "
                                      "(default: logme,hscore,shrinkage_hscore,transrate,knn)."),
        click.option("--score-top", type=click.IntRange(min=1), default=10, show_default=True,
                     help="With --data and no --candidates: score this many of the best candidates of the catalog "
                          "(one per architecture), fetching the weights that are not on this machine."),
        opt.column_options,
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
                     help="Where features are extracted."),
        click.option("--train-size", type=click.IntRange(min=8),
                     help="With --data: score image models at this input size (px, capping their native size): "
                          "the resolution you will fine-tune at."),
        click.option("--probe-top", type=click.IntRange(min=0), default=0, show_default=True,
                     help="With --data: linear-probe the top K (5-fold, on the cached features) and re-rank them "
                          "by probe accuracy."),
        click.option("--probe-budget", type=click.FloatRange(min=0), default=None,
                     help="With --data and no --probe-top: when the leaders are statistically tied, probe them if "
                          "the estimate fits this many seconds (default 60; 0: never)."),
        opt.fetch_options,
        opt.executor_option,
    ]):
        f = deco(f)
    return f


def _data_kwargs(kw: dict) -> dict:
    if not kw["data"]:
        return {}
    return {"data": kw["data"], "max_samples": kw["max_samples"], "score_top": kw["score_top"],
            "scores": [s.strip() for s in kw["scores"].split(",") if s.strip()] if kw["scores"] else None,
            "text_column": kw["text_column"], "label_column": kw["label_column"], "device": kw["device"],
            "probe_top": kw["probe_top"], "train_size": kw["train_size"], "fetch": not kw["no_fetch"],
            "max_download": kw["max_download"], "allow_pickle": kw["allow_pickle"], "executor": kw["executor"],
            "probe_budget": kw["probe_budget"]}


@click.command()
@click.argument("task")
@constraint_options
@data_options
@click.option("--top", "top_k", type=click.IntRange(min=1), default=10, show_default=True, help="How many choices.")
@click.option("--no-group", is_flag=True, help="List every pretrained tag instead of one per architecture.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False),
              help="Also write the review report (HTML, Markdown, JSON) into this folder.")
@opt.json_option
def recommend(task, top_k, no_group, report_dir, as_json, **kw) -> None:
    """Rank backbones for a task described in words, with the reasons; with --data, also by how well
    each candidate's features fit your labelled sample.

    \b
    Examples:
      zoo recommend "detect pneumonia in chest X-rays"
      zoo recommend "sentiment of tweets" --license-class permissive --max-params 150M --top 5
      zoo recommend "classify product photos" --candidates timm:resnet50.a1_in1k,timm:convnext_tiny.fb_in1k
      zoo recommend "classify handwritten digits" --data ./digits --score-top 5
    """
    from zoo.ranking import recommend as run

    data_kw = _data_kwargs(kw)
    if kw["probe_top"] and not kw["data"]:
        raise click.UsageError("--probe-top needs --data: the probe trains on your labelled sample.")
    if data_kw and not as_json:
        data_kw.update(progress=True, on_plan=echo_extraction_plan)
    rec = run(task, top_k=top_k, group=not no_group, **_api_kwargs(kw), **data_kw)
    _store(rec, {"top_k": top_k, "group": not no_group, **_api_kwargs(kw), **_data_kwargs(kw)}, kw["db"], report_dir,
           quiet=as_json)
    if as_json:
        echo_json(rec)
        return
    for line in _understanding_lines(rec):
        click.echo(line)
    if rec.data is not None:
        click.echo(f"Data: {rec.data['description']} (hash {rec.data['content_hash']})")
    if not rec.candidates:
        click.echo(rec.empty_reason or "No candidate could be scored on the data.")
        _echo_not_scored(rec)
        raise SystemExit(1)
    if rec.data is not None:
        _echo_data_table(rec)
        return
    from zoo.statements import scope_sentence

    rows = [
        [c.rank, c.id, f"{c.score:.3f}", *(f"{c.components[k]:.2f}" for k in COMPONENTS),
         fmt_params(c.record.params), c.record.license_class, f"+{len(c.variants)}" if c.variants else ""]
        for c in rec.candidates
    ]
    click.echo()
    click.echo(table(["#", "id", "score", *(SHORT[k] for k in COMPONENTS), "params", "license", "tags"], rows))
    click.echo()
    for c in rec.candidates[:3]:
        click.echo(f"{c.rank}. {c.id}: {c.reason}")
    click.echo(f"\n{scope_sentence(rec, rec.seconds)} "
               "Components: sim = task vs model card, match = pretraining domain, quality = upstream "
               "accuracy prior, pop = popularity, size = size fit. `zoo explain ID \"task\"` for any model.")


def _store(rec, options: dict, db, report_dir, *, quiet: bool) -> None:
    """Every recommendation made at the terminal is a stored run (``zoo runs``); a locked or read-only
    database costs the history entry, not the answer."""
    from zoo.errors import ZooError
    from zoo.runs import save_run

    try:
        run_id = save_run(rec, options=options, db=db)
    except ZooError as e:
        click.echo(f"warning: this run was not stored ({e})", err=True)
    else:
        if not quiet:
            click.echo(f"Stored as run {run_id} (zoo runs show {run_id}; zoo report {run_id} --out DIR).", err=True)
    if report_dir:
        from zoo.report import write_report

        paths = write_report(rec, report_dir, options=options)
        if not quiet:
            click.echo(f"Report: {paths.html} (also {Path(paths.markdown).name}, {Path(paths.json).name})", err=True)


def _echo_not_scored(rec, shown: int = 12, names: int = 6) -> None:
    """Why candidates were not scored, grouped by reason when several share one (offline: every Hub model
    says the same thing with its own id), at most ``shown`` reasons and ``names`` ids per reason."""
    if not rec.not_scored:
        return
    from zoo.statements import group_reasons

    click.echo(f"\nNot scored ({len(rec.not_scored)}):")
    groups = group_reasons(rec.not_scored)
    for template, ids in groups[:shown]:
        if len(ids) == 1:
            click.echo(f"  {ids[0]}: {rec.not_scored[ids[0]]}")
            continue
        more = f" and {len(ids) - names} more" if len(ids) > names else ""
        click.echo(f"  {len(ids)} candidates ({', '.join(ids[:names])}{more}): {template}")
    rest = sum(len(ids) for _, ids in groups[shown:])
    if rest or any(len(ids) > names for _, ids in groups[:shown]):
        click.echo(f"  {f'… and {rest} more; ' if rest else ''}--json lists every one with its reason.")


def confidence_lines(rec) -> list[str]:
    """The ranking's confidence (zoo.confidence), the scorers left out of the fusion and why, in words."""
    from zoo.format import and_list

    out = []
    conf = rec.confidence
    if conf is not None:
        out.append(f"\nConfidence: {conf.sentence()}")
        out.append(f"  ({conf.rule}; {', '.join(conf.scorers) or 'no scorer'} recomputed on each half-sample of "
                   f"your rows, {conf.seconds:.1f} s)")
        if conf.tied:
            out.append(f"  The leaders are tied: the scores cannot tell {and_list([conf.top, *conf.tied])} apart "
                       "on this sample.")
        if conf.probe_note:
            out.append(f"  {conf.probe_note[0].upper()}{conf.probe_note[1:]}.")
    for s, why in ((rec.fusion or {}).get("not_fused") or {}).items():
        out.append(f"Not fused: {s} ({why}).")
    return out


def _echo_data_table(rec) -> None:
    from zoo.statements import order_note, scope_sentence

    names = rec.scores
    rows = [
        [c.rank, c.id, f"{c.score:.3f}", f"{c.components['description']:.2f}", f"{c.components['data']:.2f}",
         *(f"{c.data_scores[n]:.3g}" if n in c.data_scores else "n/i" if n in c.data_not_informative else "-"
           for n in names),
         f"{c.data_seconds:.1f}", "yes" if c.data_cached else "no", fmt_params(c.record.params),
         f"+{len(c.variants)}" if c.variants else ""]
        for c in rec.candidates
    ]
    click.echo()
    probe_cols = ["probe acc (95% CI)"] if rec.probe_top else []
    if rec.probe_top:
        for row, c in zip(rows, rec.candidates, strict=True):
            p = c.probe
            row.insert(3, f"{p.accuracy:.3f} ({p.accuracy_ci[0]:.3f}-{p.accuracy_ci[1]:.3f})" if p else "-")
    click.echo(table(["#", "id", "score", *probe_cols, "desc", "data", *names, "seconds", "cached", "params", "tags"],
                     rows))
    note = order_note(rec)
    if note:
        click.echo(note)
    click.echo()
    for c in rec.candidates[:3]:
        click.echo(f"{c.rank}. {c.id}: {c.reason}")
        if c.feature_layers:  # a transformer text encoder: what was scored, and what Candidate.load() gives
            from zoo.backbones.layers import describe

            click.echo(f"   features scored: {describe(c.feature_layers)} (zoo.backbones.layers), what its "
                       "Candidate.load() returns")
        for w in c.data_warnings:
            click.echo(f"   warning: {w}")
    for line in confidence_lines(rec):
        click.echo(line)
    if rec.probe_summary:
        ps = rec.probe_summary
        # tied_with_best lists the best first; the sentence names the others. One pick is named (the first
        # row); the smallest tied model is offered as the alternative when size matters, not as a second pick.
        others = [t for t in ps["tied_with_best"] if t != ps["best"]]
        click.echo(f"\nProbe of the top {rec.probe_top} ({ps['settings'].get('folds')} folds): the top {rec.probe_top} "
                   f"are re-ordered by probe accuracy. Best {ps['best']}; statistically tied with it (intervals "
                   f"overlap): {', '.join(others) or 'none'}.")
        if ps["practical_pick"] and ps["practical_pick"] != ps["best"]:
            click.echo(f"If size matters: {ps['practical_pick']} is {ps['practical_reason']}.")
        if ps.get("agreement_spearman") is not None:
            click.echo(f"Agreement of the fused score with the probe (Spearman): {ps['agreement_spearman']:.2f}.")
        else:
            n = sum(1 for c in rec.candidates if c.probe is not None)
            click.echo(f"Agreement of the fused score with the probe: not measured ({n} probed candidate"
                       f"{'s' if n != 1 else ''}; a rank correlation needs 3 or more, with accuracies that differ).")
    if rec.candidates[0].plan is not None:
        plan = rec.candidates[0].plan
        click.echo(f"\nTransfer plan for {plan.model_id}: {plan.summary()}.")
        click.echo(f"  why: {plan.why}")
        for r in plan.risks:
            if r.level != "low":
                click.echo(f"  risk: {r.kind} ({r.level}): {r.signal}")
        click.echo(f"  (zoo plan --data {rec.data['source']} --model {plan.model_id} for the details; "
                   "Candidate.load(num_classes=K, plan=True) applies it)")
    _echo_not_scored(rec)
    f = rec.fusion or {}
    what = f.get("note") or (f"mean z-score of {', '.join(f.get('fused_scores', []))} over the candidates, "
                             "min-max scaled")
    click.echo(f"\n{scope_sentence(rec, rec.seconds)} "
               f"score = {f.get('description', 0):.2f} x desc (task description and priors, min-max scaled) + "
               f"{f.get('data', 0):.2f} x data ({what})"
               + (f" + {f['size_prior']:.2f} x size (log parameter count, min-max scaled)" if f.get("size_prior") else "")
               + ". seconds = feature extraction (0 when cached) + scoring.")
    fetched = [c for c in rec.candidates if c.download_bytes]
    if fetched:
        from zoo.fetching import fmt_bytes

        click.echo(f"Fetched {len(fetched)} from the Hub first: " + "; ".join(
            f"{c.id} {fmt_bytes(c.download_bytes)} in {c.download_seconds:.1f} s" for c in fetched) + ".")


@click.command()
@click.argument("model_id")
@click.argument("task")
@constraint_options
@opt.json_option
def explain(model_id, task, as_json, **kw) -> None:
    """Why (not) this model for a task: its components next to the top pick's.

    \b
    Example:
      zoo explain timm:resnet50.a1_in1k "detect pneumonia in chest X-rays"
    """
    from zoo.recommender import explain as run

    cand, rec = run(model_id, task, **_api_kwargs(kw))
    best = rec.candidates[0] if rec.candidates else None
    if as_json:
        echo_json({"model": cand, "best": best, "understanding": rec.understanding,
                   "constraints": rec.constraints})
        return
    for line in _understanding_lines(rec):
        click.echo(line)
    rows = [[cand.id, f"{cand.score:.3f}", *(f"{cand.components[k]:.2f}" for k in COMPONENTS)]]
    if best is not None and best.id != cand.id:
        rows.insert(0, [best.id + " (top pick)", f"{best.score:.3f}", *(f"{best.components[k]:.2f}" for k in COMPONENTS)])
    click.echo()
    click.echo(table(["id", "score", *(SHORT[k] for k in COMPONENTS)], rows))
    click.echo()
    if cand.failed_constraint:
        click.echo(f"{cand.id} is excluded: {cand.failed_constraint}.")
    elif best is not None and best.id == cand.id:
        click.echo(f"{cand.id} is the top pick: {cand.reason}.")
    elif best is not None and cand.score >= best.score:  # ranked after its betters by kind (a video task's image models)
        click.echo(f"{cand.id} scores {cand.score - best.score:.3f} above the top pick yet ranks after it. It: "
                   f"{cand.reason}.")
    elif best is not None:
        gaps = sorted(COMPONENTS, key=lambda k: rec.weights[k] * (cand.components[k] - best.components[k]))
        worst = gaps[0]
        click.echo(f"{cand.id} scores {best.score - cand.score:.3f} below the top pick, mostly on {worst} "
                   f"({cand.components[worst]:.2f} vs {best.components[worst]:.2f}). It: {cand.reason}.")


def register(group: click.Group) -> None:
    group.add_command(recommend)
    group.add_command(explain)
