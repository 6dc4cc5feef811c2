/* The Service Manager's core: service registration (signatures, ownership,
 * versions, image checks, retries), persistence across restarts, evidence
 * checks for enclaves (freshness nonce, TLS key binding, role, root), key
 * release, registration statements, no key in clear on disk, and the
 * record of checked enclaves with revocation of an enclave or a build. */
#include "testutil.h"

#include "teex/crypto.h"
#include "teex/image.h"
#include "teex/mem.h"
#include "teex/sm.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

struct fx {
  char *dir;
  char state[4096];
  uint8_t root[32];
  struct teex_tee *sm_tee, *worker_tee;
  struct teex_sm *sm;
  struct teex_sm_config cfg;
  uint8_t provider_sk[32], provider[20];
  uint8_t image_key[32];
  uint8_t *ct;
  size_t ct_len;
  uint8_t image_hash[32];
};

static struct teex_tee *open_tee(const char *dir, const char *role) {
  struct teex_tee_config c;
  memset(&c, 0, sizeof c);
  c.backend = "sim";
  c.data_dir = dir;
  c.role = role;
  struct teex_tee *tee = NULL;
  struct teex_err err;
  if (teex_tee_open(&c, &tee, &err) != 0)
    fail_msg("tee open: %s", err.msg);
  return tee;
}

static int setup(void **state) {
  struct fx *f = calloc(1, sizeof *f);
  struct teex_err err;
  f->dir = tu_mkdtemp("sm");
  assert_int_equal(teex_tee_sim_init(f->dir, f->root, &err), 0);
  snprintf(f->state, sizeof f->state, "%s/sm-state", f->dir);
  f->sm_tee = open_tee(f->dir, "sm");
  f->worker_tee = open_tee(f->dir, "worker");
  teex_tee_policy_init(&f->cfg.policy);
  teex_tee_policy_add_root(&f->cfg.policy, f->root);
  teex_tee_policy_add_measurement(&f->cfg.policy,
                                  teex_tee_self(f->worker_tee)->mr_enclave);
  f->cfg.policy.allow_simulated = 1;
  f->cfg.state_dir = f->state;
  f->cfg.listing.chain_id = 31337;
  memset(f->cfg.listing.verifying_contract, 0x51, 20);
  f->cfg.registration.chain_id = 31337;
  memset(f->cfg.registration.verifying_contract, 0xE7, 20);
  if (teex_sm_open(f->sm_tee, &f->cfg, &f->sm, &err) != 0)
    fail_msg("sm open: %s", err.msg);
  uint8_t pub[64];
  assert_int_equal(teex_secp256k1_keypair(f->provider_sk, pub), 0);
  teex_eth_address(pub, f->provider);
  /* An "image": any bytes; its hash is SHA-256 of the plaintext archive. */
  static const char image[] = "CANARY-IMAGE-PLAINTEXT-7a1f packed image bytes";
  teex_random(f->image_key, 32);
  assert_int_equal(teex_image_encrypt(f->image_key, (const uint8_t *)image,
                                      sizeof image, &f->ct, &f->ct_len, &err),
                   0);
  teex_image_hash((const uint8_t *)image, sizeof image, f->image_hash);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fx *f = *state;
  teex_sm_close(f->sm);
  teex_tee_close(f->sm_tee);
  teex_tee_close(f->worker_tee);
  free(f->ct);
  tu_rmtree(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

static void make_req(struct fx *f, struct teex_sm_register *r,
                     uint8_t service_byte, uint32_t version) {
  memset(r, 0, sizeof *r);
  memset(r->service_id, service_byte, 32);
  r->version = version;
  memcpy(r->provider, f->provider, 20);
  memcpy(r->image_hash, f->image_hash, 32);
  snprintf(r->image_cid, sizeof r->image_cid, "bafkreitest%u", version);
  memcpy(r->image_key, f->image_key, 32);
  r->ciphertext = f->ct;
  r->ciphertext_len = f->ct_len;
}

static void sign_req(struct fx *f, struct teex_sm_register *r,
                     const uint8_t sk[32]) {
  uint8_t addr[20], digest[32];
  teex_sm_address(f->sm, addr);
  teex_sm_register_digest(r, 31337, addr, digest);
  assert_int_equal(teex_stmt_sign(sk, digest, r->provider_sig), 0);
}

static void test_register_and_listing(void **state) {
  struct fx *f = *state;
  struct teex_sm_register r;
  struct teex_sm_registered out, again;
  struct teex_err err;
  make_req(f, &r, 1, 1);
  sign_req(f, &r, f->provider_sk);
  if (teex_sm_register_service(f->sm, &r, &out, &err) != 0)
    fail_msg("register: %s", err.msg);
  /* The listing signature is the SM's, over exactly these keys. */
  struct teex_service_listing l;
  memcpy(l.service_id, r.service_id, 32);
  memcpy(l.provider, r.provider, 20);
  l.version = 1;
  memcpy(l.signing_key, out.signing_key, 20);
  memcpy(l.encryption_key, out.encryption_key, 32);
  memcpy(l.image_hash, r.image_hash, 32);
  uint8_t digest[32], signer[20], sm_addr[20];
  teex_stmt_service_listing_digest(&f->cfg.listing, &l, digest);
  assert_int_equal(teex_stmt_recover(digest, out.listing_sig, signer), 0);
  teex_sm_address(f->sm, sm_addr);
  assert_memory_equal(signer, sm_addr, 20);
  /* A retry of the same request gets the same keys. */
  assert_int_equal(teex_sm_register_service(f->sm, &r, &again, &err), 0);
  assert_memory_equal(again.signing_key, out.signing_key, 20);
  assert_int_equal(teex_sm_service_count(f->sm), 1);

  /* Version 3 before 2: out of sequence. */
  static const char image2[] = "second version";
  uint8_t *ct2;
  size_t ct2_len;
  assert_int_equal(teex_image_encrypt(f->image_key, (const uint8_t *)image2,
                                      sizeof image2, &ct2, &ct2_len, &err),
                   0);
  make_req(f, &r, 1, 3);
  teex_image_hash((const uint8_t *)image2, sizeof image2, r.image_hash);
  r.ciphertext = ct2;
  r.ciphertext_len = ct2_len;
  sign_req(f, &r, f->provider_sk);
  assert_int_equal(teex_sm_register_service(f->sm, &r, &again, &err),
                   TEEX_EINVAL);
  assert_non_null(strstr(err.msg, "next is 2"));
  r.version = 2;
  sign_req(f, &r, f->provider_sk);
  assert_int_equal(teex_sm_register_service(f->sm, &r, &again, &err), 0);
  /* Versions share the service's keys. */
  assert_memory_equal(again.signing_key, out.signing_key, 20);
  assert_memory_equal(again.encryption_key, out.encryption_key, 32);
  free(ct2);
}

static void test_register_refusals(void **state) {
  struct fx *f = *state;
  struct teex_sm_register r;
  struct teex_sm_registered out;
  struct teex_err err;
  make_req(f, &r, 2, 1);
  sign_req(f, &r, f->provider_sk);
  assert_int_equal(teex_sm_register_service(f->sm, &r, &out, &err), 0);

  /* Another provider cannot take the service id. */
  uint8_t other_sk[32], pub[64];
  teex_secp256k1_keypair(other_sk, pub);
  make_req(f, &r, 2, 2);
  teex_eth_address(pub, r.provider);
  sign_req(f, &r, other_sk);
  assert_int_equal(teex_sm_register_service(f->sm, &r, &out, &err), TEEX_EPERM);

  /* Signed by someone else than the provider named. */
  make_req(f, &r, 3, 1);
  sign_req(f, &r, other_sk);
  assert_int_equal(teex_sm_register_service(f->sm, &r, &out, &err),
                   TEEX_EBADSIG);
  /* A signed field changed after signing. */
  make_req(f, &r, 3, 1);
  sign_req(f, &r, f->provider_sk);
  r.image_cid[3] ^= 1;
  assert_int_equal(teex_sm_register_service(f->sm, &r, &out, &err),
                   TEEX_EBADSIG);
  /* The listed hash must be the code the ciphertext holds. */
  make_req(f, &r, 3, 1);
  r.image_hash[0] ^= 1;
  sign_req(f, &r, f->provider_sk);
  assert_int_equal(teex_sm_register_service(f->sm, &r, &out, &err),
                   TEEX_EATTEST);
  /* A key that does not open the ciphertext. */
  make_req(f, &r, 3, 1);
  r.image_key[0] ^= 1;
  sign_req(f, &r, f->provider_sk);
  assert_int_equal(teex_sm_register_service(f->sm, &r, &out, &err), TEEX_EAUTH);
  /* Nothing of the refused requests was kept. */
  assert_int_equal(teex_sm_service_count(f->sm), 1);
  uint8_t id[32];
  struct teex_sm_keys keys;
  memset(id, 3, 32);
  assert_int_equal(teex_sm_fetch_keys(f->sm, id, f->image_hash, &keys, &err),
                   TEEX_ENOTFOUND);
}

static void quote_worker(struct fx *f, struct teex_tee *tee,
                         const uint8_t nonce[32], const uint8_t spki[32],
                         struct teex_buf *ev) {
  struct teex_tee_binding b;
  struct teex_err err;
  memset(&b, 0, sizeof b);
  uint8_t sk[32];
  b.has_tls = 1;
  memcpy(b.tls_spki_sha256, spki, 32);
  b.has_secp256k1 = 1;
  teex_secp256k1_keypair(sk, b.secp256k1_pub);
  b.has_nonce = 1;
  memcpy(b.nonce, nonce, 32);
  teex_buf_init(ev, 16384, 0);
  if (teex_tee_quote_binding(tee, &b, ev, &err) != 0)
    fail_msg("quote: %s", err.msg);
  (void)f;
}

static void test_enclave_checks_and_keys(void **state) {
  struct fx *f = *state;
  struct teex_sm_register r;
  struct teex_sm_registered reg;
  struct teex_err err;
  make_req(f, &r, 4, 1);
  sign_req(f, &r, f->provider_sk);
  assert_int_equal(teex_sm_register_service(f->sm, &r, &reg, &err), 0);

  uint8_t nonce[32], spki[32];
  teex_random(nonce, 32);
  teex_random(spki, 32);
  struct teex_buf ev;
  quote_worker(f, f->worker_tee, nonce, spki, &ev);
  struct teex_tee_identity id;
  uint64_t now = (uint64_t)time(NULL);
  if (teex_sm_check_enclave(f->sm, ev.data, ev.len, nonce, spki, "worker", now,
                            &id, &err) != 0)
    fail_msg("check: %s", err.msg);
  struct teex_sm_keys keys;
  assert_int_equal(
      teex_sm_fetch_keys(f->sm, r.service_id, r.image_hash, &keys, &err), 0);
  assert_memory_equal(keys.image_key, f->image_key, 32);
  assert_string_equal(keys.image_cid, "bafkreitest1");
  uint8_t pub[64], addr[20];
  assert_int_equal(teex_secp256k1_public(keys.service_secp256k1, pub), 0);
  teex_eth_address(pub, addr);
  assert_memory_equal(addr, reg.signing_key, 20);
  teex_wipe(&keys, sizeof keys);

  /* Not fresh: another nonce. Another session: another TLS key. */
  uint8_t other[32];
  teex_random(other, 32);
  assert_int_not_equal(teex_sm_check_enclave(f->sm, ev.data, ev.len, other,
                                             spki, "worker", now, &id, &err),
                       0);
  assert_int_equal(teex_sm_check_enclave(f->sm, ev.data, ev.len, nonce, other,
                                         "worker", now, &id, &err),
                   TEEX_EATTEST);
  assert_non_null(strstr(err.msg, "another TLS key"));
  /* Any flipped byte of the evidence is refused. */
  for (size_t i = 0; i < ev.len; i += 7) {
    ev.data[i] ^= 0x20;
    assert_int_not_equal(teex_sm_check_enclave(f->sm, ev.data, ev.len, nonce,
                                               spki, "worker", now, &id, &err),
                         0);
    ev.data[i] ^= 0x20;
  }
  teex_buf_free(&ev);

  /* A role the policy measures but that asks as the wrong role. */
  quote_worker(f, f->sm_tee, nonce, spki, &ev);
  assert_int_not_equal(teex_sm_check_enclave(f->sm, ev.data, ev.len, nonce,
                                             spki, "worker", now, &id, &err),
                       0);
  teex_buf_free(&ev);

  /* Evidence from another network's root. */
  char *dir2 = tu_mkdtemp("sm-other");
  assert_int_equal(teex_tee_sim_init(dir2, NULL, &err), 0);
  struct teex_tee *foreign = open_tee(dir2, "worker");
  quote_worker(f, foreign, nonce, spki, &ev);
  assert_int_not_equal(teex_sm_check_enclave(f->sm, ev.data, ev.len, nonce,
                                             spki, "worker", now, &id, &err),
                       0);
  teex_buf_free(&ev);
  teex_tee_close(foreign);
  tu_rmtree(dir2);
  free(dir2);
}

static void test_registration_statement(void **state) {
  struct fx *f = *state;
  uint8_t nonce[32], spki[32];
  teex_random(nonce, 32);
  teex_random(spki, 32);
  struct teex_buf ev;
  quote_worker(f, f->worker_tee, nonce, spki, &ev);
  struct teex_tee_identity id;
  struct teex_err err;
  assert_int_equal(teex_sm_check_enclave(f->sm, ev.data, ev.len, nonce, spki,
                                         NULL, (uint64_t)time(NULL), &id, &err),
                   0);
  teex_buf_free(&ev);
  uint8_t role, sig[65], digest[32], signer[20], sm_addr[20];
  assert_int_equal(teex_sm_sign_registration(f->sm, &id, &role, sig, &err), 0);
  assert_int_equal(role, TEEX_ENCLAVE_WORKER);
  teex_stmt_enclave_registration_digest(&f->cfg.registration,
                                        id.binding.eth_address, role,
                                        id.mr_enclave, id.issued_at, digest);
  assert_int_equal(teex_stmt_recover(digest, sig, signer), 0);
  teex_sm_address(f->sm, sm_addr);
  assert_memory_equal(signer, sm_addr, 20);
}

static void test_restart_and_no_clear_keys(void **state) {
  struct fx *f = *state;
  struct teex_sm_register r;
  struct teex_sm_registered reg;
  struct teex_err err;
  make_req(f, &r, 5, 1);
  sign_req(f, &r, f->provider_sk);
  assert_int_equal(teex_sm_register_service(f->sm, &r, &reg, &err), 0);
  uint8_t addr1[20], addr2[20];
  teex_sm_address(f->sm, addr1);
  teex_sm_close(f->sm);
  f->sm = NULL;
  assert_int_equal(teex_sm_open(f->sm_tee, &f->cfg, &f->sm, &err), 0);
  teex_sm_address(f->sm, addr2);
  assert_memory_equal(addr1, addr2, 20); /* the address the chain knows */
  assert_int_equal(teex_sm_service_count(f->sm), 1);
  struct teex_sm_keys keys;
  assert_int_equal(
      teex_sm_fetch_keys(f->sm, r.service_id, r.image_hash, &keys, &err), 0);
  /* Neither the image key nor the service's secret key is on disk in any
   * encoding; the same search finds a canary written in the clear. */
  char hit[512];
  assert_int_equal(tu_tree_contains(f->state, f->image_key, 32, hit), 0);
  assert_int_equal(tu_tree_contains(f->state, keys.service_secp256k1, 32, hit),
                   0);
  char ctl[4096];
  snprintf(ctl, sizeof ctl, "%s/control", f->state);
  char hex[65];
  teex_hex_encode(keys.service_x25519, 32, hex);
  assert_int_equal(tu_write_file(ctl, hex, 64), 0);
  assert_int_equal(tu_tree_contains(f->state, keys.service_x25519, 32, hit), 1);
  teex_wipe(&keys, sizeof keys);
}

/* Evidence from tee for a fixed enclave key sk (the same enclave address
 * every time), bound to nonce and spki. */
static void quote_as(struct teex_tee *tee, const uint8_t sk[32],
                     const uint8_t nonce[32], const uint8_t spki[32],
                     struct teex_buf *ev, uint8_t addr[20]) {
  struct teex_tee_binding b;
  struct teex_err err;
  memset(&b, 0, sizeof b);
  b.has_tls = 1;
  memcpy(b.tls_spki_sha256, spki, 32);
  b.has_secp256k1 = 1;
  assert_int_equal(teex_secp256k1_public(sk, b.secp256k1_pub), 0);
  teex_eth_address(b.secp256k1_pub, addr);
  b.has_nonce = 1;
  memcpy(b.nonce, nonce, 32);
  teex_buf_init(ev, 16384, 0);
  if (teex_tee_quote_binding(tee, &b, ev, &err) != 0)
    fail_msg("quote: %s", err.msg);
}

/* Fresh evidence of the enclave with key sk, checked by the SM at now. */
static int check_as(struct fx *f, const uint8_t sk[32], uint64_t now,
                    struct teex_err *err) {
  uint8_t nonce[32], spki[32], addr[20];
  teex_random(nonce, 32);
  teex_random(spki, 32);
  struct teex_buf ev;
  quote_as(f->worker_tee, sk, nonce, spki, &ev, addr);
  struct teex_tee_identity id;
  int rc = teex_sm_check_enclave(f->sm, ev.data, ev.len, nonce, spki, "worker",
                                 now, &id, err);
  teex_buf_free(&ev);
  return rc;
}

struct seen {
  size_t n;
  struct teex_sm_enclave e[4];
};

static int collect(const struct teex_sm_enclave *e, void *arg) {
  struct seen *s = arg;
  if (s->n < 4)
    s->e[s->n] = *e;
  s->n++;
  return 0;
}

static const struct teex_sm_enclave *find(const struct seen *s,
                                          const uint8_t addr[20]) {
  for (size_t i = 0; i < s->n && i < 4; i++)
    if (memcmp(s->e[i].address, addr, 20) == 0)
      return &s->e[i];
  return NULL;
}

static void test_revocation(void **state) {
  struct fx *f = *state;
  struct teex_err err;
  uint8_t ska[32], skb[32], pub[64], a[20], b[20];
  assert_int_equal(teex_secp256k1_keypair(ska, pub), 0);
  teex_eth_address(pub, a);
  assert_int_equal(teex_secp256k1_keypair(skb, pub), 0);
  teex_eth_address(pub, b);
  const uint8_t *mr = teex_tee_self(f->worker_tee)->mr_enclave;
  uint64_t now = (uint64_t)time(NULL);

  /* Two workers of the same build are checked and recorded. */
  assert_int_equal(check_as(f, ska, now - 10, &err), 0);
  assert_int_equal(check_as(f, ska, now, &err), 0);
  assert_int_equal(check_as(f, skb, now, &err), 0);
  struct seen s;
  memset(&s, 0, sizeof s);
  assert_int_equal(teex_sm_enclaves(f->sm, collect, &s, &err), 0);
  assert_int_equal(s.n, 2);
  const struct teex_sm_enclave *ea = find(&s, a);
  assert_non_null(ea);
  assert_string_equal(ea->role, "worker");
  assert_memory_equal(ea->mr_enclave, mr, 32);
  assert_int_equal(ea->first_seen, now - 10);
  assert_int_equal(ea->last_attested, now);
  assert_int_equal(ea->revoked, 0);

  /* Revoking worker a's enclave: a is refused from now on, b is not. */
  char long_reason[TEEX_SM_REASON_MAX + 2];
  memset(long_reason, 'x', sizeof long_reason - 1);
  long_reason[sizeof long_reason - 1] = '\0';
  assert_int_equal(
      teex_sm_revoke(f->sm, TEEX_SM_REVOKE_ENCLAVE, a, long_reason, now, &err),
      TEEX_EINVAL);
  assert_int_equal(check_as(f, ska, now, &err), 0); /* nothing was kept */
  assert_int_equal(teex_sm_revoke(f->sm, TEEX_SM_REVOKE_ENCLAVE, a,
                                  "key extracted", now + 1, &err),
                   0);
  assert_int_equal(check_as(f, ska, now + 2, &err), TEEX_EPOLICY);
  assert_non_null(strstr(err.msg, "enclave revoked"));
  assert_non_null(strstr(err.msg, "key extracted"));
  assert_int_equal(check_as(f, skb, now + 2, &err), 0);
  /* Revoking again keeps the first time and reason. */
  assert_int_equal(
      teex_sm_revoke(f->sm, TEEX_SM_REVOKE_ENCLAVE, a, "other", now + 5, &err),
      0);
  memset(&s, 0, sizeof s);
  assert_int_equal(teex_sm_enclaves(f->sm, collect, &s, &err), 0);
  ea = find(&s, a);
  assert_non_null(ea);
  assert_int_equal(ea->revoked, 1);
  assert_int_equal(ea->revoked_at, now + 1);
  assert_string_equal(ea->reason, "key extracted");
  assert_int_equal(ea->last_attested, now); /* the refused check not counted */
  assert_int_equal(find(&s, b)->revoked, 0);
  assert_int_equal(find(&s, b)->last_attested, now + 2);

  /* Revoking the build: every worker of it is refused, even one never
   * seen before; it holds across a restart of the SM. */
  assert_int_equal(teex_sm_revoke(f->sm, TEEX_SM_REVOKE_MEASUREMENT, mr,
                                  "CVE in runtime", now + 3, &err),
                   0);
  teex_sm_close(f->sm);
  f->sm = NULL;
  assert_int_equal(teex_sm_open(f->sm_tee, &f->cfg, &f->sm, &err), 0);
  assert_int_equal(check_as(f, skb, now + 4, &err), TEEX_EPOLICY);
  assert_non_null(strstr(err.msg, "measurement revoked"));
  assert_non_null(strstr(err.msg, "CVE in runtime"));
  uint8_t skc[32];
  assert_int_equal(teex_secp256k1_keypair(skc, pub), 0);
  assert_int_equal(check_as(f, skc, now + 4, &err), TEEX_EPOLICY);
  memset(&s, 0, sizeof s);
  assert_int_equal(teex_sm_enclaves(f->sm, collect, &s, &err), 0);
  assert_int_equal(s.n, 2); /* refused enclaves are not recorded */
  assert_int_equal(find(&s, b)->revoked, 1);
  assert_string_equal(find(&s, b)->reason, "CVE in runtime");
  assert_string_equal(find(&s, a)->reason, "key extracted");
  assert_int_equal(
      teex_sm_revoke(f->sm, (enum teex_sm_revoke_kind)9, mr, NULL, now, &err),
      TEEX_EINVAL);
  teex_wipe(ska, 32);
  teex_wipe(skb, 32);
  teex_wipe(skc, 32);
}

int main(void) {
  assert_int_equal(teex_crypto_init(), 0);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_register_and_listing, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_register_refusals, setup, teardown),
      cmocka_unit_test_setup_teardown(test_enclave_checks_and_keys, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_registration_statement, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_restart_and_no_clear_keys, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_revocation, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
