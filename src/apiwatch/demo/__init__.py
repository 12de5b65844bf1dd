"""`apiwatch demo`: a collector, an instrumented FastAPI shop and traffic with attacks in it.

`shop` is the instrumented API, `traffic` the users and attackers, `runner` wires them to an
in-process collector on free 127.0.0.1 ports. Needs the `demo` extra (FastAPI).
"""
