/* Hashes, HKDF, AEAD, Ed25519/X25519, randomness and encodings
 * (see include/teex/crypto.h). libsodium does the work; OpenSSL provides
 * HKDF; nettle provides the Keccak permutation (keccak.c). */
#include "teex/crypto.h"

#include "teex/error.h"
#include "teex/mem.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <sodium.h>
#include <string.h>

_Static_assert(sizeof(crypto_hash_sha256_state) <=
                   sizeof(struct teex_sha256_ctx),
               "teex_sha256_ctx too small");

int teex_crypto_secp256k1_init(void); /* secp256k1.c */

int teex_crypto_init(void) {
  if (sodium_init() < 0)
    return TEEX_ECRYPTO;
  return teex_crypto_secp256k1_init();
}

/* ---- hashes ---- */

void teex_sha256_init(struct teex_sha256_ctx *c) {
  crypto_hash_sha256_init((crypto_hash_sha256_state *)c->opaque);
}

void teex_sha256_update(struct teex_sha256_ctx *c, const void *p, size_t n) {
  crypto_hash_sha256_update((crypto_hash_sha256_state *)c->opaque, p, n);
}

void teex_sha256_final(struct teex_sha256_ctx *c, uint8_t out[32]) {
  crypto_hash_sha256_final((crypto_hash_sha256_state *)c->opaque, out);
  teex_wipe(c, sizeof *c);
}

void teex_sha256(const void *p, size_t n, uint8_t out[32]) {
  crypto_hash_sha256(out, p, n);
}

void teex_sha512(const void *p, size_t n, uint8_t out[64]) {
  crypto_hash_sha512(out, p, n);
}

void teex_hmac_sha256(const uint8_t *key, size_t key_len, const void *msg,
                      size_t msg_len, uint8_t out[32]) {
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, key, key_len);
  crypto_auth_hmacsha256_update(&st, msg, msg_len);
  crypto_auth_hmacsha256_final(&st, out);
  teex_wipe(&st, sizeof st);
}

int teex_hkdf_sha256(const uint8_t *salt, size_t salt_len, const uint8_t *ikm,
                     size_t ikm_len, const uint8_t *info, size_t info_len,
                     uint8_t *out, size_t out_len) {
  if (out_len == 0 || out_len > 255 * 32 || (ikm == NULL && ikm_len > 0))
    return TEEX_EINVAL;
  EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
  if (kdf == NULL)
    return TEEX_ECRYPTO;
  EVP_KDF_CTX *kctx = EVP_KDF_CTX_new(kdf);
  EVP_KDF_free(kdf);
  if (kctx == NULL)
    return TEEX_ECRYPTO;
  static const uint8_t empty[1] = {0};
  OSSL_PARAM params[5];
  int i = 0;
  params[i++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                                 (char *)"SHA256", 0);
  params[i++] = OSSL_PARAM_construct_octet_string(
      OSSL_KDF_PARAM_KEY, (void *)(ikm_len ? ikm : empty), ikm_len);
  if (salt != NULL && salt_len > 0)
    params[i++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
                                                    (void *)salt, salt_len);
  params[i++] = OSSL_PARAM_construct_octet_string(
      OSSL_KDF_PARAM_INFO, (void *)(info_len ? info : empty), info_len);
  params[i] = OSSL_PARAM_construct_end();
  int ok = EVP_KDF_derive(kctx, out, out_len, params) == 1;
  EVP_KDF_CTX_free(kctx);
  if (!ok) {
    teex_wipe(out, out_len);
    return TEEX_ECRYPTO;
  }
  return 0;
}

/* ---- AEAD ---- */

int teex_aead_encrypt(const uint8_t key[32], const uint8_t nonce[12],
                      const void *ad, size_t ad_len, const void *pt,
                      size_t pt_len, uint8_t *out) {
  unsigned long long clen;
  if (crypto_aead_chacha20poly1305_ietf_encrypt(out, &clen, pt, pt_len, ad,
                                                ad_len, NULL, nonce, key) != 0)
    return TEEX_ECRYPTO;
  return 0;
}

int teex_aead_decrypt(const uint8_t key[32], const uint8_t nonce[12],
                      const void *ad, size_t ad_len, const uint8_t *ct,
                      size_t ct_len, uint8_t *out) {
  if (ct_len < TEEX_AEAD_TAG_LEN)
    return TEEX_ETRUNC;
  unsigned long long mlen;
  if (crypto_aead_chacha20poly1305_ietf_decrypt(out, &mlen, NULL, ct, ct_len,
                                                ad, ad_len, nonce, key) != 0) {
    if (out != ct)
      teex_wipe(out, ct_len - TEEX_AEAD_TAG_LEN);
    return TEEX_EAUTH;
  }
  return 0;
}

int teex_xaead_encrypt(const uint8_t key[32], const uint8_t nonce[24],
                       const void *ad, size_t ad_len, const void *pt,
                       size_t pt_len, uint8_t *out) {
  unsigned long long clen;
  if (crypto_aead_xchacha20poly1305_ietf_encrypt(out, &clen, pt, pt_len, ad,
                                                 ad_len, NULL, nonce, key) != 0)
    return TEEX_ECRYPTO;
  return 0;
}

int teex_xaead_decrypt(const uint8_t key[32], const uint8_t nonce[24],
                       const void *ad, size_t ad_len, const uint8_t *ct,
                       size_t ct_len, uint8_t *out) {
  if (ct_len < TEEX_AEAD_TAG_LEN)
    return TEEX_ETRUNC;
  unsigned long long mlen;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, &mlen, NULL, ct, ct_len,
                                                 ad, ad_len, nonce, key) != 0) {
    if (out != ct)
      teex_wipe(out, ct_len - TEEX_AEAD_TAG_LEN);
    return TEEX_EAUTH;
  }
  return 0;
}

int teex_xaead_seal(const uint8_t key[32], const void *ad, size_t ad_len,
                    const void *pt, size_t pt_len, uint8_t *out) {
  randombytes_buf(out, TEEX_XAEAD_NONCE_LEN);
  return teex_xaead_encrypt(key, out, ad, ad_len, pt, pt_len,
                            out + TEEX_XAEAD_NONCE_LEN);
}

int teex_xaead_open(const uint8_t key[32], const void *ad, size_t ad_len,
                    const uint8_t *sealed, size_t sealed_len, uint8_t *out) {
  if (sealed_len < TEEX_XAEAD_OVERHEAD)
    return TEEX_ETRUNC;
  return teex_xaead_decrypt(key, sealed, ad, ad_len,
                            sealed + TEEX_XAEAD_NONCE_LEN,
                            sealed_len - TEEX_XAEAD_NONCE_LEN, out);
}

/* ---- Ed25519, X25519 ---- */

int teex_ed25519_keypair(uint8_t pk[32], uint8_t sk[64]) {
  return crypto_sign_keypair(pk, sk) == 0 ? 0 : TEEX_ECRYPTO;
}

int teex_ed25519_seed_keypair(const uint8_t seed[32], uint8_t pk[32],
                              uint8_t sk[64]) {
  return crypto_sign_seed_keypair(pk, sk, seed) == 0 ? 0 : TEEX_ECRYPTO;
}

int teex_ed25519_sign(const uint8_t sk[64], const void *msg, size_t msg_len,
                      uint8_t sig[64]) {
  return crypto_sign_detached(sig, NULL, msg, msg_len, sk) == 0 ? 0
                                                                : TEEX_ECRYPTO;
}

int teex_ed25519_verify(const uint8_t pk[32], const void *msg, size_t msg_len,
                        const uint8_t sig[64]) {
  return crypto_sign_verify_detached(sig, msg, msg_len, pk) == 0 ? 0
                                                                 : TEEX_EBADSIG;
}

int teex_x25519_keypair(uint8_t pk[32], uint8_t sk[32]) {
  randombytes_buf(sk, 32);
  return crypto_scalarmult_base(pk, sk) == 0 ? 0 : TEEX_ECRYPTO;
}

int teex_x25519_public(const uint8_t sk[32], uint8_t pk[32]) {
  return crypto_scalarmult_base(pk, sk) == 0 ? 0 : TEEX_ECRYPTO;
}

int teex_x25519(uint8_t shared[32], const uint8_t sk[32],
                const uint8_t peer_pk[32]) {
  /* libsodium fails when the result is all zeros (a low-order peer key). */
  if (crypto_scalarmult(shared, sk, peer_pk) != 0) {
    teex_wipe(shared, 32);
    return TEEX_ECRYPTO;
  }
  return 0;
}

/* ---- randomness and encodings ---- */

void teex_random(void *p, size_t n) {
  randombytes_buf(p, n);
}

void teex_hex_encode(const void *p, size_t n, char *out) {
  sodium_bin2hex(out, 2 * n + 1, p, n);
}

int teex_hex_decode(const char *s, uint8_t *out, size_t max, size_t *out_len) {
  if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
    s += 2;
  size_t n = strlen(s);
  if (n % 2 != 0)
    return TEEX_EINVAL;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
          (c >= 'A' && c <= 'F')))
      return TEEX_EINVAL;
  }
  if (n / 2 > max)
    return TEEX_ETOOBIG;
  size_t bin_len = 0;
  if (sodium_hex2bin(out, max, s, n, NULL, &bin_len, NULL) != 0 ||
      bin_len != n / 2)
    return TEEX_EINVAL;
  if (out_len)
    *out_len = bin_len;
  return 0;
}

size_t teex_base64_len(size_t n) {
  return sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL);
}

void teex_base64_encode(const void *p, size_t n, char *out) {
  sodium_bin2base64(out, teex_base64_len(n), p, n,
                    sodium_base64_VARIANT_ORIGINAL);
}

int teex_base64_decode(const char *s, uint8_t *out, size_t max,
                       size_t *out_len) {
  size_t n = strlen(s);
  if (n / 4 * 3 > max + 2)
    return TEEX_ETOOBIG;
  size_t bin_len = 0;
  const char *end = NULL;
  if (sodium_base642bin(out, max, s, n, NULL, &bin_len, &end,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != s + n)
    return TEEX_EINVAL;
  if (out_len)
    *out_len = bin_len;
  return 0;
}
