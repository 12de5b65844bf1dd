"""Sanitizing events: neutralizing log injection (CWE-117), redacting secrets, fingerprinting keys.

`Sanitizer` is the processor every event goes through before it is encoded or stored;
`neutralize` is the escaping alone, for text that is not part of an event.
"""

from apiwatch.sanitize.config import DEFAULT_MAX_LEN, DEFAULT_REDACT_HEADERS, SanitizeConfig
from apiwatch.sanitize.neutralize import neutralize
from apiwatch.sanitize.pipeline import Sanitizer

__all__ = [
    "DEFAULT_MAX_LEN",
    "DEFAULT_REDACT_HEADERS",
    "SanitizeConfig",
    "Sanitizer",
    "neutralize",
]
