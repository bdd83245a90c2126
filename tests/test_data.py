"""zoo.data: loading the user's sample data from real small files built in tmp_path."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from zoo.config import shared_dir
from zoo.data import DataError, Sample, describe, load_sample
from zoo.errors import UsageError

# ------------------------------------------------------------------------------------------ builders


def _digit_image(img: np.ndarray, mode: str) -> Image.Image:
    arr = (img * (255.0 / 16.0)).astype(np.uint8)
    im = Image.fromarray(arr, mode="L").resize((32, 32), Image.NEAREST)
    return im.convert(mode)


def _digits_folder(root, per_class=(12, 9, 7), corrupt=True):
    """root/<digit>/<n>.png for digits 0..len(per_class)-1; one RGB image, one corrupt .png."""
    digits = load_digits()
    for cls, n in enumerate(per_class):
        d = root / str(cls)
        d.mkdir(parents=True)
        imgs = digits.images[digits.target == cls][:n]
        for i, img in enumerate(imgs):
            mode = "RGB" if (cls, i) == (1, 0) else "L"
            _digit_image(img, mode).save(d / f"{i:03d}.png")
    if corrupt:
        (root / "2" / "broken.png").write_bytes(np.random.default_rng(1).bytes(300))
    return root


STSA = shared_dir() / "data" / "text" / "stsa.binary.dev"


def _stsa_rows(n_per_class: int = 20) -> list[tuple[str, str]]:
    if not STSA.is_file():
        pytest.skip(f"shared text data not found at {STSA}; set ZOO_SHARED_DIR to the shared assets folder")
    rows, seen = [], {"0": 0, "1": 0}
    for line in STSA.read_text(encoding="utf-8").splitlines():
        label, _, text = line.partition(" ")
        if label in seen and seen[label] < n_per_class and text.strip():
            rows.append((text.strip(), label))
            seen[label] += 1
    return rows


def _write_table(path, rows, delimiter=",", header=("text", "label")):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=delimiter)
        w.writerow(header)
        w.writerows(rows)
    return path


def _write_jsonl(path, objs):
    path.write_text("".join(json.dumps(o) + "\n" for o in objs), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------ images


def test_image_folder_counts_classes_and_corrupt_skipped(tmp_path):
    root = _digits_folder(tmp_path / "digits")
    s = load_sample(root)
    assert isinstance(s, Sample)
    assert (s.modality, s.task, s.classes) == ("image", "classification", ["0", "1", "2"])
    assert s.class_counts() == {"0": 12, "1": 9, "2": 7}
    assert len(s) == len(s.items) == 28 and s.arrays is None
    assert s.labels.dtype == np.int64 and s.labels.tolist() == [0] * 12 + [1] * 9 + [2] * 7
    assert all(isinstance(p, str) and p.endswith(".png") for p in s.items)
    assert [(p.rsplit("/", 1)[-1], r.split(":")[0]) for p, r in s.skipped] == [("broken.png", "unreadable image")]
    # mixed modes are fine: the paths are kept as is
    modes = {Image.open(p).mode for p in s.items}
    assert modes == {"L", "RGB"}
    assert s.source == str(root) and len(s.content_hash) == 16
    text = describe(s)
    assert "28 images" in text and "3 classes" in text and "0: 12" in text
    assert "Skipped 1 item(s): 1 unreadable image" in text and "broken.png" in text


def test_image_folder_strict_raises_on_corrupt(tmp_path):
    root = _digits_folder(tmp_path / "digits")
    with pytest.raises(DataError, match=r"broken\.png: unreadable image.*without strict"):
        load_sample(root, strict=True)


def test_image_stratified_cap_and_determinism(tmp_path):
    root = _digits_folder(tmp_path / "digits", per_class=(12, 9, 7), corrupt=True)
    a = load_sample(root, max_samples_per_class=5, seed=3)
    assert a.class_counts() == {"0": 5, "1": 5, "2": 5}
    assert a.available == {"0": 12, "1": 9, "2": 8}  # raw files, the corrupt one included
    b = load_sample(root, max_samples_per_class=5, seed=3)
    assert a.items == b.items and a.content_hash == b.content_hash
    c = load_sample(root, max_samples_per_class=5, seed=4)
    assert c.items != a.items and c.content_hash != a.content_hash
    assert "Subsampled to at most 5 per class" in describe(a)
    # uncapped hash is stable across loads and independent of the folder's location
    full = load_sample(root)
    moved = tmp_path / "elsewhere"
    root.rename(moved)
    assert load_sample(moved).content_hash == full.content_hash


def test_image_hash_changes_when_a_label_changes(tmp_path):
    root = _digits_folder(tmp_path / "digits", corrupt=False)
    before = load_sample(root).content_hash
    (root / "0" / "000.png").rename(root / "1" / "moved.png")
    after = load_sample(root)
    assert after.class_counts() == {"0": 11, "1": 10, "2": 7}
    assert after.content_hash != before


def test_unlabelled_image_folder(tmp_path):
    digits = load_digits()
    root = tmp_path / "flat"
    root.mkdir()
    for i in range(6):
        _digit_image(digits.images[i], "RGB" if i % 2 else "L").save(root / f"img{i}.jpg" if i % 2
                                                                        else root / f"img{i}.png")
    (root / "notes.txt").write_text("ignored")
    s = load_sample(root, max_samples_per_class=4)
    assert (s.task, s.labels, s.classes, s.class_counts()) == ("unlabelled", None, [], {})
    assert len(s.items) == 4 and s.skipped == []
    assert "unlabelled" in describe(s)


def test_loose_images_beside_class_folders_are_skipped(tmp_path):
    root = _digits_folder(tmp_path / "digits", corrupt=False)
    _digit_image(load_digits().images[0], "L").save(root / "stray.png")
    s = load_sample(root)
    assert len(s) == 28 and [r.split(":")[0] for _, r in s.skipped] == ["not in a class folder"]


# ------------------------------------------------------------------------------------------ text


def test_csv_tsv_jsonl_same_texts_same_hash(tmp_path):
    rows = _stsa_rows(20)
    csv_s = load_sample(_write_table(tmp_path / "s.csv", rows))
    tsv_s = load_sample(_write_table(tmp_path / "s.tsv", rows, delimiter="\t"))
    jsonl_s = load_sample(_write_jsonl(tmp_path / "s.jsonl", [{"text": t, "label": int(y)} for t, y in rows]))
    for s in (csv_s, tsv_s, jsonl_s):
        assert (s.modality, s.task, s.classes) == ("text", "classification", ["0", "1"])
        assert s.class_counts() == {"0": 20, "1": 20}
        assert s.items[0] == rows[0][0] and s.skipped == []
    assert csv_s.content_hash == tsv_s.content_hash == jsonl_s.content_hash
    assert "40 texts" in describe(csv_s)


def test_text_cap_determinism_and_changed_label(tmp_path):
    rows = _stsa_rows(20)
    path = _write_table(tmp_path / "s.csv", rows)
    a = load_sample(path, max_samples_per_class=6, seed=0)
    assert a.class_counts() == {"0": 6, "1": 6} and a.available == {"0": 20, "1": 20}
    b = load_sample(path, max_samples_per_class=6, seed=0)
    assert a.items == b.items and a.content_hash == b.content_hash
    assert load_sample(path, max_samples_per_class=6, seed=1).items != a.items
    flipped = list(rows)
    flipped[0] = (rows[0][0], "1" if rows[0][1] == "0" else "0")
    full = load_sample(path)
    assert load_sample(_write_table(tmp_path / "f.csv", flipped)).content_hash != full.content_hash
    # the row order of the file does not matter
    assert load_sample(_write_table(tmp_path / "r.csv", rows[::-1])).content_hash == full.content_hash


def test_custom_columns_missing_columns_and_unlabelled_text(tmp_path):
    rows = _stsa_rows(5)
    path = _write_table(tmp_path / "s.csv", rows, header=("sentence", "sentiment"))
    s = load_sample(path, text_column="sentence", label_column="sentiment")
    assert s.class_counts() == {"0": 5, "1": 5}
    with pytest.raises(DataError, match=r"no text column 'text' \(columns: sentence, sentiment\).*text_column="):
        load_sample(path)
    u = load_sample(path, text_column="sentence")  # no 'label' column -> unlabelled texts
    assert (u.task, u.labels, len(u.items)) == ("unlabelled", None, 10)


def test_multilabel_jsonl_and_bad_lines(tmp_path):
    objs = [{"text": f"t{i}", "label": labs} for i, labs in
            enumerate([["a"], ["a", "b"], ["b"], ["b", "c"], ["c"], ["a", "c"]])]
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps(o) + "\n" for o in objs) + "{not json\n\n[1, 2]\n", encoding="utf-8")
    s = load_sample(path)
    assert (s.task, s.classes) == ("multilabel", ["a", "b", "c"])
    assert s.labels.shape == (6, 3) and s.class_counts() == {"a": 3, "b": 3, "c": 3}
    assert [w for w, _ in s.skipped] == ["line 7", "line 9"]
    with pytest.raises(DataError, match="line 7: invalid JSON"):
        load_sample(path, strict=True)


def test_regression_detection(tmp_path):
    rng = np.random.default_rng(0)
    objs = [{"text": f"review {i}", "label": round(float(v), 3)} for i, v in enumerate(rng.normal(3, 1, 30))]
    s = load_sample(_write_jsonl(tmp_path / "r.jsonl", objs))
    assert (s.task, s.classes, s.class_counts()) == ("regression", [], {})
    assert s.labels.dtype == np.float64 and len(s.labels) == 30
    assert "regression target" in describe(s)
    # integral numbers (also written as floats) are class ids, not a regression target
    ints = [{"text": f"r{i}", "label": float(i % 3)} for i in range(12)]
    c = load_sample(_write_jsonl(tmp_path / "c.jsonl", ints))
    assert (c.task, c.classes) == ("classification", ["0", "1", "2"])


def test_non_utf8_file_is_a_clear_error(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("text,label\ncaf\u00e9 au lait,a\nth\u00e9,b\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin\.csv is not valid UTF-8.*iconv"):
        load_sample(path)


# ------------------------------------------------------------------------------------------ arrays


def test_npz_labelled_unlabelled_and_regression(tmp_path):
    digits = load_digits()
    x, y = digits.data[:200].astype(np.float32), digits.target[:200]
    np.savez(tmp_path / "d.npz", x=x, y=y)
    s = load_sample(tmp_path / "d.npz", max_samples_per_class=10)
    assert (s.modality, s.items, s.task) == ("array", None, "classification")
    assert s.classes == [str(i) for i in range(10)] and set(s.class_counts().values()) == {10}
    assert s.arrays.shape == (100, 64) and s.arrays.dtype == np.float32
    # every kept row is a row of x, with its own label
    lookup = {row.tobytes(): int(t) for row, t in zip(x, y, strict=True)}
    assert all(lookup[row.tobytes()] == int(s.classes[k]) for row, k in zip(s.arrays, s.labels, strict=True))
    assert load_sample(tmp_path / "d.npz", max_samples_per_class=10).content_hash == s.content_hash

    np.savez(tmp_path / "u.npz", x=x)
    u = load_sample(tmp_path / "u.npz", max_samples_per_class=50)
    assert (u.task, u.labels, u.arrays.shape) == ("unlabelled", None, (50, 64))

    np.savez(tmp_path / "r.npz", x=x[:40], y=np.linspace(0, 1, 40) ** 2)
    assert load_sample(tmp_path / "r.npz").task == "regression"

    y2 = y.copy()
    y2[0] = (y2[0] + 1) % 10
    np.savez(tmp_path / "d2.npz", x=x, y=y2)
    assert load_sample(tmp_path / "d2.npz").content_hash != load_sample(tmp_path / "d.npz").content_hash


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "nox.npz", features=np.zeros((3, 2)))
    with pytest.raises(DataError, match=r"no array 'x' \(arrays: features\).*np\.savez"):
        load_sample(tmp_path / "nox.npz")
    np.savez(tmp_path / "len.npz", x=np.zeros((4, 2)), y=np.array([0, 1, 0]))
    with pytest.raises(DataError, match="'y' .* has 3 entries but 'x' has 4 rows"):
        load_sample(tmp_path / "len.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_sample(tmp_path / "junk.npz")


# ------------------------------------------------------------------------------------------ bad data


def test_missing_path_and_unsupported_file(tmp_path):
    with pytest.raises(DataError, match=r"not found: .*nope.*Check the path"):
        load_sample(tmp_path / "nope")
    (tmp_path / "x.parquet").write_bytes(b"PAR1")
    with pytest.raises(DataError, match=r"Unsupported sample data file .*'\.parquet'"):
        load_sample(tmp_path / "x.parquet")
    with pytest.raises(DataError, match="max_samples_per_class must be a positive integer"):
        load_sample(tmp_path, max_samples_per_class=0)


def test_empty_inputs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="No images found in .*root/<class>/"):
        load_sample(tmp_path / "empty")
    (tmp_path / "e.csv").write_text("text,label\n", encoding="utf-8")
    with pytest.raises(DataError, match="has no data rows"):
        load_sample(tmp_path / "e.csv")
    (tmp_path / "e.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="has no data rows"):
        load_sample(tmp_path / "e.jsonl")
    np.savez(tmp_path / "e.npz", x=np.zeros((0, 3)))
    with pytest.raises(DataError, match="has no rows"):
        load_sample(tmp_path / "e.npz")


def test_single_class_is_an_error(tmp_path):
    root = _digits_folder(tmp_path / "one", per_class=(5,), corrupt=False)
    with pytest.raises(DataError, match=r"single class \(only '0'\).*at least 2 classes.*unlabelled folder"):
        load_sample(root)
    _write_table(tmp_path / "one.csv", [("a", "x"), ("b", "x")])
    with pytest.raises(DataError, match="single class"):
        load_sample(tmp_path / "one.csv")


def test_tiny_classes_are_named(tmp_path):
    _write_table(tmp_path / "t.csv", [("a", "x"), ("b", "x"), ("c", "y"), ("d", "z")])
    with pytest.raises(DataError, match=r"at least 2 samples; these have fewer: 'y' \(1\), 'z' \(1\)"):
        load_sample(tmp_path / "t.csv")
    # a class left with one readable image after skipping a corrupt one
    root = _digits_folder(tmp_path / "imgs", per_class=(3, 3, 1), corrupt=True)
    with pytest.raises(DataError, match=r"at least 2 readable samples.*'2' \(1\)"):
        load_sample(root)


def test_empty_label_values_are_counted(tmp_path):
    _write_table(tmp_path / "l.csv", [("a", "x"), ("b", ""), ("c", "y"), ("d", " "), ("e", "y"), ("f", "x")])
    with pytest.raises(DataError, match=r"'label' .* has 2 empty value\(s\) \(line 3, line 5\).*drop the label"):
        load_sample(tmp_path / "l.csv")
    _write_jsonl(tmp_path / "l.jsonl", [{"text": "a", "label": "x"}, {"text": "b"}, {"text": "c", "label": None}])
    with pytest.raises(DataError, match=r"has 2 empty value\(s\) \(line 2, line 3\)"):
        load_sample(tmp_path / "l.jsonl")


def test_empty_text_rows_are_skipped(tmp_path):
    s = load_sample(_write_table(tmp_path / "t.csv", [("a", "x"), ("", "x"), ("b", "x"), ("c", "y"), ("d", "y")]))
    assert len(s) == 4 and s.skipped == [("line 3", "empty text: no value in column 'text'")]
    assert "1 empty text" in describe(s)


def test_data_error_is_a_usage_error():
    assert issubclass(DataError, UsageError)
