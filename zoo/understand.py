"""Task understanding: modality and domain tags inferred from a task description, each with a
confidence, by comparing the task's embedding with the phrases in ``zoo.prototypes`` and, for the
modality, with the registry's own model cards (the best-matching cards of each modality)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from zoo import dataset_names, prototypes, vocab
from zoo.config import MANIFEST_DIR
from zoo.vectors import EmbeddingStore

# Softmax temperatures over cosine similarities, and how close to the best domain a second tag
# must be to be kept. Chosen on the dev split of benchmarks/tasks/descriptions.yaml.
MODALITY_TEMPERATURE = 0.03
DOMAIN_TEMPERATURE = 0.03
DOMAIN_KEEP_RATIO = 0.5
MAX_DOMAINS = 3
SECONDARY_MODALITY = 0.5  # weight of a modality that a domain serves but is not its main one
# Card evidence: per modality, the mean cosine of its CARD_TOP best-matching model cards, softmaxed at
# CARD_TEMPERATURE and weighed CARD_WEIGHT (in log space) against the phrases. The cards carry each
# field's jargon ("MIMIC", "MultiWOZ", "sketch") that a handful of phrases cannot. Chosen on dev + test,
# judged on a fresh held-out set; see BENCHMARKS.md.
CARD_TOP = 3
CARD_TEMPERATURE = 0.03
CARD_WEIGHT = 0.5
# Quoted spans in a task are examples of its content (a search query, a label, a message): their
# topic words say nothing about the input, and "type 'red bike on a brick wall' and get the photos"
# must not read as an image task. The modality evidence sees them as this placeholder; the domain
# evidence and the ranking see the text as written. Chosen on the four looked-at description sets,
# judged on a fresh one; see BENCHMARKS.md.
QUOTE_PLACEHOLDER = "a phrase"
_QUOTED = re.compile(r"""(?<!\w)['"‘“]([^'"‘’“”]{2,80})['"’”](?!\w)""")
# Named datasets ("LibriSpeech test-other WER", "fine-tune on CheXpert"): when a task names datasets
# of zoo.dataset_names, the modality and domain distributions are mixed, NAMED_MIX to 1 - NAMED_MIX,
# with the named datasets' own (a dataset's tags after its first count NAMED_SECONDARY). A short jargon
# query embeds poorly ("EuroSAT" reads as European languages) while the name is exact; a mixture, not a
# product, so that the lexicon's say does not depend on how sharp the embedding's softmax is. See
# BENCHMARKS.md for how this was chosen and judged.
NAMED_MIX = 0.5
NAMED_SECONDARY = 0.5
# A named image (audio, video) dataset says the input is pictures (sounds, clips), not whether the model
# also reads text: "zero-shot ImageNet classification from text prompts" and "COCO image captioning" are
# multimodal tasks. So that dataset's named share is split between its modality and multimodal in the
# proportion the description's own evidence gives them. Chosen on the seven looked-at description sets
# (it turned p79 and q69 right, none wrong; giving multimodal a fixed part instead broke bare names
# such as "EuroSAT"); judged on holdout7, see BENCHMARKS.md.
JOINT_WITH_TEXT: tuple[str, ...] = ("image", "audio", "video")
# The modality posterior is raised to this power before it is reported: the product of sharp softmaxes
# above is overconfident (wrong modalities at 99 %). A power changes no decision, only the confidence.
# Fitted leave-one-writer-out on the labelled descriptions (bench_recommend.py --calibrate).
MODALITY_CALIBRATION = 0.6
# Below this confidence the output says the modality is uncertain and names the runner-up.
UNSURE_BELOW = 0.7
# Out of scope: a task whose best out-of-scope phrase kind (prototypes.OUT_OF_SCOPE_PHRASES, the mean
# of its 2 best phrases) beats the best modality or domain phrase by more than this cosine margin is
# flagged, unless it names a known dataset (all of which are in scope) or its modality was given.
# Chosen on 16 hand-written out-of-scope tasks and the 327 in-scope descriptions (none above 0.062).
SCOPE_MARGIN = 0.10
# Labelled task descriptions (TASK_EXAMPLES, drawn by scripts/build_task_examples.py from the benchmark's
# description sets, never its test half) join the modality phrases as examples of their modality: a
# modality's evidence is the mean of its 2 best matches among its phrases and its examples. Phrases name a
# modality; examples show how people ask for one ("type the names of the new items and have them found in
# the pictures" is an image+text task whatever its topic words). The out-of-scope check keeps to the
# phrases. With each writer's set left out in turn (as bench_recommend.py reports every drawn set), the
# 727 looked-at descriptions went from 39 modality misses to 14; on two fresh sets (160) from 9 to 4,
# under a rule committed before their one run. A modality needs examples of its own: with 2 video
# descriptions among them, video tasks fell from 15/30 to 6/30 on a fresh video-heavy set, and 60 video
# examples written blind (source examples-video) took them to 18/30; see BENCHMARKS.md.
TASK_EXAMPLES = MANIFEST_DIR / "task_examples.json"
# Base rates: a task is multimodal only when it clearly names both sides.
MODALITY_PRIOR = {"image": 1.0, "text": 1.0, "audio": 1.0, "video": 1.0, "multimodal": 0.5}
# Modalities that a domain serving them weighs as much as its main one. Video had a prior of 0.5 and a
# domain's second say (0.5) when the task examples held no video: 4 to 1 against it, with which blind
# video tasks that the evidence read as video ("films every match", "how the expression changes over
# time") still came out as images or speech. With video examples of its own, video stands level with
# image in every domain of pictures (zoo.prototypes.DOMAIN_MODALITIES). See BENCHMARKS.md (holdout14).
FULL_SAY: tuple[str, ...] = ("video",)


@dataclass
class TaskUnderstanding:
    """How a task description (``text``) was read.

    ``modality`` and ``modality_source`` ("given" with --modality, "data" when the sample's kind set it,
    "inferred" from the words, then with ``modality_confidence`` and every modality's ``modality_scores``;
    ``modality_given`` is True only for "given");
    ``domains``: the inferred domain tags with their confidence (``domain_scores``: every compatible tag);
    ``datasets``: known datasets the task names; ``out_of_scope``: the kind of input no registry model reads,
    when the task reads as one; ``language``: the description's language when the description model was not
    trained on it. :meth:`summary` and :meth:`notes` say it in words.
    """

    text: str
    modality: str
    modality_confidence: float
    modality_given: bool  # True only when the caller passed the modality (--modality / modality=)
    domains: dict[str, float]  # inferred tags -> confidence, best first
    modality_scores: dict[str, float] = field(default_factory=dict)
    domain_scores: dict[str, float] = field(default_factory=dict)  # every compatible tag
    datasets: list[str] = field(default_factory=list)  # known datasets the task names, as evidence
    out_of_scope: str | None = None  # the kind of input no registry model reads, when the task reads as one
    language: str | None = None  # the description's language, when the description model was not trained on it
    # Where the modality came from: "given" (--modality), "data" (the sample's kind: images or texts) or
    # "inferred" (from the description, with ``modality_confidence``). Empty: read from ``modality_given``.
    modality_source: str = ""

    def __post_init__(self) -> None:
        if not self.modality_source:
            self.modality_source = "given" if self.modality_given else "inferred"

    @property
    def modality_fixed(self) -> bool:
        """The modality was not inferred (given, or set by the data): no doubt, no scope warning."""
        return self.modality_source in ("given", "data")

    def modality_how(self, *, long: bool = False) -> str:
        """How the modality was decided, in words: "given" only when the caller passed it."""
        if self.modality_source == "given":
            return "given with --modality" if long else "given"
        if self.modality_source == "data":
            return "from the data" + (": the sample holds this kind of input" if long else "")
        return (f"inferred, confidence {self.modality_confidence:.0%}" if long
                else f"{self.modality_confidence:.0%}")

    def scope_warning(self) -> str | None:
        if self.out_of_scope is None:
            return None
        return (f"Out of scope? This reads like a task on {self.out_of_scope}, which no model in the registry reads "
                f"(it holds {', '.join(vocab.MODALITIES)} backbones); the list is only the nearest match in "
                "scope. If the input is one of those, describe it or pass --modality.")

    def language_note(self) -> str | None:
        if self.language is None:
            return None
        return (f"The description is in {self.language}, which the description model was not trained on: "
                "the modality and domain tags read from it may be wrong. Describe the task in English, or pass "
                "--modality (and check the domain tags).")

    def notes(self) -> list[str]:
        """Every caveat on this understanding, one line each: scope, language, an unsure modality."""
        return [line for line in (self.scope_warning(), self.language_note(), self.doubt()) if line]

    def doubt(self) -> str | None:
        """A line for an inferred modality below UNSURE_BELOW: the runner-up, and how to choose it."""
        if self.modality_fixed or self.out_of_scope or self.modality_confidence >= UNSURE_BELOW:
            return None
        other = max((m for m in self.modality_scores if m != self.modality), key=self.modality_scores.__getitem__)
        return (f"Unsure of the modality: {self.modality} {self.modality_confidence:.0%}, {other} "
                f"{self.modality_scores[other]:.0%}. If the model should read {other}, pass --modality {other}.")

    def summary(self) -> str:
        how = self.modality_how()
        doms = ", ".join(f"{d} ({c:.0%})" for d, c in self.domains.items()) or "none"
        named = f"; names {', '.join(self.datasets)}" if self.datasets else ""
        return f"modality {self.modality} ({how}); domains {doms}{named}"


@lru_cache(maxsize=1)
def task_examples() -> tuple[dict[str, str], ...]:
    """The labelled descriptions of :data:`TASK_EXAMPLES`: ``id``, ``source`` (the set, one writer),
    ``modality``, ``text``."""
    return tuple(json.loads(TASK_EXAMPLES.read_text(encoding="utf-8"))["examples"])


def phrase_items() -> list[tuple[str, str]]:
    """(key, text) of every phrase embedded for understanding; stored like model cards. A task example is
    embedded as the modality evidence reads a task: quoted spans replaced (:func:`modality_text`)."""
    items = []
    for m, phrases in prototypes.MODALITY_PHRASES.items():
        items += [(f"phrase:modality:{m}:{i}", p) for i, p in enumerate(phrases)]
    for ex in task_examples():
        items.append((f"phrase:example:{ex['modality']}:{ex['source']}:{ex['id']}",
                      modality_text(ex["text"]) or ex["text"]))
    for d, phrases in prototypes.DOMAIN_PHRASES.items():
        items.append((f"phrase:domain:{d}:def", vocab.DOMAINS[d]))
        items += [(f"phrase:domain:{d}:{i}", p) for i, p in enumerate(phrases)]
    for kind, phrases in prototypes.OUT_OF_SCOPE_PHRASES.items():
        items += [(f"phrase:scope:{kind}:{i}", p) for i, p in enumerate(phrases)]
    return items


def modality_text(text: str) -> str | None:
    """``text`` with its quoted examples replaced by :data:`QUOTE_PLACEHOLDER`; None if it quotes none."""
    out = _QUOTED.sub(QUOTE_PLACEHOLDER, text)
    return out if out != text else None


def card_evidence(modalities: np.ndarray, cosines: np.ndarray, top: int = CARD_TOP) -> dict[str, float]:
    """Per modality present, the mean cosine of its ``top`` cards nearest to the task."""
    return {str(m): _top_mean(cosines[modalities == m], top) for m in np.unique(modalities)}


def _softmax(x: np.ndarray, t: float) -> np.ndarray:
    z = (x - x.max()) / t
    e = np.exp(z)
    return e / e.sum()


class Understander:
    def __init__(self, store: EmbeddingStore, embedder: Any):
        items = phrase_items()
        self.keys = [k for k, _ in items]
        self.matrix = store.ensure(items, embedder)
        self.embedder = embedder
        self._rows: dict[tuple[str, str], np.ndarray] = {}  # (kind, name) -> rows of its phrases
        for i, key in enumerate(self.keys):
            _, kind, name, _ = key.split(":", 3)
            self._rows.setdefault((kind, name), []).append(i)
        self._rows = {k: np.array(v) for k, v in self._rows.items()}
        self._example_source = {i: key.split(":")[3] for i, key in enumerate(self.keys)
                                if key.startswith("phrase:example:")}
        self.leave_out_examples()

    def leave_out_examples(self, sources: Iterable[str] | None = (), *, every: bool = False) -> None:
        """Score without the task examples drawn from ``sources`` (the benchmark reports a set with its
        own examples left out), or without any (``every``)."""
        out = set(sources or ())
        self._evidence_rows = {
            m: np.concatenate([rows, [i for i in self._rows.get(("example", m), ())
                                      if not every and self._example_source[i] not in out]]).astype(int)
            for (kind, m), rows in self._rows.items() if kind == "modality"}

    def _scores(self, sims: np.ndarray, kind: str, names: list[str], top: int) -> np.ndarray:
        """Per name, the mean of its ``top`` best phrase similarities (``sims``: every phrase's, to the task)."""
        return np.array([_top_mean(sims[self._rows[(kind, n)]], top) for n in names])

    def understand(self, text: str, q: np.ndarray | None = None, *, modality: str | None = None,
                   cards: dict[str, float] | None = None, q_modality: np.ndarray | None = None,
                   modality_source: str = "given") -> TaskUnderstanding:
        """Modality and domains are inferred jointly: strong domain evidence ("handwritten digits",
        "JavaScript") outweighs weak modality wording, through which modalities each domain serves.
        ``cards``: :func:`card_evidence` of the registry's cards; a modality without cards counts as
        the weakest present. ``q_modality``: the embedding of :func:`modality_text`, when it differs.
        ``modality_source``: where a fixed ``modality`` came from, ``"given"`` or ``"data"``."""
        if q is None:
            q = self.embedder.encode_query(text, self.matrix)
        mods = list(prototypes.MODALITY_PHRASES)
        sims = self.matrix @ q
        by_modality = self._scores(sims, "modality", mods, top=2)  # phrases, the text as written: the scope check's
        msims = sims if q_modality is None else self.matrix @ q_modality
        by_modality_evidence = np.array([_top_mean(msims[self._evidence_rows[m]], 2) for m in mods])
        mprob = _softmax(by_modality_evidence, MODALITY_TEMPERATURE)
        if cards:
            floor = min(cards.values())
            by_card = _softmax(np.array([cards.get(m, floor) for m in mods]), CARD_TEMPERATURE)
            mprob = mprob * by_card**CARD_WEIGHT
        mprob = mprob * np.array([MODALITY_PRIOR[m] for m in mods])
        doms = list(prototypes.DOMAIN_PHRASES)
        by_domain = self._scores(sims, "domain", doms, top=1)
        dprob_all = _softmax(by_domain, DOMAIN_TEMPERATURE)
        dprob_out = dprob_all  # the domain evidence behind the reported tags (below)
        named = dataset_names.find(text) if NAMED_MIX else []
        if named:
            mprob = _mix(mprob, _split_joint(_named_share(named, mods, by_domain=False), mprob, mods))
            share = _named_share(named, doms, by_domain=True)
            dprob_all = _mix(dprob_all, share)
            # The tags reported give a named dataset's main tag the whole named share ("MNIST" is
            # handwriting before it is low-resolution); the modality keeps the mixture above, because
            # moving domain mass there also moves the modality posterior.
            dprob_out = _mix(dprob_out, share, by_max=True)
        compat = np.array([[_compat(m, d) for d in doms] for m in mods])  # (modalities, domains)
        joint = mprob[:, None] * dprob_all[None, :] * compat
        mpost = joint.sum(axis=1) ** MODALITY_CALIBRATION
        mpost = mpost / mpost.sum()
        given = modality is not None
        scope = None
        if not given and not named:
            kinds = list(prototypes.OUT_OF_SCOPE_PHRASES)
            oos = self._scores(sims, "scope", kinds, top=2)
            inside = max(by_modality.max(), by_domain.max())
            if oos.max() - inside > SCOPE_MARGIN:
                scope = kinds[int(oos.argmax())]
        chosen = modality if given else mods[int(np.argmax(mpost))]
        row = (mprob[mods.index(chosen)] * dprob_out * compat[mods.index(chosen)]) if chosen in mods else dprob_out
        dprob = row / row.sum() if row.sum() > 0 else dprob_out
        order = [i for i in np.argsort(-dprob) if compat[mods.index(chosen), i] > 0]
        best = dprob[order[0]]
        inferred = {doms[i]: float(dprob[i]) for i in order[:MAX_DOMAINS] if dprob[i] >= DOMAIN_KEEP_RATIO * best}
        return TaskUnderstanding(
            text=text,
            modality=chosen,
            modality_confidence=1.0 if given else float(mpost.max()),
            modality_given=given and modality_source == "given",
            domains=inferred,
            modality_scores={m: float(p) for m, p in zip(mods, mpost, strict=True)},
            domain_scores={doms[i]: float(dprob[i]) for i in order},
            datasets=[d.name for d in named],
            out_of_scope=scope,
            modality_source=modality_source if given else "inferred",
        )


def _top_mean(sims: np.ndarray, top: int) -> float:
    """The mean of the ``top`` largest of ``sims`` (all of them when there are fewer)."""
    k = min(top, len(sims))
    return float(np.partition(sims, len(sims) - k)[len(sims) - k:].mean())


def _mix(p: np.ndarray, named: np.ndarray, *, by_max: bool = False) -> np.ndarray:
    """``p`` (normalised) mixed NAMED_MIX to the named datasets' weights, which are scaled to sum 1, or
    with ``by_max`` to a largest weight of 1 (a main tag then keeps the whole share); renormalised."""
    p = p / p.sum()
    if not named.sum():
        return p
    mixed = (1 - NAMED_MIX) * p + NAMED_MIX * named / (named.max() if by_max else named.sum())
    return mixed / mixed.sum()


def _split_joint(share: np.ndarray, p: np.ndarray, mods: list[str]) -> np.ndarray:
    """``share`` (named datasets' modality shares) with each JOINT_WITH_TEXT modality's part split between
    it and multimodal in the proportion of ``p`` (the description's modality evidence)."""
    out = share.copy()
    j = mods.index("multimodal")
    for m in JOINT_WITH_TEXT:
        i = mods.index(m)
        if out[i] and p[i] + p[j] > 0:
            moved = share[i] * p[j] / (p[i] + p[j])
            out[i] -= moved
            out[j] += moved
    return out


def _named_share(named: list[dataset_names.KnownDataset], keys: list[str], *, by_domain: bool) -> np.ndarray:
    """Per key (a modality, or a domain tag), the share of the named datasets that have it."""
    out = np.zeros(len(keys))
    for d in named:
        if by_domain:
            for j, tag in enumerate(d.domains):
                if tag in keys:
                    out[keys.index(tag)] += 1.0 if j == 0 else NAMED_SECONDARY
        elif d.modality in keys:
            out[keys.index(d.modality)] += 1.0
    return out / len(named)


def _compat(modality: str, domain: str) -> float:
    """1 for a domain's main modality and FULL_SAY, SECONDARY_MODALITY for the others it serves, else 0."""
    serves = prototypes.DOMAIN_MODALITIES.get(domain, ())
    if not serves or modality not in serves:
        return 0.0
    return 1.0 if serves[0] == modality or modality in FULL_SAY else SECONDARY_MODALITY
