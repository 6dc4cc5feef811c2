/* The evidence container: the versioned binary format every backend's quote
 * travels in (docs/attestation.md gives it byte by byte).
 *
 *   magic "TXEV" | version u16 = 1 | tee_type u16 | body_len u32 | body
 *   | binding_len u32 | binding
 *
 * Integers are big-endian. The body is the backend's signed quote (for sim:
 * identity, issue time, report data, platform certificate, signature over
 * the header and body). The binding is the canonical encoding of struct
 * teex_tee_binding, whose SHA-512 must equal the quote's report data; it is
 * empty (binding_len 0) for a quote over caller-given report data. This
 * layer only splits bytes; it checks no signature. */
#ifndef TEEX_EVIDENCE_H
#define TEEX_EVIDENCE_H

#include <stddef.h>
#include <stdint.h>

#include "teex/buf.h"
#include "teex/error.h"

#define TEEX_EVIDENCE_MAGIC "TXEV"
#define TEEX_EVIDENCE_VERSION 1
#define TEEX_EVIDENCE_HEADER_LEN 12 /* magic, version, tee_type, body_len */
#define TEEX_EVIDENCE_BODY_MAX 12288
#define TEEX_EVIDENCE_MAX 16384 /* whole container */

/* A parsed container: pointers into the caller's bytes (borrowed). */
struct teex_evidence {
  uint16_t version;
  uint16_t tee_type;
  const uint8_t *header; /* the first TEEX_EVIDENCE_HEADER_LEN bytes */
  const uint8_t *body;
  size_t body_len;
  const uint8_t *binding; /* NULL when binding_len is 0 */
  size_t binding_len;
};

/* Strict parse: exact magic and version, lengths within limits and exactly
 * covering the input. TEEX_EFORMAT / TEEX_ETRUNC / TEEX_ETOOBIG /
 * TEEX_EVERSION, with the reason in err. */
int teex_evidence_parse(const uint8_t *p, size_t len, struct teex_evidence *ev,
                        struct teex_err *err);

/* Writes the 12-byte header for a body of body_len bytes. */
void teex_evidence_header(uint16_t tee_type, uint32_t body_len,
                          uint8_t out[TEEX_EVIDENCE_HEADER_LEN]);

/* Appends header, body and binding to out. TEEX_ETOOBIG past the limits. */
int teex_evidence_encode(uint16_t tee_type, const uint8_t *body,
                         size_t body_len, const uint8_t *binding,
                         size_t binding_len, struct teex_buf *out);

#endif
