"""The apiwatch exception tree: one root, specific subclasses, messages a person can act on."""


class ApiwatchError(Exception):
    """Root of every error apiwatch raises on purpose."""


class ConfigError(ApiwatchError):
    """A configuration value is missing or invalid."""


class DecodeError(ApiwatchError):
    """An input record could not be decoded; says which line and field."""

    def __init__(self, detail: str, *, line: int | None = None, field: str | None = None) -> None:
        self.detail = detail
        self.line = line
        self.field = field
        where = []
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field {field!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {detail}" if prefix else detail)


class UnknownActionError(ApiwatchError):
    """An event action is not in the OWASP Logging Vocabulary nor registered by the user."""
