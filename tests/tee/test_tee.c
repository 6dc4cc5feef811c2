/* Tests of the tee module: evidence round trip and every tamper case,
 * report-data binding, policy rules and the policy file, sealing rules. */
#include "testutil.h"

#include "tee/simkeys.h"
#include "teex/crypto.h"
#include "teex/evidence.h"
#include "teex/seal.h"
#include "teex/tee.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

struct fixture {
  char *dir;  /* platform 1 */
  char *dir2; /* platform 2, another network root */
  uint8_t root[32], root2[32];
};

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof *f);
  struct teex_err err;
  f->dir = tu_mkdtemp("tee");
  f->dir2 = tu_mkdtemp("tee2");
  if (teex_tee_sim_init(f->dir, f->root, &err) != 0 ||
      teex_tee_sim_init(f->dir2, f->root2, &err) != 0) {
    fprintf(stderr, "init: %s\n", err.msg);
    return -1;
  }
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  tu_rmtree(f->dir);
  tu_rmtree(f->dir2);
  free(f->dir);
  free(f->dir2);
  free(f);
  return 0;
}

static struct teex_tee *open_tee(const char *dir, const char *role,
                                 uint16_t svn, int debug) {
  struct teex_tee_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.data_dir = dir;
  cfg.role = role;
  cfg.svn = svn;
  cfg.product_id = 7;
  cfg.debug = debug;
  struct teex_tee *tee = NULL;
  struct teex_err err;
  teex_err_clear(&err);
  int rc = teex_tee_open(&cfg, &tee, &err);
  if (rc != 0)
    fprintf(stderr, "open: %s\n", err.msg);
  assert_int_equal(rc, 0);
  return tee;
}

/* A policy that accepts tee's own identity. */
static void own_policy(struct teex_tee_policy *p, const struct fixture *f,
                       const struct teex_tee *tee) {
  teex_tee_policy_init(p);
  teex_tee_policy_add_root(p, f->root);
  teex_tee_policy_add_measurement(p, teex_tee_self(tee)->mr_enclave);
  p->allow_simulated = 1;
}

static void quote_keys(struct teex_tee *tee, struct teex_tee_binding *b,
                       struct teex_buf *ev) {
  memset(b, 0, sizeof *b);
  uint8_t sk[32], xsk[32];
  assert_int_equal(teex_secp256k1_keypair(sk, b->secp256k1_pub), 0);
  b->has_secp256k1 = 1;
  assert_int_equal(teex_x25519_keypair(b->x25519_pub, xsk), 0);
  b->has_x25519 = 1;
  teex_random(b->tls_spki_sha256, 32);
  b->has_tls = 1;
  teex_buf_init(ev, TEEX_EVIDENCE_MAX, 0);
  struct teex_err err;
  assert_int_equal(teex_tee_quote_binding(tee, b, ev, &err), 0);
}

static void expect_fail(const struct teex_buf *ev,
                        const struct teex_tee_policy *p, const uint8_t *nonce,
                        uint64_t now, int code, const char *reason) {
  struct teex_err err;
  teex_err_clear(&err);
  int rc = teex_tee_verify(ev->data, ev->len, p, nonce, now, NULL, &err);
  if (rc != code || strstr(err.msg, reason) == NULL)
    fprintf(stderr, "want %d \"%s\", got %d \"%s\"\n", code, reason, rc,
            err.msg);
  assert_int_equal(rc, code);
  assert_non_null(strstr(err.msg, reason));
  assert_null(strchr(err.msg, '\n')); /* one line */
}

static void test_round_trip(void **state) {
  struct fixture *f = *state;
  struct teex_tee *tee = open_tee(f->dir, "worker", 2, 0);
  struct teex_tee_binding b;
  struct teex_buf ev;
  quote_keys(tee, &b, &ev);
  struct teex_tee_policy p;
  own_policy(&p, f, tee);
  teex_tee_policy_add_role(&p, "worker");
  struct teex_tee_identity id;
  struct teex_err err;
  assert_int_equal(
      teex_tee_verify(ev.data, ev.len, &p, NULL, b.issued_at, &id, &err), 0);
  const struct teex_tee_identity *self = teex_tee_self(tee);
  assert_memory_equal(id.mr_enclave, self->mr_enclave, 32);
  assert_memory_equal(id.mr_signer, self->mr_signer, 32);
  assert_memory_equal(id.root, f->root, 32);
  assert_int_equal(id.svn, 2);
  assert_int_equal(id.product_id, 7);
  assert_int_equal(id.debug, 0);
  assert_int_equal(id.tee_type, TEEX_TEE_TYPE_SIM);
  assert_true(id.simulated);
  assert_string_equal(id.role, "worker");
  assert_int_equal(id.issued_at, b.issued_at);
  assert_true(id.has_binding);
  assert_memory_equal(id.binding.secp256k1_pub, b.secp256k1_pub, 64);
  assert_memory_equal(id.binding.x25519_pub, b.x25519_pub, 32);
  assert_memory_equal(id.binding.tls_spki_sha256, b.tls_spki_sha256, 32);
  uint8_t addr[20];
  teex_eth_address(b.secp256k1_pub, addr);
  assert_memory_equal(id.binding.eth_address, addr, 20);
  uint8_t rd[64];
  assert_int_equal(teex_tee_report_data(&b, rd), 0);
  assert_memory_equal(id.report_data, rd, 64);
  /* Another role of the same binary is another measurement. */
  struct teex_tee *other = open_tee(f->dir, "sm", 2, 0);
  assert_memory_not_equal(teex_tee_self(other)->mr_enclave, self->mr_enclave,
                          32);
  teex_tee_close(other);
  teex_buf_free(&ev);
  teex_tee_close(tee);
}

/* Every single-byte change of the evidence is rejected, with and without a
 * binding. */
static void test_every_byte_flip(void **state) {
  struct fixture *f = *state;
  struct teex_tee *tee = open_tee(f->dir, "worker", 1, 0);
  struct teex_tee_policy p;
  own_policy(&p, f, tee);
  p.max_age = 0;
  for (int with_binding = 0; with_binding < 2; with_binding++) {
    struct teex_buf ev;
    struct teex_tee_binding b;
    if (with_binding) {
      quote_keys(tee, &b, &ev);
    } else {
      uint8_t rd[64];
      teex_random(rd, sizeof rd);
      teex_buf_init(&ev, TEEX_EVIDENCE_MAX, 0);
      struct teex_err err;
      assert_int_equal(teex_tee_quote(tee, rd, 1000, NULL, &ev, &err), 0);
    }
    struct teex_err err;
    assert_int_equal(
        teex_tee_verify(ev.data, ev.len, &p, NULL, 2000000000, NULL, &err), 0);
    for (size_t i = 0; i < ev.len; i++) {
      for (int m = 0; m < 2; m++) {
        uint8_t mask = m ? 0xff : 0x01;
        ev.data[i] ^= mask;
        int rc =
            teex_tee_verify(ev.data, ev.len, &p, NULL, 2000000000, NULL, &err);
        if (rc == 0)
          fprintf(stderr, "flip of byte %zu (mask %02x) accepted\n", i, mask);
        assert_int_not_equal(rc, 0);
        ev.data[i] ^= mask;
      }
    }
    /* Truncation at every length, and an extra byte. */
    for (size_t n = 0; n < ev.len; n++)
      assert_int_not_equal(
          teex_tee_verify(ev.data, n, &p, NULL, 2000000000, NULL, &err), 0);
    assert_int_equal(teex_buf_putc(&ev, 0), 0);
    assert_int_not_equal(
        teex_tee_verify(ev.data, ev.len, &p, NULL, 2000000000, NULL, &err), 0);
    teex_buf_free(&ev);
  }
  teex_tee_close(tee);
}

static void test_policy_failures(void **state) {
  struct fixture *f = *state;
  struct teex_tee *tee = open_tee(f->dir, "worker", 2, 0);
  struct teex_tee_binding b;
  struct teex_buf ev;
  quote_keys(tee, &b, &ev);
  uint64_t t = b.issued_at;
  struct teex_tee_policy p;

  /* Evidence from another network's root. */
  struct teex_tee *tee2 = open_tee(f->dir2, "worker", 2, 0);
  struct teex_tee_binding b2;
  struct teex_buf ev2;
  quote_keys(tee2, &b2, &ev2);
  own_policy(&p, f, tee);
  expect_fail(&ev2, &p, NULL, t, TEEX_EATTEST, "untrusted root");
  teex_tee_policy_add_root(&p, f->root2); /* trusting both roots works */
  struct teex_err err;
  assert_int_equal(teex_tee_verify(ev2.data, ev2.len, &p, NULL, t, NULL, &err),
                   0);

  own_policy(&p, f, tee);
  p.allow_simulated = 0;
  expect_fail(&ev, &p, NULL, t, TEEX_EPOLICY, "simulated evidence not allowed");

  teex_tee_policy_init(&p);
  teex_tee_policy_add_root(&p, f->root);
  p.allow_simulated = 1;
  expect_fail(&ev, &p, NULL, t, TEEX_EPOLICY, "no measurement and no signer");
  uint8_t other[32];
  teex_random(other, 32);
  teex_tee_policy_add_measurement(&p, other);
  expect_fail(&ev, &p, NULL, t, TEEX_EPOLICY, "wrong measurement");

  /* Signer and svn. */
  teex_tee_policy_init(&p);
  teex_tee_policy_add_root(&p, f->root);
  p.allow_simulated = 1;
  struct teex_tee_signer s;
  memset(&s, 0, sizeof s);
  memcpy(s.mr_signer, teex_tee_self(tee)->mr_signer, 32);
  s.product_id = 7;
  s.min_svn = 3;
  teex_tee_policy_add_signer(&p, &s);
  expect_fail(&ev, &p, NULL, t, TEEX_EPOLICY, "svn too low");
  p.signers[0].min_svn = 2;
  assert_int_equal(teex_tee_verify(ev.data, ev.len, &p, NULL, t, NULL, &err),
                   0);
  p.signers[0].product_id = 8;
  expect_fail(&ev, &p, NULL, t, TEEX_EPOLICY, "wrong signer");
  p.signers[0].any_product = 1;
  assert_int_equal(teex_tee_verify(ev.data, ev.len, &p, NULL, t, NULL, &err),
                   0);

  /* Roles. */
  own_policy(&p, f, tee);
  teex_tee_policy_add_role(&p, "sm");
  expect_fail(&ev, &p, NULL, t, TEEX_EPOLICY, "wrong role");
  teex_tee_policy_add_role(&p, "worker");
  assert_int_equal(teex_tee_verify(ev.data, ev.len, &p, NULL, t, NULL, &err),
                   0);

  /* Age. */
  own_policy(&p, f, tee);
  p.max_age = 60;
  assert_int_equal(
      teex_tee_verify(ev.data, ev.len, &p, NULL, t + 60, NULL, &err), 0);
  expect_fail(&ev, &p, NULL, t + 61, TEEX_EEXPIRED, "expired");
  expect_fail(&ev, &p, NULL, t - TEEX_TEE_CLOCK_SKEW - 1, TEEX_EEXPIRED,
              "in the future");
  p.max_age = 0;
  assert_int_equal(
      teex_tee_verify(ev.data, ev.len, &p, NULL, t + 100000000, NULL, &err), 0);

  /* Nonce. */
  own_policy(&p, f, tee);
  uint8_t nonce[32];
  teex_random(nonce, 32);
  expect_fail(&ev, &p, nonce, t, TEEX_EREPLAY, "carries no nonce");
  struct teex_tee_binding bn;
  struct teex_buf evn;
  memset(&bn, 0, sizeof bn);
  bn.has_nonce = 1;
  memcpy(bn.nonce, nonce, 32);
  teex_buf_init(&evn, TEEX_EVIDENCE_MAX, 0);
  assert_int_equal(teex_tee_quote_binding(tee, &bn, &evn, &err), 0);
  assert_int_equal(
      teex_tee_verify(evn.data, evn.len, &p, nonce, bn.issued_at, NULL, &err),
      0);
  nonce[0] ^= 1;
  expect_fail(&evn, &p, nonce, bn.issued_at, TEEX_EREPLAY, "nonce mismatch");

  teex_buf_free(&evn);
  teex_buf_free(&ev2);
  teex_buf_free(&ev);
  teex_tee_close(tee2);
  teex_tee_close(tee);
}

static void test_debug_forbidden(void **state) {
  struct fixture *f = *state;
  struct teex_tee *tee = open_tee(f->dir, "worker", 1, 1);
  struct teex_tee_binding b;
  struct teex_buf ev;
  quote_keys(tee, &b, &ev);
  struct teex_tee_policy p;
  own_policy(&p, f, tee);
  expect_fail(&ev, &p, NULL, b.issued_at, TEEX_EPOLICY, "debug");
  p.allow_debug = 1;
  struct teex_tee_identity id;
  struct teex_err err;
  assert_int_equal(
      teex_tee_verify(ev.data, ev.len, &p, NULL, b.issued_at, &id, &err), 0);
  assert_int_equal(id.debug, 1);
  teex_buf_free(&ev);
  teex_tee_close(tee);
}

static void test_binding(void **state) {
  struct fixture *f = *state;
  struct teex_tee_binding b, d;
  memset(&b, 0, sizeof b);
  snprintf(b.role, sizeof b.role, "dispatcher");
  b.issued_at = 1700000000;
  b.has_tls = 1;
  memset(b.tls_spki_sha256, 0xab, 32);
  b.has_nonce = 1;
  memset(b.nonce, 0x11, 32);
  uint8_t enc[TEEX_TEE_BINDING_MAX];
  size_t n;
  struct teex_err err;
  assert_int_equal(teex_tee_binding_encode(&b, enc, &n), 0);
  assert_memory_equal(enc, "teex-report-data-v1", 20);
  assert_int_equal(teex_tee_binding_decode(enc, n, &d, &err), 0);
  assert_string_equal(d.role, "dispatcher");
  assert_int_equal(d.issued_at, b.issued_at);
  assert_true(d.has_tls && d.has_nonce && !d.has_x25519 && !d.has_secp256k1);
  uint8_t rd[64], sha[64];
  assert_int_equal(teex_tee_report_data(&b, rd), 0);
  teex_sha512(enc, n, sha);
  assert_memory_equal(rd, sha, 64);
  assert_int_equal(teex_tee_report_data_check(&b, rd, &err), 0);
  /* Each bound item changes the report data. */
  struct teex_tee_binding c = b;
  c.tls_spki_sha256[5] ^= 1;
  assert_int_equal(teex_tee_report_data_check(&c, rd, &err), TEEX_EATTEST);
  assert_non_null(strstr(err.msg, "does not match the bound keys"));
  c = b;
  c.issued_at++;
  assert_int_equal(teex_tee_report_data_check(&c, rd, &err), TEEX_EATTEST);
  c = b;
  c.has_nonce = 0;
  assert_int_equal(teex_tee_report_data_check(&c, rd, &err), TEEX_EATTEST);
  c = b;
  snprintf(c.role, sizeof c.role, "worker");
  assert_int_equal(teex_tee_report_data_check(&c, rd, &err), TEEX_EATTEST);
  /* Strict decoding: trailing byte, wrong order, bad role. */
  enc[n] = 0;
  assert_int_equal(teex_tee_binding_decode(enc, n + 1, &d, &err), TEEX_EFORMAT);
  uint8_t swapped[TEEX_TEE_BINDING_MAX];
  memcpy(swapped, enc, n);
  swapped[20] = 2; /* role field tagged as issued_at: then issued_at repeats */
  assert_int_equal(teex_tee_binding_decode(swapped, n, &d, &err), TEEX_EFORMAT);
  snprintf(c.role, sizeof c.role, "Bad Role");
  assert_int_equal(teex_tee_binding_encode(&c, enc, &n), TEEX_EINVAL);

  /* A quote refuses a binding that is not its report data, and evidence
   * whose carried binding was swapped for another is rejected. */
  struct teex_tee *tee = open_tee(f->dir, "worker", 1, 0);
  struct teex_buf ev;
  struct teex_tee_binding qb;
  quote_keys(tee, &qb, &ev);
  uint8_t wrong[64];
  teex_random(wrong, 64);
  struct teex_buf ev2;
  teex_buf_init(&ev2, TEEX_EVIDENCE_MAX, 0);
  assert_int_equal(teex_tee_quote(tee, wrong, qb.issued_at, &qb, &ev2, &err),
                   TEEX_EINVAL);
  struct teex_tee_policy p;
  own_policy(&p, f, tee);
  struct teex_tee_binding other = qb;
  other.x25519_pub[0] ^= 1;
  uint8_t oenc[TEEX_TEE_BINDING_MAX];
  size_t olen;
  assert_int_equal(teex_tee_binding_encode(&other, oenc, &olen), 0);
  memcpy(ev.data + ev.len - olen, oenc, olen);
  expect_fail(&ev, &p, NULL, qb.issued_at, TEEX_EATTEST,
              "report data does not match the bound keys");
  teex_buf_free(&ev2);
  teex_buf_free(&ev);
  teex_tee_close(tee);
}

static void test_evidence_limits(void **state) {
  (void)state;
  struct teex_evidence e;
  struct teex_err err;
  uint8_t big[TEEX_EVIDENCE_MAX + 1];
  memset(big, 0, sizeof big);
  assert_int_equal(teex_evidence_parse(big, sizeof big, &e, &err),
                   TEEX_ETOOBIG);
  assert_int_equal(teex_evidence_parse(big, 5, &e, &err), TEEX_ETRUNC);
  memcpy(big, "TXEV", 4);
  big[5] = 2; /* version 2 */
  assert_int_equal(teex_evidence_parse(big, 100, &e, &err), TEEX_EVERSION);
  big[5] = 1;
  big[8] = 0xff; /* body length way past the limit */
  assert_int_equal(teex_evidence_parse(big, 100, &e, &err), TEEX_EFORMAT);
  /* An unknown tee type is refused by verify. */
  struct teex_buf b;
  teex_buf_init(&b, TEEX_EVIDENCE_MAX, 0);
  uint8_t body[16] = {0};
  assert_int_equal(teex_evidence_encode(0x0042, body, sizeof body, NULL, 0, &b),
                   0);
  struct teex_tee_policy p;
  teex_tee_policy_init(&p);
  p.allow_any_code = 1;
  expect_fail(&b, &p, NULL, 0, TEEX_EATTEST, "unknown tee type");
  teex_buf_free(&b);
}

static void test_policy_file(void **state) {
  struct fixture *f = *state;
  char rhex[65], mhex[65];
  teex_hex_encode(f->root, 32, rhex);
  uint8_t m[32];
  memset(m, 0x5a, 32);
  teex_hex_encode(m, 32, mhex);
  char text[2048];
  snprintf(text, sizeof text,
           "# test policy\n[policy]\nroles = worker, sm\nallow_debug = "
           "false\nallow_simulated = true\nmax_age = 600\n[roots]\ndev = "
           "%s\n[measurements]\nworker-1 = %s\n[signers]\nteex = %s * 4\n",
           rhex, mhex, mhex);
  struct teex_tee_policy p;
  struct teex_err err;
  teex_tee_policy_init(&p);
  assert_int_equal(teex_tee_policy_parse(&p, text, strlen(text), &err), 0);
  assert_int_equal(p.n_roots, 1);
  assert_memory_equal(p.roots[0], f->root, 32);
  assert_int_equal(p.n_measurements, 1);
  assert_memory_equal(p.measurements[0], m, 32);
  assert_int_equal(p.n_signers, 1);
  assert_true(p.signers[0].any_product);
  assert_int_equal(p.signers[0].min_svn, 4);
  assert_int_equal(p.n_roles, 2);
  assert_string_equal(p.roles[1], "sm");
  assert_false(p.allow_debug);
  assert_true(p.allow_simulated);
  assert_int_equal(p.max_age, 600);

  static const char *bad[] = {
      "[policy]\nallow_debg = true\n", /* typo */
      "[roots]\nx = abcd\n",           /* short hash */
      "[policy]\nroles = Worker\n",    /* not a role name */
      "[signers]\nx = 00 1 2\n",       /* bad signer */
      "[policy]\nmax_age = -5\n",      /* not a number */
      "allow_debug = true\n",          /* outside a section */
      "[measurements]\nx = zz" /* bad hex */ "000000000000000000000000000000"
      "00000000000000000000000000000000\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    teex_tee_policy_init(&p);
    int rc = teex_tee_policy_parse(&p, bad[i], strlen(bad[i]), &err);
    if (rc == 0)
      fprintf(stderr, "accepted bad policy %zu\n", i);
    assert_int_not_equal(rc, 0);
  }
}

static void test_key_files(void **state) {
  struct fixture *f = *state;
  struct teex_err err;
  /* A second init of the same platform is refused. */
  assert_int_equal(teex_tee_sim_init(f->dir, NULL, &err), TEEX_EEXIST);
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/tee/platform.key", f->dir);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  snprintf(path, sizeof path, "%s/tee/root.key", f->dir);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  /* A platform key others can read is refused. */
  snprintf(path, sizeof path, "%s/tee/platform.key", f->dir);
  assert_int_equal(chmod(path, 0644), 0);
  struct teex_tee_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.data_dir = f->dir;
  cfg.role = "worker";
  struct teex_tee *tee;
  assert_int_equal(teex_tee_open(&cfg, &tee, &err), TEEX_EPERM);
  assert_int_equal(chmod(path, 0600), 0);
  /* The parser checks the certificate and the key pair. */
  size_t len;
  uint8_t *raw = tu_read_file(path, &len);
  assert_int_equal(len, TEEX_SIM_PLATFORM_FILE_LEN);
  struct teex_sim_platform plat;
  assert_int_equal(teex_sim_platform_parse(raw, len, &plat, &err), 0);
  raw[150] ^= 1; /* certificate signature */
  assert_int_equal(teex_sim_platform_parse(raw, len, &plat, &err),
                   TEEX_EFORMAT);
  raw[150] ^= 1;
  raw[60] ^= 1; /* public half of the key */
  assert_int_equal(teex_sim_platform_parse(raw, len, &plat, &err),
                   TEEX_EFORMAT);
  free(raw);
  /* A second platform of the same network: root.key copied, then init. */
  char *dir3 = tu_mkdtemp("tee3");
  char src[PATH_MAX], dst[PATH_MAX];
  snprintf(src, sizeof src, "%s/tee/root.key", f->dir);
  snprintf(dst, sizeof dst, "%s/tee", dir3);
  assert_int_equal(mkdir(dst, 0700), 0);
  snprintf(dst, sizeof dst, "%s/tee/root.key", dir3);
  size_t rlen;
  uint8_t *rk = tu_read_file(src, &rlen);
  assert_non_null(rk);
  assert_int_equal(tu_write_file(dst, rk, rlen), 0);
  assert_int_equal(chmod(dst, 0600), 0);
  free(rk);
  uint8_t root3[32];
  assert_int_equal(teex_tee_sim_init(dir3, root3, &err), 0);
  assert_memory_equal(root3, f->root, 32);
  struct teex_tee *t3 = open_tee(dir3, "worker", 1, 0);
  struct teex_tee *t1 = open_tee(f->dir, "worker", 1, 0);
  assert_memory_not_equal(teex_tee_self(t3)->platform,
                          teex_tee_self(t1)->platform, 32);
  struct teex_tee_binding b3;
  struct teex_buf ev3;
  quote_keys(t3, &b3, &ev3);
  struct teex_tee_policy p;
  own_policy(&p, f, t1); /* root 1, measurement of the same build */
  struct teex_tee_identity id3;
  assert_int_equal(
      teex_tee_verify(ev3.data, ev3.len, &p, NULL, b3.issued_at, &id3, &err),
      0);
  assert_memory_equal(id3.platform, teex_tee_self(t3)->platform, 32);
  teex_buf_free(&ev3);
  teex_tee_close(t1);
  teex_tee_close(t3);
  tu_rmtree(dir3);
  free(dir3);
  /* A missing platform says what to run. */
  cfg.data_dir = "/nonexistent-teex-dir";
  assert_int_equal(teex_tee_open(&cfg, &tee, &err), TEEX_ENOTFOUND);
  assert_non_null(strstr(err.msg, "teex tee init"));
}

/* ---- sealing ---- */

static void seal_ok(struct teex_tee *tee, enum teex_seal_policy pol,
                    const char *ctx, const char *msg, struct teex_buf *blob) {
  struct teex_err err;
  teex_buf_init(blob, 1 << 20, 0);
  assert_int_equal(
      teex_seal(tee, pol, ctx, strlen(ctx), msg, strlen(msg), blob, &err), 0);
  assert_int_equal(blob->len, strlen(msg) + TEEX_SEAL_OVERHEAD);
  /* The plaintext is not in the blob. */
  assert_null(memmem(blob->data, blob->len, msg, strlen(msg)));
}

static int unseal(struct teex_tee *tee, const char *ctx,
                  const struct teex_buf *blob, struct teex_buf *pt,
                  struct teex_err *err) {
  teex_buf_init(pt, 1 << 20, TEEX_BUF_SECRET);
  return teex_unseal(tee, ctx, strlen(ctx), blob->data, blob->len, pt, err);
}

static void test_seal_enclave(void **state) {
  struct fixture *f = *state;
  struct teex_tee *tee = open_tee(f->dir, "worker", 2, 0);
  const char *msg = "the store master key 0123456789";
  struct teex_buf blob, pt;
  struct teex_err err;
  seal_ok(tee, TEEX_SEAL_ENCLAVE, "store", msg, &blob);
  /* Same build, another context instance: reads it. */
  struct teex_tee *same = open_tee(f->dir, "worker", 2, 0);
  assert_int_equal(unseal(same, "store", &blob, &pt, &err), 0);
  assert_int_equal(pt.len, strlen(msg));
  assert_memory_equal(pt.data, msg, pt.len);
  teex_buf_free(&pt);
  /* Another context string. */
  assert_int_equal(unseal(same, "other", &blob, &pt, &err), TEEX_EAUTH);
  teex_buf_free(&pt);
  /* Another build (here: another role, so another mr_enclave). */
  struct teex_tee *other = open_tee(f->dir, "sm", 2, 0);
  assert_int_equal(unseal(other, "store", &blob, &pt, &err), TEEX_EPERM);
  assert_non_null(strstr(err.msg, "another build"));
  teex_buf_free(&pt);
  /* Same build on another platform: another platform secret. */
  struct teex_tee *far = open_tee(f->dir2, "worker", 2, 0);
  assert_int_equal(unseal(far, "store", &blob, &pt, &err), TEEX_EAUTH);
  teex_buf_free(&pt);
  /* Every single-byte flip is rejected. */
  for (size_t i = 0; i < blob.len; i++) {
    blob.data[i] ^= 0x01;
    assert_int_not_equal(unseal(same, "store", &blob, &pt, &err), 0);
    assert_int_equal(pt.len, 0);
    teex_buf_free(&pt);
    blob.data[i] ^= 0x01;
  }
  /* Truncations. */
  for (size_t n = 0; n < blob.len; n += 7) {
    teex_buf_init(&pt, 1 << 20, TEEX_BUF_SECRET);
    assert_int_not_equal(teex_unseal(same, "store", 5, blob.data, n, &pt, &err),
                         0);
    teex_buf_free(&pt);
  }
  teex_buf_free(&blob);
  teex_tee_close(far);
  teex_tee_close(other);
  teex_tee_close(same);
  teex_tee_close(tee);
}

static void test_seal_signer_svn(void **state) {
  struct fixture *f = *state;
  struct teex_tee *v1 = open_tee(f->dir, "worker", 1, 0);
  struct teex_tee *v2 = open_tee(f->dir, "worker", 2, 0);
  struct teex_tee *v3 = open_tee(f->dir, "worker", 3, 0);
  struct teex_err err;
  /* Key derivation: a newer svn derives an older svn's key, never the
   * reverse. */
  uint8_t k1[32], k1_from_v3[32], k[32];
  assert_int_equal(teex_tee_seal_key(v1, TEEX_SEAL_SIGNER, 1, k1, &err), 0);
  assert_int_equal(teex_tee_seal_key(v3, TEEX_SEAL_SIGNER, 1, k1_from_v3, &err),
                   0);
  assert_memory_equal(k1, k1_from_v3, 32);
  assert_int_equal(teex_tee_seal_key(v2, TEEX_SEAL_SIGNER, 2, k, &err), 0);
  assert_memory_not_equal(k, k1, 32);
  assert_int_equal(teex_tee_seal_key(v1, TEEX_SEAL_SIGNER, 2, k, &err),
                   TEEX_EPERM);
  /* Blobs: v2 seals; v2 and v3 read it; v1 cannot. */
  const char *msg = "dispatcher receipts cursor";
  struct teex_buf blob, pt;
  seal_ok(v2, TEEX_SEAL_SIGNER, "ctx", msg, &blob);
  assert_int_equal(unseal(v2, "ctx", &blob, &pt, &err), 0);
  assert_memory_equal(pt.data, msg, strlen(msg));
  teex_buf_free(&pt);
  assert_int_equal(unseal(v3, "ctx", &blob, &pt, &err), 0);
  assert_memory_equal(pt.data, msg, strlen(msg));
  teex_buf_free(&pt);
  assert_int_equal(unseal(v1, "ctx", &blob, &pt, &err), TEEX_EPERM);
  assert_non_null(strstr(err.msg, "newer"));
  teex_buf_free(&pt);
  /* Lowering the svn in the header to fool v1 breaks authentication. */
  blob.data[10] = 0;
  blob.data[11] = 1;
  assert_int_equal(unseal(v1, "ctx", &blob, &pt, &err), TEEX_EAUTH);
  teex_buf_free(&pt);
  teex_buf_free(&blob);
  /* A different signer cannot read a signer-sealed blob. */
  struct teex_tee_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.data_dir = f->dir;
  cfg.role = "worker";
  cfg.svn = 3;
  cfg.product_id = 7;
  cfg.has_signer = 1;
  memset(cfg.mr_signer, 0x77, 32);
  struct teex_tee *foreign;
  assert_int_equal(teex_tee_open(&cfg, &foreign, &err), 0);
  seal_ok(v2, TEEX_SEAL_SIGNER, "ctx", msg, &blob);
  assert_int_equal(unseal(foreign, "ctx", &blob, &pt, &err), TEEX_EPERM);
  teex_buf_free(&pt);
  teex_buf_free(&blob);
  teex_tee_close(foreign);
  teex_tee_close(v3);
  teex_tee_close(v2);
  teex_tee_close(v1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_every_byte_flip),
      cmocka_unit_test(test_policy_failures),
      cmocka_unit_test(test_debug_forbidden),
      cmocka_unit_test(test_binding),
      cmocka_unit_test(test_evidence_limits),
      cmocka_unit_test(test_policy_file),
      cmocka_unit_test(test_key_files),
      cmocka_unit_test(test_seal_enclave),
      cmocka_unit_test(test_seal_signer_svn),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
