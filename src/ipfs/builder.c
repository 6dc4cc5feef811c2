/* The streaming UnixFS DAG builder: Kubo's `add --cid-version=1` (raw
 * leaves, size-262144 chunker, balanced layout, 174 links per node) without
 * I/O. Bytes are cut into chunks; each chunk becomes a raw leaf; links are
 * collected per tree level and a level that holds 174 links is turned into a
 * dag-pb node as soon as a 175th arrives. That bottom-up grouping produces
 * the same tree as go-unixfs's balanced builder, which fills a node of depth
 * d with full subtrees of depth d-1 from left to right (see
 * docs/internals/ipfs.md). */
#include "ipfs/ipfs_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct level_entry {
  struct teex_cid cid;
  uint64_t tsize;    /* the child's whole DAG in bytes (blocks summed) */
  uint64_t filesize; /* file bytes below the child */
};

struct level {
  struct level_entry e[TEEX_IPFS_MAX_LINKS];
  size_t count;
};

/* A node of 174 links: each link 2 + (2 + 36 + 2 + 1 + 10) bytes at most,
 * plus the UnixFS data (2 + 11 + 174 * 11) and its header. */
#define NODE_BUF_SIZE (TEEX_IPFS_MAX_LINKS * 53 + 2048 + 16)

struct teex_ipfs_builder {
  teex_ipfs_emit_fn emit;
  void *emit_ctx;
  uint8_t chunk[TEEX_IPFS_CHUNK_SIZE];
  size_t chunk_len;
  uint64_t n_chunks;
  uint64_t total;
  int failed;
  struct level levels[TEEX_IPFS_MAX_DEPTH];
  uint8_t node[NODE_BUF_SIZE];
};

int teex_ipfs_builder_new(teex_ipfs_emit_fn emit, void *emit_ctx,
                          struct teex_ipfs_builder **out) {
  struct teex_ipfs_builder *b = calloc(1, sizeof *b);
  if (b == NULL)
    return TEEX_ENOMEM;
  b->emit = emit;
  b->emit_ctx = emit_ctx;
  *out = b;
  return 0;
}

void teex_ipfs_builder_free(struct teex_ipfs_builder *b) {
  free(b);
}

/* Encodes the dag-pb node over level lv's links into b->node: the PBLinks
 * (Hash, empty Name, Tsize — go-merkledag and js-ipfs both write the empty
 * Name) then Data = UnixFS {Type=File, filesize, blocksizes...}, the field
 * order dag-pb's canonical form requires. */
static size_t encode_node(struct teex_ipfs_builder *b, const struct level *lv,
                          uint64_t *filesize) {
  uint8_t *o = b->node;
  size_t n = 0;
  uint64_t fsize = 0;
  for (size_t i = 0; i < lv->count; i++) {
    size_t link_len =
        2 + TEEX_CID_BIN_LEN + 2 + 1 + ipfs_varint_len(lv->e[i].tsize);
    o[n++] = 0x12; /* PBNode.Links, length-delimited */
    n += ipfs_varint_put(o + n, link_len);
    o[n++] = 0x0a; /* PBLink.Hash */
    o[n++] = TEEX_CID_BIN_LEN;
    teex_cid_to_bytes(&lv->e[i].cid, o + n);
    n += TEEX_CID_BIN_LEN;
    o[n++] = 0x12; /* PBLink.Name = "" */
    o[n++] = 0x00;
    o[n++] = 0x18; /* PBLink.Tsize */
    n += ipfs_varint_put(o + n, lv->e[i].tsize);
    fsize += lv->e[i].filesize;
  }
  size_t data_len = 2 + 1 + ipfs_varint_len(fsize);
  for (size_t i = 0; i < lv->count; i++)
    data_len += 1 + ipfs_varint_len(lv->e[i].filesize);
  o[n++] = 0x0a; /* PBNode.Data */
  n += ipfs_varint_put(o + n, data_len);
  o[n++] = 0x08; /* UnixFS.Type = File */
  o[n++] = TEEX_UNIXFS_FILE;
  o[n++] = 0x18; /* UnixFS.filesize */
  n += ipfs_varint_put(o + n, fsize);
  for (size_t i = 0; i < lv->count; i++) {
    o[n++] = 0x20; /* UnixFS.blocksizes (repeated, not packed) */
    n += ipfs_varint_put(o + n, lv->e[i].filesize);
  }
  *filesize = fsize;
  return n;
}

static int emit_block(struct teex_ipfs_builder *b, const struct teex_cid *cid,
                      const uint8_t *p, size_t n, struct teex_err *err) {
  if (b->emit == NULL)
    return 0;
  int rc = b->emit(b->emit_ctx, cid, p, n, err);
  if (rc != 0)
    b->failed = 1;
  return rc;
}

static int add_link(struct teex_ipfs_builder *b, size_t depth,
                    const struct level_entry *e, struct teex_err *err);

/* Turns level `depth` into one node, emits it and links it one level up. */
static int flush_level(struct teex_ipfs_builder *b, size_t depth,
                       struct teex_err *err) {
  struct level *lv = &b->levels[depth];
  struct level_entry up;
  size_t n = encode_node(b, lv, &up.filesize);
  teex_cid_of_block(TEEX_CODEC_DAG_PB, b->node, n, &up.cid);
  up.tsize = n;
  for (size_t i = 0; i < lv->count; i++)
    up.tsize += lv->e[i].tsize;
  int rc = emit_block(b, &up.cid, b->node, n, err);
  if (rc != 0)
    return rc;
  lv->count = 0;
  return add_link(b, depth + 1, &up, err);
}

static int add_link(struct teex_ipfs_builder *b, size_t depth,
                    const struct level_entry *e, struct teex_err *err) {
  if (depth >= TEEX_IPFS_MAX_DEPTH) {
    b->failed = 1;
    return teex_err_set(err, TEEX_ETOOBIG, "file too large for the DAG");
  }
  struct level *lv = &b->levels[depth];
  if (lv->count == TEEX_IPFS_MAX_LINKS) {
    int rc = flush_level(b, depth, err);
    if (rc != 0)
      return rc;
  }
  lv->e[lv->count++] = *e;
  return 0;
}

/* Emits p[0..n) as a raw leaf and links it at level 0. */
static int add_leaf(struct teex_ipfs_builder *b, const uint8_t *p, size_t n,
                    struct teex_err *err) {
  struct level_entry e;
  teex_cid_of_block(TEEX_CODEC_RAW, p, n, &e.cid);
  e.tsize = n;
  e.filesize = n;
  int rc = emit_block(b, &e.cid, p, n, err);
  if (rc != 0)
    return rc;
  b->n_chunks++;
  return add_link(b, 0, &e, err);
}

static int flush_chunk(struct teex_ipfs_builder *b, struct teex_err *err) {
  int rc = add_leaf(b, b->chunk, b->chunk_len, err);
  if (rc == 0)
    b->chunk_len = 0;
  return rc;
}

int teex_ipfs_builder_update(struct teex_ipfs_builder *b, const void *p,
                             size_t n, struct teex_err *err) {
  const uint8_t *in = p;
  if (b->failed)
    return teex_err_set(err, TEEX_ESTATE, "DAG builder already failed");
  while (n > 0) {
    /* A chunk is cut only when more data follows it, so that the last
     * chunk is flushed by finish (a file of exactly one chunk stays one). */
    if (b->chunk_len == TEEX_IPFS_CHUNK_SIZE) {
      int rc = flush_chunk(b, err);
      if (rc != 0)
        return rc;
    }
    /* A whole chunk in the input with more after it: hash it in place
     * rather than copy it (the copy cost ~8% of the throughput). */
    if (b->chunk_len == 0 && n > TEEX_IPFS_CHUNK_SIZE) {
      int rc = add_leaf(b, in, TEEX_IPFS_CHUNK_SIZE, err);
      if (rc != 0)
        return rc;
      b->total += TEEX_IPFS_CHUNK_SIZE;
      in += TEEX_IPFS_CHUNK_SIZE;
      n -= TEEX_IPFS_CHUNK_SIZE;
      continue;
    }
    size_t take = TEEX_IPFS_CHUNK_SIZE - b->chunk_len;
    if (take > n)
      take = n;
    memcpy(b->chunk + b->chunk_len, in, take);
    b->chunk_len += take;
    b->total += take;
    in += take;
    n -= take;
  }
  return 0;
}

int teex_ipfs_builder_finish(struct teex_ipfs_builder *b, struct teex_cid *root,
                             uint64_t *size, struct teex_err *err) {
  if (b->failed)
    return teex_err_set(err, TEEX_ESTATE, "DAG builder already failed");
  /* The empty file is one empty raw block, as in Kubo. */
  if (b->chunk_len > 0 || b->n_chunks == 0) {
    int rc = flush_chunk(b, err);
    if (rc != 0)
      return rc;
  }
  for (size_t depth = 0; depth < TEEX_IPFS_MAX_DEPTH; depth++) {
    size_t top = depth;
    for (size_t d = depth; d < TEEX_IPFS_MAX_DEPTH; d++)
      if (b->levels[d].count > 0)
        top = d;
    struct level *lv = &b->levels[depth];
    if (depth == top && lv->count == 1) {
      *root = lv->e[0].cid;
      if (size != NULL)
        *size = b->total;
      b->failed = 1; /* finished: no more input */
      return 0;
    }
    if (lv->count > 0) {
      int rc = flush_level(b, depth, err);
      if (rc != 0)
        return rc;
    }
  }
  b->failed = 1;
  return teex_err_set(err, TEEX_ETOOBIG, "file too large for the DAG");
}

int teex_ipfs_cid_of_buffer(const void *p, size_t n, struct teex_cid *root,
                            struct teex_err *err) {
  struct teex_ipfs_builder *b;
  if (teex_ipfs_builder_new(NULL, NULL, &b) != 0)
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  int rc = teex_ipfs_builder_update(b, p, n, err);
  if (rc == 0)
    rc = teex_ipfs_builder_finish(b, root, NULL, err);
  teex_ipfs_builder_free(b);
  return rc;
}

int teex_ipfs_cid_of_fd(int fd, struct teex_cid *root, uint64_t *size,
                        struct teex_err *err) {
  struct teex_ipfs_builder *b;
  int rc;
  static const size_t bufsize = 1u << 16;
  uint8_t *buf = malloc(bufsize);
  if (buf == NULL)
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  if (teex_ipfs_builder_new(NULL, NULL, &b) != 0) {
    rc = teex_err_set(err, TEEX_ENOMEM, NULL);
    goto fail_after_buf;
  }
  for (;;) {
    ssize_t r = read(fd, buf, bufsize);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      rc = teex_err_set(err, TEEX_EIO, "read: %s", strerror(errno));
      goto fail_after_builder;
    }
    if (r == 0)
      break;
    rc = teex_ipfs_builder_update(b, buf, (size_t)r, err);
    if (rc != 0)
      goto fail_after_builder;
  }
  rc = teex_ipfs_builder_finish(b, root, size, err);
fail_after_builder:
  teex_ipfs_builder_free(b);
fail_after_buf:
  free(buf);
  return rc;
}
