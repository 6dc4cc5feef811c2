/* Content addressing with IPFS: CIDv1 computed by teex exactly as an IPFS
 * node computes it for `add` with `cid-version=1` under Kubo's defaults,
 * strict CID and dag-pb/UnixFS parsers, and storage backends behind one
 * vtable — a local blockstore (the embedded default) and the Kubo RPC API of
 * a real node. Every block read from any backend is hashed and compared with
 * its CID before a byte of it is used: a mismatch is TEEX_EAUTH.
 *
 * The DAG layout (docs/internals/ipfs.md): 262,144-byte chunks, each a raw
 * block (codec 0x55); a file of at most one chunk (the empty file too) is
 * that single raw block; a larger file is a balanced tree of dag-pb nodes
 * (codec 0x70) with at most 174 links each, whose UnixFS data is {Type=File,
 * filesize, blocksizes}. Hashes are sha2-256; CIDs print as multibase
 * base32 lower case ('b' prefix). */
#ifndef TEEX_IPFS_H
#define TEEX_IPFS_H

#include "teex/buf.h"
#include "teex/error.h"

#include <stddef.h>
#include <stdint.h>

#define TEEX_IPFS_CHUNK_SIZE 262144u /* Kubo's default size-262144 chunker */
#define TEEX_IPFS_MAX_LINKS 174u     /* Kubo's balanced-layout fan-out */
#define TEEX_IPFS_MAX_DEPTH 16u      /* 174^16 chunks: far beyond any file */
/* Largest block teex accepts from anyone (Kubo refuses blocks > 1 MiB from
 * the network; 2 MiB leaves room for foreign layouts). */
#define TEEX_IPFS_MAX_BLOCK (2u * 1024u * 1024u)

#define TEEX_CODEC_RAW 0x55u
#define TEEX_CODEC_DAG_PB 0x70u
#define TEEX_MH_SHA2_256 0x12u

/* Binary CID: 0x01 (version) 0x55|0x70 (codec) 0x12 0x20 (sha2-256, 32) and
 * the 32-byte digest. Only this shape exists in teex; the parser refuses
 * everything else. */
#define TEEX_CID_BIN_LEN 36
/* Text form: 'b' + base32 of 36 bytes (58 characters) + NUL. */
#define TEEX_CID_STR_LEN 59
#define TEEX_CID_STR_SIZE (TEEX_CID_STR_LEN + 1)

struct teex_cid {
  uint8_t codec; /* TEEX_CODEC_RAW or TEEX_CODEC_DAG_PB */
  uint8_t digest[32];
};

/* ---- CIDs ---- */

/* The CID of a block: sha2-256 of data under codec. */
void teex_cid_of_block(uint8_t codec, const void *data, size_t len,
                       struct teex_cid *out);

/* Writes the 36-byte binary form. */
void teex_cid_to_bytes(const struct teex_cid *c, uint8_t out[TEEX_CID_BIN_LEN]);

/* Parses the binary form. Strict: CIDv1 only, codec raw or dag-pb, multihash
 * sha2-256 of length 32, nothing after it, every varint minimal.
 * TEEX_EFORMAT (message in err) otherwise. */
int teex_cid_from_bytes(const uint8_t *p, size_t len, struct teex_cid *out,
                        struct teex_err *err);

/* Writes the text form ("bafk..."/"bafy..."), NUL-terminated. */
void teex_cid_to_string(const struct teex_cid *c, char out[TEEX_CID_STR_SIZE]);

/* Parses the text form. Strict: multibase 'b' (base32, lower case, no
 * padding, no non-zero trailing bits), then as teex_cid_from_bytes. A CIDv0
 * ("Qm...") or another multibase is refused with a message saying so.
 * TEEX_EFORMAT. */
int teex_cid_parse(const char *s, struct teex_cid *out, struct teex_err *err);

int teex_cid_equal(const struct teex_cid *a, const struct teex_cid *b);

/* Checks that data is the block named by cid: TEEX_EAUTH with a message
 * naming the CID when its hash differs. */
int teex_cid_verify(const struct teex_cid *cid, const void *data, size_t len,
                    struct teex_err *err);

/* ---- dag-pb / UnixFS nodes ---- */

struct teex_dagpb_link {
  struct teex_cid cid;
  uint64_t tsize; /* cumulative size of the linked DAG (0 if absent) */
  int has_tsize;
  const uint8_t *name; /* points into the decoded block; not NUL-terminated */
  size_t name_len;
};

#define TEEX_UNIXFS_RAW 0
#define TEEX_UNIXFS_DIRECTORY 1
#define TEEX_UNIXFS_FILE 2

/* A decoded dag-pb node whose Data is UnixFS. Links and data point into the
 * block given to the decoder, which must outlive the node. */
struct teex_dagpb_node {
  struct teex_dagpb_link links[TEEX_IPFS_MAX_LINKS * 2];
  size_t n_links;
  int has_data;        /* the PBNode had a Data field */
  int unixfs_type;     /* TEEX_UNIXFS_* */
  const uint8_t *data; /* UnixFS Data (file bytes in this node) */
  size_t data_len;
  uint64_t filesize;
  int has_filesize;
  uint64_t blocksizes[TEEX_IPFS_MAX_LINKS * 2];
  size_t n_blocksizes;
};
#define TEEX_DAGPB_MAX_LINKS (TEEX_IPFS_MAX_LINKS * 2)

/* Decodes a dag-pb block strictly (canonical field order: Links then Data;
 * no unknown fields, no duplicate Data, minimal lengths in bounds) and its
 * UnixFS Data (fields 1..8 of unixfs.proto, Type required). At most
 * TEEX_DAGPB_MAX_LINKS links and blocksizes. TEEX_EFORMAT / TEEX_ETOOBIG. */
int teex_dagpb_decode(const uint8_t *p, size_t len, struct teex_dagpb_node *out,
                      struct teex_err *err);

/* ---- the streaming DAG builder (no I/O) ----
 * Feed bytes in any pieces; each completed block (leaves and inner nodes,
 * children before parents) goes to emit, which may store it. Memory is
 * bounded: one chunk plus TEEX_IPFS_MAX_DEPTH levels of at most 174 links. */

typedef int (*teex_ipfs_emit_fn)(void *ctx, const struct teex_cid *cid,
                                 const uint8_t *block, size_t len,
                                 struct teex_err *err);

struct teex_ipfs_builder; /* opaque; about 300 KiB, heap-allocated */

/* emit may be NULL (compute the CID only). TEEX_ENOMEM. */
int teex_ipfs_builder_new(teex_ipfs_emit_fn emit, void *emit_ctx,
                          struct teex_ipfs_builder **out);
/* Errors from emit are returned as they are; after an error the builder only
 * accepts teex_ipfs_builder_free. */
int teex_ipfs_builder_update(struct teex_ipfs_builder *b, const void *p,
                             size_t n, struct teex_err *err);
/* Flushes the last chunk and the inner nodes; root gets the file's CID,
 * size (may be NULL) the number of file bytes. */
int teex_ipfs_builder_finish(struct teex_ipfs_builder *b, struct teex_cid *root,
                             uint64_t *size, struct teex_err *err);
void teex_ipfs_builder_free(struct teex_ipfs_builder *b);

/* One-shot helpers over the builder. */
int teex_ipfs_cid_of_buffer(const void *p, size_t n, struct teex_cid *root,
                            struct teex_err *err);
/* Reads fd to its end. TEEX_EIO. */
int teex_ipfs_cid_of_fd(int fd, struct teex_cid *root, uint64_t *size,
                        struct teex_err *err);

/* ---- backends ---- */

/* Where cat's output goes: returns 0 or a TEEX_E* code that stops the walk. */
typedef int (*teex_ipfs_write_fn)(void *ctx, const uint8_t *p, size_t n);

/* Reads up to cap bytes into buf; *got = 0 at the end. 0 or TEEX_E*. */
typedef int (*teex_ipfs_read_fn)(void *ctx, uint8_t *buf, size_t cap,
                                 size_t *got);

struct teex_ipfs_backend;

/* Version 1 of the vtable. Callers use the teex_ipfs_* wrappers below. */
struct teex_ipfs_backend_ops {
  int version; /* 1 */
  const char *name;
  /* Stores a whole file read from `read`, pinned; root gets its CID. */
  int (*add)(struct teex_ipfs_backend *b, teex_ipfs_read_fn read,
             void *read_ctx, struct teex_cid *root, uint64_t *size,
             struct teex_err *err);
  /* Fetches one block into out (reset first), verified against cid. */
  int (*get_block)(struct teex_ipfs_backend *b, const struct teex_cid *cid,
                   struct teex_buf *out, struct teex_err *err);
  /* 1 present, 0 absent, or a negative TEEX_E* code. */
  int (*has)(struct teex_ipfs_backend *b, const struct teex_cid *cid,
             struct teex_err *err);
  int (*pin)(struct teex_ipfs_backend *b, const struct teex_cid *cid,
             struct teex_err *err);
  int (*unpin)(struct teex_ipfs_backend *b, const struct teex_cid *cid,
               struct teex_err *err);
  /* 1 pinned, 0 not, or a negative code. */
  int (*is_pinned)(struct teex_ipfs_backend *b, const struct teex_cid *cid,
                   struct teex_err *err);
  void (*close)(struct teex_ipfs_backend *b);
};

struct teex_ipfs_backend {
  const struct teex_ipfs_backend_ops *ops;
};

/* The local blockstore: one file per block under dir/blocks, named by its
 * CID, written atomically (temporary file, fsync, rename); pins are files
 * under dir/pins. dir is created (mode 0700) if missing. Caller owns *out
 * and releases it with teex_ipfs_close. TEEX_EIO / TEEX_ENOMEM. */
int teex_ipfs_store_open(const char *dir, struct teex_ipfs_backend **out,
                         struct teex_err *err);

/* Removes every block not reachable from a pin. *removed (may be NULL) gets
 * the count. Only for the local blockstore (TEEX_EINVAL otherwise). */
int teex_ipfs_store_gc(struct teex_ipfs_backend *b, size_t *removed,
                       struct teex_err *err);

/* A real IPFS node through its Kubo RPC API at api_url (for example
 * "http://127.0.0.1:5001"). add uploads with cid-version=1, raw leaves and
 * the 262,144-byte chunker and refuses the answer unless the node's CID
 * equals the one teex computed from the same bytes; blocks are fetched one by
 * one with block/get and each is verified. Responses are bounded in size.
 * TEEX_EINVAL for a URL that is not http(s)://. */
int teex_ipfs_kubo_open(const char *api_url, struct teex_ipfs_backend **out,
                        struct teex_err *err);

/* NULL-safe. */
void teex_ipfs_close(struct teex_ipfs_backend *b);

int teex_ipfs_add(struct teex_ipfs_backend *b, teex_ipfs_read_fn read,
                  void *read_ctx, struct teex_cid *root, uint64_t *size,
                  struct teex_err *err);
int teex_ipfs_add_buffer(struct teex_ipfs_backend *b, const void *p, size_t n,
                         struct teex_cid *root, struct teex_err *err);
/* Adds the file at path. */
int teex_ipfs_add_file(struct teex_ipfs_backend *b, const char *path,
                       struct teex_cid *root, uint64_t *size,
                       struct teex_err *err);

/* Reassembles the file named by root from the DAG, verifying every block
 * against its CID and every node's sizes against its children; writes the
 * bytes in order to write. At most max_size bytes (TEEX_ETOOBIG past it).
 * A directory, symlink or HAMT is TEEX_EUNSUPPORTED; a tampered block
 * TEEX_EAUTH; a malformed node TEEX_EFORMAT. Bytes already written before an
 * error are not taken back: a caller that must not act on partial output
 * writes to a temporary place. */
int teex_ipfs_cat(struct teex_ipfs_backend *b, const struct teex_cid *root,
                  uint64_t max_size, teex_ipfs_write_fn write, void *write_ctx,
                  struct teex_err *err);
/* cat into a bounded buffer (out is reset; its max applies). */
int teex_ipfs_cat_buffer(struct teex_ipfs_backend *b,
                         const struct teex_cid *root, struct teex_buf *out,
                         struct teex_err *err);

int teex_ipfs_has(struct teex_ipfs_backend *b, const struct teex_cid *cid,
                  struct teex_err *err);
int teex_ipfs_pin(struct teex_ipfs_backend *b, const struct teex_cid *cid,
                  struct teex_err *err);
int teex_ipfs_unpin(struct teex_ipfs_backend *b, const struct teex_cid *cid,
                    struct teex_err *err);
int teex_ipfs_is_pinned(struct teex_ipfs_backend *b, const struct teex_cid *cid,
                        struct teex_err *err);

/* The default local store directory: $TEEX_HOME/ipfs, else ~/.teex/ipfs.
 * TEEX_ECONFIG when neither TEEX_HOME nor HOME is set. */
int teex_ipfs_default_store_dir(char *out, size_t out_size,
                                struct teex_err *err);

#endif
