/* Known-answer tests of the crypto module, from official vectors:
 * Keccak-256 (Ethereum), SHA-256 (FIPS 180), HKDF (RFC 5869), ChaCha20-Poly1305
 * (RFC 8439 §2.8.2), Ed25519 (RFC 8032 §7.1), X25519 (RFC 7748 §6.1),
 * secp256k1 keys to Ethereum addresses and EIP-55 checksums (EIP-55). */
#include "testutil.h"

#include "teex/crypto.h"
#include "teex/error.h"

#include <sodium.h>
#include <string.h>

static void unhex(const char *h, uint8_t *out, size_t n) {
  size_t got;
  assert_int_equal(teex_hex_decode(h, out, n, &got), 0);
  assert_int_equal(got, n);
}

static void assert_hex(const uint8_t *p, size_t n, const char *want) {
  char *got = malloc(2 * n + 1);
  teex_hex_encode(p, n, got);
  assert_string_equal(got, want);
  free(got);
}

static void test_keccak256(void **state) {
  (void)state;
  uint8_t h[32];
  teex_keccak256("", 0, h);
  assert_hex(
      h, 32,
      "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");
  teex_keccak256("abc", 3, h);
  assert_hex(
      h, 32,
      "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45");
  const char *fox = "The quick brown fox jumps over the lazy dog";
  teex_keccak256(fox, strlen(fox), h);
  assert_hex(
      h, 32,
      "4d741b6f1eb29cb2a9b9911c82f56fa8d73b04959d3d9d222895df6c0b28aa15");
  /* Function selector of transfer(address,uint256) is a9059cbb. */
  teex_keccak256("transfer(address,uint256)", 25, h);
  assert_hex(h, 4, "a9059cbb");
  /* Incremental absorption in odd pieces across block boundaries equals
   * one-shot, for every length up to 3 blocks. */
  uint8_t buf[3 * 136 + 7];
  for (size_t i = 0; i < sizeof buf; i++)
    buf[i] = (uint8_t)(i * 31 + 7);
  for (size_t len = 0; len <= sizeof buf; len += 1) {
    uint8_t one[32], inc[32];
    teex_keccak256(buf, len, one);
    struct teex_keccak_ctx c;
    teex_keccak256_init(&c);
    size_t off = 0, step = 1;
    while (off < len) {
      size_t k = step < len - off ? step : len - off;
      teex_keccak256_update(&c, buf + off, k);
      off += k;
      step = step * 3 % 17 + 1;
    }
    teex_keccak256_final(&c, inc);
    assert_memory_equal(one, inc, 32);
  }
}

static void test_sha(void **state) {
  (void)state;
  uint8_t h[64];
  teex_sha256("abc", 3, h);
  assert_hex(
      h, 32,
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  struct teex_sha256_ctx c;
  teex_sha256_init(&c);
  teex_sha256_update(&c, "a", 1);
  teex_sha256_update(&c, "bc", 2);
  teex_sha256_final(&c, h);
  assert_hex(
      h, 32,
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  teex_sha512("abc", 3, h);
  assert_hex(h, 8, "ddaf35a193617aba");
  /* RFC 4231 test case 2. */
  teex_hmac_sha256((const uint8_t *)"Jefe", 4, "what do ya want for nothing?",
                   28, h);
  assert_hex(
      h, 32,
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

static void test_hkdf_rfc5869(void **state) {
  (void)state;
  uint8_t ikm[22], salt[13], info[10], okm[42];
  memset(ikm, 0x0b, sizeof ikm);
  for (int i = 0; i < 13; i++)
    salt[i] = (uint8_t)i;
  for (int i = 0; i < 10; i++)
    info[i] = (uint8_t)(0xf0 + i);
  /* Test case 1. */
  assert_int_equal(teex_hkdf_sha256(salt, sizeof salt, ikm, sizeof ikm, info,
                                    sizeof info, okm, 42),
                   0);
  assert_hex(okm, 42,
             "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
             "34007208d5b887185865");
  /* Test case 3: no salt, no info. */
  assert_int_equal(teex_hkdf_sha256(NULL, 0, ikm, sizeof ikm, NULL, 0, okm, 42),
                   0);
  assert_hex(okm, 42,
             "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
             "9d201395faa4b61a96c8");
  assert_int_equal(teex_hkdf_sha256(NULL, 0, ikm, 22, NULL, 0, okm, 0),
                   TEEX_EINVAL);
}

static void test_aead_rfc8439(void **state) {
  (void)state;
  uint8_t key[32], nonce[12], aad[12];
  unhex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f", key,
        32);
  unhex("070000004041424344454647", nonce, 12);
  unhex("50515253c0c1c2c3c4c5c6c7", aad, 12);
  const char *pt = "Ladies and Gentlemen of the class of '99: If I could offer "
                   "you only one tip for the future, sunscreen would be it.";
  size_t n = strlen(pt);
  assert_int_equal(n, 114);
  uint8_t ct[114 + 16], back[114];
  assert_int_equal(teex_aead_encrypt(key, nonce, aad, 12, pt, n, ct), 0);
  assert_hex(ct, 16, "d31a8d34648e60db7b86afbc53ef7ec2");
  assert_hex(ct + n, 16, "1ae10b594f09e26a7e902ecbd0600691");
  assert_int_equal(teex_aead_decrypt(key, nonce, aad, 12, ct, sizeof ct, back),
                   0);
  assert_memory_equal(back, pt, n);
  /* Every single-bit flip of ciphertext, tag or AAD is refused. */
  for (size_t i = 0; i < sizeof ct; i++) {
    ct[i] ^= 0x01;
    assert_int_equal(
        teex_aead_decrypt(key, nonce, aad, 12, ct, sizeof ct, back),
        TEEX_EAUTH);
    ct[i] ^= 0x01;
  }
  aad[0] ^= 0x80;
  assert_int_equal(teex_aead_decrypt(key, nonce, aad, 12, ct, sizeof ct, back),
                   TEEX_EAUTH);
  assert_int_equal(teex_aead_decrypt(key, nonce, aad, 12, ct, 15, back),
                   TEEX_ETRUNC);
}

static void test_xaead_seal(void **state) {
  (void)state;
  uint8_t key[32];
  teex_random(key, sizeof key);
  const char *msg = "sealed message";
  uint8_t sealed[14 + TEEX_XAEAD_OVERHEAD], sealed2[sizeof sealed], out[14];
  assert_int_equal(teex_xaead_seal(key, "ad", 2, msg, 14, sealed), 0);
  assert_int_equal(teex_xaead_seal(key, "ad", 2, msg, 14, sealed2), 0);
  /* Fresh random nonces: two seals of the same message differ. */
  assert_memory_not_equal(sealed, sealed2, sizeof sealed);
  assert_int_equal(teex_xaead_open(key, "ad", 2, sealed, sizeof sealed, out),
                   0);
  assert_memory_equal(out, msg, 14);
  assert_int_equal(teex_xaead_open(key, "AD", 2, sealed, sizeof sealed, out),
                   TEEX_EAUTH);
  sealed[3] ^= 1; /* the nonce is authenticated too */
  assert_int_equal(teex_xaead_open(key, "ad", 2, sealed, sizeof sealed, out),
                   TEEX_EAUTH);
  assert_int_equal(teex_xaead_open(key, "ad", 2, sealed, 39, out), TEEX_ETRUNC);
}

/* XChaCha20-Poly1305 is composed from HChaCha20 and OpenSSL's
 * ChaCha20-Poly1305; it must agree byte for byte with libsodium's own
 * implementation of the construction, in both directions. */
static void test_xaead_matches_libsodium(void **state) {
  (void)state;
  static uint8_t pt[5000], ours[5016], theirs[5016], back[5000];
  uint8_t key[32], nonce[24], ad[40];
  for (size_t len = 0; len < sizeof pt; len = len * 2 + 1) {
    teex_random(key, 32);
    teex_random(nonce, 24);
    teex_random(ad, sizeof ad);
    teex_random(pt, len);
    assert_int_equal(
        teex_xaead_encrypt(key, nonce, ad, len % 41, pt, len, ours), 0);
    unsigned long long clen;
    crypto_aead_xchacha20poly1305_ietf_encrypt(theirs, &clen, pt, len, ad,
                                               len % 41, NULL, nonce, key);
    assert_int_equal(clen, len + 16);
    assert_memory_equal(ours, theirs, len + 16);
    assert_int_equal(
        teex_xaead_decrypt(key, nonce, ad, len % 41, theirs, len + 16, back),
        0);
    assert_memory_equal(back, pt, len);
    /* In place: plaintext and ciphertext share the buffer. */
    memcpy(ours, pt, len);
    assert_int_equal(
        teex_xaead_encrypt(key, nonce, ad, len % 41, ours, len, ours), 0);
    assert_memory_equal(ours, theirs, len + 16);
  }
}

static void test_ed25519_rfc8032(void **state) {
  (void)state;
  uint8_t seed[32], pk[32], sk[64], sig[64];
  unhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        seed, 32);
  assert_int_equal(teex_ed25519_seed_keypair(seed, pk, sk), 0);
  assert_hex(
      pk, 32,
      "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
  assert_int_equal(teex_ed25519_sign(sk, "", 0, sig), 0);
  assert_hex(
      sig, 64,
      "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
      "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
  assert_int_equal(teex_ed25519_verify(pk, "", 0, sig), 0);
  sig[10] ^= 4;
  assert_int_equal(teex_ed25519_verify(pk, "", 0, sig), TEEX_EBADSIG);
}

static void test_x25519_rfc7748(void **state) {
  (void)state;
  uint8_t ask[32], bsk[32], apk[32], bpk[32], s1[32], s2[32];
  unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", ask,
        32);
  unhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb", bsk,
        32);
  assert_int_equal(teex_x25519_public(ask, apk), 0);
  assert_hex(
      apk, 32,
      "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
  assert_int_equal(teex_x25519_public(bsk, bpk), 0);
  assert_hex(
      bpk, 32,
      "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
  assert_int_equal(teex_x25519(s1, ask, bpk), 0);
  assert_int_equal(teex_x25519(s2, bsk, apk), 0);
  assert_memory_equal(s1, s2, 32);
  assert_hex(
      s1, 32,
      "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
  uint8_t zero[32] = {0};
  assert_int_equal(teex_x25519(s1, ask, zero), TEEX_ECRYPTO);
}

static void test_secp256k1_eth(void **state) {
  (void)state;
  uint8_t sk[32], pub[64], addr[20];
  char hex[43];
  /* Private key 1: the generator point's address. */
  memset(sk, 0, 32);
  sk[31] = 1;
  assert_int_equal(teex_secp256k1_public(sk, pub), 0);
  assert_hex(
      pub, 32,
      "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798");
  teex_eth_address(pub, addr);
  teex_eth_address_hex(addr, hex);
  assert_string_equal(hex, "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf");
  /* The first account of the standard "test ... junk" development mnemonic. */
  unhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80", sk,
        32);
  assert_int_equal(teex_secp256k1_public(sk, pub), 0);
  teex_eth_address(pub, addr);
  teex_eth_address_hex(addr, hex);
  assert_string_equal(hex, "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");

  /* Sign, recover; v forms; tampering; high-s malleation refused. */
  uint8_t digest[32], sig[65], rec[20];
  teex_keccak256("teex", 4, digest);
  assert_int_equal(teex_secp256k1_sign(sk, digest, sig), 0);
  assert_true(sig[64] <= 1);
  assert_int_equal(teex_eth_recover_address(digest, sig, rec), 0);
  assert_memory_equal(rec, addr, 20);
  uint8_t sig27[65];
  memcpy(sig27, sig, 65);
  sig27[64] = (uint8_t)(sig[64] + 27);
  assert_int_equal(teex_eth_recover_address(digest, sig27, rec), 0);
  assert_memory_equal(rec, addr, 20);
  uint8_t again[65];
  assert_int_equal(teex_secp256k1_sign(sk, digest, again), 0);
  assert_memory_equal(sig, again, 65); /* RFC 6979: deterministic */
  digest[0] ^= 1;
  int rc = teex_eth_recover_address(digest, sig, rec);
  assert_true(rc != 0 || memcmp(rec, addr, 20) != 0);
  digest[0] ^= 1;
  /* s' = n - s with flipped v recovers the same key but must be refused. */
  static const uint8_t n[32] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE,
                                0xBA, 0xAE, 0xDC, 0xE6, 0xAF, 0x48, 0xA0, 0x3B,
                                0xBF, 0xD2, 0x5E, 0x8C, 0xD0, 0x36, 0x41, 0x41};
  uint8_t mal[65];
  memcpy(mal, sig, 65);
  int borrow = 0;
  for (int i = 31; i >= 0; i--) {
    int d = n[i] - sig[32 + i] - borrow;
    borrow = d < 0;
    mal[32 + i] = (uint8_t)(d + (borrow ? 256 : 0));
  }
  mal[64] = sig[64] ^ 1;
  assert_int_equal(teex_eth_recover_address(digest, mal, rec), TEEX_EBADSIG);
  sig[64] = 5;
  assert_int_equal(teex_eth_recover_address(digest, sig, rec), TEEX_EBADSIG);
  /* Invalid scalars. */
  memset(sk, 0, 32);
  assert_int_equal(teex_secp256k1_public(sk, pub), TEEX_EINVAL);
  memcpy(sk, n, 32);
  assert_int_equal(teex_secp256k1_public(sk, pub), TEEX_EINVAL);
  /* A fresh key pair round-trips through SEC1 parsing. */
  uint8_t sec1[65], parsed[64];
  assert_int_equal(teex_secp256k1_keypair(sk, pub), 0);
  sec1[0] = 4;
  memcpy(sec1 + 1, pub, 64);
  assert_int_equal(teex_secp256k1_parse_public(sec1, 65, parsed), 0);
  assert_memory_equal(parsed, pub, 64);
  sec1[0] = 5;
  assert_int_equal(teex_secp256k1_parse_public(sec1, 65, parsed), TEEX_EINVAL);
}

static void test_eip55(void **state) {
  (void)state;
  const char *good[] = {"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
                        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
                        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
                        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb"};
  for (size_t i = 0; i < 4; i++) {
    uint8_t addr[20];
    char back[43];
    assert_int_equal(teex_eth_address_parse(good[i], addr), 0);
    teex_eth_address_hex(addr, back);
    assert_string_equal(back, good[i]);
  }
  uint8_t addr[20];
  /* One case changed: bad checksum. All lower case: accepted (no checksum). */
  assert_int_equal(teex_eth_address_parse(
                       "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD", addr),
                   TEEX_EINVAL);
  assert_int_equal(teex_eth_address_parse(
                       "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", addr),
                   0);
  assert_int_equal(teex_eth_address_parse("0x5aaeb6053f", addr), TEEX_EINVAL);
  assert_int_equal(teex_eth_address_parse(
                       "5aaeb6053f3e94c9b9a09f33669435e7ef1beaed00", addr),
                   TEEX_EINVAL);
}

static void test_encodings(void **state) {
  (void)state;
  uint8_t out[16];
  size_t n;
  assert_int_equal(teex_hex_decode("0xDEADbeef", out, sizeof out, &n), 0);
  assert_int_equal(n, 4);
  assert_hex(out, 4, "deadbeef");
  assert_int_equal(teex_hex_decode("abc", out, sizeof out, &n), TEEX_EINVAL);
  assert_int_equal(teex_hex_decode("zz", out, sizeof out, &n), TEEX_EINVAL);
  assert_int_equal(teex_hex_decode("00112233", out, 3, &n), TEEX_ETOOBIG);
  char b64[32];
  assert_int_equal(teex_base64_len(5), 9);
  teex_base64_encode("hello", 5, b64);
  assert_string_equal(b64, "aGVsbG8=");
  assert_int_equal(teex_base64_decode("aGVsbG8=", out, sizeof out, &n), 0);
  assert_int_equal(n, 5);
  assert_memory_equal(out, "hello", 5);
  assert_int_equal(teex_base64_decode("aGVs!G8=", out, sizeof out, &n),
                   TEEX_EINVAL);
}

int main(void) {
  assert_int_equal(teex_crypto_init(), 0);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_keccak256),
      cmocka_unit_test(test_sha),
      cmocka_unit_test(test_hkdf_rfc5869),
      cmocka_unit_test(test_aead_rfc8439),
      cmocka_unit_test(test_xaead_seal),
      cmocka_unit_test(test_ed25519_rfc8032),
      cmocka_unit_test(test_x25519_rfc7748),
      cmocka_unit_test(test_secp256k1_eth),
      cmocka_unit_test(test_eip55),
      cmocka_unit_test(test_xaead_matches_libsodium),
      cmocka_unit_test(test_encodings),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
