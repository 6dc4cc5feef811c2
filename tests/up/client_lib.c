/* The user's C library (include/teex/user.h) against a real `teex up`
 * network, driven by tests/up/test_client_lib.sh: several teex_invoke calls
 * over one dispatcher connection with the outputs the service must give,
 * a --max-price-style limit, an unknown service, an old pinned image, the
 * dispatcher's own refusal of an authorisation for the old image, and a
 * private service refusing this user.
 *
 *   up_client_lib NET_DIR USER_KEY_HEX SERVICE_ID OLD_IMAGE PRICE_WEI \
 *                 [PRIVATE_SERVICE_ID]
 *
 * The service answers "v2:" + its input. Prints one line per check; exits
 * non-zero on the first failure. */
#include "teex/chain.h"
#include "teex/config.h"
#include "teex/crypto.h"
#include "teex/tee_policy.h"
#include "teex/user.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                     \
      fprintf(stderr, __VA_ARGS__);                                            \
      fputc('\n', stderr);                                                     \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

static void hex32(const char *s, uint8_t out[32]) {
  size_t n = 0;
  CHECK(teex_hex_decode(s, out, 32, &n) == 0 && n == 32, "not 32 bytes: %s", s);
}

int main(int argc, char **argv) {
  CHECK(argc == 6 || argc == 7, "usage: see the source");
  CHECK(teex_crypto_init() == 0, "crypto init");
  const char *net = argv[1];
  uint8_t sk[32], service[32], old_image[32], priv[32], pub[64], user[20];
  hex32(argv[2], sk);
  hex32(argv[3], service);
  hex32(argv[4], old_image);
  if (argc == 7)
    hex32(argv[6], priv);
  teex_amount price;
  CHECK(teex_amount_parse(argv[5], &price) == 0, "price");
  CHECK(teex_secp256k1_public(sk, pub) == 0, "user key");
  teex_eth_address(pub, user);

  struct teex_err err;
  teex_err_clear(&err);
  char path[4096], chain_conf[4096];
  snprintf(path, sizeof path, "%s/network.conf", net);
  snprintf(chain_conf, sizeof chain_conf, "%s/chain.conf", net);
  struct teex_config nc;
  teex_config_init(&nc);
  CHECK(teex_config_load(&nc, path, &err) == 0, "%s", err.msg);
  struct teex_tee_policy pol;
  teex_tee_policy_init(&pol);
  CHECK(teex_tee_policy_load(
            &pol, teex_config_get(&nc, "dispatcher.policy", ""), &err) == 0,
        "policy: %s", err.msg);
  const char *endpoint = teex_config_get(&nc, "dispatcher.user", "");

  /* One connection for every call below. */
  struct teex_user_dispatcher *d = NULL;
  CHECK(teex_user_dispatcher_connect(endpoint, &pol, &d, &err) == 0, "%s",
        err.msg);
  struct teex_user_base b0;
  CHECK(teex_user_base(d, user, &b0, &err) == 0, "base: %s", err.msg);

  struct teex_invoke_request req;
  memset(&req, 0, sizeof req);
  req.dispatcher = endpoint;
  req.conn = d;
  req.enclave_policy = &pol;
  req.chain_conf = chain_conf;
  memcpy(req.service_id, service, 32);
  req.user_sk = sk;

  /* Three tasks, each with its own input and task id, each charged the
   * listed price once: the cumulative grows by exactly the price. */
  static const char in2[] = "a longer input \x01\x02 with bytes";
  const char *inputs[] = {"alpha", "", in2};
  size_t lens[] = {5, 0, sizeof in2 - 1};
  uint8_t seen[3][32];
  for (int i = 0; i < 3; i++) {
    struct teex_invoke_result res;
    req.input = (const uint8_t *)inputs[i];
    req.input_len = lens[i];
    req.max_price = price; /* exactly the price is fine */
    CHECK(teex_invoke(&req, &res, &err) == 0, "invoke %d: %s", i, err.msg);
    CHECK(res.output_len == lens[i] + 3 && memcmp(res.output, "v2:", 3) == 0 &&
              memcmp(res.output + 3, inputs[i], lens[i]) == 0,
          "invoke %d: output %.*s", i, (int)res.output_len, res.output);
    CHECK(res.price == price, "invoke %d: price", i);
    CHECK(res.cumulative == b0.base + (teex_amount)(i + 1) * price,
          "invoke %d: cumulative", i);
    CHECK(res.attempts == 1, "invoke %d: %u attempts", i, res.attempts);
    for (int j = 0; j < i; j++)
      CHECK(memcmp(seen[j], res.task_id, 32) != 0, "task id reused");
    memcpy(seen[i], res.task_id, 32);
    free(res.output);
  }
  printf("three invocations over one connection: outputs and charges ok\n");

  /* A price limit below the listed price: refused before anything is
   * signed or reserved. */
  struct teex_invoke_result res;
  req.input = (const uint8_t *)"x";
  req.input_len = 1;
  req.max_price = price - 1;
  int rc = teex_invoke(&req, &res, &err);
  CHECK(rc == TEEX_EPOLICY && strstr(err.msg, "--max-price") != NULL,
        "max price: %d %s", rc, err.msg);
  printf("max price below the listing: refused (%s)\n", err.msg);
  req.max_price = 0;
  struct teex_user_base b1;
  CHECK(teex_user_base(d, user, &b1, &err) == 0, "base: %s", err.msg);
  CHECK(b1.base == b0.base + 3 * price, "the refused call changed the base");

  /* An unknown service: TEEX_ENOTFOUND. */
  req.max_price = 0;
  memset(req.service_id, 0x5a, 32); /* no NUL: anvil quotes revert data */
  rc = teex_invoke(&req, &res, &err);
  CHECK(rc == TEEX_ENOTFOUND && strstr(err.msg, "no such service") != NULL,
        "unknown service: %d %s", rc, err.msg);
  printf("unknown service: %s\n", err.msg);
  memcpy(req.service_id, service, 32);

  /* The old image pinned: refused, nothing runs. */
  req.pin_image = 1;
  memcpy(req.image_hash, old_image, 32);
  rc = teex_invoke(&req, &res, &err);
  CHECK(rc == TEEX_EPOLICY && strstr(err.msg, "not the one pinned") != NULL,
        "old image pinned: %d %s", rc, err.msg);
  printf("old image pinned: %s\n", err.msg);
  req.pin_image = 0;

  /* The dispatcher refuses an authorisation for the old image on its own
   * (a client that skipped the check above), naming the current version. */
  struct teex_payment_auth a;
  memset(&a, 0, sizeof a);
  memcpy(a.user, user, 20);
  memcpy(a.dispatcher, b1.dispatcher, 20);
  teex_random(a.task_id, 32);
  memcpy(a.service_id, service, 32);
  memcpy(a.image_hash, old_image, 32);
  teex_keccak256("", 0, a.datasets_hash);
  a.price = price;
  a.cumulative = b1.base + price;
  CHECK(teex_user_sign_auth(&b1.domain, &a, sk) == 0, "sign");
  struct teex_user_assignment ua;
  rc = teex_user_submit(d, &a, NULL, 0, b1.dispatcher, 0, NULL, &ua, &err);
  CHECK(rc == TEEX_ENOTFOUND &&
            strstr(err.msg, "not the service's current one (version 2") != NULL,
        "old image at the dispatcher: %d %s", rc, err.msg);
  printf("dispatcher, old image: %s\n", err.msg);

  /* A private service that does not allow this user: TEEX_EPERM from the
   * dispatcher, and nothing reserved. */
  if (argc == 7) {
    memcpy(req.service_id, priv, 32);
    rc = teex_invoke(&req, &res, &err);
    CHECK(rc == TEEX_EPERM && strstr(err.msg, "is private") != NULL,
          "private: %d %s", rc, err.msg);
    printf("private service: %s\n", err.msg);
    memcpy(req.service_id, service, 32);
  }
  struct teex_user_base b2;
  CHECK(teex_user_base(d, user, &b2, &err) == 0, "base: %s", err.msg);
  CHECK(b2.base == b1.base, "a refused call changed the base");

  /* The connection still serves after the refusals. */
  req.input = (const uint8_t *)"again";
  req.input_len = 5;
  CHECK(teex_invoke(&req, &res, &err) == 0, "invoke after refusals: %s",
        err.msg);
  CHECK(res.output_len == 8 && memcmp(res.output, "v2:again", 8) == 0,
        "output after refusals");
  CHECK(res.cumulative == b2.base + price, "cumulative after refusals");
  free(res.output);
  printf("the same connection serves after the refusals\n");

  teex_user_dispatcher_close(d);
  teex_config_free(&nc);
  return 0;
}
