/* Benchmark: how fast evidence is verified (full chain: container parse,
 * root check, platform certificate and quote signatures, report-data
 * binding, policy), which bounds RA-TLS handshakes per second per core.
 *
 * Figures, each the median of ROUNDS alternating rounds of 0.5 s on one
 * thread:
 *   ed25519 verify/s          baseline (libsodium), same run
 *   evidence verify/s         teex_tee_verify, ratio to the baseline
 *   quote/s                   teex_tee_quote_binding
 *   ra-tls cert verify/s      teex_ratls_verify_cert (adds the certificate's
 *                             ECDSA self-signature and SPKI hash)
 *   tls1.3 handshake/s        client + server in one thread over memory
 *                             BIOs, server-only RA-TLS, evidence verified on
 *                             every handshake; and the same handshake with
 *                             OpenSSL's verification off (baseline)
 * Usage: bench_quote [ROUNDS]   (default 5) */
#include "teex/crypto.h"
#include "teex/evidence.h"
#include "teex/ratls.h"
#include "teex/tee.h"

#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double secs = 0.5; /* per figure per round */
static int rounds = 5;
#define ROUNDS_MAX 60

static double median(double *v, int n) {
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
      double t = v[j];
      v[j] = v[j - 1];
      v[j - 1] = t;
    }
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs fn until secs of wall time elapse; returns calls per second of wall
 * time and, in *per_cpu, per second of this thread's CPU time (what one
 * core does when the machine is shared). */
static double rate(int (*fn)(void *), void *arg, double *per_cpu) {
  double t0 = now_s(), c0 = cpu_s(), t;
  long n = 0;
  do {
    for (int i = 0; i < 16; i++) {
      if (fn(arg) != 0) {
        fprintf(stderr, "bench: operation failed\n");
        exit(1);
      }
    }
    n += 16;
    t = now_s();
  } while (t - t0 < secs);
  *per_cpu = (double)n / (cpu_s() - c0);
  return (double)n / (t - t0);
}

struct ctx {
  struct teex_tee *tee;
  struct teex_tee_policy policy;
  struct teex_buf ev;
  uint8_t pk[32], sk[64], sig[64], msg[64];
  X509 *cert;
  SSL_CTX *sctx, *cctx_ratls, *cctx_plain;
};

static int op_ed25519(void *a) {
  struct ctx *c = a;
  return teex_ed25519_verify(c->pk, c->msg, sizeof c->msg, c->sig);
}

static int op_verify(void *a) {
  struct ctx *c = a;
  struct teex_err err;
  struct teex_tee_identity id;
  return teex_tee_verify(c->ev.data, c->ev.len, &c->policy, NULL,
                         (uint64_t)time(NULL), &id, &err);
}

static int op_quote(void *a) {
  struct ctx *c = a;
  struct teex_tee_binding b;
  memset(&b, 0, sizeof b);
  b.has_tls = 1;
  struct teex_buf ev;
  teex_buf_init(&ev, TEEX_EVIDENCE_MAX, 0);
  struct teex_err err;
  int rc = teex_tee_quote_binding(c->tee, &b, &ev, &err);
  teex_buf_free(&ev);
  return rc;
}

static int op_cert_verify(void *a) {
  struct ctx *c = a;
  struct teex_err err;
  return teex_ratls_verify_cert(c->cert, &c->policy, NULL, NULL, &err);
}

static int handshake(SSL_CTX *cctx, SSL_CTX *sctx) {
  SSL *cl = SSL_new(cctx), *sv = SSL_new(sctx);
  BIO *cb, *sb;
  if (cl == NULL || sv == NULL || !BIO_new_bio_pair(&cb, 0, &sb, 0))
    return -1;
  SSL_set_bio(cl, cb, cb);
  SSL_set_bio(sv, sb, sb);
  SSL_set_connect_state(cl);
  SSL_set_accept_state(sv);
  int cdone = 0, sdone = 0, rc = -1;
  for (int i = 0; i < 20 && !(cdone && sdone); i++) {
    int r = cdone ? 1 : SSL_do_handshake(cl);
    if (r == 1)
      cdone = 1;
    else if (SSL_get_error(cl, r) != SSL_ERROR_WANT_READ)
      break;
    r = sdone ? 1 : SSL_do_handshake(sv);
    if (r == 1)
      sdone = 1;
    else if (SSL_get_error(sv, r) != SSL_ERROR_WANT_READ)
      break;
  }
  if (cdone && sdone)
    rc = 0;
  ERR_clear_error();
  SSL_free(cl);
  SSL_free(sv);
  return rc;
}

static int op_hs_ratls(void *a) {
  struct ctx *c = a;
  return handshake(c->cctx_ratls, c->sctx);
}

static int op_hs_plain(void *a) {
  struct ctx *c = a;
  return handshake(c->cctx_plain, c->sctx);
}

int main(int argc, char **argv) {
  if (argc > 1) {
    uint64_t s;
    if (teex_parse_u64(argv[1], &s) != 0 || s == 0 || s > ROUNDS_MAX) {
      fprintf(stderr, "usage: bench_quote [ROUNDS 1..60]\n");
      return 2;
    }
    rounds = (int)s;
  }
  if (teex_crypto_init() != 0)
    return 1;
  char dir[] = "/tmp/teex-bench-quote-XXXXXX";
  if (mkdtemp(dir) == NULL)
    return 1;
  struct teex_err err;
  struct ctx c;
  memset(&c, 0, sizeof c);
  uint8_t root[32];
  struct teex_tee_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.data_dir = dir;
  cfg.role = "worker";
  if (teex_tee_sim_init(dir, root, &err) != 0 ||
      teex_tee_open(&cfg, &c.tee, &err) != 0) {
    fprintf(stderr, "bench: %s\n", err.msg);
    return 1;
  }
  teex_tee_policy_init(&c.policy);
  teex_tee_policy_add_root(&c.policy, root);
  teex_tee_policy_add_measurement(&c.policy, teex_tee_self(c.tee)->mr_enclave);
  c.policy.allow_simulated = 1;
  struct teex_tee_binding b;
  memset(&b, 0, sizeof b);
  b.has_tls = 1;
  b.has_x25519 = 1;
  b.has_secp256k1 = 1;
  teex_buf_init(&c.ev, TEEX_EVIDENCE_MAX, 0);
  teex_ed25519_keypair(c.pk, c.sk);
  teex_ed25519_sign(c.sk, c.msg, sizeof c.msg, c.sig);
  EVP_PKEY *key;
  if (teex_tee_quote_binding(c.tee, &b, &c.ev, &err) != 0 ||
      teex_ratls_identity_new(c.tee, NULL, &key, &c.cert, &err) != 0) {
    fprintf(stderr, "bench: %s\n", err.msg);
    return 1;
  }
  c.sctx = SSL_CTX_new(TLS_server_method());
  c.cctx_ratls = SSL_CTX_new(TLS_client_method());
  c.cctx_plain = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(c.cctx_ratls, TLS1_3_VERSION);
  SSL_CTX_set_min_proto_version(c.cctx_plain, TLS1_3_VERSION);
  SSL_CTX_set_session_cache_mode(c.cctx_ratls, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_session_cache_mode(c.cctx_plain, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_verify(c.cctx_plain, SSL_VERIFY_NONE, NULL);
  if (teex_ratls_ssl_ctx_use_identity(c.sctx, key, c.cert, &err) != 0 ||
      teex_ratls_ssl_ctx_set_verify(c.cctx_ratls, &c.policy, 0, &err) != 0) {
    fprintf(stderr, "bench: %s\n", err.msg);
    return 1;
  }

  /* Alternating rounds, median per figure: the machine is shared, so each
   * figure and its baseline see the same load. */
  int (*const ops[6])(void *) = {op_ed25519,     op_verify,   op_quote,
                                 op_cert_verify, op_hs_ratls, op_hs_plain};
  double r[6][ROUNDS_MAX], rc[6][ROUNDS_MAX];
  for (int round = 0; round < rounds; round++)
    for (int i = 0; i < 6; i++)
      r[i][round] = rate(ops[i], &c, &rc[i][round]);
  double m[6], mc[6];
  for (int i = 0; i < 6; i++) {
    m[i] = median(r[i], rounds);
    mc[i] = median(rc[i], rounds);
  }
  static const char *names[6] = {
      "ed25519 verify (baseline)", "evidence verify (full chain)",
      "quote (with binding)",      "ra-tls cert verify",
      "tls1.3 handshake, RA-TLS",  "tls1.3 handshake, no verify"};
  printf("median of %d rounds of %.1f s per figure\n", rounds, secs);
  printf("%-30s %12s %12s\n", "operation", "per s wall", "per s CPU");
  for (int i = 0; i < 6; i++)
    printf("%-30s %12.0f %12.0f\n", names[i], m[i], mc[i]);
  printf("evidence verify / ed25519 verify: %.2f (two signatures per chain)\n",
         mc[1] / mc[0]);
  printf("ra-tls cert verify per CPU-second: %.0f, target >= 1000: %s\n", mc[3],
         mc[3] >= 1000 ? "met" : "NOT met");
  printf("handshakes (client and server in one thread): RA-TLS / no verify: "
         "%.2f\n",
         mc[4] / mc[5]);

  SSL_CTX_free(c.sctx);
  SSL_CTX_free(c.cctx_ratls);
  SSL_CTX_free(c.cctx_plain);
  X509_free(c.cert);
  EVP_PKEY_free(key);
  teex_buf_free(&c.ev);
  teex_tee_close(c.tee);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "%s/tee", dir);
  const char *files[] = {"platform.key", "root.key", "root.pub"};
  for (size_t i = 0; i < 3; i++) {
    char p[160];
    snprintf(p, sizeof p, "%s/%s", cmd, files[i]);
    unlink(p);
  }
  rmdir(cmd);
  rmdir(dir);
  return 0;
}
