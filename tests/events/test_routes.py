"""Route templates guessed from raw request paths."""

from __future__ import annotations

import gzip
import re
import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apiwatch.events.routes import MAX_ROUTE_LENGTH, normalize_route

_REQUEST_LINE = re.compile(r'"[A-Z]+ (\S+) HTTP/[0-9.]+"')


@pytest.fixture(scope="module")
def nginx_paths(shared_data: Path) -> list[str]:
    log = shared_data / "logs" / "elastic_integrations" / "nginx-test-access.log"
    return [m.group(1) for m in _REQUEST_LINE.finditer(log.read_text(encoding="utf-8"))]


@pytest.fixture(scope="module")
def csic(shared_data: Path) -> dict[str, list[str]]:
    """Request targets (absolute-form URLs) of CSIC 2010's normal and anomalous test traffic."""
    targets: dict[str, list[str]] = {}
    with zipfile.ZipFile(shared_data / "logs" / "csic2010" / "csic_dataset.zip") as z:
        for name in ("normalTrafficTest", "anomalousTrafficTest"):
            text = gzip.decompress(z.read(f"csic_dataset/{name}.txt.gz")).decode("latin-1")
            targets[name] = [line.split(" ")[1] for line in text.splitlines()
                             if line.startswith(("GET ", "POST ", "PUT "))]
    return targets


class TestPlaceholders:
    @pytest.mark.parametrize(
        ("path", "route"),
        [
            ("/api/v2/users", "/api/v2/users"),
            ("/api/v2/users/42", "/api/v2/users/{int}"),
            ("/users/0191c3a2-7e1f-7abc-8def-0123456789AB", "/users/{uuid}"),
            ("/orders/5f2b6c9e0a1d2e3f4a5b6c7d/items/3", "/orders/{hex}/items/{int}"),
            ("/commits/9fceb02", "/commits/9fceb02"),  # 7 hex: too short to tell from a word
            ("/reports/2024-01-31/summary", "/reports/{date}/summary"),
            ("/users/ann.lee@example.com/keys", "/users/{email}/keys"),
            ("/reset/Zx3k9QpLm2Vb7TrYwq", "/reset/{token}"),
            ("/share/aBcDeFgHiJkLmNoPqRsT", "/share/{token}"),
            ("/images/1.gif", "/images/{int}.gif"),
            ("/v1.0/getUserProfileById", "/v1.0/getUserProfileById"),
            ("/api/user_profile_settings", "/api/user_profile_settings"),
            ("/test1", "/test1"),
            ("/café/menü", "/café/menü"),
        ],
    )
    def test_identifiers_collapse_and_words_stay(self, path: str, route: str) -> None:
        """Ids, UUIDs, hashes, dates, addresses and random tokens become placeholders;
        words, versions and camelCase names stay."""
        assert normalize_route(path) == route

    def test_query_and_fragment_are_dropped(self) -> None:
        """The route is the path alone."""
        assert normalize_route("/search/7?q=1&page=2#top") == "/search/{int}"

    def test_absolute_form_is_reduced_to_its_path(self) -> None:
        """`http://host:port/path` (RFC 9112 section 3.2.2) gives `/path`."""
        assert normalize_route("http://localhost:8080/tienda1/imagenes/3.gif") == (
            "/tienda1/imagenes/{int}.gif"
        )
        assert normalize_route("https://api.example.com") == "/"

    def test_long_paths_are_cut_at_a_segment(self) -> None:
        """A path longer than the cap ends in `/{...}` after the last whole segment that fits."""
        route = normalize_route("/a" * 300)
        assert len(route) <= MAX_ROUTE_LENGTH
        assert route.endswith("/a/{...}")

    def test_an_overlong_segment_is_a_token(self) -> None:
        """A segment longer than any route word is variable data."""
        assert normalize_route("/files/" + "x" * 100) == "/files/{token}"


class TestRealPaths:
    def test_nginx_sample(self, nginx_paths: list[str]) -> None:
        """The elastic/integrations nginx sample keeps its word paths and encoded names."""
        routes = {normalize_route(p) for p in nginx_paths}
        assert {"/", "/favicon.ico", "/adsasd", "/test1", "/taga"} <= routes
        assert "/A%20Beka%20G1%20Howe/029_AND_30/15%20reading%20elephants.mp4" in routes

    def test_csic_normal_traffic_groups_by_page(self, csic: dict[str, list[str]]) -> None:
        """CSIC 2010's shop traffic (4,829 distinct URLs) comes down to its pages, with the
        numbered images grouped as one route."""
        normal = csic["normalTrafficTest"]
        routes = {normalize_route(t) for t in normal}
        paths = {t.split("?")[0] for t in normal}
        assert "/tienda1/publico/anadir.jsp" in routes
        assert "/tienda1/imagenes/{int}.gif" in routes
        assert "/tienda1/imagenes/1.gif" not in routes
        assert len(routes) < len(paths) < len(set(normal)) / 100

    def test_csic_scanner_probes_for_numbered_files_are_grouped(
        self, csic: dict[str, list[str]]
    ) -> None:
        """Scanner probes for numbered files share one route."""
        probes = [t for t in csic["anomalousTrafficTest"]
                  if re.fullmatch(r"http://localhost:8080/tienda1/[0-9]+\.java", t)]
        assert len(probes) > 1
        assert {normalize_route(t) for t in probes} == {"/tienda1/{int}.java"}

    def test_every_real_target_is_stable_and_bounded(self, csic: dict[str, list[str]]) -> None:
        """Every CSIC target normalizes within the cap, and normalizing again changes nothing."""
        for target in (*csic["normalTrafficTest"], *csic["anomalousTrafficTest"]):
            route = normalize_route(target)
            assert len(route) <= MAX_ROUTE_LENGTH
            assert normalize_route(route) == route


_segment = st.one_of(
    st.text(max_size=30),
    st.from_regex(r"[0-9]{1,12}(\.[a-z]{1,4})?", fullmatch=True),
    st.uuids().map(str),
    st.from_regex(r"[A-Za-z0-9_-]{10,40}", fullmatch=True),
    st.emails(),
)
_paths = st.one_of(
    st.text(max_size=400),
    st.lists(_segment, max_size=30).map(lambda s: "/" + "/".join(s)),
)


@given(_paths)
def test_normalizing_is_idempotent_and_bounded(path: str) -> None:
    """Any path normalizes without error, within the cap, and a second pass changes nothing."""
    route = normalize_route(path)
    assert len(route) <= MAX_ROUTE_LENGTH
    assert normalize_route(route) == route
