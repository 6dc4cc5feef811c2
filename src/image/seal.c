/* Encrypted images: chunked XChaCha20-Poly1305 with HKDF and X25519 from
 * include/teex/crypto.h, composed, not invented.
 *
 *   header = magic "TEEXENC\0" | u8 version = 1 | u8 mode | u16 zero
 *            | u32 chunk_size | u64 plain_len | salt[32]
 *            | (mode 2 only) ephemeral X25519 public key[32]
 *   body   = for i in 0..n-1: XChaCha20-Poly1305(content_key,
 *              nonce = 16 zero bytes | u64 i, ad = header | u64 i | u8 last,
 *              plaintext chunk i) -- ciphertext || 16-byte tag
 *
 * content_key = HKDF-SHA256(salt, ikm, info): in mode 1 ikm is the 32-byte
 * image key and info "teex/image/v1/key"; in mode 2 ikm is X25519(ephemeral
 * secret, recipient public) and info "teex/image/v1/x25519" | ephemeral |
 * recipient public. The salt is random per encryption, so a content key
 * never repeats and counter nonces are safe. Each chunk authenticates the
 * whole header, its index and whether it is the last: changing the header,
 * reordering, dropping, duplicating or appending chunks all fail the tag. */
#include <stdlib.h>
#include <string.h>

#include "teex/crypto.h"
#include "teex/image.h"
#include "teex/mem.h"

static const uint8_t enc_magic[8] = {'T', 'E', 'E', 'X', 'E', 'N', 'C', 0};
#define ENC_VERSION 1u
#define HDR_BASE 56u
#define TAG 16u

static const char info_key[] = "teex/image/v1/key";
static const char info_x25519[] = "teex/image/v1/x25519";

/* HKDF-SHA256 (RFC 5869) into one 32-byte key. */
static void hkdf32(const uint8_t salt[32], const uint8_t *ikm, size_t ikm_len,
                   const uint8_t *info, size_t info_len, uint8_t out[32]) {
  /* Cannot fail: 32 bytes is far below HKDF's 255 * 32 output limit. */
  (void)teex_hkdf_sha256(salt, 32, ikm, ikm_len, info, info_len, out, 32);
}

static uint64_t get_u64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = (v << 8) | p[i];
  return v;
}

static void put_u64(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--) {
    p[i] = (uint8_t)v;
    v >>= 8;
  }
}

static uint64_t nchunks_of(uint64_t plain_len, uint32_t chunk) {
  return plain_len == 0 ? 1 : (plain_len + chunk - 1) / chunk;
}

int teex_image_is_encrypted(const uint8_t *p, size_t len) {
  return len >= sizeof enc_magic && memcmp(p, enc_magic, 8) == 0;
}

int teex_image_enc_header_parse(const uint8_t *p, size_t len,
                                struct teex_image_enc_header *h,
                                struct teex_err *err) {
  memset(h, 0, sizeof *h);
  if (len < 8 || memcmp(p, enc_magic, 8) != 0)
    return teex_err_set(err, TEEX_EFORMAT,
                        "not an encrypted teex image (bad magic)");
  if (len < HDR_BASE)
    return teex_err_set(err, TEEX_ETRUNC, "encrypted image: short header");
  if (p[8] != ENC_VERSION)
    return teex_err_set(err, TEEX_EVERSION,
                        "encrypted image: version %u, this teex reads %u", p[8],
                        ENC_VERSION);
  h->mode = p[9];
  if (h->mode != TEEX_IMAGE_ENC_MODE_KEY &&
      h->mode != TEEX_IMAGE_ENC_MODE_RECIPIENT)
    return teex_err_set(err, TEEX_EFORMAT, "encrypted image: unknown mode %u",
                        h->mode);
  if (p[10] != 0 || p[11] != 0)
    return teex_err_set(err, TEEX_EFORMAT,
                        "encrypted image: reserved bytes not zero");
  h->chunk_size = ((uint32_t)p[12] << 24) | ((uint32_t)p[13] << 16) |
                  ((uint32_t)p[14] << 8) | p[15];
  if (h->chunk_size < TEEX_IMAGE_ENC_CHUNK_MIN ||
      h->chunk_size > TEEX_IMAGE_ENC_CHUNK_MAX)
    return teex_err_set(err, TEEX_EFORMAT,
                        "encrypted image: chunk size %u out of range",
                        h->chunk_size);
  h->plain_len = get_u64(p + 16);
  if (h->plain_len > TEEX_IMAGE_ARCHIVE_MAX)
    return teex_err_set(err, TEEX_ETOOBIG,
                        "encrypted image: %llu bytes of plaintext announced, "
                        "at most %u",
                        (unsigned long long)h->plain_len,
                        (unsigned)TEEX_IMAGE_ARCHIVE_MAX);
  memcpy(h->salt, p + 24, 32);
  h->header_len = HDR_BASE;
  if (h->mode == TEEX_IMAGE_ENC_MODE_RECIPIENT) {
    if (len < HDR_BASE + 32)
      return teex_err_set(err, TEEX_ETRUNC, "encrypted image: short header");
    memcpy(h->ephemeral, p + HDR_BASE, 32);
    h->header_len += 32;
  }
  uint64_t want = h->header_len + h->plain_len +
                  nchunks_of(h->plain_len, h->chunk_size) * TAG;
  if ((uint64_t)len != want)
    return teex_err_set(err, TEEX_EAUTH,
                        "encrypted image: %zu bytes where the header implies "
                        "%llu (truncated or extended)",
                        len, (unsigned long long)want);
  return 0;
}

static size_t write_header(uint8_t *out, uint8_t mode, uint64_t plain_len,
                           const uint8_t salt[32], const uint8_t *epk) {
  memcpy(out, enc_magic, 8);
  out[8] = ENC_VERSION;
  out[9] = mode;
  out[10] = out[11] = 0;
  uint32_t c = TEEX_IMAGE_ENC_CHUNK;
  out[12] = (uint8_t)(c >> 24);
  out[13] = (uint8_t)(c >> 16);
  out[14] = (uint8_t)(c >> 8);
  out[15] = (uint8_t)c;
  put_u64(out + 16, plain_len);
  memcpy(out + 24, salt, 32);
  if (epk == NULL)
    return HDR_BASE;
  memcpy(out + HDR_BASE, epk, 32);
  return HDR_BASE + 32;
}

/* Builds the per-chunk nonce and associated data. ad must hold hlen + 9. */
static void chunk_params(const uint8_t *hdr, size_t hlen, uint64_t i, int last,
                         uint8_t nonce[24], uint8_t *ad) {
  memset(nonce, 0, 24);
  put_u64(nonce + 16, i);
  memcpy(ad, hdr, hlen);
  put_u64(ad + hlen, i);
  ad[hlen + 8] = (uint8_t)(last ? 1 : 0);
}

/* Encrypts pt after the header already written at out[0..hlen). */
static void encrypt_body(const uint8_t ck[32], uint8_t *out, size_t hlen,
                         uint32_t chunk, const uint8_t *pt, size_t len) {
  uint64_t n = nchunks_of(len, chunk);
  uint8_t nonce[24], ad[TEEX_IMAGE_ENC_HEADER_MAX + 9];
  uint8_t *w = out + hlen;
  for (uint64_t i = 0; i < n; i++) {
    size_t off = (size_t)(i * chunk);
    size_t clen = len - off < chunk ? len - off : chunk;
    chunk_params(out, hlen, i, i + 1 == n, nonce, ad);
    (void)teex_xaead_encrypt(ck, nonce, ad, hlen + 9, pt + off, clen, w);
    w += clen + TAG;
  }
}

static int encrypt_common(uint8_t mode, const uint8_t *ikm, size_t ikm_len,
                          const uint8_t *epk, const uint8_t *rpk,
                          const uint8_t *pt, size_t len, uint8_t **out,
                          size_t *out_len, struct teex_err *err) {
  *out = NULL;
  *out_len = 0;
  if (len > TEEX_IMAGE_ARCHIVE_MAX)
    return teex_err_set(err, TEEX_ETOOBIG, "encrypt image: %zu bytes", len);
  size_t hlen = HDR_BASE + (epk ? 32 : 0);
  size_t total = hlen + len + nchunks_of(len, TEEX_IMAGE_ENC_CHUNK) * TAG;
  uint8_t *o = malloc(total);
  if (o == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "encrypt image");
  uint8_t salt[32], ck[32];
  teex_random(salt, sizeof salt);
  write_header(o, mode, len, salt, epk);
  uint8_t info[sizeof info_x25519 + 64];
  size_t ilen;
  if (mode == TEEX_IMAGE_ENC_MODE_KEY) {
    memcpy(info, info_key, sizeof info_key - 1);
    ilen = sizeof info_key - 1;
  } else {
    memcpy(info, info_x25519, sizeof info_x25519 - 1);
    memcpy(info + sizeof info_x25519 - 1, epk, 32);
    memcpy(info + sizeof info_x25519 - 1 + 32, rpk, 32);
    ilen = sizeof info_x25519 - 1 + 64;
  }
  hkdf32(salt, ikm, ikm_len, info, ilen, ck);
  encrypt_body(ck, o, hlen, TEEX_IMAGE_ENC_CHUNK, pt, len);
  teex_wipe(ck, sizeof ck);
  *out = o;
  *out_len = total;
  return 0;
}

int teex_image_encrypt(const uint8_t key[32], const uint8_t *pt, size_t len,
                       uint8_t **out, size_t *out_len, struct teex_err *err) {
  return encrypt_common(TEEX_IMAGE_ENC_MODE_KEY, key, 32, NULL, NULL, pt, len,
                        out, out_len, err);
}

int teex_image_seal(const uint8_t recipient_pk[32], const uint8_t *pt,
                    size_t len, uint8_t **out, size_t *out_len,
                    struct teex_err *err) {
  uint8_t esk[32], epk[32], shared[32];
  int rc;
  if (teex_x25519_keypair(epk, esk) != 0 ||
      teex_x25519(shared, esk, recipient_pk) != 0) {
    rc = teex_err_set(err, TEEX_ECRYPTO,
                      "encrypt image: recipient key is not a usable X25519 "
                      "public key");
    goto done;
  }
  rc = encrypt_common(TEEX_IMAGE_ENC_MODE_RECIPIENT, shared, 32, epk,
                      recipient_pk, pt, len, out, out_len, err);
done:
  teex_wipe(esk, sizeof esk);
  teex_wipe(shared, sizeof shared);
  return rc;
}

/* Checks the header and the exact length, derives nothing. Any failure past
 * the magic and version is reported as TEEX_EAUTH: a truncated or altered
 * header is tampering like any other. */
static int open_header(const uint8_t *ct, size_t len,
                       struct teex_image_enc_header *h, uint8_t want_mode,
                       struct teex_err *err) {
  int rc = teex_image_enc_header_parse(ct, len, h, err);
  if (rc != 0 && !teex_image_is_encrypted(ct, len))
    return rc;
  if (rc == TEEX_EVERSION || rc == TEEX_ENOMEM)
    return rc;
  if (rc != 0)
    return teex_err_wrap(err, TEEX_EAUTH, "decrypt image");
  if (h->mode != want_mode)
    return teex_err_set(err, TEEX_EPERM,
                        h->mode == TEEX_IMAGE_ENC_MODE_KEY
                            ? "decrypt image: encrypted under an image key, "
                              "not to a recipient key"
                            : "decrypt image: encrypted to a recipient key; "
                              "its X25519 secret key is needed");
  return 0;
}

static int decrypt_body(const uint8_t ck[32], const uint8_t *ct,
                        const struct teex_image_enc_header *h, uint8_t **out,
                        size_t *out_len, struct teex_err *err) {
  size_t plen = (size_t)h->plain_len, hlen = h->header_len;
  uint8_t *o = malloc(plen ? plen : 1);
  if (o == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "decrypt image");
  uint64_t n = nchunks_of(h->plain_len, h->chunk_size);
  uint8_t nonce[24], ad[TEEX_IMAGE_ENC_HEADER_MAX + 9];
  const uint8_t *r = ct + hlen;
  for (uint64_t i = 0; i < n; i++) {
    size_t off = (size_t)(i * h->chunk_size);
    size_t clen = plen - off < h->chunk_size ? plen - off : h->chunk_size;
    chunk_params(ct, hlen, i, i + 1 == n, nonce, ad);
    if (teex_xaead_decrypt(ck, nonce, ad, hlen + 9, r, clen + TAG, o + off) !=
        0) {
      teex_image_bytes_free(o, plen);
      return teex_err_set(err, TEEX_EAUTH,
                          "decrypt image: chunk %llu of %llu failed "
                          "authentication (wrong key or tampered data)",
                          (unsigned long long)i + 1, (unsigned long long)n);
    }
    r += clen + TAG;
  }
  *out = o;
  *out_len = plen;
  return 0;
}

int teex_image_decrypt(const uint8_t key[32], const uint8_t *ct, size_t len,
                       uint8_t **out, size_t *out_len, struct teex_err *err) {
  *out = NULL;
  *out_len = 0;
  struct teex_image_enc_header h;
  int rc = open_header(ct, len, &h, TEEX_IMAGE_ENC_MODE_KEY, err);
  if (rc != 0)
    return rc;
  uint8_t ck[32];
  hkdf32(h.salt, key, 32, (const uint8_t *)info_key, sizeof info_key - 1, ck);
  rc = decrypt_body(ck, ct, &h, out, out_len, err);
  teex_wipe(ck, sizeof ck);
  return rc;
}

int teex_image_open(const uint8_t recipient_sk[32], const uint8_t *ct,
                    size_t len, uint8_t **out, size_t *out_len,
                    struct teex_err *err) {
  *out = NULL;
  *out_len = 0;
  struct teex_image_enc_header h;
  int rc = open_header(ct, len, &h, TEEX_IMAGE_ENC_MODE_RECIPIENT, err);
  if (rc != 0)
    return rc;
  uint8_t shared[32], rpk[32], ck[32];
  uint8_t info[sizeof info_x25519 + 64];
  if (teex_x25519_public(recipient_sk, rpk) != 0 ||
      teex_x25519(shared, recipient_sk, h.ephemeral) != 0) {
    /* A low-order ephemeral key: only a forger sends one. */
    rc = teex_err_set(err, TEEX_EAUTH,
                      "decrypt image: invalid ephemeral key in header");
    goto done;
  }
  memcpy(info, info_x25519, sizeof info_x25519 - 1);
  memcpy(info + sizeof info_x25519 - 1, h.ephemeral, 32);
  memcpy(info + sizeof info_x25519 - 1 + 32, rpk, 32);
  hkdf32(h.salt, shared, 32, info, sizeof info_x25519 - 1 + 64, ck);
  rc = decrypt_body(ck, ct, &h, out, out_len, err);
done:
  teex_wipe(shared, sizeof shared);
  teex_wipe(ck, sizeof ck);
  return rc;
}
