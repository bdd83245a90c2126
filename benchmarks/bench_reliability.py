"""Reliability figures (RELIABILITY.md): the bigger versions of the suites in tests/test_reliability_*.py, with
the same generators, checks and fault injections (tests/reliability.py).

1. Inputs: hypothesis-generated manifests, sample-data files (CSV / TSV / JSONL / .npz / image folders) and
   Hub model-info documents, ``--examples`` of each, fresh random seeds: each loads (and is stored and read
   back, or described) or is refused with zoo's error; anything else is counted as a traceback.
2. Untrusted model files scored through the API and the CLI: a pickle whose ``__reduce__`` runs code (zip and
   raw), a folder with ``auto_map`` custom code, a ``modules.json`` naming an arbitrary class, a garbage ONNX,
   a stored relative weights path; each must be refused with its reason and write no marker file.
3. ``kill -9`` of `zoo index manifest` (``--models`` models over as many stored): ``--kills`` trials, a third in
   the middle of the COMMIT (the WAL at a random fraction of its full size), a third at a random moment of the
   run, a third just after the COMMIT (while zoo checkpoints and closes); the database must open, pass
   ``PRAGMA integrity_check`` and the full-text check, and hold all old or all new rows.
4. Every command that writes (index manifest, index local, recommend, probe) on a full disk (a filled tmpfs, as
   root), under a file-size limit (RLIMIT_FSIZE 0) and on a read-only database: a clear one-line error and
   nothing written for the index commands, the answer with a warning for recommend and probe.
5. Two indexers and four readers, each its own process, on one database for ``--seconds``: reader errors
   ("database is locked" or any), writer failures and the waits they announced.
6. A 50,000-entry manifest as YAML (libyaml's loader) and as JSON: seconds to read and check it, and seconds of
   `zoo index manifest` into a new database.

    python benchmarks/bench_reliability.py            # the figures of RELIABILITY.md (about 15 minutes)
    python benchmarks/bench_reliability.py --quick    # a smoke run: 50 examples, 4 kills, 5 s
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _inputs(examples: int, seed: int) -> dict:
    from huggingface_hub.utils import logging as hf_logging
    from reliability import check_hub, check_manifest, check_sample, hub_documents, manifest_files, sample_inputs

    from zoo.registry import Registry

    hf_logging.set_verbosity_error()  # its card parser logs a line about each malformed model-index it is fed
    work = Path(tempfile.mkdtemp(prefix="zoo-bench-rel-inputs-"))
    reg = Registry(db=work / "fuzz.db", catalog=work / "none.db", create=True)
    out = {}
    for name, strategy, check in (
        ("manifest loader", manifest_files(), lambda c, d: check_manifest(d, c[0], c[1], reg)),
        ("sample loader", sample_inputs(), lambda c, d: check_sample(d, c)),
        ("Hub JSON normaliser", hub_documents(), lambda c, d: check_hub(c[0], c[1], reg)),
    ):
        counts, escaped, seconds = _run_generated(strategy, check, examples, seed)
        out[name] = {"inputs": sum(counts.values()), "loaded": counts["loaded"], "refused": counts["refused"],
                     "tracebacks": counts["traceback"], "seconds": seconds,
                     "escaped": dict(escaped.most_common(5))}
    reg.close()
    return out


def _run_generated(strategy, check, examples: int, seed: int) -> tuple[Counter, Counter, float]:
    """``check`` on ``examples`` inputs drawn from ``strategy`` (no shrinking: every outcome is counted)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    counts: Counter = Counter()
    escaped: Counter = Counter()
    t0 = time.perf_counter()

    @hseed(seed)
    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(case):
        with tempfile.TemporaryDirectory() as d, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                counts[check(case, Path(d))] += 1
            except Exception as e:  # noqa: BLE001 - what the figures count as a traceback
                counts["traceback"] += 1
                escaped[f"{type(e).__name__}: {str(e)[:200]}"] += 1

    run()
    return counts, escaped, round(time.perf_counter() - t0, 1)


def _untrusted() -> dict:
    work = Path(tempfile.mkdtemp(prefix="zoo-bench-rel-untrusted-"))
    saved = {k: os.environ.get(k) for k in ("ZOO_DB", "ZOO_CACHE_DIR")}
    os.environ["ZOO_DB"] = str(work / "user.db")
    os.environ["ZOO_CACHE_DIR"] = str(work / "cache")  # an empty feature cache: every candidate is loaded
    try:
        return _untrusted_in(work)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _untrusted_in(work: Path) -> dict:
    from click.testing import CliRunner
    from reliability import UNTRUSTED_IMAGE, UNTRUSTED_TEXT, index_untrusted

    from zoo.cli import cli
    from zoo.scoring import score

    marker = work / "EXECUTED"
    index_untrusted(work / "files", marker, work / "user.db")
    traversal = work / "sub" / "t.yaml"
    traversal.parent.mkdir()
    traversal.write_text("models:\n  - id: local:passwd\n    weights: file:../../etc/passwd\n")

    from PIL import Image

    images, texts = work / "img", work / "t.csv"
    for c in ("a", "b"):
        (images / c).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (32, 32), (60 * i, 200 if c == "a" else 0, 0)).save(images / c / f"{i}.png")
    texts.write_text("text,label\n" + "".join(f"great fun {i},pos\ndull mess {i},neg\n" for i in range(4)))
    reasons, tracebacks = {}, 0
    for data, bad in ((images, UNTRUSTED_IMAGE), (texts, UNTRUSTED_TEXT)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rep = score(data, bad, scores=["knn"])
        reasons.update({m.id: (m.error or "NOT REFUSED")[:150] for m in rep.models})
        res = CliRunner().invoke(cli, ["score", "--data", str(data), "--models", ",".join(bad), "--scores", "knn"])
        tracebacks += "Traceback" in res.output or (res.exception is not None and not isinstance(res.exception, SystemExit))
    res = CliRunner().invoke(cli, ["index", "manifest", str(traversal)])
    reasons["weights: file:../../etc/passwd (manifest)"] = res.output.strip()[:150]
    tracebacks += "Traceback" in res.output
    refused = sum("NOT REFUSED" not in r for r in reasons.values())
    return {"files": len(reasons), "refused": refused, "executed": int(marker.exists()), "tracebacks": tracebacks,
            "reasons": reasons}


def _kills(trials: int, models: int, seed: int) -> dict:
    from reliability import kill_trials

    rep = kill_trials(Path(tempfile.mkdtemp(prefix="zoo-bench-rel-kill-")), trials, models, random.Random(seed))
    states = Counter(t["state"].split(" ")[0].rstrip(":") for t in rep.trials)
    return {"trials": len(rep.trials), "killed": rep.count("killed", True),
            "killed_in_commit": sum(t["killed"] and t["aim"] == "commit" for t in rep.trials),
            "killed_after_commit": sum(t["killed"] and t["aim"] == "after-commit" for t in rep.trials),
            "all_old": states["old"], "all_new": states["new"], "mixed": states["mixed"],
            "rows_lost": states["mixed"] + states["damaged"], "integrity_failures": states["damaged"],
            "index_seconds": round(rep.index_seconds, 2), "models": models, "detail": rep.trials}


def _write_faults() -> dict:
    import numpy as np
    from reliability import db_state, fill, filled_tmpfs_supported, read_only, run_commands, tmpfs, write_big_manifest
    from safetensors.numpy import save_file

    work = Path(tempfile.mkdtemp(prefix="zoo-bench-rel-disk-"))
    inputs = work / "inputs"
    inputs.mkdir()
    write_big_manifest(inputs / "old.json", 40, "old")
    write_big_manifest(inputs / "new.json", 40, "new")
    bert = inputs / "tiny-bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8, "vocab_size": 30}))
    save_file({"embeddings.word_embeddings.weight": np.zeros((30, 8), np.float32)}, str(bert / "model.safetensors"))
    y = np.arange(40) % 2
    np.savez(inputs / "s.npz", x=np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32) + y[:, None], y=y)
    commands = {"index manifest": ["index", "manifest", str(inputs / "new.json")],
                "index local": ["index", "local", str(bert), "--id", "tiny-bert"],
                "recommend": ["recommend", "classify photos of animals", "--top", "3"],
                "probe": ["probe", "--data", str(inputs / "s.npz"), "--models", "local:kill-000001", "--folds", "2"]}
    root = os.geteuid() == 0
    scenarios = {"full disk (filled tmpfs)": "tmpfs"} if filled_tmpfs_supported() else {}
    scenarios |= {"file-size limit (RLIMIT_FSIZE 0)": "fsize", "read-only database": "ro"}
    out = {}
    for name, kind in scenarios.items():
        folder = work / kind
        mount = tmpfs(folder, "16m") if (kind == "tmpfs" or (kind == "ro" and root)) else contextlib.nullcontext()
        folder.mkdir(exist_ok=True)
        with mount:
            db = folder / "user.db"
            run_commands(db, [["index", "manifest", str(inputs / "old.json")]])
            if kind == "tmpfs":
                fill(folder)
            with read_only(folder) if kind == "ro" else contextlib.nullcontext():
                results = run_commands(db, list(commands.values()), fsize=0 if kind == "fsize" else None)
            if kind == "tmpfs":
                (folder / "filler").unlink()
            state = db_state(db, 40)
        rows = {}
        for cmd, r in zip(commands, results, strict=True):
            tb = "Traceback" in r["output"] or r["exception"] is not None
            first = next((ln for ln in r["output"].splitlines() if ln.startswith(("Error:", "warning:", "Note: Not"))), "")
            rows[cmd] = {"exit": r["exit_code"], "traceback": tb, "said": first[:140]}
        out[name] = {"commands": rows, "database_after": state}
    return out


def _yaml_speed(n: int) -> dict:
    import yaml
    from reliability import write_big_manifest

    from zoo.sources.manifest import iter_records

    work = Path(tempfile.mkdtemp(prefix="zoo-bench-rel-yaml-"))
    j = write_big_manifest(work / "m.json", n, "old")
    y = work / "m.yaml"
    y.write_text(yaml.safe_dump(json.loads(j.read_text()), sort_keys=False))
    out = {"entries": n, "libyaml": bool(yaml.__with_libyaml__)}
    for name, path in (("yaml", y), ("json", j)):
        t0 = time.perf_counter()
        assert len(list(iter_records(path))) == n
        out[f"{name}_read_seconds"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "zoo", "index", "manifest", str(path)], check=True, capture_output=True,
                       env={**os.environ, "ZOO_DB": str(work / f"{name}.db")})
        out[f"{name}_index_seconds"] = round(time.perf_counter() - t0, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="50 examples, 4 kills, 5 s of concurrency, 5,000 entries")
    ap.add_argument("--examples", type=int, default=3000, help="generated inputs per loader")
    ap.add_argument("--kills", type=int, default=24)
    ap.add_argument("--models", type=int, default=20_000, help="models in the manifest the kills interrupt")
    ap.add_argument("--seconds", type=float, default=20.0, help="of two indexers and four readers")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stopped run still unmounts its tmpfs (finally)
    if args.quick:
        args.examples, args.kills, args.seconds, args.models = 50, 4, 5.0, 6000
    from reliability import concurrency

    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}, load average {os.getloadavg()[0]:.1f}; "
          f"{'root' if os.geteuid() == 0 else 'not root'}; {time.strftime('%Y-%m-%d %H:%M')}; seed {args.seed}")
    figures: dict = {"seed": args.seed, "date": time.strftime("%Y-%m-%d"), "machine": platform.node()}
    t0 = time.perf_counter()

    figures["inputs"] = _inputs(args.examples, args.seed)
    print("\n1. Generated inputs (hypothesis): loaded / refused with zoo's error / anything else")
    for name, f in figures["inputs"].items():
        print(f"   {name:20s} {f['inputs']:6,} inputs: {f['loaded']:6,} loaded, {f['refused']:6,} refused, "
              f"{f['tracebacks']} tracebacks ({f['seconds']} s)" + (f"  {f['escaped']}" if f["escaped"] else ""))

    figures["untrusted"] = u = _untrusted()
    print(f"\n2. Untrusted model files: {u['refused']} of {u['files']} refused with a reason, {u['executed']} "
          f"executed (marker file), {u['tracebacks']} tracebacks")
    for mid, why in u["reasons"].items():
        print(f"   {mid}: {why}")

    figures["kill"] = k = _kills(args.kills, args.models, args.seed)
    print(f"\n3. kill -9 of `zoo index manifest` ({k['models']:,} models over {k['models']:,} stored; an uninterrupted "
          f"run {k['index_seconds']} s): {k['trials']} trials, {k['killed']} killed ({k['killed_in_commit']} in the "
          f"middle of the COMMIT, {k['killed_after_commit']} once the WAL was full-size, the rest at random moments); "
          f"afterwards all old {k['all_old']}, all new {k['all_new']}, mixed {k['mixed']}, integrity failures "
          f"{k['integrity_failures']}, rows lost {k['rows_lost']}")

    figures["write_faults"] = w = _write_faults()
    print("\n4. Commands that write, on a broken disk (exit code, first line said)")
    for scenario, f in w.items():
        print(f"   {scenario}: database afterwards: {f['database_after']} (integrity ok)")
        for cmd, r in f["commands"].items():
            print(f"     {cmd:15s} exit {r['exit']}  traceback {int(r['traceback'])}  {r['said']}")

    work = Path(tempfile.mkdtemp(prefix="zoo-bench-rel-conc-"))
    figures["concurrency"] = c = concurrency(work, args.seconds)
    rd, wr = c["readers"], c["writers"]
    print(f"\n5. Two indexers and four readers for {args.seconds:g} s: readers {sum(r['ops'] for r in rd):,} rounds "
          f"(search, show, count, sorted search), {sum(sum(r['errors'].values()) for r in rd)} errors; writers "
          f"{sum(x['runs'] for x in wr)} index runs, {sum(sum(x['errors'].values()) for x in wr)} failures, "
          f"{sum(x['waits'] for x in wr)} waits announced; integrity {c['integrity']}")

    figures["yaml"] = y = _yaml_speed(5000 if args.quick else 50_000)
    print(f"\n6. A {y['entries']:,}-entry manifest, read and checked / `zoo index manifest` into a new database: "
          f"YAML {y['yaml_read_seconds']} s / {y['yaml_index_seconds']} s (libyaml: {y['libyaml']}), JSON "
          f"{y['json_read_seconds']} s / {y['json_index_seconds']} s")
    print(f"\n{time.perf_counter() - t0:.0f} s in all.")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1, default=str))


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        sys.exit(1)
