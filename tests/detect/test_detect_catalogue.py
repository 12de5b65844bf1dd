"""Every catalogue rule fires on its attack and stays quiet on a near miss, in generated traffic."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from detect_traffic import START, Users, event, fired, run

from apiwatch.detect import load_catalogue
from apiwatch.events import Event

ATTACKER = "203.0.113.7"
T0 = START + 300  # attacks start five minutes into the background traffic
Scenario = Callable[[random.Random], tuple[list[Event], float | None]]


def background(rng: random.Random, seconds: float = 600, rate: float = 2.0) -> list[Event]:
    """Ten minutes of normal traffic from 200 users."""
    return list(Users(rng).normal(seconds, rate))


def fails(ip: str, users: list[str], start: float, every: float,
          action: str = "authn_login_fail") -> list[Event]:
    """One login event per user name, `every` seconds apart, from `ip`."""
    return [event(action, start + i * every, {"source.ip": ip, "user.name": u})
            for i, u in enumerate(users)]


def requests(ip: str, paths: list[str], start: float, every: float, status: int, *,
             method: str = "GET", **fields: object) -> list[Event]:
    """One access-log-like request per path from `ip`."""
    out = []
    for i, path in enumerate(paths):
        action = {401: "authn_token_invalid", 403: "authz_fail"}.get(status, "http_request")
        target = path
        out.append(event(action, start + i * every, {
            "source.ip": ip, "url.original": target, "url.path": target.split("?")[0],
            "http.request.method": method, "http.response.status_code": status, **fields,
        }, outcome="failure" if status >= 400 else "success"))
    return out


def _key_history(rng: random.Random, asn: bool) -> list[Event]:
    """Two days of one key's requests from its home /24 (and AS 64500 when `asn`)."""
    extra = {"source.as.number": 64500} if asn else {}
    return [event("http_request", START + i * 3000, {
        "apiwatch.api_key.id": "key-x", "source.ip": f"198.51.100.{rng.randrange(1, 255)}",
        "http.response.status_code": 200, **extra}) for i in range(60)]


def _new_use(ip: str, asn: int | None) -> Event:
    fields: dict[str, object] = {"apiwatch.api_key.id": "key-x", "source.ip": ip,
                                 "http.response.status_code": 200}
    if asn is not None:
        fields["source.as.number"] = asn
    return event("http_request", START + 61 * 3000, fields)


def _asn_use(i: int, t: float, asn: int) -> Event:
    """A request with key-leak from 192.0.2.i in AS `asn`."""
    use = requests(f"192.0.2.{i}", ["/api/v1/profile"], t, 0, 200,
                   **{"apiwatch.api_key.id": "key-leak"})[0]
    use["source.as.number"] = asn
    return use


def _login_mix(rng: random.Random, attack: bool) -> list[Event]:
    """An hour and a half of logins at 1/s with 3% failures; with `attack`, the last ten
    minutes fail 40% of the time."""
    users = Users(rng)
    normal = users.normal(5400, 1.0, failure_rate=0.03, login_share=1.0)
    tail = users.normal(600, 1.0, start=START + 5400, login_share=1.0,
                        failure_rate=0.4 if attack else 0.03)
    return [*normal, *tail]


def _errors(rng: random.Random, spike: bool) -> list[Event]:
    events = list(Users(rng).normal(1800, 2.0))
    if spike:
        events += requests("198.51.100.20", [f"/api/v1/orders/{i}" for i in range(100)],
                           START + 1800, 0.5, 500, **{"service.name": "shop"})
    return events


def _volume(rng: random.Random, spike: bool) -> list[Event]:
    events = [event("data_access", START + i * 20, {
        "apiwatch.api_key.id": "key-exp", "apiwatch.object.count": rng.randrange(10, 40)})
        for i in range(360)]  # two hours of ~100 objects a minute
    if spike:
        events += [event("data_access", START + 7200 + i, {
            "apiwatch.api_key.id": "key-exp", "apiwatch.object.count": 500}) for i in range(60)]
    return events


def _source(silent: bool) -> tuple[list[Event], float]:
    """Sources api-1 and api-2 send every 2 s for an hour; api-2 stops after half an hour
    when `silent`."""
    events = [event("http_request", START + i * 2, {"apiwatch.source": source,
                                                     "http.response.status_code": 200})
              for i in range(1800) for source in ("api-1", "api-2")
              if not (silent and source == "api-2" and i >= 900)]
    return events, START + 3600


def _stuffing(rng: random.Random, attack: bool) -> list[Event]:
    """1000 login attempts in ten minutes: 500 IPs each trying 2 leaked pairs, or normal
    users failing 3% of the time."""
    if attack:
        out = []
        for i in range(500):
            ip = f"192.0.2.{i % 250 + 1}" if i < 250 else f"198.18.{i % 250}.{i // 250 + 1}"
            for j in range(2):
                out += fails(ip, [f"leaked{i}-{j}@example.com"], T0 + rng.uniform(0, 600), 0)
        return out
    people = Users(rng, count=1000).people
    return [event("authn_login_fail" if rng.random() < 0.03 else "authn_login_success",
                  T0 + rng.uniform(0, 600), {"source.ip": p["ip"], "user.name": p["user"]})
            for p in people]


ATTACK = "' OR 1=1--"
# rule -> (attack scenario, near-miss scenario); each returns events and an advance time.
def _probe(ts: float, problem: str | None) -> Event:
    """One `probe_result` of the probe "health" with `problem` (None: it passed)."""
    fields: dict[str, object] = {"apiwatch.probe.name": "health"}
    if problem:
        fields["apiwatch.probe.problem"] = problem
    return event("probe_result", ts, fields, outcome="failure" if problem else "success")


SCENARIOS: dict[str, tuple[Scenario, Scenario]] = {
    "brute_force_ip_fast": (
        lambda r: (fails(ATTACKER, ["root"] * 10, T0, 1), None),
        lambda r: (fails(ATTACKER, ["alice"] * 5, T0, 60), None),
    ),
    "brute_force_ip_slow": (
        lambda r: (fails(ATTACKER, ["admin"] * 20, T0, 30), None),
        lambda r: (fails(ATTACKER, ["admin"] * 20, T0, 90), None),
    ),
    "low_and_slow_ip": (
        lambda r: (fails(ATTACKER, ["root", "oracle", "mysql", "pg"], T0, 1200), None),
        lambda r: ([*fails(ATTACKER, ["bob", "bob"], T0, 1200),
                    *fails(ATTACKER, ["bob"], T0 + 1500, 0, "authn_login_success"),
                    *fails(ATTACKER, ["bob", "bob"], T0 + 2400, 1200)], None),
    ),
    "brute_force_account_multi_ip": (
        lambda r: ([e for i in range(6) for e in fails(f"192.0.2.{i}", ["alice"], T0 + i * 60,
                                                        0)], None),
        lambda r: ([e for i in range(4) for e in fails(f"192.0.2.{i % 2}", ["alice"],
                                                        T0 + i * 60, 0)], None),
    ),
    "password_spraying": (
        lambda r: (fails(ATTACKER, [f"emp{i}" for i in range(12)], T0, 10), None),
        lambda r: (fails(ATTACKER, [f"emp{i}" for i in range(12)], T0, 600), None),
    ),
    "credential_stuffing_source": (
        lambda r: ([*fails(ATTACKER, [f"c{i}" for i in range(18)], T0, 10),
                    *fails(ATTACKER, ["c99", "c98"], T0 + 200, 5, "authn_login_success")], None),
        lambda r: (fails(ATTACKER, [f"c{i}" for i in range(18)], T0, 900,
                         "authn_login_success"), None),
    ),
    "distributed_credential_stuffing": (
        lambda r: (_stuffing(r, attack=True), None),
        lambda r: (_stuffing(r, attack=False), None),
    ),
    "login_failure_ratio_spike": (
        lambda r: (_login_mix(r, attack=True), None),
        lambda r: (_login_mix(r, attack=False), None),
    ),
    "success_after_failures": (
        lambda r: ([*fails(ATTACKER, ["carol"] * 6, T0, 10),
                    *fails(ATTACKER, ["carol"], T0 + 70, 0, "authn_login_success")], None),
        lambda r: ([*fails(ATTACKER, ["carol"] * 2, T0, 10),
                    *fails(ATTACKER, ["carol"], T0 + 30, 0, "authn_login_success")], None),
    ),
    "lockout_burst": (
        lambda r: (fails(ATTACKER, [f"u{i}" for i in range(6)], T0, 30, "authn_login_lock"),
                   None),
        lambda r: (fails(ATTACKER, ["u1", "u2"], T0, 1800, "authn_login_lock"), None),
    ),
    "api_key_multi_ip": (
        lambda r: ([e for i in range(4) for e in requests(
            f"192.0.2.{i}", ["/api/v1/profile"], T0 + i * 20, 0, 200,
            **{"apiwatch.api_key.id": "key-leak"})], None),
        lambda r: ([e for i in range(4) for e in requests(
            f"192.0.2.{i % 2}", ["/api/v1/profile"], T0 + i * 20, 0, 200,
            **{"apiwatch.api_key.id": "key-leak"})], None),
    ),
    "api_key_multi_asn": (
        lambda r: ([_asn_use(i, T0 + i * 60, 64500 + i) for i in range(2)], None),
        lambda r: ([_asn_use(i, T0 + i * 20, 64500) for i in range(4)], None),
    ),
    "api_key_new_network": (
        lambda r: ([*_key_history(r, False), _new_use("203.0.113.9", None)], None),
        lambda r: ([*_key_history(r, False), _new_use("198.51.100.250", None)], None),
    ),
    "api_key_new_asn": (
        lambda r: ([*_key_history(r, True), _new_use("198.51.100.9", 64999)], None),
        lambda r: ([*_key_history(r, False), _new_use("203.0.113.9", None)], None),
    ),
    "api_key_after_revocation": (
        lambda r: ([event("authn_token_revoked", T0, {"apiwatch.api_key.id": "key-old"}),
                    *requests(ATTACKER, ["/api/v1/orders/1"], T0 + 3600, 0, 200,
                              **{"apiwatch.api_key.id": "key-old"})], None),
        lambda r: ([event("authn_token_revoked", T0, {"apiwatch.api_key.id": "key-old"}),
                    *requests(ATTACKER, ["/api/v1/orders/1"], T0 + 3600, 0, 200,
                              **{"apiwatch.api_key.id": "key-new"})], None),
    ),
    "bola_enumeration": (
        lambda r: (requests(ATTACKER, [f"/api/v1/orders/{9000 + i}" for i in range(30)], T0,
                            2, 404, **{"user.name": "mallory",
                                       "apiwatch.route": "/api/v1/orders/{id}"}), None),
        lambda r: (requests(ATTACKER, [f"/api/v1/orders/{9000 + i}" for i in range(5)], T0,
                            2, 404, **{"user.name": "mallory",
                                       "apiwatch.route": "/api/v1/orders/{id}"}), None),
    ),
    "route_probing": (
        lambda r: (requests(ATTACKER, [f"/{w}" for w in ("admin", "console", "debug", "old",
                   "test", "v0", "internal", "swagger.json", "graphql", "actuator", "metrics",
                   "server-status", "phpinfo")], T0, 0.5, 404), None),
        lambda r: (requests(ATTACKER, [f"/static/{i}.png" for i in range(15)], T0, 0.5, 404),
                   None),
    ),
    "sensitive_file_probing": (
        lambda r: (requests(ATTACKER, ["/.env", "/.git/config", "/backup.sql", "/db.sqlite",
                                       "/id_rsa", "/.htpasswd"], T0, 1, 404), None),
        lambda r: (requests(ATTACKER, [f"/exports/{i}.sql" for i in range(6)], T0, 1, 200),
                   None),
    ),
    "injection_probing": (
        lambda r: (requests(ATTACKER, [f"/api/v1/search?q=a{i}{ATTACK}" for i in range(6)], T0,
                            3, 400), None),
        lambda r: (requests(ATTACKER, [f"/api/v1/search?q=shoes&page={i}" for i in range(6)],
                            T0, 3, 400), None),
    ),
    "injection_probing_success": (
        lambda r: ([*requests(ATTACKER, [f"/api/v1/items?id=1{ATTACK}{i}" for i in range(3)],
                              T0, 2, 500),
                    *requests(ATTACKER, ["/api/v1/items?id=1 UNION SELECT password"], T0 + 10,
                              0, 200)], None),
        lambda r: (requests(ATTACKER, [f"/api/v1/items?id=1{ATTACK}{i}" for i in range(4)],
                            T0, 2, 500), None),
    ),
    "authz_failure_burst": (
        lambda r: (requests(ATTACKER, [f"/api/v1/admin/{i}" for i in range(12)], T0, 5, 403,
                            **{"user.name": "eve"}), None),
        lambda r: (requests(ATTACKER, [f"/api/v1/admin/{i}" for i in range(5)], T0, 60, 403,
                            **{"user.name": "eve"}), None),
    ),
    "http_login_flood": (
        lambda r: (requests(ATTACKER, ["/api/v1/login"] * 10, T0, 0.5, 200, method="POST"),
                   None),
        lambda r: (requests(ATTACKER, ["/api/v1/login"] * 3, T0, 5, 200, method="POST"), None),
    ),
    "rate_limit_burst": (
        lambda r: (fails(ATTACKER, ["bot"] * 8, T0, 5, "excess_rate_limit_exceeded"), None),
        lambda r: (fails(ATTACKER, ["bot"] * 3, T0, 60, "excess_rate_limit_exceeded"), None),
    ),
    "server_error_spike": (
        lambda r: (_errors(r, spike=True), None),
        lambda r: (_errors(r, spike=False), None),
    ),
    "unusual_data_volume": (
        lambda r: (_volume(r, spike=True), None),
        lambda r: (_volume(r, spike=False), None),
    ),
    "sensitive_change": (
        lambda r: ([event("user_updated", T0, {"user.name": "admin", "user.target.name": "bob"},
                          reason="MFA disabled by admin")], None),
        lambda r: ([event("user_updated", T0, {"user.name": "admin", "user.target.name": "bob"},
                          reason="email address changed")], None),
    ),
    "silent_source": (lambda r: _source(silent=True), lambda r: _source(silent=False)),
    "sequence_gap": (
        lambda r: ([event("source_sequence_gap", T0, {"apiwatch.source": "api-1",
                                                      "apiwatch.gap.first": 10,
                                                      "apiwatch.gap.last": 12})], None),
        lambda r: ([], None),
    ),
    "probe_failure": (
        lambda r: ([_probe(T0, "down")], None),
        lambda r: ([_probe(T0, None)], None),
    ),
    "probe_slow": (
        lambda r: ([_probe(T0, "slow"), _probe(T0 + 60, "slow")], None),
        lambda r: ([_probe(T0, "slow"), _probe(T0 + 600, "slow")], None),
    ),
    "probe_certificate_expiry": (
        lambda r: ([_probe(T0, "certificate_expiry")], None),
        lambda r: ([_probe(T0, "slow")], None),
    ),
}


def _alerts(scenario: Scenario, seed: int) -> list[str]:
    rng = random.Random(seed)
    attack, advance = scenario(rng)
    return [a.rule for a in run([*background(rng), *attack], advance_to=advance)]


def test_every_catalogue_rule_has_scenarios() -> None:
    """The scenarios below cover exactly the rules of the shipped catalogue."""
    assert {r.id for r in load_catalogue()} == set(SCENARIOS)


@pytest.mark.parametrize("rule", sorted(SCENARIOS))
def test_rule_fires_on_attack(rule: str) -> None:
    """The rule fires on its attack mixed into ten minutes of normal traffic from 200 users."""
    assert rule in _alerts(SCENARIOS[rule][0], seed=7)


@pytest.mark.parametrize("rule", sorted(SCENARIOS))
def test_rule_quiet_on_near_miss(rule: str) -> None:
    """The rule stays quiet on a near miss of its attack in the same normal traffic."""
    assert rule not in _alerts(SCENARIOS[rule][1], seed=7)


def test_normal_traffic_raises_nothing() -> None:
    """An hour of normal traffic (3% login failures, the odd 404, 403 and 500) raises no alert."""
    rng = random.Random(11)
    alerts = run(background(rng, seconds=3600, rate=3.0), advance_to=START + 3700)
    assert [(a.rule, a.group) for a in alerts] == []


def test_distributed_stuffing_by_numbers() -> None:
    """500 IPs trying 2 leaked pairs each fire distributed stuffing; 1000 normal logins at 3%
    failures do not."""
    rng = random.Random(3)
    assert fired(run(_stuffing(rng, attack=True)), "distributed_credential_stuffing")
    assert not fired(run(_stuffing(rng, attack=False)), "distributed_credential_stuffing")
