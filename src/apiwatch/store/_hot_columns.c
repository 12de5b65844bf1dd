/* The values of a few top-level fields of JSON records, read from their bytes.
 *
 * The index store's writer needs about nine fields of each ledger record (the time and the hot
 * columns); decoding a whole record into a dict to read them costs several times what reading
 * them from the bytes does. `columns(records, keys)` returns, per key, the string value of that
 * field in each record (None when the field is absent or not a string; the last one when a key
 * repeats, as a JSON decoder gives it), and the positions of the records it leaves to a real
 * JSON decoder: any record that is not plain ASCII, holds an escape (`\\`), a number it does
 * not read exactly as written, or is not a well-formed JSON object.
 * For those the columns hold None. `tests/store/test_records.py` holds it to orjson;
 * `store/records.py` uses it.
 *
 * `micros(stamps)` turns the events' times, in the collector's own RFC 3339 form, into the
 * store's microseconds (`store/_time.py` holds the reference and decides any other form), and
 * `v4_ids(values)` IPv4 source addresses into their computed ids (`store/sqlite_addresses.py`).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define MAX_DEPTH 64
#define MAX_KEYS 32
/* Longer numbers are left to the decoder (orjson reads big integers its own way). */
#define MAX_NUMBER 18

typedef struct {
    const unsigned char *at, *end;
} Cursor;

static void
skip_space(Cursor *c)
{
    while (c->at < c->end &&
           (*c->at == ' ' || *c->at == '\t' || *c->at == '\n' || *c->at == '\r')) {
        c->at++;
    }
}

/* The bytes that end the plain run of a string: its closing quote, a backslash (whether an
 * escape is valid, and what it stands for, is the decoder's to say), a control character, or
 * a byte above ASCII (left to the decoder too; outside strings JSON has none). */
static unsigned char string_stop[256];

static void
fill_string_stop(void)
{
    for (int byte = 0; byte < 256; byte++) {
        string_stop[byte] = byte == '"' || byte == '\\' || byte < 0x20 || byte >= 0x80;
    }
}

/* A plain ASCII string whose opening quote is at c->at, without escapes: on success c->at is
 * past the closing quote and *start, *length give its content; else -1. */
static int
read_string(Cursor *c, const unsigned char **start, Py_ssize_t *length)
{
    const unsigned char *at = c->at + 1, *end = c->end;
    *start = at;
    while (at < end && !string_stop[*at]) {
        at++;
    }
    if (at >= end || *at != '"') {
        return -1;
    }
    *length = at - *start;
    c->at = at + 1;
    return 0;
}

static int
is_digit(unsigned char byte)
{
    return byte >= '0' && byte <= '9';
}

/* A JSON number as orjson reads it back exactly: -?(0|[1-9][0-9]*)(.[0-9]+)?, short. */
static int
skip_number(Cursor *c)
{
    const unsigned char *start = c->at;
    if (c->at < c->end && *c->at == '-') {
        c->at++;
    }
    if (c->at >= c->end || !is_digit(*c->at)) {
        return -1;
    }
    if (*c->at == '0') {
        c->at++;
    }
    else {
        while (c->at < c->end && is_digit(*c->at)) {
            c->at++;
        }
    }
    if (c->at < c->end && *c->at == '.') {
        c->at++;
        if (c->at >= c->end || !is_digit(*c->at)) {
            return -1;
        }
        while (c->at < c->end && is_digit(*c->at)) {
            c->at++;
        }
    }
    if (c->at < c->end && (*c->at == 'e' || *c->at == 'E')) {
        return -1;  /* exponents: the decoder's to read */
    }
    return c->at - start > MAX_NUMBER ? -1 : 0;
}

static int
skip_literal(Cursor *c, const char *word, Py_ssize_t length)
{
    if (c->end - c->at < length || memcmp(c->at, word, length) != 0) {
        return -1;
    }
    c->at += length;
    return 0;
}

typedef struct {
    const char *text;
    Py_ssize_t length;
} Key;

/* The keys whose values `read_object` gathers, and where: found[k] is the start of key k's
 * string value (NULL: not a string), lengths[k] its length, set[k] whether the key was seen. */
typedef struct {
    const Key *keys;
    Py_ssize_t count;
    const unsigned char **found;
    Py_ssize_t *lengths;
    char *set;
} Wanted;

static int skip_value(Cursor *c, int depth);

/* After a member or an item: its container's `close` (1, c->at past it), or a comma (0, c->at
 * at the next member), or anything else (-1). */
static int
after_member(Cursor *c, unsigned char close)
{
    skip_space(c);
    if (c->at >= c->end) {
        return -1;
    }
    if (*c->at == close) {
        c->at++;
        return 1;
    }
    if (*c->at != ',') {
        return -1;
    }
    c->at++;
    skip_space(c);
    return 0;
}

/* Into the container whose opening bracket is at c->at, `depth` containers deep: empty (1,
 * c->at past its `close`), or at its first member (0), or nested too deep (-1). */
static int
enter(Cursor *c, int depth, unsigned char close)
{
    if (depth >= MAX_DEPTH) {
        return -1;
    }
    c->at++;
    skip_space(c);
    if (c->at < c->end && *c->at == close) {
        c->at++;
        return 1;
    }
    return 0;
}

static Py_ssize_t
key_index(const Wanted *wanted, const unsigned char *key, Py_ssize_t length)
{
    for (Py_ssize_t k = 0; k < wanted->count; k++) {
        if (wanted->keys[k].length == length && memcmp(wanted->keys[k].text, key, length) == 0) {
            return k;
        }
    }
    return -1;
}

/* The object whose `{` is at c->at, `depth` containers deep: its members are skipped but for
 * the values of `wanted`'s keys (NULL: none), which are noted, the last one of a key winning. */
static int
read_object(Cursor *c, int depth, const Wanted *wanted)
{
    int opened = enter(c, depth, '}');
    if (opened != 0) {
        return opened > 0 ? 0 : -1;
    }
    for (;;) {
        const unsigned char *key, *value;
        Py_ssize_t key_length, value_length;
        if (c->at >= c->end || *c->at != '"' || read_string(c, &key, &key_length) < 0) {
            return -1;
        }
        skip_space(c);
        if (c->at >= c->end || *c->at != ':') {
            return -1;
        }
        c->at++;
        skip_space(c);
        Py_ssize_t k = wanted == NULL ? -1 : key_index(wanted, key, key_length);
        if (k >= 0 && c->at < c->end && *c->at == '"') {
            if (read_string(c, &value, &value_length) < 0) {
                return -1;
            }
            wanted->found[k] = value;
            wanted->lengths[k] = value_length;
            wanted->set[k] = 1;
        }
        else {
            if (skip_value(c, depth + 1) < 0) {
                return -1;
            }
            if (k >= 0) {
                wanted->found[k] = NULL;
                wanted->set[k] = 1;
            }
        }
        int next = after_member(c, '}');
        if (next != 0) {
            return next > 0 ? 0 : -1;
        }
    }
}

static int
skip_array(Cursor *c, int depth)
{
    int opened = enter(c, depth, ']');
    if (opened != 0) {
        return opened > 0 ? 0 : -1;
    }
    for (;;) {
        if (skip_value(c, depth + 1) < 0) {
            return -1;
        }
        int next = after_member(c, ']');
        if (next != 0) {
            return next > 0 ? 0 : -1;
        }
    }
}

static int
skip_value(Cursor *c, int depth)
{
    if (c->at >= c->end) {
        return -1;
    }
    const unsigned char *start;
    Py_ssize_t length;
    switch (*c->at) {
    case '"':
        return read_string(c, &start, &length);
    case '{':
        return read_object(c, depth, NULL);
    case '[':
        return skip_array(c, depth);
    case 't':
        return skip_literal(c, "true", 4);
    case 'f':
        return skip_literal(c, "false", 5);
    case 'n':
        return skip_literal(c, "null", 4);
    default:
        return skip_number(c);
    }
}

/* One record, plain ASCII and one JSON object, `wanted`'s values noted; -1: leave the record
 * to the decoder. */
static int
read_record(const unsigned char *data, Py_ssize_t size, const Wanted *wanted)
{
    /* A byte above ASCII fails the read: inside a string `read_string` stops at it, anywhere
     * else it is no JSON the reader takes. */
    Cursor c = {data, data + size};
    skip_space(&c);
    if (c.at >= c.end || *c.at != '{' || read_object(&c, 0, wanted) < 0) {
        return -1;
    }
    skip_space(&c);
    return c.at == c.end ? 0 : -1;
}

static PyObject *
ascii_string(const unsigned char *text, Py_ssize_t length)
{
    PyObject *string = PyUnicode_New(length, 127);
    if (string != NULL) {
        memcpy(PyUnicode_DATA(string), text, length);
    }
    return string;
}

PyDoc_STRVAR(columns_doc,
"columns(records, keys) -> (columns, unread)\n\n"
"For each of `keys` (str, at most 32), the list of its string values in `records` (a list of\n"
"bytes, each a JSON object): None where a record lacks it or holds another type there. \n"
"`unread` lists the positions of the records left to a JSON decoder (their columns hold\n"
"None): not ASCII, an escape, a number not read exactly, or not a well-formed object.");

static PyObject *
columns(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "columns() takes 2 arguments");
        return NULL;
    }
    PyObject *records = args[0], *key_tuple = args[1];
    if (!PyList_CheckExact(records)) {
        PyErr_SetString(PyExc_TypeError, "records must be a list of bytes");
        return NULL;
    }
    if (!PyTuple_CheckExact(key_tuple) || PyTuple_GET_SIZE(key_tuple) > MAX_KEYS) {
        PyErr_SetString(PyExc_TypeError, "keys must be a tuple of at most 32 str");
        return NULL;
    }
    Py_ssize_t nkeys = PyTuple_GET_SIZE(key_tuple);
    Key keys[MAX_KEYS];
    for (Py_ssize_t k = 0; k < nkeys; k++) {
        PyObject *key = PyTuple_GET_ITEM(key_tuple, k);
        if (!PyUnicode_Check(key)) {
            PyErr_SetString(PyExc_TypeError, "keys must be a tuple of at most 32 str");
            return NULL;
        }
        keys[k].text = PyUnicode_AsUTF8AndSize(key, &keys[k].length);
        if (keys[k].text == NULL) {
            return NULL;
        }
    }
    /* A snapshot: allocating may run a finalizer that changes the caller's list. */
    PyObject *rows = PyList_AsTuple(records);
    if (rows == NULL) {
        return NULL;
    }
    Py_ssize_t nrecords = PyTuple_GET_SIZE(rows);
    PyObject *result = PyList_New(nkeys), *unread = PyList_New(0);
    if (result == NULL || unread == NULL) {
        goto error;
    }
    for (Py_ssize_t k = 0; k < nkeys; k++) {
        PyObject *column = PyList_New(nrecords);
        if (column == NULL) {
            goto error;
        }
        PyList_SET_ITEM(result, k, column);
    }
    const unsigned char *found[MAX_KEYS];
    Py_ssize_t lengths[MAX_KEYS];
    char set[MAX_KEYS];
    Wanted wanted = {keys, nkeys, found, lengths, set};
    /* Per key, the last string made, and the bytes it was made from. */
    PyObject *last[MAX_KEYS] = {NULL};
    const unsigned char *last_found[MAX_KEYS];
    Py_ssize_t last_lengths[MAX_KEYS];
    for (Py_ssize_t row = 0; row < nrecords; row++) {
        PyObject *record = PyTuple_GET_ITEM(rows, row);
        if (!PyBytes_CheckExact(record)) {
            PyErr_SetString(PyExc_TypeError, "records must be a list of bytes");
            goto error;
        }
        memset(set, 0, sizeof set);
        int read = read_record((const unsigned char *)PyBytes_AS_STRING(record),
                               PyBytes_GET_SIZE(record), &wanted);
        if (read < 0) {
            PyObject *position = PyLong_FromSsize_t(row);
            if (position == NULL || PyList_Append(unread, position) < 0) {
                Py_XDECREF(position);
                goto error;
            }
            Py_DECREF(position);
        }
        for (Py_ssize_t k = 0; k < nkeys; k++) {
            PyObject *value;
            if (read < 0 || !set[k] || found[k] == NULL) {
                value = Py_NewRef(Py_None);
            }
            else if (last[k] != NULL && last_lengths[k] == lengths[k] &&
                     memcmp(last_found[k], found[k], lengths[k]) == 0) {
                /* The previous row's value again (an action, a route, a user): the same
                 * object, whose hash the caller's lookups then compute once. */
                value = Py_NewRef(last[k]);
            }
            else if ((value = ascii_string(found[k], lengths[k])) == NULL) {
                goto error;
            }
            else {
                last[k] = value;  /* borrowed: the column holds it */
                last_found[k] = found[k];  /* in a record of `rows`, alive until the end */
                last_lengths[k] = lengths[k];
            }
            PyList_SET_ITEM(PyList_GET_ITEM(result, k), row, value);
        }
    }
    Py_DECREF(rows);
    return Py_BuildValue("(NN)", result, unread);

error:
    /* Columns not filled yet hold NULLs, which list_dealloc skips. */
    Py_DECREF(rows);
    Py_XDECREF(result);
    Py_XDECREF(unread);
    return NULL;
}

/* The value of `count` ASCII digits at `text`, or -1 if one is not a digit. */
static long long
digits_value(const unsigned char *text, int count)
{
    long long value = 0;
    for (int i = 0; i < count; i++) {
        if (text[i] < '0' || text[i] > '9') {
            return -1;
        }
        value = value * 10 + (text[i] - '0');
    }
    return value;
}

/* Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static long long
days_from_civil(long long year, long long month, long long day)
{
    year -= month <= 2;
    long long era = (year >= 0 ? year : year - 399) / 400;
    long long year_of_era = year - era * 400;
    long long day_of_year = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    long long day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    return era * 146097 + day_of_era - 719468;
}

/* Microseconds since the epoch of `YYYY-MM-DDTHH:MM:SS.ffffffZ` (27 ASCII bytes), a valid
 * date and time; 0 on success, -1 for anything else (left to `datetime.fromisoformat`). */
static int
canonical_micros(const unsigned char *t, long long *micros)
{
    static const unsigned char month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (t[4] != '-' || t[7] != '-' || t[10] != 'T' || t[13] != ':' || t[16] != ':' ||
        t[19] != '.' || t[26] != 'Z') {
        return -1;
    }
    long long year = digits_value(t, 4), month = digits_value(t + 5, 2);
    long long day = digits_value(t + 8, 2), hour = digits_value(t + 11, 2);
    long long minute = digits_value(t + 14, 2), second = digits_value(t + 17, 2);
    long long fraction = digits_value(t + 20, 6);
    if (year < 1 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 ||
        minute < 0 || minute > 59 || second < 0 || second > 59 || fraction < 0) {
        return -1;
    }
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (day > month_days[month - 1] + (month == 2 && leap)) {
        return -1;
    }
    long long seconds = days_from_civil(year, month, day) * 86400 + hour * 3600 +
                        minute * 60 + second;
    *micros = seconds * 1000000 + fraction;
    return 0;
}

PyDoc_STRVAR(micros_doc,
"micros(stamps) -> list[int | None]\n\n"
"For each of `stamps` (a list), the microseconds since the epoch of an ASCII str of the form\n"
"`YYYY-MM-DDTHH:MM:SS.ffffffZ` holding a valid date and time; None for any other value.");

/* The micros of one stamp: an int, or None for anything but the collector's own form. */
static PyObject *
stamp_micros(PyObject *stamp)
{
    long long value;
    if (PyUnicode_CheckExact(stamp) && PyUnicode_IS_COMPACT_ASCII(stamp) &&
        PyUnicode_GET_LENGTH(stamp) == 27 &&
        canonical_micros(PyUnicode_DATA(stamp), &value) == 0) {
        return PyLong_FromLongLong(value);
    }
    return Py_NewRef(Py_None);
}

/* A new list of `convert(item)` for each item of the list `values`; NULL with an exception
 * if `values` is not a list or a conversion fails. */
static PyObject *
map_list(PyObject *values, PyObject *(*convert)(PyObject *))
{
    if (!PyList_CheckExact(values)) {
        PyErr_SetString(PyExc_TypeError, "expected a list");
        return NULL;
    }
    /* A snapshot: allocating may run a finalizer that changes the caller's list. */
    PyObject *items = PyList_AsTuple(values);
    if (items == NULL) {
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(items);
    PyObject *result = PyList_New(count);
    for (Py_ssize_t i = 0; result != NULL && i < count; i++) {
        PyObject *converted = convert(PyTuple_GET_ITEM(items, i));
        if (converted == NULL) {
            Py_CLEAR(result);
            break;
        }
        PyList_SET_ITEM(result, i, converted);
    }
    Py_DECREF(items);
    return result;
}

static PyObject *
micros(PyObject *Py_UNUSED(module), PyObject *stamps)
{
    return map_list(stamps, stamp_micros);
}

/* The id `sqlite_addresses.address_id` computes for `text` (an IPv4 address as inet_pton takes
 * it: four decimal parts, each 0 to 255 without a leading zero), or 0 when it is no such
 * address (the store's absent id: the caller looks those up as before). */
static long long
v4_id(const unsigned char *text, Py_ssize_t length)
{
    unsigned long long address = 0;
    Py_ssize_t at = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (at >= length || text[at] != '.') {
                return 0;
            }
            at++;
        }
        Py_ssize_t start = at;
        unsigned value = 0;
        while (at < length && at - start < 3 && text[at] >= '0' && text[at] <= '9') {
            value = value * 10 + (text[at] - '0');
            at++;
        }
        if (at == start || value > 255 || (at - start > 1 && text[start] == '0')) {
            return 0;
        }
        address = address << 8 | value;
    }
    return at == length ? (long long)address - (1LL << 32) : 0;
}

PyDoc_STRVAR(v4_ids_doc,
"v4_ids(values) -> list[int]\n\n"
"For each of `values` (a list), the store's computed id of an IPv4 address written as\n"
"inet_pton takes it (`sqlite_addresses.address_id`), 0 for any other value.");

/* The computed id of one value: an int, 0 for anything but an IPv4 address's text. */
static PyObject *
value_v4_id(PyObject *value)
{
    long long id = 0;
    if (PyUnicode_CheckExact(value) && PyUnicode_IS_COMPACT_ASCII(value)) {
        id = v4_id(PyUnicode_DATA(value), PyUnicode_GET_LENGTH(value));
    }
    return PyLong_FromLongLong(id);
}

static PyObject *
v4_ids(PyObject *Py_UNUSED(module), PyObject *values)
{
    return map_list(values, value_v4_id);
}

static PyMethodDef hot_methods[] = {
    {"columns", (PyCFunction)(void (*)(void))columns, METH_FASTCALL, columns_doc},
    {"micros", micros, METH_O, micros_doc},
    {"v4_ids", v4_ids, METH_O, v4_ids_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef hot_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "apiwatch.store._hot_columns",
    .m_doc = "Top-level string fields of JSON records, read from their bytes, and their times.",
    .m_size = 0,
    .m_methods = hot_methods,
};

PyMODINIT_FUNC
PyInit__hot_columns(void)
{
    fill_string_stop();
    return PyModuleDef_Init(&hot_module);
}
