"""PRESETTLE_API_KEY=KEY:INSTITUTION: one way for bench_e2e and Locust to name the key's institution."""

from __future__ import annotations

import pytest

from loadtest.apikey import KeyFormatError, parse_api_keys, rejection_message, retired_variables
from loadtest.bench_e2e import build_parser
from services.common.settings import load_settings


@pytest.mark.parametrize("raw, expected", [
    ("secret-key-1:H7", [("secret-key-1", "H7")]),
    (" secret-key-1 : H7 ", [("secret-key-1", "H7")]),
    ("dev-key-h2", [("dev-key-h2", "H2")]),          # a development key knows its institution
    ("dev-key-h1", [("dev-key-h1", "H1")]),
    ("secret-key-1", [("secret-key-1", "H1")]),      # any other plain key: H1
    ("k1-aaaaaa:H1,k2-bbbbbb:H2,", [("k1-aaaaaa", "H1"), ("k2-bbbbbb", "H2")]),
    ("k1-aaaaaa:H1, dev-key-h2", [("k1-aaaaaa", "H1"), ("dev-key-h2", "H2")]),
])
def test_keys_and_institutions(raw: str, expected: list[tuple[str, str]]) -> None:
    assert parse_api_keys(raw) == expected


@pytest.mark.parametrize("raw", ["", " , ", "secret-key-1:", ":H1", "a:H1,:H2"])
def test_malformed_values_name_the_variable(raw: str) -> None:
    with pytest.raises(KeyFormatError, match="PRESETTLE_API_KEY"):
        parse_api_keys(raw)


def test_rejections_say_what_to_set_without_printing_the_key() -> None:
    forbidden = rejection_message(403, '{"error":"forbidden","message":"this API key may only submit events of '
                                  'institution H2"}', "super-secret-key", "H1", "bench_e2e")
    assert "403" in forbidden and "institution H2" in forbidden and "institution H1" in forbidden
    assert "PRESETTLE_API_KEY=KEY:INSTITUTION" in forbidden
    unknown = rejection_message(401, '{"error":"unauthorized"}', "super-secret-key", "H1", "locust")
    assert "401" in unknown and "PRESETTLE_API_KEYS" in unknown and "dev-key-h1:H1" in unknown
    for message in (forbidden, unknown):
        assert "super-secret-key" not in message


def test_retired_variables_are_named() -> None:
    assert retired_variables({"PRESETTLE_INSTITUTION": "H2"}) == [
        "PRESETTLE_INSTITUTION is no longer read: name the institution in PRESETTLE_API_KEY=KEY:INSTITUTION"]
    assert retired_variables({}) == []


def test_bench_reads_the_broker_and_fetch_wait_from_the_stack_settings() -> None:
    defaults = load_settings({"PRESETTLE_EMBEDDED_BROKER_PORT": "29555", "PRESETTLE_FETCH_MAX_WAIT_MS": "7"})
    args = build_parser(defaults).parse_args([])
    assert args.bootstrap == "127.0.0.1:29555" and args.fetch_wait_ms == 7
    cluster = load_settings({"PRESETTLE_KAFKA_BOOTSTRAP": "kafka-1:9092,kafka-2:9092"})
    assert build_parser(cluster).parse_args([]).bootstrap == "kafka-1:9092,kafka-2:9092"
    help_text = build_parser(defaults).format_help()
    for option in ("--rate", "--duration", "--url", "--api-key", "--bootstrap", "--fetch-wait-ms",
                   "--floor-duration", "--warmup", "--budget-ms"):
        assert option in help_text
    assert "PRESETTLE_API_KEY=KEY:INSTITUTION" in help_text and "Exit codes" in help_text
