/* secp256k1 recoverable signatures and Ethereum addresses, on
 * libsecp256k1 (with its recovery module). */
#include "teex/crypto.h"

#include "teex/error.h"
#include "teex/mem.h"

#include <pthread.h>
#include <secp256k1.h>
#include <secp256k1_recovery.h>
#include <sodium.h>
#include <string.h>

static secp256k1_context *ctx;
static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;

static void ctx_create(void) {
  secp256k1_context *c = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
  if (c == NULL)
    return;
  /* Blinding against side channels in signing and key generation. */
  uint8_t seed[32];
  randombytes_buf(seed, sizeof seed);
  if (!secp256k1_context_randomize(c, seed)) {
    secp256k1_context_destroy(c);
    c = NULL;
  }
  teex_wipe(seed, sizeof seed);
  ctx = c;
}

int teex_crypto_secp256k1_init(void);
int teex_crypto_secp256k1_init(void) {
  pthread_once(&ctx_once, ctx_create);
  return ctx ? 0 : TEEX_ECRYPTO;
}

static secp256k1_context *get_ctx(void) {
  pthread_once(&ctx_once, ctx_create);
  return ctx;
}

static void serialize_pub(const secp256k1_pubkey *pk, uint8_t pub[64]) {
  uint8_t ser[65];
  size_t len = sizeof ser;
  secp256k1_ec_pubkey_serialize(get_ctx(), ser, &len, pk,
                                SECP256K1_EC_UNCOMPRESSED);
  memcpy(pub, ser + 1, 64);
}

int teex_secp256k1_public(const uint8_t sk[32], uint8_t pub[64]) {
  secp256k1_context *c = get_ctx();
  secp256k1_pubkey pk;
  if (c == NULL)
    return TEEX_ECRYPTO;
  if (!secp256k1_ec_seckey_verify(c, sk) ||
      !secp256k1_ec_pubkey_create(c, &pk, sk))
    return TEEX_EINVAL;
  serialize_pub(&pk, pub);
  return 0;
}

int teex_secp256k1_keypair(uint8_t sk[32], uint8_t pub[64]) {
  secp256k1_context *c = get_ctx();
  if (c == NULL)
    return TEEX_ECRYPTO;
  for (int tries = 0; tries < 16; tries++) {
    randombytes_buf(sk, 32);
    if (secp256k1_ec_seckey_verify(c, sk))
      return teex_secp256k1_public(sk, pub);
  }
  teex_wipe(sk, 32);
  return TEEX_ECRYPTO;
}

int teex_secp256k1_sign(const uint8_t sk[32], const uint8_t digest[32],
                        uint8_t sig[65]) {
  secp256k1_context *c = get_ctx();
  secp256k1_ecdsa_recoverable_signature rs;
  int recid = 0;
  if (c == NULL)
    return TEEX_ECRYPTO;
  /* RFC 6979 nonces (the default); libsecp256k1 always produces low-s. */
  if (!secp256k1_ecdsa_sign_recoverable(c, &rs, digest, sk, NULL, NULL))
    return TEEX_EINVAL;
  secp256k1_ecdsa_recoverable_signature_serialize_compact(c, sig, &recid, &rs);
  sig[64] = (uint8_t)recid;
  return 0;
}

int teex_secp256k1_recover(const uint8_t digest[32], const uint8_t sig[65],
                           uint8_t pub[64]) {
  secp256k1_context *c = get_ctx();
  if (c == NULL)
    return TEEX_ECRYPTO;
  int v = sig[64];
  if (v == 27 || v == 28)
    v -= 27;
  if (v != 0 && v != 1)
    return TEEX_EBADSIG;
  secp256k1_ecdsa_recoverable_signature rs;
  if (!secp256k1_ecdsa_recoverable_signature_parse_compact(c, &rs, sig, v))
    return TEEX_EBADSIG;
  /* Reject high-s: Ethereum (EIP-2) and the contracts accept only low-s, so a
   * malleated copy of a signature must not count as a second signature. */
  secp256k1_ecdsa_signature plain, norm;
  secp256k1_ecdsa_recoverable_signature_convert(c, &plain, &rs);
  if (secp256k1_ecdsa_signature_normalize(c, &norm, &plain))
    return TEEX_EBADSIG;
  secp256k1_pubkey pk;
  if (!secp256k1_ecdsa_recover(c, &pk, &rs, digest))
    return TEEX_EBADSIG;
  serialize_pub(&pk, pub);
  return 0;
}

int teex_secp256k1_parse_public(const uint8_t *sec1, size_t len,
                                uint8_t pub[64]) {
  secp256k1_context *c = get_ctx();
  secp256k1_pubkey pk;
  if (c == NULL)
    return TEEX_ECRYPTO;
  if ((len != 33 && len != 65) || !secp256k1_ec_pubkey_parse(c, &pk, sec1, len))
    return TEEX_EINVAL;
  serialize_pub(&pk, pub);
  return 0;
}

void teex_eth_address(const uint8_t pub[64], uint8_t addr[20]) {
  uint8_t h[32];
  teex_keccak256(pub, 64, h);
  memcpy(addr, h + 12, 20);
}

int teex_eth_recover_address(const uint8_t digest[32], const uint8_t sig[65],
                             uint8_t addr[20]) {
  uint8_t pub[64];
  int rc = teex_secp256k1_recover(digest, sig, pub);
  if (rc != 0)
    return rc;
  teex_eth_address(pub, addr);
  return 0;
}

void teex_eth_address_hex(const uint8_t addr[20], char out[43]) {
  char lower[41];
  teex_hex_encode(addr, 20, lower);
  uint8_t h[32];
  teex_keccak256(lower, 40, h);
  out[0] = '0';
  out[1] = 'x';
  for (int i = 0; i < 40; i++) {
    char ch = lower[i];
    int nibble = (h[i / 2] >> (i % 2 ? 0 : 4)) & 15;
    if (ch >= 'a' && nibble >= 8)
      ch = (char)(ch - 'a' + 'A');
    out[2 + i] = ch;
  }
  out[42] = '\0';
}

int teex_eth_address_parse(const char *s, uint8_t addr[20]) {
  if (s == NULL || s[0] != '0' || (s[1] != 'x' && s[1] != 'X') ||
      strlen(s) != 42)
    return TEEX_EINVAL;
  size_t n;
  if (teex_hex_decode(s + 2, addr, 20, &n) != 0 || n != 20)
    return TEEX_EINVAL;
  int has_lower = 0, has_upper = 0;
  for (int i = 2; i < 42; i++) {
    has_lower |= s[i] >= 'a' && s[i] <= 'f';
    has_upper |= s[i] >= 'A' && s[i] <= 'F';
  }
  if (has_lower && has_upper) {
    char check[43];
    teex_eth_address_hex(addr, check);
    if (strcmp(check + 2, s + 2) != 0)
      return TEEX_EINVAL; /* EIP-55 checksum mismatch: likely a typo */
  }
  return 0;
}
