/* Packing a service folder into an image, with every check a provider needs
 * before deploying: manifest fields, paths, sizes, symlinks, the entry point
 * and the syntax of every Python file (compiled, never run, by the embedded
 * CPython in a forked child so the caller's process keeps no interpreter).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <Python.h>

#include "image/image_internal.h"
#include "teex/image.h"
#include "teex/mem.h"

struct walk {
  const char *root; /* the folder as given */
  char root_real[PATH_MAX];
  struct teex_image *img;
  size_t cap;
  size_t total;
  struct teex_err *err;
};

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Reads a regular file of at most TEEX_IMAGE_FILE_SIZE_MAX bytes. */
static int read_small_file(const char *path, const char *rel, uint8_t **out,
                           size_t *out_len, struct teex_err *err) {
  *out = NULL;
  *out_len = 0;
  /* O_NONBLOCK: a FIFO swapped in after the type check must not hang us;
   * fstat below refuses it. */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0)
    return teex_err_set(err, TEEX_EIO, "%s: cannot open: %s", rel,
                        strerror(errno));
  int rc = 0;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    rc = teex_err_set(err, TEEX_EINVAL, "%s: not a regular file", rel);
    goto done;
  }
  if ((uint64_t)st.st_size > TEEX_IMAGE_FILE_SIZE_MAX) {
    rc = teex_err_set(err, TEEX_ETOOBIG,
                      "%s: file too large (%lld bytes, at most %u per file)",
                      rel, (long long)st.st_size, TEEX_IMAGE_FILE_SIZE_MAX);
    goto done;
  }
  size_t cap = (size_t)st.st_size, len = 0;
  uint8_t *buf = malloc(cap + 1);
  if (buf == NULL) {
    rc = teex_err_set(err, TEEX_ENOMEM, "%s", rel);
    goto done;
  }
  /* Read one byte past the size seen so a file growing meanwhile is caught
   * rather than silently cut. */
  for (;;) {
    ssize_t n = read(fd, buf + len, cap + 1 - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      rc = teex_err_set(err, TEEX_EIO, "%s: read: %s", rel, strerror(errno));
      free(buf);
      goto done;
    }
    if (n == 0)
      break;
    len += (size_t)n;
    if (len > cap) {
      rc = teex_err_set(err, TEEX_EIO, "%s: changed while being read", rel);
      free(buf);
      goto done;
    }
  }
  *out = buf;
  *out_len = len;
done:
  close(fd);
  return rc;
}

static int add_file(struct walk *w, const char *rel, const char *full) {
  struct teex_image *img = w->img;
  if (img->nfiles == TEEX_IMAGE_FILES_MAX)
    return teex_err_set(w->err, TEEX_ETOOBIG,
                        "too many files (more than %d); at %s",
                        TEEX_IMAGE_FILES_MAX, rel);
  uint8_t *data;
  size_t len;
  int rc = read_small_file(full, rel, &data, &len, w->err);
  if (rc != 0)
    return rc;
  if (w->total + len > TEEX_IMAGE_TOTAL_MAX) {
    free(data);
    return teex_err_set(w->err, TEEX_ETOOBIG,
                        "service too large: more than %u bytes in total at %s",
                        TEEX_IMAGE_TOTAL_MAX, rel);
  }
  if (img->nfiles == w->cap) {
    size_t ncap = w->cap ? w->cap * 2 : 32;
    struct teex_image_file *nf = realloc(img->files, ncap * sizeof *nf);
    if (nf == NULL) {
      free(data);
      return teex_err_set(w->err, TEEX_ENOMEM, "%s", rel);
    }
    img->files = nf;
    w->cap = ncap;
  }
  char *p = strdup(rel);
  if (p == NULL) {
    free(data);
    return teex_err_set(w->err, TEEX_ENOMEM, "%s", rel);
  }
  img->files[img->nfiles].path = p;
  img->files[img->nfiles].data = data;
  img->files[img->nfiles].len = len;
  img->nfiles++;
  w->total += len;
  return 0;
}

/* Visits the folder rel (relative to the root; "" for the root itself). */
static int walk_dir(struct walk *w, const char *rel) {
  char dirpath[PATH_MAX];
  if ((size_t)snprintf(dirpath, sizeof dirpath, "%s%s%s", w->root,
                       rel[0] ? "/" : "", rel) >= sizeof dirpath)
    return teex_err_set(w->err, TEEX_EINVAL, "%s: path too long", rel);
  DIR *d = opendir(dirpath);
  if (d == NULL)
    return teex_err_set(w->err, errno == ENOENT ? TEEX_ENOTFOUND : TEEX_EIO,
                        "%s: cannot open folder: %s", rel[0] ? rel : w->root,
                        strerror(errno));
  int rc = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    const char *name = de->d_name;
    /* Hidden entries (.git, .venv, editor files) and bytecode caches are not
     * part of a service. */
    if (name[0] == '.' || strcmp(name, "__pycache__") == 0)
      continue;
    if (rel[0] == '\0' && strcmp(name, TEEX_IMAGE_MANIFEST_FILE) == 0)
      continue;
    char sub[TEEX_IMAGE_PATH_MAX + 2];
    int n = snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", name);
    if (n < 0 || (size_t)n > TEEX_IMAGE_PATH_MAX) {
      rc = teex_err_set(w->err, TEEX_EINVAL,
                        "%.100s/%.60s...: path longer than %d bytes", rel, name,
                        TEEX_IMAGE_PATH_MAX);
      break;
    }
    if ((rc = teex_image_check_path(sub, (size_t)n, w->err)) != 0)
      break;
    char full[PATH_MAX];
    if ((size_t)snprintf(full, sizeof full, "%s/%s", w->root, sub) >=
        sizeof full) {
      rc = teex_err_set(w->err, TEEX_EINVAL, "%s: path too long", sub);
      break;
    }
    struct stat st;
    if (lstat(full, &st) != 0) {
      rc = teex_err_set(w->err, TEEX_EIO, "%s: %s", sub, strerror(errno));
      break;
    }
    if (S_ISDIR(st.st_mode)) {
      if ((rc = walk_dir(w, sub)) != 0)
        break;
      continue;
    }
    if (ends_with(name, ".pyc"))
      continue;
    if (S_ISLNK(st.st_mode)) {
      char target[PATH_MAX];
      if (realpath(full, target) == NULL) {
        rc = teex_err_set(w->err, TEEX_EINVAL,
                          "%s: symlink does not resolve: %s", sub,
                          strerror(errno));
        break;
      }
      size_t rl = strlen(w->root_real);
      if (strncmp(target, w->root_real, rl) != 0 || target[rl] != '/') {
        rc = teex_err_set(w->err, TEEX_EINVAL,
                          "%s: symlink escapes the service folder (points "
                          "outside it)",
                          sub);
        break;
      }
      struct stat ts;
      if (stat(target, &ts) != 0 || !S_ISREG(ts.st_mode)) {
        rc = teex_err_set(w->err, TEEX_EINVAL,
                          "%s: symlink to something other than a regular "
                          "file (links to folders are not followed)",
                          sub);
        break;
      }
      if ((rc = add_file(w, sub, target)) != 0)
        break;
      continue;
    }
    if (!S_ISREG(st.st_mode)) {
      rc = teex_err_set(w->err, TEEX_EINVAL,
                        "%s: not a regular file, folder or symlink", sub);
      break;
    }
    if ((uint64_t)st.st_size > TEEX_IMAGE_FILE_SIZE_MAX) {
      rc = teex_err_set(w->err, TEEX_ETOOBIG,
                        "%s: file too large (%lld bytes, at most %u per file)",
                        sub, (long long)st.st_size, TEEX_IMAGE_FILE_SIZE_MAX);
      break;
    }
    if ((rc = add_file(w, sub, full)) != 0)
      break;
  }
  closedir(d);
  return rc;
}

/* ---- the syntax check, in a child process ---- */

#define CHECK_MSG_MAX 900

/* In the child: compiles each .py with builtins.compile. Writes the first
 * error to fd; returns the exit status (0 clean, 1 error found, 2 could not
 * check). */
static int check_child(const struct teex_image *img, int fd) {
  char msg[CHECK_MSG_MAX];
  msg[0] = '\0';
  int status = 2;
  PyConfig cfg;
  PyConfig_InitIsolatedConfig(&cfg);
  cfg.site_import = 0;
  cfg.write_bytecode = 0;
  cfg.install_signal_handlers = 0;
  PyStatus st = Py_InitializeFromConfig(&cfg);
  PyConfig_Clear(&cfg);
  if (PyStatus_Exception(st)) {
    snprintf(msg, sizeof msg, "cannot start CPython: %s",
             st.err_msg ? st.err_msg : "?");
    goto out;
  }
  PyObject *builtins = PyImport_ImportModule("builtins");
  PyObject *compile =
      builtins ? PyObject_GetAttrString(builtins, "compile") : NULL;
  if (compile == NULL) {
    snprintf(msg, sizeof msg, "cannot find builtins.compile");
    goto out;
  }
  status = 0;
  for (size_t i = 0; i < img->nfiles && status == 0; i++) {
    const struct teex_image_file *f = &img->files[i];
    if (!ends_with(f->path, ".py"))
      continue;
    PyObject *src =
        PyBytes_FromStringAndSize((const char *)f->data, (Py_ssize_t)f->len);
    PyObject *code =
        src ? PyObject_CallFunction(compile, "Oss", src, f->path, "exec")
            : NULL;
    Py_XDECREF(src);
    if (code != NULL) {
      Py_DECREF(code);
      continue;
    }
    status = 1;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    long line = 0, col = 0;
    const char *text = "?";
    PyObject *s = NULL;
    if (value != NULL && PyErr_GivenExceptionMatches(type, PyExc_SyntaxError)) {
      PyObject *o = PyObject_GetAttrString(value, "lineno");
      if (o && PyLong_Check(o))
        line = PyLong_AsLong(o);
      Py_XDECREF(o);
      o = PyObject_GetAttrString(value, "offset");
      if (o && PyLong_Check(o))
        col = PyLong_AsLong(o);
      Py_XDECREF(o);
      s = PyObject_GetAttrString(value, "msg");
    } else if (value != NULL) {
      s = PyObject_Str(value);
    }
    PyErr_Clear();
    if (s != NULL && PyUnicode_Check(s)) {
      const char *u = PyUnicode_AsUTF8(s);
      if (u != NULL)
        text = u;
    }
    const char *tname = type ? ((PyTypeObject *)type)->tp_name : "SyntaxError";
    if (line > 0)
      snprintf(msg, sizeof msg, "%s:%ld:%ld: %s: %s", f->path, line, col, tname,
               text);
    else
      snprintf(msg, sizeof msg, "%s: %s: %s", f->path, tname, text);
    PyErr_Clear();
    Py_XDECREF(s);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
  }
out:
  if (msg[0] != '\0') {
    size_t n = strlen(msg), off = 0;
    while (off < n) {
      ssize_t w = write(fd, msg + off, n - off);
      if (w <= 0)
        break;
      off += (size_t)w;
    }
  }
  return status;
}

int teex_image_check_python(const struct teex_image *img,
                            struct teex_err *err) {
  int has_py = 0;
  for (size_t i = 0; i < img->nfiles; i++)
    if (ends_with(img->files[i].path, ".py"))
      has_py = 1;
  if (!has_py)
    return 0;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0)
    return teex_err_set(err, TEEX_EINTERNAL, "syntax check: pipe: %s",
                        strerror(errno));
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return teex_err_set(err, TEEX_EINTERNAL, "syntax check: fork: %s",
                        strerror(errno));
  }
  if (pid == 0) {
    close(fds[0]);
    /* A pathological source must not hang the packer forever. */
    struct rlimit cpu = {60, 60};
    setrlimit(RLIMIT_CPU, &cpu);
    _exit(check_child(img, fds[1]));
  }
  close(fds[1]);
  char msg[CHECK_MSG_MAX + 1];
  size_t len = 0;
  for (;;) {
    ssize_t n = read(fds[0], msg + len, CHECK_MSG_MAX - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    len += (size_t)n;
    if (len == CHECK_MSG_MAX)
      break;
  }
  msg[len] = '\0';
  close(fds[0]);
  int wst = 0;
  pid_t w;
  do
    w = waitpid(pid, &wst, 0);
  while (w < 0 && errno == EINTR);
  /* Without the child's status (SIGCHLD ignored, say) nothing was proven. */
  if (w != pid)
    return teex_err_set(err, TEEX_EINTERNAL,
                        "syntax check: lost the checker's status: %s",
                        strerror(errno));
  if (WIFEXITED(wst) && WEXITSTATUS(wst) == 0)
    return 0;
  if (WIFEXITED(wst) && WEXITSTATUS(wst) == 1)
    return teex_err_set(err, TEEX_EINVAL, "%s", msg);
  if (WIFSIGNALED(wst))
    return teex_err_set(err, TEEX_EINTERNAL,
                        "syntax check: the compiler died with signal %d",
                        WTERMSIG(wst));
  return teex_err_set(err, TEEX_EINTERNAL, "syntax check: %s",
                      len ? msg : "failed");
}

int teex_image_pack(const char *dir, struct teex_image **out, uint8_t **archive,
                    size_t *archive_len, struct teex_err *err) {
  *out = NULL;
  if (archive != NULL) {
    *archive = NULL;
    *archive_len = 0;
  }
  int rc;
  struct walk w;
  memset(&w, 0, sizeof w);
  w.root = dir;
  w.err = err;
  struct stat st;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
    return teex_err_set(err, TEEX_ENOTFOUND, "pack %s: not a folder", dir);
  if (realpath(dir, w.root_real) == NULL)
    return teex_err_set(err, TEEX_EIO, "pack %s: %s", dir, strerror(errno));
  w.img = calloc(1, sizeof *w.img);
  if (w.img == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "pack %s", dir);

  /* The manifest first: its errors are the most likely ones. */
  char mpath[PATH_MAX];
  snprintf(mpath, sizeof mpath, "%s/%s", dir, TEEX_IMAGE_MANIFEST_FILE);
  struct stat ms;
  if (lstat(mpath, &ms) != 0) {
    rc = teex_err_set(err, TEEX_ENOTFOUND, "no %s in the folder",
                      TEEX_IMAGE_MANIFEST_FILE);
    goto fail;
  }
  if (!S_ISREG(ms.st_mode) || ms.st_size > TEEX_IMAGE_MANIFEST_MAX) {
    rc = teex_err_set(err, TEEX_EINVAL,
                      "%s: must be a regular file of at most %u bytes",
                      TEEX_IMAGE_MANIFEST_FILE, TEEX_IMAGE_MANIFEST_MAX);
    goto fail;
  }
  uint8_t *mtext;
  size_t mlen;
  if ((rc = read_small_file(mpath, TEEX_IMAGE_MANIFEST_FILE, &mtext, &mlen,
                            err)) != 0)
    goto fail;
  rc = teex_manifest_parse((const char *)mtext, mlen, &w.img->manifest, err);
  free(mtext);
  if (rc != 0)
    goto fail;

  if ((rc = walk_dir(&w, "")) != 0)
    goto fail;
  if (w.img->nfiles > 1)
    qsort(w.img->files, w.img->nfiles, sizeof *w.img->files,
          teex_image_path_cmp);
  if (teex_image_find(w.img, w.img->manifest.entry) == NULL) {
    rc = teex_err_set(err, TEEX_ENOTFOUND,
                      "entry point %s (manifest service.entry) not found",
                      w.img->manifest.entry);
    goto fail;
  }
  if ((rc = teex_image_check_python(w.img, err)) != 0)
    goto fail;
  uint8_t *a = NULL;
  size_t alen = 0;
  if ((rc = teex_image_encode(w.img, &a, &alen, err)) != 0)
    goto fail;
  if (archive != NULL) {
    *archive = a;
    *archive_len = alen;
  } else {
    teex_image_bytes_free(a, alen);
  }
  *out = w.img;
  return 0;
fail:
  teex_err_wrap(err, 0, "pack %s", dir);
  teex_image_free(w.img);
  return rc;
}

int teex_image_load(const char *path, const uint8_t *key,
                    struct teex_image **img, struct teex_err *err) {
  *img = NULL;
  struct stat st;
  if (stat(path, &st) != 0)
    return teex_err_set(err, TEEX_ENOTFOUND, "load %s: %s", path,
                        strerror(errno));
  if (S_ISDIR(st.st_mode))
    return teex_image_pack(path, img, NULL, NULL, err);
  if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > TEEX_IMAGE_ENC_MAX)
    return teex_err_set(err, TEEX_ETOOBIG,
                        "load %s: not a regular file of at most %u bytes", path,
                        (unsigned)TEEX_IMAGE_ENC_MAX);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return teex_err_set(err, TEEX_EIO, "load %s: %s", path, strerror(errno));
  size_t cap = (size_t)st.st_size, len = 0;
  uint8_t *buf = malloc(cap ? cap : 1);
  int rc = 0;
  if (buf == NULL) {
    close(fd);
    return teex_err_set(err, TEEX_ENOMEM, "load %s", path);
  }
  while (len < cap) {
    ssize_t n = read(fd, buf + len, cap - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    len += (size_t)n;
  }
  close(fd);
  if (len != cap) {
    teex_image_bytes_free(buf, cap);
    return teex_err_set(err, TEEX_EIO, "load %s: short read", path);
  }
  if (teex_image_is_encrypted(buf, len)) {
    if (key == NULL) {
      teex_image_bytes_free(buf, cap);
      return teex_err_set(err, TEEX_EPERM,
                          "load %s: encrypted image: a key is needed", path);
    }
    uint8_t *pt;
    size_t ptlen;
    rc = teex_image_decrypt(key, buf, len, &pt, &ptlen, err);
    teex_image_bytes_free(buf, cap);
    if (rc != 0)
      return teex_err_wrap(err, 0, "load %s", path);
    buf = pt;
    len = cap = ptlen;
  }
  rc = teex_image_parse(buf, len, img, err);
  teex_image_bytes_free(buf, cap);
  if (rc != 0)
    return teex_err_wrap(err, 0, "load %s", path);
  return 0;
}
