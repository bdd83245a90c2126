"""Which language a text sample is in, and a warning when a text encoder was not trained on it.

:func:`detect_language` returns a :class:`LanguageGuess` for a list of texts; :func:`model_languages`
says which languages a record's encoder covers; :func:`language_warning` combines the two into one
line for ``zoo score`` / ``zoo recommend --data`` (or ``None`` when the texts fit the encoder).

Detection
---------
Texts are classified one by one (short ones, under 100 letters, are first joined in order into chunks
of at least 100 letters, because a three-word text is too little to tell a language from) and each
verdict is weighted by its number of letters (capped at 500, so one long document cannot outvote the
rest). ``shares`` is the share of the weighted letters per language, ``code`` the largest,
``confidence`` its share.

- With ``py3langid`` installed (a BSD-licensed, pure-Python + NumPy fork of langid.py whose naive-Bayes
  model for 139 languages ships inside the wheel, so it works offline; deterministic): its verdict per
  chunk; "no linguistic content" (``zxx``, e.g. random letters) counts as ``und``.
- Without it, a documented fallback: the dominant Unicode script decides (Cyrillic -> ``ru``, or ``uk``
  when Ukrainian-only letters occur; Han -> ``zh``, or ``ja`` when kana occur; Hangul -> ``ko``; Arabic,
  Hebrew, Greek, Devanagari, Thai, ... each to its main language); Latin script is told apart by the
  share of words that are stop words of English, German, French, Spanish, Italian, Portuguese, Dutch,
  Swedish, Polish, Turkish or Indonesian (``und`` when fewer than 10% of the words are). Coarser: it
  names the main language of a script and knows only those eleven Latin-script languages.

``script`` is the dominant Unicode script of the letters (``Latin``, ``Cyrillic``, ``Han``, ...), counted
the same way with either detector.

Model languages
---------------
In order: ``extra.languages`` / ``extra.language`` in the record (codes or English names; ``multilingual``
or ``mul`` means many); the ``multilingual`` domain tag; "multilingual", "cross-lingual", "N languages",
XLM / mBERT / LaBSE in the id or description; language names in the id or description ("English
Tweets" -> en, "bert-base-chinese" -> zh); otherwise **English is assumed**, as for every text encoder
of the offline zoo (all-MiniLM-L6-v2, paraphrase-MiniLM-L3-v2, all-mpnet-base-v2, GloVe 6B), and the
warning says it was assumed. Code models (domain ``code``) are never warned about: their input is
source code.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LanguageGuess", "ModelLanguages", "description_language", "detect_language", "language_name",
           "language_warning", "model_languages"]

MOSTLY = 0.5  # warn when at least this share of the text is in languages the encoder does not cover
_CHUNK_LETTERS = 100
_WEIGHT_CAP = 500
_MIN_LETTERS = 20  # less text than this in total: no verdict

_NAMES = {
    "en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian", "pt": "Portuguese",
    "nl": "Dutch", "sv": "Swedish", "da": "Danish", "no": "Norwegian", "nb": "Norwegian", "fi": "Finnish",
    "pl": "Polish", "cs": "Czech", "sk": "Slovak", "hu": "Hungarian", "ro": "Romanian", "tr": "Turkish",
    "id": "Indonesian", "ms": "Malay", "vi": "Vietnamese", "ru": "Russian", "uk": "Ukrainian",
    "bg": "Bulgarian", "sr": "Serbian", "el": "Greek", "he": "Hebrew", "ar": "Arabic", "fa": "Persian",
    "ur": "Urdu", "hi": "Hindi", "bn": "Bengali", "ta": "Tamil", "te": "Telugu", "th": "Thai",
    "zh": "Chinese", "ja": "Japanese", "ko": "Korean", "ka": "Georgian", "hy": "Armenian", "am": "Amharic",
    "ca": "Catalan", "eu": "Basque", "gl": "Galician", "hr": "Croatian", "sl": "Slovenian", "lt": "Lithuanian",
    "lv": "Latvian", "et": "Estonian", "la": "Latin", "tl": "Tagalog", "sw": "Swahili",
}
_CODE_BY_NAME = {name.lower(): code for code, name in _NAMES.items() if code != "nb"}


def language_name(code: str) -> str:
    """English name of an ISO 639 code (the code itself when unknown)."""
    return _NAMES.get(code, code)


@dataclass(frozen=True)
class LanguageGuess:
    code: str  # ISO 639 code of the main language ("en", "de", "ru", "zh"), or "und" (undetermined)
    confidence: float  # share of the text (letters) in that language, in [0, 1]
    script: str  # dominant Unicode script of the letters ("Latin", "Cyrillic", "Han", ...); "" without letters
    shares: dict[str, float] = field(default_factory=dict)  # language -> share of the letters, largest first
    method: str = ""  # "py3langid" | "script+stopwords"
    n_texts: int = 0


@dataclass(frozen=True)
class ModelLanguages:
    codes: tuple[str, ...]  # languages the encoder was trained on (empty when multilingual)
    multilingual: bool
    source: str  # how zoo knows: "record extra.languages", "domain tag multilingual", "assumed", ...
    assumed: bool = False


# ---------------------------------------------------------------------------------------- scripts


def _script_of(ch: str) -> str:
    if ch < "\x80":
        return "Latin"
    name = unicodedata.name(ch, "")
    if not name:
        return ""
    words = name.split(" ")
    first = words[1] if words[0] in ("HALFWIDTH", "FULLWIDTH") and len(words) > 1 else words[0]
    return {"CJK": "Han"}.get(first, first.title())


def _scripts(text: str) -> Counter:
    return Counter(_script_of(ch) for ch in text if ch.isalpha())


# Main language of scripts used by one language or dominated by one (the fallback detector only).
_SCRIPT_LANGUAGE = {
    "Cyrillic": "ru", "Han": "zh", "Hiragana": "ja", "Katakana": "ja", "Hangul": "ko", "Arabic": "ar",
    "Hebrew": "he", "Greek": "el", "Devanagari": "hi", "Thai": "th", "Bengali": "bn", "Tamil": "ta",
    "Telugu": "te", "Georgian": "ka", "Armenian": "hy", "Gujarati": "gu", "Gurmukhi": "pa", "Kannada": "kn",
    "Malayalam": "ml", "Sinhala": "si", "Khmer": "km", "Lao": "lo", "Myanmar": "my", "Ethiopic": "am",
}

# Frequent function words; a word may belong to several lists (the shares decide).
_STOPWORDS = {
    "en": "the of and to in is that it was for on are with as his they be at this have from or by not but what "
          "all were when we there can an which their if do will each about how up out them she many some so these "
          "would other into has her two like him see could no than been who its now my over did down only way",
    "de": "der die und in den von zu das mit sich des auf für ist im dem nicht ein eine als auch es an werden aus "
          "er hat dass sie nach wird bei einer um am sind noch wie einem über einen so zum war haben nur oder aber "
          "vor zur bis mehr durch man sein wurde sei ich",
    "fr": "le de la et les des en un du une que est pour qui dans par plus pas au sur ne se il ce avec son sont "
          "elle mais nous vous ou ont leur été aux comme tout cette je on",
    "es": "de la que el en y a los del se las por un para con no una su al es lo como más pero sus le ya o fue "
          "este ha sí porque esta son entre cuando muy sin sobre también me hasta hay donde",
    "it": "di e il la che in a per un è non una del della le si sono con da al i gli ma come anche questo lo "
          "nel più alla ha se ci mi perché molto",
    "pt": "de a o que e do da em um para é com não uma os no se na por mais as dos como mas foi ao ele das tem "
          "à seu sua ou ser quando muito há nos já está também",
    "nl": "de en van ik te dat die in een hij het niet zijn is was op aan met als voor had er maar om hem dan zou "
          "wat mijn men dit zo door over ze zich bij ook tot je naar",
    "sv": "och i att det som en på är av för med till den har de inte om ett han men var jag sig från vi så kan "
          "man när år säger hon under också efter",
    "pl": "i w nie na się z do to że a o jak ale po co jest tak za od już jego przez jej są czy dla był może "
          "tylko mnie ich",
    "tr": "ve bir bu da de için ile ne çok daha gibi olarak sonra kadar ama var ben en mi o diye şey",
    "id": "yang dan di ini itu dengan untuk tidak dari dalam akan pada juga ke karena tersebut bisa ada mereka "
          "lebih kami sudah saya",
}
_STOPSETS = {code: frozenset(words.split()) for code, words in _STOPWORDS.items()}
_WORD = re.compile(r"[^\W\d_]+")


def _fallback_classify(text: str, scripts: Counter) -> str:
    """Language of one text by script, and for Latin script by stop words (the no-library fallback)."""
    if not scripts:
        return "und"
    script = scripts.most_common(1)[0][0]
    if script == "Cyrillic" and re.search("[іїєґІЇЄҐ]", text):
        return "uk"
    if script == "Han" and (scripts.get("Hiragana") or scripts.get("Katakana")):
        return "ja"
    if script != "Latin":
        return _SCRIPT_LANGUAGE.get(script, "und")
    words = [w.lower() for w in _WORD.findall(text)]
    if len(words) < 3:
        return "und"
    hits = {code: sum(w in stop for w in words) / len(words) for code, stop in _STOPSETS.items()}
    best = max(hits, key=lambda c: hits[c])
    return best if hits[best] >= 0.1 else "und"


@functools.cache
def _identifier() -> Any:
    """py3langid's module-level classifier (its model loads on the first call, about a second); None if absent.

    Only the top-level ``classify`` is used (the verdict, not its score), the API every py3langid version has.
    """
    try:
        import py3langid
    except ImportError:
        return None
    return py3langid


# ---------------------------------------------------------------------------------------- detection


def _chunks(texts: Sequence[str]) -> list[str]:
    """Texts with at least _CHUNK_LETTERS letters alone; shorter ones joined in order until they reach it."""
    out, buf, letters = [], [], 0
    for t in texts:
        n = sum(ch.isalpha() for ch in t)
        if n == 0:
            continue
        if n >= _CHUNK_LETTERS:
            out.append(t)
            continue
        buf.append(t)
        letters += n
        if letters >= _CHUNK_LETTERS:
            out.append("\n".join(buf))
            buf, letters = [], 0
    if buf:
        out.append("\n".join(buf))
    return out


_MEMO: dict[tuple[str, bool], LanguageGuess] = {}


def detect_language(texts: Sequence[str] | str, *, max_texts: int = 1000, use_library: bool = True) -> LanguageGuess:
    """The main language of ``texts`` (see the module docstring). ``use_library=False`` forces the fallback.

    At most ``max_texts`` texts are read (evenly spaced, so the result is deterministic). Results are
    memoised per content, so calling this once per candidate model costs one detection.
    """
    if isinstance(texts, str):
        texts = [texts]
    texts = [str(t) for t in texts]
    if len(texts) > max_texts:
        step = len(texts) / max_texts
        texts = [texts[int(i * step)] for i in range(max_texts)]
    ident = _identifier() if use_library else None
    digest = hashlib.sha256("\0".join(texts).encode("utf-8", "surrogatepass")).hexdigest()
    memo_key = (digest, ident is not None)
    if memo_key in _MEMO:
        return _MEMO[memo_key]
    method = "py3langid" if ident is not None else "script+stopwords"
    votes: Counter = Counter()
    all_scripts: Counter = Counter()
    for chunk in _chunks(texts):
        scripts = _scripts(chunk)
        all_scripts.update(scripts)
        if ident is not None:
            code = ident.classify(chunk)[0]
            code = "und" if code == "zxx" else code  # zxx: "no linguistic content"
        else:
            code = _fallback_classify(chunk, scripts)
        votes[code] += min(sum(scripts.values()), _WEIGHT_CAP)
    script = all_scripts.most_common(1)[0][0] if all_scripts else ""
    total = sum(votes.values())
    if total < _MIN_LETTERS:
        guess = LanguageGuess("und", 0.0, script, {}, method, len(texts))
    else:
        shares = {code: n / total for code, n in votes.most_common()}
        code = next(iter(shares))
        guess = LanguageGuess(code, shares[code], script, shares, method, len(texts))
    if len(_MEMO) > 64:  # a small memo: callers loop over models for one sample, not over many samples
        _MEMO.clear()
    _MEMO[memo_key] = guess
    return guess


# ---------------------------------------------------------------------------------------- model languages

_MULTI = re.compile(r"multi-?lingual|cross-?lingual|language-agnostic|\b\d{2,3}\+? (?:other )?languages|"
                    r"\bxlm\b|xlm-r|\bmbert\b|\blabse\b|many languages|\bpolyglot", re.I)
# Ids of well-known single-language encoders whose names carry no language name.
_NAME_HINTS = {"camembert": "fr", "flaubert": "fr", "rubert": "ru", "bertje": "nl", "robbert": "nl",
               "arabert": "ar", "beto": "es", "bertimbau": "pt", "herbert": "pl", "klue": "ko", "gbert": "de"}


def _as_codes(value: Any) -> list[str]:
    items = value if isinstance(value, (list, tuple, set)) else re.split(r"[,;/\s]+", str(value))
    out = []
    for v in items:
        s = str(v).strip().lower()
        if s:
            out.append(_CODE_BY_NAME.get(s, s.split("-")[0].split("_")[0] if s not in ("multilingual", "mul") else s))
    return out


def model_languages(record: Any) -> ModelLanguages:
    """Which languages ``record``'s text encoder covers, and how zoo knows (see the module docstring)."""
    extra = getattr(record, "extra", None) or {}
    stated = extra.get("languages", extra.get("language"))
    if stated:
        codes = _as_codes(stated)
        if any(c in ("multilingual", "mul", "multi", "xx") for c in codes):
            return ModelLanguages((), True, "record extra.languages")
        return ModelLanguages(tuple(dict.fromkeys(codes)), False, "record extra.languages")
    if "multilingual" in (getattr(record, "domains", None) or []):
        return ModelLanguages((), True, "domain tag multilingual")
    text = f"{record.id} {getattr(record, 'description', '') or ''}"
    if _MULTI.search(text):
        return ModelLanguages((), True, "its id or description says multilingual")
    # Descriptions name languages as capitalised proper nouns ("English Tweets"; "polish" the verb is not
    # Polish); ids are lower-case ("bert-base-chinese"). "Latin" is left out: it names a script far more often.
    rid = str(record.id).lower()
    named = [code for name, code in _CODE_BY_NAME.items() if code != "la" and (
        re.search(rf"\b{name.title()}\b", text) or re.search(rf"(?<![a-z]){name}(?![a-z])", rid))]
    named += [code for hint, code in _NAME_HINTS.items() if re.search(rf"(?<![a-z]){hint}(?![a-z])", rid)]
    if named:
        return ModelLanguages(tuple(dict.fromkeys(named)), False, "languages named in its id or description")
    return ModelLanguages(("en",), False, "assumed: the record names no language, and text encoders without one "
                                          "are almost always English-only", assumed=True)


def language_warning(record: Any, texts: Sequence[str] | str | LanguageGuess) -> str | None:
    """One line when ``texts`` are mostly (>= 50% of the letters) in languages ``record`` was not trained on.

    ``texts`` may be a :class:`LanguageGuess` already computed (one detection for many models).
    None for non-text models, multilingual encoders, code models, and texts in a covered language or
    in no recognisable language (random strings: the domain-shift signal covers those).
    """
    if getattr(record, "modality", None) != "text" or "code" in (getattr(record, "domains", None) or []):
        return None
    langs = model_languages(record)
    if langs.multilingual or not langs.codes:
        return None
    guess = texts if isinstance(texts, LanguageGuess) else detect_language(texts)
    foreign = {c: s for c, s in guess.shares.items() if c != "und" and c not in langs.codes}
    share = sum(foreign.values())
    if share < MOSTLY:
        return None
    main = max(foreign, key=lambda c: foreign[c])
    other = f" and {len(foreign) - 1} other language(s)" if len(foreign) > 1 else ""
    script = f", {guess.script} script" if guess.script and guess.script != "Latin" else ""
    trained = " / ".join(language_name(c) for c in langs.codes)
    how = " (assumed: its record names no language)" if langs.assumed else ""
    return (f"the texts are mostly {language_name(main)} ({main}{script}; {share:.0%} of the text is in "
            f"{language_name(main)}{other}), but {record.id} was trained on {trained} text only{how}: its "
            "vocabulary covers few of their words and its features transfer poorly; consider a multilingual "
            "encoder (`zoo search --domain multilingual --modality text`)")


def description_language(text: str, embed_model_id: str) -> str | None:
    """The language of a task description, named for the user ("French (fr)", "Han script"), when the
    sentence encoder that reads descriptions (``embed_model_id``) was not trained on it; else None.

    A description is a sentence or two, and on so little text each detector errs on its own: py3langid
    reads "detect pneumonia in chest X-rays" as Latin, the stop-word count reads "a picture hanging in a
    museum" as Italian. So a Latin-script language is named only when both agree, and the library (about
    0.2 s to import) is consulted only after the stop-word count has named a language other than English.
    A description mostly in another script needs no detector.
    """
    langs = _describer_languages(embed_model_id)
    if langs.multilingual or not langs.codes:
        return None
    quick = detect_language(text, use_library=False)
    if quick.script and quick.script != "Latin":
        if quick.code in langs.codes:
            return None
        return f"{language_name(quick.code)} ({quick.code})" if quick.code != "und" else f"{quick.script} script"
    if quick.code in ("und", *langs.codes):
        return None
    full = detect_language(text)
    if full.method == "py3langid" and full.code != quick.code:
        return None
    return f"{language_name(quick.code)} ({quick.code})"


@functools.lru_cache(maxsize=8)
def _describer_languages(embed_model_id: str) -> ModelLanguages:
    """:func:`model_languages` of a sentence encoder known only by its id (the same rules as a record's),
    once per id: every recommend call asks."""
    from types import SimpleNamespace

    return model_languages(SimpleNamespace(id=embed_model_id, extra={}, domains=(), description=""))
