"""The security Event: ECS fields, the OWASP Logging Vocabulary, client IPs and route templates."""

from apiwatch.events.clientip import ClientIPResolver
from apiwatch.events.clock import format_timestamp, parse_timestamp, utc_now
from apiwatch.events.fields import FIELDS, FieldType, field_type
from apiwatch.events.ids import uuid7
from apiwatch.events.model import Event, SequenceCounter, make_event
from apiwatch.events.routes import normalize_route
from apiwatch.events.vocabulary import (
    VOCABULARY,
    Action,
    VocabularyError,
    http_outcome,
    lookup,
    register,
)

__all__ = [
    "FIELDS",
    "VOCABULARY",
    "Action",
    "ClientIPResolver",
    "Event",
    "FieldType",
    "SequenceCounter",
    "VocabularyError",
    "field_type",
    "format_timestamp",
    "http_outcome",
    "lookup",
    "make_event",
    "normalize_route",
    "parse_timestamp",
    "register",
    "utc_now",
    "uuid7",
]
