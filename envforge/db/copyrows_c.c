/* Rows of a PostgreSQL binary COPY stream, split and rebuilt in C.
 *
 * A binary COPY row is an int16 field count, then per field an int32 length (-1 for NULL)
 * and that many bytes, all in network byte order; a field count of -1 ends the stream.
 * Python would spend a few microseconds a field walking that; here it is a few nanoseconds.
 *
 * scan(data, start, ncols, wanted) -> (columns, end, rows, ended)
 *     Reads whole rows of `data` from offset `start`. `wanted` is a tuple of column indexes
 *     (ascending, each < ncols); `columns` holds, per wanted index, the list of that column's
 *     values (bytes, or None for NULL) of the rows read. `end` is the offset after the last
 *     whole row (or after the end marker), `rows` how many rows were read, `ended` whether the
 *     end marker was read. A row cut off by the end of `data` is left for the next call.
 *     ValueError when a row does not have `ncols` fields.
 *
 * rebuild(data, start, end, ncols, wanted, columns) -> bytes
 *     The rows of data[start:end] (whole rows, as scan returned them) with the wanted
 *     columns' values replaced by `columns` (same shape as scan's; bytes or None).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_COLUMNS 1664 /* PostgreSQL's MaxTupleAttributeNumber */

static int32_t read_i32(const unsigned char *p) {
    return (int32_t)(((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) |
                     (uint32_t)p[3]);
}

static int16_t read_i16(const unsigned char *p) {
    return (int16_t)(((uint16_t)p[0] << 8) | (uint16_t)p[1]);
}

static void write_i32(unsigned char *p, int32_t v) {
    uint32_t u = (uint32_t)v;
    p[0] = (unsigned char)(u >> 24);
    p[1] = (unsigned char)(u >> 16);
    p[2] = (unsigned char)(u >> 8);
    p[3] = (unsigned char)u;
}

/* The offset just past the row whose fields start at `p` (after its field count), reading no
 * further than `limit`: -1 when the row goes on past `limit`, -2 when a field's length is
 * below -1 (not a COPY row). Both scan and rebuild walk a row's shape with it. */
static Py_ssize_t row_end(const unsigned char *data, Py_ssize_t p, Py_ssize_t limit, int ncols) {
    for (int c = 0; c < ncols; c++) {
        if (limit - p < 4) return -1;
        int32_t flen = read_i32(data + p);
        p += 4;
        if (flen < -1) return -2;
        if (flen > 0) {
            if (limit - p < flen) return -1;
            p += flen;
        }
    }
    return p;
}

/* slot_of[c] = position of column c in `wanted`, or -1. Returns the number wanted, or -1. */
static Py_ssize_t wanted_slots(PyObject *wanted, int ncols, Py_ssize_t *slot_of) {
    if (!PyTuple_Check(wanted)) {
        PyErr_SetString(PyExc_TypeError, "wanted must be a tuple of column indexes");
        return -1;
    }
    for (int c = 0; c < ncols; c++) slot_of[c] = -1;
    Py_ssize_t n = PyTuple_GET_SIZE(wanted);
    long previous = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        long c = PyLong_AsLong(PyTuple_GET_ITEM(wanted, i));
        if (c == -1 && PyErr_Occurred()) return -1;
        if (c <= previous || c >= ncols) {
            PyErr_SetString(PyExc_ValueError,
                            "wanted must hold ascending column indexes below ncols");
            return -1;
        }
        slot_of[c] = i;
        previous = c;
    }
    return n;
}

static int check_ncols(int ncols) {
    if (ncols < 1 || ncols > MAX_COLUMNS) {
        PyErr_Format(PyExc_ValueError, "ncols must be 1 to %d", MAX_COLUMNS);
        return -1;
    }
    return 0;
}

static PyObject *scan(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer buf;
    Py_ssize_t start;
    int ncols;
    PyObject *wanted;
    if (!PyArg_ParseTuple(args, "y*niO!", &buf, &start, &ncols, &PyTuple_Type, &wanted))
        return NULL;
    PyObject *columns = NULL, *result = NULL;
    Py_ssize_t slot_of[MAX_COLUMNS];
    if (check_ncols(ncols) < 0) goto done;
    Py_ssize_t nwanted = wanted_slots(wanted, ncols, slot_of);
    if (nwanted < 0) goto done;
    if (start < 0 || start > buf.len) {
        PyErr_SetString(PyExc_ValueError, "start is outside data");
        goto done;
    }
    columns = PyList_New(nwanted);
    if (columns == NULL) goto done;
    for (Py_ssize_t i = 0; i < nwanted; i++) {
        PyObject *list = PyList_New(0);
        if (list == NULL) goto done;
        PyList_SET_ITEM(columns, i, list);
    }
    const unsigned char *data = (const unsigned char *)buf.buf;
    Py_ssize_t len = buf.len, pos = start, rows = 0;
    int ended = 0;
    while (len - pos >= 2) {
        int16_t count = read_i16(data + pos);
        if (count == -1) {
            pos += 2;
            ended = 1;
            break;
        }
        if (count != ncols) {
            PyErr_Format(PyExc_ValueError, "a row has %d fields where %d were expected",
                         (int)count, ncols);
            goto done;
        }
        /* First make sure the whole row is here, then take its values. */
        Py_ssize_t p = row_end(data, pos + 2, len, ncols);
        if (p == -2) {
            PyErr_SetString(PyExc_ValueError, "a field has a negative length");
            goto done;
        }
        if (p < 0) break;
        if (nwanted > 0) {
            Py_ssize_t q = pos + 2;
            for (int c = 0; c < ncols; c++) {
                int32_t flen = read_i32(data + q);
                q += 4;
                Py_ssize_t slot = slot_of[c];
                if (slot >= 0) {
                    PyObject *value;
                    if (flen == -1) {
                        value = Py_None;
                        Py_INCREF(value);
                    } else {
                        value = PyBytes_FromStringAndSize((const char *)data + q, flen);
                        if (value == NULL) goto done;
                    }
                    int failed = PyList_Append(PyList_GET_ITEM(columns, slot), value);
                    Py_DECREF(value);
                    if (failed) goto done;
                }
                if (flen > 0) q += flen;
            }
        }
        pos = p;
        rows++;
    }
    result = Py_BuildValue("(OnnN)", columns, pos, rows, PyBool_FromLong(ended));
done:
    Py_XDECREF(columns);
    PyBuffer_Release(&buf);
    return result;
}

static PyObject *rebuild(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer buf;
    Py_ssize_t start, end;
    int ncols;
    PyObject *wanted, *columns;
    if (!PyArg_ParseTuple(args, "y*nniO!O!", &buf, &start, &end, &ncols, &PyTuple_Type,
                          &wanted, &PyList_Type, &columns))
        return NULL;
    PyObject *out = NULL;
    Py_ssize_t slot_of[MAX_COLUMNS];
    if (check_ncols(ncols) < 0) goto fail;
    Py_ssize_t nwanted = wanted_slots(wanted, ncols, slot_of);
    if (nwanted < 0) goto fail;
    if (start < 0 || end < start || end > buf.len) {
        PyErr_SetString(PyExc_ValueError, "start and end must delimit whole rows of data");
        goto fail;
    }
    if (PyList_GET_SIZE(columns) != nwanted) {
        PyErr_SetString(PyExc_ValueError, "columns must hold one list per wanted index");
        goto fail;
    }
    for (Py_ssize_t i = 0; i < nwanted; i++) {
        if (!PyList_Check(PyList_GET_ITEM(columns, i))) {
            PyErr_SetString(PyExc_TypeError, "columns must be lists of bytes or None");
            goto fail;
        }
    }
    const unsigned char *data = (const unsigned char *)buf.buf;
    /* Pass 1: check the shape and work out the output's size. */
    Py_ssize_t size = 0, pos = start, row = 0;
    while (pos < end) {
        if (end - pos < 2 || read_i16(data + pos) != ncols ||
            row_end(data, pos + 2, end, ncols) < 0)
            goto shape;
        Py_ssize_t p = pos + 2;
        for (int c = 0; c < ncols; c++) {
            int32_t flen = read_i32(data + p);
            p += 4;
            Py_ssize_t slot = slot_of[c];
            if (slot >= 0) {
                PyObject *list = PyList_GET_ITEM(columns, slot);
                if (row >= PyList_GET_SIZE(list)) goto count;
                PyObject *value = PyList_GET_ITEM(list, row);
                if (value == Py_None) {
                } else if (PyBytes_Check(value)) {
                    if (PyBytes_GET_SIZE(value) > INT32_MAX) {
                        PyErr_SetString(PyExc_ValueError, "a value is too long for COPY");
                        goto fail;
                    }
                    size += PyBytes_GET_SIZE(value);
                } else {
                    PyErr_SetString(PyExc_TypeError, "columns must be lists of bytes or None");
                    goto fail;
                }
            } else if (flen > 0) {
                size += flen;
            }
            size += 4;
            if (flen > 0) p += flen;
        }
        size += 2;
        pos = p;
        row++;
    }
    for (Py_ssize_t i = 0; i < nwanted; i++) {
        if (PyList_GET_SIZE(PyList_GET_ITEM(columns, i)) != row) goto count;
    }
    out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL) goto fail;
    unsigned char *w = (unsigned char *)PyBytes_AS_STRING(out);
    /* Pass 2: write. */
    pos = start;
    row = 0;
    while (pos < end) {
        memcpy(w, data + pos, 2);
        w += 2;
        Py_ssize_t p = pos + 2;
        for (int c = 0; c < ncols; c++) {
            int32_t flen = read_i32(data + p);
            p += 4;
            Py_ssize_t slot = slot_of[c];
            if (slot >= 0) {
                PyObject *value = PyList_GET_ITEM(PyList_GET_ITEM(columns, slot), row);
                if (value == Py_None) {
                    write_i32(w, -1);
                    w += 4;
                } else {
                    Py_ssize_t vlen = PyBytes_GET_SIZE(value);
                    write_i32(w, (int32_t)vlen);
                    memcpy(w + 4, PyBytes_AS_STRING(value), (size_t)vlen);
                    w += 4 + vlen;
                }
            } else {
                Py_ssize_t whole = 4 + (flen > 0 ? flen : 0);
                memcpy(w, data + p - 4, (size_t)whole);
                w += whole;
            }
            if (flen > 0) p += flen;
        }
        pos = p;
        row++;
    }
    PyBuffer_Release(&buf);
    return out;
shape:
    PyErr_SetString(PyExc_ValueError, "data[start:end] is not whole rows of ncols fields");
    goto fail;
count:
    PyErr_SetString(PyExc_ValueError, "columns must hold one value per row");
fail:
    Py_XDECREF(out);
    PyBuffer_Release(&buf);
    return NULL;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(data, start, ncols, wanted) -> (columns, end, rows, ended): whole binary COPY "
     "rows of data from start, with the wanted columns' values."},
    {"rebuild", rebuild, METH_VARARGS,
     "rebuild(data, start, end, ncols, wanted, columns) -> bytes: data[start:end]'s rows "
     "with the wanted columns' values replaced."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "envforge.db.copyrows_c",
    "Split and rebuild the rows of a PostgreSQL binary COPY stream.", -1, methods,
};

PyMODINIT_FUNC PyInit_copyrows_c(void) { return PyModule_Create(&module); }
