"""The filter language of the query API, the dashboard and `apiwatch query`: parser and AST.

Grammar (keywords are case-insensitive; juxtaposed terms are ANDed; NOT binds tightest,
then AND, then OR):

    expr    := and ( "OR" and )*
    and     := unary ( "AND"? unary )*
    unary   := "NOT" unary | "(" expr ")" | term
    term    := FIELD ( ":" | ">" | ">=" | "<" | "<=" ) VALUE
    VALUE   := "quoted \\"text\\"" | bare-word

A bare value with `*` or `?` is a wildcard; a quoted value is always literal. Values are typed
by the field (`apiwatch.events.fields`): numbers compare numerically, `@timestamp` takes a date
or an RFC 3339 time, IP fields take an address or a CIDR network. The parser produces an AST
of plain values; the backends turn it into SQL with bound parameters only.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import Enum

from apiwatch.events.clock import parse_timestamp
from apiwatch.events.fields import FieldType, field_type
from apiwatch.store._time import from_micros, to_micros
from apiwatch.store.errors import QueryError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Op(Enum):
    """A comparison in a range term."""

    GT = ">"
    GE = ">="
    LT = "<"
    LE = "<="


@dataclass(frozen=True)
class Term:
    """`field:value`: equality (for a list field, some element equals `value`)."""

    field: str
    value: str | int | float | bool


@dataclass(frozen=True)
class Wildcard:
    """`field:pat*`: the string matches a glob where `*` is any run and `?` one character."""

    field: str
    pattern: str


@dataclass(frozen=True)
class Range:
    """`field>=value` on a number, or on `@timestamp` in epoch microseconds."""

    field: str
    op: Op
    value: int | float


@dataclass(frozen=True)
class Cidr:
    """`ip_field:10.0.0.0/8`; a single address is its /32 or /128 network."""

    field: str
    network: IPNetwork


@dataclass(frozen=True)
class And:
    """Every item holds."""

    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    """At least one item holds."""

    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    """The item does not hold (an event without the field does not hold it)."""

    item: Node


Node = Term | Wildcard | Range | Cidr | And | Or | Not
Leaf = Term | Wildcard | Range | Cidr

#: Deeper nesting or more terms than this is refused: the text comes from API users.
MAX_DEPTH = 32
MAX_TERMS = 256
_MAX_INT = 2**63 - 1

_FIELD = re.compile(r"[A-Za-z0-9_@.\-]+")
_OPS = (">=", "<=", ">", "<", ":")
_KEYWORDS = {"AND", "OR", "NOT"}
_INT = re.compile(r"-?[0-9]+")
_FLOAT = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_SINCE = re.compile(r"([0-9]{1,9})([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class _Token:
    kind: str  # "(", ")", "AND", "OR", "NOT", "TERM"
    pos: int
    field: str = ""
    op: str = ""
    value: str = ""
    quoted: bool = False


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
            continue
        if char in "()":
            tokens.append(_Token(char, i))
            i += 1
            continue
        word = _FIELD.match(text, i)
        if word is None:
            raise QueryError(f"unexpected character {char!r}", text=text, position=i)
        end = word.end()
        op = next((o for o in _OPS if text.startswith(o, end)), "")
        if not op:
            if word.group().upper() in _KEYWORDS:
                tokens.append(_Token(word.group().upper(), i))
                i = end
                continue
            raise QueryError(
                f"expected ':' or a comparison after {word.group()!r}", text=text, position=end
            )
        value, quoted, i = _read_value(text, end + len(op))
        tokens.append(_Token("TERM", word.start(), word.group(), op, value, quoted))
    return tokens


def _read_value(text: str, i: int) -> tuple[str, bool, int]:
    """The value starting at `i`, whether it was quoted, and the position after it."""
    if i < len(text) and text[i] == '"':
        out: list[str] = []
        j = i + 1
        while j < len(text):
            char = text[j]
            if char == "\\" and j + 1 < len(text) and text[j + 1] in '"\\':
                out.append(text[j + 1])
                j += 2
            elif char == '"':
                return "".join(out), True, j + 1
            else:
                out.append(char)
                j += 1
        raise QueryError("unterminated quoted value", text=text, position=i)
    j = i
    while j < len(text) and not text[j].isspace() and text[j] not in '()"':
        j += 1
    if j == i:
        raise QueryError("missing value", text=text, position=i)
    return text[i:j], False, j


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.at = 0
        self.terms = 0

    def error(self, detail: str, pos: int | None = None) -> QueryError:
        if pos is None:
            pos = self.tokens[self.at].pos if self.at < len(self.tokens) else len(self.text)
        return QueryError(detail, text=self.text, position=pos)

    def peek(self) -> str | None:
        return self.tokens[self.at].kind if self.at < len(self.tokens) else None

    def parse(self) -> Node:
        node = self.expr(0)
        if self.at < len(self.tokens):
            raise self.error("unexpected ')'")
        return node

    def expr(self, depth: int) -> Node:
        items = [self.conj(depth)]
        while self.peek() == "OR":
            self.at += 1
            items.append(self.conj(depth))
        return items[0] if len(items) == 1 else Or(tuple(items))

    def conj(self, depth: int) -> Node:
        items = [self.unary(depth)]
        while self.peek() not in (None, ")", "OR"):
            if self.peek() == "AND":
                self.at += 1
            items.append(self.unary(depth))
        return items[0] if len(items) == 1 else And(tuple(items))

    def unary(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise self.error(f"nesting deeper than {MAX_DEPTH}")
        kind = self.peek()
        if kind is None:
            raise self.error("expected a term")
        token = self.tokens[self.at]
        self.at += 1
        if kind == "NOT":
            return Not(self.unary(depth + 1))
        if kind == "(":
            node = self.expr(depth + 1)
            if self.peek() != ")":
                raise self.error("expected ')'")
            self.at += 1
            return node
        if kind == "TERM":
            self.terms += 1
            if self.terms > MAX_TERMS:
                raise self.error(f"more than {MAX_TERMS} terms", token.pos)
            return self.term(token)
        raise self.error(f"unexpected {kind!r}", token.pos)

    def term(self, token: _Token) -> Node:
        kind = field_type(token.field)
        if kind is None:
            raise self.error(f"unknown field {token.field!r}", token.pos)
        try:
            return _typed_term(token, kind)
        except QueryError as exc:
            raise self.error(f"{token.field}: {exc.detail}", token.pos) from None


def _typed_term(token: _Token, kind: FieldType) -> Node:
    """The AST of one term, its value converted for the field's type."""
    field, op, value = token.field, token.op, token.value
    wild = not token.quoted and ("*" in value or "?" in value)
    if field == "@timestamp":
        return _time_term(op, value)
    if kind in (FieldType.LONG, FieldType.FLOAT):
        number = _number(value, integer=kind is FieldType.LONG)
        return Term(field, number) if op == ":" else Range(field, Op(op), number)
    if op != ":":
        raise QueryError(f"'{op}' needs a number or @timestamp")
    if kind is FieldType.IP:
        try:
            return Cidr(field, ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise QueryError(f"{value!r} is not an IP address or CIDR network") from None
    if kind is FieldType.BOOLEAN:
        if value.lower() not in ("true", "false"):
            raise QueryError("expects true or false")
        return Term(field, value.lower() == "true")
    return Wildcard(field, value) if wild else Term(field, value)


def _number(value: str, *, integer: bool) -> int | float:
    if integer:
        if _INT.fullmatch(value) is None or abs(int(value)) > _MAX_INT:
            raise QueryError(f"{value!r} is not a 64-bit integer")
        return int(value)
    if _FLOAT.fullmatch(value) is None or abs(float(value)) == float("inf"):
        raise QueryError(f"{value!r} is not a number")
    return float(value)


def _time_term(op: str, value: str) -> Node:
    """`@timestamp` terms become microsecond ranges; a bare date spans its whole UTC day."""
    start, end = _instant(value)
    if op == ":":
        return And((Range("@timestamp", Op.GE, start), Range("@timestamp", Op.LT, end)))
    # `>date` means after that day; `<=date` means up to the end of it.
    bound = end if op in (">", "<=") else start
    strict = {">": Op.GE, ">=": Op.GE, "<": Op.LT, "<=": Op.LT}[op]
    return Range("@timestamp", strict, bound)


def _instant(value: str) -> tuple[int, int]:
    """The microsecond span [start, end) a date or timestamp names."""
    try:
        if _DATE.fullmatch(value):
            start = datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
            return to_micros(start), to_micros(start + timedelta(days=1))
        micros = to_micros(parse_timestamp(value))
    except (ValueError, OverflowError):
        raise QueryError(f"{value!r} is not a date or an RFC 3339 time with offset") from None
    return micros, micros + 1


def parse_filter(text: str) -> Node | None:
    """Parse a filter; blank text means no filter. Raises QueryError with the position."""
    if "\x00" in text:
        raise QueryError("NUL character in query", text=text, position=text.index("\x00"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise QueryError("text is not valid Unicode", text=text, position=exc.start) from None
    if not text.strip():
        return None
    return _Parser(text).parse()


def parse_since(text: str, now: datetime) -> datetime:
    """The moment `--since` names: `15m`, `48h`, `7d`, `2w` before `now`, or a date/time.

    Units: s, m, h, d, w. A bare date is its UTC midnight. Raises QueryError.
    """
    relative = _SINCE.fullmatch(text.strip())
    if relative is not None:
        amount, unit = int(relative.group(1)), relative.group(2)
        try:
            return now - timedelta(**{_UNITS[unit]: amount})
        except OverflowError:
            raise QueryError(f"{text!r} reaches before year 1") from None
    start, _ = _instant(text.strip())
    return from_micros(start)

