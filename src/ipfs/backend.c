/* What every backend shares: the wrappers callers use, and the DAG walker
 * behind cat. Verification lives here, not in the backends: every block any
 * backend returns is hashed and compared with the CID it was asked for
 * before it is decoded or written out, so a backend cannot skip it. */
#include "ipfs/ipfs_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void teex_ipfs_close(struct teex_ipfs_backend *b) {
  if (b != NULL)
    b->ops->close(b);
}

int teex_ipfs_add(struct teex_ipfs_backend *b, teex_ipfs_read_fn read,
                  void *read_ctx, struct teex_cid *root, uint64_t *size,
                  struct teex_err *err) {
  return b->ops->add(b, read, read_ctx, root, size, err);
}

struct mem_reader {
  const uint8_t *p;
  size_t left;
};

static int mem_read(void *ctx, uint8_t *buf, size_t cap, size_t *got) {
  struct mem_reader *m = ctx;
  size_t n = m->left < cap ? m->left : cap;
  memcpy(buf, m->p, n);
  m->p += n;
  m->left -= n;
  *got = n;
  return 0;
}

int teex_ipfs_add_buffer(struct teex_ipfs_backend *b, const void *p, size_t n,
                         struct teex_cid *root, struct teex_err *err) {
  struct mem_reader m = {p, n};
  return teex_ipfs_add(b, mem_read, &m, root, NULL, err);
}

static int fd_read(void *ctx, uint8_t *buf, size_t cap, size_t *got) {
  int fd = *(int *)ctx;
  for (;;) {
    ssize_t r = read(fd, buf, cap);
    if (r >= 0) {
      *got = (size_t)r;
      return 0;
    }
    if (errno != EINTR)
      return TEEX_EIO;
  }
}

int teex_ipfs_add_file(struct teex_ipfs_backend *b, const char *path,
                       struct teex_cid *root, uint64_t *size,
                       struct teex_err *err) {
  int fd = strcmp(path, "-") == 0 ? 0 : open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return teex_err_set(err, TEEX_EIO, "open %s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || S_ISDIR(st.st_mode)) {
    if (fd != 0)
      close(fd);
    return teex_err_set(err, TEEX_EINVAL,
                        "%s is a directory (only files can be added)", path);
  }
  int rc = teex_ipfs_add(b, fd_read, &fd, root, size, err);
  if (rc == TEEX_EIO && err != NULL && err->msg[0] == '\0')
    teex_err_set(err, TEEX_EIO, "read %s: %s", path, strerror(errno));
  if (fd != 0)
    close(fd);
  return rc;
}

int teex_ipfs_has(struct teex_ipfs_backend *b, const struct teex_cid *cid,
                  struct teex_err *err) {
  return b->ops->has(b, cid, err);
}

int teex_ipfs_pin(struct teex_ipfs_backend *b, const struct teex_cid *cid,
                  struct teex_err *err) {
  return b->ops->pin(b, cid, err);
}

int teex_ipfs_unpin(struct teex_ipfs_backend *b, const struct teex_cid *cid,
                    struct teex_err *err) {
  return b->ops->unpin(b, cid, err);
}

int teex_ipfs_is_pinned(struct teex_ipfs_backend *b, const struct teex_cid *cid,
                        struct teex_err *err) {
  return b->ops->is_pinned(b, cid, err);
}

/* ---- cat ---- */

struct walk {
  struct teex_ipfs_backend *b;
  uint64_t max_size;
  uint64_t written;
  teex_ipfs_write_fn write;
  void *write_ctx;
  ipfs_visit_fn visit; /* may be NULL */
  void *visit_ctx;
  struct teex_err *err;
};

static int emit_bytes(struct walk *w, const uint8_t *p, size_t n) {
  if (n == 0)
    return 0;
  if (n > w->max_size - w->written)
    return teex_err_set(w->err, TEEX_ETOOBIG,
                        "file larger than the limit of %llu bytes",
                        (unsigned long long)w->max_size);
  w->written += n;
  if (w->write == NULL)
    return 0;
  int rc = w->write(w->write_ctx, p, n);
  if (rc != 0)
    return teex_err_set(w->err, rc, "write output: %s", teex_strerror(rc));
  return 0;
}

/* Writes the file below cid; `expect` is the size its parent declared
 * (UINT64_MAX at the root, where nothing is declared). */
static int walk_node(struct walk *w, const struct teex_cid *cid, unsigned depth,
                     uint64_t expect) {
  char s[TEEX_CID_STR_SIZE];
  struct teex_buf blk;
  struct teex_dagpb_node *node = NULL;
  uint64_t start = w->written;
  int rc;

  if (depth > TEEX_IPFS_MAX_DEPTH)
    return teex_err_set(w->err, TEEX_EFORMAT, "DAG deeper than %u levels",
                        (unsigned)TEEX_IPFS_MAX_DEPTH);
  teex_buf_init(&blk, TEEX_IPFS_MAX_BLOCK, 0);
  rc = ipfs_get_verified(w->b, cid, &blk, w->err);
  if (rc == 0 && w->visit != NULL)
    rc = w->visit(w->visit_ctx, cid, w->err);
  if (rc != 0)
    goto done;
  if (cid->codec == TEEX_CODEC_RAW) {
    rc = emit_bytes(w, blk.data, blk.len);
    goto check;
  }
  node = malloc(sizeof *node);
  if (node == NULL) {
    rc = teex_err_set(w->err, TEEX_ENOMEM, NULL);
    goto done;
  }
  teex_cid_to_string(cid, s);
  rc = teex_dagpb_decode(blk.data, blk.len, node, w->err);
  if (rc != 0) {
    teex_err_wrap(w->err, 0, "node %s", s);
    goto done;
  }
  if (node->unixfs_type != TEEX_UNIXFS_FILE &&
      node->unixfs_type != TEEX_UNIXFS_RAW) {
    rc = teex_err_set(
        w->err, TEEX_EUNSUPPORTED, "node %s is a UnixFS %s, not a file", s,
        node->unixfs_type == TEEX_UNIXFS_DIRECTORY ? "directory"
                                                   : "object of another type");
    goto done;
  }
  if (node->n_blocksizes != node->n_links) {
    rc = teex_err_set(w->err, TEEX_EFORMAT,
                      "node %s: %zu links but %zu blocksizes", s, node->n_links,
                      node->n_blocksizes);
    goto done;
  }
  /* filesize = inline data + the children's sizes, checked before any
   * child is fetched so that a lying node costs nothing. */
  uint64_t sum = node->data_len;
  for (size_t i = 0; i < node->n_blocksizes; i++) {
    if (node->blocksizes[i] > UINT64_MAX - sum) {
      rc = teex_err_set(w->err, TEEX_EFORMAT, "node %s: sizes overflow", s);
      goto done;
    }
    sum += node->blocksizes[i];
  }
  if (node->has_filesize && node->filesize != sum) {
    rc = teex_err_set(w->err, TEEX_EFORMAT,
                      "node %s: filesize %llu but its parts sum to %llu", s,
                      (unsigned long long)node->filesize,
                      (unsigned long long)sum);
    goto done;
  }
  if (expect != UINT64_MAX && sum != expect) {
    rc = teex_err_set(w->err, TEEX_EFORMAT,
                      "node %s holds %llu bytes, its parent says %llu", s,
                      (unsigned long long)sum, (unsigned long long)expect);
    goto done;
  }
  if (sum > w->max_size - w->written) {
    rc = teex_err_set(w->err, TEEX_ETOOBIG,
                      "file larger than the limit of %llu bytes",
                      (unsigned long long)w->max_size);
    goto done;
  }
  rc = emit_bytes(w, node->data, node->data_len);
  for (size_t i = 0; rc == 0 && i < node->n_links; i++)
    rc = walk_node(w, &node->links[i].cid, depth + 1, node->blocksizes[i]);
check:
  if (rc == 0 && expect != UINT64_MAX && w->written - start != expect) {
    teex_cid_to_string(cid, s);
    rc = teex_err_set(w->err, TEEX_EFORMAT,
                      "block %s holds %llu bytes, its parent says %llu", s,
                      (unsigned long long)(w->written - start),
                      (unsigned long long)expect);
  }
done:
  free(node);
  teex_buf_free(&blk);
  return rc;
}

int ipfs_get_verified(struct teex_ipfs_backend *b, const struct teex_cid *cid,
                      struct teex_buf *out, struct teex_err *err) {
  teex_buf_reset(out);
  int rc = b->ops->get_block(b, cid, out, err);
  if (rc != 0)
    return rc;
  return teex_cid_verify(cid, out->data, out->len, err);
}

int teex_ipfs_cat(struct teex_ipfs_backend *b, const struct teex_cid *root,
                  uint64_t max_size, teex_ipfs_write_fn write, void *write_ctx,
                  struct teex_err *err) {
  struct walk w = {b, max_size, 0, write, write_ctx, NULL, NULL, err};
  int rc = walk_node(&w, root, 0, UINT64_MAX);
  if (rc != 0) {
    char s[TEEX_CID_STR_SIZE];
    teex_cid_to_string(root, s);
    return teex_err_wrap(err, rc, "cat %s", s);
  }
  return 0;
}

int ipfs_walk(struct teex_ipfs_backend *b, const struct teex_cid *root,
              ipfs_visit_fn visit, void *visit_ctx, struct teex_err *err) {
  struct walk w = {b, UINT64_MAX, 0, NULL, NULL, visit, visit_ctx, err};
  return walk_node(&w, root, 0, UINT64_MAX);
}

static int buf_write(void *ctx, const uint8_t *p, size_t n) {
  return teex_buf_append(ctx, p, n);
}

int teex_ipfs_cat_buffer(struct teex_ipfs_backend *b,
                         const struct teex_cid *root, struct teex_buf *out,
                         struct teex_err *err) {
  teex_buf_reset(out);
  return teex_ipfs_cat(b, root, out->max, buf_write, out, err);
}

int teex_ipfs_default_store_dir(char *out, size_t out_size,
                                struct teex_err *err) {
  const char *home = getenv("TEEX_HOME");
  int n;
  if (home != NULL && home[0] != '\0') {
    n = snprintf(out, out_size, "%s/ipfs", home);
  } else {
    home = getenv("HOME");
    if (home == NULL || home[0] == '\0')
      return teex_err_set(err, TEEX_ECONFIG,
                          "neither TEEX_HOME nor HOME is set; give --store");
    n = snprintf(out, out_size, "%s/.teex/ipfs", home);
  }
  if (n < 0 || (size_t)n >= out_size)
    return teex_err_set(err, TEEX_ETOOBIG, "store path too long");
  return 0;
}
