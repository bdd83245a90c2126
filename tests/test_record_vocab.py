from __future__ import annotations

import pytest

from zoo import vocab
from zoo.errors import InvalidModelId
from zoo.ids import ModelId, slugify
from zoo.record import ModelRecord


def test_model_id_parse_roundtrip():
    mid = ModelId.parse("hf:microsoft/rad-dino")
    assert (mid.source, mid.name, str(mid)) == ("hf", "microsoft/rad-dino", "hf:microsoft/rad-dino")
    assert str(ModelId.parse("timm:resnet50.a1_in1k")) == "timm:resnet50.a1_in1k"


@pytest.mark.parametrize("bad", ["resnet50", "pypi:x", "hf:", "hf:../etc", "local:a b", "hf:a//b"])
def test_model_id_rejects_malformed(bad):
    with pytest.raises(InvalidModelId) as e:
        ModelId.parse(bad)
    assert "source:name" in str(e.value) or "source" in str(e.value) or "name" in str(e.value)


def test_slugify_documented_rule():
    assert slugify("My Model (v2)") == "My-Model-v2"
    assert slugify("  ") == "model"


@pytest.mark.parametrize(
    "lic,cls",
    [("apache-2.0", "permissive"), ("MIT", "permissive"), ("cc-by-nc-4.0", "non-commercial"),
     ("gpl-3.0", "copyleft"), ("cc-by-sa-4.0", "copyleft"), ("openrail", "restricted"), ("llama3", "restricted"),
     (None, "unknown"), ("other", "unknown"), ("some-custom-license", "unknown")],
)
def test_license_class(lic, cls):
    assert vocab.license_class(lic) == cls


def test_missing_license_is_unknown_never_guessed():
    r = ModelRecord(id="local:x")
    assert r.license is None and r.license_class == "unknown"


def test_pretraining_from_timm_tags():
    assert vocab.pretraining_from_tag("clip_laion2b_ft_in12k_in1k") == ["laion2b", "in12k", "in1k"]
    assert vocab.pretraining_from_tag("fb_swsl_ig1b_ft_in1k") == ["ig1b", "in1k"]
    assert vocab.pretraining_from_tag("a1_in1k") == ["in1k"]
    assert vocab.pretraining_from_tag("openai") == ["openai-wit"]
    assert vocab.pretraining_from_tag("mae") == []


def test_record_row_roundtrip_and_hash():
    r = ModelRecord(id="timm:resnet50.a1_in1k", tasks=["image-classification"], domains=["natural-images"],
                    params=25, results={"imagenet_top1": 81.2}, mean=[0.5, 0.5, 0.5], license="Apache-2.0")
    assert r.imagenet_top1 == 81.2 and r.license == "apache-2.0" and r.license_class == "permissive"
    back = ModelRecord.from_row(r.to_row())
    assert back == r
    h = r.content_hash()
    r.indexed_at = "2030-01-01"
    assert r.content_hash() == h  # when it was indexed is not a fact about the model
    r.params = 26
    assert r.content_hash() != h


def test_validate_names_the_bad_field():
    with pytest.raises(ValueError, match="domain"):
        ModelRecord(id="local:x", domains=["nope"]).validate()
    with pytest.raises(ValueError, match="modality"):
        ModelRecord(id="local:x", modality="smell").validate()
    with pytest.raises(ValueError, match="params"):
        ModelRecord(id="local:x", params=-3).validate()
