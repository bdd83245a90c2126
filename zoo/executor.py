"""Where a command's candidates are measured: here, one after another (``local``, the default), or as one
Ray task each on a cluster (``ray``: ``--executor ray``, ``executor="ray"`` or ``ZOO_EXECUTOR=ray``; Ray is
the optional extra ``pip install 'zoo[ray]'``).

With Ray, the driver (the process that runs the zoo command) joins the cluster at ``RAY_ADDRESS``, or the
cluster ``ray start`` left on this machine, or starts a local one. The sample goes into the object store
once (``ray.put``); each task fetches its model's weights into its node's cache (under a fetch policy built
from the command's: on or off, the byte budget, pickles allowed), extracts, scores or probes, and returns
everything to the driver: features, scores, probe results, what it fetched. Only the driver writes: the user
database, the stored run and its own feature cache (so a rerun without Ray is warm). Tasks ask for
``num_gpus`` when the cluster has GPUs (a share of one for small models, :func:`gpu_share`), one CPU
otherwise.

Faults: a task that raises (a bad checkpoint, an out-of-memory error in Python) returns its reason, which the
command reports like a local failure, and the others go on; it is not retried, since it would fail again.
A worker process that dies (killed, out of memory by Ray's monitor, its node lost) is retried up to
:data:`MAX_RETRIES` times and then reported. Ctrl-C cancels the outstanding tasks; the command then stores
nothing.

Everything Ray-specific is imported inside functions: ``zoo --help`` and registry queries never import ray.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from zoo.errors import UsageError

EXECUTORS = ("local", "ray")
RAY_EXTRA = "pip install 'zoo[ray]'"
# A worker that dies is retried this many times (Ray's system-failure retries); an exception is not retried.
MAX_RETRIES = 2
# How often the driver looks at which tasks have started while it waits for one to finish (seconds).
_POLL_S = 0.5
# Environment the tasks take from the driver: zoo's settings and the Hub's (offline mode, endpoint, token).
_ENV_PREFIXES = ("ZOO_", "HF_", "HUGGINGFACE_", "TRANSFORMERS_")
_ENV_NAMES = ("XDG_CACHE_HOME", "TORCH_HOME")
# Not these: a task's threads follow its num_cpus (Ray sets OMP_NUM_THREADS), not the driver's machine.
_ENV_KEEP_WORKER = ("ZOO_NUM_THREADS", "ZOO_EXECUTOR")


def resolve_executor(executor: str | None = None) -> str:
    """``executor``, else ``ZOO_EXECUTOR``, else ``"local"``; ``"ray"`` only when Ray is installed."""
    value = (executor if executor is not None else os.environ.get("ZOO_EXECUTOR", "")).strip().lower() or "local"
    if value not in EXECUTORS:
        raise UsageError(f"Unknown executor {value!r}: use local or ray (--executor, or ZOO_EXECUTOR).")
    if value == "ray":
        require_ray()
    return value


def require_ray() -> Any:
    """The ``ray`` module, or a :class:`UsageError` naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise UsageError(f"--executor ray needs Ray, an optional extra: {RAY_EXTRA}. Or run the candidates here, "
                         "one after another: drop --executor ray (and unset ZOO_EXECUTOR).") from None
    return ray


def gpu_share(params: int | None) -> float:
    """The share of one GPU a task asks for, from the model's parameter count: small models share a GPU
    (their extraction and probe use a few GB at most), large or unknown ones get a whole one. Not measured
    per model: a planning rule (up to 25M parameters a quarter, up to 150M a half)."""
    if not params:
        return 1.0
    if params <= 25_000_000:
        return 0.25
    if params <= 150_000_000:
        return 0.5
    return 1.0


@dataclass
class Outcome:
    """What one candidate's task gave back: ``value`` (what the work returned) or ``error`` (why it failed),
    the ``node`` it ran on, its ``seconds`` inside the task and how many ``attempts`` it took."""

    id: str
    value: Any = None
    error: str | None = None
    node: str = ""
    seconds: float = 0.0
    attempts: int = 1


@dataclass
class _Job:
    """The driver's settings a task runs under."""

    driver_node: str
    env: dict[str, str]
    fetch: bool
    max_bytes: int | None
    allow_pickle: bool


@dataclass
class _Shipped:
    """The sample as it travels in the object store: the sample itself, and for an image folder going to other
    nodes, its files' bytes (``files``: path relative to the folder -> bytes)."""

    sample: Any
    files: dict[str, bytes] | None = None
    ship_key: str = ""
    root: str = ""  # the image folder on the driver's machine, absolute


@dataclass
class RunStats:
    """Timings of the last :func:`run_candidates` call (benchmarks/bench_ray.py reads them)."""

    connect_seconds: float = 0.0
    put_seconds: float = 0.0
    wall_seconds: float = 0.0
    task_seconds: dict[str, float] = field(default_factory=dict)  # inside each task
    done_at: dict[str, float] = field(default_factory=dict)  # seconds after submission, as the driver saw them


LAST_RUN = RunStats()


def connect() -> Any:
    """Join the Ray cluster (``RAY_ADDRESS``, or one ``ray start`` left on this machine) or start a local one;
    once per process. Returns the ``ray`` module."""
    ray = require_ray()
    if not ray.is_initialized():
        import logging

        quiet = not _debugging()
        ray.init(address=os.environ.get("RAY_ADDRESS") or None, include_dashboard=False,
                 log_to_driver=not quiet, logging_level=logging.ERROR if quiet else logging.INFO)
    return ray


def _debugging() -> bool:
    return os.environ.get("ZOO_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def _node_label(ray: Any) -> str:
    ip = ray.util.get_node_ip_address()
    return f"{ip} ({ray.get_runtime_context().get_node_id()[:8]})"


def _resources(ray: Any, record: Any, device: str) -> dict[str, Any]:
    gpus = float(ray.cluster_resources().get("GPU", 0))
    if device == "cuda" and not gpus:
        raise UsageError("--device cuda, but the Ray cluster has no GPUs: use --device auto or cpu, or join a "
                         "cluster with GPUs (RAY_ADDRESS).")
    if gpus and device != "cpu":
        return {"num_cpus": 1, "num_gpus": min(gpu_share(record.params), gpus)}
    return {"num_cpus": 1}


def _shared_env(name: str) -> bool:
    return (name.startswith(_ENV_PREFIXES) or name in _ENV_NAMES) and name not in _ENV_KEEP_WORKER


def _driver_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if _shared_env(k)}


def _off_node(env: dict[str, str]) -> dict[str, str]:
    """The driver's settings for a task on another node: paths on the driver's machine mean nothing there."""
    return {k: v for k, v in env.items() if not k.endswith(("_DIR", "_HOME", "_CACHE", "_PATH", "_DB"))}


def _ship(sample: Any, files: bool) -> _Shipped:
    """The sample for the object store; with ``files``, an image folder's bytes too (other nodes cannot read
    the driver's disk). Paths are made absolute: a worker's current folder is not the driver's."""
    import copy
    import hashlib

    if sample.modality != "image":
        return _Shipped(sample)
    root = os.path.abspath(sample.source)
    if not files:
        here = copy.copy(sample)
        here.source, here.items = root, [os.path.abspath(str(p)) for p in sample.items]
        return _Shipped(here, root=root)
    rel = [os.path.relpath(str(p), root) for p in sample.items]
    blobs = {}
    for path, r in zip(sample.items, rel, strict=True):
        with open(path, "rb") as f:
            blobs[r] = f.read()
    light = copy.copy(sample)
    light.items = rel
    names = hashlib.sha256("\0".join(rel).encode()).hexdigest()[:12]  # same content under other names: another folder
    return _Shipped(light, blobs, f"{sample.content_hash}-{names}", root)


def _materialize(shipped: _Shipped, same_node: bool) -> Any:
    """The sample in a task: as it is on the driver's node; elsewhere its files written once per node into a
    temporary folder (same relative paths, so the feature cache key is the driver's)."""
    import copy
    import shutil
    import tempfile
    from pathlib import Path

    sample = shipped.sample
    if shipped.files is None:
        return sample
    out = copy.copy(sample)
    if same_node and os.path.isdir(shipped.root):
        out.source, out.items = shipped.root, [os.path.join(shipped.root, r) for r in sample.items]
        return out
    folder = Path(tempfile.gettempdir()) / "zoo-ray-samples" / shipped.ship_key
    if not (folder / ".complete").exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{shipped.ship_key}.", dir=folder.parent))
        for rel, blob in shipped.files.items():
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(blob)
        (tmp / ".complete").touch()
        try:
            os.replace(tmp, folder)
        except OSError:  # another task on this node got there first: its copy is the same
            shutil.rmtree(tmp, ignore_errors=True)
    out.source = str(folder)
    out.items = [str(folder / r) for r in sample.items]
    return out


class _EnvFrom:
    """The driver's zoo and Hub settings inside a task (restored after: the worker process is reused)."""

    def __init__(self, env: dict[str, str], same_node: bool) -> None:
        self.env, self.same_node, self.saved = env, same_node, {}
        self.hub_offline: bool | None = None

    def __enter__(self) -> None:
        names = set(self.env)
        if self.same_node:  # what the driver unset (HF_HUB_OFFLINE in a test) is unset here too
            names |= {k for k in os.environ if _shared_env(k)}
        self.saved = {k: os.environ.get(k) for k in names}
        for k in names:
            if k in self.env:
                os.environ[k] = self.env[k]
            else:
                os.environ.pop(k, None)
        # huggingface_hub reads HF_HUB_OFFLINE once, at import: a reused worker would keep the mode it started
        # with (zoo passes the endpoint and the cache folder explicitly, so this is the one constant to follow).
        constants = sys.modules.get("huggingface_hub.constants")
        if constants is not None:
            self.hub_offline = constants.HF_HUB_OFFLINE
            constants.HF_HUB_OFFLINE = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")

    def __exit__(self, *exc: Any) -> None:
        if self.hub_offline is not None:
            sys.modules["huggingface_hub.constants"].HF_HUB_OFFLINE = self.hub_offline
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _task(work: Callable[[Any, Any, Any], Any], record: Any, shipped: _Shipped, job: _Job, board: Any) -> Outcome:
    """One candidate in a Ray worker: the driver's settings, a fetch policy like the command's, then ``work``."""
    import ray

    from zoo.fetching import FetchPolicy, using

    t0 = time.perf_counter()
    node = _node_label(ray)
    same_node = ray.get_runtime_context().get_node_id() == job.driver_node
    # Not waited for: a task blocked in ray.get hands its CPU back to Ray, which would start one task too many.
    board.started.remote(record.id, node)
    sample = _materialize(shipped, same_node)
    with _EnvFrom(job.env if same_node else _off_node(job.env), same_node):
        policy = FetchPolicy(enabled=job.fetch, max_bytes=job.max_bytes, allow_pickle=job.allow_pickle)
        with using(policy):
            try:
                value = work(record, sample, policy)
            except Exception as e:  # noqa: BLE001 - the work reports its own failures; this is the last resort
                from zoo.scoring import failure_reason

                return Outcome(record.id, error=failure_reason(record, e), node=node,
                               seconds=time.perf_counter() - t0)
    return Outcome(record.id, value=value, node=node, seconds=time.perf_counter() - t0)


_REMOTE: dict[str, Any] = {}


def _remote_parts(ray: Any) -> tuple[Any, Any]:
    """The remote task and the status board's actor class (made once per process)."""
    if not _REMOTE:
        @ray.remote(num_cpus=0)
        class Board:
            """Which candidates have started, and where: tasks tell it, the driver reads it while waiting."""

            def __init__(self) -> None:
                self.lines: list[tuple[str, str]] = []

            def started(self, rid: str, node: str) -> None:
                self.lines.append((rid, node))

            def drain(self) -> list[tuple[str, str]]:
                out, self.lines = self.lines, []
                return out

        _REMOTE["task"] = ray.remote(_task)
        _REMOTE["board"] = Board
    return _REMOTE["task"], _REMOTE["board"]


def _ship_files(ray: Any) -> bool:
    """Image files travel in the object store only when the cluster has other nodes (``ZOO_RAY_SHIP_FILES``=1
    or 0 overrides): on one machine every task reads the driver's folder."""
    env = os.environ.get("ZOO_RAY_SHIP_FILES", "").strip()
    if env in ("0", "1"):
        return env == "1"
    return sum(1 for n in ray.nodes() if n.get("Alive")) > 1


def keep_returned(policy: Any, record: Any, sample: Any, feats: Any, got: Any) -> None:
    """What a task returned, kept by the driver (the one writer): its features into this machine's cache (so a
    rerun without Ray reads them) and its fetch into the command's policy (the spent budget and commits)."""
    from zoo.features import store

    if got is not None:
        policy.results[got.id] = got
        policy.spent += got.bytes
    if feats is not None:
        store(record, sample, feats)


def _budgets(records: Sequence[Any], policy: Any) -> list[int | None]:
    """Each task's download budget: what is left of the command's after the planned downloads of the other
    candidates are set aside (a model absent from its node but planned as here may use what is not set aside)."""
    left = policy.left
    if left is None:
        return [None] * len(records)
    planned = [policy.plans[r.id].download_bytes if r.id in policy.plans else 0 for r in records]
    total = sum(planned)
    return [max(0, left - (total - p)) for p in planned]


def run_candidates(records: Sequence[Any], sample: Any, work: Callable[[Any, Any, Any], Any], *, label: str,
                   device: str, policy: Any, show: bool, say: Callable[[str], None] | None = None) -> dict[str, Outcome]:
    """Run ``work(record, sample, policy)`` for every record, one Ray task each; returns an :class:`Outcome` per
    record id. ``show``: a progress bar over the candidates and a status line per candidate on stderr (or to
    ``say``). Ctrl-C (KeyboardInterrupt) cancels the tasks not finished and is raised again."""
    from tqdm import tqdm

    global LAST_RUN
    stats = RunStats()
    LAST_RUN = stats
    if not records:
        return {}
    t0 = time.perf_counter()
    ray = connect()
    stats.connect_seconds = time.perf_counter() - t0
    task, board_cls = _remote_parts(ray)
    bar = tqdm(total=len(records), desc=label, unit="model", file=sys.stderr, disable=not show, leave=False)

    def tell(line: str) -> None:
        if say is not None:
            with tqdm.external_write_mode(file=sys.stderr):  # the line above the bar, not through it
                say(line)
        elif show:
            bar.write(line, file=sys.stderr)

    driver_node = ray.get_runtime_context().get_node_id()
    t = time.perf_counter()
    sample_ref = ray.put(_ship(sample, _ship_files(ray)))
    stats.put_seconds = time.perf_counter() - t
    board = board_cls.remote()
    env = _driver_env()
    refs: dict[Any, Any] = {}
    out: dict[str, Outcome] = {}
    t_submit = time.perf_counter()
    try:
        for rec, budget in zip(records, _budgets(records, policy), strict=True):
            job = _Job(driver_node, env, bool(policy.active), budget, bool(policy.allow_pickle))
            ref = task.options(max_retries=MAX_RETRIES, retry_exceptions=False, name=f"zoo {label} {rec.id}",
                               **_resources(ray, rec, device)).remote(work, rec, sample_ref, job, board)
            refs[ref] = rec
            tell(f"{rec.id}: queued")
        starts: dict[str, int] = {}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=_POLL_S)
            for rid, node in ray.get(board.drain.remote()):
                starts[rid] = starts.get(rid, 0) + 1
                again = starts[rid] - 1
                tell(f"{rid}: running on node {node}" + (f" (attempt {again + 1}: the worker of the last one died)"
                                                          if again else ""))
            for ref in done:
                rec = refs[ref]
                try:
                    res = ray.get(ref)
                except ray.exceptions.RayError as e:  # the worker died more than MAX_RETRIES times, or was cancelled
                    res = Outcome(rec.id, error=_system_failure(rec, e))
                res.attempts = max(1, starts.get(rec.id, 1))
                out[rec.id] = res
                stats.task_seconds[rec.id] = res.seconds
                stats.done_at[rec.id] = time.perf_counter() - t_submit
                tell(f"{rec.id}: failed: {res.error}" if res.error else
                     f"{rec.id}: done on node {res.node} in {res.seconds:.1f} s")
                bar.update(1)
    except KeyboardInterrupt:
        left = [ref for ref, rec in refs.items() if rec.id not in out]
        for ref in left:
            with contextlib.suppress(Exception):  # a task that has just finished cannot be cancelled: nothing to do
                ray.cancel(ref, force=True)
        tell(f"Interrupted: cancelled {len(left)} outstanding task(s); nothing is stored.")
        raise
    finally:
        bar.close()
        with contextlib.suppress(Exception):  # the board is a convenience; a dead one changes no result
            ray.kill(board)
    stats.wall_seconds = time.perf_counter() - t0
    return out


def _system_failure(record: Any, e: BaseException) -> str:
    """A task that Ray could not finish, in words: the worker died (after the retries), or ran out of memory."""
    name = type(e).__name__
    if "OutOfMemory" in name:
        why = "ran out of memory on its node"
    elif "Cancelled" in name:
        why = "was cancelled"
    elif "WorkerCrashed" in name or "ActorDied" in name or "NodeDied" in name:
        why = f"lost its worker process {MAX_RETRIES + 1} times"
    else:
        why = f"failed in Ray ({name}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''})"
    return (f"{record.id}: its Ray task {why}; rerun with fewer candidates per node or more memory, or without "
            "--executor ray.")
