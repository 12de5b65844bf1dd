"""The OWASP Logging Vocabulary as data: each action with its level and ECS categorisation.

The 57 events of the OWASP Logging Vocabulary Cheat Sheet (commit 6b8819da of
OWASP/CheatSheetSeries) keep the sheet's names, levels and parameters; apiwatch's own actions
follow in a separate table, named in the same style. Each action carries its ECS 9.4.0
`event.kind|category|type|outcome` values (types chosen among those ECS expects for the category)
and an OCSF 1.8.0 class and activity for the OCSF encoder. `register()` adds a user's own action.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType
from typing import Literal, TypedDict, get_args

from apiwatch.errors import ApiwatchError, UnknownActionError

Level = Literal["INFO", "WARN", "CRITICAL"]
Outcome = Literal["success", "failure", "unknown"]
Kind = Literal["event", "alert", "pipeline_error"]
Origin = Literal["owasp", "apiwatch", "user"]

#: ECS 9.4.0 `event.category` values with the `event.type` values ECS expects for each.
ECS_EXPECTED_TYPES: Mapping[str, frozenset[str]] = MappingProxyType({
    "api": frozenset({"access", "admin", "allowed", "change", "creation", "deletion", "denied",
                      "end", "info", "start", "user"}),
    "authentication": frozenset({"start", "end", "info"}),
    "configuration": frozenset({"access", "change", "creation", "deletion", "info"}),
    "database": frozenset({"access", "change", "info", "error"}),
    "driver": frozenset({"change", "end", "info", "start"}),
    "email": frozenset({"info"}),
    "file": frozenset({"access", "change", "creation", "deletion", "info"}),
    "host": frozenset({"access", "change", "end", "info", "start"}),
    "iam": frozenset({"admin", "change", "creation", "deletion", "group", "info", "user"}),
    "intrusion_detection": frozenset({"allowed", "denied", "info"}),
    "library": frozenset({"start"}),
    "malware": frozenset({"info"}),
    "network": frozenset({"access", "allowed", "connection", "denied", "end", "info",
                          "protocol", "start"}),
    "package": frozenset({"access", "change", "deletion", "info", "installation", "start"}),
    "process": frozenset({"access", "change", "end", "info", "start"}),
    "registry": frozenset({"access", "change", "creation", "deletion"}),
    "session": frozenset({"start", "end", "info"}),
    "threat": frozenset({"indicator"}),
    "vulnerability": frozenset({"info"}),
    "web": frozenset({"access", "error", "info"}),
})

_NAME = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+")


class VocabularyError(ApiwatchError):
    """An action definition is invalid or would redefine an existing name."""


@dataclass(frozen=True, slots=True)
class Action:
    """One event name of the vocabulary and how it maps onto ECS `event.*` and OCSF values.

    `failure_level` replaces `level` when the event's outcome is `failure` (the sheet's
    `upload_validation` is INFO when passed, CRITICAL when failed). `ocsf_class` 0 is OCSF's Base
    Event; `ocsf_activity` 0 (Unknown) on classes 4002 and 6003 means "derive it from
    `http.request.method`", as those classes' activities are HTTP verbs or CRUD operations.
    """

    name: str
    level: Level
    category: tuple[str, ...]
    type: tuple[str, ...]
    outcome: Outcome
    description: str
    params: tuple[str, ...] = ()
    kind: Kind = "event"
    failure_level: Level | None = None
    ocsf_class: int = 0
    ocsf_activity: int = 0
    origin: Origin = "user"

    def level_for(self, outcome: str) -> Level:
        """The level of an event of this action with `outcome`."""
        if outcome == "failure" and self.failure_level is not None:
            return self.failure_level
        return self.level


_o = partial(Action, origin="owasp")
_a = partial(Action, origin="apiwatch")

AUTHN = ("authentication",)
SESSION = ("session",)
IAM = ("iam",)
API = ("api",)
IDS = ("intrusion_detection",)
FILE = ("file",)
PROCESS = ("process",)

#: OCSF 1.8.0 class uids used below.
OCSF_DETECTION_FINDING = 2004
OCSF_ACCOUNT_CHANGE = 3001
OCSF_AUTHENTICATION = 3002
OCSF_USER_ACCESS = 3005
OCSF_HTTP_ACTIVITY = 4002
OCSF_WEB_RESOURCES = 6001
OCSF_APPLICATION_LIFECYCLE = 6002
OCSF_API_ACTIVITY = 6003
OCSF_WEB_RESOURCE_ACCESS = 6004

# Findings an application reports from its own checks (an attack tool, an SQLi signature) are
# ECS `event.kind: alert` ("triggered by a detection rule executing externally to the Elastic
# Stack") and OCSF Detection Findings (activity 1, Create).
class _Finding(TypedDict):
    kind: Kind
    ocsf_class: int
    ocsf_activity: int


_FINDING: _Finding = {"kind": "alert", "ocsf_class": OCSF_DETECTION_FINDING, "ocsf_activity": 1}

_OWASP: tuple[Action, ...] = (
    # Authentication [AUTHN]
    _o("authn_login_success", "INFO", AUTHN, ("start",), "success", "A user logged in.",
       ("userid",), ocsf_class=OCSF_AUTHENTICATION, ocsf_activity=1),
    _o("authn_login_successafterfail", "INFO", AUTHN, ("start",), "success",
       "A user logged in after failed attempts.", ("userid", "retries"),
       ocsf_class=OCSF_AUTHENTICATION, ocsf_activity=1),
    _o("authn_login_fail", "WARN", AUTHN, ("start",), "failure", "A login attempt failed.",
       ("userid",), ocsf_class=OCSF_AUTHENTICATION, ocsf_activity=1),
    _o("authn_login_fail_max", "WARN", AUTHN, ("start",), "failure",
       "A user reached the limit of failed logins.", ("userid", "maxlimit"),
       ocsf_class=OCSF_AUTHENTICATION, ocsf_activity=1),
    _o("authn_login_lock", "WARN", IAM, ("user", "change"), "success", "An account was locked.",
       ("userid", "reason"), ocsf_class=OCSF_ACCOUNT_CHANGE, ocsf_activity=9),
    _o("authn_password_change", "INFO", IAM, ("user", "change"), "success",
       "A password was changed.", ("userid",), ocsf_class=OCSF_ACCOUNT_CHANGE, ocsf_activity=3),
    _o("authn_password_change_fail", "CRITICAL", IAM, ("user", "change"), "failure",
       "A password change failed.", ("userid",), ocsf_class=OCSF_ACCOUNT_CHANGE,
       ocsf_activity=3),
    _o("authn_impossible_travel", "CRITICAL", AUTHN, ("info",), "unknown",
       "A user appeared in two places too far apart to travel between.",
       ("userid", "region1", "region2"), **_FINDING),
    _o("authn_token_created", "INFO", IAM, ("creation",), "success",
       "A token for service access was created.", ("userid", "entitlements"),
       ocsf_class=OCSF_API_ACTIVITY, ocsf_activity=1),
    _o("authn_token_revoked", "INFO", IAM, ("deletion",), "success", "A token was revoked.",
       ("userid", "tokenid"), ocsf_class=OCSF_API_ACTIVITY, ocsf_activity=4),
    _o("authn_token_reuse", "CRITICAL", AUTHN, ("start",), "failure",
       "A revoked token was presented again.", ("userid", "tokenid"),
       ocsf_class=OCSF_AUTHENTICATION, ocsf_activity=1),
    _o("authn_token_delete", "WARN", IAM, ("deletion",), "success", "A token was deleted.",
       ("appid",), ocsf_class=OCSF_API_ACTIVITY, ocsf_activity=4),
    # Authorization [AUTHZ]
    _o("authz_fail", "CRITICAL", API, ("access", "denied"), "failure",
       "Access to a resource was denied.", ("userid", "resource"),
       ocsf_class=OCSF_WEB_RESOURCE_ACCESS, ocsf_activity=2),
    _o("authz_change", "WARN", IAM, ("user", "change"), "success",
       "A user's entitlements changed.", ("userid", "from", "to"),
       ocsf_class=OCSF_USER_ACCESS, ocsf_activity=1),
    _o("authz_admin", "WARN", IAM, ("admin",), "success", "A privileged user acted.",
       ("userid", "event"), ocsf_class=OCSF_API_ACTIVITY, ocsf_activity=99),
    # Encryption/Decryption [CRYPT]
    _o("crypt_decrypt_fail", "WARN", API, ("access",), "failure", "Decryption failed.",
       ("userid",), ocsf_class=OCSF_API_ACTIVITY, ocsf_activity=99),
    _o("crypt_encrypt_fail", "WARN", API, ("access",), "failure", "Encryption failed.",
       ("userid",), ocsf_class=OCSF_API_ACTIVITY, ocsf_activity=99),
    # Excessive Use [EXCESS]
    _o("excess_rate_limit_exceeded", "WARN", API, ("denied",), "failure",
       "A service limit was exceeded.", ("userid", "max"), ocsf_class=OCSF_API_ACTIVITY),
    _o("excess_sessions_exceeded", "WARN", SESSION, ("info",), "unknown",
       "A user exceeded the allowed concurrent sessions.", ("userid", "max"), **_FINDING),
    # File Upload [UPLOAD]
    _o("upload_complete", "INFO", FILE, ("creation",), "success", "A file upload completed.",
       ("userid", "filename", "type"), ocsf_class=OCSF_WEB_RESOURCES, ocsf_activity=1),
    _o("upload_stored", "INFO", FILE, ("change",), "success",
       "An uploaded file was stored under a new name.", ("filename", "from", "to"),
       ocsf_class=OCSF_WEB_RESOURCES, ocsf_activity=3),
    _o("upload_validation", "INFO", FILE, ("info",), "unknown",
       "An uploaded file was validated (type check, virus scan).", ("filename", "validation"),
       failure_level="CRITICAL", ocsf_class=OCSF_WEB_RESOURCES, ocsf_activity=99),
    _o("upload_delete", "INFO", FILE, ("deletion",), "success", "A file was deleted.",
       ("userid", "fileid"), ocsf_class=OCSF_WEB_RESOURCES, ocsf_activity=4),
    # Input Validation [INPUT]
    _o("input_validation_fail", "WARN", ("web",), ("error",), "failure",
       "Input failed server-side validation.", ("fields", "userid"),
       ocsf_class=OCSF_API_ACTIVITY),
    _o("input_validation_discrete_fail", "WARN", IDS, ("denied",), "failure",
       "A value outside a fixed list of options was submitted.", ("field", "userid"),
       **_FINDING),
    # Malicious Behavior [MALICIOUS]
    _o("malicious_excess_404", "WARN", IDS, ("info",), "unknown",
       "Many requests for paths that do not exist (force browsing).",
       ("userid_or_ip", "useragent"), **_FINDING),
    _o("malicious_extraneous", "CRITICAL", IDS, ("denied",), "failure",
       "Unexpected input was submitted to a handler.",
       ("userid_or_ip", "inputname", "useragent"), **_FINDING),
    _o("malicious_attack_tool", "CRITICAL", IDS, ("info",), "unknown",
       "An attack tool was recognised.", ("userid_or_ip", "toolname", "useragent"),
       **_FINDING),
    _o("malicious_sqli", "CRITICAL", IDS, ("denied",), "failure",
       "Input matched an SQL injection signature.",
       ("userid_or_ip", "parameter", "ruleid", "useragent"), **_FINDING),
    _o("malicious_cors", "CRITICAL", IDS, ("denied",), "failure",
       "A request came from an unauthorised origin.", ("userid_or_ip", "useragent", "referer"),
       **_FINDING),
    _o("malicious_direct_reference", "CRITICAL", (*IDS, *API), ("denied",), "failure",
       "An object was requested directly without authority (IDOR).",
       ("userid_or_ip", "useragent"), kind="alert", ocsf_class=OCSF_WEB_RESOURCE_ACCESS,
       ocsf_activity=2),
    _o("malicious_csrf", "WARN", IDS, ("denied",), "failure",
       "A state-changing request lacked a valid anti-CSRF token.", ("userid_or_ip",),
       **_FINDING),
    _o("malicious_csp_violation", "WARN", IDS, ("info",), "unknown",
       "A browser reported a Content-Security-Policy violation.",
       ("userid_or_ip", "effective_directive", "blocked_uri", "useragent"), **_FINDING),
    # MCP Servers [MCP]
    _o("mcp_prompt_injection", "WARN", IDS, ("denied",), "failure",
       "Prompt injection was detected and blocked.", ("userid",), **_FINDING),
    _o("mcp_resource_exhaustion", "WARN", IDS, ("denied",), "failure",
       "A request pattern meant to exhaust resources was throttled.", ("userid",), **_FINDING),
    _o("mcp_tool_poisoning", "WARN", IDS, ("denied",), "failure",
       "A malicious or tampered tool was blocked.", ("userid",), **_FINDING),
    # Privilege Changes [PRIVILEGE]
    _o("privilege_permissions_changed", "WARN", IAM, ("change",), "success",
       "Access permissions on an object changed.",
       ("userid", "object", "fromlevel", "tolevel"), ocsf_class=OCSF_API_ACTIVITY,
       ocsf_activity=3),
    # Sensitive Data Changes [DATA]
    _o("sensitive_create", "WARN", API, ("creation",), "success", "Sensitive data was created.",
       ("userid", "object"), ocsf_class=OCSF_API_ACTIVITY, ocsf_activity=1),
    _o("sensitive_read", "WARN", API, ("access",), "success", "Sensitive data was read.",
       ("userid", "object"), ocsf_class=OCSF_API_ACTIVITY, ocsf_activity=2),
    _o("sensitive_update", "WARN", API, ("change",), "success", "Sensitive data was updated.",
       ("userid", "object"), ocsf_class=OCSF_API_ACTIVITY, ocsf_activity=3),
    _o("sensitive_delete", "WARN", API, ("deletion",), "success",
       "Sensitive data was marked for deletion.", ("userid", "object"),
       ocsf_class=OCSF_API_ACTIVITY, ocsf_activity=4),
    # Sequence Errors [SEQUENCE]
    _o("sequence_fail", "CRITICAL", IDS, ("info",), "unknown",
       "A user reached a step of the application out of sequence.", ("userid",), **_FINDING),
    # Session Management [SESSION]
    _o("session_created", "INFO", SESSION, ("start",), "success", "A session was created.",
       ("userid",), ocsf_class=OCSF_AUTHENTICATION, ocsf_activity=1),
    _o("session_renewed", "INFO", SESSION, ("info",), "success", "A session was extended.",
       ("userid",), ocsf_class=OCSF_AUTHENTICATION, ocsf_activity=99),
    _o("session_expired", "INFO", SESSION, ("end",), "success", "A session expired.",
       ("userid", "reason"), ocsf_class=OCSF_AUTHENTICATION, ocsf_activity=2),
    _o("session_logout", "INFO", SESSION, ("end",), "success", "A user logged out.",
       ("userid", "sessionid"), ocsf_class=OCSF_AUTHENTICATION, ocsf_activity=2),
    _o("session_use_after_expire", "CRITICAL", SESSION, ("info",), "failure",
       "An expired session was used.", ("userid",), ocsf_class=OCSF_AUTHENTICATION,
       ocsf_activity=1),
    # System Events [SYS]
    _o("sys_startup", "WARN", PROCESS, ("start",), "success", "The system started.",
       ("userid",), ocsf_class=OCSF_APPLICATION_LIFECYCLE, ocsf_activity=3),
    _o("sys_shutdown", "WARN", PROCESS, ("end",), "success", "The system shut down.",
       ("userid",), ocsf_class=OCSF_APPLICATION_LIFECYCLE, ocsf_activity=4),
    _o("sys_restart", "WARN", PROCESS, ("start",), "success", "The system restarted.",
       ("userid",), ocsf_class=OCSF_APPLICATION_LIFECYCLE, ocsf_activity=5),
    _o("sys_crash", "WARN", PROCESS, ("end",), "failure", "The system crashed.", ("reason",),
       ocsf_class=OCSF_APPLICATION_LIFECYCLE, ocsf_activity=4),
    _o("sys_monitor_disabled", "WARN", ("configuration",), ("change",), "success",
       "A monitoring agent was disabled.", ("userid", "monitor"),
       ocsf_class=OCSF_APPLICATION_LIFECYCLE, ocsf_activity=7),
    _o("sys_monitor_enabled", "WARN", ("configuration",), ("change",), "success",
       "A monitoring agent was enabled.", ("userid", "monitor"),
       ocsf_class=OCSF_APPLICATION_LIFECYCLE, ocsf_activity=6),
    # User Management [USER]
    _o("user_created", "WARN", IAM, ("user", "creation"), "success", "A user was created.",
       ("userid", "newuserid", "attributes"), ocsf_class=OCSF_ACCOUNT_CHANGE, ocsf_activity=1),
    _o("user_updated", "WARN", IAM, ("user", "change"), "success", "A user was updated.",
       ("userid", "onuserid", "attributes"), ocsf_class=OCSF_ACCOUNT_CHANGE, ocsf_activity=99),
    _o("user_archived", "WARN", IAM, ("user", "change"), "success", "A user was archived.",
       ("userid", "onuserid"), ocsf_class=OCSF_ACCOUNT_CHANGE, ocsf_activity=5),
    _o("user_deleted", "WARN", IAM, ("user", "deletion"), "success", "A user was deleted.",
       ("userid", "onuserid"), ocsf_class=OCSF_ACCOUNT_CHANGE, ocsf_activity=6),
)

# apiwatch's own actions: what an API monitor records beyond the sheet.
_APIWATCH: tuple[Action, ...] = (
    # The access log: outcome from the status (`http_outcome`), set by the capture adapter.
    _a("http_request", "INFO", ("web",), ("access",), "unknown", "An HTTP request was served.",
       ("method", "path", "status"), ocsf_class=OCSF_HTTP_ACTIVITY),
    # The sheet has token creation, revocation and reuse, but no unknown or malformed token:
    # the signal of API-key guessing.
    _a("authn_token_invalid", "WARN", AUTHN, ("start",), "failure",
       "An unknown, expired or malformed API token was presented.", ("tokenid", "reason"),
       ocsf_class=OCSF_AUTHENTICATION, ocsf_activity=1),
    _a("data_access", "INFO", API, ("access",), "success", "Objects were read.",
       ("userid", "object_type", "object_ids", "count"), ocsf_class=OCSF_API_ACTIVITY,
       ocsf_activity=2),
    _a("ingest_refused", "WARN", AUTHN, ("start",), "failure",
       "The collector refused a batch (bad token, bad signature, replay).", ("source", "reason"),
       ocsf_class=OCSF_AUTHENTICATION, ocsf_activity=1),
    _a("source_sequence_gap", "WARN", ("host",), ("info",), "unknown",
       "Events of a source are missing: its sequence numbers skipped.",
       ("source", "first", "last"), **_FINDING),
    _a("source_silent", "WARN", ("host",), ("info",), "unknown",
       "A source sent nothing for longer than expected.", ("source", "last_seen"), **_FINDING),
    # ECS `pipeline_error`: the line could not be read, so it cannot be categorised either.
    _a("parse_failure", "WARN", (), (), "failure", "A log line did not parse.",
       ("source", "reason"), kind="pipeline_error"),
    _a("probe_result", "INFO", ("web",), ("info",), "unknown",
       "An HTTP probe of the monitored API finished.", ("url", "status", "duration"),
       failure_level="WARN", ocsf_class=OCSF_HTTP_ACTIVITY),
    # A source's own report that events were lost before shipping (its spool was full).
    _a("log_events_dropped", "WARN", ("host",), ("info",), "failure",
       "A source dropped events it could not keep.", ("dropped", "reason")),
    # An application's own log record routed through capture (`apiwatch.capture.logging`):
    # ECS `process`/`info`, as all apiwatch knows is which program wrote it.
    _a("app_log", "INFO", PROCESS, ("info",), "unknown", "An application wrote a log record.",
       ("logger", "message")),
    # A detection rule fired (`apiwatch.alerts`): the alert itself is a ledger record.
    _a("alert_raised", "WARN", IDS, ("info",), "unknown",
       "A detection rule raised an alert.", ("rule", "severity", "group", "count"), **_FINDING),
    _a("alert_status_changed", "INFO", IDS, ("info",), "success",
       "An alert was acknowledged, resolved or commented on.",
       ("alertid", "action", "status", "userid")),
)

_ACTIONS: dict[str, Action] = {a.name: a for a in (*_OWASP, *_APIWATCH)}
_register_lock = threading.Lock()

#: Every known action by name, the user's registered ones included (a read-only live view).
VOCABULARY: Mapping[str, Action] = MappingProxyType(_ACTIONS)


def lookup(name: str) -> Action:
    """The action called `name`; raises UnknownActionError naming it."""
    try:
        return _ACTIONS[name]
    except KeyError:
        raise UnknownActionError(f"unknown event action {name!r}") from None


def http_outcome(status: int) -> Outcome:
    """`event.outcome` of an HTTP exchange: failure from 400 on, as Elastic's nginx and apache
    integrations set it."""
    return "failure" if status >= 400 else "success"


def register(action: Action) -> Action:
    """Add a user's own action; refuse a name already defined or ECS values ECS does not allow.

    Raises VocabularyError saying what is wrong.
    """
    if not _NAME.fullmatch(action.name):
        raise VocabularyError(
            f"action name {action.name!r} must be lower_snake_case with a category prefix"
        )
    for attr, allowed in (("level", Level), ("outcome", Outcome), ("kind", Kind)):
        if getattr(action, attr) not in get_args(allowed):
            raise VocabularyError(f"{action.name}: {attr} must be one of {get_args(allowed)}")
    if action.failure_level is not None and action.failure_level not in get_args(Level):
        raise VocabularyError(f"{action.name}: failure_level must be one of {get_args(Level)}")
    for category in action.category:
        if category not in ECS_EXPECTED_TYPES:
            raise VocabularyError(f"{action.name}: {category!r} is not an ECS event.category")
    for type_ in action.type:
        if not any(type_ in ECS_EXPECTED_TYPES[c] for c in action.category):
            raise VocabularyError(
                f"{action.name}: event.type {type_!r} is not expected for {action.category}"
            )
    with _register_lock:
        if action.name in _ACTIONS:
            raise VocabularyError(f"event action {action.name!r} is already defined")
        _ACTIONS[action.name] = action
    return action
