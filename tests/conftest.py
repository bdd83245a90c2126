from __future__ import annotations

import os

import pytest

# Never touch the network for weights, never write the user's real database.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _isolated_user_db(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_DB", str(tmp_path / "user.db"))
    yield
