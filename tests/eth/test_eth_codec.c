/* Unit tests of the eth codecs: RLP against the official Ethereum test
 * vectors, ABI encoding/decoding (known answers, hostile inputs),
 * transactions (the EIP-155 example), EIP-712 (the specification's Mail
 * example), keystores, u256 arithmetic and revert data. */
#include "testutil.h"

#include "teex/abi.h"
#include "teex/crypto.h"
#include "teex/eip712.h"
#include "teex/eth_rpc.h"
#include "teex/eth_tx.h"
#include "teex/keystore.h"
#include "teex/rlp.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static char *hex_of(const uint8_t *p, size_t n) {
  char *s = malloc(2 * n + 1);
  assert_non_null(s);
  teex_hex_encode(p, n, s);
  return s;
}

static size_t unhex(const char *s, uint8_t *out, size_t max) {
  size_t n = 0;
  assert_int_equal(teex_hex_decode(s, out, max, &n), 0);
  return n;
}

static json_t *load_vectors(const char *name) {
  char path[1024];
  json_error_t je;
  snprintf(path, sizeof path, "%s/tests/eth/%s", tu_source_dir(), name);
  json_t *j = json_load_file(path, JSON_ALLOW_NUL, &je);
  if (!j)
    fail_msg("cannot load %s: %s", path, je.text);
  return j;
}

/* Decimal string to minimal big-endian bytes (any size). */
static size_t dec_to_be(const char *s, uint8_t *out, size_t cap) {
  memset(out, 0, cap);
  for (; *s; s++) {
    unsigned carry = (unsigned)(*s - '0');
    for (size_t i = cap; i-- > 0;) {
      unsigned v = out[i] * 10u + carry;
      out[i] = (uint8_t)v;
      carry = v >> 8;
    }
  }
  size_t i = 0;
  while (i < cap && out[i] == 0)
    i++;
  memmove(out, out + i, cap - i);
  return cap - i;
}

/* Encodes a test-vector "in" value the way the vectors define it. */
static void rlp_from_json(struct teex_buf *b, json_t *in) {
  if (json_is_array(in)) {
    size_t m, i;
    json_t *e;
    teex_rlp_list_begin(b, &m);
    json_array_foreach(in, i, e) rlp_from_json(b, e);
    assert_int_equal(teex_rlp_list_end(b, m), 0);
  } else if (json_is_integer(in)) {
    assert_int_equal(teex_rlp_put_u64(b, (uint64_t)json_integer_value(in)), 0);
  } else {
    const char *s = json_string_value(in);
    uint8_t big[64];
    assert_non_null(s);
    if (s[0] == '#') {
      size_t n = dec_to_be(s + 1, big, sizeof big);
      assert_int_equal(teex_rlp_put_bytes(b, big, n), 0);
    } else {
      assert_int_equal(teex_rlp_put_bytes(b, s, json_string_length(in)), 0);
    }
  }
}

/* Walks a decoded item, checking it re-encodes to the same bytes. */
static void rlp_reencode(struct teex_buf *b, const struct teex_rlp_item *it,
                         int depth) {
  assert_true(depth < TEEX_RLP_MAX_DEPTH);
  if (!it->is_list) {
    assert_int_equal(teex_rlp_put_bytes(b, it->data, it->len), 0);
    return;
  }
  size_t m, pos = 0;
  struct teex_rlp_item c;
  int rc;
  teex_rlp_list_begin(b, &m);
  while ((rc = teex_rlp_next(it, &pos, &c)) == 1)
    rlp_reencode(b, &c, depth + 1);
  assert_int_equal(rc, 0);
  assert_int_equal(teex_rlp_list_end(b, m), 0);
}

static void test_rlp_official_vectors(void **state) {
  (void)state;
  json_t *v = load_vectors("rlptest.json");
  const char *name;
  json_t *tc;
  int count = 0;
  json_object_foreach(v, name, tc) {
    struct teex_buf b, b2;
    struct teex_rlp_item it;
    const char *want = json_string_value(json_object_get(tc, "out")) + 2;
    teex_buf_init(&b, 1 << 20, 0);
    teex_buf_init(&b2, 1 << 20, 0);
    rlp_from_json(&b, json_object_get(tc, "in"));
    char *got = hex_of(b.data, b.len);
    if (strcmp(got, want) != 0)
      fail_msg("rlp vector %s: got %s want %s", name, got, want);
    /* Decoding is strict and round-trips. */
    assert_int_equal(teex_rlp_decode_all(b.data, b.len, &it), 0);
    rlp_reencode(&b2, &it, 0);
    assert_int_equal(b2.len, b.len);
    assert_memory_equal(b2.data, b.data, b.len);
    free(got);
    teex_buf_free(&b);
    teex_buf_free(&b2);
    count++;
  }
  assert_true(count >= 28);
  json_decref(v);
}

/* Fully decodes every nested item; returns the first error. */
static int rlp_walk(const struct teex_rlp_item *it, int depth) {
  if (!it->is_list)
    return 0;
  if (depth > TEEX_RLP_MAX_DEPTH)
    return TEEX_ETOOBIG;
  size_t pos = 0;
  struct teex_rlp_item c;
  int rc;
  while ((rc = teex_rlp_next(it, &pos, &c)) == 1)
    if ((rc = rlp_walk(&c, depth + 1)) != 0)
      return rc;
  return rc;
}

static void test_rlp_invalid_vectors(void **state) {
  (void)state;
  json_t *v = load_vectors("invalidRLPTest.json");
  const char *name;
  json_t *tc;
  json_object_foreach(v, name, tc) {
    uint8_t buf[256];
    size_t n =
        unhex(json_string_value(json_object_get(tc, "out")), buf, sizeof buf);
    struct teex_rlp_item it;
    int rc = teex_rlp_decode_all(buf, n, &it);
    if (rc == 0)
      rc = rlp_walk(&it, 0);
    if (rc == 0)
      fail_msg("invalid rlp vector %s was accepted", name);
  }
  json_decref(v);
  /* Integers with leading zeros are rejected. */
  struct teex_rlp_item it;
  uint64_t x;
  const uint8_t lz[] = {0x82, 0x00, 0x01};
  assert_int_equal(teex_rlp_decode_all(lz, sizeof lz, &it), 0);
  assert_int_equal(teex_rlp_to_u64(&it, &x), TEEX_EFORMAT);
  /* A length far past the input. */
  const uint8_t lie[] = {0xbb, 0x7f, 0xff, 0xff, 0xff, 0x00};
  assert_int_equal(teex_rlp_decode_all(lie, sizeof lie, &it), TEEX_ETRUNC);
}

/* ---- ABI ---- */

static void encode_hex(const char *type, const char *json_val, char **out) {
  struct teex_abi_type *t = NULL;
  struct teex_abi_value v;
  struct teex_err e = {0};
  struct teex_buf b;
  json_t *j = json_loads(json_val, JSON_DECODE_ANY, NULL);
  assert_non_null(j);
  assert_int_equal(teex_abi_type_parse(type, &t, &e), 0);
  if (teex_abi_value_from_json(t, j, &v, &e) != 0)
    fail_msg("%s", e.msg);
  teex_buf_init(&b, 1 << 20, 0);
  if (teex_abi_encode(t, &v, &b, &e) != 0)
    fail_msg("%s", e.msg);
  *out = hex_of(b.data, b.len);
  /* Decoding the encoding gives back the same value. */
  struct teex_abi_value d;
  assert_int_equal(teex_abi_decode(t, b.data, b.len, &d, &e), 0);
  json_t *back = teex_abi_value_to_json(t, &d);
  struct teex_abi_value v2;
  assert_int_equal(teex_abi_value_from_json(t, back, &v2, &e), 0);
  struct teex_buf b2;
  teex_buf_init(&b2, 1 << 20, 0);
  assert_int_equal(teex_abi_encode(t, &v2, &b2, &e), 0);
  assert_int_equal(b2.len, b.len);
  assert_memory_equal(b2.data, b.data, b.len);
  teex_buf_free(&b2);
  teex_abi_value_clear(&v2);
  json_decref(back);
  teex_abi_value_clear(&d);
  teex_buf_free(&b);
  teex_abi_value_clear(&v);
  teex_abi_type_free(t);
  json_decref(j);
}

static void test_abi_known_answers(void **state) {
  (void)state;
  uint8_t sel[4];
  char *h;
  struct teex_err e = {0};
  /* Well-known selectors. */
  assert_int_equal(teex_abi_selector("transfer(address,uint256)", sel, &e), 0);
  h = hex_of(sel, 4);
  assert_string_equal(h, "a9059cbb");
  free(h);
  assert_int_equal(teex_abi_selector("balanceOf(address)", sel, &e), 0);
  h = hex_of(sel, 4);
  assert_string_equal(h, "70a08231");
  free(h);
  /* Canonicalisation: uint is uint256. */
  assert_int_equal(teex_abi_selector("transfer(address,uint)", sel, &e), 0);
  h = hex_of(sel, 4);
  assert_string_equal(h, "a9059cbb");
  free(h);
  uint8_t topic[32];
  assert_int_equal(
      teex_abi_event_topic("Transfer(address,address,uint256)", topic, &e), 0);
  h = hex_of(topic, 32);
  assert_string_equal(
      h, "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef");
  free(h);
  /* Solidity documentation examples. */
  encode_hex("(uint32,bool)", "[69,true]", &h);
  assert_string_equal(
      h, "0000000000000000000000000000000000000000000000000000000000000045"
         "0000000000000000000000000000000000000000000000000000000000000001");
  free(h);
  encode_hex("(bytes,bool,uint256[])", "[\"0x646176650000\", true, [1,2,3]]",
             &h);
  /* sam(bytes,bool,uint256[]) with "dave" padded differently: check shape */
  assert_int_equal(strlen(h), 2 * 32 * 9);
  free(h);
  encode_hex("(uint256,uint32[],bytes10,bytes)",
             "[291, [1110, 1929], \"0x31323334353637383930\", "
             "\"0x48656c6c6f2c20776f726c6421\"]",
             &h);
  assert_string_equal(
      h, "0000000000000000000000000000000000000000000000000000000000000123"
         "0000000000000000000000000000000000000000000000000000000000000080"
         "3132333435363738393000000000000000000000000000000000000000000000"
         "00000000000000000000000000000000000000000000000000000000000000e0"
         "0000000000000000000000000000000000000000000000000000000000000002"
         "0000000000000000000000000000000000000000000000000000000000000456"
         "0000000000000000000000000000000000000000000000000000000000000789"
         "000000000000000000000000000000000000000000000000000000000000000d"
         "48656c6c6f2c20776f726c642100000000000000000000000000000000000000");
  free(h);
  encode_hex("(int8,int256)", "[-1, \"-2\"]", &h);
  assert_string_equal(
      h, "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
         "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffe");
  free(h);
}

static void test_abi_rejects(void **state) {
  (void)state;
  struct teex_abi_type *t = NULL;
  struct teex_abi_value v;
  struct teex_err e = {0};
  const char *bad_types[] = {"uint7", "uint264",  "bytes33",  "bytes0",
                             "int",   "(uint256", "uint256[", "uint256[0]",
                             "foo",   "(,)",      "uint08",   NULL};
  for (int i = 0; bad_types[i]; i++) {
    int rc = teex_abi_type_parse(bad_types[i], &t, &e);
    if (strcmp(bad_types[i], "int") == 0) {
      assert_int_equal(rc, 0); /* int is int256 */
      teex_abi_type_free(t);
      continue;
    }
    if (rc == 0)
      fail_msg("type %s accepted", bad_types[i]);
  }
  /* Out-of-range values are refused by the encoder. */
  json_t *j = json_loads("[256]", 0, NULL);
  assert_int_equal(teex_abi_type_parse("(uint8)", &t, &e), 0);
  assert_int_not_equal(teex_abi_value_from_json(t, j, &v, &e), 0);
  json_decref(j);
  teex_abi_type_free(t);

  /* Hostile decodes: lying offsets, lying lengths, huge counts. */
  uint8_t d[96] = {0};
  assert_int_equal(teex_abi_type_parse("(bytes)", &t, &e), 0);
  d[31] = 0x20;
  d[63] = 0xff; /* length 255 but only 32 bytes follow */
  assert_int_equal(teex_abi_decode(t, d, sizeof d, &v, &e), TEEX_ETRUNC);
  d[31] = 0xf0; /* offset past the end */
  assert_int_not_equal(teex_abi_decode(t, d, sizeof d, &v, &e), 0);
  memset(d, 0xff, 32); /* offset 2^256-1 */
  assert_int_not_equal(teex_abi_decode(t, d, sizeof d, &v, &e), 0);
  teex_abi_type_free(t);
  assert_int_equal(teex_abi_type_parse("(uint256[])", &t, &e), 0);
  memset(d, 0, sizeof d);
  d[31] = 0x20;
  d[60] = 0x7f; /* count 2^31 */
  assert_int_not_equal(teex_abi_decode(t, d, sizeof d, &v, &e), 0);
  d[60] = 0;
  d[63] = 3; /* count 3, room for 1 */
  assert_int_equal(teex_abi_decode(t, d, sizeof d, &v, &e), TEEX_ETRUNC);
  teex_abi_type_free(t);
  /* A huge static type over a few bytes fails before allocating. */
  assert_int_equal(teex_abi_type_parse("(uint256[65536][8])", &t, &e), 0);
  assert_int_equal(teex_abi_decode(t, d, sizeof d, &v, &e), TEEX_ETRUNC);
  teex_abi_type_free(t);
  assert_int_not_equal(teex_abi_type_parse("(uint256[65536][9])", &t, &e), 0);
  /* A bool of 2, an address with high bytes. */
  assert_int_equal(teex_abi_type_parse("(bool,address)", &t, &e), 0);
  uint8_t w[64] = {0};
  w[31] = 2;
  assert_int_equal(teex_abi_decode(t, w, sizeof w, &v, &e), TEEX_EFORMAT);
  w[31] = 1;
  w[32] = 1;
  assert_int_equal(teex_abi_decode(t, w, sizeof w, &v, &e), TEEX_EFORMAT);
  w[32] = 0;
  assert_int_equal(teex_abi_decode(t, w, sizeof w, &v, &e), 0);
  teex_abi_value_clear(&v);
  teex_abi_type_free(t);

  /* Aliased offsets multiply the output: the budget stops it. Type
   * bytes[][]: one outer array of N offsets all pointing at one inner array
   * of N offsets all pointing at one large bytes value. */
  size_t n = 200, big = 8000;
  size_t len = 32 + 32 + 32 * n + 32 + 32 * n + 32 + big;
  uint8_t *p = calloc(1, len);
  assert_non_null(p);
  size_t inner = 64 + 32 * n, bytes_at = inner + 32 + 32 * n;
#define PUT(at, val)                                                           \
  do {                                                                         \
    uint64_t x_ = (val);                                                       \
    for (int k_ = 0; k_ < 8; k_++)                                             \
      p[(at) + 31 - k_] = (uint8_t)(x_ >> (8 * k_));                           \
  } while (0)
  PUT(0, 32);
  PUT(32, n);
  for (size_t i = 0; i < n; i++)
    PUT(64 + 32 * i, inner - 64);
  PUT(inner, n);
  for (size_t i = 0; i < n; i++)
    PUT(inner + 32 + 32 * i, bytes_at - inner - 32);
  PUT(bytes_at, big);
  assert_int_equal(teex_abi_type_parse("(bytes[][])", &t, &e), 0);
  assert_int_equal(teex_abi_decode(t, p, len, &v, &e), TEEX_ETOOBIG);
  teex_abi_type_free(t);
  free(p);
#undef PUT
}

static void test_abi_log_and_revert(void **state) {
  (void)state;
  uint8_t topics[3][32] = {{0}}, data[32] = {0};
  struct teex_abi_value v;
  struct teex_err e = {0};
  assert_int_equal(
      teex_abi_event_topic("Transfer(address,address,uint256)", topics[0], &e),
      0);
  memset(topics[1] + 12, 0x11, 20);
  memset(topics[2] + 12, 0x22, 20);
  data[31] = 42;
  assert_int_equal(teex_abi_log_decode("Transfer(address,address,uint256)", 3,
                                       (const uint8_t(*)[32])topics, 3, data,
                                       32, &v, &e),
                   0);
  uint64_t x;
  uint8_t a[20];
  assert_int_equal(teex_abi_get_u64(&v.items[2], &x), 0);
  assert_int_equal(x, 42);
  assert_int_equal(teex_abi_get_address(&v.items[1], a), 0);
  assert_int_equal(a[0], 0x22);
  teex_abi_value_clear(&v);
  /* Wrong topic count. */
  assert_int_not_equal(teex_abi_log_decode("Transfer(address,address,uint256)",
                                           3, (const uint8_t(*)[32])topics, 2,
                                           data, 32, &v, &e),
                       0);

  char msg[256];
  uint8_t rd[4 + 96];
  size_t n =
      unhex("08c379a0"
            "0000000000000000000000000000000000000000000000000000000000000020"
            "0000000000000000000000000000000000000000000000000000000000000009"
            "6e6f74206f776e65720000000000000000000000000000000000000000000000",
            rd, sizeof rd);
  assert_int_equal(teex_abi_revert_describe(rd, n, NULL, msg, sizeof msg),
                   TEEX_REVERT_ERROR);
  assert_string_equal(msg, "reverted: \"not owner\"");
  n = unhex("4e487b71"
            "0000000000000000000000000000000000000000000000000000000000000011",
            rd, sizeof rd);
  assert_int_equal(teex_abi_revert_describe(rd, n, NULL, msg, sizeof msg),
                   TEEX_REVERT_PANIC);
  assert_string_equal(msg, "panic 0x11: arithmetic overflow or underflow");
  /* A custom error, matched by its signature. */
  uint8_t sel[4];
  assert_int_equal(teex_abi_selector("Unauthorized(address)", sel, &e), 0);
  memcpy(rd, sel, 4);
  memset(rd + 4, 0, 32);
  memset(rd + 4 + 12, 0xab, 20);
  const char *const sigs[] = {"Other()", "Unauthorized(address)", NULL};
  assert_int_equal(teex_abi_revert_describe(rd, 36, sigs, msg, sizeof msg),
                   TEEX_REVERT_CUSTOM);
  assert_non_null(strstr(msg, "Unauthorized(0x"));
  assert_int_equal(teex_abi_revert_describe(rd, 36, NULL, msg, sizeof msg),
                   TEEX_REVERT_CUSTOM);
  assert_non_null(strstr(msg, "custom error 0x"));
  assert_int_equal(teex_abi_revert_describe(rd, 0, NULL, msg, sizeof msg),
                   TEEX_REVERT_NONE);
}

/* ---- transactions ---- */

static void test_tx_eip155_example(void **state) {
  (void)state;
  /* The example in EIP-155 itself. */
  struct teex_eth_tx tx = {0}, back;
  uint8_t sk[32], h[32], from[20], pub[64], addr[20];
  struct teex_err e = {0};
  struct teex_buf raw;
  memset(sk, 0x46, 32);
  tx.type = TEEX_ETH_TX_LEGACY;
  tx.chain_id = 1;
  tx.nonce = 9;
  teex_u256_from_u64(tx.gas_price, 20000000000ull);
  tx.gas_limit = 21000;
  tx.has_to = 1;
  memset(tx.to, 0x35, 20);
  teex_u256_from_u64(tx.value, 1000000000000000000ull);
  assert_int_equal(teex_eth_tx_signing_hash(&tx, h, &e), 0);
  char *hx = hex_of(h, 32);
  assert_string_equal(
      hx, "daf5a779ae972f972197303d7b574746c7ef83eadac0f2791ad23db92e4c8e53");
  free(hx);
  teex_buf_init(&raw, TEEX_ETH_TX_MAX, 0);
  assert_int_equal(teex_eth_tx_sign(&tx, sk, &raw, h, &e), 0);
  hx = hex_of(raw.data, raw.len);
  assert_string_equal(
      hx, "f86c098504a817c800825208943535353535353535353535353535353535353535"
          "880de0b6b3a76400008025a028ef61340bd939bc2195fe537567866003e1a15d3c"
          "71ff63e1590620aa636276a067cbe9d8997f761aecb703304b3800ccf555c9f3dc"
          "64214b297fb1966a3b6d83");
  free(hx);
  /* Decoding recovers the sender and the fields. */
  assert_int_equal(teex_eth_tx_decode(raw.data, raw.len, &back, from, &e), 0);
  assert_int_equal(teex_secp256k1_public(sk, pub), 0);
  teex_eth_address(pub, addr);
  assert_memory_equal(from, addr, 20);
  assert_int_equal(back.nonce, 9);
  assert_int_equal(back.chain_id, 1);
  /* A flipped byte in the signature changes the sender or is rejected. */
  raw.data[raw.len - 5] ^= 1;
  int rc = teex_eth_tx_decode(raw.data, raw.len, &back, from, &e);
  assert_true(rc != 0 || memcmp(from, addr, 20) != 0);
  teex_buf_free(&raw);
  /* 1559 round trip. */
  tx.type = TEEX_ETH_TX_1559;
  teex_u256_from_u64(tx.max_fee, 30000000000ull);
  teex_u256_from_u64(tx.max_priority_fee, 1000000000ull);
  uint8_t data[3] = {1, 2, 3};
  tx.data = data;
  tx.data_len = 3;
  teex_buf_init(&raw, TEEX_ETH_TX_MAX, 0);
  assert_int_equal(teex_eth_tx_sign(&tx, sk, &raw, h, &e), 0);
  assert_int_equal(raw.data[0], 2);
  assert_int_equal(teex_eth_tx_decode(raw.data, raw.len, &back, from, &e), 0);
  assert_memory_equal(from, addr, 20);
  assert_int_equal(back.data_len, 3);
  assert_int_equal(teex_u256_cmp(back.max_fee, tx.max_fee), 0);
  teex_buf_free(&raw);
  /* Zero chain id is refused. */
  tx.chain_id = 0;
  assert_int_equal(teex_eth_tx_signing_hash(&tx, h, &e), TEEX_EINVAL);
}

/* ---- EIP-712 ---- */

static const char *mail_json =
    "{\"types\":{\"EIP712Domain\":[{\"name\":\"name\",\"type\":\"string\"},"
    "{\"name\":\"version\",\"type\":\"string\"},{\"name\":\"chainId\","
    "\"type\":\"uint256\"},{\"name\":\"verifyingContract\",\"type\":"
    "\"address\"}],\"Person\":[{\"name\":\"name\",\"type\":\"string\"},"
    "{\"name\":\"wallet\",\"type\":\"address\"}],\"Mail\":[{\"name\":"
    "\"from\",\"type\":\"Person\"},{\"name\":\"to\",\"type\":\"Person\"},"
    "{\"name\":\"contents\",\"type\":\"string\"}]},\"primaryType\":\"Mail\","
    "\"domain\":{\"name\":\"Ether Mail\",\"version\":\"1\",\"chainId\":1,"
    "\"verifyingContract\":\"0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC\"},"
    "\"message\":{\"from\":{\"name\":\"Cow\",\"wallet\":"
    "\"0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826\"},\"to\":{\"name\":"
    "\"Bob\",\"wallet\":\"0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB\"},"
    "\"contents\":\"Hello, Bob!\"}}";

static void test_eip712_spec_example(void **state) {
  (void)state;
  uint8_t ds[32], mh[32], digest[32], sk[32], sig[65], addr[20];
  struct teex_err e = {0};
  char enc[512], *hx;
  assert_int_equal(
      teex_eip712_encode_type(mail_json, "Mail", enc, sizeof enc, &e), 0);
  assert_string_equal(enc, "Mail(Person from,Person to,string contents)"
                           "Person(string name,address wallet)");
  if (teex_eip712_hash_parts(mail_json, ds, mh, &e) != 0)
    fail_msg("%s", e.msg);
  hx = hex_of(ds, 32);
  assert_string_equal(
      hx, "f2cee375fa42b42143804025fc449deafd50cc031ca257e0b194a650a912090f");
  free(hx);
  hx = hex_of(mh, 32);
  assert_string_equal(
      hx, "c52c0ee5d84264471806290a3f2c4cecfc5490626bf912d01f240d7a274b371e");
  free(hx);
  assert_int_equal(teex_eip712_hash(mail_json, digest, &e), 0);
  hx = hex_of(digest, 32);
  assert_string_equal(
      hx, "be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2");
  free(hx);
  /* The specification's signature with the key keccak256("cow"). */
  teex_keccak256("cow", 3, sk);
  assert_int_equal(teex_eip712_sign(sk, digest, sig), 0);
  hx = hex_of(sig, 65);
  assert_string_equal(
      hx, "4355c47d63924e8a72e509b65029052eb6c299d53a04e167c5775fd466751c9d"
          "07299936d304c153f6443dfa05f40ff007d72911b6f72307f996231605b91562"
          "1c");
  free(hx);
  assert_int_equal(teex_eip712_recover(digest, sig, addr), 0);
  char ah[43];
  teex_eth_address_hex(addr, ah);
  assert_string_equal(ah, "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826");
  /* A missing field is a clear error. */
  char *broken = strdup(mail_json);
  char *c = strstr(broken, "\"contents\":\"Hello");
  memcpy(c, "\"contentz\"", 10);
  assert_int_equal(teex_eip712_hash(broken, digest, &e), TEEX_EFORMAT);
  assert_non_null(strstr(e.msg, "contents"));
  free(broken);
}

/* ---- keystore ---- */

static void test_keystore_roundtrip(void **state) {
  (void)state;
  uint8_t sk[32], back[32], addr[20], pub[64], want[20];
  struct teex_keystore_params p = {1024, 8, 1};
  struct teex_err e = {0};
  char *json = NULL;
  memset(sk, 0x42, 32);
  assert_int_equal(teex_keystore_encrypt(sk, "hunter2", &p, &json, &e), 0);
  /* The file never holds the key in clear. */
  assert_int_equal(
      tu_buf_contains_any_encoding((uint8_t *)json, strlen(json), sk, 32), 0);
  assert_int_equal(teex_keystore_decrypt(json, "hunter2", back, addr, &e), 0);
  assert_memory_equal(back, sk, 32);
  teex_secp256k1_public(sk, pub);
  teex_eth_address(pub, want);
  assert_memory_equal(addr, want, 20);
  assert_int_equal(teex_keystore_decrypt(json, "hunter3", back, addr, &e),
                   TEEX_EAUTH);
  free(json);
  /* The Web3 Secret Storage specification's PBKDF2 test vector. */
  const char *v =
      "{\"crypto\":{\"cipher\":\"aes-128-ctr\",\"cipherparams\":{\"iv\":"
      "\"6087dab2f9fdbbfaddc31a909735c1e6\"},\"ciphertext\":"
      "\"5318b4d5bcd28de64ee5559e671353e16f075ecae9f99c7a79a38af5f869aa46\","
      "\"kdf\":\"pbkdf2\",\"kdfparams\":{\"c\":262144,\"dklen\":32,\"prf\":"
      "\"hmac-sha256\",\"salt\":"
      "\"ae3cd4e7013836a3df6bd7241b12db061dbe2c6785853cce422d148a624ce0bd\"},"
      "\"mac\":"
      "\"517ead924a9d0dc3124507e3393d175ce3ff7c1e96529c6c555ce9e51205e9b2\"},"
      "\"id\":\"3198bc9c-6672-5ab3-d995-4942343ae5b6\",\"version\":3}";
  assert_int_equal(teex_keystore_decrypt(v, "testpassword", back, NULL, &e), 0);
  char *hx = hex_of(back, 32);
  assert_string_equal(
      hx, "7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d");
  free(hx);
  /* The specification's scrypt vector (N = 2^18, r = 1, p = 8). */
  const char *vs =
      "{\"crypto\":{\"cipher\":\"aes-128-ctr\",\"cipherparams\":{\"iv\":"
      "\"83dbcc02d8ccb40e466191a123791e0e\"},\"ciphertext\":"
      "\"d172bf743a674da9cdad04534d56926ef8358534d458fffccd4e6ad2fbde479c\","
      "\"kdf\":\"scrypt\",\"kdfparams\":{\"dklen\":32,\"n\":262144,\"p\":8,"
      "\"r\":1,\"salt\":"
      "\"ab0c7876052600dd703518d6fc3fe8984592145b591fc8fb5c6d43190334ba19\"},"
      "\"mac\":"
      "\"2103ac29920d71da29f15d75b4a16dbe95cfd7ff8faea1056c33131d846e3097\"},"
      "\"id\":\"3198bc9c-6672-5ab3-d995-4942343ae5b6\",\"version\":3}";
  if (teex_keystore_decrypt(vs, "testpassword", back, NULL, &e) != 0)
    fail_msg("%s", e.msg);
  hx = hex_of(back, 32);
  assert_string_equal(
      hx, "7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d");
  free(hx);
  /* Absurd scrypt parameters are refused before any work. */
  const char *huge =
      "{\"crypto\":{\"cipher\":\"aes-128-ctr\",\"cipherparams\":{\"iv\":"
      "\"6087dab2f9fdbbfaddc31a909735c1e6\"},\"ciphertext\":"
      "\"5318b4d5bcd28de64ee5559e671353e16f075ecae9f99c7a79a38af5f869aa46\","
      "\"kdf\":\"scrypt\",\"kdfparams\":{\"n\":1099511627776,\"r\":8,\"p\":1,"
      "\"dklen\":32,\"salt\":\"00\"},\"mac\":"
      "\"517ead924a9d0dc3124507e3393d175ce3ff7c1e96529c6c555ce9e51205e9b2\"},"
      "\"version\":3}";
  assert_int_equal(teex_keystore_decrypt(huge, "x", back, NULL, &e),
                   TEEX_ETOOBIG);
}

/* ---- u256 ---- */

static void test_u256(void **state) {
  (void)state;
  teex_u256 a, b;
  char s[TEEX_U256_DEC_MAX], q[67], eth[81];
  assert_int_equal(
      teex_u256_parse("115792089237316195423570985008687907853269984665640564"
                      "039457584007913129639935",
                      a),
      0);
  teex_u256_format_dec(a, s);
  assert_string_equal(s, "115792089237316195423570985008687907853269984665640"
                         "564039457584007913129639935");
  assert_int_equal(teex_u256_parse("115792089237316195423570985008687907853269"
                                   "984665640564039457584007913129639936",
                                   a),
                   TEEX_ETOOBIG);
  assert_int_equal(teex_u256_parse("12a", a), TEEX_EINVAL);
  assert_int_equal(teex_u256_parse_quantity("0x01", a), TEEX_EFORMAT);
  assert_int_equal(teex_u256_parse_quantity("0x", a), TEEX_EFORMAT);
  assert_int_equal(teex_u256_parse_quantity("0x3e8", a), 0);
  teex_u256_format_hex(a, q);
  assert_string_equal(q, "0x3e8");
  teex_u256_from_u64(b, 0);
  teex_u256_format_hex(b, q);
  assert_string_equal(q, "0x0");
  assert_int_equal(teex_u256_parse("1500000000000000000", a), 0);
  teex_u256_format_ether(a, eth);
  assert_string_equal(eth, "1.5");
  assert_int_equal(teex_u256_mul_u64(b, a, 3000000000ull), 0);
  teex_u256_format_dec(b, s);
  assert_string_equal(s, "4500000000000000000000000000");
}

/* anvil quotes custom-error arguments as text in the message, so a zero
 * byte arrives as \u0000: the response must still parse, with the revert
 * data intact (it once failed as "not JSON"). */
static void test_rpc_error_with_nul(void **state) {
  (void)state;
  static const char body[] =
      "{\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"code\":3,"
      "\"message\":\"execution reverted: custom error 0x12345678: "
      "\\u0000\\u0000\\u0001\",\"data\":\"0x12345678"
      "0000000000000000000000000000000000000000000000000000000000000001\"}}";
  json_t *result = NULL;
  struct teex_eth_rpc_error rerr;
  struct teex_err err;
  int rc = teex_eth_rpc_parse_response(body, sizeof body - 1, 7, &result, &rerr,
                                       &err);
  assert_int_equal(rc, TEEX_EREMOTE);
  assert_true(rerr.present);
  assert_int_equal(rerr.code, 3);
  assert_true(rerr.has_data);
  assert_int_equal(rerr.data_len, 36);
  assert_int_equal(rerr.data[0], 0x12);
  assert_int_equal(rerr.data[35], 0x01);
  assert_null(result);
}

int main(void) {
  teex_crypto_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rlp_official_vectors),
      cmocka_unit_test(test_rpc_error_with_nul),
      cmocka_unit_test(test_rlp_invalid_vectors),
      cmocka_unit_test(test_abi_known_answers),
      cmocka_unit_test(test_abi_rejects),
      cmocka_unit_test(test_abi_log_and_revert),
      cmocka_unit_test(test_tx_eip155_example),
      cmocka_unit_test(test_eip712_spec_example),
      cmocka_unit_test(test_keystore_roundtrip),
      cmocka_unit_test(test_u256),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
