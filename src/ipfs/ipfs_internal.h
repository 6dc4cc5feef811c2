/* Helpers shared inside the ipfs module: SHA-256, protobuf varints and the
 * DAG walker used by every backend's cat. */
#ifndef TEEX_IPFS_INTERNAL_H
#define TEEX_IPFS_INTERNAL_H

#include "teex/ipfs.h"

#include <stddef.h>
#include <stdint.h>

/* sha2-256 of p[0..n). */
void ipfs_sha256(const void *p, size_t n, uint8_t out[32]);

/* Appends the unsigned LEB128 varint of v to out; returns bytes written
 * (at most 10). */
size_t ipfs_varint_put(uint8_t *out, uint64_t v);
/* Reads a minimal varint of at most 10 bytes (and at most 64 bits) from
 * p[*pos..len). 0 or TEEX_EFORMAT / TEEX_ETRUNC. */
int ipfs_varint_get(const uint8_t *p, size_t len, size_t *pos, uint64_t *v);
/* Number of bytes ipfs_varint_put writes for v. */
size_t ipfs_varint_len(uint64_t v);

/* Fetches a block from b and verifies it against cid (TEEX_EAUTH). */
int ipfs_get_verified(struct teex_ipfs_backend *b, const struct teex_cid *cid,
                      struct teex_buf *out, struct teex_err *err);

/* Walks the whole file DAG below root (every block fetched, verified and
 * checked as by cat) and calls visit for each block. */
typedef int (*ipfs_visit_fn)(void *ctx, const struct teex_cid *cid,
                             struct teex_err *err);
int ipfs_walk(struct teex_ipfs_backend *b, const struct teex_cid *root,
              ipfs_visit_fn visit, void *visit_ctx, struct teex_err *err);

/* Parses the answer of the Kubo RPC `add` (NDJSON): the CID of the line
 * with a Hash, and its Size (cumulative DAG size, a string in Kubo and a
 * number in js-ipfs) into dag_size (may be NULL). An error line is
 * TEEX_EREMOTE; anything else malformed TEEX_EPROTO or TEEX_EFORMAT. */
int ipfs_kubo_parse_add(const uint8_t *body, size_t body_len,
                        struct teex_cid *cid, uint64_t *dag_size,
                        struct teex_err *err);

#endif
