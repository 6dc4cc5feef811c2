/* RPC over RA-TLS with the sim TEE: mutual mode with the peer's attested
 * identity visible to handlers; server-only mode for a client that is not
 * an enclave; a server whose evidence fails the client's policy, and a
 * client whose evidence fails the server's, never exchange a byte of
 * application data (no handler runs, no call is answered). */
#include "testutil.h"

#include "nettest.h"
#include "teex/ratls.h"
#include "teex/ratls_channel.h"
#include "teex/tee.h"
#include "teex/tee_policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fx {
  char *dir;
  uint8_t root[32];
  struct teex_tee *worker, *sm;
  EVP_PKEY *wkey, *skey;
  X509 *wcert, *scert;
};

static int fx_setup(void **state) {
  struct fx *f = calloc(1, sizeof *f);
  struct teex_err err;
  f->dir = tu_mkdtemp("ratls-rpc");
  assert_int_equal(teex_tee_sim_init(f->dir, f->root, &err), 0);
  struct teex_tee_config cfg = {
      .backend = "sim", .data_dir = f->dir, .role = "worker"};
  assert_int_equal(teex_tee_open(&cfg, &f->worker, &err), 0);
  cfg.role = "sm";
  assert_int_equal(teex_tee_open(&cfg, &f->sm, &err), 0);
  assert_int_equal(
      teex_ratls_identity_new(f->worker, NULL, &f->wkey, &f->wcert, &err), 0);
  assert_int_equal(
      teex_ratls_identity_new(f->sm, NULL, &f->skey, &f->scert, &err), 0);
  *state = f;
  return 0;
}

static int fx_teardown(void **state) {
  struct fx *f = *state;
  X509_free(f->wcert);
  X509_free(f->scert);
  EVP_PKEY_free(f->wkey);
  EVP_PKEY_free(f->skey);
  teex_tee_close(f->worker);
  teex_tee_close(f->sm);
  tu_rmtree(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

/* A policy that accepts exactly `who` (its measurement and role). */
static void policy_for(struct fx *f, struct teex_tee_policy *p,
                       struct teex_tee *who) {
  teex_tee_policy_init(p);
  teex_tee_policy_add_root(p, f->root);
  teex_tee_policy_add_measurement(p, teex_tee_self(who)->mr_enclave);
  teex_tee_policy_add_role(p, teex_tee_self(who)->role);
  p->allow_simulated = 1;
}

struct run {
  uv_loop_t loop;
  struct teex_tls_ctx *sctx, *cctx;
  struct teex_rpc_server *srv;
  struct teex_rpc_client *cli;
  int handled, ready, closed, close_code;
  char close_reason[512];
  char peer_role[32];
  uint8_t peer_mr[32];
  int got_identity;
};

static void h_whoami(struct teex_rpc_call *call, const uint8_t *p, size_t n,
                     void *arg) {
  struct run *r = arg;
  (void)p;
  (void)n;
  r->handled++;
  const struct teex_tee_identity *id =
      teex_ratls_channel_peer(teex_rpc_call_conn(call));
  if (id == NULL) {
    teex_rpc_call_respond(call, 0, NULL, (const uint8_t *)"anonymous", 9);
    return;
  }
  teex_rpc_call_respond(call, 0, NULL, (const uint8_t *)id->role,
                        strlen(id->role));
}

static void cli_state(struct teex_rpc_client *c, int code, const char *reason,
                      void *arg) {
  struct run *r = arg;
  if (code == 0) {
    r->ready = 1;
    const struct teex_tee_identity *id =
        teex_ratls_channel_peer(teex_rpc_client_conn(c));
    if (id) {
      r->got_identity = 1;
      snprintf(r->peer_role, sizeof r->peer_role, "%s", id->role);
      memcpy(r->peer_mr, id->mr_enclave, 32);
    }
  } else {
    r->closed = 1;
    r->close_code = code;
    snprintf(r->close_reason, sizeof r->close_reason, "%s", reason);
  }
}

struct answer {
  int done, code;
  char text[64];
};

static void on_answer(void *arg, int code, const char *msg, const uint8_t *p,
                      size_t n) {
  struct answer *a = arg;
  (void)msg;
  a->done = 1;
  a->code = code;
  if (p != NULL && n < sizeof a->text) {
    memcpy(a->text, p, n);
    a->text[n] = '\0';
  }
}

/* Server: worker identity; mutual when client_policy is given. Client: sm
 * identity when mutual, verifying the server against server_policy. */
static void run_start(struct run *r, struct fx *f,
                      struct teex_ratls_verifier *server_side,
                      struct teex_ratls_verifier *client_side, int mutual) {
  struct teex_err err;
  memset(r, 0, sizeof *r);
  uv_loop_init(&r->loop);
  struct teex_tls_config scfg = {.cert = f->wcert,
                                 .key = f->wkey,
                                 .mutual = mutual,
                                 .verify_peer = teex_ratls_channel_verify,
                                 .verify_arg = server_side};
  struct teex_tls_config ccfg = {.cert = mutual ? f->scert : NULL,
                                 .key = mutual ? f->skey : NULL,
                                 .mutual = mutual,
                                 .verify_peer = teex_ratls_channel_verify,
                                 .verify_arg = client_side};
  assert_int_equal(teex_tls_ctx_new(&r->sctx, &scfg, 1, &err), 0);
  assert_int_equal(teex_tls_ctx_new(&r->cctx, &ccfg, 0, &err), 0);
  assert_int_equal(teex_rpc_server_new(&r->loop, r->sctx, "127.0.0.1:0", NULL,
                                       &r->srv, &err),
                   0);
  teex_rpc_server_register(r->srv, "whoami", h_whoami, r);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", teex_rpc_server_port(r->srv));
  assert_int_equal(teex_rpc_client_connect(&r->loop, r->cctx, addr, NULL,
                                           cli_state, r, &r->cli, &err),
                   0);
}

static void run_stop(struct run *r) {
  if (!r->closed) {
    teex_rpc_client_close(r->cli);
    nt_run_until(&r->loop, &r->closed, 5000);
  }
  teex_rpc_server_close(r->srv);
  nt_drain(&r->loop);
  assert_int_equal(uv_loop_close(&r->loop), 0);
  teex_tls_ctx_free(r->sctx);
  teex_tls_ctx_free(r->cctx);
}

static void test_mutual_identity(void **state) {
  struct fx *f = *state;
  struct teex_tee_policy want_worker, want_sm;
  policy_for(f, &want_worker, f->worker);
  policy_for(f, &want_sm, f->sm);
  struct teex_ratls_verifier vs = {&want_sm}, vc = {&want_worker};
  struct run r;
  struct teex_err err;
  run_start(&r, f, &vs, &vc, 1);
  nt_run_until(&r.loop, &r.ready, 5000);
  assert_int_equal(r.ready, 1);
  assert_int_equal(r.got_identity, 1);
  assert_string_equal(r.peer_role, "worker");
  assert_memory_equal(r.peer_mr, teex_tee_self(f->worker)->mr_enclave, 32);
  struct answer a = {0};
  assert_int_equal(teex_rpc_client_call(r.cli, "whoami", NULL, 0, 5000,
                                        on_answer, NULL, &a, &err),
                   0);
  nt_run_until(&r.loop, &a.done, 5000);
  assert_int_equal(a.code, 0);
  /* The server's handler saw the client's attested role. */
  assert_string_equal(a.text, "sm");
  run_stop(&r);
}

static void test_server_only_mode(void **state) {
  struct fx *f = *state;
  struct teex_tee_policy want_worker;
  policy_for(f, &want_worker, f->worker);
  struct teex_ratls_verifier vc = {&want_worker};
  struct run r;
  struct teex_err err;
  run_start(&r, f, NULL, &vc, 0);
  nt_run_until(&r.loop, &r.ready, 5000);
  assert_int_equal(r.got_identity, 1);
  struct answer a = {0};
  teex_rpc_client_call(r.cli, "whoami", NULL, 0, 5000, on_answer, NULL, &a,
                       &err);
  nt_run_until(&r.loop, &a.done, 5000);
  assert_int_equal(a.code, 0);
  assert_string_equal(a.text, "anonymous");
  run_stop(&r);
}

static void test_server_fails_client_policy(void **state) {
  struct fx *f = *state;
  /* The client wants an sm; the server is a worker. */
  struct teex_tee_policy want_sm;
  policy_for(f, &want_sm, f->sm);
  struct teex_ratls_verifier vc = {&want_sm};
  struct run r;
  run_start(&r, f, NULL, &vc, 0);
  nt_run_until(&r.loop, &r.closed, 5000);
  assert_int_equal(r.ready, 0);
  assert_int_equal(r.closed, 1);
  assert_true(r.close_code == TEEX_EPOLICY || r.close_code == TEEX_EATTEST);
  assert_non_null(strstr(r.close_reason, "peer verification failed"));
  assert_int_equal(r.handled, 0);
  run_stop(&r);
}

static void test_client_fails_server_policy(void **state) {
  struct fx *f = *state;
  struct teex_tee_policy want_worker, also_worker;
  policy_for(f, &want_worker, f->worker);
  policy_for(f, &also_worker, f->worker); /* the client is an sm */
  struct teex_ratls_verifier vs = {&also_worker}, vc = {&want_worker};
  struct run r;
  struct teex_err err;
  run_start(&r, f, &vs, &vc, 1);
  /* TLS 1.3: the client finishes its side first and may call at once; the
   * server refuses its certificate before reading any application data. */
  nt_run_until(&r.loop, &r.ready, 5000);
  struct answer a = {0};
  if (r.ready)
    teex_rpc_client_call(r.cli, "whoami", NULL, 0, 5000, on_answer, NULL, &a,
                         &err);
  nt_run_until(&r.loop, &r.closed, 5000);
  assert_int_equal(r.closed, 1);
  assert_int_equal(r.handled, 0);
  if (r.ready) {
    assert_int_equal(a.done, 1);
    assert_int_not_equal(a.code, 0); /* ended by the close, never answered */
  }
  run_stop(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_mutual_identity),
      cmocka_unit_test(test_server_only_mode),
      cmocka_unit_test(test_server_fails_client_policy),
      cmocka_unit_test(test_client_fails_server_policy),
  };
  return cmocka_run_group_tests(tests, fx_setup, fx_teardown);
}
