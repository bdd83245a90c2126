from __future__ import annotations

import os
import tempfile

import pytest

# Never touch the network for weights, never write the user's real database.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Exports, hash memos and caches of a test run stay out of the user's ~/.cache/zoo.
os.environ["ZOO_CACHE_DIR"] = tempfile.mkdtemp(prefix="zoo-test-cache-")


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory):
    """A cache dir holding the default model's ONNX export, made once per test session."""
    from zoo.embed import warm_export

    cache = tmp_path_factory.mktemp("zoo-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOO_CACHE_DIR", str(cache))
        mp.delenv("ZOO_EMBED_MODEL", raising=False)
        path = warm_export()
    assert path is not None and path.is_file()
    return cache


@pytest.fixture
def use_cache(onnx_cache, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(onnx_cache))
    monkeypatch.delenv("ZOO_EMBED_MODEL", raising=False)
    return onnx_cache


@pytest.fixture(autouse=True)
def _isolated_user_db(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_DB", str(tmp_path / "user.db"))
    yield
