"""Languages: which text of a rule a recipient reads, from the X3 language codes.

X3 gives a language as a code of its own (`LAN` on a partner, `CNTLAN` on a contact): ENG,
FRA, GER... A rule's `message` map is keyed by language tags (`en`, `fr_FR`, `pt-BR`). The
table below turns one into the other; a folder that defines codes of its own extends it with
the configuration's `languages:` map. Nothing here imports Babel: a plain poll never does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from x3twilio.templates import Template, TemplateError, compile_template
from x3twilio.yamlnode import Node

# language key -> (message, subject) of a rule, in the file's order.
Texts = dict[str, tuple[Template, Template | None]]

# X3's usual language codes and the language and country they stand for. Only ENG's meaning
# is confirmed by a real folder ("English - British"); a folder whose codes differ says so
# in `languages:`, which overrides this table.
X3_LANGUAGES: Mapping[str, str] = {
    "ENG": "en_GB",
    "FRA": "fr_FR",
    "GER": "de_DE",
    "SPA": "es_ES",
    "ITA": "it_IT",
    "POR": "pt_PT",
    "DUT": "nl_NL",
}
# language[_Script][_REGION]: en, fr_FR, pt-BR, zh_Hant_TW (`-` or `_`, as people write them).
_TAG = re.compile(r"^[A-Za-z]{2,3}(?:[_-][A-Za-z]{4})?(?:[_-](?:[A-Za-z]{2}|\d{3}))?$")
TAG_FORMS = "a language tag such as en, fr, en_GB or pt-BR"
# What X3 allows a language code to be (the LAN data type: up to 3 letters or digits).
_X3_CODE = re.compile(r"^[A-Za-z0-9]{1,3}$")


def is_tag(text: str) -> bool:
    """Whether `text` looks like a language tag: `en`, `fr_FR`, `pt-BR`."""
    return bool(_TAG.match(text))


def is_x3_code(text: str) -> bool:
    """Whether `text` can be an X3 language code (ENG, FRA, BRI...)."""
    return bool(_X3_CODE.match(text))


def canonical(tag: str) -> str:
    """The tag as Babel spells it: `pt-br` -> `pt_BR`, `zh-hant-tw` -> `zh_Hant_TW`."""
    language, *rest = tag.replace("-", "_").split("_")
    tail = [part.title() if len(part) == 4 else part.upper() for part in rest]
    return "_".join([language.lower(), *tail])


def language_of(tag: str) -> str:
    """The language part of a tag: `fr_FR` -> `fr`."""
    return canonical(tag).split("_")[0]


def tag_for(code: str, table: Mapping[str, str] = X3_LANGUAGES) -> str | None:
    """The language tag of an X3 code, or None when the code is empty or unknown."""
    return table.get(code.strip().upper()) if code else None


def choose(
    keys: Sequence[str], *codes: str, table: Mapping[str, str] = X3_LANGUAGES
) -> tuple[str, str]:
    """(the key of `keys` to write in, the locale to format with) for a recipient whose X3
    language codes are `codes`, most preferred first (the contact's, then the partner's).

    For each known code in turn: the key that is its tag, else a key of the same language
    (a bare `fr` before another country's `fr_CA`); the locale is then the recipient's own
    (`en_GB` reading the `en` text writes British dates). With no code matching, the rule's
    first key, formatted in its own language: a French text never shows English months.
    """
    if not keys:
        raise ValueError("a rule's text map holds at least one language")
    for code in codes:
        tag = tag_for(code, table)
        if tag is None:
            continue  # an empty CNTLAN, or a code this folder did not map: the next one
        key = _best_key(keys, tag)
        if key is not None:
            return key, canonical(tag)
    return keys[0], canonical(keys[0])


def _best_key(keys: Iterable[str], tag: str) -> str | None:
    wanted, language = canonical(tag), language_of(tag)
    by_form = {canonical(key): key for key in keys}
    if wanted in by_form:
        return by_form[wanted]
    if language in by_form:
        return by_form[language]
    same = [key for form, key in by_form.items() if form.split("_")[0] == language]
    return same[0] if same else None


def load_texts(
    spec: Node, kinds: Mapping[str, str], channel: str
) -> tuple[Template, Template | None, Texts]:
    """A rule's message and (email) subject, each one text or a map by language:
    (message, subject, {}) for one text, else the first language's and every language's."""
    messages = _templates(spec, "message", kinds)
    subjects = _templates(spec, "subject", kinds) if channel == "email" else {}
    shared = subjects.pop("", None)  # one subject for every language
    if "" in messages:
        if subjects:
            raise spec.error("subject", "a subject by language needs a message by language")
        return messages[""], shared, {}
    if subjects and set(subjects) != set(messages):
        raise spec.error(
            "subject",
            f"its languages ({', '.join(subjects)}) differ from the message's "
            f"({', '.join(messages)}): give a subject in each, or one subject for all",
        )
    texts = {key: (text, shared or subjects.get(key)) for key, text in messages.items()}
    template, subject = next(iter(texts.values()))
    return template, subject, texts


def _templates(spec: Node, key: str, kinds: Mapping[str, str]) -> dict[str, Template]:
    """`key` compiled: {"": template} for one text, else {language: template}, in order."""
    given = spec.get(key, (str, dict))
    if isinstance(given, str):
        try:
            return {"": compile_template(given, kinds)}
        except TemplateError as exc:
            raise spec.error(key, str(exc)) from None
    if not given:
        raise spec.error(key, "expected a text, or a map by language such as {en: ..., fr: ...}")
    texts = Node(spec.file, spec.where(key), given)
    _check_keys(texts, list(given))
    rule = spec.data.get("name", "?")
    compiled = {}
    for language in given:
        try:
            compiled[language] = compile_template(texts.get(language, str), kinds)
        except TemplateError as exc:
            raise texts.error(language, f"rule {rule}, in {language}: {exc}") from None
    return compiled


def _check_keys(texts: Node, keys: list[Any]) -> None:
    """Every key a language tag, and no language twice (`fr_FR` and `fr-FR`)."""
    seen: dict[str, str] = {}
    for key in keys:
        if not isinstance(key, str) or not is_tag(key):
            hint = " (YAML reads a bare no as false: quote it, 'no')" if key is False else ""
            raise texts.error(str(key), f"expected {TAG_FORMS} as the key, got {key!r}{hint}")
        form = canonical(key)
        if form in seen:
            raise texts.error(key, f"the same language as {seen[form]!r}: give it once")
        seen[form] = key
