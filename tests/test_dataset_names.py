"""zoo.dataset_names: the lexicon of public datasets (vocabulary, uniqueness) and find()."""

from __future__ import annotations

import collections
import re
import time

import pytest

from zoo import vocab
from zoo.dataset_names import _RUN_RE, DATASETS, KnownDataset, find

BY_NAME = {ds.name: ds for ds in DATASETS}


def names(text: str) -> list[str]:
    return [ds.name for ds in find(text)]


def _keys(name: str) -> set[tuple[str, ...]]:
    """The forms find() matches a name by: its runs, and its runs joined when none is a lone letter."""
    key = tuple(_RUN_RE.findall(name.lower()))
    out = {key}
    if all(len(r) > 1 for r in key):
        out.add(tuple(_RUN_RE.findall("".join(key))))
    return out


# ---------------------------------------------------------------- the table


def test_entries_use_the_controlled_vocabulary():
    for ds in DATASETS:
        assert isinstance(ds, KnownDataset)
        assert ds.modality in vocab.MODALITIES, (ds.name, ds.modality)
        assert ds.domains, ds.name
        assert len(set(ds.domains)) == len(ds.domains), ds.name
        for d in ds.domains:
            assert d in vocab.DOMAINS, (ds.name, d)


def test_every_modality_is_covered_and_most_domains_are_used():
    assert {ds.modality for ds in DATASETS} == set(vocab.MODALITIES)
    used = {d for ds in DATASETS for d in ds.domains}
    assert used == set(vocab.DOMAINS), set(vocab.DOMAINS) - used


def test_no_name_or_alias_is_listed_twice():
    seen: dict[str, str] = {}
    for ds in DATASETS:
        for n in {n.lower() for n in ds.names}:
            assert n not in seen, f"{n!r} in both {seen[n]!r} and {ds.name!r}"
            seen[n] = ds.name


def test_no_two_entries_share_a_matching_form():
    # stronger than the plain-name check: "CIFAR-10" and "cifar10" are one form, so two entries must not own it
    owner: dict[tuple[str, ...], str] = {}
    for ds in DATASETS:
        for n in ds.names:
            for k in _keys(n):
                assert owner.setdefault(k, ds.name) == ds.name, f"{n!r} of {ds.name!r} collides with {owner[k]!r}"


def test_every_name_and_alias_finds_its_own_entry():
    bad = [(n, ds.name, names(n)) for ds in DATASETS for n in ds.names if find(n) != [ds]]
    assert not bad, bad[:10]


def test_case_sensitive_names_do_not_match_in_lower_case():
    cs = [ds for ds in DATASETS if ds.case_sensitive]
    assert {"IAM", "CORD", "AVA", "TREC", "SUBJ", "GLUE", "BraTS"} <= {ds.name for ds in cs}
    for ds in cs:
        for n in ds.names:
            if n.lower() != n:
                assert ds not in find(n.lower()), (ds.name, n)


def test_no_bare_ordinary_words_or_tiny_acronyms_case_insensitively():
    risky = {"mr", "subj", "trec", "pets", "places", "cars", "flowers", "cord", "ava", "iam", "glue", "squad",
             "kinetics", "charades", "switchboard", "record", "multiple", "finer", "wit", "vg", "nq", "sst"}
    for ds in DATASETS:
        if ds.case_sensitive:
            continue
        for n in ds.names:
            assert not (_keys(n) & {(w,) for w in risky}), (ds.name, n)


# ---------------------------------------------------------------- find()


def test_librispeech_is_speech_audio():
    (ds,) = find("LibriSpeech test-other WER")
    assert ds.name == "LibriSpeech"
    assert ds.modality == "audio" and ds.domains[0] == "speech"


@pytest.mark.parametrize("text", ["fine-tune on cifar10", "CIFAR-10", "cifar 10", "Cifar_10 benchmark", "CIFAR10."])
def test_cifar10_spellings(text):
    assert find(text) == [BY_NAME["CIFAR-10"]]


def test_cifar100_is_not_cifar10():
    assert names("CIFAR-100") == ["CIFAR-100"]
    assert names("cifar100 then cifar-10") == ["CIFAR-100", "CIFAR-10"]
    assert BY_NAME["CIFAR-100"].domains == ("low-resolution", "natural-images")


def test_longest_name_wins():
    assert names("robustness on CIFAR-10-C") == ["CIFAR-10-C"]
    assert names("COCO Captions retrieval") == ["COCO Captions"]
    assert names("IMDB-WIKI ages") == ["IMDB-WIKI"]
    assert names("Fashion-MNIST") == ["Fashion-MNIST"]


def test_names_never_match_inside_longer_words():
    assert find("MRI scans of the knee") == []
    assert find("IAMB and EMNISTS and Cocoa") == []
    assert names("EMNIST letters") == ["EMNIST"]


def test_both_chest_xray_sets_in_order():
    found = find("chest X-rays like CheXpert and MIMIC-CXR")
    assert [ds.name for ds in found] == ["CheXpert", "MIMIC-CXR"]
    assert all(ds.modality == "image" and ds.domains[0] == "medical-radiology" for ds in found)


def test_pronoun_is_not_the_iam_handwriting_set():
    assert find("I am writing") == []
    assert find("I AM writing") == []
    assert names("IAM handwriting lines") == ["IAM"]


def test_each_dataset_is_returned_once():
    assert names("CheXpert first, then chexpert again, then CheXpert") == ["CheXpert"]
    assert names("CIFAR10 vs CIFAR-10 vs cifar 10") == ["CIFAR-10"]


def test_version_suffixes_and_separators():
    assert names("VQA v2") == names("VQAv2") == names("VQA-v2.0") == ["VQAv2"]
    assert names("ISIC2019 lesions") == ["ISIC"]
    assert names("SQuADv2 and SQuAD v1.1") == ["SQuAD 2.0", "SQuAD"]
    assert names("StanfordCars and stanford_cars") == ["Stanford Cars"]
    assert names("trained on ImageNet a lot") == ["ImageNet-1k"]  # "a" is a word here, not ImageNet-A


def test_case_sensitive_entries():
    assert find("glue the poster") == [] and names("GLUE") == ["GLUE"]
    assert find("brats") == [] and names("BraTS 2021 tumours") == ["BraTS"]
    assert find("a spinal cord lesion") == [] and names("receipts like CORD and SROIE") == ["CORD", "SROIE"]
    assert names("CORD-19 papers") == ["CORD-19"]


def test_everyday_english_names_no_dataset():
    text = (
        "Last summer I took hundreds of photos of cityscapes, flowers, our pets and old cars in the places we "
        "visited, and I still need to sort them into albums. My inbox is full of emails from work; I cc my boss "
        "on most of them and reply to the rest on Sunday evenings. In the car we sing along to songs on the radio, "
        "mostly classical music by Bach, some jazz and a record my sister likes. The kids played charades, a squad "
        "of volunteers cleaned the park, and it was a massive effort that left us with a fever and multiple finer "
        "points to argue about. I am writing this with a quick draw of the pen, a mix of the record and the stack."
    )
    assert find(text) == []


def test_empty_and_punctuation_only():
    assert find("") == []
    assert find(" -- ... !!") == []


def test_find_is_fast():
    text = " ".join(
        ["We fine-tune a backbone on chest X-rays similar to CheXpert and MIMIC-CXR and compare with ImageNet-1k",
         "pretrained models; the images are grayscale and the labels noisy. We also have radiology reports, CT",
         "scans and some ultrasound. Earlier we worked on LibriSpeech and CIFAR-10, never on medical data, so",
         "advice on transfer learning is welcome: which layers to freeze, how many epochs, what learning rate",
         "and which augmentations suit a small hospital dataset with only a few thousand labelled studies.",
         "The model should run on a laptop GPU, be licensed for commercial use and export to ONNX for the clinic."]
    )
    assert 90 <= len(text.split()) <= 110
    assert names(text) == ["CheXpert", "MIMIC-CXR", "ImageNet-1k", "LibriSpeech", "CIFAR-10"]  # also builds the index
    t0 = time.perf_counter()
    for _ in range(1000):
        find(text)
    assert time.perf_counter() - t0 < 2.0


def test_modalities_of_a_few_well_known_sets():
    expect = {
        "Kinetics-400": ("video", "natural-images"), "UCF101": ("video", "natural-images"),
        "ESC-50": ("audio", "environmental-audio"), "GTZAN": ("audio", "music"),
        "Flickr30k": ("multimodal", "web-image-text"), "AudioCaps": ("multimodal", "environmental-audio"),
        "EuroSAT": ("image", "remote-sensing"), "HAM10000": ("image", "medical-dermatology"),
        "CAMELYON16": ("image", "medical-pathology"), "APTOS": ("image", "medical-ophthalmology"),
        "Kvasir": ("image", "medical-other"), "LFW": ("image", "faces"), "RVL-CDIP": ("image", "documents"),
        "MNIST": ("image", "handwriting"), "QuickDraw": ("image", "art-sketch"),
        "GLUE": ("text", "general"), "MIMIC-III": ("text", "clinical-text"), "BC5CDR": ("text", "biomedical-text"),
        "SciERC": ("text", "scientific-text"), "CaseHOLD": ("text", "legal"), "FiQA": ("text", "finance"),
        "CodeSearchNet": ("text", "code"), "TweetEval": ("text", "social-media"), "AG News": ("text", "news"),
        "IMDB": ("text", "reviews"), "MultiWOZ": ("text", "dialogue"), "XNLI": ("text", "multilingual"),
    }
    for name, (modality, domain) in expect.items():
        ds = BY_NAME[name]
        assert (ds.modality, ds.domains[0]) == (modality, domain), name


def test_counts_per_modality_are_reasonable():
    per = collections.Counter(ds.modality for ds in DATASETS)
    assert all(per[m] >= 20 for m in vocab.MODALITIES), per
    assert all(re.fullmatch(r"\S(.*\S)?", n) for ds in DATASETS for n in ds.names)  # no stray whitespace


def test_pretraining_vocabulary_agrees_with_the_lexicon():
    """Where a pretraining dataset of zoo.vocab is also a known dataset, both name the same thing: the
    lexicon entry found in its description has the modality of the registry models pretrained on it."""
    import json
    import sqlite3
    from collections import Counter
    from pathlib import Path

    db = Path(__file__).resolve().parent.parent / "registry.db"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    modalities: dict[str, Counter] = {}
    for modality, data in conn.execute("SELECT modality, pretraining_data FROM models"):
        for key in json.loads(data or "[]"):
            modalities.setdefault(key, Counter())[modality] += 1
    both = {"mimic-cxr"}  # chest X-rays and their reports: report encoders are text models
    checked = 0
    for key, description in vocab.PRETRAINING_DATA.items():
        named = find(description)
        if not named or key not in modalities or key in both:
            continue
        checked += 1
        # image-text collections also pretrain image towers; everything else must agree exactly
        allowed = {named[0].modality} | ({"image"} if named[0].modality == "multimodal" else set())
        assert set(modalities[key]) <= allowed | {"multimodal"}, (key, named[0].name, modalities[key])
    assert checked >= 30
