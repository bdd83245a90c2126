"""Controlled vocabularies: the one place that defines modalities, tasks, domain tags,
license classes and pretraining-data names. Everything else imports from here.

Domain tags (documented in README, "Vocabulary"):
each tag names the kind of data a backbone was pretrained on or is specialised for.
Add a tag only when a real model needs it, with a one-line description.
"""

from __future__ import annotations

import re

MODALITIES: dict[str, str] = {
    "image": "still images (photos, scans, renders)",
    "text": "natural-language or code text",
    "audio": "waveforms or spectrograms (speech, music, sounds)",
    "video": "frame sequences",
    "multimodal": "joint encoders over several modalities (e.g. image+text)",
}

TASKS: dict[str, str] = {
    "image-classification": "one label per image",
    "image-embedding": "general image features / retrieval",
    "object-detection": "boxes and labels",
    "image-segmentation": "a label per pixel",
    "text-classification": "one label per text",
    "sentence-embedding": "sentence / passage embeddings, semantic similarity",
    "token-classification": "a label per token (NER, tagging)",
    "question-answering": "extractive QA",
    "fill-mask": "masked-language-model backbone",
    "feature-extraction": "generic features for a downstream head",
    "zero-shot-classification": "classify into labels given as text",
    "audio-classification": "one label per clip",
    "video-classification": "one label per video clip",
    "speech-recognition": "speech to text",
    "speaker-embedding": "speaker verification / identification features",
    "face-recognition": "identity embeddings of faces",
    "document-understanding": "layout-aware document features",
    "pitch-estimation": "fundamental frequency of audio",
}

DOMAINS: dict[str, str] = {
    "general": "broad web or encyclopaedic data, no particular domain",
    "natural-images": "everyday photographs of objects, animals and scenes (ImageNet-like)",
    "web-image-text": "image-text pairs scraped from the web (CLIP-style)",
    "medical-radiology": "X-ray, CT and MRI images",
    "medical-pathology": "histopathology slides and microscopy",
    "medical-dermatology": "skin lesion and dermatology photographs",
    "medical-ophthalmology": "retinal fundus and OCT images",
    "medical-other": "other clinical imaging (endoscopy, ultrasound, ...)",
    "biomedical-text": "biomedical literature (PubMed abstracts, full texts)",
    "clinical-text": "clinical notes and electronic health records",
    "scientific-text": "scientific papers across fields",
    "remote-sensing": "satellite and aerial imagery",
    "faces": "face images (identity, expression, attributes)",
    "documents": "scanned or rendered documents, forms, receipts",
    "art-sketch": "drawings, sketches, paintings and clip-art",
    "handwriting": "handwritten characters and digits",
    "low-resolution": "tiny images (32x32 and similar, e.g. CIFAR)",
    "legal": "legal text: contracts, case law, legislation",
    "finance": "financial text: filings, reports, financial news",
    "code": "source code",
    "social-media": "tweets and other short informal posts",
    "news": "news articles",
    "reviews": "product and movie reviews, opinions",
    "dialogue": "conversations and chat",
    "multilingual": "many languages",
    "speech": "spoken language audio",
    "music": "music audio",
    "environmental-audio": "everyday sounds and acoustic scenes",
}

# license class -> meaning. A missing license is "unknown", never guessed.
LICENSE_CLASSES: dict[str, str] = {
    "permissive": "commercial use allowed with attribution (Apache-2.0, MIT, BSD, CC-BY, ...)",
    "copyleft": "commercial use allowed but derivatives must share alike (GPL, CC-BY-SA, ...)",
    "non-commercial": "research / non-commercial use only (CC-BY-NC, ...)",
    "restricted": "custom terms with use restrictions or gating (OpenRAIL, Llama, ...)",
    "unknown": "no license stated or not recognised",
}

_PERMISSIVE = {
    "apache-2.0", "mit", "bsd", "bsd-2-clause", "bsd-3-clause", "bsd-3-clause-clear", "isc", "zlib",
    "cc0-1.0", "cc0", "cc-by-2.0", "cc-by-2.5", "cc-by-3.0", "cc-by-4.0", "unlicense", "pddl",
    "odc-by", "mpl-2.0", "bsl-1.0", "afl-3.0", "artistic-2.0", "ecl-2.0", "ms-pl", "postgresql",
    "wtfpl", "odbl", "cdla-permissive-1.0", "cdla-permissive-2.0", "ncsa", "openmdw",
}
_COPYLEFT = {
    "gpl", "gpl-2.0", "gpl-3.0", "lgpl", "lgpl-2.1", "lgpl-3.0", "lgpl-lr", "agpl-3.0", "epl-1.0",
    "epl-2.0", "eupl-1.1", "eupl-1.2", "cc-by-sa-3.0", "cc-by-sa-4.0", "gfdl", "osl-3.0", "cdla-sharing-1.0",
}
_NONCOMMERCIAL = {
    "cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nc-nd-3.0", "cc-by-nc-nd-4.0",
    "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0", "cc-by-nd-4.0", "academic-use",
    "research-only", "apple-amlr", "fair-noncommercial-research-license",
    "msrla", "owkin-non-commercial",
}
_RESTRICTED = {
    "openrail", "openrail++", "creativeml-openrail-m", "bigscience-openrail-m", "bigscience-bloom-rail-1.0",
    "bigcode-openrail-m", "llama2", "llama3", "llama3.1", "llama3.2", "llama3.3", "llama4", "gemma",
    "deepfloyd-if-license", "c-uda", "health-ai-developer-foundations", "other-restricted",
    "dinov3-license",
}
_UNKNOWN = {"", "other", "unknown", "none", "unlicensed"}

_ALIASES = {
    "apache 2.0": "apache-2.0", "apache2": "apache-2.0", "apache-2": "apache-2.0", "apache license 2.0": "apache-2.0",
    "bsd-3": "bsd-3-clause", "bsd-2": "bsd-2-clause", "bsd 3-clause": "bsd-3-clause",
    "hai-def": "health-ai-developer-foundations",
    "cc-by-nc": "cc-by-nc-4.0", "cc by-nc 4.0": "cc-by-nc-4.0", "cc-by": "cc-by-4.0", "cc-by-sa": "cc-by-sa-4.0",
}


def normalize_license(value: str | None) -> str | None:
    """Lower-case SPDX-like id, aliases folded. ``None`` when no license is stated."""
    if value is None:
        return None
    v = str(value).strip().lower()
    if not v:
        return None
    return _ALIASES.get(v, v)


def is_unknown_license(license_id: str | None) -> bool:
    """No license stated, or one that says it is unknown ("other", "unknown"): nothing to recognise."""
    lic = normalize_license(license_id)
    return lic is None or lic in _UNKNOWN


def license_class(license_id: str | None) -> str:
    lic = normalize_license(license_id)
    if lic is None or lic in _UNKNOWN:
        return "unknown"
    for cls, ids in (("non-commercial", _NONCOMMERCIAL), ("copyleft", _COPYLEFT),
                     ("restricted", _RESTRICTED), ("permissive", _PERMISSIVE)):
        if lic in ids:
            return cls
    if "-nc" in lic or "noncommercial" in lic or "non-commercial" in lic:
        return "non-commercial"
    if "gpl" in lic or "-sa-" in lic:
        return "copyleft"
    if "rail" in lic or "llama" in lic:
        return "restricted"
    return "unknown"


# Pretraining datasets: canonical name -> description. Tokens found in tags/cards map through
# PRETRAIN_ALIASES onto these names.
PRETRAINING_DATA: dict[str, str] = {
    "in1k": "ImageNet-1k (1.28M images, 1000 classes)",
    "in21k": "ImageNet-21k (Fall 2011 / winter 21 release, ~13M images)",
    "in22k": "ImageNet-22k (full ImageNet, ~14M images)",
    "in12k": "ImageNet-12k subset of in22k used by timm",
    "laion2b": "LAION-2B English image-text pairs",
    "laion400m": "LAION-400M image-text pairs",
    "datacomp": "DataComp image-text pairs",
    "dfn": "Data Filtering Networks image-text pairs (DFN-2B/5B)",
    "metaclip": "MetaCLIP curated image-text pairs",
    "openai-wit": "OpenAI WebImageText (CLIP, 400M pairs)",
    "webli": "Google WebLI image-text pairs",
    "jft": "Google JFT-300M / JFT-3B",
    "ig1b": "Instagram 1B / 3.5B hashtag images",
    "yfcc100m": "YFCC100M Flickr images",
    "lvd142m": "LVD-142M curated images (DINOv2)",
    "lvd1689m": "LVD-1689M curated web images (DINOv3)",
    "merged2b": "Merged-2B image-text pairs (EVA-CLIP)",
    "merged38m": "Merged-38M (EVA-02 MIM data)",
    "cc12m": "Conceptual 12M image-text pairs",
    "sa1b": "Segment Anything SA-1B",
    "places365": "Places365 scenes",
    "cifar10": "CIFAR-10 (60k 32x32 images, 10 classes)",
    "fer2013": "FER-2013 facial expressions (48x48 grayscale, 7 classes)",
    "kdef": "Karolinska Directed Emotional Faces",
    "imdb-wiki": "IMDB-WIKI face images with age and gender",
    "vggface2": "VGGFace2 face identities",
    "ms-celeb-1m": "MS-Celeb-1M face identities",
    "mimic-cxr": "MIMIC-CXR chest X-rays and reports",
    "chexpert": "CheXpert chest X-rays",
    "tcga": "The Cancer Genome Atlas whole-slide images",
    "pubmed": "PubMed abstracts",
    "pmc": "PubMed Central full texts",
    "mimic-iii": "MIMIC-III clinical notes",
    "s2orc": "Semantic Scholar papers (S2ORC)",
    "wikipedia": "Wikipedia",
    "bookcorpus": "BookCorpus",
    "common-crawl": "Common Crawl web text (incl. C4, CC-100, CC-News)",
    "openwebtext": "OpenWebText",
    "sentence-pairs-1b": "1B+ sentence pairs (sentence-transformers training data)",
    "paraphrase-data": "paraphrase datasets (sentence-transformers paraphrase models)",
    "glove-6b": "Wikipedia 2014 + Gigaword 5 (6B tokens, GloVe)",
    "tweets": "Twitter posts",
    "legal-corpora": "legislation, court cases and contracts",
    "financial-corpora": "financial filings, reports and news",
    "github-code": "source code from GitHub",
    "librispeech": "LibriSpeech read English speech",
    "librilight": "Libri-Light unlabelled speech",
    "voxceleb": "VoxCeleb speaker recordings",
    "audioset": "AudioSet YouTube sound clips",
    "weak-speech-680k": "680k hours of weakly labelled web speech (Whisper)",
    "music-corpora": "music audio collections",
    "satellite-imagery": "satellite / aerial image collections (e.g. Sentinel-2, fMoW, BigEarthNet)",
    "document-images": "scanned document images (e.g. IIT-CDIP)",
    "mnist": "MNIST handwritten digits",
    "other": "a dataset outside this list (named in the description)",
    "mass-100k": "Mass-100K: 100M+ tiles from 100K+ internal H&E whole-slide images (UNI)",
    "sat493m": "SAT-493M: 493M satellite images (DINOv3 satellite models)",
    "umls": "UMLS biomedical ontology synonyms (entity-representation pretraining, e.g. SapBERT)",
    "xls-r-436k": "436K hours of unlabelled speech in 128 languages (MLS, CommonVoice, VoxLingua107, BABEL, VoxPopuli; XLS-R)",
    "laion-audio-630k": "LAION-Audio-630K audio-text pairs (CLAP)",
    "webface4m": "WebFace4M face identities (subset of WebFace260M)",
    "pmc-15m": "PMC-15M: 15M biomedical figure-caption pairs from PubMed Central (BiomedCLIP)",
    "ham10000": "HAM10000 dermatoscopic skin-lesion images (7 classes)",
    "sst2": "SST-2 Stanford Sentiment Treebank (binary sentiment of movie-review sentences, GLUE)",
    "imdb-reviews": "IMDB Large Movie Review Dataset (50k reviews, binary sentiment)",
    "ag-news": "AG News topic classification (120k news articles, 4 classes)",
    "quickdraw": "Google Quick, Draw! doodles (50M vector sketches, 345 categories)",
    "cifar100": "CIFAR-100 (60k 32x32 images, 100 classes)",
    "iam": "IAM Handwriting Database (English handwritten text lines)",
    "danbooru": "Danbooru anime-style illustrations with community tags",
    "kinetics400": "Kinetics-400 human action video clips (YouTube, 400 classes)",
}

# Pretraining data that makes a model a remote-sensing backbone.
REMOTE_SENSING_DATA = frozenset({"satellite-imagery", "sat493m"})
# Pretraining data of image-text (CLIP-style) models.
IMAGE_TEXT_DATA = frozenset({"laion2b", "laion400m", "openai-wit", "webli", "datacomp", "dfn", "metaclip",
                             "merged2b", "cc12m"})

PRETRAIN_ALIASES: dict[str, str] = {
    "in1k": "in1k", "imagenet": "in1k", "imagenet-1k": "in1k", "imagenet1k": "in1k", "tv_in1k": "in1k",
    "in21k": "in21k", "imagenet-21k": "in21k", "imagenet21k": "in21k", "in21k_miil": "in21k", "miil_in21k": "in21k",
    "in22k": "in22k", "imagenet-22k": "in22k", "imagenet22k": "in22k",
    "in12k": "in12k",
    "laion2b": "laion2b", "laion400m": "laion400m", "laion": "laion2b",
    "datacomp": "datacomp", "datacompxl": "datacomp", "dfn2b": "dfn", "dfn5b": "dfn", "metaclip": "metaclip",
    "openai": "openai-wit", "wit": "openai-wit", "openai-wit": "openai-wit",
    "webli": "webli", "jft": "jft", "jft300m": "jft", "jft3b": "jft",
    "ig1b": "ig1b", "ig": "ig1b", "ig3b": "ig1b", "swsl": "ig1b",
    "yfcc100m": "yfcc100m", "ssl": "yfcc100m",
    "lvd142m": "lvd142m", "lvd1689m": "lvd1689m", "merged2b": "merged2b", "sat493m": "sat493m",
    "datacomp1b": "datacomp", "dfndr2b": "dfn", "yfcc15m": "yfcc100m", "seer": "ig1b", "swag": "ig1b", "m38m": "merged38m", "merged38m": "merged38m",
    "cc12m": "cc12m", "sa1b": "sa1b", "places365": "places365",
}


def normalize_pretraining(name: str) -> str:
    """Canonical pretraining-data name for ``name``; unknown names must already be canonical."""
    key = name.strip().lower()
    key = PRETRAIN_ALIASES.get(key, key)
    if key not in PRETRAINING_DATA:
        raise ValueError(f"unknown pretraining data {name!r}; known: {', '.join(sorted(PRETRAINING_DATA))}")
    return key


_TOKEN_RE = re.compile(r"[a-z0-9]+")


def pretraining_from_tag(tag: str) -> list[str]:
    """Pretraining datasets named in a timm pretrained tag, in order, e.g.
    ``clip_laion2b_ft_in12k_in1k`` -> ``["laion2b", "in12k", "in1k"]``."""
    out: list[str] = []
    for tok in _TOKEN_RE.findall(tag.lower()):
        canon = PRETRAIN_ALIASES.get(tok)
        if canon and canon not in out:
            out.append(canon)
    return out


def check_member(kind: str, value: str, allowed: dict[str, str]) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {kind} {value!r}; expected one of: {', '.join(allowed)}")
    return value


# Upstream results (ModelRecord.results) use one scale: score-like metrics (accuracy, F1, AUROC, mAP,
# kappa, precision, recall) in percent, as timm publishes ImageNet top-1. Error-like metrics (WER,
# loss, perplexity) stay as published.
_SCORE_WORDS = ("acc", "top1", "top5", "top-1", "top-5", "f1", "auc", "auroc", "map", "kappa", "precision", "recall")


def result_value(metric: str, value: float) -> float:
    """``value`` on zoo's results scale: a score-like metric given as a fraction becomes percent."""
    m = metric.lower()
    if 0 <= value <= 1 and any(w in m for w in _SCORE_WORDS) and "err" not in m:
        return round(value * 100, 4)
    return value
