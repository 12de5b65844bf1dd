"""Every sample of ../shared/data/payloads/secret_samples.json is redacted wherever it is put."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest

from apiwatch.events import Event
from apiwatch.sanitize import SanitizeConfig, Sanitizer

# Parametrization needs the samples at collection time: same path as the `shared_data` fixture.
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SAMPLES_PATH = SHARED_DATA / "payloads" / "secret_samples.json"
SAMPLES: list[dict[str, Any]] = json.loads(SAMPLES_PATH.read_text())["samples"]
IDS = [sample["id"] for sample in SAMPLES]
Sample = dict[str, Any]

#: Samples only recognisable by the name they travel under, and that name.
BY_NAME_ONLY = {
    "aws_presigned_url": "X-Amz-Signature",
    "query_password": "password",
    "query_api_key": "api_key",
    "query_oauth_code": "code",
    "query_client_secret": "client_secret",
    "azure_sas_sig": "sig",
    "aws_secret_doc_example": "aws_secret_access_key",
    "http_basic": "auth",
    "http_bearer_opaque": "access_token",
    "cookie_session": "sessionid",
    "set_cookie": "session",
    "json_password": "password",
    "json_refresh_token": "refresh_token",
    "form_password": "password",
    "keyword_assignment": "password",
}


def secret_forms(sample: dict[str, Any]) -> set[str]:
    """The secret as it appears in the sample's context (raw, percent-encoded, card groups)."""
    value = sample["value"]
    groups = " ".join(value[i : i + 4] for i in range(0, len(value), 4))
    forms = {value, quote(value, safe=""), groups}
    present = {form for form in forms if form in sample["context"]}
    return present | {value}


def assert_absent(sample: dict[str, Any], sanitized: Any) -> None:
    blob = orjson.dumps(sanitized).decode()
    for form in secret_forms(sample):
        # check the JSON text and every decoded string (JSON escaping could hide a newline form)
        assert form not in blob, (sample["id"], blob)
        assert form not in json.dumps(json.loads(blob), ensure_ascii=False), (sample["id"], blob)


def sample_query(sample: dict[str, Any]) -> str:
    """The sample as a query string: its own for query samples, else `name=value`."""
    if sample["location"] == "query":
        return str(sample["context"].split("?", 1)[1])
    return f"{BY_NAME_ONLY.get(sample['id'], 'q')}={sample['value']}"


@pytest.fixture(scope="module")
def sanitizer(shared_data: Path) -> Sanitizer:
    """One sanitizer for the module (the data folder must exist)."""
    assert shared_data == SHARED_DATA
    return Sanitizer(SanitizeConfig(fingerprint_key=b"test-key-0123456789"))


@pytest.mark.parametrize("sample", SAMPLES, ids=IDS)
class TestSecretSamples:
    def test_in_free_text_message(self, sanitizer: Sanitizer, event: Event, sample: Sample) -> None:
        """The sample's context in `message` loses its secret, and `message` is listed."""
        event["message"] = f"request rejected: {sample['context']}"
        out = sanitizer(event)
        assert_absent(sample, out)
        assert "message" in out["apiwatch.redacted"]

    def test_in_headers(self, sanitizer: Sanitizer, sample: Sample) -> None:
        """As a header: under its own name for header samples, and as any header's value."""
        headers = [("X-Debug", sample["context"])]
        if sample["location"] == "header":
            name, _, value = sample["context"].partition(": ")
            headers.append((name, value))
        assert_absent(sample, sanitizer.headers(headers))

    def test_in_event_field_as_header_value(
        self, sanitizer: Sanitizer, event: Event, sample: Sample
    ) -> None:
        """As a label holding a header line: redacted like free text."""
        event["labels.header"] = sample["context"]
        assert_absent(sample, sanitizer(event))

    def test_in_query_string(self, sanitizer: Sanitizer, event: Event, sample: Sample) -> None:
        """In `url.query` and in `url.original`: both fields lose the secret."""
        query = sample_query(sample)
        event["url.query"] = query
        event["url.original"] = f"https://api.example.com/v1/items?{query}"
        out = sanitizer(event)
        assert_absent(sample, out)
        assert {"url.query", "url.original"} <= set(out["apiwatch.redacted"])

    def test_in_json_body(self, sanitizer: Sanitizer, sample: Sample) -> None:
        """In a decoded JSON body (nested, under the context's key or as text) and serialized."""
        key = BY_NAME_ONLY.get(sample["id"], "data")
        body = {"outer": {key: sample["value"], "text": sample["context"]}}
        assert_absent(sample, sanitizer.json_body(body))
        assert_absent(sample, sanitizer({"message": json.dumps(body)}))


@pytest.mark.parametrize(
    "sample", [s for s in SAMPLES if s["id"] not in BY_NAME_ONLY], ids=lambda s: s["id"]
)
def test_recognised_by_format_alone(sample: Sample) -> None:
    """A secret with a known format is redacted even in a field with no hint (`user.name`)."""
    out = Sanitizer()({"user.name": sample["value"], "event.id": "x"})
    assert_absent(sample, out)
    assert out["apiwatch.redacted"] == ["user.name"]
