"""Encoders (ECS JSON lines, OCSF, CEF, RFC 5424 syslog) and the JSON-lines decoder.

Every encoder takes one Event and returns one record as bytes, and keeps it one record
whatever the event's strings contain: the sanitizer is expected to have run, but an encoder
does not rely on it.
"""

from apiwatch.formats.cef import encode_cef
from apiwatch.formats.ecs import encode_ecs
from apiwatch.formats.jsonl import decode_line, iter_decode
from apiwatch.formats.ocsf import encode_ocsf, to_ocsf
from apiwatch.formats.syslog import encode_syslog, frame_octet_counted

__all__ = [
    "decode_line",
    "encode_cef",
    "encode_ecs",
    "encode_ocsf",
    "encode_syslog",
    "frame_octet_counted",
    "iter_decode",
    "to_ocsf",
]
