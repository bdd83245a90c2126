from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Never touch the network for weights, never write the user's real database.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Exports, hash memos and caches of a test run stay out of the user's ~/.cache/zoo.
os.environ["ZOO_CACHE_DIR"] = tempfile.mkdtemp(prefix="zoo-test-cache-")


EXPORT_MESSAGES: list[str] = []  # what the session's one-time export said (tests/test_truth.py reads them)


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory):
    """A cache dir holding the default model's ONNX export, made once per test session."""
    import contextlib
    import io
    import sys

    from zoo.embed import warm_export

    cache = tmp_path_factory.mktemp("zoo-cache")
    said = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stderr(said):
        mp.setenv("ZOO_CACHE_DIR", str(cache))
        mp.delenv("ZOO_EMBED_MODEL", raising=False)
        path = warm_export()
    sys.stderr.write(said.getvalue())
    EXPORT_MESSAGES.extend(line for line in said.getvalue().splitlines() if line.startswith("zoo: "))
    assert path is not None and path.is_file()
    return cache


@pytest.fixture
def use_cache(onnx_cache, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(onnx_cache))
    monkeypatch.delenv("ZOO_EMBED_MODEL", raising=False)
    return onnx_cache


@pytest.fixture
def fresh_state(use_cache):
    """The session's cache (its ONNX export of the query encoder) and no warm recommender state before or
    after the test: each test sees its own user database (zoo.recommender keeps one warm state per process)."""
    from zoo.recommender import _STATE

    _STATE.clear()
    yield use_cache
    _STATE.clear()


@pytest.fixture
def fresh_cache(fresh_state):
    """``fresh_state`` with no feature entries: the ONNX export is shared by the session, features are not."""
    from zoo.features import clear_cache

    clear_cache()
    return fresh_state


@pytest.fixture
def digits_per_class() -> int:
    """Images per class in ``digits_folder``; a test module overrides this fixture to change it."""
    return 12


@pytest.fixture
def digits_folder(tmp_path, digits_per_class) -> Path:
    """Digits 0, 1 and 7 as 32x32 PNGs in class folders (32 px: the CIFAR models' input size)."""
    # Imported here, not at the top: the environment above must be set before zoo is imported.
    from helpers import write_digits

    return write_digits(tmp_path / "digits", digits_per_class, classes=(0, 1, 7), size=32)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny batches: one thread avoids OpenMP stalls on a shared, oversubscribed 2-core machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _isolated_user_db(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_DB", str(tmp_path / "user.db"))
    yield


@pytest.fixture(scope="session")
def real_repos() -> dict[str, Path]:
    """Repo id -> folder of the Hub-layout repos built from the offline weights (tests/hub_repos.py; once per machine)."""
    from hub_repos import AssetMissing, build_repos

    try:
        return build_repos()
    except AssetMissing as e:
        pytest.fail(f"{e} (scripts/install_assets.sh installs the asset packages)")


@pytest.fixture
def hf_cache(monkeypatch, tmp_path) -> Path:
    """Online for this test only (HF_HUB_OFFLINE undone), with an empty Hugging Face cache in tmp_path."""
    from hub_repos import go_online

    return go_online(monkeypatch, tmp_path / "hf")


@pytest.fixture
def hub(hf_cache, real_repos):
    """A HubServer on 127.0.0.1 serving the real repos; HF_ENDPOINT points zoo at it."""
    from hub_repos import add_real_repos
    from hubserver import HubServer

    with HubServer() as server, pytest.MonkeyPatch.context() as mp:
        add_real_repos(server, real_repos)
        mp.setenv("HF_ENDPOINT", server.url)
        yield server
