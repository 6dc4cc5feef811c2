/* Frame header codec and incremental frame reader (include/teex/frame.h). */
#include "teex/frame.h"

#include <string.h>

int teex_frame_header_encode(uint8_t out[TEEX_FRAME_HEADER_SIZE], size_t len) {
  if (len == 0 || len > TEEX_FRAME_MAX_PAYLOAD)
    return TEEX_ETOOBIG;
  out[0] = TEEX_FRAME_MAGIC0;
  out[1] = TEEX_FRAME_MAGIC1;
  out[2] = TEEX_FRAME_VERSION;
  out[3] = 0;
  out[4] = (uint8_t)(len >> 24);
  out[5] = (uint8_t)(len >> 16);
  out[6] = (uint8_t)(len >> 8);
  out[7] = (uint8_t)len;
  return 0;
}

int teex_frame_header_decode(const uint8_t in[TEEX_FRAME_HEADER_SIZE],
                             size_t max_payload, size_t *len,
                             struct teex_err *err) {
  if (in[0] != TEEX_FRAME_MAGIC0 || in[1] != TEEX_FRAME_MAGIC1)
    return teex_err_set(err, TEEX_EFORMAT,
                        "frame: bad magic %02x%02x (not a teex peer?)", in[0],
                        in[1]);
  if (in[2] != TEEX_FRAME_VERSION)
    return teex_err_set(err, TEEX_EVERSION,
                        "frame: protocol version %u, this side speaks %u",
                        in[2], TEEX_FRAME_VERSION);
  if (in[3] != 0)
    return teex_err_set(err, TEEX_EFORMAT, "frame: unknown flags 0x%02x",
                        in[3]);
  size_t n = ((size_t)in[4] << 24) | ((size_t)in[5] << 16) |
             ((size_t)in[6] << 8) | (size_t)in[7];
  if (n == 0)
    return teex_err_set(err, TEEX_EFORMAT, "frame: empty payload");
  if (n > max_payload)
    return teex_err_set(err, TEEX_ETOOBIG,
                        "frame: %zu-byte payload exceeds the %zu-byte limit", n,
                        max_payload);
  *len = n;
  return 0;
}

int teex_frame_append(struct teex_buf *out, const uint8_t *payload,
                      size_t len) {
  uint8_t hdr[TEEX_FRAME_HEADER_SIZE];
  int r = teex_frame_header_encode(hdr, len);
  if (r != 0)
    return r;
  r = teex_buf_reserve(out, sizeof hdr + len);
  if (r != 0)
    return r;
  teex_buf_append(out, hdr, sizeof hdr);
  teex_buf_append(out, payload, len);
  return 0;
}

void teex_frame_reader_init(struct teex_frame_reader *r, size_t max_payload) {
  memset(r, 0, sizeof *r);
  r->max_payload = max_payload ? max_payload : TEEX_FRAME_MAX_PAYLOAD;
  teex_buf_init(&r->buf, r->max_payload, 0);
}

void teex_frame_reader_free(struct teex_frame_reader *r) {
  teex_buf_free(&r->buf);
}

int teex_frame_reader_partial(const struct teex_frame_reader *r) {
  return r->hdr_len > 0 || (r->buf.len > 0 && !r->have_frame);
}

int teex_frame_reader_next(struct teex_frame_reader *r, const uint8_t **in,
                           size_t *in_len, const uint8_t **frame,
                           size_t *frame_len, struct teex_err *err) {
  if (r->failed)
    return teex_err_set(err, TEEX_EPROTO, "frame: stream already failed");
  if (r->have_frame) {
    teex_buf_reset(&r->buf);
    r->have_frame = 0;
  }
  if (!r->in_payload) {
    size_t take = TEEX_FRAME_HEADER_SIZE - r->hdr_len;
    if (take > *in_len)
      take = *in_len;
    memcpy(r->hdr + r->hdr_len, *in, take);
    r->hdr_len += take;
    *in += take;
    *in_len -= take;
    if (r->hdr_len < TEEX_FRAME_HEADER_SIZE)
      return 0;
    int rc = teex_frame_header_decode(r->hdr, r->max_payload, &r->need, err);
    if (rc != 0) {
      r->failed = 1;
      return rc;
    }
    r->in_payload = 1;
  }
  /* Zero copy when the whole payload is in the input. */
  if (r->buf.len == 0 && *in_len >= r->need) {
    *frame = *in;
    *frame_len = r->need;
    *in += r->need;
    *in_len -= r->need;
    r->in_payload = 0;
    r->hdr_len = 0;
    return 1;
  }
  size_t take = r->need - r->buf.len;
  if (take > *in_len)
    take = *in_len;
  int rc = teex_buf_append(&r->buf, *in, take);
  if (rc != 0) {
    r->failed = 1;
    return teex_err_set(err, rc, "frame: cannot buffer payload");
  }
  *in += take;
  *in_len -= take;
  if (r->buf.len < r->need)
    return 0;
  *frame = r->buf.data;
  *frame_len = r->need;
  r->have_frame = 1;
  r->in_payload = 0;
  r->hdr_len = 0;
  return 1;
}
