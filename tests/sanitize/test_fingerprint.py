"""API key fingerprints: keyed, stable, short, never the key."""

from __future__ import annotations

from apiwatch.sanitize import SanitizeConfig, Sanitizer
from apiwatch.sanitize.fingerprint import Fingerprinter, looks_like_fingerprint

KEY = "sk_live_FAKEexample07elszGNU18fm"


class TestFingerprint:
    def test_stable_for_one_key(self) -> None:
        """The same API key under the same deployment key gives the same id, across instances."""
        assert Fingerprinter(b"k" * 32)(KEY) == Fingerprinter(b"k" * 32)(KEY)

    def test_differs_across_deployment_keys(self) -> None:
        """Two deployments (HMAC keys) give unrelated ids for one API key."""
        assert Fingerprinter(b"k" * 32)(KEY)[0] != Fingerprinter(b"j" * 32)(KEY)[0]

    def test_differs_across_api_keys(self) -> None:
        """Two API keys give two ids."""
        fingerprint = Fingerprinter(b"k" * 32)
        assert fingerprint(KEY)[0] != fingerprint(KEY + "x")[0]

    def test_shape_and_no_key_material(self) -> None:
        """The id is `ak_` + 16 hex digits and contains no part of the key beyond the prefix."""
        key_id, prefix = Fingerprinter(b"k" * 32)(KEY)
        assert looks_like_fingerprint(key_id)
        assert prefix == KEY[:6]
        assert KEY[6:12] not in key_id

    def test_short_key_has_no_prefix(self) -> None:
        """A key under 20 characters keeps no prefix: six characters would reveal too much."""
        assert Fingerprinter(b"k" * 32)("short-key-123")[1] == ""

    def test_raw_key_in_event_is_fingerprinted(self) -> None:
        """A source that sent a raw key in `apiwatch.api_key.id` gets it replaced and listed."""
        sanitizer = Sanitizer(SanitizeConfig(fingerprint_key=b"d" * 32))
        event = sanitizer({"apiwatch.api_key.id": KEY})
        assert event["apiwatch.api_key.id"] == sanitizer.fingerprint(KEY)[0]
        assert event["apiwatch.api_key.prefix"] == "sk_liv"
        assert event["apiwatch.redacted"] == ["apiwatch.api_key.id"]
        assert KEY not in repr(event)

    def test_fingerprint_in_event_is_kept(self) -> None:
        """An id that already is a fingerprint passes unchanged."""
        sanitizer = Sanitizer()
        key_id, _ = sanitizer.fingerprint(KEY)
        assert sanitizer({"apiwatch.api_key.id": key_id}) == {"apiwatch.api_key.id": key_id}
