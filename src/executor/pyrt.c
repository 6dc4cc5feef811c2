/* The embedded CPython of the executor (see pyrt.h). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "executor/pyrt.h"
#include "executor/sandbox.h"

#include <fcntl.h>
#include <limits.h>
#include <string.h>

/* ---- the Python runtime source, compiled into the binary ---- */

static const char *const runtime_lines[] = {
#include "executor/runtime_py.inc"
    NULL};

/* ---- state (one interpreter per process) ---- */

static int enforcing;
static char stdlib_dir[PATH_MAX];
static size_t stdlib_len;
static uint32_t thread_cap;
static uint32_t threads_started;
static PyObject *orig_start_new_thread;
static PyObject *runtime; /* the runtime module's namespace */
static int in_task;       /* a task child: teex.kv may use the channel */

/* Trusted modules imported before the walls go up: everything a service is
 * promised (docs/writing-a-service.md), with the extension modules whose
 * shared libraries live outside the standard library (_decimal needs
 * libmpdec, _hashlib libcrypto, _sqlite3 libsqlite3 ...), which a walled
 * child could no longer open. */
static const char *const preload[] = {"json",
                                      "re",
                                      "math",
                                      "cmath",
                                      "random",
                                      "hmac",
                                      "hashlib",
                                      "secrets",
                                      "decimal",
                                      "fractions",
                                      "numbers",
                                      "statistics",
                                      "collections",
                                      "collections.abc",
                                      "threading",
                                      "queue",
                                      "datetime",
                                      "time",
                                      "calendar",
                                      "base64",
                                      "binascii",
                                      "struct",
                                      "array",
                                      "itertools",
                                      "functools",
                                      "operator",
                                      "heapq",
                                      "bisect",
                                      "string",
                                      "textwrap",
                                      "unicodedata",
                                      "difflib",
                                      "pprint",
                                      "copy",
                                      "dataclasses",
                                      "enum",
                                      "typing",
                                      "abc",
                                      "contextlib",
                                      "weakref",
                                      "types",
                                      "io",
                                      "csv",
                                      "zlib",
                                      "bz2",
                                      "lzma",
                                      "gzip",
                                      "pickle",
                                      "uuid",
                                      "ast",
                                      "traceback",
                                      "linecache",
                                      "tokenize",
                                      "codecs",
                                      "encodings.idna",
                                      "encodings.ascii",
                                      "encodings.latin_1",
                                      "sqlite3",
                                      "importlib",
                                      "importlib.machinery",
                                      "importlib.util",
                                      "keyword",
                                      "locale",
                                      "warnings",
                                      NULL};

/* ---- audit hook (PEP 578): clear errors; the kernel walls hold anyway */

static int deny(const char *what) {
  PyErr_Format(PyExc_PermissionError,
               "teex sandbox: %s is not allowed in a service", what);
  return -1;
}

static int in_stdlib(const char *p) {
  return stdlib_len > 0 && strncmp(p, stdlib_dir, stdlib_len) == 0 &&
         (p[stdlib_len] == 0 || p[stdlib_len] == '/') &&
         strstr(p, "/..") == NULL;
}

/* A path argument as a C string (borrowed from *holder); NULL if it is not
 * a path. */
static const char *path_arg(PyObject *o, PyObject **holder) {
  *holder = NULL;
  if (o == NULL || PyLong_Check(o) || o == Py_None)
    return NULL;
  PyObject *fs = PyOS_FSPath(o);
  if (fs == NULL) {
    PyErr_Clear();
    return NULL;
  }
  const char *s = NULL;
  if (PyUnicode_Check(fs))
    s = PyUnicode_AsUTF8(fs);
  else if (PyBytes_Check(fs))
    s = PyBytes_AsString(fs);
  if (s == NULL) {
    PyErr_Clear();
    Py_DECREF(fs);
    return NULL;
  }
  *holder = fs;
  return s;
}

static int check_read_path(PyObject *o, const char *what) {
  PyObject *holder;
  const char *s = path_arg(o, &holder);
  int ok = s != NULL && in_stdlib(s);
  Py_XDECREF(holder);
  return ok ? 0 : deny(what);
}

static int check_open(PyObject *args) {
  if (!PyTuple_Check(args) || PyTuple_GET_SIZE(args) < 1)
    return 0;
  PyObject *path = PyTuple_GET_ITEM(args, 0);
  if (PyTuple_GET_SIZE(args) >= 3) {
    PyObject *fl = PyTuple_GET_ITEM(args, 2);
    long flags = PyLong_Check(fl) ? PyLong_AsLong(fl) : 0;
    if (flags == -1 && PyErr_Occurred())
      PyErr_Clear();
    else if (flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND))
      return deny("writing files");
  }
  if (PyTuple_GET_SIZE(args) >= 2) {
    PyObject *mode = PyTuple_GET_ITEM(args, 1);
    if (PyUnicode_Check(mode)) {
      const char *m = PyUnicode_AsUTF8(mode);
      if (m == NULL)
        PyErr_Clear();
      else if (strpbrk(m, "wax+") != NULL)
        return deny("writing files");
    }
  }
  if (PyLong_Check(path))
    return deny("opening a file descriptor");
  return check_read_path(path,
                         "reading files outside the Python standard library");
}

struct denied_event {
  const char *event;
  int prefix; /* match event names that start with `event` */
  const char *what;
};

static const struct denied_event denied[] = {
    {"socket.", 1, "network access (sockets)"},
    {"ctypes.", 1, "ctypes"},
    {"os.system", 0, "running commands (os.system)"},
    {"os.exec", 0, "starting programs (os.exec*)"},
    {"os.posix_spawn", 0, "starting programs (os.posix_spawn)"},
    {"os.spawn", 0, "starting programs (os.spawn*)"},
    {"os.fork", 0, "creating processes (os.fork)"},
    {"os.forkpty", 0, "creating processes (os.forkpty)"},
    {"subprocess.Popen", 0, "starting programs (subprocess)"},
    {"pty.spawn", 0, "starting programs (pty)"},
    {"os.kill", 0, "sending signals"},
    {"os.killpg", 0, "sending signals"},
    {"signal.pthread_kill", 0, "sending signals"},
    {"os.remove", 0, "deleting files"},
    {"os.rmdir", 0, "deleting directories"},
    {"os.rename", 0, "renaming files"},
    {"os.mkdir", 0, "creating directories"},
    {"os.chmod", 0, "changing file modes"},
    {"os.chown", 0, "changing file owners"},
    {"os.chflags", 0, "changing file flags"},
    {"os.lchflags", 0, "changing file flags"},
    {"os.link", 0, "creating links"},
    {"os.symlink", 0, "creating links"},
    {"os.truncate", 0, "truncating files"},
    {"os.utime", 0, "changing file times"},
    {"os.mkfifo", 0, "creating files"},
    {"os.mknod", 0, "creating files"},
    {"os.setxattr", 0, "changing file attributes"},
    {"os.removexattr", 0, "changing file attributes"},
    {"shutil.", 1, "copying, moving or deleting files (shutil)"},
    {"tempfile.", 1, "creating temporary files"},
    {"webbrowser.open", 0, "opening a browser"},
    {"resource.setrlimit", 0, "changing resource limits"},
    {"resource.prlimit", 0, "changing resource limits"},
    {"sys.unraisablehook", 0, "replacing the unraisable hook"},
    {NULL, 0, NULL}};

/* Modules a service may not import at all. */
static const char *const denied_imports[] = {
    "ctypes",    "_ctypes",           "_posixsubprocess",
    "_testcapi", "_testinternalcapi", "_xxsubinterpreters",
    NULL};

static int audit_hook(const char *event, PyObject *args, void *data) {
  (void)data;
  if (!enforcing)
    return 0;
  if (strcmp(event, "open") == 0)
    return check_open(args);
  for (const struct denied_event *d = denied; d->event != NULL; d++) {
    size_t n = strlen(d->event);
    if (d->prefix ? strncmp(event, d->event, n) == 0
                  : strcmp(event, d->event) == 0)
      return deny(d->what);
  }
  if (!PyTuple_Check(args) || PyTuple_GET_SIZE(args) < 1)
    return 0;
  PyObject *a0 = PyTuple_GET_ITEM(args, 0);
  if (strcmp(event, "import") == 0 && PyUnicode_Check(a0)) {
    const char *m = PyUnicode_AsUTF8(a0);
    if (m == NULL) {
      PyErr_Clear();
      return 0;
    }
    for (size_t i = 0; denied_imports[i] != NULL; i++) {
      size_t n = strlen(denied_imports[i]);
      if (strncmp(m, denied_imports[i], n) == 0 && (m[n] == 0 || m[n] == '.'))
        return deny(strcmp(denied_imports[i], "ctypes") == 0 ||
                            strcmp(denied_imports[i], "_ctypes") == 0
                        ? "ctypes"
                        : "this module");
    }
    return 0;
  }
  if (strcmp(event, "os.listdir") == 0 || strcmp(event, "os.scandir") == 0)
    return check_read_path(a0, "listing directories outside the Python "
                               "standard library");
  if (strcmp(event, "mmap.__new__") == 0 && PyTuple_GET_SIZE(args) >= 3) {
    long fd = PyLong_Check(a0) ? PyLong_AsLong(a0) : -1;
    PyObject *acc = PyTuple_GET_ITEM(args, 2);
    long access = PyLong_Check(acc) ? PyLong_AsLong(acc) : 0;
    if (PyErr_Occurred())
      PyErr_Clear();
    if (fd != -1 && access != 1 /* ACCESS_READ */)
      return deny("mapping files for writing");
    return 0;
  }
  if (strcmp(event, "sqlite3.connect") == 0) {
    const char *s = PyUnicode_Check(a0) ? PyUnicode_AsUTF8(a0) : NULL;
    if (s == NULL)
      PyErr_Clear();
    if (s == NULL || strcmp(s, ":memory:") != 0)
      return deny("opening a database file (only \":memory:\")");
  }
  return 0;
}

/* ---- the per-task thread cap, in C so a service cannot reach around it */

static PyObject *tx_start_new_thread(PyObject *self, PyObject *args) {
  (void)self;
  if (threads_started >= thread_cap) {
    if (thread_cap == 0)
      PyErr_SetString(PyExc_RuntimeError,
                      "teex sandbox: threads cannot be started while the "
                      "service is being imported");
    else
      PyErr_Format(PyExc_RuntimeError,
                   "teex sandbox: a task may start at most %u threads",
                   (unsigned)thread_cap);
    return NULL;
  }
  PyObject *r = PyObject_Call(orig_start_new_thread, args, NULL);
  if (r != NULL)
    threads_started++;
  return r;
}

/* _posixsubprocess.fork_exec raises no audit event: this stand-in gives
 * the clear error (the seccomp filter refuses the fork regardless). */
static PyObject *orig_fork_exec;

static PyObject *tx_fork_exec(PyObject *self, PyObject *args) {
  (void)self;
  if (enforcing) {
    deny("starting programs (_posixsubprocess)");
    return NULL;
  }
  return PyObject_Call(orig_fork_exec, args, NULL);
}

/* _teex.kv_call(op, flags, key, value, expect, delta, ttl_ms, after, limit)
 * -> (rc, text, status, found, value, num, more, items): one teex.kv call
 * over the task's channel, answered before it returns (runtime.py wraps it
 * in the teex.kv API). The GIL is held throughout, so threads of a task
 * take turns on the channel. */
static PyObject *tx_kv_call(PyObject *self, PyObject *args) {
  (void)self;
  int op, flags;
  long long delta;
  unsigned long long ttl;
  unsigned limit;
  Py_buffer key, after;
  PyObject *val, *expect;
  if (!PyArg_ParseTuple(args, "iiy*OOLKy*I", &op, &flags, &key, &val, &expect,
                        &delta, &ttl, &after, &limit))
    return NULL;
  PyObject *ret = NULL;
  Py_buffer vb = {0}, eb = {0};
  struct teex_buf b;
  struct teex_err err;
  /* The service's state passes through: wiped when freed. */
  teex_buf_init(&b, TEEX_XMSG_HDR + teex_xmsg_body_max(TEEX_XMSG_KV_REPLY),
                TEEX_BUF_SECRET);
  if (!in_task) {
    PyErr_SetString(PyExc_RuntimeError,
                    "teex.kv is available only while a task runs");
    goto out;
  }
  if (val != Py_None && PyObject_GetBuffer(val, &vb, PyBUF_SIMPLE) != 0)
    goto out;
  if (expect != Py_None && PyObject_GetBuffer(expect, &eb, PyBUF_SIMPLE) != 0)
    goto out;
  struct teex_ds_cmd cmd = {.op = (uint8_t)op,
                            .flags = (uint8_t)flags,
                            .key = key.buf,
                            .key_len = (size_t)key.len,
                            .val = vb.buf,
                            .val_len = (size_t)vb.len,
                            .expect = eb.buf,
                            .expect_len = (size_t)eb.len,
                            .delta = (int64_t)delta,
                            .ttl_ms = (uint64_t)ttl,
                            .after = after.buf,
                            .after_len = (size_t)after.len,
                            .limit = limit};
  unsigned type = 0;
  int rc = teex_xmsg_encode_kv(&b, &cmd);
  if (rc != 0) {
    PyErr_Format(PyExc_ValueError,
                 "teex.kv: %s (keys at most %u bytes, "
                 "values at most %u bytes)",
                 teex_strerror(rc), (unsigned)TEEX_EXEC_KV_KEY_MAX,
                 (unsigned)TEEX_EXEC_KV_VALUE_MAX);
    goto out;
  }
  if (teex_xmsg_send(TEEX_SB_FD_CHANNEL, b.data, b.len, -1) != 0 ||
      teex_xmsg_recv(TEEX_SB_FD_CHANNEL, &type, &b, -1, &err) != 0 ||
      type != TEEX_XMSG_KV_REPLY) {
    PyErr_SetString(PyExc_ConnectionError, "teex.kv: the channel failed");
    goto out;
  }
  struct teex_xkv_reply r;
  if (teex_xmsg_decode_kv_reply(b.data, b.len, &r, &err) != 0) {
    PyErr_Format(PyExc_ConnectionError, "teex.kv: %s", teex_err_msg(&err));
    goto out;
  }
  PyObject *items = PyList_New((Py_ssize_t)r.n_items);
  for (size_t i = 0; items != NULL && i < r.n_items; i++) {
    PyObject *pair = Py_BuildValue(
        "(y#y#)", (const char *)r.items[i].key, (Py_ssize_t)r.items[i].key_len,
        (const char *)r.items[i].val, (Py_ssize_t)r.items[i].val_len);
    if (pair == NULL)
      Py_CLEAR(items);
    else
      PyList_SET_ITEM(items, (Py_ssize_t)i, pair);
  }
  if (items == NULL)
    goto out;
  PyObject *v = r.val != NULL ? PyBytes_FromStringAndSize((const char *)r.val,
                                                          (Py_ssize_t)r.val_len)
                              : Py_NewRef(Py_None);
  if (v != NULL)
    ret = Py_BuildValue("(isiiNLiN)", (int)r.rc, r.text, (int)r.status, r.found,
                        v, (long long)r.num, r.more, items);
  else
    Py_DECREF(items);
out:
  if (vb.obj != NULL)
    PyBuffer_Release(&vb);
  if (eb.obj != NULL)
    PyBuffer_Release(&eb);
  PyBuffer_Release(&key);
  PyBuffer_Release(&after);
  teex_buf_free(&b);
  return ret;
}

static PyMethodDef tx_methods[] = {
    {"kv_call", tx_kv_call, METH_VARARGS,
     "one teex.kv call over the task's channel (runtime.py wraps it)"},
    {"fork_exec", tx_fork_exec, METH_VARARGS,
     "_posixsubprocess.fork_exec, refused in a service"},
    {"start_new_thread", tx_start_new_thread, METH_VARARGS,
     "start_new_thread(function, args[, kwargs]) under the task's cap"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef tx_module = {PyModuleDef_HEAD_INIT,
                                       "_teex",
                                       "teex executor internals",
                                       -1,
                                       tx_methods,
                                       NULL,
                                       NULL,
                                       NULL,
                                       NULL};

static PyObject *tx_init(void) {
  return PyModule_Create(&tx_module);
}

static int install_thread_cap(void) {
  PyObject *thread = PyImport_ImportModule("_thread");
  PyObject *threading = PyImport_ImportModule("threading");
  PyObject *tx = PyImport_ImportModule("_teex");
  int rc = -1;
  if (thread == NULL || threading == NULL || tx == NULL)
    goto out;
  orig_start_new_thread = PyObject_GetAttrString(thread, "start_new_thread");
  PyObject *wrap = PyObject_GetAttrString(tx, "start_new_thread");
  if (orig_start_new_thread == NULL || wrap == NULL) {
    Py_XDECREF(wrap);
    goto out;
  }
  rc = 0;
  PyObject *ps = PyImport_ImportModule("_posixsubprocess");
  PyObject *sp = PyImport_ImportModule("subprocess");
  PyObject *fe = PyObject_GetAttrString(tx, "fork_exec");
  orig_fork_exec = ps ? PyObject_GetAttrString(ps, "fork_exec") : NULL;
  if (ps == NULL || sp == NULL || fe == NULL || orig_fork_exec == NULL ||
      PyObject_SetAttrString(ps, "fork_exec", fe) != 0 ||
      PyObject_SetAttrString(sp, "_fork_exec", fe) != 0)
    rc = -1;
  Py_XDECREF(ps);
  Py_XDECREF(sp);
  Py_XDECREF(fe);
  if (PyObject_SetAttrString(thread, "start_new_thread", wrap) != 0 ||
      PyObject_SetAttrString(thread, "start_new", wrap) != 0 ||
      PyObject_SetAttrString(threading, "_start_new_thread", wrap) != 0)
    rc = -1;
  Py_DECREF(wrap);
out:
  Py_XDECREF(thread);
  Py_XDECREF(threading);
  Py_XDECREF(tx);
  return rc;
}

/* ---- start-up ---- */

static int fail_py(struct teex_err *err, int code, const char *what) {
  PyObject *t, *v, *tb;
  PyErr_Fetch(&t, &v, &tb);
  PyErr_NormalizeException(&t, &v, &tb);
  const char *msg = "unknown error";
  PyObject *s = v != NULL ? PyObject_Str(v) : NULL;
  if (s != NULL && PyUnicode_Check(s))
    msg = PyUnicode_AsUTF8(s);
  if (msg == NULL)
    msg = "unprintable error";
  teex_err_set(err, code, "%s: %s", what, msg);
  Py_XDECREF(s);
  Py_XDECREF(t);
  Py_XDECREF(v);
  Py_XDECREF(tb);
  PyErr_Clear();
  return code;
}

static int load_runtime(struct teex_err *err) {
  struct teex_buf src;
  teex_buf_init(&src, 1u << 20, 0);
  for (size_t i = 0; runtime_lines[i] != NULL; i++)
    if (teex_buf_append_str(&src, runtime_lines[i]) != 0) {
      teex_buf_free(&src);
      return teex_err_set(err, TEEX_ENOMEM, "runtime source");
    }
  PyObject *code =
      Py_CompileString((const char *)src.data, "<teex-runtime>", Py_file_input);
  teex_buf_free(&src);
  if (code == NULL)
    return fail_py(err, TEEX_EINTERNAL, "compile the teex runtime");
  PyObject *mod = PyModule_New("_teex_runtime");
  if (mod == NULL) {
    Py_DECREF(code);
    return fail_py(err, TEEX_EINTERNAL, "runtime module");
  }
  PyObject *dict = PyModule_GetDict(mod);
  PyDict_SetItemString(dict, "__builtins__", PyEval_GetBuiltins());
  PyObject *r = PyEval_EvalCode(code, dict, dict);
  Py_DECREF(code);
  if (r == NULL) {
    Py_DECREF(mod);
    return fail_py(err, TEEX_EINTERNAL, "run the teex runtime");
  }
  Py_DECREF(r);
  runtime = dict;
  Py_INCREF(runtime);
  Py_DECREF(mod);
  return 0;
}

int teex_pyrt_init(struct teex_err *err) {
  if (PySys_AddAuditHook(audit_hook, NULL) != 0)
    return teex_err_set(err, TEEX_EINTERNAL, "cannot add the audit hook");
  if (PyImport_AppendInittab("_teex", tx_init) != 0)
    return teex_err_set(err, TEEX_EINTERNAL, "cannot register _teex");
  PyConfig cfg;
  PyConfig_InitIsolatedConfig(&cfg);
  cfg.site_import = 0;
  cfg.write_bytecode = 0;
  cfg.user_site_directory = 0;
  cfg.install_signal_handlers = 1; /* SIGPIPE, SIGXFSZ ignored */
  PyStatus st = Py_InitializeFromConfig(&cfg);
  PyConfig_Clear(&cfg);
  if (PyStatus_Exception(st))
    return teex_err_set(err, TEEX_EINTERNAL, "python init: %s",
                        st.err_msg ? st.err_msg : "failed");

  PyObject *os = PyImport_ImportModule("os");
  PyObject *file = os ? PyObject_GetAttrString(os, "__file__") : NULL;
  const char *f = file && PyUnicode_Check(file) ? PyUnicode_AsUTF8(file) : NULL;
  if (f == NULL || strlen(f) >= sizeof stdlib_dir || f[0] != '/') {
    Py_XDECREF(file);
    Py_XDECREF(os);
    return fail_py(err, TEEX_EINTERNAL, "locate the standard library");
  }
  snprintf(stdlib_dir, sizeof stdlib_dir, "%s", f);
  *strrchr(stdlib_dir, '/') = 0;
  stdlib_len = strlen(stdlib_dir);
  Py_DECREF(file);
  Py_DECREF(os);

  for (size_t i = 0; preload[i] != NULL; i++) {
    PyObject *m = PyImport_ImportModule(preload[i]);
    if (m == NULL)
      PyErr_Clear(); /* absent here: a task importing it gets the error */
    Py_XDECREF(m);
  }
  if (install_thread_cap() != 0)
    return fail_py(err, TEEX_EINTERNAL, "install the thread cap");
  return load_runtime(err);
}

const char *teex_pyrt_stdlib_dir(void) {
  return stdlib_dir;
}

void teex_pyrt_enforce(void) {
  enforcing = 1;
}

void teex_pyrt_set_thread_cap(uint32_t n) {
  thread_cap = n;
  threads_started = 0;
}

/* The service's error as the caller sees it (runtime.format_error). */
static void service_error(struct teex_err *err, int code, const char *what) {
  PyObject *t, *v, *tb;
  PyErr_Fetch(&t, &v, &tb);
  PyErr_NormalizeException(&t, &v, &tb);
  if (v != NULL && tb != NULL)
    PyException_SetTraceback(v, tb);
  PyObject *fmt = PyDict_GetItemString(runtime, "format_error");
  PyObject *s = fmt != NULL && v != NULL ? PyObject_CallOneArg(fmt, v) : NULL;
  const char *msg =
      s != NULL && PyUnicode_Check(s) ? PyUnicode_AsUTF8(s) : NULL;
  teex_err_set(err, code, "%s: %s", what, msg ? msg : "unknown error");
  Py_XDECREF(s);
  Py_XDECREF(t);
  Py_XDECREF(v);
  Py_XDECREF(tb);
  PyErr_Clear();
}

int teex_pyrt_setup(const struct teex_image *img, struct teex_err *err) {
  PyObject *files = PyDict_New();
  if (files == NULL)
    return fail_py(err, TEEX_ENOMEM, "image files");
  for (size_t i = 0; i < img->nfiles; i++) {
    PyObject *b = PyBytes_FromStringAndSize((const char *)img->files[i].data,
                                            (Py_ssize_t)img->files[i].len);
    if (b == NULL || PyDict_SetItemString(files, img->files[i].path, b) != 0) {
      Py_XDECREF(b);
      Py_DECREF(files);
      return fail_py(err, TEEX_ENOMEM, "image files");
    }
    Py_DECREF(b);
  }
  PyObject *setup = PyDict_GetItemString(runtime, "setup");
  PyObject *r = PyObject_CallFunction(
      setup, "Osiii", files, img->manifest.entry, (int)img->manifest.style,
      img->manifest.full_tracebacks, img->manifest.stateless);
  Py_DECREF(files);
  if (r == NULL) {
    service_error(err, TEEX_EFORMAT, "service import failed");
    return TEEX_EFORMAT;
  }
  Py_DECREF(r);
  return 0;
}

void teex_pyrt_prepare(void) {
  PyObject *fn = PyDict_GetItemString(runtime, "prepare");
  PyObject *r = fn ? PyObject_CallNoArgs(fn) : NULL;
  Py_XDECREF(r);
  PyErr_Clear();
}

int teex_pyrt_run(const struct teex_xtask *t, uint32_t out_cap,
                  struct teex_buf *frame) {
  struct teex_xresult res = {0};
  PyObject *run = PyDict_GetItemString(runtime, "run");
  in_task = 1;
  /* The datasets as (name, bytes) pairs: copied into the child's own
   * Python objects, in memory only. */
  PyObject *data = PyList_New((Py_ssize_t)t->n_data), *r = NULL;
  for (size_t i = 0; data != NULL && i < t->n_data; i++) {
    PyObject *pair =
        Py_BuildValue("(sy#)", t->data[i].name, (const char *)t->data[i].data,
                      (Py_ssize_t)t->data[i].len);
    if (pair == NULL) {
      Py_CLEAR(data);
      break;
    }
    PyList_SET_ITEM(data, (Py_ssize_t)i, pair);
  }
  if (data != NULL)
    r = PyObject_CallFunction(run, "sssy#IO", t->task_id, t->service_id,
                              t->caller, (const char *)t->input,
                              (Py_ssize_t)t->input_len, (unsigned)out_cap,
                              data);
  Py_XDECREF(data);
  Py_ssize_t n;
  char *p;
  struct teex_err err;
  int rc;
  if (r == NULL || !PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 4) {
    if (r == NULL)
      service_error(&err, TEEX_EINTERNAL, "teex runtime");
    else
      teex_err_set(&err, TEEX_EINTERNAL, "teex runtime: bad result");
    res.status = TEEX_TASK_ERROR;
    res.error = (const uint8_t *)err.msg;
    res.error_len = strlen(err.msg);
    Py_XDECREF(r);
    return teex_xmsg_encode_result(frame, &res);
  }
  res.status = (uint32_t)PyLong_AsLong(PyTuple_GET_ITEM(r, 0));
  if (PyBytes_AsStringAndSize(PyTuple_GET_ITEM(r, 1), &p, &n) == 0) {
    res.output = (const uint8_t *)p;
    res.output_len = (size_t)n;
  }
  if (PyBytes_AsStringAndSize(PyTuple_GET_ITEM(r, 2), &p, &n) == 0) {
    res.logs = (const uint8_t *)p;
    res.logs_len = (size_t)n;
  }
  const char *e = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(r, 3), &n);
  if (e != NULL) {
    res.error = (const uint8_t *)e;
    res.error_len = (size_t)n;
  }
  PyErr_Clear();
  rc = teex_xmsg_encode_result(frame, &res);
  if (rc != 0) {
    struct teex_xresult big = {.status = TEEX_TASK_OUTPUT_LIMIT};
    static const char msg[] = "OutputLimit: the task's output is too large";
    big.error = (const uint8_t *)msg;
    big.error_len = sizeof msg - 1;
    rc = teex_xmsg_encode_result(frame, &big);
  }
  Py_DECREF(r);
  return rc;
}
