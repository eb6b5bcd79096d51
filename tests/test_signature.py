from __future__ import annotations

import hashlib
from urllib.parse import quote, urlparse

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from x3twilio.signature import compute_signature, url_variants, validate_signature

# The SDKs' shared base vector (TWILIO.md §8.1).
DOC_TOKEN = "12345"
DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
DOC_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}
DOC_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="


class QueryDict(dict):  # type: ignore[type-arg]
    """The shape the official validator reads repeated keys from (Django's getlist)."""

    def getlist(self, name: str) -> list[str]:
        return list(self[name])


def test_compute_should_reproduce_the_documented_example() -> None:
    assert compute_signature(DOC_URL, DOC_PARAMS, DOC_TOKEN) == DOC_SIGNATURE


def test_validate_should_accept_the_documented_example() -> None:
    assert validate_signature(DOC_URL, DOC_PARAMS, DOC_SIGNATURE, DOC_TOKEN)


@pytest.mark.parametrize(
    ("url", "params", "token"),
    [
        (DOC_URL, {**DOC_PARAMS, "Digits": "1235"}, DOC_TOKEN),
        (DOC_URL, {**DOC_PARAMS, "Extra": ""}, DOC_TOKEN),
        (DOC_URL, {k: v for k, v in DOC_PARAMS.items() if k != "To"}, DOC_TOKEN),
        (DOC_URL.replace("foo=1", "foo=2"), DOC_PARAMS, DOC_TOKEN),
        (DOC_URL.replace("https", "http"), DOC_PARAMS, DOC_TOKEN),
        (DOC_URL, DOC_PARAMS, "12346"),
    ],
)
def test_validate_should_reject_tampering(url: str, params: dict[str, str], token: str) -> None:
    assert not validate_signature(url, params, DOC_SIGNATURE, token)


@pytest.mark.parametrize("signature", [None, "", "not-a-signature", "é" * 28])
def test_validate_should_reject_missing_or_garbage_signatures(
    signature: str | None,
) -> None:
    assert not validate_signature(DOC_URL, DOC_PARAMS, signature, DOC_TOKEN)


def test_params_may_be_given_as_pairs() -> None:
    pairs = list(DOC_PARAMS.items())

    assert compute_signature(DOC_URL, pairs, DOC_TOKEN) == DOC_SIGNATURE
    # An iterator must survive both port candidates; the second one is the match here.
    signed_with_port = compute_signature(DOC_URL.replace(".com/", ".com:443/"), pairs, "t")
    assert validate_signature(DOC_URL, iter(pairs), signed_with_port, "t")


def test_empty_values_should_still_sign_their_name() -> None:
    with_empty = compute_signature(DOC_URL, {**DOC_PARAMS, "FromCity": ""}, DOC_TOKEN)

    assert with_empty != DOC_SIGNATURE
    assert validate_signature(DOC_URL, {**DOC_PARAMS, "FromCity": ""}, with_empty, "12345")


def test_repeated_values_should_be_sorted_and_deduplicated() -> None:
    one = compute_signature(DOC_URL, {"MediaUrl": ["b", "a", "b"]}, "t")

    assert one == compute_signature(DOC_URL, {"MediaUrl": ["a", "b"]}, "t")
    assert one == compute_signature(DOC_URL, [("MediaUrl", "b"), ("MediaUrl", "a")], "t")
    assert one == RequestValidator("t").compute_signature(
        DOC_URL, QueryDict(MediaUrl=["b", "a", "b"])
    )


def test_an_explicit_port_should_validate_against_a_signature_without_it() -> None:
    signature = compute_signature("https://host.example/x?a=1", DOC_PARAMS, "t")

    assert validate_signature("https://host.example:1234/x?a=1", DOC_PARAMS, signature, "t")


def test_a_missing_port_should_validate_against_a_signature_with_the_default() -> None:
    signature = compute_signature("https://host.example:443/x", DOC_PARAMS, "t")

    assert validate_signature("https://host.example/x", DOC_PARAMS, signature, "t")
    assert not validate_signature("http://host.example/x", DOC_PARAMS, signature, "t")


def test_port_handling_should_survive_userinfo_and_ipv6() -> None:
    # twilio-python splits the netloc on ":" and gets these wrong; the intent is clear.
    assert url_variants("https://u:p@h.example:8443/x?y=1") == [
        "https://u:p@h.example/x?y=1",
        "https://u:p@h.example:8443/x?y=1",
    ]
    assert url_variants("http://[::1]/x") == ["http://[::1]/x", "http://[::1]:80/x"]


def test_the_query_string_should_be_signed_verbatim() -> None:
    encoded = compute_signature("https://h.example/x?q=it%27s", {}, "t")

    assert not validate_signature("https://h.example/x?q=it's", {}, encoded, "t")
    assert validate_signature("https://h.example/x?q=it%27s", None, encoded, "t")


def json_url(body: bytes, base: str = "https://h.example/hook?x=1") -> str:
    return f"{base}&bodySHA256={hashlib.sha256(body).hexdigest()}"


def test_json_bodies_should_validate_through_body_sha256() -> None:
    body = b'{"event": "delivered", "note": "caf\xc3\xa9"}'
    url = json_url(body)
    signature = compute_signature(url, body, "t")

    assert validate_signature(url, body, signature, "t")
    assert validate_signature(url, body.decode(), signature, "t")
    assert RequestValidator("t").validate(url, body.decode(), signature)


def test_json_bodies_should_fail_when_the_body_was_changed() -> None:
    body = b'{"a": 1}'
    url = json_url(body)
    signature = compute_signature(url, body, "t")

    assert not validate_signature(url, b'{"a": 2}', signature, "t")


def test_json_bodies_should_fail_without_body_sha256() -> None:
    url = "https://h.example/hook?x=1"
    body = '{"a": 1}'

    assert not validate_signature(url, body, compute_signature(url, body, "t"), "t")


# -- cross-checks against the official helper library ---------------------------------

url_safe = st.text(alphabet="abcXYZ019-._~!$'()*,;:@%+&=/", max_size=12).map(
    lambda text: quote(text, safe="-._~!$'()*,;:@+&=/")
)
query_part = st.lists(st.tuples(url_safe, url_safe), max_size=3).map(
    lambda pairs: "&".join(f"{name}={value}" for name, value in pairs)
)


@st.composite
def urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http", "https"]))
    host = draw(st.from_regex(r"[a-z][a-z0-9-]{0,8}\.(example|test)", fullmatch=True))
    port = draw(st.none() | st.integers(1, 65535))
    path = "/" + draw(url_safe).lstrip("/")
    query = draw(query_part)
    url = f"{scheme}://{host}{'' if port is None else f':{port}'}{path}"
    url += f"?{query}" if query else ""
    assume(urlparse(url).geturl() == url)  # the oracle re-serialises the URL
    return url


names = st.text(min_size=1, max_size=8)
values = st.text(max_size=12)  # unicode and empty strings included
tokens = st.text(min_size=1, max_size=32)


@settings(max_examples=60)
@given(urls(), st.dictionaries(names, values, max_size=6), tokens)
def test_compute_should_equal_the_official_validator(
    url: str, params: dict[str, str], token: str
) -> None:
    assert compute_signature(url, params, token) == RequestValidator(token).compute_signature(
        url, params
    )


@settings(max_examples=60)
@given(urls(), st.dictionaries(names, st.lists(values, min_size=1, max_size=4)), tokens)
def test_repeated_keys_should_equal_the_official_validator(
    url: str, params: dict[str, list[str]], token: str
) -> None:
    ours = compute_signature(url, params, token)

    assert ours == RequestValidator(token).compute_signature(url, QueryDict(params))
    assert validate_signature(url, params, ours, token)


@settings(max_examples=60)
@given(urls(), st.dictionaries(names, values, max_size=6), tokens, st.integers(0, 2))
def test_validate_should_agree_with_the_official_validator_on_port_variants(
    url: str, params: dict[str, str], token: str, variant: int
) -> None:
    signed_url = [url, *url_variants(url)][variant]
    signature = RequestValidator(token).compute_signature(signed_url, params)

    assert validate_signature(url, params, signature, token)
    assert RequestValidator(token).validate(url, params, signature)


@settings(max_examples=60)
@given(urls(), st.dictionaries(names, values, min_size=1, max_size=6), tokens, names)
def test_tampered_requests_should_fail_for_both(
    url: str, params: dict[str, str], token: str, extra: str
) -> None:
    signature = compute_signature(url, params, token)
    tampered = {**params, extra: params.get(extra, "") + "x"}
    official = RequestValidator(token)

    assert not validate_signature(url, tampered, signature, token)
    assert not official.validate(url, tampered, signature)
    assert not validate_signature(url + "x", params, signature, token)
    assert not official.validate(url + "x", params, signature)
    assert not validate_signature(url, params, signature, token + "x")
    assert not RequestValidator(token + "x").validate(url, params, signature)


@settings(max_examples=40)
@given(urls(), st.text(max_size=40), tokens)
def test_json_bodies_should_agree_with_the_official_validator(
    url: str, body: str, token: str
) -> None:
    joiner = "&" if "?" in url else "?"
    signed_url = f"{url}{joiner}bodySHA256={hashlib.sha256(body.encode()).hexdigest()}"
    signature = compute_signature(signed_url, body, token)

    assert signature == RequestValidator(token).compute_signature(signed_url, {})
    assert validate_signature(signed_url, body, signature, token)
    assert RequestValidator(token).validate(signed_url, body, signature)
    assert not validate_signature(signed_url, body + " ", signature, token)
    assert not RequestValidator(token).validate(signed_url, body + " ", signature)
