"""zoo.language: language detection (py3langid and the script + stop-word fallback) and the mismatch warning."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from zoo import language as zl
from zoo.record import ModelRecord
from zoo.sources.manifest import iter_records

ROOT = Path(__file__).resolve().parents[1]
OFFLINE = {r.id: r for r in iter_records(ROOT / "zoo" / "manifests" / "offline.yaml")}
CURATED = {r.id: r for r in iter_records(ROOT / "zoo" / "manifests" / "curated.yaml")}
ENGLISH_ONLY = [OFFLINE[i] for i in ("local:all-MiniLM-L6-v2", "local:paraphrase-MiniLM-L3-v2.onnx",
                                     "local:all-mpnet-base-v2", "local:glove-6b-50d.avg")]

SAMPLES = {
    "en": ["The quick brown fox jumps over the lazy dog.", "I don't have time today because I have to work.",
           "The government passed new tax laws last week.", "The weather in London is lovely and warm today.",
           "Could you please tell me where the station is?", "We watched a wonderful film at the cinema yesterday.",
           "this movie was a complete waste of time", "great acting, terrible plot"],
    "de": ["Der schnelle braune Fuchs springt über den faulen Hund.", "Ich habe heute keine Zeit, weil ich arbeiten muss.",
           "Die Bundesregierung hat neue Steuergesetze beschlossen.", "Das Wetter in Berlin ist heute sehr schön und warm.",
           "Können Sie mir bitte sagen, wo der Bahnhof ist?", "Wir haben gestern einen wunderbaren Film im Kino gesehen.",
           "dieser Film war reine Zeitverschwendung", "tolle Schauspieler, schreckliche Handlung"],
    "ru": ["Быстрая коричневая лиса прыгает через ленивую собаку.", "Сегодня у меня нет времени, потому что я должен работать.",
           "Правительство приняло новые налоговые законы.", "Погода в Москве сегодня очень хорошая и тёплая.",
           "Не могли бы вы сказать мне, где находится вокзал?", "Вчера мы посмотрели в кино замечательный фильм."],
    "zh": ["敏捷的棕色狐狸跳过了懒狗。", "我今天没有时间，因为我必须工作。", "政府上周通过了新的税法。", "今天北京的天气非常好，很暖和。",
           "请问火车站在哪里？", "我们昨天在电影院看了一部很棒的电影。"],
}
SCRIPTS = {"en": "Latin", "de": "Latin", "ru": "Cyrillic", "zh": "Han"}


@pytest.fixture(params=[True, False], ids=["py3langid", "fallback"])
def use_library(request):
    if request.param and zl._identifier() is None:
        pytest.skip("py3langid is not installed")
    return request.param


@pytest.mark.parametrize("code", list(SAMPLES))
def test_detects_language_and_script(code, use_library):
    guess = zl.detect_language(SAMPLES[code], use_library=use_library)
    assert guess.code == code and guess.script == SCRIPTS[code]
    assert 0.9 <= guess.confidence <= 1.0 and guess.shares[code] == guess.confidence
    assert guess.method == ("py3langid" if use_library else "script+stopwords")
    assert guess.n_texts == len(SAMPLES[code]) and abs(sum(guess.shares.values()) - 1) < 1e-9


def test_one_string_random_letters_and_empty(use_library):
    assert zl.detect_language(" ".join(SAMPLES["de"]), use_library=use_library).code == "de"
    rnd = zl.detect_language(["qwkj zxcv bnmq", "ertyu asdf ghjkl", "zzq xkcd vvbn"] * 4, use_library=use_library)
    assert rnd.code == "und" and rnd.script == "Latin"
    none = zl.detect_language(["123 456", "!!!", ""], use_library=use_library)
    assert none.code == "und" and none.confidence == 0.0 and none.script == "" and none.shares == {}


def test_shares_follow_the_mixture(use_library):
    mixed = SAMPLES["de"] * 3 + SAMPLES["en"]
    guess = zl.detect_language(mixed, use_library=use_library)
    assert guess.code == "de" and 0.6 < guess.shares["de"] < 0.9 and guess.shares.get("en", 0) > 0.1


def test_deterministic_and_memoised():
    a = zl.detect_language(SAMPLES["ru"])
    assert zl.detect_language(list(SAMPLES["ru"])) is a
    many = SAMPLES["en"] * 400
    assert zl.detect_language(many, max_texts=100).n_texts == 100


@pytest.mark.parametrize("record", ENGLISH_ONLY, ids=lambda r: r.id)
def test_english_only_encoders_warn_for_german_russian_chinese_only(record, use_library):
    assert zl.model_languages(record).codes == ("en",) and not zl.model_languages(record).multilingual
    assert zl.language_warning(record, zl.detect_language(SAMPLES["en"], use_library=use_library)) is None
    for code, name in (("de", "German"), ("ru", "Russian"), ("zh", "Chinese")):
        w = zl.language_warning(record, zl.detect_language(SAMPLES[code], use_library=use_library))
        assert w is not None and name in w and record.id in w and "English" in w and "multilingual" in w
        assert "assumed" in w  # the offline records name no language: the warning says English was assumed
    assert "Cyrillic" in zl.language_warning(record, SAMPLES["ru"])


def test_multilingual_records_never_warn():
    records = [
        CURATED["hf:sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2"],  # domain tag multilingual
        ModelRecord(id="local:enc-a", modality="text", extra={"languages": ["multilingual"]}),
        ModelRecord(id="local:enc-b", modality="text", description="A sentence encoder for 50+ languages."),
        ModelRecord(id="local:xlm-r-encoder", modality="text"),
        ModelRecord(id="local:enc-c", modality="text", description="Cross-lingual sentence embeddings."),
    ]
    for rec in records:
        assert zl.model_languages(rec).multilingual, rec.id
        for code in SAMPLES:
            assert zl.language_warning(rec, SAMPLES[code]) is None, (rec.id, code)


def test_stated_and_named_languages():
    german = ModelRecord(id="local:enc-de", modality="text", extra={"languages": ["de"]})
    assert zl.model_languages(german) == zl.ModelLanguages(("de",), False, "record extra.languages")
    assert zl.language_warning(german, SAMPLES["de"]) is None
    assert "English" in zl.language_warning(german, SAMPLES["en"])
    by_name = ModelRecord(id="local:enc-names", modality="text", extra={"language": "English, German"})
    assert zl.model_languages(by_name).codes == ("en", "de")
    chinese = ModelRecord(id="hf:google-bert/bert-base-chinese", modality="text")
    assert zl.model_languages(chinese).codes == ("zh",)
    assert zl.language_warning(chinese, SAMPLES["zh"]) is None and zl.language_warning(chinese, SAMPLES["en"])
    tweets = CURATED["hf:vinai/bertweet-base"]  # "... English Tweets" in its description
    assert zl.model_languages(tweets).codes == ("en",) and not zl.model_languages(tweets).assumed
    # "polish" the verb is not Polish
    shiny = ModelRecord(id="local:enc-shiny", modality="text", description="we polish the embeddings")
    assert zl.model_languages(shiny).assumed


def test_no_warning_for_mostly_covered_text_code_models_and_other_modalities():
    minilm = OFFLINE["local:all-MiniLM-L6-v2"]
    assert zl.language_warning(minilm, SAMPLES["en"] * 3 + SAMPLES["de"]) is None  # mostly English
    assert zl.language_warning(minilm, SAMPLES["de"] * 3 + SAMPLES["en"]) is not None  # mostly German
    code = ModelRecord(id="local:code-enc", modality="text", domains=["code"])
    assert zl.language_warning(code, SAMPLES["zh"]) is None
    image = OFFLINE["local:mobilenet_v2.tv_in1k"]
    assert zl.language_warning(image, SAMPLES["zh"]) is None
    assert zl.language_warning(minilm, ["qwkj zxcv bnmq ertyu asdf ghjkl"] * 6) is None  # no language at all


def _chatterbot(folder: str) -> list[str]:
    import importlib.util

    spec = importlib.util.find_spec("chatterbot_corpus")  # located, never imported (an asset package)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("chatterbot-corpus is not installed (scripts/install_assets.sh)")
    texts = []
    for f in sorted((Path(next(iter(spec.submodule_search_locations))) / "data" / folder).glob("*.yml")):
        doc = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        for conv in doc.get("conversations") or []:
            texts += [str(t) for t in conv if isinstance(t, str)]
    return texts


@pytest.mark.parametrize(("folder", "code"), [("english", "en"), ("german", "de"), ("russian", "ru"), ("chinese", "zh"),
                                              ("ukrainian", "uk"), ("japanese", "ja"), ("korean", "ko"),
                                              ("french", "fr"), ("spanish", "es")])
def test_real_dialogue_corpora(folder, code, use_library):
    guess = zl.detect_language(_chatterbot(folder), use_library=use_library)
    assert guess.code == code and guess.confidence > 0.8
    warn = zl.language_warning(OFFLINE["local:all-MiniLM-L6-v2"], guess)
    assert (warn is None) == (code == "en")


DESCRIBER = "sentence-transformers/all-MiniLM-L6-v2@c4a57a7f2011"


@pytest.mark.parametrize(("text", "expected"), [
    ("Klassifiziere Röntgenbilder der Lunge nach Lungenentzündung", "German (de)"),
    ("détecter la pneumonie sur des radiographies", "French (fr)"),
    ("классифицировать отзывы клиентов по тональности", "Russian (ru)"),
    ("肺炎のX線画像を分類", "Han script"),  # too few letters for a language, the script is enough
])
def test_a_description_the_describer_cannot_read_is_named(text, expected):
    assert zl.description_language(text, DESCRIBER) == expected
    assert zl.description_language(text, "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2") is None


@pytest.mark.parametrize("text", [
    "detect pneumonia in chest X-rays",  # py3langid alone: Latin
    "tell which famous painter made a picture hanging in a museum",  # the stop-word count alone: Italian
    "speaker verification, VoxCeleb1-O EER", "MNIST", "???",
])
def test_short_english_descriptions_are_not_named(text):
    assert zl.description_language(text, DESCRIBER) is None
