/* RLP encoder and strict decoder. See include/teex/rlp.h. */
#include "teex/rlp.h"

#include "teex/error.h"

#include <string.h>

/* Big-endian bytes of v without leading zeros; returns their count. */
static size_t be_min(uint64_t v, uint8_t out[8]) {
  size_t n = 0;
  for (int shift = 56; shift >= 0; shift -= 8) {
    uint8_t byte = (uint8_t)(v >> shift);
    if (n == 0 && byte == 0)
      continue;
    out[n++] = byte;
  }
  return n;
}

/* Writes the header for a payload of len bytes at base 0x80 (string) or
 * 0xc0 (list) into hdr; returns its size (1..9). */
static size_t header(size_t len, uint8_t base, uint8_t hdr[9]) {
  if (len <= 55) {
    hdr[0] = (uint8_t)(base + len);
    return 1;
  }
  uint8_t be[8];
  size_t n = be_min((uint64_t)len, be);
  hdr[0] = (uint8_t)(base + 55 + n);
  memcpy(hdr + 1, be, n);
  return 1 + n;
}

int teex_rlp_put_bytes(struct teex_buf *b, const void *p, size_t n) {
  const uint8_t *s = p;
  if (n == 1 && s[0] < 0x80)
    return teex_buf_putc(b, s[0]);
  uint8_t hdr[9];
  size_t h = header(n, 0x80, hdr);
  int rc = teex_buf_reserve(b, h + n);
  if (rc != 0)
    return rc;
  teex_buf_append(b, hdr, h);
  return n ? teex_buf_append(b, s, n) : 0;
}

int teex_rlp_put_u64(struct teex_buf *b, uint64_t v) {
  uint8_t be[8];
  size_t n = be_min(v, be);
  return teex_rlp_put_bytes(b, be, n);
}

int teex_rlp_put_u256(struct teex_buf *b, const teex_u256 v) {
  size_t i = 0;
  while (i < 32 && v[i] == 0)
    i++;
  return teex_rlp_put_bytes(b, v + i, 32 - i);
}

void teex_rlp_list_begin(const struct teex_buf *b, size_t *mark) {
  *mark = b->len;
}

int teex_rlp_list_end(struct teex_buf *b, size_t mark) {
  if (mark > b->len)
    return TEEX_EINVAL;
  uint8_t hdr[9];
  size_t payload = b->len - mark;
  size_t h = header(payload, 0xc0, hdr);
  int rc = teex_buf_reserve(b, h);
  if (rc != 0)
    return rc;
  memmove(b->data + mark + h, b->data + mark, payload);
  memcpy(b->data + mark, hdr, h);
  b->len += h;
  return 0;
}

int teex_rlp_put_raw(struct teex_buf *b, const void *p, size_t n) {
  return teex_buf_append(b, p, n);
}

/* Reads a long-form length of n bytes; canonical means no leading zero and a
 * value above 55 (otherwise the short form was required). */
static int read_len(const uint8_t *p, size_t n, size_t *out) {
  if (p[0] == 0)
    return TEEX_EFORMAT;
  if (n > sizeof(size_t))
    return TEEX_ETOOBIG;
  size_t v = 0;
  for (size_t i = 0; i < n; i++)
    v = (v << 8) | p[i];
  if (v <= 55)
    return TEEX_EFORMAT;
  *out = v;
  return 0;
}

int teex_rlp_decode(const uint8_t *in, size_t len, struct teex_rlp_item *item,
                    size_t *consumed) {
  if (len == 0)
    return TEEX_ETRUNC;
  uint8_t p = in[0];
  size_t hlen = 1, plen = 0;
  int is_list = 0, rc;
  if (p < 0x80) {
    hlen = 0;
    plen = 1;
  } else if (p <= 0xb7) {
    plen = p - 0x80u;
  } else if (p <= 0xbf) {
    size_t n = p - 0xb7u;
    if (len < 1 + n)
      return TEEX_ETRUNC;
    if ((rc = read_len(in + 1, n, &plen)) != 0)
      return rc;
    hlen = 1 + n;
  } else if (p <= 0xf7) {
    is_list = 1;
    plen = p - 0xc0u;
  } else {
    size_t n = p - 0xf7u;
    is_list = 1;
    if (len < 1 + n)
      return TEEX_ETRUNC;
    if ((rc = read_len(in + 1, n, &plen)) != 0)
      return rc;
    hlen = 1 + n;
  }
  if (plen > len - hlen)
    return TEEX_ETRUNC;
  /* A single byte below 0x80 must be encoded as itself. */
  if (!is_list && hlen == 1 && plen == 1 && in[1] < 0x80)
    return TEEX_EFORMAT;
  item->is_list = is_list;
  item->data = in + hlen;
  item->len = plen;
  item->raw = in;
  item->raw_len = hlen + plen;
  if (consumed)
    *consumed = hlen + plen;
  return 0;
}

int teex_rlp_decode_all(const uint8_t *in, size_t len,
                        struct teex_rlp_item *item) {
  size_t used = 0;
  int rc = teex_rlp_decode(in, len, item, &used);
  if (rc != 0)
    return rc;
  return used == len ? 0 : TEEX_EFORMAT;
}

int teex_rlp_next(const struct teex_rlp_item *list, size_t *pos,
                  struct teex_rlp_item *out) {
  if (!list->is_list)
    return TEEX_EFORMAT;
  if (*pos >= list->len)
    return 0;
  size_t used = 0;
  int rc = teex_rlp_decode(list->data + *pos, list->len - *pos, out, &used);
  if (rc != 0)
    return rc;
  *pos += used;
  return 1;
}

int teex_rlp_count(const struct teex_rlp_item *list, size_t *count) {
  struct teex_rlp_item it;
  size_t pos = 0, n = 0;
  int rc;
  while ((rc = teex_rlp_next(list, &pos, &it)) == 1)
    n++;
  if (rc < 0)
    return rc;
  *count = n;
  return 0;
}

int teex_rlp_to_u64(const struct teex_rlp_item *item, uint64_t *out) {
  if (item->is_list || item->len > 8 || (item->len > 0 && item->data[0] == 0))
    return TEEX_EFORMAT;
  uint64_t v = 0;
  for (size_t i = 0; i < item->len; i++)
    v = (v << 8) | item->data[i];
  *out = v;
  return 0;
}

int teex_rlp_to_u256(const struct teex_rlp_item *item, teex_u256 out) {
  if (item->is_list || item->len > 32 || (item->len > 0 && item->data[0] == 0))
    return TEEX_EFORMAT;
  memset(out, 0, 32);
  if (item->len)
    memcpy(out + 32 - item->len, item->data, item->len);
  return 0;
}
