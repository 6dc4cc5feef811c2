/* Recursive Length Prefix: Ethereum's serialisation of byte strings and
 * lists (Yellow Paper, appendix B). The decoder is strict: it accepts only
 * the canonical encoding (shortest length forms, no leading zeros in
 * lengths, single bytes below 0x80 never wrapped) and never trusts a length
 * past the end of its input. Decoding allocates nothing: items point into
 * the caller's buffer. */
#ifndef TEEX_RLP_H
#define TEEX_RLP_H

#include "teex/buf.h"
#include "teex/eth_types.h"

#include <stddef.h>
#include <stdint.h>

/* Deepest list nesting the decoder follows (iteration is explicit, so this
 * only bounds callers that recurse, such as the fuzz harness). */
#define TEEX_RLP_MAX_DEPTH 64

/* ---- encoding (appends to a bounded buffer) ---- */

/* A byte string. TEEX_ETOOBIG / TEEX_ENOMEM from the buffer. */
int teex_rlp_put_bytes(struct teex_buf *b, const void *p, size_t n);
/* An unsigned integer: big-endian without leading zeros (0 is 0x80). */
int teex_rlp_put_u64(struct teex_buf *b, uint64_t v);
int teex_rlp_put_u256(struct teex_buf *b, const teex_u256 v);
/* Lists: remember the buffer length with begin, append the items, then end
 * inserts the list header in front of them. */
void teex_rlp_list_begin(const struct teex_buf *b, size_t *mark);
int teex_rlp_list_end(struct teex_buf *b, size_t mark);
/* Appends already-encoded RLP verbatim. */
int teex_rlp_put_raw(struct teex_buf *b, const void *p, size_t n);

/* ---- decoding ---- */

struct teex_rlp_item {
  int is_list;         /* 1 for a list, 0 for a byte string */
  const uint8_t *data; /* payload (string bytes, or the encoded items) */
  size_t len;          /* payload length */
  const uint8_t *raw;  /* the whole item with its header */
  size_t raw_len;
};

/* Decodes the first item of in[0..len). *consumed = its encoded size.
 * TEEX_ETRUNC when the input ends early, TEEX_EFORMAT for a non-canonical
 * encoding. Items point into `in`. */
int teex_rlp_decode(const uint8_t *in, size_t len, struct teex_rlp_item *item,
                    size_t *consumed);
/* Decodes exactly one item spanning all of in (trailing bytes: EFORMAT). */
int teex_rlp_decode_all(const uint8_t *in, size_t len,
                        struct teex_rlp_item *item);
/* Iterates a list: start with *pos = 0; returns 1 with the next item, 0 at
 * the end, or a negative error for a malformed element. */
int teex_rlp_next(const struct teex_rlp_item *list, size_t *pos,
                  struct teex_rlp_item *out);
/* Number of items in a list (each checked), or a negative error. */
int teex_rlp_count(const struct teex_rlp_item *list, size_t *count);
/* Reads a string item as an unsigned integer: no leading zero byte, at most
 * 8 (u64) / 32 (u256) bytes. TEEX_EFORMAT otherwise. */
int teex_rlp_to_u64(const struct teex_rlp_item *item, uint64_t *out);
int teex_rlp_to_u256(const struct teex_rlp_item *item, teex_u256 out);

#endif
