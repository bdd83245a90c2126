"""zoo.plan: the transfer-plan rules (pure functions) and apply_plan on REAL offline weights.

Rules: small / medium / large data budgets, far domain shift, measured probe vs fine-tune, frozen encoders.
apply_plan: CIFAR ResNet20 (partial / full / linear probe: which parameters train, the param-group
learning rates, a real optimizer step that changes only trainable parameters), all-MiniLM-L6-v2 with
LoRA through peft, an ONNX encoder (linear probe, with the reason). CLI: ``zoo plan`` on a small image
folder built from sklearn digits.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from zoo import plan_rules  # noqa: E402
from zoo.errors import UsageError  # noqa: E402
from zoo.plan import RISK_KINDS, TransferPlan, apply_plan, find_blocks, make_plan, score_gap  # noqa: E402
from zoo.sources.manifest import iter_records  # noqa: E402

MANIFEST = Path(__file__).resolve().parents[1] / "zoo" / "manifests" / "offline.yaml"
RECORDS = {r.id: r for r in iter_records(MANIFEST)}
RESNET = RECORDS["local:cifar_resnet20.c10"]
MINILM = RECORDS["local:all-MiniLM-L6-v2"]
ONNX = RECORDS["local:paraphrase-MiniLM-L3-v2.onnx"]
GLOVE = RECORDS["local:glove-6b-50d.avg"]


def plan(record=RESNET, per_class=100, n_classes=10, **kw) -> TransferPlan:
    return make_plan(record, samples_per_class=per_class, n_classes=n_classes, **kw)


# ------------------------------------------------------------------------------------------ rules as data


def test_rules_are_documented_and_unique():
    ids = [r.id for r in plan_rules.RULES]
    assert len(ids) == len(set(ids))
    for r in plan_rules.RULES:
        assert r.kind in ("strategy", "setting", "risk"), r.id
        assert r.source and r.why, f"rule {r.id} lacks its source or explanation"
        if r.kind == "risk":
            assert r.then["risk"] in RISK_KINDS and r.then["level"] in ("low", "medium", "high")
    # the strategy rules end with a catch-all, so every plan has a strategy
    assert [r for r in plan_rules.RULES if r.kind == "strategy"][-1].when == {}


def test_fired_rules_exist_and_carry_sources():
    p = plan(per_class=100, shift=0.5, score_gap=-0.2)
    known = {r.id for r in plan_rules.RULES}
    assert p.rules_fired and set(p.rules_fired) <= known
    assert set(p.sources) == set(p.rules_fired)


# ------------------------------------------------------------------------------------------ data budgets


def test_small_budget_is_a_linear_probe():
    p = plan(per_class=10)
    assert p.strategy == "linear_probe"
    assert "small-data-probe" in p.rules_fired
    assert p.blocks_to_unfreeze == 0 and p.lr_backbone == 0.0 and p.layer_decay is None
    assert p.lr_head == pytest.approx(1e-2)  # the probe's lr, measured (bench_plan leave-one-task-out)
    assert p.lora is None
    assert p.signals["per_class"] == 10 and p.signals["n_classes"] == 10
    assert "10 examples per class" in p.why


def test_medium_budget_unfreezes_top_blocks_with_decayed_lrs():
    p = make_plan(RESNET, samples_per_class={"a": 90, "b": 100, "c": 140})
    assert p.strategy == "partial_finetune"
    assert "medium-data-partial" in p.rules_fired
    assert p.signals["per_class"] == 100 and p.signals["min_per_class"] == 90 and p.signals["n_classes"] == 3
    assert p.n_blocks == 9  # ResNet20: 3 stages x 3 BasicBlocks
    assert p.blocks_to_unfreeze == round(0.25 * 9)
    # the lowest block learns at 0.1x the top one (ELECTRA-style decay spread over the depth)
    assert math.isclose(p.layer_decay ** 8, plan_rules.DEFAULTS["bottom_lr_ratio"], rel_tol=1e-9)
    assert p.lr_backbone > 0 and p.lr_head > p.lr_backbone
    assert p.early_stopping["monitor"] == "val_loss" and p.early_stopping["patience"] >= 1
    assert p.risk("forgetting").level == "low"


def test_large_budget_is_a_full_finetune():
    p = plan(per_class=1000)
    assert p.strategy == "full_finetune"
    assert "large-data-full" in p.rules_fired
    assert p.blocks_to_unfreeze == p.n_blocks == 9
    assert p.risk("forgetting").level == "medium" and "forget-full" in p.risk("forgetting").rules
    assert p.risk("overfitting").level == "low"


def test_few_samples_get_more_epochs_and_an_overfitting_warning():
    p = plan(per_class=30)
    assert p.strategy == "partial_finetune"
    assert p.epochs == 20 and "few-samples-more-epochs" in p.rules_fired
    over = p.risk("overfitting")
    assert over.level == "high" and "30 examples per class" in over.signal


def test_large_shift_unfreezes_everything_when_data_allows():
    p = plan(per_class=150, shift=0.8)
    assert p.strategy == "full_finetune" and "far-domain-full" in p.rules_fired
    # milder layer-wise decay: the lower blocks must move more on a far domain
    assert "full-less-decay-far-domain" in p.rules_fired
    assert math.isclose(p.layer_decay ** 8, 0.3, rel_tol=1e-9)
    nt = p.risk("negative_transfer")
    assert nt.level == "medium" and "0.80" in nt.signal


def test_large_shift_with_little_data_warns_of_negative_transfer():
    p = plan(per_class=10, shift=0.8)
    # far-domain images with a tiny budget: partial fine-tune (bench_plan leave-one-task-out), risk still said
    assert p.strategy == "partial_finetune" and p.rules_fired[0] == "far-domain-tiny-partial"
    nt = p.risk("negative_transfer")
    assert nt.level == "high" and "negative-transfer-far-small" in nt.rules
    assert "shift 0.80" in nt.signal and "10 examples per class" in nt.signal


def test_moderate_shift_unfreezes_more_blocks():
    near, moderate = plan(per_class=100, shift=0.1), plan(per_class=100, shift=0.3)
    assert near.strategy == moderate.strategy == "partial_finetune"
    assert moderate.blocks_to_unfreeze > near.blocks_to_unfreeze
    assert "partial-more-blocks-moderate-shift" in moderate.rules_fired


def test_shift_bands_follow_zoo_shift():
    shift = pytest.importorskip("zoo.shift")
    assert plan_rules.MODERATE_SHIFT == shift.NEAR and plan_rules.FAR_SHIFT == shift.FAR


def test_unmeasured_shift_is_said():
    p = plan(per_class=100)
    assert p.signals["shift"] is None
    assert any("shift not measured" in n.lower() for n in p.notes)
    assert not any("shift" in r for r in p.rules_fired)


def test_measured_probe_vs_finetune_outranks_the_budget_rules():
    ft = plan(per_class=10, probe_vs_finetune={"probe": 0.70, "finetune": 0.80})
    assert ft.strategy == "partial_finetune" and ft.rules_fired[0] == "measured-finetune-wins"
    lp = plan(per_class=1000, probe_vs_finetune={"probe": 0.90, "finetune": 0.88})
    assert lp.strategy == "linear_probe" and lp.rules_fired[0] == "measured-probe-wins"
    assert "0.900" in lp.why and "0.880" in lp.why


def test_probe_near_chance_and_score_gap_raise_negative_transfer():
    p = plan(per_class=100, n_classes=4, probe_vs_finetune={"probe": 0.27, "finetune": 0.27})
    assert p.risk("negative_transfer").level == "high"
    q = plan(per_class=100, score_gap=-0.12)
    assert q.risk("negative_transfer").level == "medium" and "-0.120" in q.risk("negative_transfer").signal


def test_score_gap_from_candidates():
    class C:
        def __init__(self, id, knn):
            self.id, self.data_scores = id, {"knn": knn}

    cands = [C("a", 0.8), C("b", 0.9), C("c", 0.7)]
    assert score_gap(cands, "a") == pytest.approx(-0.1)
    assert score_gap(cands, "b") == pytest.approx(0.1)
    assert score_gap(cands[:1], "a") is None


def test_transformer_budgets():
    small = plan(MINILM, per_class=10, n_classes=2)
    assert small.strategy == "linear_probe" and small.epochs == 30  # no transformer epochs for a probe
    assert any("EDA" in a for a in small.augmentation)
    # a 22M encoder with a medium budget: partial fine-tune (LoRA measured worse at this size), transformer lrs
    mid = plan(MINILM, per_class=100, n_classes=2)
    assert mid.strategy == "partial_finetune" and "transformer-lora-medium" not in mid.rules_fired
    assert mid.lr_backbone == pytest.approx(5e-5) and mid.warmup_ratio == pytest.approx(0.1)
    big = plan(MINILM, per_class=1000, n_classes=2)
    assert big.strategy == "full_finetune" and big.n_blocks == 6
    assert big.lr_backbone == pytest.approx(5e-5) and big.warmup_ratio == pytest.approx(0.1)


def test_larger_transformer_gets_lora_with_rank_and_targets():
    mpnet = RECORDS["local:all-mpnet-base-v2"]  # 110M parameters
    p = plan(mpnet, per_class=100, n_classes=2)
    assert p.strategy == "lora" and "transformer-lora-medium" in p.rules_fired
    assert p.lora == {"rank": 8, "alpha": 16, "dropout": 0.1, "target_modules": ["q", "v"]}
    assert p.blocks_to_unfreeze == 0 and p.lr_backbone == pytest.approx(5e-4) and p.n_blocks == 12
    assert p.risk("forgetting").level == "low"
    forced = plan(MINILM, per_class=100, n_classes=2, strategy="lora")
    assert forced.strategy == "lora" and forced.lora["target_modules"] == ["query", "value"]


@pytest.mark.parametrize("record,word", [(ONNX, "ONNX"), (GLOVE, "GloVe")])
def test_frozen_encoders_get_a_linear_probe_with_the_reason(record, word):
    for forced in (None, "full_finetune"):
        p = make_plan(record, samples_per_class=5000, n_classes=2, strategy=forced)
        assert p.strategy == "linear_probe"
        assert p.rules_fired[0] == "frozen-encoder"
        assert any(word in n and "cannot be fine-tuned" in n for n in p.notes)


def test_forced_strategy_uses_its_settings():
    p = plan(per_class=10, strategy="full_finetune")
    assert p.strategy == "full_finetune" and p.blocks_to_unfreeze == 9
    assert p.risk("overfitting").level == "high"
    lora_on_cnn = plan(per_class=100, strategy="lora")
    assert lora_on_cnn.strategy == "partial_finetune" and any("LoRA" in n for n in lora_on_cnn.notes)


def test_bad_inputs_are_usage_errors():
    with pytest.raises(UsageError):
        plan(shift=1.5)
    with pytest.raises(UsageError):
        plan(strategy="retrain")
    with pytest.raises(UsageError):
        plan(per_class={})


def test_build_rules_moves_only_the_thresholds():
    rules = plan_rules.build_rules(lp_below=200, full_from=5000)
    p = make_plan(RESNET, samples_per_class=100, n_classes=10, rules=rules)
    assert p.strategy == "linear_probe"
    assert [r.id for r in rules] == [r.id for r in plan_rules.RULES]


# ------------------------------------------------------------------------------------------ rules from bench_plan's LOTO


def test_near_domain_text_stays_on_a_linear_probe_up_to_the_measured_budgets():
    assert plan_rules.NEAR_TEXT_PROBE_BELOW == 2000
    for n in (10, 100, 1000, 1999):
        p = plan(MINILM, per_class=n, n_classes=2, shift=0.08)
        assert p.strategy == "linear_probe" and p.rules_fired[0] == "near-text-probe", n
        assert p.lr_backbone == 0.0 and p.lr_head == pytest.approx(1e-2)
        assert "shift 0.08" in p.why
    assert "bench_plan" in p.sources["near-text-probe"] and "leave-one-task-out" in p.sources["near-text-probe"]
    # above the measured range the budget rules apply again
    big = plan(MINILM, per_class=2000, n_classes=2, shift=0.08)
    assert big.strategy == "full_finetune" and big.rules_fired[0] == "large-data-full"
    # only near-domain, measured, text: moderate shift, unmeasured shift and near-domain images fine-tune as before
    assert plan(MINILM, per_class=100, n_classes=2, shift=0.25).strategy == "partial_finetune"
    assert plan(MINILM, per_class=100, n_classes=2).strategy == "partial_finetune"
    img = plan(RESNET, per_class=100, shift=0.1)
    assert img.strategy == "partial_finetune" and "near-text-probe" not in img.rules_fired
    # a measurement on the user's data still outranks it
    ft = plan(MINILM, per_class=100, n_classes=2, shift=0.08, probe_vs_finetune={"probe": 0.7, "finetune": 0.8})
    assert ft.strategy == "partial_finetune" and ft.rules_fired[0] == "measured-finetune-wins"


def test_far_images_with_tiny_budgets_get_a_partial_finetune():
    assert plan_rules.TINY_PARTIAL_SHIFT == 0.4
    p = plan(per_class=10, shift=0.45)
    assert p.strategy == "partial_finetune" and p.rules_fired[0] == "far-domain-tiny-partial"
    assert p.blocks_to_unfreeze == round(0.5 * 9)  # moderate-or-more shift: half the blocks
    assert p.epochs == 20 and p.risk("overfitting").level == "high"
    assert "shift 0.45" in p.why and "bench_plan" in p.sources["far-domain-tiny-partial"]
    # below the threshold, or without a measured shift: the probe stays
    assert plan(per_class=10, shift=0.39).strategy == "linear_probe"
    assert plan(per_class=10).strategy == "linear_probe"
    # images only: far-domain text with tiny data was not measured
    txt = plan(MINILM, per_class=10, n_classes=2, shift=0.9)
    assert txt.strategy == "linear_probe" and "far-domain-tiny-partial" not in txt.rules_fired
    # from LP_BELOW on, the budget rules decide (medium-data-partial, far-domain-full)
    assert plan(per_class=50, shift=0.45).rules_fired[0] == "medium-data-partial"
    assert plan(per_class=150, shift=0.8).rules_fired[0] == "far-domain-full"
    lp = plan(per_class=10, shift=0.6, probe_vs_finetune={"probe": 0.9, "finetune": 0.85})
    assert lp.strategy == "linear_probe" and lp.rules_fired[0] == "measured-probe-wins"


def test_build_rules_can_switch_the_fitted_rules_off():
    before = plan_rules.build_rules(near_text_probe_below=None, tiny_partial_shift=None)
    ids = {r.id for r in before}
    assert "near-text-probe" not in ids and "far-domain-tiny-partial" not in ids
    assert ids < {r.id for r in plan_rules.RULES}
    assert make_plan(MINILM, samples_per_class=100, n_classes=2, shift=0.08, rules=before).strategy == "partial_finetune"
    assert make_plan(RESNET, samples_per_class=10, n_classes=10, shift=0.45, rules=before).strategy == "linear_probe"
    moved = plan_rules.build_rules(near_text_probe_below=500, tiny_partial_shift=0.5)
    assert make_plan(MINILM, samples_per_class=1000, n_classes=2, shift=0.08, rules=moved).strategy == "full_finetune"
    assert make_plan(RESNET, samples_per_class=10, n_classes=10, shift=0.45, rules=moved).strategy == "linear_probe"


def _bench():
    import sys

    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    from benchmarks import bench_plan

    return bench_plan


def _entry(task, model, budget, shift, acc, modality):
    k = 2
    return {"task": task, "model": model, "budget": budget, "seed": 0, "per_class": [budget] * k, "n_classes": k,
            "plan": {"strategy": "linear_probe", "signals": {"shift": shift, "modality": modality}},
            "results": {st: {"accuracy": a, **({"lr_grid": {"0.001": a, "0.003": a, "0.01": a}}
                                                 if st == "linear_probe" else {})}
                        for st, a in acc.items()}}


def test_bench_loto_never_sees_the_held_out_task_and_the_bootstrap_is_seeded():
    bp = _bench()
    m = "local:cifar_resnet20.c10"
    lp_wins = {"linear_probe": 0.9, "partial_finetune": 0.5, "full_finetune": 0.5}
    ft_wins = {"linear_probe": 0.5, "partial_finetune": 0.9, "full_finetune": 0.8}
    docs = [_entry(t, m, b, 0.3, lp_wins, "image") for t in ("a", "b", "c") for b in (10, 100)]
    docs += [_entry("d", m, b, 0.3, ft_wins, "image") for b in (10, 100)]
    pol = bp._Policies(docs, plan_rules, 0.01)
    current = {**bp.rule_params(plan_rules), "lp_lr": 0.01}
    res = bp.leave_one_task_out(pol, current, quiet=True)
    fitted = {r["task"]: r["fitted"] for r in res["rows"]}
    # a, b, c all say "probe at 100": the fold holding out d fits a probe there and pays for it on d
    assert bp._Policies(docs, plan_rules, 0.01).picks(fitted["d"])[-1] == "linear_probe"
    row_d = next(r for r in res["rows"] if r["task"] == "d")
    assert row_d["fitted_cost"] > row_d["current_cost"]
    # changing d's results cannot change the fit of d's own fold
    docs2 = docs[:-2] + [_entry("d", m, b, 0.3, lp_wins, "image") for b in (10, 100)]
    res2 = bp.leave_one_task_out(bp._Policies(docs2, plan_rules, 0.01), current, quiet=True)
    assert next(r for r in res2["rows"] if r["task"] == "d")["fitted"] == fitted["d"]
    # paired comparison over tasks: deterministic, and the sign says who loses less
    cost, ref = np.array([0.0] * 6 + [0.4, 0.4]), np.array([0.1] * 8)
    one, two = bp._paired_vs(pol, cost, ref), bp._paired_vs(pol, cost, ref)
    assert one == two and one["tasks"] == ["a", "b", "c", "d"]
    assert one["diff"] == pytest.approx([-0.1, -0.1, -0.1, 0.3]) and one["better"] == 3 and one["worse"] == 1
    assert one["ci95"][0] <= one["mean"] <= one["ci95"][1]
    assert 0.0 < one["p_boot_policy_better"] < 1.0


# ------------------------------------------------------------------------------------------ apply_plan (real weights)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Tiny batches: one thread avoids OpenMP stalls on a shared, oversubscribed machine."""
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _load(record):
    from zoo.backbones import load_backbone

    return load_backbone(record, device="cpu")


def _step(pm, x, y):
    import torch

    opt = pm.optimizer()
    pm.train()
    loss = torch.nn.functional.cross_entropy(pm.head(pm.model(x)), y)
    opt.zero_grad()
    loss.backward()
    opt.step()


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.slow
def test_apply_partial_freezes_all_but_the_last_blocks_and_steps_only_those():
    import torch

    p = plan(per_class=100, n_classes=3)
    pm = apply_plan(_load(RESNET), p, 3)
    model = pm.model
    assert pm.plan.strategy == "partial_finetune" and pm.unfrozen_blocks == ["layer3.1", "layer3.2"]
    trainable = {n for n, q in model.named_parameters() if q.requires_grad}
    assert trainable and all(n.startswith(("layer3.1.", "layer3.2.")) for n in trainable)
    assert {n for n, _ in model.named_parameters() if n.startswith(("layer3.1.", "layer3.2."))} == trainable
    assert pm.head.out_features == 3 and all(q.requires_grad for q in pm.head.parameters())
    total = sum(q.numel() for q in model.parameters()) + sum(q.numel() for q in pm.head.parameters())
    assert pm.trainable_params + pm.frozen_params == total
    assert pm.trainable_params == sum(q.numel() for g in pm.param_groups for q in g["params"])

    # param groups: the head at lr_head, the top block at lr_backbone, the next one down x decay
    by_name = {g["name"]: g for g in pm.param_groups}
    assert by_name["head"]["lr"] == p.lr_head
    assert by_name["block.8:layer3.2"]["lr"] == pytest.approx(p.lr_backbone)
    assert by_name["block.7:layer3.1"]["lr"] == pytest.approx(p.lr_backbone * p.layer_decay)
    assert by_name["head.no_decay"]["weight_decay"] == 0.0 and by_name["head"]["weight_decay"] == p.weight_decay
    in_groups = {id(q) for g in pm.param_groups for q in g["params"]}
    assert in_groups == {id(q) for q in model.parameters() if q.requires_grad} | {id(q) for q in pm.head.parameters()}

    # one real step: trainable parameters move, frozen ones (and frozen BatchNorm statistics) do not
    before, head_before = _snapshot(model), _snapshot(pm.head)
    g = torch.Generator().manual_seed(0)
    _step(pm, torch.randn(8, 3, 32, 32, generator=g), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]))
    after = _snapshot(model)
    for name, q in model.named_parameters():
        changed = not torch.equal(before[name], after[name])
        assert changed == q.requires_grad, name
    assert torch.equal(before["layer1.0.bn1.running_mean"], after["layer1.0.bn1.running_mean"])
    assert not torch.equal(before["layer3.2.bn2.running_mean"], after["layer3.2.bn2.running_mean"])
    assert not torch.equal(head_before["weight"], pm.head.weight)


@pytest.mark.slow
def test_apply_full_trains_everything_stem_lowest():
    p = plan(per_class=1000, n_classes=10)
    pm = apply_plan(_load(RESNET), p, 10)
    assert all(q.requires_grad for q in pm.model.parameters()) and pm.frozen_params == 0
    lrs = {g["name"]: g["lr"] for g in pm.param_groups}
    assert lrs["stem"] == pytest.approx(p.lr_backbone * p.layer_decay ** 9)
    assert min(lrs.values()) == lrs["stem"] or min(lrs.values()) == lrs.get("stem.no_decay")
    assert len(pm.unfrozen_blocks) == 9


@pytest.mark.slow
def test_apply_linear_probe_keeps_the_backbone_frozen_in_eval():
    import torch

    pm = apply_plan(_load(RESNET), plan(per_class=5), 2)
    assert not any(q.requires_grad for q in pm.model.parameters())
    assert [g["name"] for g in pm.param_groups] == ["head", "head.no_decay"]
    before = _snapshot(pm.model)
    _step(pm, torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 0, 1]))
    assert all(torch.equal(v, pm.model.state_dict()[k]) for k, v in before.items())  # BN stats untouched too


def test_find_blocks_on_the_offline_architectures():
    torch = pytest.importorskip("torch")
    from zoo.nets.cifar_resnet import CifarResNet

    blocks = find_blocks(CifarResNet(32))
    assert len(blocks) == 15 and blocks[0].name == "layer1.0" and blocks[-1].name == "layer3.4"
    seq = torch.nn.Sequential(torch.nn.Linear(2, 2))
    assert find_blocks(seq) == []


@pytest.fixture(scope="module")
def minilm():
    from zoo.errors import WeightsUnavailable

    try:
        return _load(MINILM)
    except WeightsUnavailable as e:
        pytest.skip(str(e))


@pytest.mark.slow
def test_lora_on_minilm_adds_trainable_adapters_and_freezes_the_base(minilm):
    pytest.importorskip("peft")
    import torch

    p = plan(MINILM, per_class=100, n_classes=2, strategy="lora")
    assert p.strategy == "lora"
    pm = apply_plan(minilm, p, 2)
    model = pm.model
    assert pm.plan.strategy == "lora" and pm.plan.lora["target_modules"] == ["query", "value"]
    names = {n for n, q in model.named_parameters() if q.requires_grad}
    assert names and all("lora_" in n for n in names)
    assert len([n for n in names if "lora_A" in n]) == 12  # query + value in each of the 6 layers
    base = [n for n, _ in model.named_parameters() if "lora_" not in n]
    assert base and not any(dict(model.named_parameters())[n].requires_grad for n in base)
    assert pm.trainable_params < 0.01 * (pm.trainable_params + pm.frozen_params)
    lora_groups = [g for g in pm.param_groups if g["name"].startswith("lora")]
    assert lora_groups and all(g["lr"] == pytest.approx(p.lr_backbone) for g in lora_groups)

    before = _snapshot(model)
    opt = pm.optimizer()
    pm.train()
    batch = pm.preprocess(["a wonderful, moving film", "dull and far too long", "great acting", "a mess"])
    loss = torch.nn.functional.cross_entropy(pm.head(model(batch)["sentence_embedding"]), torch.tensor([1, 0, 1, 0]))
    opt.zero_grad()
    loss.backward()
    opt.step()
    after = _snapshot(model)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("lora_" in k for k in changed)
    assert any("lora_B" in k for k in changed)  # B starts at zero: the adapter now changes the output


@pytest.mark.slow
def test_onnx_encoder_applies_as_a_linear_probe_with_reason():
    from zoo.errors import WeightsUnavailable

    try:
        lb = _load(ONNX)
    except WeightsUnavailable as e:
        pytest.skip(str(e))
    p = make_plan(ONNX, samples_per_class=2000, n_classes=2)
    assert p.strategy == "linear_probe" and "onnxruntime" in " ".join(p.notes)
    pm = apply_plan(lb, p, 2)
    assert pm.model is None and pm.plan.strategy == "linear_probe"
    assert [g["name"] for g in pm.param_groups] == ["head", "head.no_decay"]
    assert pm.frozen_params == ONNX.params and pm.trainable_params == 384 * 2 + 2
    forced = apply_plan(_load(ONNX), plan(ONNX, per_class=2000, n_classes=2, strategy="full_finetune"), 2)
    assert forced.plan.strategy == "linear_probe"


# ------------------------------------------------------------------------------------------ CLI


def _digits_folder(root: Path, per_class: int = 12, classes: int = 3) -> Path:
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for c in range(classes):
        d = root / str(c)
        d.mkdir(parents=True)
        for i, img in enumerate(digits.images[digits.target == c][:per_class]):
            Image.fromarray((img * (255.0 / 16.0)).astype(np.uint8), mode="L").resize((32, 32)).save(d / f"{i:03d}.png")
    return root


def test_cli_plan_prints_plan_rules_and_signals(tmp_path):
    from click.testing import CliRunner

    from zoo.cli import cli

    root = _digits_folder(tmp_path / "digits")
    runner = CliRunner()
    res = runner.invoke(cli, ["plan", "--data", str(root), "--model", "local:cifar_resnet20.c10", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "Plan for local:cifar_resnet20.c10" in res.output
    # sklearn digits look far from CIFAR-10 to ResNet20 (measured shift >= 0.4) and 12 per class is tiny
    assert "partial fine-tune" in res.output and "far-domain-tiny-partial" in res.output
    assert "Rules fired" in res.output and "Signals:" in res.output and "per_class 12" in res.output
    assert "overfitting" in res.output and "negative_transfer" in res.output

    res = runner.invoke(cli, ["plan", "--data", str(root), "--model", "local:cifar_resnet20.c10", "--json",
                              "--device", "cpu"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["strategy"] == "partial_finetune" and doc["model_id"] == "local:cifar_resnet20.c10"
    assert doc["rules_fired"][0] == "far-domain-tiny-partial" and doc["signals"]["shift"] >= plan_rules.TINY_PARTIAL_SHIFT
    assert doc["signals"]["per_class"] == 12 and doc["signals"]["n_classes"] == 3
    assert {r["kind"] for r in doc["risks"]} == set(RISK_KINDS)


def test_cli_plan_unknown_model_is_one_line(tmp_path):
    from click.testing import CliRunner

    from zoo.cli import cli

    root = _digits_folder(tmp_path / "d", per_class=3, classes=2)
    res = CliRunner().invoke(cli, ["plan", "--data", str(root), "--model", "local:cifar_resnet21.c10"])
    assert res.exit_code != 0 and "Unknown model id" in res.output and "Traceback" not in res.output
