"""Watching the monitored API from outside: synthetic probes and exported monitoring artifacts."""
