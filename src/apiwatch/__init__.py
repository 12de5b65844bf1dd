"""apiwatch: security logging and monitoring for HTTP APIs (OWASP API10).

The core packages (`events`, `sanitize`, `formats`, `ledger`) import no web framework.
"""

from importlib.metadata import PackageNotFoundError, version

from apiwatch.errors import ApiwatchError

try:
    __version__ = version("apiwatch")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["ApiwatchError", "__version__"]
