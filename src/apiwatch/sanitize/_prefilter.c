/* The secrets pre-check's scan in one pass over the bytes (see `secrets._scan_py`, the
 * reference it must agree with, and `tests/sanitize/test_prefilter.py`, which holds it to it).
 *
 * In Python the scan is a dozen C-level calls (two translations, a search per long run, a check
 * of each run); on a 450-byte event line those calls and their temporary objects cost about
 * 4 us, here the pass costs a tenth of that. Nothing is allocated; the data is only read.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* The verdicts, as `secrets` names them: SUSPICIOUS, or CLEAN with the flag of what the
 * caller must look at more closely. */
#define CLEAN 0
#define SUSPICIOUS 1
#define URL_SHAPE 4

#define RUN_CLASS 'a'
#define CONTROL_CLASS 0
#define TILDE_CLASS '~'
#define DIGIT_CLASS '0'

/* Data this long (a batch of lines) is scanned without the GIL: the collector's event loop
 * carries on meanwhile. Below it (one event) the hand-over would cost more than the scan. */
#define RELEASE_GIL_BYTES (64 * 1024)

/* What the scan needs to know of a byte: its classes from the two tables, and ASCII facts,
 * so that the pass over the data looks up one table, not two. */
#define K_RUN 1        /* in a letter/digit run (the `classes` table's run class) */
#define K_STOP 2       /* a control character or `~` (`classes`): suspicious at once */
#define K_CARD 4       /* in a card's run (the `digits` table: digits, spaces, dashes) */
#define K_DIGIT 8      /* an ASCII digit */
#define K_NOT_ALPHA 16 /* not an ASCII letter */
#define K_NOT_HEX 32   /* not an ASCII hex digit */
#define K_AT 64
#define K_SLASH 128

static void
byte_kinds(unsigned char kinds[256], const unsigned char *class_of,
           const unsigned char *digit_of)
{
    for (int byte = 0; byte < 256; byte++) {
        int digit = byte >= '0' && byte <= '9';
        int alpha = (byte >= 'a' && byte <= 'z') || (byte >= 'A' && byte <= 'Z');
        int hex = digit || (byte >= 'a' && byte <= 'f') || (byte >= 'A' && byte <= 'F');
        unsigned char class = class_of[byte];
        kinds[byte] = (unsigned char)(
            (class == RUN_CLASS ? K_RUN : 0) |
            (class == CONTROL_CLASS || class == TILDE_CLASS ? K_STOP : 0) |
            (digit_of[byte] == DIGIT_CLASS ? K_CARD : 0) | (digit ? K_DIGIT : 0) |
            (alpha ? 0 : K_NOT_ALPHA) | (hex ? 0 : K_NOT_HEX) | (byte == '@' ? K_AT : 0) |
            (byte == '/' ? K_SLASH : 0));
    }
}

/* The kinds of the bytes for the last two pairs of tables (the callers use two: events and
 * lines of events), kept with a copy of the tables they were built from and found again by
 * comparing contents (no object is held). Building the kinds costs as much as scanning a few
 * hundred bytes; comparing the tables, a few dozen instructions. */
static struct {
    int filled;
    unsigned char classes[256], digits[256], kinds[256];
} kinds_cache[2];
static int kinds_next;

static const unsigned char *
kinds_of(const unsigned char *classes, const unsigned char *digits)
{
    for (int slot = 0; slot < 2; slot++) {
        if (kinds_cache[slot].filled && memcmp(kinds_cache[slot].classes, classes, 256) == 0 &&
            memcmp(kinds_cache[slot].digits, digits, 256) == 0) {
            return kinds_cache[slot].kinds;
        }
    }
    int slot = kinds_next;
    kinds_next ^= 1;
    memcpy(kinds_cache[slot].classes, classes, 256);
    memcpy(kinds_cache[slot].digits, digits, 256);
    byte_kinds(kinds_cache[slot].kinds, classes, digits);
    kinds_cache[slot].filled = 1;
    return kinds_cache[slot].kinds;
}

/* A byte the card pattern's look-arounds refuse beside a card: `[\w.-]` on bytes. */
static inline int
joins_card(unsigned char byte)
{
    return (byte >= '0' && byte <= '9') || (byte >= 'a' && byte <= 'z') ||
           (byte >= 'A' && byte <= 'Z') || byte == '_' || byte == '.' || byte == '-';
}

static inline int
is_digit(unsigned char byte)
{
    return byte >= '0' && byte <= '9';
}

/* Whether the card detector's pattern, `(?<![\w.-])\d(?:[ -]?\d){M-1,N-1}(?![\w.-])` with
 * M = `min_digits` and N = `max_digits`, matches inside the run `start..end` of the card class
 * (digits, spaces, dashes; the byte before `start` and the byte at `end` are outside it). A
 * match holds only bytes of the run, and from a given first digit the pattern can follow the
 * run one way only (a separator is taken only before a digit), so it is enough to try each
 * first digit the look-behind allows and each count of digits along that one path. */
static int
card_in_run(const unsigned char *bytes, Py_ssize_t size, Py_ssize_t start, Py_ssize_t end,
            Py_ssize_t min_digits, Py_ssize_t max_digits)
{
    for (Py_ssize_t first = start; first + min_digits <= end; first++) {
        if (!is_digit(bytes[first]) || (first > 0 && joins_card(bytes[first - 1]))) {
            continue;
        }
        Py_ssize_t digits = 1, after = first + 1;
        for (;;) {
            if (digits >= min_digits && (after >= size || !joins_card(bytes[after]))) {
                return 1;
            }
            if (digits == max_digits) {
                break;
            }
            if (after < end && is_digit(bytes[after])) {
                after += 1;
            }
            else if (after + 1 < end && (bytes[after] == ' ' || bytes[after] == '-') &&
                     is_digit(bytes[after + 1])) {
                after += 2;
            }
            else {
                break;
            }
            digits++;
        }
    }
    return 0;
}

/* The run of the card class the scan is in: where it began (-1 outside one) and how many
 * ASCII digits it holds so far. */
typedef struct {
    Py_ssize_t start, digits;
} CardRun;

/* One byte's step through the runs of the card class: 1 when the byte at `i` ends a run (or
 * `i` is the end of the data) that holds a card, else 0. Runs with fewer than `min_digits`
 * digits are not looked into: the pattern cannot match there. */
static inline int
card_step(CardRun *run, const unsigned char *bytes, Py_ssize_t size, Py_ssize_t i,
          unsigned char kind, Py_ssize_t min_digits, Py_ssize_t max_digits)
{
    if (i < size && (kind & K_CARD)) {
        if (run->start < 0) {
            run->start = i;
            run->digits = 0;
        }
        run->digits += (kind & K_DIGIT) != 0;
        return 0;
    }
    Py_ssize_t start = run->start;
    run->start = -1;
    return start >= 0 && run->digits >= min_digits &&
           card_in_run(bytes, size, start, i, min_digits, max_digits);
}

/* Whether a run (of the `classes` table's run class, at least `min_run` bytes) could be a
 * secret: not plain hex, and not only letters, or very long, or a known prefix, or the
 * keyword. */
static int
run_is_candidate(const unsigned char *run, Py_ssize_t length, int not_alpha, int all_hex,
                 PyObject *prefixes, Py_ssize_t long_word, const char *keyword,
                 Py_ssize_t keyword_length)
{
    if (all_hex) {
        return 0;
    }
    if (not_alpha || length >= long_word) {
        return 1;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(prefixes);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *prefix = PyTuple_GET_ITEM(prefixes, i);
        Py_ssize_t size = PyBytes_GET_SIZE(prefix);
        if (size <= length && memcmp(run, PyBytes_AS_STRING(prefix), size) == 0) {
            return 1;
        }
    }
    if (length != keyword_length) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < length; i++) {
        unsigned char byte = run[i];
        if (byte >= 'A' && byte <= 'Z') {
            byte += 'a' - 'A';
        }
        if (byte != (unsigned char)keyword[i]) {
            return 0;
        }
    }
    return 1;
}

static int
check_table(PyObject *table, const char *name)
{
    if (!PyBytes_CheckExact(table) || PyBytes_GET_SIZE(table) != 256) {
        PyErr_Format(PyExc_TypeError, "%s must be a bytes object of 256 bytes", name);
        return -1;
    }
    return 0;
}

/* What `scan` reads: the data, its bytes' kinds and the constants. */
typedef struct {
    const unsigned char *bytes;
    Py_ssize_t size;
    const unsigned char *kinds;
    PyObject *prefixes;  /* a tuple of bytes, only read: safe without the GIL */
    Py_ssize_t min_run, card_digits, card_max_digits, long_word;
    const char *word;
    Py_ssize_t word_length;
} Scan;

/* The verdict on `scan`'s data; needs no GIL (nothing is allocated or counted). */
static int
scan_bytes(const Scan *scan)
{
    const unsigned char *bytes = scan->bytes, *kinds = scan->kinds;
    Py_ssize_t size = scan->size, min_run = scan->min_run, long_word = scan->long_word;
    Py_ssize_t card_digits = scan->card_digits, card_max_digits = scan->card_max_digits;
    PyObject *prefixes = scan->prefixes;
    const char *word = scan->word;
    Py_ssize_t word_length = scan->word_length;
    int at_sign = 0, scheme = 0;
    CardRun card = {-1, 0};
    Py_ssize_t i = 0;
    while (i < size) {
        unsigned char kind = kinds[bytes[i]];
        if (kind & K_RUN) {
            /* A run of letters and digits, whole: its digits also belong to the card class. */
            Py_ssize_t start = i;
            unsigned char seen = 0;
            do {
                seen |= kind;
                if (card_step(&card, bytes, size, i, kind, card_digits, card_max_digits)) {
                    return SUSPICIOUS;
                }
                i++;
            } while (i < size && ((kind = kinds[bytes[i]]) & K_RUN));
            if (i - start >= min_run &&
                run_is_candidate(bytes + start, i - start, seen & K_NOT_ALPHA,
                                 !(seen & K_NOT_HEX), prefixes, long_word, word, word_length)) {
                return SUSPICIOUS;
            }
            continue;
        }
        if ((kind & K_STOP) ||
            card_step(&card, bytes, size, i, kind, card_digits, card_max_digits)) {
            return SUSPICIOUS;
        }
        at_sign |= kind & K_AT;
        scheme |= (kind & K_SLASH) && i >= 2 && bytes[i - 1] == '/' && bytes[i - 2] == ':';
        i++;
    }
    if (card_step(&card, bytes, size, size, 0, card_digits, card_max_digits)) {
        return SUSPICIOUS;
    }
    return at_sign && scheme ? URL_SHAPE : CLEAN;
}

PyDoc_STRVAR(scan_doc,
"scan(data, classes, digits, prefixes, min_run, card_digits, card_max_digits, long_word,\n"
"     keyword) -> int\n\n"
"What `secrets._scan_py` returns for `data` and `classes` (the other arguments are its\n"
"constants): 1 (SUSPICIOUS) for a control character, a `~`, a run of `min_run`+ letters\n"
"and digits that could be a secret, or a card number (`card_digits` to `card_max_digits`\n"
"digits, the card detector's pattern); else 0 (CLEAN), plus 4 (URL_SHAPE) if `://` and `@`\n"
"are there.");

static PyObject *
scan(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError, "scan() takes 9 arguments");
        return NULL;
    }
    PyObject *data = args[0], *classes = args[1], *digits = args[2], *prefixes = args[3];
    PyObject *keyword = args[8];
    if (!PyBytes_CheckExact(data)) {
        PyErr_SetString(PyExc_TypeError, "data must be bytes");
        return NULL;
    }
    if (check_table(classes, "classes") < 0 || check_table(digits, "digits") < 0) {
        return NULL;
    }
    if (!PyTuple_CheckExact(prefixes)) {
        PyErr_SetString(PyExc_TypeError, "prefixes must be a tuple of bytes");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(prefixes); i++) {
        if (!PyBytes_CheckExact(PyTuple_GET_ITEM(prefixes, i))) {
            PyErr_SetString(PyExc_TypeError, "prefixes must be a tuple of bytes");
            return NULL;
        }
    }
    Py_ssize_t min_run = PyLong_AsSsize_t(args[4]);
    Py_ssize_t card_digits = PyLong_AsSsize_t(args[5]);
    Py_ssize_t card_max_digits = PyLong_AsSsize_t(args[6]);
    Py_ssize_t long_word = PyLong_AsSsize_t(args[7]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    if (min_run < 1 || card_digits < 1 || card_max_digits < card_digits) {
        PyErr_SetString(PyExc_ValueError,
                        "min_run and card_digits must be positive, card_max_digits no less");
        return NULL;
    }
    if (!PyBytes_CheckExact(keyword)) {
        PyErr_SetString(PyExc_TypeError, "keyword must be bytes");
        return NULL;
    }

    /* The kinds are copied: the cache's slot may be refilled while the GIL is released. */
    unsigned char kinds[256];
    memcpy(kinds, kinds_of((const unsigned char *)PyBytes_AS_STRING(classes),
                           (const unsigned char *)PyBytes_AS_STRING(digits)), sizeof(kinds));
    Scan scan = {(const unsigned char *)PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), kinds,
                 prefixes, min_run, card_digits, card_max_digits, long_word,
                 PyBytes_AS_STRING(keyword), PyBytes_GET_SIZE(keyword)};
    int verdict;
    if (scan.size >= RELEASE_GIL_BYTES) {
        Py_BEGIN_ALLOW_THREADS
        verdict = scan_bytes(&scan);
        Py_END_ALLOW_THREADS
    }
    else {
        verdict = scan_bytes(&scan);
    }
    return PyLong_FromLong(verdict);
}

static PyMethodDef prefilter_methods[] = {
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL, scan_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef prefilter_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "apiwatch.sanitize._prefilter",
    .m_doc = "The secrets pre-check's byte scan (see apiwatch.sanitize.secrets).",
    .m_size = 0,
    .m_methods = prefilter_methods,
};

PyMODINIT_FUNC
PyInit__prefilter(void)
{
    return PyModuleDef_Init(&prefilter_module);
}
