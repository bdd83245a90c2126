from __future__ import annotations

import sqlite3
import threading

import pytest
from helpers import SAMPLE, make_catalog, rec

from zoo.errors import (
    DatabaseError,
    DatabaseLocked,
    IdCollision,
    SchemaTooNew,
    UnknownModel,
    UsageError,
    ZooWarning,
)
from zoo.registry import Registry
from zoo.sources import Failed, Unchanged


@pytest.fixture
def reg(tmp_path):
    cat = make_catalog(tmp_path / "catalog.db")
    r = Registry(db=tmp_path / "user.db", catalog=cat)
    yield r
    r.close()


def test_search_filters_and_sort(reg):
    res = reg.search(modality="image", license_classes=["permissive"], max_params=30_000_000, sort="top1")
    assert [r.id for r in res.records] == ["timm:resnet50.a1_in1k", "timm:vit_small.augreg", "timm:resnet50.tv_in1k"]
    assert res.total == 3
    res = reg.search(domains=["medical-radiology"])
    assert [r.id for r in res.records] == ["hf:microsoft/rad-dino"]
    # unknown params never pass a size constraint
    res = reg.search(modality="text", max_params=10**12)
    assert "hf:unknown/license-model" not in [r.id for r in res.records]
    assert [r.id for r in reg.search(license_classes=["unknown"]).records] == ["hf:unknown/license-model"]


def test_full_text_search_prefix_and_card_text(reg):
    assert [r.id for r in reg.search("x-ray").records] == ["hf:microsoft/rad-dino"]
    ids = [r.id for r in reg.search("resnet").records]
    assert set(ids) == {"timm:resnet50.a1_in1k", "timm:resnet50.tv_in1k"}
    assert [r.id for r in reg.search("contracts", modality="text").records] == ["hf:nlpaueb/legal-bert-base-uncased"]
    # FTS syntax in user input is treated as words, not operators
    assert reg.search('resnet" OR "bert').records == []


def test_bad_filter_values_suggest(reg):
    with pytest.raises(UsageError, match="medical-radiology"):
        reg.search(domains=["medical-radiolgy"])
    with pytest.raises(UsageError, match="sort"):
        reg.search(sort="colour")


def test_unknown_id_suggests_close_matches(reg):
    with pytest.raises(UnknownModel) as e:
        reg.get("timm:resnet50.a1_in1")
    assert "timm:resnet50.a1_in1k" in str(e.value)
    assert reg.get("hf:microsoft/rad-dino").params == 86_600_000


def test_index_is_idempotent_and_counts(reg):
    items = [rec("local:a", params=1), rec("local:b", params=2)]
    s = reg.index("local", items)
    assert (s.added, s.updated, s.unchanged) == (2, 0, 0)
    s = reg.index("local", [rec("local:a", params=1), rec("local:b", params=3), Unchanged("local:c"),
                            Failed("local:d", "404")])
    assert (s.added, s.updated, s.unchanged, s.failed) == (0, 1, 2, 1)
    assert reg.get("local:b").params == 3
    runs = reg.conn.execute("SELECT count(*) FROM main.index_runs").fetchone()[0]
    assert runs == 2


def test_user_db_shadows_catalog_without_touching_it(reg, tmp_path):
    before = (tmp_path / "catalog.db").read_bytes()
    reg.index("manifest", [rec("timm:resnet50.a1_in1k", params=1, license="mit")])
    assert reg.get("timm:resnet50.a1_in1k").params == 1
    ids = [r.id for r in reg.search("resnet").records]
    assert ids.count("timm:resnet50.a1_in1k") == 1
    assert reg.stats().total == len(SAMPLE)
    assert (tmp_path / "catalog.db").read_bytes() == before


def test_local_ids_may_not_collide_with_catalog(reg):
    with pytest.raises(IdCollision, match="--id"):
        reg.index("local", [rec("timm:resnet50.a1_in1k")], allow_shadow=False)


def test_interrupted_run_leaves_previous_state(reg):
    reg.index("local", [rec("local:keep", params=1)])

    def items():
        yield rec("local:new", params=5)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reg.index("local", items())
    assert not reg.exists("local:new") and reg.exists("local:keep")

    class Boom(Exception):
        pass

    with pytest.raises(Boom), reg.transaction() as conn:
        reg.write_records([rec("local:half", params=1)], conn=conn)
        raise Boom
    assert not reg.exists("local:half")


def test_reading_does_not_create_user_db(tmp_path):
    cat = make_catalog(tmp_path / "c.db")
    r = Registry(db=tmp_path / "nested" / "user.db", catalog=cat)
    assert r.search("resnet").total == 2
    assert not (tmp_path / "nested" / "user.db").exists()
    r.index("local", [rec("local:x")])
    assert (tmp_path / "nested" / "user.db").exists()


def test_locked_database_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr("zoo.registry.BUSY_TIMEOUT_MS", 200)
    monkeypatch.setenv("ZOO_LOCK_TIMEOUT", "0.3")
    path = tmp_path / "user.db"
    Registry(db=path, catalog=tmp_path / "none.db", create=True).conn  # noqa: B018
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        r = Registry(db=path, catalog=tmp_path / "none.db")
        with pytest.warns(ZooWarning, match="Waiting up to 0.3 s for the write lock"), \
                pytest.raises(DatabaseLocked, match="locked") as e:
            r.index("local", [rec("local:x")])
        assert "another zoo process" not in str(e.value) and "ZOO_LOCK_TIMEOUT" in str(e.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_reader_not_blocked_by_writer(tmp_path):
    path = tmp_path / "user.db"
    Registry(db=path, catalog=tmp_path / "none.db", create=True).index("local", [rec("local:a")])
    started, release = threading.Event(), threading.Event()

    def slow_items():
        yield rec("local:b")
        started.set()
        release.wait(5)

    def writer():
        w = Registry(db=path, catalog=tmp_path / "none.db")
        with w.transaction() as conn:
            w.write_records(slow_items(), conn=conn)

    t = threading.Thread(target=writer)
    t.start()
    started.wait(5)
    r = Registry(db=path, catalog=tmp_path / "none.db")
    assert [x.id for x in r.search().records] == ["local:a"]  # WAL: the reader sees the last commit at once
    release.set()
    t.join()


def test_corrupt_database(tmp_path):
    bad = tmp_path / "user.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DatabaseError, match="corrupt"):
        Registry(db=bad, catalog=tmp_path / "none.db").search()


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "user.db"
    Registry(db=path, catalog=tmp_path / "none.db", create=True).conn  # noqa: B018
    c = sqlite3.connect(path)
    c.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('zoo', 'm999_future', 'x')")
    c.commit()
    c.close()
    with pytest.raises(SchemaTooNew, match="newer zoo"):
        Registry(db=path, catalog=tmp_path / "none.db").search()


def test_full_text_index_follows_updates_and_removals(reg):
    reg.index("local", [rec("local:enc", description="an encoder for sonar pings")])
    assert [r.id for r in reg.search("sonar").records] == ["local:enc"]
    reg.index("local", [rec("local:enc", description="an encoder for radar echoes")])
    assert reg.search("sonar").records == []
    assert [r.id for r in reg.search("radar").records] == ["local:enc"]
    assert reg.remove("local:enc")
    assert reg.search("radar").records == []
    n_fts = reg.conn.execute("SELECT count(*) FROM main.models_fts").fetchone()[0]
    n = reg.conn.execute("SELECT count(*) FROM main.models").fetchone()[0]
    assert n_fts == n
    reg.conn.execute("INSERT INTO main.models_fts(models_fts) VALUES ('integrity-check')")


def test_duplicate_ids_in_one_run_last_wins(reg):
    s = reg.index("local", [rec("local:dup", params=1), rec("local:dup", params=2)])
    assert s.added == 1 and reg.get("local:dup").params == 2
    assert [r.id for r in reg.search("dup").records] == ["local:dup"]
