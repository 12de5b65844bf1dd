"""Capture inside the user's API: a never-blocking emitter, a durable spool, signed shipping.

The framework adapters (`asgi`, `wsgi`, `django`, `logging`) are thin layers over this core.
"""

from apiwatch.capture.emitter import Emitter, SequenceReservation, Sink
from apiwatch.capture.shipper import Shipper
from apiwatch.capture.sinks import JsonLinesFileSink, SpoolSink, StdoutSink, SyslogSink
from apiwatch.capture.spool import Spool, SpoolFull

__all__ = [
    "Emitter",
    "JsonLinesFileSink",
    "SequenceReservation",
    "Shipper",
    "Sink",
    "Spool",
    "SpoolFull",
    "SpoolSink",
    "StdoutSink",
    "SyslogSink",
]
