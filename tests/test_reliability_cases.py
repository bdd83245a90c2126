"""Issue #19's hostile cases, replayed one numbered item of "Where it stands" at a time: each test failed on
the behaviour the issue describes and passes now. Item 1 (one candidate's failure sinking a run) is
test_scoring's library-error test and test_reliability_untrusted; item 3 (failed writes) is
test_reliability_faults' full-disk, file-size-limit and read-only tests."""

from __future__ import annotations

import json
import sqlite3
import time
import warnings

import pytest
import yaml
from click.testing import CliRunner
from reliability import _bomb_png, write_big_manifest

import zoo
from zoo.cli import cli
from zoo.config import user_db_path
from zoo.errors import ManifestError, ZooWarning

GOOD = "local:cifar_resnet20.c10"


def invoke(*args: str):
    res = CliRunner().invoke(cli, list(args))
    assert "Traceback" not in res.output and "This is a bug" not in res.output, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res


# -- item 2: a NaN in a manifest's results --------------------------------------------------------------------


@pytest.mark.parametrize("field,value", [("results", "{imagenet_top1: .nan}"), ("results", "{cifar10_acc: .inf}"),
                                         ("crop_pct", ".nan"), ("mean", "[0.5, .nan, 0.5]"),
                                         ("cpu_latency_ms", "-.inf"), ("extra", "{score: .nan}"),
                                         ("input_size", "[3, 100000000000000000000000, 224]"),
                                         ("results", "{top1: 100000000000000000000000}")])
def test_item2_nan_or_infinity_is_refused_naming_entry_and_field(tmp_path, field, value):
    m = tmp_path / "m.yaml"
    m.write_text(f"models:\n  - id: local:nan\n    {field}: {value}\n")
    with pytest.raises(ManifestError, match=rf"entry 'local:nan', field '{field}'.*(finite|64 bits)"):
        zoo.index("manifest", path=str(m))
    j = tmp_path / "m.json"
    j.write_text('{"models": [{"id": "local:nan", "results": {"top1": NaN}}]}')
    with pytest.raises(ManifestError, match="entry 'local:nan', field 'results'.*finite"):
        zoo.index("manifest", path=str(j))


def test_item2_nulls_stored_by_an_older_zoo_do_not_crash_show_search_recommend(tmp_path, use_cache):
    m = tmp_path / "m.yaml"
    m.write_text("models:\n  - id: local:stored-nan\n    description: a photo classifier with a nan result\n"
                 "    results: {imagenet_top1: 71.0}\n    mean: [0.5, 0.5, 0.5]\n    crop_pct: 0.9\n")
    zoo.index("manifest", path=str(m))
    conn = sqlite3.connect(user_db_path())  # what an older zoo stored for NaN: null, in JSON and in columns
    conn.execute("UPDATE models SET results = '{\"imagenet_top1\": null, \"top5\": null}', mean = '[0.5, null, 0.5]', "
                 "crop_pct = NULL, imagenet_top1 = NULL WHERE id = 'local:stored-nan'")
    conn.commit()
    conn.close()
    assert invoke("show", "local:stored-nan").exit_code == 0
    assert "local:stored-nan" in invoke("search", "nan", "--source", "local").output
    res = invoke("recommend", "classify photos", "--candidates", f"local:stored-nan,{GOOD}", "--top", "2")
    assert res.exit_code == 0 and "local:stored-nan" in res.output
    assert zoo.show("local:stored-nan").results == {}


# -- item 4: damaged pages in the user database ----------------------------------------------------------------


def test_item4_damaged_pages_are_one_clear_line_for_every_command(tmp_path):
    manifest = write_big_manifest(tmp_path / "m.json", 3000, "old")
    assert invoke("index", "manifest", str(manifest)).exit_code == 0
    db = user_db_path()
    size = db.stat().st_size
    with open(db, "r+b") as f:  # scribble over 40 pages in the middle
        for offset in range(size // 3, size // 3 + 40 * 4096, 4096):
            f.seek(offset + 100)
            f.write(b"\xde\xad\xbe\xef" * 500)
    for args in (["stats"], ["index", "manifest", str(manifest)], ["search", "model"], ["search", "--source", "local"]):
        res = invoke(*args)
        assert res.exit_code == 1 and "is corrupt or not a zoo database" in res.output, (args, res.output)
        assert "Move it aside" in res.output and len(res.output.strip().splitlines()) == 1, res.output


# -- item 6: YAML aliases --------------------------------------------------------------------------------------


def test_item6_yaml_aliases_are_refused_before_they_expand(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]" for a, b in zip("abcdefgh", "bcdefghi", strict=True)]
    bomb.write_text("\n".join(lines) + "\nmodels:\n  - id: local:bomb\n    extra: {x: *i}\n")  # 9**9 strings
    assert bomb.stat().st_size < 600
    loop = tmp_path / "loop.yaml"
    loop.write_text("models:\n  - id: local:loop\n    extra: &x {self: *x}\n")
    for path in (bomb, loop):
        t0 = time.perf_counter()
        res = invoke("index", "manifest", str(path))
        assert res.exit_code == 1 and "YAML aliases" in res.output and time.perf_counter() - t0 < 5, res.output
    assert not user_db_path().exists()  # nothing was written


def test_item6_the_libyaml_loader_reads_manifests_and_anchors_alone_are_fine(tmp_path):
    from zoo.sources.manifest import _yaml_loader

    if yaml.__with_libyaml__:
        assert _yaml_loader() is yaml.CSafeLoader
    m = tmp_path / "m.yaml"
    m.write_text("models:\n  - &first\n    id: local:anchored\n    description: R&D model\n")
    assert [r.id for r in zoo.sources.manifest.iter_records(m)] == ["local:anchored"]


def test_item6_oversized_free_form_fields_are_refused(tmp_path):
    m = tmp_path / "m.json"
    for field, value in (("description", "x" * 20_001), ("architecture", "y" * 1_001),
                         ("extra", {"blob": "z" * 70_000}), ("tasks", ["image-classification"] * 300),
                         ("params", 2**70)):
        m.write_text(json.dumps({"models": [{"id": "local:big", field: value}]}))
        with pytest.raises(ManifestError, match=f"entry 'local:big', field '{field}'"):
            zoo.index("manifest", path=str(m))


# -- item 7: silent or wrong messages --------------------------------------------------------------------------


def test_item7_an_unknown_license_is_indexed_as_unknown_with_a_warning_naming_it(tmp_path):
    m = tmp_path / "m.yaml"
    m.write_text("models:\n  - id: local:odd-license\n    license: Acme-Internal-1.0\n")
    with pytest.warns(ZooWarning, match=r"license 'acme-internal-1.0' is not one zoo recognises.*'unknown'"):
        zoo.index("manifest", path=str(m))
    assert zoo.show("local:odd-license").license_class == "unknown"
    res = invoke("index", "manifest", str(m))
    assert res.exit_code == 0 and "warning: " in res.output and "acme-internal-1.0" in res.output


def test_item7_a_zero_byte_user_database_is_said_not_silently_rebuilt(tmp_path):
    db = user_db_path()
    db.parent.mkdir(parents=True, exist_ok=True)
    db.write_bytes(b"")
    res = invoke("search", "resnet", "--limit", "1")
    assert res.exit_code == 0 and "is an empty file (0 bytes)" in res.output and db.stat().st_size == 0
    m = tmp_path / "m.yaml"
    m.write_text("models:\n  - id: local:after-empty\n")
    res = invoke("index", "manifest", str(m))
    assert res.exit_code == 0 and "was an empty file (0 bytes)" in res.output and "restore it from a backup" in res.output


def test_item7_a_cache_that_cannot_be_written_says_so(tmp_path, monkeypatch, digits_folder, one_torch_thread):
    from zoo.scoring import score

    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "features").write_text("a file where the features folder should be")  # no entry can be written
    monkeypatch.setenv("ZOO_CACHE_DIR", str(cache))
    with pytest.warns(ZooWarning, match=r"Features were not cached in .*features.*computed again next time"):
        rep = score(digits_folder, [GOOD], scores=["knn"])
    assert rep.models[0].error is None


def test_item7_probe_reports_the_files_it_skipped(tmp_path):
    csv = tmp_path / "r.csv"
    rows = [f"great fun film {i},pos" for i in range(8)] + [f"dull boring mess {i},neg" for i in range(8)]
    csv.write_text("text,label\n" + "\n".join(rows) + "\n,pos\n   ,neg\n")  # two rows without text
    res = invoke("probe", "--data", str(csv), "--models", "local:glove-6b-50d.avg", "--folds", "2")
    assert res.exit_code == 0 and "Note: Skipped 2 item(s): 2 empty text (e.g. line 18, line 19)" in res.output, res.output


def test_item7_huge_images_are_one_note_not_pil_warnings(tmp_path):
    from PIL import Image

    from zoo.data import describe, load_sample

    for c in ("a", "b"):
        (tmp_path / "img" / c).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(tmp_path / "img" / c / f"{i}.png")
    (tmp_path / "img" / "a" / "bomb.png").write_bytes(_bomb_png())  # claims 100,000 x 100,000 pixels
    big = bytearray(_bomb_png())
    big[16:24] = (10_000).to_bytes(4, "big") + (9_000).to_bytes(4, "big")  # 90 M pixels: above PIL's warning
    import zlib

    big[29:33] = zlib.crc32(bytes(big[12:29])).to_bytes(4, "big")
    (tmp_path / "img" / "b" / "large.png").write_bytes(bytes(big))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        sample = load_sample(tmp_path / "img")
    assert not [w for w in seen if "DecompressionBomb" in w.category.__name__]
    text = describe(sample)
    assert "1 image(s) are very large (up to 90,000,000 pixels, e.g. large.png" in text
    assert "too large to decode safely" in dict(sample.skipped)[str(tmp_path / "img" / "a" / "bomb.png")]


def test_item7_a_table_without_the_label_column_suggests_label_column(tmp_path):
    from zoo.data import describe, load_sample

    csv = tmp_path / "reviews.csv"
    csv.write_text("text,category,id\n" + "".join(f"fun film {i},pos,{i}\ndull mess {i},neg,{i + 10}\n"
                                                  for i in range(5)))
    sample = load_sample(csv)
    assert sample.task == "unlabelled" and "--label-column category" in describe(sample)
    res = invoke("score", "--data", str(csv), "--models", GOOD)
    assert res.exit_code == 2 and "--label-column category" in res.output, res.output


def test_item7_the_lock_message_blames_no_one_and_a_waiting_writer_says_so(tmp_path, monkeypatch):
    import threading

    m = tmp_path / "m.yaml"
    m.write_text("models:\n  - id: local:locked\n")
    assert invoke("index", "manifest", str(m)).exit_code == 0
    holder = sqlite3.connect(user_db_path(), isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # any program holding the write lock: here, the sqlite3 module
    monkeypatch.setenv("ZOO_LOCK_TIMEOUT", "0.5")
    res = invoke("index", "manifest", str(m))
    assert res.exit_code == 1 and "warning: Waiting up to 0.5 s for the write lock" in res.output
    assert "is locked: another connection is writing to it" in res.output and "zoo process" not in res.output
    monkeypatch.setenv("ZOO_LOCK_TIMEOUT", "30")
    threading.Timer(0.5, lambda: holder.execute("ROLLBACK")).start()  # the other writer finishes
    res = invoke("index", "manifest", str(m))
    assert res.exit_code == 0 and "warning: Waiting up to 30 s for the write lock" in res.output, res.output
    holder.close()


# -- found by the property suites (benchmarks/bench_reliability.py) --------------------------------------------


def test_sample_text_that_is_not_unicode_is_skipped_or_refused_and_odd_folder_names_load(tmp_path):
    import os

    import numpy as np
    from PIL import Image

    from zoo.data import DataError, describe, load_sample

    jsonl = tmp_path / "s.jsonl"  # an escaped lone surrogate: valid JSON, not text
    jsonl.write_text('{"text": "\\ud800", "label": "a"}\n' + "".join(
        f'{{"text": "t{i}", "label": "{"ab"[i % 2]}"}}\n' for i in range(6)))
    assert "Skipped 1 item(s): 1 invalid JSON (e.g. line 1)" in describe(load_sample(jsonl))
    npz = tmp_path / "s.npz"
    np.savez(npz, x=np.ones((4, 2)), y=np.array(["\ud800", "a", "\ud800", "a"]))
    with pytest.raises(DataError, match="not valid Unicode"):
        load_sample(npz)
    root = tmp_path / "img"
    for name in (b"caf\xe9", b"tea"):  # a Latin-1 folder name
        folder = os.path.join(os.fsencode(root), name)
        os.makedirs(folder)
        for i in range(2):
            Image.new("RGB", (8, 8), (i * 90, 0, 0)).save(os.fsdecode(os.path.join(folder, b"%d.png" % i)))
    sample = load_sample(root)
    assert len(sample.classes) == 2 and len(sample.content_hash) == 16
