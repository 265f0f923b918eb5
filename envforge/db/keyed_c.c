/*
 * envforge.db.keyed_c: the keyed column loops of envforge/db/keyed_loops.py, compiled.
 *
 * A clone makes one fake per distinct e-mail, phone number or hashed value of a column, each
 * from a keyed BLAKE2b-256 digest of the (normalised) value. The Python loop spends 0.45-0.8
 * us per value on that; this one about 0.1-0.15 (bench/keyed_loop.py), which an anonymised
 * copy needs to keep up with a plain pg_dump | pg_restore.
 *
 * ColumnLoop(kind, sub_key, tables, length, limit)(values) gives exactly what
 * keyed_loops.python_loop gives for the same arguments (tests/unit/db/test_keyed_loop.py
 * checks it value by value). The fake tables (fakes.EMAIL_FIRSTS, ...) are handed in by the
 * caller and kept as references, never copied into this file.
 *
 * BLAKE2b (keyed_c_blake2b.h, from RFC 7693): the state after the key block is computed once
 * per loop. Values that normalise to 1-128 bytes (nearly all) need one compression each and
 * are hashed LANES at a time in vector lanes; the others (empty, longer) one at a time.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "keyed_c_blake2b.h"

/* ------------------------------------------------------------------- the column loop ---- */

enum Kind { KIND_EMAIL, KIND_PHONE, KIND_HASH };

typedef struct {
    const char **items; /* borrowed from a tuple of bytes kept alive by the loop */
    Py_ssize_t *sizes;
    Py_ssize_t count;
} Table;

typedef struct {
    PyObject_HEAD
    enum Kind kind;
    Blake2b after_key;          /* state with the key block compressed: a value's start */
    uint8_t empty_digest[DIGEST]; /* digest of the empty message (the key block is final) */
    PyObject *tables;           /* the tuple of tuples the Table entries point into */
    Table table[3];
    Py_ssize_t hex_length;      /* hash: hex characters kept (at most 64) */
    Py_ssize_t limit;           /* column.max_length, -1 for none */
} ColumnLoop;

/* A value's digest starts from the state after the key block (the buffer needs no copy:
 * it is empty there). */
static inline void value_start(const ColumnLoop *self, Blake2b *s) {
    memcpy(s->h, self->after_key.h, sizeof s->h);
    s->t[0] = self->after_key.t[0];
    s->t[1] = self->after_key.t[1];
    s->buflen = 0;
}

static inline void value_digest(const ColumnLoop *self, Blake2b *s, uint8_t out[DIGEST]) {
    /* t == 128 with nothing buffered: no message byte came after the key block */
    if (s->buflen == 0) {
        memcpy(out, self->empty_digest, DIGEST);
        return;
    }
    blake2b_final(s, out);
}

static inline int is_ascii_space(uint8_t c) {
    /* what bytes.strip() removes: space, \t, \n, \v, \f, \r */
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* e-mail: bytes.strip().lower() (ASCII), fed in chunks */
static void digest_email(const ColumnLoop *self, const uint8_t *p, Py_ssize_t n,
                         uint8_t out[DIGEST]) {
    Blake2b s;
    uint8_t chunk[BLOCK];
    Py_ssize_t start = 0, end = n;
    while (start < end && is_ascii_space(p[start])) start++;
    while (end > start && is_ascii_space(p[end - 1])) end--;
    value_start(self, &s);
    while (start < end) {
        size_t k = 0;
        for (; k < BLOCK && start < end; k++, start++) {
            uint8_t c = p[start];
            chunk[k] = (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
        }
        blake2b_update(&s, chunk, k);
    }
    value_digest(self, &s, out);
}

/* phone: every ASCII byte that is not a digit dropped (bytes.translate(None, non_digits) with
 * the 118 ASCII non-digits; bytes past 127 never reach here, but stay as Python keeps them) */
static void digest_phone(const ColumnLoop *self, const uint8_t *p, Py_ssize_t n,
                         uint8_t out[DIGEST]) {
    Blake2b s;
    uint8_t chunk[BLOCK];
    size_t k = 0;
    value_start(self, &s);
    for (Py_ssize_t i = 0; i < n; i++) {
        if ((p[i] >= '0' && p[i] <= '9') || p[i] > 127) {
            chunk[k++] = p[i];
            if (k == BLOCK) {
                blake2b_update(&s, chunk, k);
                k = 0;
            }
        }
    }
    if (k > 0) blake2b_update(&s, chunk, k);
    value_digest(self, &s, out);
}

static void digest_plain(const ColumnLoop *self, const uint8_t *p, Py_ssize_t n,
                         uint8_t out[DIGEST]) {
    Blake2b s;
    value_start(self, &s);
    blake2b_update(&s, p, (size_t)n);
    value_digest(self, &s, out);
}

static const char HEX[] = "0123456789abcdef";

/* Appends to a fixed-size output, silently dropping what goes past its end: the column's
 * max_length cut (Python's v[:limit]) without building the longer value first. */
typedef struct {
    char *at;
    Py_ssize_t room;
} Writer;

static inline void put(Writer *w, const char *s, Py_ssize_t n) {
    if (n > w->room) n = w->room;
    memcpy(w->at, s, (size_t)n);
    w->at += n;
    w->room -= n;
}

static inline void put_hex(Writer *w, const uint8_t *d, Py_ssize_t nbytes) {
    char hex[2 * DIGEST];
    for (Py_ssize_t i = 0; i < nbytes; i++) {
        hex[2 * i] = HEX[d[i] >> 4];
        hex[2 * i + 1] = HEX[d[i] & 15];
    }
    put(w, hex, 2 * nbytes);
}

static inline uint64_t load_be(const uint8_t *p, int n) {
    uint64_t x = 0;
    for (int i = 0; i < n; i++) x = (x << 8) | p[i];
    return x;
}

static PyObject *new_value(const ColumnLoop *self, Py_ssize_t full, Writer *w) {
    Py_ssize_t size = (self->limit >= 0 && self->limit < full) ? self->limit : full;
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (out != NULL) {
        w->at = PyBytes_AS_STRING(out);
        w->room = size;
    }
    return out;
}

/* as fakes.email: first.last.<16 hex>@example.{com,org,net} */
static PyObject *make_email(const ColumnLoop *self, const uint8_t d[DIGEST]) {
    const Table *firsts = &self->table[0], *lasts = &self->table[1], *domains = &self->table[2];
    uint64_t n = load_be(d, 8);
    uint64_t pair = n % ((uint64_t)firsts->count * (uint64_t)lasts->count);
    Py_ssize_t first = (Py_ssize_t)(pair / (uint64_t)lasts->count);
    Py_ssize_t last = (Py_ssize_t)(pair % (uint64_t)lasts->count);
    Py_ssize_t domain = (Py_ssize_t)((n >> 40) % (uint64_t)domains->count);
    Writer w;
    PyObject *out = new_value(self, firsts->sizes[first] + lasts->sizes[last] + 16 +
                                        domains->sizes[domain], &w);
    if (out == NULL) return NULL;
    put(&w, firsts->items[first], firsts->sizes[first]);
    put(&w, lasts->items[last], lasts->sizes[last]);
    put_hex(&w, d + 8, 8);
    put(&w, domains->items[domain], domains->sizes[domain]);
    return out;
}

/* as fakes.phone: prefix (from d[6:10]) + two digits (d[10]) + extension (d[11:14]) */
static PyObject *make_phone(const ColumnLoop *self, const uint8_t d[DIGEST]) {
    const Table *prefixes = &self->table[0], *twos = &self->table[1], *exts = &self->table[2];
    Py_ssize_t a = (Py_ssize_t)(load_be(d + 6, 4) % (uint64_t)prefixes->count);
    Py_ssize_t b = (Py_ssize_t)(d[10] % (uint64_t)twos->count);
    Py_ssize_t c = (Py_ssize_t)(load_be(d + 11, 3) % (uint64_t)exts->count);
    Writer w;
    PyObject *out = new_value(self, prefixes->sizes[a] + twos->sizes[b] + exts->sizes[c], &w);
    if (out == NULL) return NULL;
    put(&w, prefixes->items[a], prefixes->sizes[a]);
    put(&w, twos->items[b], twos->sizes[b]);
    put(&w, exts->items[c], exts->sizes[c]);
    return out;
}

static PyObject *make_hash(const ColumnLoop *self, const uint8_t d[DIGEST]) {
    Writer w;
    PyObject *out = new_value(self, self->hex_length, &w);
    if (out == NULL) return NULL;
    put_hex(&w, d, (self->hex_length + 1) / 2);
    return out;
}

/* One value's digest, any length (the streaming path). */
static void digest_value(const ColumnLoop *self, const uint8_t *p, Py_ssize_t n,
                         uint8_t out[DIGEST]) {
    switch (self->kind) {
    case KIND_EMAIL: digest_email(self, p, n, out); break;
    case KIND_PHONE: digest_phone(self, p, n, out); break;
    default: digest_plain(self, p, n, out); break;
    }
}

static PyObject *make_fake(const ColumnLoop *self, const uint8_t d[DIGEST]) {
    switch (self->kind) {
    case KIND_EMAIL: return make_email(self, d);
    case KIND_PHONE: return make_phone(self, d);
    default: return make_hash(self, d);
    }
}

/* The value normalised as digest_value normalises it, into one zero-padded block when it
 * fits: its length, 1 to 128; 0 when it is empty or longer than a block (the streaming path
 * takes those). */
static Py_ssize_t normalise_into(const ColumnLoop *self, const uint8_t *p, Py_ssize_t n,
                                 uint8_t block[BLOCK]) {
    Py_ssize_t k = 0;
    if (self->kind == KIND_EMAIL) {
        Py_ssize_t start = 0, end = n;
        while (start < end && is_ascii_space(p[start])) start++;
        while (end > start && is_ascii_space(p[end - 1])) end--;
        if (end - start > BLOCK) return 0;
        for (; start < end; start++, k++) {
            uint8_t c = p[start];
            block[k] = (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
        }
    } else if (self->kind == KIND_PHONE) {
        for (Py_ssize_t i = 0; i < n; i++) {
            if ((p[i] >= '0' && p[i] <= '9') || p[i] > 127) {
                if (k == BLOCK) return 0;
                block[k++] = p[i];
            }
        }
    } else {
        if (n > BLOCK) return 0;
        memcpy(block, p, (size_t)n);
        k = n;
    }
    memset(block + k, 0, (size_t)(BLOCK - k));
    return k;
}

/* Values waiting for a compression in lanes: their blocks and where their fakes go. */
typedef struct {
    uint8_t blocks[LANES][BLOCK];
    uint64_t counted[LANES];
    Py_ssize_t where[LANES];
    const uint8_t *raw[LANES];
    Py_ssize_t rawlen[LANES];
    int filled;
} Batch;

/* The batch's fakes into result; -1 (an exception set) when one cannot be made. A single
 * value left at the end takes the one-message path (cheaper than all lanes for one). */
static int flush(const ColumnLoop *self, Batch *batch, PyObject *result) {
    uint8_t digests[LANES][DIGEST];
    if (batch->filled == 1) {
        digest_value(self, batch->raw[0], batch->rawlen[0], digests[0]);
    } else {
        for (int k = batch->filled; k < LANES; k++) {  /* unused lanes: computed, not read */
            memset(batch->blocks[k], 0, BLOCK);
            batch->counted[k] = BLOCK;
        }
        compress_lanes(self->after_key.h, (const uint8_t(*)[BLOCK])batch->blocks,
                       batch->counted, digests);
    }
    for (int k = 0; k < batch->filled; k++) {
        PyObject *fake = make_fake(self, digests[k]);
        if (fake == NULL) return -1;
        PyList_SET_ITEM(result, batch->where[k], fake);
    }
    batch->filled = 0;
    return 0;
}

static PyObject *ColumnLoop_call(PyObject *op, PyObject *args, PyObject *kwargs) {
    ColumnLoop *self = (ColumnLoop *)op;
    PyObject *values;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "ColumnLoop() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O!:ColumnLoop", &PyList_Type, &values)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(values);
    PyObject *result = PyList_New(n); /* items stay NULL until set; a NULL item is freed fine */
    if (result == NULL) return NULL;
    Batch batch;
    batch.filled = 0;
    /* No Python code runs inside this loop, so the list cannot change under it. */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *raw = PyList_GET_ITEM(values, i);
        if (!PyBytes_Check(raw)) {
            PyErr_Format(PyExc_TypeError, "values[%zd] is %.100s, not bytes", i,
                         Py_TYPE(raw)->tp_name);
            goto fail;
        }
        const uint8_t *p = (const uint8_t *)PyBytes_AS_STRING(raw);
        Py_ssize_t len = PyBytes_GET_SIZE(raw);
        int k = batch.filled;
        Py_ssize_t fits = normalise_into(self, p, len, batch.blocks[k]);
        if (fits > 0) {
            batch.counted[k] = BLOCK + (uint64_t)fits;
            batch.where[k] = i;
            batch.raw[k] = p;
            batch.rawlen[k] = len;
            if (++batch.filled == LANES && flush(self, &batch, result) < 0) goto fail;
            continue;
        }
        uint8_t d[DIGEST];
        digest_value(self, p, len, d);
        PyObject *fake = make_fake(self, d);
        if (fake == NULL) goto fail;
        PyList_SET_ITEM(result, i, fake);
    }
    if (batch.filled > 0 && flush(self, &batch, result) < 0) goto fail;
    return result;
fail:
    Py_DECREF(result);
    return NULL;
}

/* tables[i] must be a non-empty tuple of bytes; its item pointers stay valid as long as the
 * loop holds the outer tuple (bytes are immutable). */
static int load_table(Table *table, PyObject *tuple, Py_ssize_t index) {
    if (!PyTuple_Check(tuple)) {
        PyErr_Format(PyExc_TypeError, "tables[%zd] is %.100s, not a tuple of bytes", index,
                     Py_TYPE(tuple)->tp_name);
        return -1;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(tuple);
    if (count == 0) {
        PyErr_Format(PyExc_ValueError, "tables[%zd] is empty", index);
        return -1;
    }
    table->items = PyMem_New(const char *, count);
    table->sizes = PyMem_New(Py_ssize_t, count);
    if (table->items == NULL || table->sizes == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyTuple_GET_ITEM(tuple, i);
        if (!PyBytes_Check(item)) {
            PyErr_Format(PyExc_TypeError, "tables[%zd][%zd] is %.100s, not bytes", index, i,
                         Py_TYPE(item)->tp_name);
            return -1;
        }
        table->items[i] = PyBytes_AS_STRING(item);
        table->sizes[i] = PyBytes_GET_SIZE(item);
    }
    table->count = count;
    return 0;
}

static void ColumnLoop_dealloc(PyObject *op) {
    ColumnLoop *self = (ColumnLoop *)op;
    for (int i = 0; i < 3; i++) {
        PyMem_Free(self->table[i].items);
        PyMem_Free(self->table[i].sizes);
    }
    Py_XDECREF(self->tables);
    Py_TYPE(op)->tp_free(op);
}

static PyObject *ColumnLoop_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"kind", "sub_key", "tables", "length", "limit", NULL};
    const char *kind_name;
    Py_buffer key;
    PyObject *tables = NULL, *limit = Py_None;
    Py_ssize_t length = 2 * DIGEST;
    enum Kind kind;
    Py_ssize_t ntables;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "sy*|O!nO:ColumnLoop", keywords, &kind_name,
                                     &key, &PyTuple_Type, &tables, &length, &limit))
        return NULL;
    if (strcmp(kind_name, "email") == 0) {
        kind = KIND_EMAIL;
        ntables = 3;
    } else if (strcmp(kind_name, "phone") == 0) {
        kind = KIND_PHONE;
        ntables = 3;
    } else if (strcmp(kind_name, "hash") == 0) {
        kind = KIND_HASH;
        ntables = 0;
    } else {
        PyErr_Format(PyExc_ValueError, "kind must be 'email', 'phone' or 'hash', not '%.50s'",
                     kind_name);
        PyBuffer_Release(&key);
        return NULL;
    }
    if (key.len < 1 || key.len > MAX_KEY) {
        PyErr_Format(PyExc_ValueError, "sub_key must be 1 to %d bytes, not %zd", MAX_KEY,
                     key.len);
        PyBuffer_Release(&key);
        return NULL;
    }
    Py_ssize_t given = tables == NULL ? 0 : PyTuple_GET_SIZE(tables);
    if (given != ntables) {
        PyErr_Format(PyExc_ValueError, "kind %s takes %zd tables, not %zd", kind_name, ntables,
                     given);
        PyBuffer_Release(&key);
        return NULL;
    }
    if (length < 0) {
        PyErr_SetString(PyExc_ValueError, "length must not be negative");
        PyBuffer_Release(&key);
        return NULL;
    }
    Py_ssize_t cut = -1;
    if (limit != Py_None) {
        if (!PyLong_Check(limit)) {
            PyErr_Format(PyExc_TypeError, "limit must be an int or None, not %.100s",
                         Py_TYPE(limit)->tp_name);
            PyBuffer_Release(&key);
            return NULL;
        }
        cut = PyLong_AsSsize_t(limit);
        if (cut == -1 && PyErr_Occurred()) {
            PyBuffer_Release(&key);
            return NULL;
        }
        if (cut < 0) {
            PyErr_SetString(PyExc_ValueError, "limit must not be negative");
            PyBuffer_Release(&key);
            return NULL;
        }
    }

    ColumnLoop *self = (ColumnLoop *)type->tp_alloc(type, 0);
    if (self == NULL) {
        PyBuffer_Release(&key);
        return NULL;
    }
    /* tp_alloc zeroes the object: tables and their arrays are NULL until loaded */
    self->kind = kind;
    self->hex_length = length < 2 * DIGEST ? length : 2 * DIGEST;
    self->limit = cut;

    Blake2b start;
    blake2b_init_keyed(&start, (const uint8_t *)key.buf, (size_t)key.len);
    PyBuffer_Release(&key);
    self->after_key = start;
    count_bytes(&self->after_key, BLOCK);
    compress(self->after_key.h, self->after_key.buf, self->after_key.t, 0);
    self->after_key.buflen = 0;
    blake2b_final(&start, self->empty_digest);

    if (tables != NULL) {
        Py_INCREF(tables);
        self->tables = tables;
        for (Py_ssize_t i = 0; i < ntables; i++) {
            if (load_table(&self->table[i], PyTuple_GET_ITEM(tables, i), i) < 0) {
                Py_DECREF(self);
                return NULL;
            }
        }
    }
    return (PyObject *)self;
}

PyDoc_STRVAR(ColumnLoop_doc,
             "ColumnLoop(kind, sub_key, tables=(), length=64, limit=None)\n\n"
             "A column of plain ASCII values (list of bytes) -> their fakes (list of bytes), as\n"
             "envforge.db.keyed_loops.python_loop computes them. kind: 'email' (tables: firsts,\n"
             "lasts, domains), 'phone' (prefixes, two digits, extensions) or 'hash' (no tables;\n"
             "length hex characters kept). sub_key: the kind's BLAKE2b key. limit: the column's\n"
             "max_length, or None.");

static PyTypeObject ColumnLoopType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "envforge.db.keyed_c.ColumnLoop",
    .tp_basicsize = sizeof(ColumnLoop),
    .tp_dealloc = ColumnLoop_dealloc,
    .tp_call = ColumnLoop_call,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = ColumnLoop_doc,
    .tp_new = ColumnLoop_new,
};

/* ------------------------------------------------------------------------- the module ---- */

static PyObject *keyed_blake2b(PyObject *module, PyObject *args) {
    Py_buffer key, message;
    if (!PyArg_ParseTuple(args, "y*y*:keyed_blake2b", &key, &message)) return NULL;
    if (key.len > MAX_KEY) {
        PyErr_Format(PyExc_ValueError, "key must be at most %d bytes, not %zd", MAX_KEY,
                     key.len);
        PyBuffer_Release(&key);
        PyBuffer_Release(&message);
        return NULL;
    }
    Blake2b s;
    uint8_t out[DIGEST];
    blake2b_init_keyed(&s, (const uint8_t *)key.buf, (size_t)key.len);
    blake2b_update(&s, (const uint8_t *)message.buf, (size_t)message.len);
    blake2b_final(&s, out);
    PyBuffer_Release(&key);
    PyBuffer_Release(&message);
    return PyBytes_FromStringAndSize((const char *)out, DIGEST);
}

static PyMethodDef methods[] = {
    {"keyed_blake2b", keyed_blake2b, METH_VARARGS,
     "keyed_blake2b(key, message, /) -> 32-byte BLAKE2b digest under key (0 to 64 bytes):\n"
     "this module's BLAKE2b, exposed so tests can hold it against hashlib.blake2b."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "envforge.db.keyed_c",
    .m_doc = "Compiled keyed column loops (e-mail, phone, hash fakes); see keyed_loops.py.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit_keyed_c(void) {
    if (PyType_Ready(&ColumnLoopType) < 0) return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) return NULL;
    Py_INCREF(&ColumnLoopType);
    if (PyModule_AddObject(module, "ColumnLoop", (PyObject *)&ColumnLoopType) < 0) {
        Py_DECREF(&ColumnLoopType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
