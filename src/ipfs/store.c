/* The local blockstore: the embedded default backend. Layout under its
 * directory:
 *   blocks/<cid>   one file per block, named by its CID text form
 *   pins/<cid>     an empty file per recursively pinned root
 * A block is written to a temporary file in blocks/, fsynced and renamed
 * over its name, so a crash leaves either no block or a whole one (and a
 * torn or altered file is caught anyway: every read is verified). */
#include "ipfs/ipfs_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct store {
  struct teex_ipfs_backend base;
  char dir[PATH_MAX];
};

static const struct teex_ipfs_backend_ops store_ops;

static int store_path(const struct store *s, const char *sub,
                      const struct teex_cid *cid, char *out, size_t size) {
  char c[TEEX_CID_STR_SIZE];
  teex_cid_to_string(cid, c);
  int n = snprintf(out, size, "%s/%s/%s", s->dir, sub, c);
  return (n < 0 || (size_t)n >= size) ? TEEX_ETOOBIG : 0;
}

static int mkdir_p(const char *path, struct teex_err *err) {
  char tmp[PATH_MAX];
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof tmp)
    return teex_err_set(err, TEEX_EINVAL, "bad store path");
  memcpy(tmp, path, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (tmp[i] == '/' || tmp[i] == '\0') {
      char saved = tmp[i];
      tmp[i] = '\0';
      if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
        return teex_err_set(err, TEEX_EIO, "mkdir %s: %s", tmp,
                            strerror(errno));
      tmp[i] = saved;
    }
  }
  return 0;
}

static int fsync_dir(const char *path) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return TEEX_EIO;
  int rc = fsync(fd) == 0 ? 0 : TEEX_EIO;
  close(fd);
  return rc;
}

/* Writes p to path atomically: a temporary file beside it, fsync, rename. */
static int write_atomic(const char *dir, const char *path, const void *p,
                        size_t n, struct teex_err *err) {
  char tmp[PATH_MAX];
  int rc = 0;
  if (snprintf(tmp, sizeof tmp, "%s/.tmp-XXXXXX", dir) >= (int)sizeof tmp)
    return teex_err_set(err, TEEX_ETOOBIG, "store path too long");
  int fd = mkstemp(tmp);
  if (fd < 0)
    return teex_err_set(err, TEEX_EIO, "create in %s: %s", dir,
                        strerror(errno));
  const uint8_t *q = p;
  while (n > 0) {
    ssize_t w = write(fd, q, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      rc = teex_err_set(err, errno == ENOSPC ? TEEX_ENOSPC : TEEX_EIO,
                        "write %s: %s", tmp, strerror(errno));
      goto fail_after_open;
    }
    q += w;
    n -= (size_t)w;
  }
  if (fsync(fd) != 0) {
    rc = teex_err_set(err, TEEX_EIO, "fsync %s: %s", tmp, strerror(errno));
    goto fail_after_open;
  }
  if (close(fd) != 0) {
    fd = -1;
    rc = teex_err_set(err, TEEX_EIO, "close %s: %s", tmp, strerror(errno));
    goto fail_after_open;
  }
  fd = -1;
  if (rename(tmp, path) != 0) {
    rc = teex_err_set(err, TEEX_EIO, "rename to %s: %s", path, strerror(errno));
    goto fail_after_open;
  }
  return 0;
fail_after_open:
  if (fd >= 0)
    close(fd);
  unlink(tmp);
  return rc;
}

static int put_block(void *ctx, const struct teex_cid *cid,
                     const uint8_t *block, size_t len, struct teex_err *err) {
  struct store *s = ctx;
  char path[PATH_MAX], dir[PATH_MAX];
  if (store_path(s, "blocks", cid, path, sizeof path) != 0 ||
      snprintf(dir, sizeof dir, "%s/blocks", s->dir) >= (int)sizeof dir)
    return teex_err_set(err, TEEX_ETOOBIG, "store path too long");
  return write_atomic(dir, path, block, len, err);
}

static int write_pin(struct store *s, const struct teex_cid *cid,
                     struct teex_err *err) {
  char path[PATH_MAX], dir[PATH_MAX];
  if (store_path(s, "pins", cid, path, sizeof path) != 0 ||
      snprintf(dir, sizeof dir, "%s/pins", s->dir) >= (int)sizeof dir)
    return teex_err_set(err, TEEX_ETOOBIG, "store path too long");
  int rc = write_atomic(dir, path, "", 0, err);
  if (rc == 0 && fsync_dir(dir) != 0)
    rc = teex_err_set(err, TEEX_EIO, "fsync %s: %s", dir, strerror(errno));
  return rc;
}

static int store_add(struct teex_ipfs_backend *b, teex_ipfs_read_fn read,
                     void *read_ctx, struct teex_cid *root, uint64_t *size,
                     struct teex_err *err) {
  struct store *s = (struct store *)b;
  struct teex_ipfs_builder *bld;
  char dir[PATH_MAX];
  int rc;
  static const size_t bufsize = 1u << 16;
  uint8_t *buf = malloc(bufsize);
  if (buf == NULL)
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  if (teex_ipfs_builder_new(put_block, s, &bld) != 0) {
    rc = teex_err_set(err, TEEX_ENOMEM, NULL);
    goto fail_after_buf;
  }
  for (;;) {
    size_t got = 0;
    rc = read(read_ctx, buf, bufsize, &got);
    if (rc != 0) {
      rc = teex_err_wrap(err, rc, "read input");
      goto fail_after_builder;
    }
    if (got == 0)
      break;
    rc = teex_ipfs_builder_update(bld, buf, got, err);
    if (rc != 0)
      goto fail_after_builder;
  }
  rc = teex_ipfs_builder_finish(bld, root, size, err);
  if (rc != 0)
    goto fail_after_builder;
  /* Blocks' renames are made durable before the pin that refers to them. */
  snprintf(dir, sizeof dir, "%s/blocks", s->dir);
  if (fsync_dir(dir) != 0) {
    rc = teex_err_set(err, TEEX_EIO, "fsync %s: %s", dir, strerror(errno));
    goto fail_after_builder;
  }
  rc = write_pin(s, root, err);
fail_after_builder:
  teex_ipfs_builder_free(bld);
fail_after_buf:
  free(buf);
  if (rc != 0)
    teex_err_wrap(err, 0, "add to local store");
  return rc;
}

static int store_get_block(struct teex_ipfs_backend *b,
                           const struct teex_cid *cid, struct teex_buf *out,
                           struct teex_err *err) {
  struct store *s = (struct store *)b;
  char path[PATH_MAX];
  struct stat st;
  int rc = 0;
  if (store_path(s, "blocks", cid, path, sizeof path) != 0)
    return teex_err_set(err, TEEX_ETOOBIG, "store path too long");
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) {
      char c[TEEX_CID_STR_SIZE];
      teex_cid_to_string(cid, c);
      return teex_err_set(err, TEEX_ENOTFOUND,
                          "block %s is not in the local store", c);
    }
    return teex_err_set(err, TEEX_EIO, "open %s: %s", path, strerror(errno));
  }
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    rc = teex_err_set(err, TEEX_EIO, "%s is not a regular file", path);
    goto done;
  }
  if ((uint64_t)st.st_size > TEEX_IPFS_MAX_BLOCK) {
    rc = teex_err_set(err, TEEX_ETOOBIG, "%s: block of %lld bytes", path,
                      (long long)st.st_size);
    goto done;
  }
  for (;;) {
    /* Read until EOF (not just st_size): a file that grew is caught by the
     * bound, and one that changed by the hash. */
    size_t room = out->max - out->len;
    uint8_t probe;
    uint8_t *dst = &probe;
    size_t want = 1;
    if (room > 0) {
      if (teex_buf_reserve(out, room < 65536 ? room : 65536) != 0) {
        rc = teex_err_set(err, TEEX_ENOMEM, NULL);
        goto done;
      }
      dst = out->data + out->len;
      want = out->cap - out->len - 1; /* reserve keeps room for a NUL */
      if (want > room)
        want = room;
    }
    ssize_t r = read(fd, dst, want);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      rc = teex_err_set(err, TEEX_EIO, "read %s: %s", path, strerror(errno));
      goto done;
    }
    if (r == 0)
      break;
    if (room == 0) {
      rc = teex_err_set(err, TEEX_ETOOBIG, "%s: block too large", path);
      goto done;
    }
    out->len += (size_t)r;
  }
done:
  close(fd);
  return rc;
}

static int store_has(struct teex_ipfs_backend *b, const struct teex_cid *cid,
                     struct teex_err *err) {
  struct store *s = (struct store *)b;
  char path[PATH_MAX];
  struct stat st;
  if (store_path(s, "blocks", cid, path, sizeof path) != 0)
    return teex_err_set(err, TEEX_ETOOBIG, "store path too long");
  if (stat(path, &st) == 0)
    return 1;
  if (errno == ENOENT)
    return 0;
  return teex_err_set(err, TEEX_EIO, "stat %s: %s", path, strerror(errno));
}

static int store_pin(struct teex_ipfs_backend *b, const struct teex_cid *cid,
                     struct teex_err *err) {
  /* A pin promises the whole file: check every block is here and intact. */
  int rc = ipfs_walk(b, cid, NULL, NULL, err);
  if (rc == 0)
    rc = write_pin((struct store *)b, cid, err);
  if (rc != 0)
    return teex_err_wrap(err, rc, "pin");
  return 0;
}

static int store_unpin(struct teex_ipfs_backend *b, const struct teex_cid *cid,
                       struct teex_err *err) {
  struct store *s = (struct store *)b;
  char path[PATH_MAX];
  if (store_path(s, "pins", cid, path, sizeof path) != 0)
    return teex_err_set(err, TEEX_ETOOBIG, "store path too long");
  if (unlink(path) != 0) {
    if (errno == ENOENT)
      return teex_err_set(err, TEEX_ENOTFOUND, "unpin: not pinned");
    return teex_err_set(err, TEEX_EIO, "unlink %s: %s", path, strerror(errno));
  }
  return 0;
}

static int store_is_pinned(struct teex_ipfs_backend *b,
                           const struct teex_cid *cid, struct teex_err *err) {
  struct store *s = (struct store *)b;
  char path[PATH_MAX];
  struct stat st;
  if (store_path(s, "pins", cid, path, sizeof path) != 0)
    return teex_err_set(err, TEEX_ETOOBIG, "store path too long");
  if (stat(path, &st) == 0)
    return 1;
  if (errno == ENOENT)
    return 0;
  return teex_err_set(err, TEEX_EIO, "stat %s: %s", path, strerror(errno));
}

static void store_close(struct teex_ipfs_backend *b) {
  free(b);
}

static const struct teex_ipfs_backend_ops store_ops = {
    .version = 1,
    .name = "local",
    .add = store_add,
    .get_block = store_get_block,
    .has = store_has,
    .pin = store_pin,
    .unpin = store_unpin,
    .is_pinned = store_is_pinned,
    .close = store_close,
};

int teex_ipfs_store_open(const char *dir, struct teex_ipfs_backend **out,
                         struct teex_err *err) {
  struct store *s = calloc(1, sizeof *s);
  char sub[PATH_MAX];
  int rc;
  if (s == NULL)
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  s->base.ops = &store_ops;
  size_t n = strlen(dir);
  while (n > 1 && dir[n - 1] == '/')
    n--;
  if (n == 0 || n + 16 >= sizeof s->dir) {
    rc = teex_err_set(err, TEEX_EINVAL, "bad store directory");
    goto fail;
  }
  memcpy(s->dir, dir, n);
  s->dir[n] = '\0';
  snprintf(sub, sizeof sub, "%s/blocks", s->dir);
  if ((rc = mkdir_p(sub, err)) != 0)
    goto fail;
  snprintf(sub, sizeof sub, "%s/pins", s->dir);
  if ((rc = mkdir_p(sub, err)) != 0)
    goto fail;
  *out = &s->base;
  return 0;
fail:
  free(s);
  return teex_err_wrap(err, rc, "open store %s", dir);
}

/* ---- garbage collection ---- */

struct cid_set {
  struct teex_cid *v;
  size_t n, cap;
};

static int set_add(void *ctx, const struct teex_cid *cid,
                   struct teex_err *err) {
  struct cid_set *set = ctx;
  if (set->n == set->cap) {
    size_t cap = set->cap ? set->cap * 2 : 256;
    struct teex_cid *v = realloc(set->v, cap * sizeof *v);
    if (v == NULL)
      return teex_err_set(err, TEEX_ENOMEM, NULL);
    set->v = v;
    set->cap = cap;
  }
  set->v[set->n++] = *cid;
  return 0;
}

static int cid_cmp(const void *a, const void *b) {
  const struct teex_cid *x = a, *y = b;
  if (x->codec != y->codec)
    return x->codec < y->codec ? -1 : 1;
  return memcmp(x->digest, y->digest, 32);
}

int teex_ipfs_store_gc(struct teex_ipfs_backend *b, size_t *removed,
                       struct teex_err *err) {
  struct cid_set live = {NULL, 0, 0};
  char path[PATH_MAX];
  size_t count = 0;
  int rc = 0;
  if (b == NULL || b->ops != &store_ops)
    return teex_err_set(err, TEEX_EINVAL, "gc: not a local store");
  struct store *s = (struct store *)b;

  /* Mark: every block of every pinned DAG (a damaged pinned DAG stops the
   * collection rather than losing what is left of it). */
  snprintf(path, sizeof path, "%s/pins", s->dir);
  DIR *d = opendir(path);
  if (d == NULL)
    return teex_err_set(err, TEEX_EIO, "open %s: %s", path, strerror(errno));
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    struct teex_cid cid;
    if (de->d_name[0] == '.')
      continue;
    if (teex_cid_parse(de->d_name, &cid, NULL) != 0)
      continue;
    rc = ipfs_walk(b, &cid, set_add, &live, err);
    if (rc != 0) {
      teex_err_wrap(err, rc, "gc: pinned %s", de->d_name);
      break;
    }
  }
  closedir(d);
  if (rc != 0)
    goto done;
  if (live.n > 0)
    qsort(live.v, live.n, sizeof *live.v, cid_cmp);

  /* Sweep: block files whose CID is not marked. Temporary files are left
   * alone (an add may be writing them). */
  snprintf(path, sizeof path, "%s/blocks", s->dir);
  d = opendir(path);
  if (d == NULL) {
    rc = teex_err_set(err, TEEX_EIO, "open %s: %s", path, strerror(errno));
    goto done;
  }
  while ((de = readdir(d)) != NULL) {
    struct teex_cid cid;
    if (de->d_name[0] == '.')
      continue;
    if (teex_cid_parse(de->d_name, &cid, NULL) != 0)
      continue;
    if (live.n > 0 &&
        bsearch(&cid, live.v, live.n, sizeof *live.v, cid_cmp) != NULL)
      continue;
    if (unlinkat(dirfd(d), de->d_name, 0) == 0)
      count++;
  }
  closedir(d);
  if (removed != NULL)
    *removed = count;
done:
  free(live.v);
  return rc;
}
