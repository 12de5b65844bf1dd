def scan(
    data: bytes,
    classes: bytes,
    digits: bytes,
    prefixes: tuple[bytes, ...],
    min_run: int,
    card_digits: int,
    card_max_digits: int,
    long_word: int,
    keyword: bytes,
    /,
) -> int: ...
