"""The collector's framework-free checks: tokens, signatures, clock skew, replays, rates."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apiwatch.server.auth import (
    AuthFailure,
    RateLimiter,
    RefusalBudget,
    ReplayCache,
    TokenBucket,
    TokenTable,
    bearer_token,
    check_signature,
    check_timestamp,
)
from apiwatch.signing import SIGNATURE_HEADER, sign_batch

TOKEN = "aws_test-token-0123456789"
NOW = 1_800_000_000.0


class TestTokens:
    def test_bearer_token_is_parsed_case_insensitively(self) -> None:
        """The scheme is case-insensitive and surrounding spaces are ignored."""
        assert bearer_token("Bearer abc") == "abc"
        assert bearer_token("bearer  abc ") == "abc"

    @pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic abc", "abc"])
    def test_bearer_token_absent_or_other_scheme(self, header: str | None) -> None:
        """A missing header, another scheme or an empty token yields no token."""
        assert bearer_token(header) is None

    def test_token_table_finds_the_name_of_a_token(self) -> None:
        """A known token maps to its name; an unknown or empty one to nothing."""
        table = TokenTable({"web": "t-web", "batch": "t-batch", "off": ""})
        assert table.identify("t-batch") == "batch"
        assert table.identify("t-web") == "web"
        assert table.identify("t-we") is None
        assert table.identify("") is None
        assert len(table) == 2

    def test_token_table_gives_the_signing_key(self) -> None:
        """The secret of a named source is its HMAC key."""
        assert TokenTable({"web": "t-web"}).token("web") == "t-web"


class TestSignature:
    @given(body=st.binary(max_size=2048), stamp=st.integers(0, 10**11))
    def test_signed_batches_verify(self, body: bytes, stamp: int) -> None:
        """Whatever the body, a batch signed by `sign_batch` passes `check_signature`."""
        headers = sign_batch(TOKEN, body, stamp)
        check_signature(TOKEN, str(stamp), body, headers[SIGNATURE_HEADER])

    @given(body=st.binary(min_size=1, max_size=512), where=st.integers(0, 511))
    def test_any_changed_byte_is_refused(self, body: bytes, where: int) -> None:
        """Flipping any byte of the body makes the signature fail."""
        headers = sign_batch(TOKEN, body, 100)
        i = where % len(body)
        changed = body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1 :]
        with pytest.raises(AuthFailure) as info:
            check_signature(TOKEN, "100", changed, headers[SIGNATURE_HEADER])
        assert info.value.code == "bad_signature"

    def test_prefix_is_optional_and_hex_case_free(self) -> None:
        """`sha256=` may be left out and the hex may be upper-case; the result is normalised."""
        digest = sign_batch(TOKEN, b"x", 7)[SIGNATURE_HEADER].removeprefix("sha256=")
        assert check_signature(TOKEN, "7", b"x", digest.upper()) == digest

    @pytest.mark.parametrize("presented", [None, "", "sha256=zz", "sha256=" + "0" * 64])
    def test_missing_or_wrong_signature_is_refused(self, presented: str | None) -> None:
        """No signature, non-hex text or a wrong digest are all `bad_signature`."""
        with pytest.raises(AuthFailure) as info:
            check_signature(TOKEN, "7", b"x", presented)
        assert info.value.code == "bad_signature"

    def test_other_token_or_timestamp_is_refused(self) -> None:
        """The signature binds the token and the timestamp as well as the body."""
        signature = sign_batch(TOKEN, b"x", 7)[SIGNATURE_HEADER]
        with pytest.raises(AuthFailure):
            check_signature("other", "7", b"x", signature)
        with pytest.raises(AuthFailure):
            check_signature(TOKEN, "8", b"x", signature)


class TestTimestamp:
    @given(offset=st.integers(-1000, 1000))
    def test_accepted_exactly_within_the_skew(self, offset: int) -> None:
        """A timestamp is accepted if and only if it is within the skew of now."""
        stamp = int(NOW) + offset
        if abs(offset) <= 300:
            assert check_timestamp(str(stamp), NOW, 300) == stamp
        else:
            with pytest.raises(AuthFailure) as info:
                check_timestamp(str(stamp), NOW, 300)
            assert info.value.code == "stale_timestamp"

    @pytest.mark.parametrize("text", [None, "", "-5", "1.5", "12e3", " 1", "1" * 13])
    def test_malformed_timestamp(self, text: str | None) -> None:
        """Anything but unix seconds as digits is `bad_timestamp`."""
        with pytest.raises(AuthFailure) as info:
            check_timestamp(text, NOW, 300)
        assert info.value.code == "bad_timestamp"


class TestReplayCache:
    def test_a_signature_is_accepted_once_within_its_window(self) -> None:
        """The second sight of a signature inside the window is a replay."""
        cache = ReplayCache(300)
        assert cache.remember("a", 1000, 1000.0)
        assert not cache.remember("a", 1000, 1200.0)
        assert not cache.remember("a", 1000, 1300.0)

    def test_signatures_from_before_the_start_are_refused(self) -> None:
        """A restarted collector refuses a batch signed before it started (its predecessor
        may have accepted it); the sender's fresh signature is accepted."""
        cache = ReplayCache(300, since=1000.0)
        assert not cache.remember("old", 999, 1001.0)
        assert cache.remember("new", 1001, 1001.0)

    def test_entries_expire_with_their_timestamp(self) -> None:
        """An entry is dropped once its timestamp is beyond the skew (it is stale by then)."""
        cache = ReplayCache(300)
        cache.remember("a", 1000, 1000.0)
        cache.remember("b", 1100, 1000.0)
        cache.remember("c", 1200, 1350.0)
        assert len(cache) == 2  # "a" expired at 1300
        cache.remember("d", 1500, 1450.0)
        assert len(cache) == 2  # "b" expired at 1400

    @given(
        ops=st.lists(
            st.tuples(st.integers(0, 20), st.integers(-300, 300), st.integers(0, 50)),
            max_size=200,
        )
    )
    def test_memory_is_bounded_and_replays_refused(
        self, ops: list[tuple[int, int, int]]
    ) -> None:
        """Size never exceeds the bound; no signature passes twice while it is fresh, even
        once evicted (what the cache forgot it refuses)."""
        cache = ReplayCache(300, max_entries=8)
        now = NOW
        accepted: dict[str, int] = {}
        for sig_no, skew, step in ops:
            now += step
            # A signature covers its timestamp: the same signature always has the same stamp.
            stamp = int(now) + skew
            signature = f"s{sig_no}@{stamp}"
            fresh = cache.remember(signature, stamp, now)
            assert len(cache) <= 8
            earlier = accepted.get(signature)
            if fresh and earlier is not None:  # evicted or not
                assert now > earlier + 300  # only once the earlier batch had gone stale
            if fresh:
                accepted[signature] = stamp


class TestRateLimits:
    def test_bucket_allows_a_burst_then_asks_to_wait(self) -> None:
        """Ten seconds of rate may be spent at once; the next unit waits for the refill."""
        bucket = TokenBucket(100, NOW)
        assert bucket.take(1000, NOW) == 0.0
        assert bucket.take(50, NOW) == pytest.approx(0.5)
        assert bucket.take(50, NOW + 0.5) == 0.0

    def test_oversized_request_passes_only_with_a_full_bucket(self) -> None:
        """A request larger than the bucket passes when it is full and empties it."""
        bucket = TokenBucket(10, NOW)
        assert bucket.take(500, NOW) == 0.0
        assert bucket.take(500, NOW + 1) > 0.0

    @given(takes=st.lists(st.tuples(st.integers(1, 3000), st.integers(0, 5000)), max_size=60))
    def test_spending_never_exceeds_burst_plus_refill(self, takes: list[tuple[int, int]]) -> None:
        """Over any run of requests the allowed cost is at most capacity + rate x elapsed."""
        bucket = TokenBucket(100, NOW)
        now, spent = NOW, 0.0
        for amount, millis in takes:
            now += millis / 1000
            if bucket.take(amount, now) == 0.0:
                spent += min(amount, bucket.capacity)
        assert spent <= bucket.capacity + 100 * (now - NOW) + 1e-6

    def test_limiter_keeps_a_bucket_per_source_and_rounds_the_wait_up(self) -> None:
        """Sources do not share a bucket; the wait is whole seconds, at least one."""
        limiter = RateLimiter(10)
        assert limiter.take("a", 100, NOW) == 0
        assert limiter.take("b", 100, NOW) == 0
        assert limiter.take("a", 1, NOW) == 1
        assert limiter.take("a", 25, NOW) == 3


class TestRefusalBudget:
    def test_per_peer_budget_then_summary_after_the_minute(self) -> None:
        """Past its budget a peer's refusals are suppressed and summarised once the minute ends."""
        budget = RefusalBudget(per_peer=2, total=100)
        start = 60 * 1000.0
        assert [budget.admit("10.0.0.1", start) for _ in range(4)] == [True, True, False, False]
        assert budget.admit("10.0.0.2", start + 1)
        assert budget.take_summary(start + 30) is None
        summary = budget.take_summary(start + 60)
        assert summary is not None
        assert (summary.events, summary.peers) == (2, 1)
        assert budget.take_summary(start + 61) is None
        assert budget.admit("10.0.0.1", start + 61)

    def test_total_and_peer_count_are_bounded(self) -> None:
        """However many peers refuse, events per minute stay within the total budget."""
        budget = RefusalBudget(per_peer=5, total=20, max_peers=10)
        admitted = sum(budget.admit(f"10.0.{i}.1", 120.0) for i in range(1000))
        assert admitted == 10  # only max_peers distinct peers get events
        again = sum(budget.admit(f"10.0.{i}.1", 121.0) for i in range(10) for _ in range(5))
        assert again == 10  # the total of 20 per minute is reached
        summary = budget.take_summary(180.0)
        assert summary is not None
        assert summary.events == 990 + 40
