"""Messages in the recipient's language: choosing the text, formatting in it, checking it."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.test_rules import PO
from tests.test_rules import rule as rules_of
from x3twilio.builtin_sources import BUILTIN
from x3twilio.config import load_config
from x3twilio.doctor import language_warnings, placeholder_differences, template_warnings
from x3twilio.errors import ConfigError
from x3twilio.locales import X3_LANGUAGES, canonical, choose
from x3twilio.sources import decode
from x3twilio.templates import compile_template

KINDS = {"expected_date": "date", "total": "decimal", "order_number": "text"}
VALUES = {"expected_date": date(2026, 12, 4), "total": Decimal("1250.5"), "order_number": "PO1"}
BY_LANGUAGE = {
    "en": "PO {order_number} by {expected_date:%d %B}",
    "fr": "Commande {order_number} pour le {expected_date:%d %B}",
}


def rule(**spec: Any) -> Any:
    return rules_of(**{"when": {"approval": "approved"}, **spec})


def render(text: str, locale: str | None) -> str:
    return compile_template(text, KINDS).render(VALUES.get, locale)


# choose(): which key of the rule's map a recipient reads


def test_the_contact_language_wins_over_the_partner_language():
    assert choose(["en", "fr"], "FRA", "ENG") == ("fr", "fr_FR")
    assert choose(["en", "fr"], "ENG", "FRA") == ("en", "en_GB")


def test_an_empty_or_unknown_contact_language_falls_to_the_partner_language():
    assert choose(["en", "fr"], "", "FRA") == ("fr", "fr_FR")
    assert choose(["en", "fr"], "XYZ", " fra ") == ("fr", "fr_FR")


def test_a_contact_language_the_rule_lacks_falls_to_the_partner_language():
    assert choose(["de", "fr"], "ENG", "FRA") == ("fr", "fr_FR")


def test_an_exact_tag_beats_the_bare_language_which_beats_another_country():
    assert choose(["en", "en_GB"], "ENG") == ("en_GB", "en_GB")
    assert choose(["en_US", "en"], "ENG") == ("en", "en_GB")
    assert choose(["de", "en-US"], "ENG") == ("en-US", "en_GB")


def test_no_matching_language_is_the_first_key_in_its_own_language():
    assert choose(["de", "fr"], "ENG", "SPA") == ("de", "de")
    assert choose(["pt-BR", "fr"]) == ("pt-BR", "pt_BR")


def test_a_folder_table_adds_and_overrides_codes():
    table = {**X3_LANGUAGES, "BRI": "pt_BR", "ENG": "en_US"}
    assert choose(["en_GB", "en_US", "pt-BR"], "BRI", table=table) == ("pt-BR", "pt_BR")
    assert choose(["en_GB", "en_US"], "ENG", table=table) == ("en_US", "en_US")


def test_tags_are_spelled_as_babel_spells_them():
    assert canonical("pt-br") == "pt_BR"
    assert canonical("ZH-hant-tw") == "zh_Hant_TW"


# Template.render(value, locale): dates and amounts in the language


def test_french_writes_french_month_and_day_names_and_a_decimal_comma():
    text = "{expected_date:%A %d %B %Y}, {expected_date:%a %b}, {total:,.2f} EUR"
    assert render(text, "fr_FR") == "vendredi 04 décembre 2026, ven. déc., 1\u202f250,50 EUR"


def test_german_groups_with_a_dot_and_leaves_fill_characters_alone():
    assert render("{expected_date:%d. %B}: {total:,.2f}", "de_DE") == "04. Dezember: 1.250,50"
    assert render("{total:.>12,.2f}|{total:.2f}", "de") == "....1.250,50|1250,50"


def test_a_date_without_a_spec_is_the_languages_medium_date():
    assert render("{expected_date}", "fr_FR") == "4 déc. 2026"
    assert render("{expected_date}", "de_DE") == "04.12.2026"
    assert render("{expected_date}", "en_GB") == "4 Dec 2026"


def test_without_a_locale_output_is_as_python_formats_it():
    text = "{order_number} {expected_date:%A %d %B} {expected_date} {total:,.2f} {total}"
    expected = "PO1 Friday 04 December 2026-12-04 1,250.50 1250.5"
    assert render(text, None) == expected
    assert render(text, "xx") == expected  # a language Babel does not know: the same


def test_numeric_directives_and_text_are_untouched_by_the_language():
    assert render("{order_number} {expected_date:%d/%m/%Y %%}", "fr_FR") == "PO1 04/12/2026 %"


# Loading rules whose texts are maps by language


def test_a_message_map_loads_each_language_with_the_first_as_default():
    loaded = rule(message=BY_LANGUAGE)
    assert list(loaded.translations) == ["en", "fr"]
    assert loaded.template.text == BY_LANGUAGE["en"] and loaded.subject is None
    record = decode(BUILTIN["purchase_orders"], PO)
    template, subject, locale = loaded.text_for("FRA", "ENG")
    assert (template.render(record.value, locale), subject, locale) == (
        "Commande POFR0110113 pour le 04 décembre",
        None,
        "fr_FR",
    )
    assert loaded.text_for("GER")[0].text == BY_LANGUAGE["en"]


def test_a_plain_message_has_no_translations_and_no_locale():
    loaded = rule(message="PO {order_number}")
    assert loaded.translations == {}
    assert loaded.text_for("FRA") == (loaded.template, None, None)


def test_email_subjects_by_language_or_one_shared_subject():
    subjects = {"fr": "Commande {order_number}", "en": "Order {order_number}"}
    loaded = rule(channel="email", message=BY_LANGUAGE, subject=subjects)
    assert loaded.subject is not None and loaded.subject.text == "Order {order_number}"
    assert loaded.text_for("FRA")[1].text == "Commande {order_number}"
    shared = rule(channel="email", message=BY_LANGUAGE, subject="PO {order_number}")
    assert {s.text for _, s in shared.translations.values()} == {"PO {order_number}"}


def test_names_include_the_placeholders_of_every_translation():
    loaded = rule(
        channel="email",
        message={"en": "{order_number}", "fr": "{expected_date:%d %B}"},
        subject={"en": "{currency}", "fr": "{total:.2f}"},
    )
    assert {"order_number", "expected_date", "currency", "total"} <= loaded.names()


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"message": {"english": "x"}}, "message.english: expected a language tag"),
        ({"message": {False: "x"}}, "YAML reads a bare no as false: quote it"),
        ({"message": {"fr_FR": "x", "fr-FR": "y"}}, "message.fr-FR: the same language as 'fr_FR'"),
        ({"message": {}}, "message: expected a text, or a map by language"),
        ({"message": {"en": "x", "fr": 3}}, "message.fr: expected a string, got an integer"),
        (
            {"message": {"en": "{order_number}", "fr": "{numero}"}},
            "rules[0].message.fr: rule r, in fr: unknown placeholder {numero}",
        ),
        (
            {"channel": "email", "message": BY_LANGUAGE, "subject": {"en": "x", "de": "y"}},
            "subject: its languages (en, de) differ from the message's (en, fr)",
        ),
        (
            {"channel": "email", "message": "x", "subject": {"en": "x"}},
            "subject: a subject by language needs a message by language",
        ),
        ({"message": ["en", "x"]}, "message: expected a string or a mapping, got a list"),
    ],
)
def test_a_bad_text_map_is_a_config_error_naming_rule_key_and_language(spec, problem):
    with pytest.raises(ConfigError) as caught:
        rule(**spec)
    assert problem in str(caught.value)


# The configuration's languages table and check's warnings

MINIMAL = {
    "x3": {"url": "https://x3.example.com:8124", "folder": "SEED", "user": "u", "password": "p"},
    "twilio": {"account_sid": "AC1", "auth_token": "t", "from": "+14155550100"},
}
DRIFTING = {
    "en": "PO {order_number} by {expected_date:%d %b}",
    "fr": "Commande {order_number}",
    "de": "Bestellung {order_number} bis {expected_date:%d %b}: {total:,.2f}",
}


def write(tmp_path: Path, **top: Any) -> Path:
    path = tmp_path / "x3twilio.yaml"
    path.write_text(
        yaml.safe_dump({**MINIMAL, **top}, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    return path


def a_rule(message: Any) -> dict[str, Any]:
    return {
        "name": "po",
        "source": "purchase_orders",
        "when": {"approval": "approved"},
        "to": ["supplier"],
        "message": message,
    }


def test_languages_extend_and_override_the_built_in_table(tmp_path):
    config = load_config(write(tmp_path, languages={"BRI": "pt-BR", "eng": "en_US"}), env={})
    assert config.languages == {**X3_LANGUAGES, "BRI": "pt-BR", "ENG": "en_US"}
    assert load_config(write(tmp_path), env={}).languages == X3_LANGUAGES


@pytest.mark.parametrize(
    ("languages", "problem"),
    [
        ({"FRENCH": "fr"}, "languages.FRENCH: expected an X3 language code"),
        ({"BRI": "Brazilian"}, "languages.BRI: expected a language tag such as en, fr"),
        ({"BRI": 3}, "languages.BRI: expected a language tag such as en, fr"),
    ],
)
def test_a_bad_languages_entry_is_a_config_error(tmp_path, languages, problem):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, languages=languages), env={})
    assert problem in str(caught.value)


def test_check_names_what_each_translation_lacks_or_alone_has(tmp_path):
    config = load_config(write(tmp_path, rules=[a_rule(DRIFTING)]), env={})
    assert language_warnings(config) == [
        "rule po: translations use different placeholders: fr lacks {expected_date}; "
        "de has {total} the others do not"
    ]


def test_with_two_languages_the_one_without_a_name_lacks_it():
    assert placeholder_differences({"en": {"a", "b"}, "fr": {"a"}}) == "fr lacks {b}"
    assert placeholder_differences({"en": {"a"}, "fr": {"a"}}) == ""


def test_translations_alike_and_plain_rules_raise_no_language_warning(tmp_path):
    rules = [a_rule(BY_LANGUAGE), {**a_rule("PO {order_number}"), "name": "plain"}]
    assert language_warnings(load_config(write(tmp_path, rules=rules), env={})) == []


def test_check_warns_about_languages_babel_does_not_know(tmp_path):
    config = load_config(
        write(tmp_path, rules=[a_rule({"en": "x", "qq": "y"})], languages={"ZZZ": "zz_ZZ"}),
        env={},
    )
    assert language_warnings(config) == [
        "rule po: Babel knows no language 'qq': dates and amounts in it are written as "
        "without a language",
        "languages.ZZZ: Babel knows no language 'zz_ZZ': dates and amounts in it are written "
        "as without a language",
    ]


def test_sms_warnings_look_at_each_language_as_it_writes_amounts(tmp_path):
    texts = {"en": "PO {order_number}: {total:,.2f}", "fr": "Reçu {order_number}: {total:,.2f}"}
    texts["de"] = "Bestellung {order_number}: {total:,.2f}"
    config = load_config(write(tmp_path, rules=[a_rule(texts)]), env={})
    assert template_warnings(config) == [
        "rule po (fr): 'ç' makes every message UCS-2 (70 characters a segment instead of 160)",
    ]
    texts["fr"] = "Commande {order_number}: {total:,.2f}"
    config = load_config(write(tmp_path, rules=[a_rule(texts)]), env={})
    assert template_warnings(config) == [
        "rule po (fr): '\\u202f' (in dates or amounts as fr writes them) makes every message "
        "UCS-2 (70 characters a segment instead of 160)",
    ]


def test_check_offline_prints_the_translation_warning(tmp_path):
    path = write(tmp_path, rules=[a_rule(DRIFTING)])
    result = subprocess.run(
        [sys.executable, "-m", "x3twilio", "--config", str(path), "check", "--offline"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert f"{path}: valid (1 rules over 1 sources)" in result.stdout
    assert (
        "warning: rule po: translations use different placeholders: fr lacks "
        "{expected_date}; de has {total} the others do not\n"
    ) in result.stderr
