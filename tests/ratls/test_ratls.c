/* Tests of RA-TLS certificates: make and verify, a certificate whose key is
 * not the one the evidence binds, the extension parser, and real TLS 1.3
 * handshakes (memory BIOs) that complete only when the peer's evidence
 * passes the policy. */
#include "testutil.h"

#include "teex/crypto.h"
#include "teex/ratls.h"
#include "teex/tee.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <string.h>

struct fixture {
  char *dir;
  uint8_t root[32];
  struct teex_tee *worker, *sm;
};

static struct teex_tee *open_tee(const char *dir, const char *role) {
  struct teex_tee_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.data_dir = dir;
  cfg.role = role;
  cfg.svn = 1;
  struct teex_tee *tee = NULL;
  struct teex_err err;
  if (teex_tee_open(&cfg, &tee, &err) != 0)
    fprintf(stderr, "open: %s\n", err.msg);
  return tee;
}

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof *f);
  struct teex_err err;
  f->dir = tu_mkdtemp("ratls");
  if (teex_tee_sim_init(f->dir, f->root, &err) != 0)
    return -1;
  f->worker = open_tee(f->dir, "worker");
  f->sm = open_tee(f->dir, "sm");
  if (f->worker == NULL || f->sm == NULL)
    return -1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  teex_tee_close(f->worker);
  teex_tee_close(f->sm);
  tu_rmtree(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

static void policy_for(struct teex_tee_policy *p, const struct fixture *f,
                       const struct teex_tee *tee) {
  teex_tee_policy_init(p);
  teex_tee_policy_add_root(p, f->root);
  teex_tee_policy_add_measurement(p, teex_tee_self(tee)->mr_enclave);
  p->allow_simulated = 1;
}

static void test_cert_verify(void **state) {
  struct fixture *f = *state;
  uint8_t sk[32], pub[64], xpk[32], xsk[32];
  assert_int_equal(teex_secp256k1_keypair(sk, pub), 0);
  assert_int_equal(teex_x25519_keypair(xpk, xsk), 0);
  struct teex_ratls_keys keys = {pub, xpk, NULL};
  EVP_PKEY *key;
  X509 *cert;
  struct teex_err err;
  assert_int_equal(teex_ratls_identity_new(f->worker, &keys, &key, &cert, &err),
                   0);
  struct teex_tee_policy p;
  policy_for(&p, f, f->worker);
  struct teex_tee_identity id;
  assert_int_equal(teex_ratls_verify_cert(cert, &p, NULL, &id, &err), 0);
  assert_string_equal(id.role, "worker");
  assert_true(id.has_binding && id.binding.has_tls &&
              id.binding.has_secp256k1 && id.binding.has_x25519);
  uint8_t addr[20];
  teex_eth_address(pub, addr);
  assert_memory_equal(id.binding.eth_address, addr, 20);
  assert_memory_equal(id.binding.x25519_pub, xpk, 32);
  /* The policy for another role's measurement refuses it. */
  policy_for(&p, f, f->sm);
  assert_int_equal(teex_ratls_verify_cert(cert, &p, NULL, &id, &err),
                   TEEX_EPOLICY);
  assert_non_null(strstr(err.msg, "wrong measurement"));
  /* A nonce the certificate was not made for. */
  policy_for(&p, f, f->worker);
  uint8_t nonce[32] = {1};
  assert_int_equal(teex_ratls_verify_cert(cert, &p, nonce, &id, &err),
                   TEEX_EREPLAY);
  X509_free(cert);
  EVP_PKEY_free(key);
  /* ... and one it was. */
  keys.nonce = nonce;
  assert_int_equal(teex_ratls_identity_new(f->worker, &keys, &key, &cert, &err),
                   0);
  assert_int_equal(teex_ratls_verify_cert(cert, &p, nonce, &id, &err), 0);
  X509_free(cert);
  EVP_PKEY_free(key);
}

/* A certificate for key B carrying the evidence made for key A's cert. */
static void test_cert_key_mismatch(void **state) {
  struct fixture *f = *state;
  EVP_PKEY *key_a;
  X509 *cert_a;
  struct teex_err err;
  assert_int_equal(
      teex_ratls_identity_new(f->worker, NULL, &key_a, &cert_a, &err), 0);
  ASN1_OBJECT *obj = OBJ_txt2obj(TEEX_RATLS_OID_EVIDENCE, 1);
  int idx = X509_get_ext_by_OBJ(cert_a, obj, -1);
  assert_true(idx >= 0);
  X509_EXTENSION *ext = X509_get_ext(cert_a, idx);

  EVP_PKEY *key_b = EVP_EC_gen("P-256");
  X509 *cert_b = X509_new();
  assert_non_null(key_b);
  X509_set_version(cert_b, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert_b), 1);
  X509_set_subject_name(cert_b, X509_get_subject_name(cert_a));
  X509_set_issuer_name(cert_b, X509_get_subject_name(cert_a));
  X509_set1_notBefore(cert_b, X509_get0_notBefore(cert_a));
  X509_set1_notAfter(cert_b, X509_get0_notAfter(cert_a));
  X509_set_pubkey(cert_b, key_b);
  assert_true(X509_add_ext(cert_b, ext, -1));
  assert_true(X509_sign(cert_b, key_b, EVP_sha256()) > 0);

  struct teex_tee_policy p;
  policy_for(&p, f, f->worker);
  assert_int_equal(teex_ratls_verify_cert(cert_a, &p, NULL, NULL, &err), 0);
  assert_int_equal(teex_ratls_verify_cert(cert_b, &p, NULL, NULL, &err),
                   TEEX_EATTEST);
  assert_non_null(strstr(err.msg, "does not match the evidence"));

  /* The right key but a broken self-signature. */
  X509 *cert_c = X509_dup(cert_a);
  const ASN1_BIT_STRING *sig;
  X509_get0_signature(&sig, NULL, cert_c);
  ((ASN1_BIT_STRING *)sig)->data[10] ^= 1;
  assert_int_equal(teex_ratls_verify_cert(cert_c, &p, NULL, NULL, &err),
                   TEEX_EATTEST);
  assert_non_null(strstr(err.msg, "self-signature"));

  /* A certificate without evidence, and one with two extensions. */
  X509 *cert_d = X509_new();
  X509_set_pubkey(cert_d, key_b);
  assert_int_equal(teex_ratls_verify_cert(cert_d, &p, NULL, NULL, &err),
                   TEEX_EATTEST);
  assert_non_null(strstr(err.msg, "no teex evidence"));
  X509 *cert_e = X509_dup(cert_a);
  assert_true(X509_add_ext(cert_e, ext, -1));
  assert_int_equal(teex_ratls_verify_cert(cert_e, &p, NULL, NULL, &err),
                   TEEX_EATTEST);
  assert_non_null(strstr(err.msg, "two evidence"));

  X509_free(cert_e);
  X509_free(cert_d);
  X509_free(cert_c);
  X509_free(cert_b);
  EVP_PKEY_free(key_b);
  ASN1_OBJECT_free(obj);
  X509_free(cert_a);
  EVP_PKEY_free(key_a);
}

static void test_ext_parse(void **state) {
  (void)state;
  const uint8_t *ev;
  size_t n;
  struct teex_err err;
  uint8_t ok[] = {0x04, 0x03, 'a', 'b', 'c'};
  assert_int_equal(teex_ratls_ext_parse(ok, sizeof ok, &ev, &n, &err), 0);
  assert_int_equal(n, 3);
  assert_memory_equal(ev, "abc", 3);
  uint8_t trailing[] = {0x04, 0x02, 'a', 'b', 'c'};
  assert_int_equal(
      teex_ratls_ext_parse(trailing, sizeof trailing, &ev, &n, &err),
      TEEX_EFORMAT);
  uint8_t nonminimal[] = {0x04, 0x81, 0x03, 'a', 'b', 'c'};
  assert_int_equal(
      teex_ratls_ext_parse(nonminimal, sizeof nonminimal, &ev, &n, &err),
      TEEX_EFORMAT);
  uint8_t seq[] = {0x30, 0x00};
  assert_int_equal(teex_ratls_ext_parse(seq, sizeof seq, &ev, &n, &err),
                   TEEX_EFORMAT);
  uint8_t huge[] = {0x04, 0x84, 0x7f, 0xff, 0xff, 0xff};
  assert_int_equal(teex_ratls_ext_parse(huge, sizeof huge, &ev, &n, &err),
                   TEEX_ETOOBIG);
}

/* ---- handshakes over memory BIOs ---- */

struct endpoint {
  SSL_CTX *ctx;
  EVP_PKEY *key;
  X509 *cert;
};

static void endpoint_init(struct endpoint *e, int server,
                          struct teex_tee *tee) {
  memset(e, 0, sizeof *e);
  e->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  assert_non_null(e->ctx);
  SSL_CTX_set_min_proto_version(e->ctx, TLS1_3_VERSION);
  if (tee != NULL) {
    struct teex_err err;
    assert_int_equal(
        teex_ratls_identity_new(tee, NULL, &e->key, &e->cert, &err), 0);
    assert_int_equal(
        teex_ratls_ssl_ctx_use_identity(e->ctx, e->key, e->cert, &err), 0);
  }
}

static void endpoint_free(struct endpoint *e) {
  SSL_CTX_free(e->ctx);
  X509_free(e->cert);
  EVP_PKEY_free(e->key);
}

/* Runs a handshake; 1 when both sides completed it. */
static int handshake(SSL_CTX *cctx, SSL_CTX *sctx, SSL **c_out, SSL **s_out) {
  SSL *c = SSL_new(cctx), *s = SSL_new(sctx);
  BIO *cb, *sb;
  assert_int_equal(BIO_new_bio_pair(&cb, 0, &sb, 0), 1);
  SSL_set_bio(c, cb, cb);
  SSL_set_bio(s, sb, sb);
  SSL_set_connect_state(c);
  SSL_set_accept_state(s);
  int cdone = 0, sdone = 0, failed = 0;
  for (int i = 0; i < 50 && !(cdone && sdone) && !failed; i++) {
    if (!cdone) {
      int r = SSL_do_handshake(c);
      if (r == 1)
        cdone = 1;
      else if (SSL_get_error(c, r) != SSL_ERROR_WANT_READ)
        failed = 1;
    }
    if (!sdone) {
      int r = SSL_do_handshake(s);
      if (r == 1)
        sdone = 1;
      else if (SSL_get_error(s, r) != SSL_ERROR_WANT_READ)
        failed = 1;
    }
  }
  ERR_clear_error();
  /* TLS 1.3: the server verifies the client certificate after the client
   * considers the handshake done; application data proves it completed. */
  int ok = cdone && sdone && !failed;
  if (ok) {
    char buf[8];
    ok = SSL_write(c, "ping", 4) == 4 && SSL_read(s, buf, sizeof buf) == 4;
  }
  *c_out = c;
  *s_out = s;
  return ok;
}

static void test_handshake_server_only(void **state) {
  struct fixture *f = *state;
  struct endpoint srv, cli;
  endpoint_init(&srv, 1, f->worker);
  endpoint_init(&cli, 0, NULL);
  struct teex_tee_policy p;
  policy_for(&p, f, f->worker);
  struct teex_err err;
  assert_int_equal(teex_ratls_ssl_ctx_set_verify(cli.ctx, &p, 0, &err), 0);
  SSL *c, *s;
  assert_true(handshake(cli.ctx, srv.ctx, &c, &s));
  assert_int_equal(SSL_version(c), TLS1_3_VERSION);
  struct teex_tee_identity id;
  assert_int_equal(teex_ratls_peer_identity(c, &id), 0);
  assert_string_equal(id.role, "worker");
  assert_memory_equal(id.mr_enclave, teex_tee_self(f->worker)->mr_enclave, 32);
  assert_null(teex_ratls_peer_error(c));
  SSL_free(c);
  SSL_free(s);

  /* A client whose policy wants the sm's measurement never completes. */
  struct teex_tee_policy wrong;
  policy_for(&wrong, f, f->sm);
  struct endpoint cli2;
  endpoint_init(&cli2, 0, NULL);
  assert_int_equal(teex_ratls_ssl_ctx_set_verify(cli2.ctx, &wrong, 0, &err), 0);
  assert_false(handshake(cli2.ctx, srv.ctx, &c, &s));
  assert_non_null(teex_ratls_peer_error(c));
  assert_non_null(strstr(teex_ratls_peer_error(c), "wrong measurement"));
  assert_int_equal(teex_ratls_peer_identity(c, &id), TEEX_ESTATE);
  assert_false(SSL_is_init_finished(s) && SSL_is_init_finished(c));
  SSL_free(c);
  SSL_free(s);
  endpoint_free(&cli2);
  endpoint_free(&cli);
  endpoint_free(&srv);
}

static void test_handshake_mutual(void **state) {
  struct fixture *f = *state;
  struct endpoint srv, cli;
  endpoint_init(&srv, 1, f->sm);
  endpoint_init(&cli, 0, f->worker);
  struct teex_tee_policy want_sm, want_worker, want_sm_only;
  policy_for(&want_sm, f, f->sm);
  policy_for(&want_worker, f, f->worker);
  struct teex_err err;
  assert_int_equal(teex_ratls_ssl_ctx_set_verify(cli.ctx, &want_sm, 0, &err),
                   0);
  assert_int_equal(teex_ratls_ssl_ctx_set_verify(srv.ctx, &want_worker,
                                                 TEEX_RATLS_MUTUAL, &err),
                   0);
  SSL *c, *s;
  assert_true(handshake(cli.ctx, srv.ctx, &c, &s));
  struct teex_tee_identity id;
  assert_int_equal(teex_ratls_peer_identity(s, &id), 0);
  assert_string_equal(id.role, "worker");
  assert_int_equal(teex_ratls_peer_identity(c, &id), 0);
  assert_string_equal(id.role, "sm");
  SSL_free(c);
  SSL_free(s);

  /* The server refuses a client whose measurement it does not allow: no
   * application data flows. */
  policy_for(&want_sm_only, f, f->sm);
  SSL_CTX *srv2 = SSL_CTX_new(TLS_server_method());
  assert_int_equal(
      teex_ratls_ssl_ctx_use_identity(srv2, srv.key, srv.cert, &err), 0);
  assert_int_equal(teex_ratls_ssl_ctx_set_verify(srv2, &want_sm_only,
                                                 TEEX_RATLS_MUTUAL, &err),
                   0);
  assert_false(handshake(cli.ctx, srv2, &c, &s));
  assert_non_null(teex_ratls_peer_error(s));
  assert_non_null(strstr(teex_ratls_peer_error(s), "wrong measurement"));
  SSL_free(c);
  SSL_free(s);

  /* A mutual server refuses a client without a certificate. */
  struct endpoint anon;
  endpoint_init(&anon, 0, NULL);
  assert_int_equal(teex_ratls_ssl_ctx_set_verify(anon.ctx, &want_sm, 0, &err),
                   0);
  assert_false(handshake(anon.ctx, srv.ctx, &c, &s));
  SSL_free(c);
  SSL_free(s);
  endpoint_free(&anon);
  SSL_CTX_free(srv2);
  endpoint_free(&cli);
  endpoint_free(&srv);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cert_verify),
      cmocka_unit_test(test_cert_key_mismatch),
      cmocka_unit_test(test_ext_parse),
      cmocka_unit_test(test_handshake_server_only),
      cmocka_unit_test(test_handshake_mutual),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
