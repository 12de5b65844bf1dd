/* The ledger's batch work in C: RFC 6962 hashes of many leaves or nodes in one call, by
 * OpenSSL's SHA-256, and the count of a batch's line feeds.
 *
 * The hashes (see
 * `ledger.merkle.leaf_hashes` and `node_hashes`, whose Python reference, by hashlib, must give
 * the same bytes; the tests hold them to it).
 *
 * Through hashlib a leaf costs a new hash object, a concatenation of its prefix and a bytes
 * object per digest: about 1.2 us for a 550-byte record, of which the hashing itself (SHA-NI)
 * is a third. Here one digest context serves the whole batch, and the hashing runs without the
 * GIL, so that the collector's event loop carries on meanwhile.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>
#include <openssl/evp.h>

#define HASH_SIZE 32

static EVP_MD *sha256;

/* The items of `items` (a tuple of bytes) as pointers and sizes, in arrays the caller frees
 * with PyMem_Free; -1 with an exception set if an item is not bytes. The pointers stay valid
 * while the caller holds its reference to the tuple, GIL or not: a tuple cannot drop its items,
 * and bytes objects never move or change. */
static Py_ssize_t
buffers_of(PyObject *sequence, const unsigned char ***data, Py_ssize_t **sizes)
{
    Py_ssize_t count = PyTuple_GET_SIZE(sequence);
    PyObject **items = &PyTuple_GET_ITEM(sequence, 0);
    *data = PyMem_Malloc(sizeof(**data) * (size_t)(count ? count : 1));
    *sizes = PyMem_Malloc(sizeof(**sizes) * (size_t)(count ? count : 1));
    if (*data == NULL || *sizes == NULL) {
        PyMem_Free(*data);
        PyMem_Free(*sizes);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        if (!PyBytes_CheckExact(items[i])) {
            PyMem_Free(*data);
            PyMem_Free(*sizes);
            PyErr_SetString(PyExc_TypeError, "every item must be bytes");
            return -1;
        }
        (*data)[i] = (const unsigned char *)PyBytes_AS_STRING(items[i]);
        (*sizes)[i] = PyBytes_GET_SIZE(items[i]);
    }
    return count;
}

/* SHA-256(prefix || first || second) of `digests` pairs of buffers (`second` may be NULL: one
 * buffer per digest) into `out`; 0 on success, -1 if OpenSSL failed. Needs no GIL. */
static int
digest_all(unsigned char prefix, const unsigned char **data, const Py_ssize_t *sizes,
           Py_ssize_t digests, int pairs, unsigned char *out)
{
    EVP_MD_CTX *context = EVP_MD_CTX_new();
    if (context == NULL) {
        return -1;
    }
    int ok = 1;
    Py_ssize_t step = pairs ? 2 : 1;
    for (Py_ssize_t i = 0; ok && i < digests; i++) {
        ok = EVP_DigestInit_ex2(context, sha256, NULL) &&
             EVP_DigestUpdate(context, &prefix, 1);
        for (Py_ssize_t part = i * step; ok && part < (i + 1) * step; part++) {
            ok = EVP_DigestUpdate(context, data[part], (size_t)sizes[part]);
        }
        ok = ok && EVP_DigestFinal_ex(context, out + i * HASH_SIZE, NULL);
    }
    EVP_MD_CTX_free(context);
    return ok ? 0 : -1;
}

/* The digests of `sequence`'s items (one per item, or one per pair) as a list of bytes. */
static PyObject *
hash_items(PyObject *argument, unsigned char prefix, int pairs)
{
    if (!PyList_CheckExact(argument) && !PyTuple_CheckExact(argument)) {
        PyErr_SetString(PyExc_TypeError, "expected a list or tuple of bytes");
        return NULL;
    }
    /* A list could lose items while the GIL is released; a tuple of them cannot. */
    PyObject *sequence = PySequence_Tuple(argument);
    if (sequence == NULL) {
        return NULL;
    }
    const unsigned char **data;
    Py_ssize_t *sizes;
    Py_ssize_t count = buffers_of(sequence, &data, &sizes);
    PyObject *result = NULL;
    unsigned char *out = NULL;
    if (count < 0) {
        goto done;
    }
    if (pairs && count % 2) {
        PyErr_SetString(PyExc_ValueError, "nodes come in pairs: an even number is needed");
        goto done;
    }
    Py_ssize_t digests = pairs ? count / 2 : count;
    out = PyMem_Malloc((size_t)(digests ? digests : 1) * HASH_SIZE);
    if (out == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    int failed;
    Py_BEGIN_ALLOW_THREADS
    failed = digest_all(prefix, data, sizes, digests, pairs, out);
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL could not compute a SHA-256 digest");
        goto done;
    }
    result = PyList_New(digests);
    for (Py_ssize_t i = 0; result != NULL && i < digests; i++) {
        PyObject *digest = PyBytes_FromStringAndSize((const char *)out + i * HASH_SIZE,
                                                     HASH_SIZE);
        if (digest == NULL) {
            Py_CLEAR(result);
            break;
        }
        PyList_SET_ITEM(result, i, digest);
    }
done:
    PyMem_Free(out);
    if (count >= 0) {
        PyMem_Free(data);
        PyMem_Free(sizes);
    }
    Py_DECREF(sequence);
    return result;
}

PyDoc_STRVAR(leaf_hashes_doc,
"leaf_hashes(records) -> list[bytes]\n\n"
"SHA-256(0x00 || record) of each of `records` (a list or tuple of bytes).");

static PyObject *
leaf_hashes(PyObject *Py_UNUSED(module), PyObject *records)
{
    return hash_items(records, 0x00, 0);
}

PyDoc_STRVAR(node_hashes_doc,
"node_hashes(nodes) -> list[bytes]\n\n"
"SHA-256(0x01 || left || right) of each pair of `nodes` (a list or tuple of bytes of even\n"
"length: left, right, left, right...).");

static PyObject *
node_hashes(PyObject *Py_UNUSED(module), PyObject *nodes)
{
    return hash_items(nodes, 0x01, 1);
}

PyDoc_STRVAR(line_feeds_doc,
"line_feeds(data) -> int\n\n"
"The number of line feeds in `data` (bytes): `data.count(b'\\n')`, by memchr. A joined batch\n"
"holds one per record, a few hundred bytes apart; bytes.count compares every byte.");

static PyObject *
line_feeds(PyObject *Py_UNUSED(module), PyObject *data)
{
    if (!PyBytes_CheckExact(data)) {
        PyErr_SetString(PyExc_TypeError, "data must be bytes");
        return NULL;
    }
    const char *at = PyBytes_AS_STRING(data), *end = at + PyBytes_GET_SIZE(data);
    Py_ssize_t count = 0;
    while (at < end && (at = memchr(at, '\n', (size_t)(end - at))) != NULL) {
        count++;
        at++;
    }
    return PyLong_FromSsize_t(count);
}

static PyMethodDef batch_methods[] = {
    {"leaf_hashes", leaf_hashes, METH_O, leaf_hashes_doc},
    {"node_hashes", node_hashes, METH_O, node_hashes_doc},
    {"line_feeds", line_feeds, METH_O, line_feeds_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef batch_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "apiwatch.ledger._batch",
    .m_doc = "RFC 6962 hashes and line feeds of a batch (see apiwatch.ledger.merkle, segments).",
    .m_size = 0,
    .m_methods = batch_methods,
};

PyMODINIT_FUNC
PyInit__batch(void)
{
    if (sha256 == NULL) {
        sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
        if (sha256 == NULL) {
            PyErr_SetString(PyExc_ImportError, "OpenSSL has no SHA-256");
            return NULL;
        }
    }
    return PyModuleDef_Init(&batch_module);
}
