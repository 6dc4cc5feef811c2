/* The evidence container (see include/teex/evidence.h). */
#include "teex/evidence.h"

#include "tee/tee_internal.h"

#include <string.h>

void teex_evidence_header(uint16_t tee_type, uint32_t body_len,
                          uint8_t out[TEEX_EVIDENCE_HEADER_LEN]) {
  memcpy(out, TEEX_EVIDENCE_MAGIC, 4);
  tee_put16(out + 4, TEEX_EVIDENCE_VERSION);
  tee_put16(out + 6, tee_type);
  tee_put32(out + 8, body_len);
}

int teex_evidence_parse(const uint8_t *p, size_t len, struct teex_evidence *ev,
                        struct teex_err *err) {
  memset(ev, 0, sizeof *ev);
  if (len > TEEX_EVIDENCE_MAX)
    return teex_err_set(err, TEEX_ETOOBIG, "evidence larger than %d bytes",
                        TEEX_EVIDENCE_MAX);
  if (len < TEEX_EVIDENCE_HEADER_LEN)
    return teex_err_set(err, TEEX_ETRUNC, "evidence truncated (%zu bytes)",
                        len);
  if (memcmp(p, TEEX_EVIDENCE_MAGIC, 4) != 0)
    return teex_err_set(err, TEEX_EFORMAT, "not teex evidence (bad magic)");
  ev->version = tee_get16(p + 4);
  if (ev->version != TEEX_EVIDENCE_VERSION)
    return teex_err_set(err, TEEX_EVERSION, "evidence version %u not supported",
                        ev->version);
  ev->tee_type = tee_get16(p + 6);
  uint32_t body_len = tee_get32(p + 8);
  if (body_len == 0 || body_len > TEEX_EVIDENCE_BODY_MAX)
    return teex_err_set(err, TEEX_EFORMAT, "evidence body length %u invalid",
                        body_len);
  size_t off = TEEX_EVIDENCE_HEADER_LEN;
  if (len - off < (size_t)body_len + 4)
    return teex_err_set(err, TEEX_ETRUNC, "evidence body truncated");
  ev->header = p;
  ev->body = p + off;
  ev->body_len = body_len;
  off += body_len;
  uint32_t binding_len = tee_get32(p + off);
  off += 4;
  if (binding_len != len - off)
    return teex_err_set(err, TEEX_EFORMAT,
                        "evidence binding length %u does not match the %zu "
                        "bytes left",
                        binding_len, len - off);
  ev->binding_len = binding_len;
  ev->binding = binding_len ? p + off : NULL;
  return 0;
}

int teex_evidence_encode(uint16_t tee_type, const uint8_t *body,
                         size_t body_len, const uint8_t *binding,
                         size_t binding_len, struct teex_buf *out) {
  if (body_len == 0 || body_len > TEEX_EVIDENCE_BODY_MAX ||
      TEEX_EVIDENCE_HEADER_LEN + body_len + 4 + binding_len > TEEX_EVIDENCE_MAX)
    return TEEX_ETOOBIG;
  uint8_t hdr[TEEX_EVIDENCE_HEADER_LEN], bl[4];
  teex_evidence_header(tee_type, (uint32_t)body_len, hdr);
  tee_put32(bl, (uint32_t)binding_len);
  int rc = teex_buf_reserve(out, sizeof hdr + body_len + 4 + binding_len);
  if (rc != 0)
    return rc;
  teex_buf_append(out, hdr, sizeof hdr);
  teex_buf_append(out, body, body_len);
  teex_buf_append(out, bl, 4);
  if (binding_len)
    teex_buf_append(out, binding, binding_len);
  return 0;
}
