/* Sealing: encrypting data so that only this code (same mr_enclave) or code
 * from the same signer at an equal or newer svn can read it back, on this
 * platform. Keys come from the TEE context (HKDF of the platform secret and
 * the identity); blobs are XChaCha20-Poly1305 with the blob header (policy,
 * identity, svn) and the caller's context string as associated data.
 *
 * Sealed blob v1 (big-endian):
 *   magic "TXSL" | version u16 = 1 | policy u8 (1 enclave, 2 signer)
 *   | reserved u8 = 0 | product_id u16 | svn u16 | key_id[32]
 *   | nonce[24] | ct_len u32 | ct (plaintext length + 16-byte tag)
 * key_id is mr_enclave (enclave policy) or mr_signer (signer policy); svn is
 * the svn the key was derived for (the sealer's own svn).
 *
 * Sealing does not stop a host from replaying an older blob (DESIGN.md §2). */
#ifndef TEEX_SEAL_H
#define TEEX_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "teex/buf.h"
#include "teex/error.h"
#include "teex/tee.h"

#define TEEX_SEAL_MAGIC "TXSL"
#define TEEX_SEAL_VERSION 1
#define TEEX_SEAL_HEADER_LEN 44
#define TEEX_SEAL_OVERHEAD (TEEX_SEAL_HEADER_LEN + 24 + 4 + 16)
#define TEEX_SEAL_MAX_PLAINTEXT (64u * 1024 * 1024)

/* A parsed blob header (pointers into the caller's bytes). */
struct teex_sealed {
  uint16_t version;
  uint8_t policy;
  uint16_t product_id;
  uint16_t svn;
  const uint8_t *key_id; /* 32 bytes */
  const uint8_t *header; /* TEEX_SEAL_HEADER_LEN bytes: part of the AD */
  const uint8_t *nonce;  /* 24 bytes */
  const uint8_t *ct;     /* ct_len bytes, tag included */
  size_t ct_len;
};

/* Strict parse of a sealed blob (no decryption). TEEX_EFORMAT/ETRUNC/
 * ETOOBIG/EVERSION with a reason. */
int teex_sealed_parse(const uint8_t *p, size_t len, struct teex_sealed *s,
                      struct teex_err *err);

/* Seals pt under policy; context (may be NULL/0) is bound as associated data
 * and must be given again to unseal. Appends the blob to out. */
int teex_seal(struct teex_tee *tee, enum teex_seal_policy policy,
              const void *context, size_t context_len, const void *pt,
              size_t pt_len, struct teex_buf *out, struct teex_err *err);

/* Unseals a blob; appends the plaintext to out (init it with
 * TEEX_BUF_SECRET when the plaintext is secret). TEEX_EPERM when the blob
 * belongs to another build/signer/product or to a newer svn, TEEX_EAUTH when
 * it was tampered with or the context differs. */
int teex_unseal(struct teex_tee *tee, const void *context, size_t context_len,
                const uint8_t *blob, size_t blob_len, struct teex_buf *out,
                struct teex_err *err);

#endif
