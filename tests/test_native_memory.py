"""The C modules under AddressSanitizer and UBSan.

Each is compiled here with the sanitizers and loaded in a child interpreter (the runtime
preloaded), then fed random and hostile bytes and compared with their Python references: any
out-of-bounds read, use after free or undefined behaviour aborts the child, and so does a verdict
that differs. A C compiler is part of the test setup (`scripts/test` installs gcc): without one
this fails rather than skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Each module's source and the libraries it links.
SOURCES = {
    "_prefilter": (REPO / "src" / "apiwatch" / "sanitize" / "_prefilter.c", []),
    "_hot_columns": (REPO / "src" / "apiwatch" / "store" / "_hot_columns.c", []),
    "_batch": (REPO / "src" / "apiwatch" / "ledger" / "_batch.c", ["-lcrypto"]),
    "_json_bytes": (REPO / "src" / "apiwatch" / "formats" / "_json_bytes.c", []),
}

CHILD = r"""
import random
import sys

import orjson

sys.path.insert(0, sys.argv[1])
import _batch  # the sanitizer builds, as top-level modules of the build folder
import _hot_columns
import _json_bytes
import _prefilter

from apiwatch.ledger import merkle
from apiwatch.sanitize import secrets
from apiwatch.store._time import event_micros
from apiwatch.store.sqlite_addresses import address_id

rnd = random.Random(int(sys.argv[2]))
PIECES = [
    b"4111 1111 1111 1111", b"https://u:p@h", b"@timestamp", b"AKIAIOSFODNN7EXAMPLE",
    b"Authorization", b"0123456789abcdef", b"~", b"\x00", b"\n", b"\xb2", b"\xff", b"\\",
    b'"', b"{", b"}", b"[", b"]", b":", b",", b"-0.5", b"1e5", b"true", b"nul", b" ",
]
KEYS = ("@timestamp", "source.ip", "user.name", "a")


def noise():
    parts = []
    for _ in range(rnd.randint(0, 12)):
        if rnd.random() < 0.5:
            parts.append(rnd.choice(PIECES))
        else:
            parts.append(bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 8))))
    return b"".join(parts)


def value(depth=0):
    kind = rnd.randrange(8 if depth < 4 else 5)
    if kind == 0:
        return noise().decode("latin-1")
    if kind == 1:
        return rnd.choice([True, False, None])
    if kind == 2:
        return rnd.choice([0, -1, 123456789, 2**62, -0.5, 1e300])
    if kind in (3, 4):
        return rnd.choice(["alice", "10.0.0.1", "", 'q"uote', "back\\slash", "\u00e9"])
    if kind in (5, 6):
        return {rnd.choice(KEYS + ("b",)): value(depth + 1) for _ in range(rnd.randint(0, 4))}
    return [value(depth + 1) for _ in range(rnd.randint(0, 4))]


def record():
    data = orjson.dumps({rnd.choice(KEYS + ("b", "c")): value() for _ in range(6)})
    kind = rnd.random()
    if kind < 0.4:
        return data
    cut = rnd.randint(0, len(data))
    if kind < 0.7:
        return data[:cut]  # torn anywhere: in a literal, a number, a string, a nesting
    if kind < 0.9:
        return data[:cut] + noise() + data[cut:]
    return b'{"a":' + b"[" * rnd.randint(60, 70) + noise()


def stamp():
    text = "2026-11-29T05:05:35.532092Z"
    at = rnd.randrange(len(text))
    return rnd.choice([text, text[:at], text[:at] + noise().decode("latin-1") + text[at + 1:]])


def reference_micros(text):
    try:
        return event_micros(text)
    except ValueError:
        return None


def scan(data, table):
    return _prefilter.scan(
        data, table, secrets._DIGITS, secrets._ALPHA_PREFIXES_BYTES, len(secrets._RUN),
        secrets._CARD_DIGITS, secrets._CARD_MAX_DIGITS, secrets._LONG_WORD, secrets._KEYWORD,
    )


for turn in range(int(sys.argv[3])):
    data = noise()
    if turn % 100 == 0:  # a batch's size: scanned without the GIL
        data = b"\n".join(noise() for _ in range(20000))
    for table in (secrets._CLASSES, secrets._LINE_CLASSES):
        assert scan(data, table) == secrets._scan_py(data, table), (data, table)
    assert _json_bytes.key_ends(data) == data.count(b'":'), data
    assert _batch.line_feeds(data) == data.count(b"\n"), data
    stamps = [stamp() for _ in range(rnd.randint(0, 5))]
    for text, got in zip(stamps, _hot_columns.micros(stamps)):
        assert got is None or got == reference_micros(text), text
    addresses = [rnd.choice(["10.0.0.1", "255.255.255.255", "1.2.3", "01.2.3.4"]), stamp(),
                 noise().decode("latin-1"), None]
    assert _hot_columns.v4_ids(addresses) == [
        (address_id(a) if type(a) is str else None) or 0 for a in addresses
    ], addresses
    records = [record() for _ in range(rnd.randint(0, 5))]
    columns, unread = _hot_columns.columns(records, KEYS)
    for row, data in enumerate(records):
        if row in unread:
            continue
        event = orjson.loads(data)
        want = [event.get(k) if type(event.get(k)) is str else None for k in KEYS]
        assert [column[row] for column in columns] == want, data
    leaves = _batch.leaf_hashes(records)
    assert leaves == merkle._leaf_hashes_py(records)
    pairs = leaves[: len(leaves) & ~1]
    assert _batch.node_hashes(pairs) == merkle._node_hashes_py(pairs)
print("ok")
"""


def _compiler() -> str:
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc is not None, "no C compiler: scripts/test installs gcc"
    return cc


def _runtime(cc: str, library: str) -> str:
    done = subprocess.run([cc, f"-print-file-name={library}"], capture_output=True, text=True,
                          check=True)
    return done.stdout.strip()


def test_the_c_modules_are_memory_safe_on_hostile_input(tmp_path: Path) -> None:
    cc = _compiler()
    include = sysconfig.get_paths()["include"]
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    for name, (source, libraries) in SOURCES.items():
        subprocess.run(
            [cc, "-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
             "-fno-sanitize-recover=undefined", "-shared", "-fPIC", f"-I{include}",
             str(source), "-o", str(tmp_path / f"{name}{suffix}"), *libraries],
            check=True,
        )
    env = {
        **os.environ,
        "LD_PRELOAD": " ".join(_runtime(cc, lib) for lib in ("libasan.so", "libubsan.so")),
        # Every object from malloc, so that ASan guards each bytes object's end (pymalloc
        # carves small objects out of its own arenas, where an overrun goes unseen).
        "PYTHONMALLOC": "malloc",
        # The interpreter itself is not built for leak checking; memory errors still abort.
        "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:exitcode=23",
        "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
    }
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path), "20261128", "3000"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.strip() == "ok"
