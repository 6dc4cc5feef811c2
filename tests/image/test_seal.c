/* Encrypted images: round trips in both modes, and refusal (TEEX_EAUTH) of
 * every tampered, truncated, extended, reordered or re-headed ciphertext. */
#include "testutil.h"

#include "teex/crypto.h"
#include "teex/image.h"

#include <string.h>

static uint8_t *pattern(size_t n) {
  uint8_t *p = malloc(n ? n : 1);
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)(i * 131 + (i >> 8));
  return p;
}

static int setup(void **state) {
  (void)state;
  return teex_crypto_init();
}

static void test_round_trip_sizes(void **state) {
  (void)state;
  const size_t sizes[] = {0,     1,     1023,  TEEX_IMAGE_ENC_CHUNK - 1,
                          65536, 65537, 200000};
  uint8_t key[32];
  teex_random(key, sizeof key);
  uint8_t sk[32], pk[32];
  assert_int_equal(teex_x25519_keypair(pk, sk), 0);
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    uint8_t *pt = pattern(n), *ct, *back;
    size_t ctlen, blen;
    struct teex_err err;
    assert_int_equal(teex_image_encrypt(key, pt, n, &ct, &ctlen, &err), 0);
    assert_true(teex_image_is_encrypted(ct, ctlen));
    size_t chunks =
        n == 0 ? 1 : (n + TEEX_IMAGE_ENC_CHUNK - 1) / TEEX_IMAGE_ENC_CHUNK;
    assert_int_equal(ctlen, 56 + n + 16 * chunks);
    /* The plaintext does not appear in the ciphertext. */
    if (n >= 64)
      assert_false(tu_buf_contains_any_encoding(ct, ctlen, pt + 10, 32));
    assert_int_equal(teex_image_decrypt(key, ct, ctlen, &back, &blen, &err), 0);
    assert_int_equal(blen, n);
    if (n)
      assert_memory_equal(back, pt, n);
    teex_image_bytes_free(back, blen);
    /* Two encryptions of the same bytes differ (fresh salt). */
    uint8_t *ct2;
    size_t ct2len;
    assert_int_equal(teex_image_encrypt(key, pt, n, &ct2, &ct2len, &err), 0);
    assert_memory_not_equal(ct, ct2, 56);
    teex_image_bytes_free(ct2, ct2len);
    teex_image_bytes_free(ct, ctlen);

    /* Recipient mode. */
    assert_int_equal(teex_image_seal(pk, pt, n, &ct, &ctlen, &err), 0);
    assert_int_equal(ctlen, 88 + n + 16 * chunks);
    assert_int_equal(teex_image_open(sk, ct, ctlen, &back, &blen, &err), 0);
    assert_int_equal(blen, n);
    if (n)
      assert_memory_equal(back, pt, n);
    teex_image_bytes_free(back, blen);
    teex_image_bytes_free(ct, ctlen);
    free(pt);
  }
}

static void expect_auth_fail(const uint8_t key[32], const uint8_t *ct,
                             size_t len, const char *what) {
  uint8_t *out = (uint8_t *)1;
  size_t olen = 99;
  struct teex_err err;
  teex_err_clear(&err);
  int rc = teex_image_decrypt(key, ct, len, &out, &olen, &err);
  if (rc != TEEX_EAUTH)
    fail_msg("%s: rc %d (%s), want TEEX_EAUTH", what, rc, err.msg);
  assert_null(out);
  assert_int_equal(olen, 0);
}

static void test_tampering(void **state) {
  (void)state;
  size_t n = 3 * TEEX_IMAGE_ENC_CHUNK + 100; /* four chunks */
  uint8_t *pt = pattern(n), *ct, *c;
  size_t ctlen;
  uint8_t key[32];
  teex_random(key, sizeof key);
  struct teex_err err;
  assert_int_equal(teex_image_encrypt(key, pt, n, &ct, &ctlen, &err), 0);
  c = malloc(ctlen + 64);
  size_t hlen = 56, clen = TEEX_IMAGE_ENC_CHUNK + 16;

  /* Wrong key. */
  uint8_t other[32];
  memcpy(other, key, 32);
  other[31] ^= 0x80;
  expect_auth_fail(other, ct, ctlen, "wrong key");

  /* Every header byte after magic and version, each bit. */
  for (size_t i = 9; i < hlen; i++)
    for (int b = 0; b < 8; b++) {
      memcpy(c, ct, ctlen);
      c[i] ^= (uint8_t)(1u << b);
      uint8_t *out = NULL;
      size_t olen;
      int rc = teex_image_decrypt(key, c, ctlen, &out, &olen, &err);
      /* Flipping the mode byte may turn it into recipient mode: that is
       * refused as needing another key, never decrypted. */
      if (!(rc == TEEX_EAUTH || (i == 9 && rc == TEEX_EPERM)))
        fail_msg("header byte %zu bit %d: rc %d (%s)", i, b, rc, err.msg);
      assert_null(out);
    }
  /* Version byte: refused as unsupported. */
  memcpy(c, ct, ctlen);
  c[8] = 2;
  uint8_t *o;
  size_t ol;
  assert_int_equal(teex_image_decrypt(key, c, ctlen, &o, &ol, &err),
                   TEEX_EVERSION);
  /* Bytes in the body: first, middle of each chunk, each tag's last. */
  size_t spots[] = {hlen,
                    hlen + 1000,
                    hlen + clen - 1,
                    hlen + clen + 5,
                    hlen + 2 * clen + 7,
                    ctlen - 17,
                    ctlen - 1};
  for (size_t i = 0; i < sizeof spots / sizeof spots[0]; i++) {
    memcpy(c, ct, ctlen);
    c[spots[i]] ^= 0x01;
    expect_auth_fail(key, c, ctlen, "body bit flip");
  }
  /* Truncated: every cut at and around chunk boundaries, and one byte. */
  size_t cuts[] = {0,
                   8,
                   20,
                   hlen - 1,
                   hlen,
                   hlen + clen,
                   hlen + 2 * clen,
                   hlen + 3 * clen,
                   ctlen - 1};
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
    memcpy(c, ct, ctlen);
    uint8_t *out = NULL;
    size_t olen;
    int rc = teex_image_decrypt(key, c, cuts[i], &out, &olen, &err);
    if (cuts[i] < 8)
      assert_int_equal(rc, TEEX_EFORMAT); /* not even the magic */
    else if (rc != TEEX_EAUTH)
      fail_msg("cut at %zu: rc %d (%s)", cuts[i], rc, err.msg);
    assert_null(out);
  }
  /* Truncated at a chunk boundary with the header's length rewritten to
   * match: the last chunk kept is not flagged final, and the header
   * changed, so the tags fail. */
  memcpy(c, ct, ctlen);
  uint64_t shorter = 2 * TEEX_IMAGE_ENC_CHUNK;
  for (int i = 0; i < 8; i++)
    c[16 + i] = (uint8_t)(shorter >> (56 - 8 * i));
  expect_auth_fail(key, c, hlen + 2 * clen, "truncated and re-headed");
  /* Extended: a byte, and a duplicated chunk. */
  memcpy(c, ct, ctlen);
  c[ctlen] = 0;
  expect_auth_fail(key, c, ctlen + 1, "one byte appended");
  /* Reordered: swap chunks 0 and 1 (same length). */
  memcpy(c, ct, ctlen);
  memcpy(c + hlen, ct + hlen + clen, clen);
  memcpy(c + hlen + clen, ct + hlen, clen);
  expect_auth_fail(key, c, ctlen, "chunks 0 and 1 swapped");
  /* Duplicated: chunk 0 in place of chunk 1. */
  memcpy(c, ct, ctlen);
  memcpy(c + hlen + clen, ct + hlen, clen);
  expect_auth_fail(key, c, ctlen, "chunk 0 replayed as chunk 1");

  /* Re-headed: the header of another encryption of the same plaintext
   * under the same key on this body. */
  uint8_t *ct2;
  size_t ct2len;
  assert_int_equal(teex_image_encrypt(key, pt, n, &ct2, &ct2len, &err), 0);
  assert_int_equal(ct2len, ctlen);
  memcpy(c, ct, ctlen);
  memcpy(c, ct2, hlen);
  expect_auth_fail(key, c, ctlen, "header of another encryption");
  /* Spliced: chunk 2 from the other encryption. */
  memcpy(c, ct, ctlen);
  memcpy(c + hlen + 2 * clen, ct2 + hlen + 2 * clen, clen);
  expect_auth_fail(key, c, ctlen, "chunk from another encryption");
  teex_image_bytes_free(ct2, ct2len);

  /* The untouched ciphertext still decrypts (the test is not vacuous). */
  assert_int_equal(teex_image_decrypt(key, ct, ctlen, &o, &ol, &err), 0);
  assert_int_equal(ol, n);
  assert_memory_equal(o, pt, n);
  teex_image_bytes_free(o, ol);
  free(c);
  teex_image_bytes_free(ct, ctlen);
  free(pt);
}

static void test_recipient_refusals(void **state) {
  (void)state;
  uint8_t sk[32], pk[32], sk2[32], pk2[32];
  assert_int_equal(teex_x25519_keypair(pk, sk), 0);
  assert_int_equal(teex_x25519_keypair(pk2, sk2), 0);
  size_t n = 5000;
  uint8_t *pt = pattern(n), *ct, *o = NULL;
  size_t ctlen, ol;
  struct teex_err err;
  assert_int_equal(teex_image_seal(pk, pt, n, &ct, &ctlen, &err), 0);
  /* Another recipient's key. */
  assert_int_equal(teex_image_open(sk2, ct, ctlen, &o, &ol, &err), TEEX_EAUTH);
  assert_null(o);
  /* The ephemeral key replaced (another sender's key). */
  uint8_t *c = malloc(ctlen);
  memcpy(c, ct, ctlen);
  memcpy(c + 56, pk2, 32);
  assert_int_equal(teex_image_open(sk, c, ctlen, &o, &ol, &err), TEEX_EAUTH);
  /* A low-order ephemeral key (all zero). */
  memset(c + 56, 0, 32);
  assert_int_equal(teex_image_open(sk, c, ctlen, &o, &ol, &err), TEEX_EAUTH);
  free(c);
  /* Mode confusion: a recipient-mode file given to the symmetric decryptor
   * with the secret key as "image key", and the reverse. */
  assert_int_equal(teex_image_decrypt(sk, ct, ctlen, &o, &ol, &err),
                   TEEX_EPERM);
  uint8_t key[32];
  teex_random(key, sizeof key);
  uint8_t *ct2;
  size_t ct2len;
  assert_int_equal(teex_image_encrypt(key, pt, n, &ct2, &ct2len, &err), 0);
  assert_int_equal(teex_image_open(key, ct2, ct2len, &o, &ol, &err),
                   TEEX_EPERM);
  /* A low-order recipient key is refused when sealing. */
  uint8_t zero[32] = {0};
  uint8_t *ct3 = NULL;
  size_t ct3len;
  assert_int_equal(teex_image_seal(zero, pt, n, &ct3, &ct3len, &err),
                   TEEX_ECRYPTO);
  assert_null(ct3);
  teex_image_bytes_free(ct, ctlen);
  teex_image_bytes_free(ct2, ct2len);
  free(pt);
}

static void test_header_parse(void **state) {
  (void)state;
  uint8_t key[32] = {1};
  uint8_t *ct;
  size_t ctlen;
  struct teex_err err;
  uint8_t pt[10] = {0};
  assert_int_equal(teex_image_encrypt(key, pt, sizeof pt, &ct, &ctlen, &err),
                   0);
  struct teex_image_enc_header h;
  assert_int_equal(teex_image_enc_header_parse(ct, ctlen, &h, &err), 0);
  assert_int_equal(h.mode, TEEX_IMAGE_ENC_MODE_KEY);
  assert_int_equal(h.chunk_size, TEEX_IMAGE_ENC_CHUNK);
  assert_int_equal(h.plain_len, 10);
  assert_int_equal(h.header_len, 56);
  /* A plaintext length past the limit is refused before anything else. */
  uint8_t c[128];
  memcpy(c, ct, ctlen);
  c[16] = 0x7f;
  assert_int_equal(teex_image_enc_header_parse(c, ctlen, &h, &err),
                   TEEX_ETOOBIG);
  memcpy(c, ct, ctlen);
  c[12] = 0x10; /* chunk size of 256 MiB */
  assert_int_equal(teex_image_enc_header_parse(c, ctlen, &h, &err),
                   TEEX_EFORMAT);
  memcpy(c, ct, ctlen);
  c[9] = 7;
  assert_int_equal(teex_image_enc_header_parse(c, ctlen, &h, &err),
                   TEEX_EFORMAT);
  assert_int_equal(teex_image_enc_header_parse(ct, 30, &h, &err), TEEX_ETRUNC);
  assert_false(teex_image_is_encrypted((const uint8_t *)"TEEXIMG", 8));
  teex_image_bytes_free(ct, ctlen);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip_sizes),
      cmocka_unit_test(test_tampering),
      cmocka_unit_test(test_recipient_refusals),
      cmocka_unit_test(test_header_parse),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
