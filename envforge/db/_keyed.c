/*
 * envforge.db._keyed: the keyed column loops of envforge/db/keyed_loops.py, compiled.
 *
 * A clone makes one fake per distinct e-mail, phone number or hashed value of a column, each
 * from a keyed BLAKE2b-256 digest of the (normalised) value. In Python one digest plus the
 * fake's assembly costs about 2.4 us; here about a tenth of that, which is what lets an
 * anonymised copy keep up with a plain pg_dump | pg_restore.
 *
 * ColumnLoop(kind, sub_key, tables, length, limit)(values) gives exactly what
 * keyed_loops.python_loop gives for the same arguments (tests/unit/db/test_keyed_loop.py
 * checks it value by value). The fake tables (fakes.EMAIL_FIRSTS, ...) are handed in by the
 * caller and kept as references, never copied into this file.
 *
 * BLAKE2b is written here from RFC 7693 (sections 2 and 3): 64-bit words, 12 rounds,
 * little-endian message words, a 128-bit byte counter and a final-block flag. The state after
 * the key block is computed once per loop; each value then costs one compression per 128
 * bytes of input (one for the short values of a column).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define BLOCK 128
#define DIGEST 32
#define MAX_KEY 64

/* ---------------------------------------------------------------- BLAKE2b (RFC 7693) ---- */

static const uint64_t IV[8] = {
    0x6A09E667F3BCC908ULL, 0xBB67AE8584CAA73BULL, 0x3C6EF372FE94F82BULL,
    0xA54FF53A5F1D36F1ULL, 0x510E527FADE682D1ULL, 0x9B05688C2B3E6C1FULL,
    0x1F83D9ABFB41BD6BULL, 0x5BE0CD19137E2179ULL,
};

/* Message word schedule of each round (RFC 7693 section 2.7); round i uses row i mod 10. */
static const uint8_t SIGMA[10][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
};

typedef struct {
    uint64_t h[8];      /* chained state */
    uint64_t t[2];      /* bytes compressed so far, 128-bit, low word first */
    uint8_t buf[BLOCK]; /* the block not yet compressed: the last one may be the final one */
    size_t buflen;
} Blake2b;

static inline uint64_t rotr64(uint64_t x, unsigned n) { return (x >> n) | (x << (64 - n)); }

static inline uint64_t load64_le(const uint8_t *p) {
    return (uint64_t)p[0] | ((uint64_t)p[1] << 8) | ((uint64_t)p[2] << 16) |
           ((uint64_t)p[3] << 24) | ((uint64_t)p[4] << 32) | ((uint64_t)p[5] << 40) |
           ((uint64_t)p[6] << 48) | ((uint64_t)p[7] << 56);
}

/* The mixing function G (RFC 7693 section 3.1) with its rotations 32, 24, 16, 63. */
#define G(a, b, c, d, x, y)                 \
    do {                                    \
        v[a] = v[a] + v[b] + (x);           \
        v[d] = rotr64(v[d] ^ v[a], 32);     \
        v[c] = v[c] + v[d];                 \
        v[b] = rotr64(v[b] ^ v[c], 24);     \
        v[a] = v[a] + v[b] + (y);           \
        v[d] = rotr64(v[d] ^ v[a], 16);     \
        v[c] = v[c] + v[d];                 \
        v[b] = rotr64(v[b] ^ v[c], 63);     \
    } while (0)

/* The compression function F (RFC 7693 section 3.2). */
static void compress(uint64_t h[8], const uint8_t block[BLOCK], const uint64_t t[2], int last) {
    uint64_t m[16], v[16];
    for (int i = 0; i < 16; i++) m[i] = load64_le(block + 8 * i);
    for (int i = 0; i < 8; i++) {
        v[i] = h[i];
        v[i + 8] = IV[i];
    }
    v[12] ^= t[0];
    v[13] ^= t[1];
    if (last) v[14] = ~v[14];
    /* Unrolled with constant rows, so the schedule's indices fold into the code (about a
     * third faster than a loop over SIGMA at run time). */
#define ROUND(r)                                             \
    do {                                                     \
        G(0, 4, 8, 12, m[SIGMA[r][0]], m[SIGMA[r][1]]);      \
        G(1, 5, 9, 13, m[SIGMA[r][2]], m[SIGMA[r][3]]);      \
        G(2, 6, 10, 14, m[SIGMA[r][4]], m[SIGMA[r][5]]);     \
        G(3, 7, 11, 15, m[SIGMA[r][6]], m[SIGMA[r][7]]);     \
        G(0, 5, 10, 15, m[SIGMA[r][8]], m[SIGMA[r][9]]);     \
        G(1, 6, 11, 12, m[SIGMA[r][10]], m[SIGMA[r][11]]);   \
        G(2, 7, 8, 13, m[SIGMA[r][12]], m[SIGMA[r][13]]);    \
        G(3, 4, 9, 14, m[SIGMA[r][14]], m[SIGMA[r][15]]);    \
    } while (0)
    ROUND(0);
    ROUND(1);
    ROUND(2);
    ROUND(3);
    ROUND(4);
    ROUND(5);
    ROUND(6);
    ROUND(7);
    ROUND(8);
    ROUND(9);
    ROUND(0); /* rounds 10 and 11 use rows 0 and 1 again */
    ROUND(1);
#undef ROUND
    for (int i = 0; i < 8; i++) h[i] ^= v[i] ^ v[i + 8];
}

static inline void count_bytes(Blake2b *s, size_t n) {
    s->t[0] += (uint64_t)n;
    if (s->t[0] < (uint64_t)n) s->t[1]++;
}

/* Absorb n bytes. A full buffer is compressed only once more input arrives, so the final
 * block (which must carry the final flag) is always still in the buffer at the end. */
static void blake2b_update(Blake2b *s, const uint8_t *in, size_t n) {
    while (n > 0) {
        if (s->buflen == BLOCK) {
            count_bytes(s, BLOCK);
            compress(s->h, s->buf, s->t, 0);
            s->buflen = 0;
        }
        size_t take = BLOCK - s->buflen;
        if (take > n) take = n;
        memcpy(s->buf + s->buflen, in, take);
        s->buflen += take;
        in += take;
        n -= take;
    }
}

static void blake2b_final(Blake2b *s, uint8_t out[DIGEST]) {
    count_bytes(s, s->buflen);
    memset(s->buf + s->buflen, 0, BLOCK - s->buflen);
    compress(s->h, s->buf, s->t, 1);
    for (int i = 0; i < DIGEST; i++) out[i] = (uint8_t)(s->h[i / 8] >> (8 * (i % 8)));
}

/* The state of a keyed BLAKE2b-256 before any message byte: parameter block folded into the
 * IV (digest length, key length, fanout 1, depth 1), the key padded to a block and buffered. */
static void blake2b_init_keyed(Blake2b *s, const uint8_t *key, size_t keylen) {
    memcpy(s->h, IV, sizeof s->h);
    s->h[0] ^= 0x01010000ULL ^ ((uint64_t)keylen << 8) ^ DIGEST;
    s->t[0] = s->t[1] = 0;
    s->buflen = 0;
    memset(s->buf, 0, BLOCK);
    if (keylen > 0) {
        memcpy(s->buf, key, keylen);
        s->buflen = BLOCK;
    }
}

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

static PyObject *ColumnLoop_call(PyObject *op, PyObject *args, PyObject *kwargs) {
    ColumnLoop *self = (ColumnLoop *)op;
    PyObject *values;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "ColumnLoop() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O!:ColumnLoop", &PyList_Type, &values)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(values);
    PyObject *result = PyList_New(n);
    if (result == NULL) return NULL;
    /* No Python code runs inside this loop, so the list cannot change under it. */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *raw = PyList_GET_ITEM(values, i);
        if (!PyBytes_Check(raw)) {
            PyErr_Format(PyExc_TypeError, "values[%zd] is %.100s, not bytes", i,
                         Py_TYPE(raw)->tp_name);
            Py_DECREF(result);
            return NULL;
        }
        const uint8_t *p = (const uint8_t *)PyBytes_AS_STRING(raw);
        Py_ssize_t len = PyBytes_GET_SIZE(raw);
        uint8_t d[DIGEST];
        PyObject *fake;
        switch (self->kind) {
        case KIND_EMAIL:
            digest_email(self, p, len, d);
            fake = make_email(self, d);
            break;
        case KIND_PHONE:
            digest_phone(self, p, len, d);
            fake = make_phone(self, d);
            break;
        default:
            digest_plain(self, p, len, d);
            fake = make_hash(self, d);
            break;
        }
        if (fake == NULL) {
            Py_DECREF(result);
            return NULL;
        }
        PyList_SET_ITEM(result, i, fake);
    }
    return result;
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
    .tp_name = "envforge.db._keyed.ColumnLoop",
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
    .m_name = "envforge.db._keyed",
    .m_doc = "Compiled keyed column loops (e-mail, phone, hash fakes); see keyed_loops.py.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__keyed(void) {
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
