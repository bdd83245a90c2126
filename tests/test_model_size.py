"""zoo.model_size: a size comparable across families (records from the real registry), and the size prior on it."""

from __future__ import annotations

import pytest

from zoo import fusion
from zoo.model_size import comparable_size, non_embedding_params
from zoo.registry import Registry


@pytest.fixture(scope="module")
def records():
    with Registry() as reg:
        return {i: reg.get(i) for i in ("local:glove-6b-50d.avg", "local:all-MiniLM-L6-v2",
                                        "local:cifar_resnet20.c10", "local:paraphrase-MiniLM-L3-v2.onnx")}


def test_non_embedding_counts(records):
    glove, minilm, cifar, onnx = (records[i] for i in records)
    assert glove.params == 20_000_000 and non_embedding_params(glove)[0] == 0
    n, basis = non_embedding_params(minilm)
    assert n == minilm.params - 30522 * 384 and "30,522 x 384" in basis  # BERT's token-embedding table left out
    assert non_embedding_params(cifar) == (cifar.params, non_embedding_params(cifar)[1])
    assert "no token-embedding table" in non_embedding_params(cifar)[1]
    assert "unknown" in non_embedding_params(onnx)[1] and non_embedding_params(onnx)[0] == onnx.params
    assert comparable_size(glove, "params") == (20_000_000, "catalog parameter count")
    with pytest.raises(ValueError, match="size basis"):
        comparable_size(glove, "flops")


def test_the_size_prior_on_non_embedding_parameters(records):
    glove, minilm = records["local:glove-6b-50d.avg"], records["local:all-MiniLM-L6-v2"]
    raw = fusion.size_component({"glove": glove.params, "minilm": minilm.params})
    fair = fusion.size_component({"glove": non_embedding_params(glove)[0], "minilm": non_embedding_params(minilm)[0]})
    assert raw == {"glove": 0.0, "minilm": 1.0} and fair == {"glove": 0.0, "minilm": 1.0}
    # with a third, mid-sized model, GloVe's 20M lookup table no longer places it above a 10M network
    mid = 10_000_000
    assert fusion.size_component({"glove": glove.params, "mid": mid, "minilm": minilm.params})["glove"] > \
        fusion.size_component({"glove": glove.params, "mid": mid, "minilm": minilm.params})["mid"]
    assert fusion.size_component({"glove": 0, "mid": mid, "minilm": minilm.params})["glove"] == 0.0
    assert fusion.size_component({"a": None, "b": 5})["a"] == 0.5
    assert fusion.SIZE_BASIS == "params" and fusion.FUSE_SOURCE_HEAD_SCORES is False  # defaults until D's benchmark


def test_source_head_scores_join_only_when_every_candidate_may_have_a_head(records, monkeypatch):
    from types import SimpleNamespace

    from zoo.data_rank import _source_head_scores

    cifar, minilm = records["local:cifar_resnet20.c10"], records["local:all-MiniLM-L6-v2"]
    heads = [SimpleNamespace(record=cifar)]
    assert _source_head_scores(heads) == []  # the default: not fused
    monkeypatch.setattr(fusion, "FUSE_SOURCE_HEAD_SCORES", True)
    assert _source_head_scores(heads) == ["leep", "nce"]
    assert _source_head_scores([*heads, SimpleNamespace(record=minilm)]) == []  # a text encoder has no head
