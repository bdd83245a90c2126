"""The shipped catalog (registry.db): what it holds, and that its build is reproducible."""

from __future__ import annotations

import importlib.util
import sqlite3
from collections import Counter

import pytest

from zoo.config import REPO_DIR
from zoo.registry import Registry

OFFLINE_IDS = [
    "local:mobilenet_v2.tv_in1k", "local:efficientnet_lite0.in1k", "local:efficientnet_lite1.in1k",
    "local:efficientnet_lite2.in1k", "local:cifar_resnet20.c10", "local:cifar_resnet32.c10",
    "local:cifar_resnet44.c10", "local:cifar_resnet56.c10", "local:mini_xception.fer2013",
    "local:mini_xception.imdb_gender", "local:all-MiniLM-L6-v2", "local:paraphrase-MiniLM-L3-v2.onnx",
    "local:all-MiniLM-L6-v2.int8-onnx", "local:all-mpnet-base-v2", "local:glove-6b-50d.avg",
]
GROUP_DOMAINS = [
    "medical-radiology", "medical-pathology", "remote-sensing", "biomedical-text", "clinical-text",
    "scientific-text", "legal", "finance", "code", "social-media", "multilingual", "speech", "documents", "faces",
]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    reg = Registry(db=tmp_path_factory.mktemp("u") / "user.db", catalog=REPO_DIR / "registry.db")
    yield reg
    reg.close()


def test_catalog_contents(catalog):
    from zoo._compat import ensure_torchvision

    ensure_torchvision()
    import timm

    stats = catalog.stats()
    assert stats.by_source["timm"] == len(timm.list_pretrained())
    for mid in OFFLINE_IDS:
        assert catalog.get(mid).source == "local"
    hub = [r for r in catalog.iter_records() if r.source == "hf"]
    assert len(hub) >= 60
    per_domain = Counter(d for r in hub for d in r.domains)
    for d in GROUP_DOMAINS:
        assert per_domain[d] >= 3, d


def test_timm_record_facts(catalog):
    r = catalog.get("timm:resnet50.a1_in1k")
    assert r.params == 25_557_032 and r.feature_dim == 2048 and r.input_size == [3, 224, 224]
    assert r.pretraining_data == ["in1k"] and r.license_class == "permissive"
    assert r.results["imagenet_top1"] == pytest.approx(81.2, abs=0.1) and r.imagenet_top1 == r.results["imagenet_top1"]
    assert r.weights == "hf:timm/resnet50.a1_in1k" and r.cpu_latency_ms and r.cpu_latency_ms > 0
    clip = catalog.get("timm:vit_base_patch16_clip_224.openai")
    assert "web-image-text" in clip.domains and clip.pretraining_data == ["openai-wit"]


def test_offline_zoo_has_its_own_results(catalog):
    c = catalog.get("local:cifar_resnet56.c10")
    assert "imagenet_top1" not in c.results and c.results["cifar10_top1"] > 90
    mb = catalog.get("local:mobilenet_v2.tv_in1k")
    assert 71 < mb.results["imagenet_top1"] < 73 and mb.params == 3_504_872


def test_catalog_is_compact_and_not_in_wal_mode():
    path = REPO_DIR / "registry.db"
    assert path.stat().st_size < 8_000_000
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()


def test_build_is_reproducible(tmp_path):
    spec = importlib.util.spec_from_file_location("build_registry", REPO_DIR / "scripts" / "build_registry.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    names = ["resnet18.a1_in1k", "vit_tiny_patch16_224.augreg_in21k", "convnext_atto.d2_in1k"]
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    mod.build(a, timm_names=names)
    mod.build(b, timm_names=names)
    assert mod.dump(a) == mod.dump(b)
    assert "2026-11-22T00:00:00Z" in mod.dump(a)


def test_catalog_ships_current_vectors(catalog):
    """Every card and vocabulary phrase has the default encoder's vector for its current text, so
    the first `zoo recommend` embeds only the query (rebuild registry.db after changing them)."""
    from zoo.cards import card_text, text_hash
    from zoo.embed import model_identity
    from zoo.understand import phrase_items
    from zoo.vectors import EmbeddingStore

    items = [(f"card:{r.id}", card_text(r)) for r in catalog.iter_records()] + phrase_items()
    have = EmbeddingStore(catalog).lookup([k for k, _ in items], model_identity())
    stale = [k for k, t in items if k not in have or have[k][0] != text_hash(t)]
    assert stale == []


def test_every_benchmark_domain_has_five_models(catalog):
    """The description benchmark only asks for domains the registry can answer with 5+ models."""
    import yaml

    tasks = yaml.safe_load((REPO_DIR / "benchmarks" / "tasks" / "descriptions.yaml").read_text())["tasks"]
    per_domain = Counter(d for r in catalog.iter_records() for d in r.domains)
    for d in sorted({d for t in tasks for d in t["accept_domains"]}):
        assert per_domain[d] >= 5, (d, per_domain[d])
