/* Hashes, HKDF, AEAD, Ed25519/X25519, randomness and encodings
 * (see include/teex/crypto.h). libsodium does most of the work; OpenSSL
 * provides HKDF and the ChaCha20-Poly1305 bulk cipher; nettle provides the
 * Keccak permutation (keccak.c). */
#include "teex/crypto.h"

#include "teex/error.h"
#include "teex/mem.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <pthread.h>
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
  /* OpenSSL's EVP uses the CPU's SHA extensions: 4-5x libsodium's SHA-256
   * here (docs/performance.md, ipfs). */
  if (EVP_Digest(p, n, out, NULL, EVP_sha256(), NULL) != 1)
    crypto_hash_sha256(out, p, n);
}

void teex_sha512(const void *p, size_t n, uint8_t out[64]) {
  crypto_hash_sha512(out, p, n);
}

void teex_hmac_sha256(const uint8_t *key, size_t key_len, const void *msg,
                      size_t msg_len, uint8_t out[32]) {
  /* OpenSSL's SHA-256 uses the CPU's SHA extensions (4-5x libsodium's). */
  unsigned int len = 32;
  static const uint8_t empty[1] = {0};
  if (HMAC(EVP_sha256(), key_len ? key : empty, (int)key_len,
           msg_len ? msg : empty, msg_len, out, &len) != NULL &&
      len == 32)
    return;
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

/* ---- AEAD ----
 * ChaCha20-Poly1305 runs on OpenSSL's EVP implementation, which is about
 * three times faster here than libsodium's (bench/bench_aead.c).
 * XChaCha20-Poly1305 is the standard composition (draft-irtf-cfrg-xchacha):
 * subkey = HChaCha20(key, nonce[0..16]) from libsodium, then
 * ChaCha20-Poly1305 with nonce 0^4 || nonce[16..24]; its output is identical
 * to libsodium's crypto_aead_xchacha20poly1305_ietf (tests check that). */

#define AEAD_UPDATE_MAX (1 << 30) /* EVP lengths are int */

/* One context per thread, set up for the cipher once; later calls only
 * load key and nonce (as `openssl speed` does), which is what keeps small
 * messages fast. */
static pthread_key_t aead_key;
static pthread_once_t aead_once = PTHREAD_ONCE_INIT;

/* Frees a thread's context when the thread exits (EVP_CIPHER_CTX_free
 * wipes the key schedule it holds). */
static void aead_ctx_destroy(void *p) {
  EVP_CIPHER_CTX_free(p);
}

static void aead_key_create(void) {
  (void)pthread_key_create(&aead_key, aead_ctx_destroy);
}

static EVP_CIPHER_CTX *aead_ctx(const EVP_CIPHER **cipher) {
  pthread_once(&aead_once, aead_key_create);
  EVP_CIPHER_CTX *ctx = pthread_getspecific(aead_key);
  if (ctx == NULL) {
    ctx = EVP_CIPHER_CTX_new();
    if (ctx != NULL && pthread_setspecific(aead_key, ctx) != 0) {
      EVP_CIPHER_CTX_free(ctx);
      ctx = NULL;
    }
    *cipher = EVP_chacha20_poly1305();
  } else {
    *cipher = NULL;
  }
  return ctx;
}

static int evp_update(EVP_CIPHER_CTX *c, int enc, uint8_t *out,
                      const uint8_t *in, size_t n) {
  while (n > 0) {
    int chunk = n > AEAD_UPDATE_MAX ? AEAD_UPDATE_MAX : (int)n, len = 0;
    int ok = enc ? EVP_EncryptUpdate(c, out, &len, in, chunk)
                 : EVP_DecryptUpdate(c, out, &len, in, chunk);
    if (ok != 1 || (out != NULL && len != chunk))
      return -1;
    if (out != NULL)
      out += chunk;
    in += chunk;
    n -= (size_t)chunk;
  }
  return 0;
}

int teex_aead_encrypt(const uint8_t key[32], const uint8_t nonce[12],
                      const void *ad, size_t ad_len, const void *pt,
                      size_t pt_len, uint8_t *out) {
  const EVP_CIPHER *cipher;
  EVP_CIPHER_CTX *c = aead_ctx(&cipher);
  int len = 0;
  if (c == NULL || EVP_EncryptInit_ex(c, cipher, NULL, key, nonce) != 1 ||
      (ad_len > 0 && evp_update(c, 1, NULL, ad, ad_len) != 0) ||
      evp_update(c, 1, out, pt, pt_len) != 0 ||
      EVP_EncryptFinal_ex(c, out + pt_len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, TEEX_AEAD_TAG_LEN,
                          out + pt_len) != 1)
    return TEEX_ECRYPTO;
  return 0;
}

int teex_aead_decrypt(const uint8_t key[32], const uint8_t nonce[12],
                      const void *ad, size_t ad_len, const uint8_t *ct,
                      size_t ct_len, uint8_t *out) {
  if (ct_len < TEEX_AEAD_TAG_LEN)
    return TEEX_ETRUNC;
  size_t pt_len = ct_len - TEEX_AEAD_TAG_LEN;
  uint8_t tag[TEEX_AEAD_TAG_LEN];
  memcpy(tag, ct + pt_len, sizeof tag); /* before an in-place decrypt */
  const EVP_CIPHER *cipher;
  EVP_CIPHER_CTX *c = aead_ctx(&cipher);
  int len = 0;
  if (c == NULL || EVP_DecryptInit_ex(c, cipher, NULL, key, nonce) != 1)
    return TEEX_ECRYPTO;
  if ((ad_len > 0 && evp_update(c, 0, NULL, ad, ad_len) != 0) ||
      evp_update(c, 0, out, ct, pt_len) != 0 ||
      EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, TEEX_AEAD_TAG_LEN, tag) !=
          1 ||
      EVP_DecryptFinal_ex(c, out + pt_len, &len) != 1) {
    /* Never hand out plaintext of a forgery. */
    teex_wipe(out, pt_len);
    return TEEX_EAUTH;
  }
  return 0;
}

static void xchacha_subkey(const uint8_t key[32], const uint8_t nonce[24],
                           uint8_t subkey[32], uint8_t nonce12[12]) {
  crypto_core_hchacha20(subkey, nonce, key, NULL);
  memset(nonce12, 0, 4);
  memcpy(nonce12 + 4, nonce + 16, 8);
}

int teex_xaead_encrypt(const uint8_t key[32], const uint8_t nonce[24],
                       const void *ad, size_t ad_len, const void *pt,
                       size_t pt_len, uint8_t *out) {
  uint8_t subkey[32], n12[12];
  xchacha_subkey(key, nonce, subkey, n12);
  int rc = teex_aead_encrypt(subkey, n12, ad, ad_len, pt, pt_len, out);
  teex_wipe(subkey, sizeof subkey);
  return rc;
}

int teex_xaead_decrypt(const uint8_t key[32], const uint8_t nonce[24],
                       const void *ad, size_t ad_len, const uint8_t *ct,
                       size_t ct_len, uint8_t *out) {
  uint8_t subkey[32], n12[12];
  xchacha_subkey(key, nonce, subkey, n12);
  int rc = teex_aead_decrypt(subkey, n12, ad, ad_len, ct, ct_len, out);
  teex_wipe(subkey, sizeof subkey);
  return rc;
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
