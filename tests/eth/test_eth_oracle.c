/* The eth codecs checked against an independent implementation: ethers v6
 * (pinned in tools/, used only as a test oracle) run by node. ABI encodings
 * of a spread of types and values, legacy and EIP-1559 signed transactions
 * and their hashes for fixed keys, EIP-712 digests (nested structs, arrays),
 * and keystores in both directions. */
#include "testutil.h"

#include "teex/abi.h"
#include "teex/crypto.h"
#include "teex/eip712.h"
#include "teex/eth_tx.h"
#include "teex/keystore.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static json_t *answer; /* the oracle's reply */
static json_t *request;

/* ---- the cases ---- */

static const char *abi_cases[][2] = {
    {"(uint8,uint256,int8,int256,bool)",
     "[255,\"115792089237316195423570985008687907853269984665640564039457584007"
     "913129639935\",-128,\"-57896044618658097711785492504343953926634992332820"
     "282019728792003956564819968\",false]"},
    {"(address,bytes1,bytes32,bytes4)",
     "[\"0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826\",\"0xff\",\"0x"
     "0102030405060708091011121314151617181920212223242526272829303132\","
     "\"0xdeadbeef\"]"},
    {"(bytes,string,bytes,string)",
     "[\"0x\",\"\","
     "\"0x00112233445566778899aabbccddeeff00112233445566778899aabbc"
     "cddeeff0011\",\"h\\u00e9llo w\\u00f6rld \\u2603 a string longer than "
     "thirty-two bytes\"]"},
    {"(uint256[],string[],address[3],bytes[2])",
     "[[1,2,3],[\"a\",\"bc\",\"\"],["
     "\"0x1111111111111111111111111111111111111111"
     "\",\"0x2222222222222222222222222222222222222222\","
     "\"0x33333333333333333333"
     "33333333333333333333\"],[\"0x01\",\"0x\"]]"},
    {"(uint64[2][],(uint256,bool)[2])",
     "[[[1,2],[3,4],[5,6]],[[7,true],[8,false]]]"},
    {"(address,(uint256,bytes32,string)[],(address,uint96),string)",
     "[\"0x9d8A62f656a8d1615C1294fd71e9CFb3E4855A4F\",[["
     "\"1000000000000000000\","
     "\"0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
     "\"first\"],[0,\"0x0000000000000000000000000000000000000000000000000000000"
     "000000000\",\"\"]],[\"0x0000000000000000000000000000000000000000\","
     "\"79228"
     "162514264337593543950335\"],\"tail\"]"},
    {"((address,uint256,uint256,bytes)[],bytes32,string)",
     "[[[\"0x1111111111111111111111111111111111111111\",10,20,\"0x"
     "0102\"],[\"0x2222222222222222222222222222222222222222\",30,40,\"0x\"]],"
     "\"0x1111111111111111111111111111111111111111111111111111111111111111\","
     "\"bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am\"]"},
    {"()", "[]"},
    {"(int16[],uint24,int40)",
     "[[-1,0,1,-32768,32767],16777215,-549755813888]"},
};
#define N_ABI (sizeof abi_cases / sizeof abi_cases[0])

struct tx_case {
  int type;
  uint64_t chain_id, nonce, gas;
  const char *fee, *tip, *to, *value, *data, *sk;
};
static const struct tx_case tx_cases[] = {
    {0, 1, 0, 21000, "1", NULL, "0x3535353535353535353535353535353535353535",
     "0", "0x",
     "0x0101010101010101010101010101010101010101010101010101010101010101"},
    {0, 31337, 127, 100000, "20000000000", NULL,
     "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB", "1000000000000000000",
     "0xa9059cbb00000000000000000000000011111111111111111111111111111111111111"
     "110000000000000000000000000000000000000000000000000000000000000064",
     "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"},
    {2, 31337, 0, 21000, "2000000000", "1000000000",
     "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "1", "0x",
     "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"},
    {2, 1, 1000000, 3000000,
     "115792089237316195423570985008687907853269984665"
     "640564039457584007913129639935",
     "0", NULL, "0", "0x6080604052348015600f57600080fd5b50",
     "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"},
    {2, 11155111, 5, 50000, "30000000000", "30000000000",
     "0x0000000000000000000000000000000000000001",
     "340282366920938463463374607431768211456", "0x00",
     "0x4646464646464646464646464646464646464646464646464646464646464646"},
};
#define N_TX (sizeof tx_cases / sizeof tx_cases[0])

static const char *eip712_docs[] = {
    /* The specification's Mail example with the domain inferred. */
    "{\"types\":{\"Person\":[{\"name\":\"name\",\"type\":\"string\"},{\"name\":"
    "\"wallet\",\"type\":\"address\"}],\"Mail\":[{\"name\":\"from\",\"type\":"
    "\"Person\"},{\"name\":\"to\",\"type\":\"Person\"},{\"name\":\"contents\","
    "\"type\":\"string\"}]},\"primaryType\":\"Mail\",\"domain\":{\"name\":"
    "\"Ether Mail\",\"version\":\"1\",\"chainId\":1,\"verifyingContract\":"
    "\"0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC\"},\"message\":{\"from\":{"
    "\"name\":\"Cow\",\"wallet\":\"0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826\""
    "},\"to\":{\"name\":\"Bob\",\"wallet\":"
    "\"0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB\"},\"contents\":\"Hello, "
    "Bob!\"}}",
    /* Nested structs, arrays of structs, arrays of atoms, bytes, bool,
     * negative ints, a salt. */
    "{\"types\":{\"EIP712Domain\":[{\"name\":\"name\",\"type\":\"string\"},{"
    "\"name\":\"version\",\"type\":\"string\"},{\"name\":\"chainId\",\"type\":"
    "\"uint256\"},{\"name\":\"verifyingContract\",\"type\":\"address\"},{"
    "\"name\":\"salt\",\"type\":\"bytes32\"}],\"Payment\":[{\"name\":\"user\","
    "\"type\":\"address\"},{\"name\":\"dispatcher\",\"type\":\"address\"},{"
    "\"name\":\"cumulative\",\"type\":\"uint256\"},{\"name\":\"items\","
    "\"type\":"
    "\"Item[]\"},{\"name\":\"tags\",\"type\":\"bytes32[]\"},{\"name\":\"memo\","
    "\"type\":\"bytes\"},{\"name\":\"ok\",\"type\":\"bool\"},{\"name\":"
    "\"delta\",\"type\":\"int64\"},{\"name\":\"grid\",\"type\":"
    "\"uint8[2][]\"}],\"Item\":[{\"name\":\"service\",\"type\":\"bytes32\"},{"
    "\"name\":\"amount\",\"type\":\"uint128\"},{\"name\":\"owner\",\"type\":"
    "\"Owner\"}],\"Owner\":[{\"name\":\"who\",\"type\":\"address\"},{\"name\":"
    "\"label\",\"type\":\"string\"}]},\"primaryType\":\"Payment\",\"domain\":{"
    "\"name\":\"teex\",\"version\":\"1\",\"chainId\":31337,"
    "\"verifyingContract\":\"0x5FbDB2315678afecb367f032d93F642f64180aa3\","
    "\"salt\":\"0x0101010101010101010101010101010101010101010101010101010101010"
    "101\"},\"message\":{\"user\":\"0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    "\",\"dispatcher\":\"0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC\","
    "\"cumulative\":\"123456789012345678901234567890\",\"items\":[{\"service\":"
    "\"0x2222222222222222222222222222222222222222222222222222222222222222\","
    "\"amount\":5,\"owner\":{\"who\":\"0x90F79bf6EB2c4f870365E785982E1f101E93b9"
    "06\",\"label\":\"x\"}},{\"service\":\"0x3333333333333333333333333333333333"
    "333333333333333333333333333333\",\"amount\":\"0xff\",\"owner\":{\"who\":"
    "\"0x0000000000000000000000000000000000000000\",\"label\":\"\"}}],\"tags\":"
    "[],\"memo\":\"0xdeadbeef\",\"ok\":true,\"delta\":\"-42\",\"grid\":[[1,2],["
    "3,4]]}}",
};
#define N_712 (sizeof eip712_docs / sizeof eip712_docs[0])

static const char *ks_sk =
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

/* ---- running the oracle ---- */

static int setup(void **state) {
  (void)state;
  char script[1024], reqpath[1024], modules[1024], *out = NULL, *errout = NULL;
  char *dir = tu_mkdtemp("eth-oracle");
  snprintf(script, sizeof script, "%s/tests/eth/oracle.js", tu_source_dir());
  snprintf(modules, sizeof modules, "%s/tools/node_modules", tu_source_dir());
  snprintf(reqpath, sizeof reqpath, "%s/req.json", dir);
  if (access(modules, R_OK) != 0) {
    fprintf(stderr,
            "tools/node_modules missing: run scripts/install-deps.sh\n");
    return -1;
  }
  setenv("NODE_PATH", modules, 1);

  request = json_object();
  json_t *abi = json_array(), *tx = json_array(), *e712 = json_array(),
         *ksd = json_array(), *kse = json_array();
  for (size_t i = 0; i < N_ABI; i++)
    json_array_append_new(abi, json_pack("{s:s,s:o}", "type", abi_cases[i][0],
                                         "values",
                                         json_loads(abi_cases[i][1], 0, NULL)));
  for (size_t i = 0; i < N_TX; i++) {
    const struct tx_case *c = &tx_cases[i];
    json_t *t = json_pack("{s:i,s:I,s:I,s:I,s:s,s:s}", "type", c->type,
                          "chainId", (json_int_t)c->chain_id, "nonce",
                          (json_int_t)c->nonce, "gasLimit", (json_int_t)c->gas,
                          "value", c->value, "data", c->data);
    if (c->to)
      json_object_set_new(t, "to", json_string(c->to));
    if (c->type == 0) {
      json_object_set_new(t, "gasPrice", json_string(c->fee));
    } else {
      json_object_set_new(t, "maxFeePerGas", json_string(c->fee));
      json_object_set_new(t, "maxPriorityFeePerGas", json_string(c->tip));
    }
    json_array_append_new(tx, json_pack("{s:s,s:o}", "sk", c->sk, "tx", t));
  }
  for (size_t i = 0; i < N_712; i++) {
    json_error_t je;
    json_t *doc = json_loads(eip712_docs[i], 0, &je);
    if (!doc) {
      fprintf(stderr, "eip712 doc %zu: %s at %d\n", i, je.text, je.position);
      return -1;
    }
    json_array_append_new(e712, doc);
  }
  /* A keystore made by teex, for ethers to open. */
  uint8_t sk[32];
  size_t n;
  char *ks = NULL;
  struct teex_keystore_params kp = {1024, 8, 1};
  struct teex_err e = {0};
  teex_hex_decode(ks_sk, sk, 32, &n);
  if (teex_keystore_encrypt(sk, "pässwörd", &kp, &ks, &e) != 0)
    return -1;
  json_array_append_new(
      ksd, json_pack("{s:s,s:s}", "json", ks, "password", "pässwörd"));
  free(ks);
  json_array_append_new(kse, json_pack("{s:s,s:s,s:i}", "sk", ks_sk, "password",
                                       "correct horse", "n", 1024));
  json_object_set_new(request, "abi", abi);
  json_object_set_new(request, "tx", tx);
  json_object_set_new(request, "eip712", e712);
  json_object_set_new(request, "keystore_decrypt", ksd);
  json_object_set_new(request, "keystore_encrypt", kse);
  if (json_dump_file(request, reqpath, 0) != 0)
    return -1;
  char *const argv[] = {"/usr/bin/env", "node", script, reqpath, NULL};
  int rc = tu_run(argv, NULL, 0, &out, &errout);
  if (rc != 0) {
    fprintf(stderr, "oracle failed (%d): %s\n", rc, errout ? errout : "");
    return -1;
  }
  answer = json_loads(out, 0, NULL);
  free(out);
  free(errout);
  tu_rmtree(dir);
  free(dir);
  return answer ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  json_decref(answer);
  json_decref(request);
  return 0;
}

static char *to_hex0x(const uint8_t *p, size_t n) {
  char *s = malloc(2 * n + 3);
  s[0] = '0';
  s[1] = 'x';
  teex_hex_encode(p, n, s + 2);
  return s;
}

static void test_abi_vs_ethers(void **state) {
  (void)state;
  json_t *res = json_object_get(answer, "abi");
  assert_int_equal(json_array_size(res), N_ABI);
  for (size_t i = 0; i < N_ABI; i++) {
    struct teex_abi_type *t = NULL;
    struct teex_abi_value v, d;
    struct teex_err e = {0};
    struct teex_buf b, b2;
    json_t *vals = json_loads(abi_cases[i][1], 0, NULL);
    assert_int_equal(teex_abi_type_parse(abi_cases[i][0], &t, &e), 0);
    if (teex_abi_value_from_json(t, vals, &v, &e) != 0)
      fail_msg("case %zu: %s", i, e.msg);
    teex_buf_init(&b, 1 << 20, 0);
    assert_int_equal(teex_abi_encode(t, &v, &b, &e), 0);
    char *mine = to_hex0x(b.data, b.len);
    const char *theirs = json_string_value(json_array_get(res, i));
    if (strcmp(mine, theirs) != 0)
      fail_msg("ABI case %zu %s:\n teex   %s\n ethers %s", i, abi_cases[i][0],
               mine, theirs);
    /* Decoding ethers' bytes and re-encoding gives them back. */
    assert_int_equal(teex_abi_decode(t, b.data, b.len, &d, &e), 0);
    teex_buf_init(&b2, 1 << 20, 0);
    assert_int_equal(teex_abi_encode(t, &d, &b2, &e), 0);
    assert_int_equal(b2.len, b.len);
    assert_memory_equal(b2.data, b.data, b.len);
    teex_buf_free(&b2);
    teex_abi_value_clear(&d);
    free(mine);
    teex_buf_free(&b);
    teex_abi_value_clear(&v);
    teex_abi_type_free(t);
    json_decref(vals);
  }
}

static void test_tx_vs_ethers(void **state) {
  (void)state;
  json_t *res = json_object_get(answer, "tx");
  assert_int_equal(json_array_size(res), N_TX);
  for (size_t i = 0; i < N_TX; i++) {
    const struct tx_case *c = &tx_cases[i];
    struct teex_eth_tx tx = {0}, back;
    struct teex_err e = {0};
    struct teex_buf raw;
    uint8_t sk[32], data[256], h[32], from[20];
    size_t n = 0, dl = 0;
    tx.type = c->type;
    tx.chain_id = c->chain_id;
    tx.nonce = c->nonce;
    tx.gas_limit = c->gas;
    assert_int_equal(
        teex_u256_parse(c->fee, c->type ? tx.max_fee : tx.gas_price), 0);
    if (c->tip)
      assert_int_equal(teex_u256_parse(c->tip, tx.max_priority_fee), 0);
    if (c->to) {
      tx.has_to = 1;
      assert_int_equal(teex_eth_address_parse(c->to, tx.to), 0);
    }
    assert_int_equal(teex_u256_parse(c->value, tx.value), 0);
    assert_int_equal(teex_hex_decode(c->data, data, sizeof data, &dl), 0);
    tx.data = data;
    tx.data_len = dl;
    assert_int_equal(teex_hex_decode(c->sk, sk, 32, &n), 0);
    teex_buf_init(&raw, TEEX_ETH_TX_MAX, 0);
    if (teex_eth_tx_sign(&tx, sk, &raw, h, &e) != 0)
      fail_msg("tx %zu: %s", i, e.msg);
    char *mine = to_hex0x(raw.data, raw.len), *mh = to_hex0x(h, 32);
    json_t *o = json_array_get(res, i);
    if (strcmp(mine, json_string_value(json_object_get(o, "raw"))) != 0)
      fail_msg("tx %zu:\n teex   %s\n ethers %s", i, mine,
               json_string_value(json_object_get(o, "raw")));
    assert_string_equal(mh, json_string_value(json_object_get(o, "hash")));
    assert_int_equal(teex_eth_tx_decode(raw.data, raw.len, &back, from, &e), 0);
    char fh[43];
    teex_eth_address_hex(from, fh);
    assert_string_equal(fh, json_string_value(json_object_get(o, "from")));
    free(mine);
    free(mh);
    teex_buf_free(&raw);
  }
}

static void test_eip712_vs_ethers(void **state) {
  (void)state;
  json_t *res = json_object_get(answer, "eip712");
  assert_int_equal(json_array_size(res), N_712);
  for (size_t i = 0; i < N_712; i++) {
    uint8_t ds[32], mh[32], dg[32];
    struct teex_err e = {0};
    if (teex_eip712_hash_parts(eip712_docs[i], ds, mh, &e) != 0)
      fail_msg("eip712 %zu: %s", i, e.msg);
    teex_eip712_digest(ds, mh, dg);
    char *a = to_hex0x(dg, 32), *b = to_hex0x(ds, 32);
    json_t *o = json_array_get(res, i);
    assert_string_equal(b, json_string_value(json_object_get(o, "domain")));
    assert_string_equal(a, json_string_value(json_object_get(o, "digest")));
    free(a);
    free(b);
  }
}

static void test_keystore_vs_ethers(void **state) {
  (void)state;
  /* ethers opened teex's keystore and found the key. */
  json_t *d = json_array_get(json_object_get(answer, "keystore_decrypt"), 0);
  assert_non_null(d);
  assert_string_equal(json_string_value(json_object_get(d, "privateKey")),
                      ks_sk);
  /* teex opens ethers' keystore. */
  const char *ks = json_string_value(
      json_array_get(json_object_get(answer, "keystore_encrypt"), 0));
  uint8_t sk[32], addr[20];
  struct teex_err e = {0};
  assert_non_null(ks);
  if (teex_keystore_decrypt(ks, "correct horse", sk, addr, &e) != 0)
    fail_msg("%s", e.msg);
  char *h = to_hex0x(sk, 32);
  assert_string_equal(h, ks_sk);
  free(h);
  assert_int_equal(teex_keystore_decrypt(ks, "wrong horse", sk, addr, &e),
                   TEEX_EAUTH);
}

int main(void) {
  teex_crypto_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_abi_vs_ethers),
      cmocka_unit_test(test_tx_vs_ethers),
      cmocka_unit_test(test_eip712_vs_ethers),
      cmocka_unit_test(test_keystore_vs_ethers),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
