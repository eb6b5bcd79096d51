"""Configuration: strict, and every error names the file and the path inside it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from x3twilio.config import load_config
from x3twilio.errors import ConfigError

ENV = {
    "X3_URL": "http://x3.test:8124",
    "X3_USER": "admin",
    "X3_PASSWORD": "pw",
    "TWILIO_ACCOUNT_SID": "AC123",
    "TWILIO_AUTH_TOKEN": "token",
    "TWILIO_FROM": "+15017122661",
    "SENDGRID_API_KEY": "SG.key",
}
EXAMPLE = Path(__file__).parent.parent / "rules.example.yaml"


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "x3twilio.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def example() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


def error_for(tmp_path: Path, data: object) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, data), env=ENV)
    return str(caught.value)


def test_example_config_loads_with_its_variables_set():
    config = load_config(EXAMPLE, env=ENV)
    assert [r.name for r in config.rules] == [
        "po-approved",
        "po-expected-today",
        "invoice-due-soon",
        "payment-sent",
        "payment-remittance",
        "large-invoice-due-today",
    ]
    assert config.x3.lookback == 600
    assert config.state_dir == EXAMPLE.parent / "state"
    assert config.groups["finance"] == ("+33612000001", "+447911000111", "finance@example.com")
    assert {r.channel for r in config.rules} == {"sms", "email", "voice"}


def test_relative_state_dir_is_relative_to_the_config_file(tmp_path):
    config = load_config(write(tmp_path, example()), env=ENV)
    assert config.state_dir == tmp_path.resolve() / "state"


def test_missing_environment_variable_is_named(tmp_path):
    env = dict(ENV)
    del env["X3_PASSWORD"]
    with pytest.raises(
        ConfigError,
        match=r"x3twilio.yaml: x3.password: environment "
        r"variable X3_PASSWORD is not set",
    ):
        load_config(write(tmp_path, example()), env=env)


def test_unknown_condition_field_names_rule_index_and_key(tmp_path):
    data = example()
    data["rules"][2]["when"]["stauts"] = "open"
    assert error_for(tmp_path, data).endswith(
        "x3twilio.yaml: rules[2].when.stauts: unknown field of open_items"
    )


def test_unknown_top_level_key_is_rejected(tmp_path):
    data = example()
    data["twillio"] = {}
    assert "x3twilio.yaml: twillio: unknown field" in error_for(tmp_path, data)


def test_unknown_template_placeholder_is_a_load_time_error(tmp_path):
    data = example()
    data["rules"][0]["message"] = "Order {order_numbr} approved"
    message = error_for(tmp_path, data)
    assert "rules[0].message: unknown placeholder {order_numbr}" in message


def test_attribute_access_in_template_is_refused(tmp_path):
    data = example()
    data["rules"][0]["message"] = "{order_number.__class__}"
    assert "only plain names are allowed" in error_for(tmp_path, data)


def test_bad_format_spec_is_a_load_time_error(tmp_path):
    data = example()
    data["rules"][0]["message"] = "{total:%d %b}"
    assert "rules[0].message: placeholder {total:%d %b}: bad format spec" in error_for(
        tmp_path, data
    )


def test_invalid_group_phone_is_rejected(tmp_path):
    data = example()
    data["groups"]["finance"] = ["+33 6 12"]
    assert "groups.finance: [0] '+33 6 12' is neither a valid E.164" in error_for(tmp_path, data)


def test_unknown_menu_word_lists_the_valid_ones(tmp_path):
    data = example()
    data["rules"][0]["when"]["approval"] = "aproved"
    message = error_for(tmp_path, data)
    assert "rules[0].when.approval: 'aproved' is not one of approved, automatic" in message


def test_unknown_source_and_group_are_named(tmp_path):
    data = example()
    data["rules"][1]["source"] = "purchase_order"
    assert "rules[1].source: unknown source 'purchase_order'" in error_for(tmp_path, data)
    data = example()
    data["rules"][2]["to"] = ["finanse"]
    assert "rules[2].to[0]: unknown group 'finanse'" in error_for(tmp_path, data)


def test_malformed_yaml_gives_line_and_column(tmp_path):
    message = error_for(tmp_path, "x3:\n  url: [unclosed\n")
    assert "x3twilio.yaml: line 3, column" in message
    assert "not valid YAML" in message


def test_bad_duration_and_type_errors(tmp_path):
    data = example()
    data["x3"]["lookback"] = "ten minutes"
    assert "x3.lookback: expected a duration" in error_for(tmp_path, data)
    data = example()
    data["x3"]["page_size"] = "many"
    assert "x3.page_size: expected an integer, got a string" in error_for(tmp_path, data)


def test_custom_source_needs_class_and_key(tmp_path):
    data = example()
    data["sources"]["deliveries"] = {"fields": {"number": {"code": "SDHNUM"}}}
    assert "sources.deliveries.class: required for a custom source" in error_for(tmp_path, data)


def test_custom_source_and_raw_code_conditions_load(tmp_path):
    data = example()
    data["sources"]["deliveries"] = {
        "class": "SDELIVERY",
        "key": ["SDHNUM"],
        "partner": {"field": "BPCORD", "kind": "customer"},
        "fields": {
            "number": {"code": "SDHNUM"},
            "status": {"code": "CFMFLG", "type": "menu", "values": {1: "no", 2: "yes"}},
        },
    }
    data["rules"].append(
        {
            "name": "delivered",
            "source": "deliveries",
            "when": {"status": "yes", "BPCORD": "C1"},
            "to": ["customer"],
            "message": "Delivery {number} confirmed",
        }
    )
    config = load_config(write(tmp_path, data), env=ENV)
    assert config.sources["deliveries"].representation == "SDELIVERY"


def test_supplier_recipient_on_a_customer_source_is_refused(tmp_path):
    data = example()
    data["rules"][0]["source"] = "sales_invoices"
    data["rules"][0]["when"] = {"amount": {"gt": 0}}
    data["rules"][0]["message"] = "x"
    assert "rules[0].to[0]: records of sales_invoices name a customer" in error_for(tmp_path, data)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://my_shim.example.com", "the host 'my_shim.example.com' has an underscore"),
        ("https://-shim.example.com", "is not a valid host name"),
        ("https://shim..example.com", "is not a valid host name"),
        ("http://shim.example.com", "expected https:// for shim.example.com"),
        ("http://10.0.0.5:8080", "expected https:// for 10.0.0.5"),
        ("https://user:secret@shim.example.com", "credentials in the URL are refused"),
        ("https://shim.example.com/?token=1", "without ?query or #fragment"),
        ("https://shim.example.com/#x", "without ?query or #fragment"),
        ("shim.example.com", "expected an http(s) URL"),
    ],
)
def test_public_url_is_a_callback_base_twilio_accepts(tmp_path, url, problem):
    """Twilio refuses a StatusCallback whose host has an underscore (error 21609) and
    calls back over the internet: https, plain http only on this machine."""
    message = error_for(tmp_path, {**example(), "public_url": url})
    assert "public_url" in message and problem in message
    assert "secret" not in message


@pytest.mark.parametrize(
    "url",
    [
        "https://x3twilio.example.com",
        "https://x3twilio.example.com:8443/shim",
        "https://203.0.113.7",
        "http://127.0.0.1:8080",
        "http://127.1.2.3:9000",
        "http://[::1]:8080",
        "http://localhost:8080",
    ],
)
def test_public_url_accepts_https_and_plain_http_on_loopback(tmp_path, url):
    config = load_config(write(tmp_path, {**example(), "public_url": url}), env=ENV)
    assert config.public_url == url


def test_a_bad_public_url_stops_the_cli_with_78_and_no_traceback(tmp_path):
    import subprocess
    import sys

    path = write(tmp_path, {**example(), "public_url": "https://my_shim.example.com"})
    result = subprocess.run(
        [sys.executable, "-m", "x3twilio", "--config", str(path), "check", "--offline"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **ENV},
        timeout=60,
    )
    assert result.returncode == 78
    assert "public_url" in result.stderr and "underscore" in result.stderr
    assert "Traceback" not in result.stderr
