/* The SM as monitor (src/sm/sm_monitor.c): an enclave's standing
 * attestation and its validity window (admitted at first contact, refused
 * once the window passed, renewed by a new attestation), what each enclave
 * holds (service keys, leases that disappear when they end, group keys),
 * the queue of revocations to submit on chain, and all of it across a
 * restart of the SM. */
#include "testutil.h"

#include "teex/crypto.h"
#include "teex/ds.h"
#include "teex/sm.h"

#include <stdio.h>
#include <string.h>

struct fx {
  char *dir;
  char state[4096];
  uint8_t root[32];
  struct teex_tee *tee;
  struct teex_sm *sm;
  struct teex_sm_config cfg;
};

static void reopen(struct fx *f) {
  struct teex_err err;
  teex_sm_close(f->sm);
  f->sm = NULL;
  if (teex_sm_open(f->tee, &f->cfg, &f->sm, &err) != 0)
    fail_msg("sm open: %s", err.msg);
}

static int setup(void **state) {
  struct fx *f = calloc(1, sizeof *f);
  struct teex_err err;
  f->dir = tu_mkdtemp("smmon");
  assert_int_equal(teex_tee_sim_init(f->dir, f->root, &err), 0);
  snprintf(f->state, sizeof f->state, "%s/sm-state", f->dir);
  struct teex_tee_config c;
  memset(&c, 0, sizeof c);
  c.backend = "sim";
  c.data_dir = f->dir;
  c.role = "sm";
  assert_int_equal(teex_tee_open(&c, &f->tee, &err), 0);
  teex_tee_policy_init(&f->cfg.policy);
  f->cfg.state_dir = f->state;
  f->cfg.attest_valid_s = 100;
  reopen(f);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fx *f = *state;
  teex_sm_close(f->sm);
  teex_tee_close(f->tee);
  tu_rmtree(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

static void test_attestation_window(void **state) {
  struct fx *f = *state;
  struct teex_err err;
  uint8_t w[20], v[20];
  memset(w, 0xA1, 20);
  memset(v, 0xB2, 20);
  const uint64_t t0 = 1700000000;
  uint64_t at = 1, until = 0;
  assert_int_equal(teex_sm_attest_valid(f->sm), 100);
  assert_int_equal(teex_sm_attested_at(f->sm, w, &at, &err), 0);
  assert_int_equal(at, 0);
  /* First contact: admitted, and that counts as its attestation. */
  assert_int_equal(teex_sm_check_attestation(f->sm, w, t0, &err), 0);
  assert_int_equal(teex_sm_attested_at(f->sm, w, &at, &err), 0);
  assert_int_equal(at, t0);
  /* Within the window: still admitted, and the time is not moved. */
  assert_int_equal(teex_sm_check_attestation(f->sm, w, t0 + 99, &err), 0);
  assert_int_equal(teex_sm_attested_at(f->sm, w, &at, &err), 0);
  assert_int_equal(at, t0);
  /* At and past its end: refused, with when it expired. */
  assert_int_equal(teex_sm_check_attestation(f->sm, w, t0 + 100, &err),
                   TEEX_EPOLICY);
  assert_non_null(strstr(err.msg, "attestation expired at 1700000100"));
  assert_non_null(strstr(err.msg, "sm.Attest"));
  assert_int_equal(teex_sm_check_attestation(f->sm, w, t0 + 5000, &err),
                   TEEX_EPOLICY);
  /* Another enclave is not affected. */
  assert_int_equal(teex_sm_check_attestation(f->sm, v, t0 + 5000, &err), 0);
  /* Re-attesting opens a new window; and it survives a restart. */
  assert_int_equal(teex_sm_note_attestation(f->sm, w, t0 + 5000, &until, &err),
                   0);
  assert_int_equal(until, t0 + 5100);
  reopen(f);
  assert_int_equal(teex_sm_check_attestation(f->sm, w, t0 + 5099, &err), 0);
  assert_int_equal(teex_sm_check_attestation(f->sm, w, t0 + 5100, &err),
                   TEEX_EPOLICY);
  /* The default window. */
  f->cfg.attest_valid_s = 0;
  reopen(f);
  assert_int_equal(teex_sm_attest_valid(f->sm), TEEX_SM_ATTEST_VALID_DEFAULT_S);
}

struct got {
  struct teex_sm_holding h[16];
  size_t n;
};

static int collect(const struct teex_sm_holding *h, void *arg) {
  struct got *g = arg;
  if (g->n < 16)
    g->h[g->n++] = *h;
  return 0;
}

static const struct teex_sm_holding *find(const struct got *g, uint8_t kind,
                                          uint8_t id_byte, uint8_t sub_byte) {
  for (size_t i = 0; i < g->n; i++)
    if (g->h[i].kind == kind && g->h[i].id[0] == id_byte &&
        g->h[i].sub[0] == sub_byte)
      return &g->h[i];
  return NULL;
}

static void test_holdings(void **state) {
  struct fx *f = *state;
  struct teex_err err;
  uint8_t w[20], other[20];
  memset(w, 0xA1, 20);
  memset(other, 0xC3, 20);
  const uint64_t t0 = 1700000000;
  struct teex_sm_holding svc = {.kind = TEEX_SM_HELD_SERVICE,
                                .expires_at = t0 + 86400};
  memset(svc.id, 0x11, 32);
  memset(svc.sub, 0x22, 32);
  struct teex_sm_holding l1 = {.kind = TEEX_SM_HELD_LEASE,
                               .expires_at = t0 + 50};
  memset(l1.id, 0x33, 32);
  memset(l1.sub, 0x44, 32);
  struct teex_sm_holding l2 = l1;
  memset(l2.sub, 0x55, 32);
  l2.expires_at = t0 + 500;
  struct teex_sm_holding grp = {.kind = TEEX_SM_HELD_GROUP};
  memset(grp.id, 0x66, 16);
  assert_int_equal(teex_sm_note_holding(f->sm, w, &svc, t0, &err), 0);
  assert_int_equal(teex_sm_note_holding(f->sm, w, &l1, t0, &err), 0);
  assert_int_equal(teex_sm_note_holding(f->sm, w, &l2, t0 + 1, &err), 0);
  assert_int_equal(teex_sm_note_holding(f->sm, w, &grp, t0 + 2, &err), 0);
  /* The same service keys again: one record, first and last release. */
  assert_int_equal(teex_sm_note_holding(f->sm, w, &svc, t0 + 10, &err), 0);
  struct teex_sm_holding bad = {.kind = 9};
  assert_int_equal(teex_sm_note_holding(f->sm, w, &bad, t0, &err), TEEX_EINVAL);

  struct got g = {0};
  assert_int_equal(teex_sm_holdings(f->sm, w, t0 + 20, collect, &g, &err), 0);
  assert_int_equal(g.n, 4);
  const struct teex_sm_holding *h = find(&g, TEEX_SM_HELD_SERVICE, 0x11, 0x22);
  assert_non_null(h);
  assert_int_equal(h->first_at, t0);
  assert_int_equal(h->last_at, t0 + 10);
  assert_int_equal(h->expires_at, t0 + 86400);
  assert_non_null(find(&g, TEEX_SM_HELD_LEASE, 0x33, 0x44));
  assert_non_null(find(&g, TEEX_SM_HELD_LEASE, 0x33, 0x55));
  h = find(&g, TEEX_SM_HELD_GROUP, 0x66, 0);
  assert_non_null(h);
  assert_int_equal(h->id[15], 0x66);
  assert_int_equal(h->id[16], 0);

  /* Once the first lease ended it is not shown, service keys still are. */
  memset(&g, 0, sizeof g);
  assert_int_equal(teex_sm_holdings(f->sm, w, t0 + 60, collect, &g, &err), 0);
  assert_int_equal(g.n, 3);
  assert_null(find(&g, TEEX_SM_HELD_LEASE, 0x33, 0x44));
  assert_non_null(find(&g, TEEX_SM_HELD_LEASE, 0x33, 0x55));

  /* Pruning drops ended leases from the store (of every enclave), and
   * keeps the rest; across a restart. */
  struct teex_sm_holding l3 = l1;
  memset(l3.sub, 0x77, 32);
  l3.expires_at = t0 + 1000;
  assert_int_equal(teex_sm_note_holding(f->sm, w, &l3, t0 + 600, &err), 0);
  struct teex_sm_holding lo = l1;
  lo.expires_at = t0 + 5;
  assert_int_equal(teex_sm_note_holding(f->sm, other, &lo, t0, &err), 0);
  memset(&g, 0, sizeof g);
  assert_int_equal(teex_sm_holdings(f->sm, w, 0, collect, &g, &err), 0);
  assert_int_equal(g.n, 5); /* before pruning, "now" 0 shows them all */
  assert_int_equal(teex_sm_prune_holdings(f->sm, t0 + 600, &err), 0);
  reopen(f);
  memset(&g, 0, sizeof g);
  assert_int_equal(teex_sm_holdings(f->sm, w, 0, collect, &g, &err), 0);
  assert_int_equal(g.n, 3); /* service, group, l3: l1 and l2 were dropped */
  assert_non_null(find(&g, TEEX_SM_HELD_LEASE, 0x33, 0x77));
  assert_null(find(&g, TEEX_SM_HELD_LEASE, 0x33, 0x55));

  /* Nothing of w is attributed to another enclave (whose ended lease was
   * pruned too). */
  memset(&g, 0, sizeof g);
  assert_int_equal(teex_sm_holdings(f->sm, other, 0, collect, &g, &err), 0);
  assert_int_equal(g.n, 0);
}

struct pend {
  uint8_t addr[8][20];
  size_t n;
};

static int collect_pending(const struct teex_sm_chain_revocation *r,
                           void *arg) {
  struct pend *p = arg;
  if (p->n < 8)
    memcpy(p->addr[p->n++], r->enclave, 20);
  return 0;
}

static void test_chain_revocation_queue(void **state) {
  struct fx *f = *state;
  struct teex_err err;
  uint8_t a[20], b[20];
  memset(a, 0xA1, 20);
  memset(b, 0xB2, 20);
  struct teex_sm_chain_revocation r;
  assert_int_equal(teex_sm_chain_revocation_get(f->sm, a, &r, &err), 0);
  assert_int_equal(r.state, TEEX_SM_CHAIN_NONE);
  assert_int_equal(teex_sm_chain_revocation_queue(f->sm, a, 10, &err), 0);
  assert_int_equal(teex_sm_chain_revocation_queue(f->sm, b, 11, &err), 0);
  assert_int_equal(teex_sm_chain_revocation_queue(f->sm, a, 12, &err), 0);
  struct pend p = {0};
  assert_int_equal(
      teex_sm_chain_revocations_pending(f->sm, collect_pending, &p, &err), 0);
  assert_int_equal(p.n, 2);
  /* A failed attempt stays pending with its reason and count. */
  assert_int_equal(
      teex_sm_chain_revocation_result(
          f->sm, a, 0, "execution reverted: EnclaveNotRegistered", 20, &err),
      0);
  assert_int_equal(teex_sm_chain_revocation_get(f->sm, a, &r, &err), 0);
  assert_int_equal(r.state, TEEX_SM_CHAIN_PENDING);
  assert_int_equal(r.attempts, 1);
  assert_int_equal(r.updated, 20);
  assert_string_equal(r.last_error, "execution reverted: EnclaveNotRegistered");
  /* Confirmed: no longer pending, and a later result does not undo it. */
  assert_int_equal(teex_sm_chain_revocation_result(f->sm, a, 1, NULL, 30, &err),
                   0);
  assert_int_equal(
      teex_sm_chain_revocation_result(f->sm, a, 0, "late failure", 40, &err),
      0);
  reopen(f);
  assert_int_equal(teex_sm_chain_revocation_get(f->sm, a, &r, &err), 0);
  assert_int_equal(r.state, TEEX_SM_CHAIN_CONFIRMED);
  assert_int_equal(r.attempts, 2);
  assert_string_equal(r.last_error, "");
  memset(&p, 0, sizeof p);
  assert_int_equal(
      teex_sm_chain_revocations_pending(f->sm, collect_pending, &p, &err), 0);
  assert_int_equal(p.n, 1);
  assert_memory_equal(p.addr[0], b, 20);
  /* Queueing a confirmed one again changes nothing. */
  assert_int_equal(teex_sm_chain_revocation_queue(f->sm, a, 50, &err), 0);
  assert_int_equal(teex_sm_chain_revocation_get(f->sm, a, &r, &err), 0);
  assert_int_equal(r.state, TEEX_SM_CHAIN_CONFIRMED);
}

/* A TEE-DS grant ends with the worker's attestation window. */
static void test_grant_bounded(void **state) {
  struct fx *f = *state;
  struct teex_err err;
  uint8_t w[20], sid[32], sm_addr[20], grant[TEEX_DS_GRANT_MAX];
  memset(w, 0xA1, 20);
  memset(sid, 0x42, 32);
  teex_sm_address(f->sm, sm_addr);
  char ns[TEEX_DS_SERVICE_NS_LEN + 1];
  teex_ds_service_ns(sid, ns);
  const uint64_t t0 = 1700000000;
  size_t len = 0;
  uint64_t until = 0;
  /* Not attested yet: the full TTL. */
  assert_int_equal(
      teex_sm_ds_grant_bounded(f->sm, sid, w, t0, grant, &len, &until, &err),
      0);
  assert_int_equal(until, t0 + TEEX_SM_DS_GRANT_TTL_S);
  /* Short-lived (a revoked worker, refused a new one, loses TEE-DS within
   * 5 minutes): valid at t0 + 299, refused by a replica at t0 + 301. */
  assert_int_equal(TEEX_SM_DS_GRANT_TTL_S, 300);
  assert_int_equal(
      teex_ds_grant_verify(grant, len, sm_addr, w, ns, t0 + 299, &err), 0);
  assert_int_equal(
      teex_ds_grant_verify(grant, len, sm_addr, w, ns, t0 + 301, &err),
      TEEX_EEXPIRED);
  /* Attested at t0 with a 100 s window: the grant ends at t0 + 100. */
  assert_int_equal(teex_sm_note_attestation(f->sm, w, t0, NULL, &err), 0);
  assert_int_equal(teex_sm_ds_grant_bounded(f->sm, sid, w, t0 + 10, grant, &len,
                                            &until, &err),
                   0);
  assert_int_equal(until, t0 + 100);
  assert_int_equal(
      teex_ds_grant_verify(grant, len, sm_addr, w, ns, t0 + 99, &err), 0);
  assert_int_equal(
      teex_ds_grant_verify(grant, len, sm_addr, w, ns, t0 + 101, &err),
      TEEX_EEXPIRED);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_attestation_window, setup, teardown),
      cmocka_unit_test_setup_teardown(test_holdings, setup, teardown),
      cmocka_unit_test_setup_teardown(test_chain_revocation_queue, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_grant_bounded, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
