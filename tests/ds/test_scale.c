/* TEE-DS scale-out with real processes: two groups of 3 `teex ds run`
 * replicas each (on two sim platforms, so two evidence policies), a signed
 * placement directory made with `teex ds place`, namespaces on both groups,
 * and `teex ds move` run as its own process while this process keeps
 * writing through a routing client. Asserts: every write the client saw
 * acknowledged is at the destination afterwards (with TTLs kept); the client
 * followed the move (group, epoch, moves); the source answers TEEX_EMOVED
 * and holds none of the data; a client started from the old directory
 * follows; forged, altered and unsigned directories are refused, also when
 * a group hands one out in a "moved" answer; only operator clients may
 * change placement. */
#include "net_fixture.c"

#include "teex/ds_place.h"
#include "teex/ds_router.h"

#include <openssl/pem.h>
#include <sys/wait.h>

static struct net ga, gb;
static char dirp[600], dir0p[600], keyp[600], pubp[600], certp[600], ckeyp[600],
    pola[600], polb[600], cert2p[600], ckey2p[600];
static EVP_PKEY *key2;
static X509 *cert2;
static struct teex_tls_ctx *tls2a, *tls2b;

static void write_pem(const char *kp, const char *cp, EVP_PKEY *k, X509 *c) {
  FILE *f = fopen(kp, "w");
  assert_non_null(f);
  assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
  fclose(f);
  f = fopen(cp, "w");
  assert_non_null(f);
  assert_int_equal(PEM_write_X509(f, c), 1);
  fclose(f);
}

static int teex_cli(char **argv, char **out) {
  char *eo = NULL;
  int rc = net_run_teex(argv, out, &eo);
  if (rc != 0)
    fprintf(stderr, "teex %s %s: exit %d: %s\n", argv[1], argv[2], rc,
            eo ? eo : "");
  free(eo);
  return rc;
}

static uint8_t *read_dir(const char *p, size_t *n) {
  uint8_t *b = tu_read_file(p, n);
  assert_non_null(b);
  return b;
}

static void pk_of(uint8_t pk[32]) {
  size_t n, got;
  char *t = (char *)tu_read_file(pubp, &n);
  assert_non_null(t);
  t[64] = 0;
  assert_int_equal(teex_hex_decode(t, pk, 32, &got), 0);
  free(t);
}

static struct teex_tls_ctx *tls_for(struct net *t, EVP_PKEY *k, X509 *c) {
  struct teex_tls_config tc = {.cert = c,
                               .key = k,
                               .mutual = 1,
                               .verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &t->ver};
  struct teex_tls_ctx *tls;
  struct teex_err err;
  assert_int_equal(teex_tls_ctx_new(&tls, &tc, 0, &err), 0);
  return tls;
}

/* A router for ns from the directory file at path. */
static int router_open(const char *path, const char *ns, int second_cert,
                       struct teex_ds_router_sync **s, struct teex_err *err) {
  size_t n;
  uint8_t *text = read_dir(path, &n);
  uint8_t pk[32];
  pk_of(pk);
  struct teex_ds_router_tls tls[2];
  size_t pn;
  uint8_t *p = tu_read_file(pola, &pn);
  teex_sha256(p, pn, tls[0].policy);
  free(p);
  p = tu_read_file(polb, &pn);
  teex_sha256(p, pn, tls[1].policy);
  free(p);
  tls[0].tls = second_cert ? tls2a : ga.tls;
  tls[1].tls = second_cert ? tls2b : gb.tls;
  struct teex_ds_router_config rc = {.dir = text,
                                     .dir_len = n,
                                     .placement_pk = pk,
                                     .tls = tls,
                                     .n_tls = 2,
                                     .ns = ns,
                                     .timeout_ms = 8000};
  int r = teex_ds_router_sync_open(&rc, s, err);
  free(text);
  return r;
}

static int rset(struct teex_ds_router_sync *s, const char *k, const char *v,
                uint64_t ttl) {
  const char *slash = strchr(k, '/');
  char ns[64];
  snprintf(ns, sizeof ns, "%.*s", (int)(slash - k), k);
  struct teex_ds_cmd c = {.op = TEEX_DS_SET, .grant = ns, .ttl_ms = ttl};
  c.key = (const uint8_t *)k;
  c.key_len = strlen(k);
  c.val = (const uint8_t *)v;
  c.val_len = strlen(v);
  struct teex_ds_result r;
  struct teex_err err;
  int rc = teex_ds_router_sync_exec(s, &c, TEEX_DS_READ_LINEARIZABLE, &r, &err);
  if (rc != 0)
    return rc;
  rc = r.status;
  teex_ds_result_free(&r);
  return rc;
}

static int rget(struct teex_ds_router_sync *s, const char *ns, const char *k,
                struct teex_ds_result *r) {
  struct teex_ds_cmd c = {.op = TEEX_DS_GET, .grant = ns};
  c.key = (const uint8_t *)k;
  c.key_len = strlen(k);
  struct teex_err err;
  int rc = teex_ds_router_sync_exec(s, &c, TEEX_DS_READ_LINEARIZABLE, r, &err);
  return rc != 0 ? rc : r->status;
}

/* GET through a plain client of one group. */
static int gget(struct net *t, const char *k, struct teex_ds_result *r) {
  struct teex_ds_sync *s = net_client(t, "app", 5000);
  struct teex_ds_cmd c = {.op = TEEX_DS_GET, .grant = "app"};
  c.key = (const uint8_t *)k;
  c.key_len = strlen(k);
  struct teex_err err;
  int rc = teex_ds_sync_exec(s, &c, TEEX_DS_READ_LINEARIZABLE, r, &err);
  teex_ds_sync_close(s);
  return rc != 0 ? rc : r->status;
}

/* ---- a write while the namespace is frozen (async, one loop) ---- */

struct frz {
  int unfrozen, done, status, res_status;
  struct teex_ds_client *op;
  struct teex_ds_router *rt;
  uint8_t *rec;
  size_t rec_len;
};

static void unfreeze_done(void *arg, int status, struct teex_ds_result *res) {
  struct frz *f = arg;
  assert_int_equal(status, 0);
  assert_int_equal(res->status, 0);
  teex_ds_result_free(res);
  free(res);
  f->unfrozen = 1;
}

/* Polled: once the router has been refused twice as frozen, unfreeze. */
static void unfreeze(uv_timer_t *t) {
  struct frz *f = t->data;
  if (teex_ds_router_waits(f->rt) < 2)
    return;
  uv_timer_stop(t);
  struct teex_ds_place_record own = {TEEX_DS_PLACE_OWNED, 2, 2, NULL, 0};
  free(f->rec);
  assert_int_equal(teex_ds_place_record_encode(&own, &f->rec, &f->rec_len), 0);
  struct teex_ds_cmd c = {.op = TEEX_DS_PLACE,
                          .grant = "app2",
                          .val = f->rec,
                          .val_len = f->rec_len};
  struct teex_err err;
  assert_int_equal(teex_ds_client_exec(f->op, &c, TEEX_DS_READ_LINEARIZABLE,
                                       unfreeze_done, f, &err),
                   0);
}

static void frozen_write_done(void *arg, int status,
                              struct teex_ds_result *res) {
  struct frz *f = arg;
  f->done = 1;
  f->status = status;
  /* it lands only once the namespace is served again */
  assert_true(f->unfrozen);
  if (res != NULL) {
    f->res_status = res->status;
    teex_ds_result_free(res);
    free(res);
  }
}

/* app2 on group 2 frozen by hand: a routed write waits (retries), lands
 * after the unfreeze, and the router counted the waits. */
static void frozen_write(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct frz f;
  memset(&f, 0, sizeof f);
  struct teex_err err;
  struct teex_ds_client_config cc = {.replicas = gb.addrs,
                                     .n_replicas = NET_N,
                                     .tls = tls2b,
                                     .ns = "app2",
                                     .timeout_ms = 5000};
  assert_int_equal(teex_ds_client_new(&loop, &cc, &f.op, &err), 0);
  /* freeze (synchronously, through a second client) */
  struct teex_ds_sync *s;
  assert_int_equal(teex_ds_sync_open(&cc, &s, &err), 0);
  struct teex_ds_place_record fr = {TEEX_DS_PLACE_FROZEN, 1, 2, NULL, 0};
  uint8_t *b;
  size_t bn;
  assert_int_equal(teex_ds_place_record_encode(&fr, &b, &bn), 0);
  struct teex_ds_cmd pc = {
      .op = TEEX_DS_PLACE, .grant = "app2", .val = b, .val_len = bn};
  struct teex_ds_result r;
  assert_int_equal(
      teex_ds_sync_exec(s, &pc, TEEX_DS_READ_LINEARIZABLE, &r, &err), 0);
  assert_int_equal(r.status, 0);
  teex_ds_result_free(&r);
  free(b);
  teex_ds_sync_close(s);

  size_t n;
  uint8_t *text = read_dir(dirp, &n);
  uint8_t pk[32];
  pk_of(pk);
  struct teex_ds_router_tls tls = {.tls = tls2b};
  size_t pn;
  uint8_t *p = tu_read_file(polb, &pn);
  teex_sha256(p, pn, tls.policy);
  free(p);
  struct teex_ds_router_config rc = {.dir = text,
                                     .dir_len = n,
                                     .placement_pk = pk,
                                     .tls = &tls,
                                     .n_tls = 1,
                                     .ns = "app2",
                                     .timeout_ms = 8000};
  struct teex_ds_router *rt;
  assert_int_equal(teex_ds_router_new(&loop, &rc, &rt, &err), 0);
  free(text);
  struct teex_ds_cmd w = {.op = TEEX_DS_SET,
                          .grant = "app2",
                          .key = (const uint8_t *)"app2/during",
                          .key_len = 11,
                          .val = (const uint8_t *)"frozen",
                          .val_len = 6};
  assert_int_equal(teex_ds_router_exec(rt, &w, TEEX_DS_READ_LINEARIZABLE,
                                       frozen_write_done, &f, &err),
                   0);
  uv_timer_t t;
  uv_timer_init(&loop, &t);
  t.data = &f;
  f.rt = rt;
  uv_timer_start(&t, unfreeze, 20, 20);
  while (!f.done)
    uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(f.status, 0);
  assert_int_equal(f.res_status, 0);
  printf("frozen write: %llu attempts refused as frozen, then applied\n",
         (unsigned long long)teex_ds_router_waits(rt));
  assert_true(teex_ds_router_waits(rt) >= 2);
  uv_close((uv_handle_t *)&t, NULL);
  teex_ds_router_close(rt);
  teex_ds_client_close(f.op);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  free(f.rec);
}

/* One RESP request on a fresh connection to the proxy; the reply in out. */
static void resp_call(int port, const char *req, char *out, size_t cap) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  size_t n = strlen(req);
  assert_int_equal(write(fd, req, n), (ssize_t)n);
  size_t got = 0;
  /* replies here are one line, or a bulk header line and its data line */
  while (got < cap - 1) {
    ssize_t r = read(fd, out + got, cap - 1 - got);
    if (r <= 0)
      break;
    got += (size_t)r;
    out[got] = 0;
    int lines = 0;
    for (size_t i = 0; i + 1 < got; i++)
      lines += out[i] == '\r' && out[i + 1] == '\n';
    if (lines >= (out[0] == '$' && out[1] != '-' ? 2 : 1))
      break;
  }
  out[got] = 0;
  close(fd);
}

static void setup(void) {
  struct teex_err err;
  net_prepare(&ga);
  net_prepare(&gb);
  /* One operator certificate for namespace app in both groups, and a
   * second one for app2. */
  EVP_PKEY_free(gb.key);
  X509_free(gb.cert);
  EVP_PKEY_up_ref(ga.key);
  X509_up_ref(ga.cert);
  gb.key = ga.key;
  gb.cert = ga.cert;
  snprintf(gb.client_grant, sizeof gb.client_grant, "%s", ga.client_grant);
  assert_int_equal(
      teex_tls_selfsigned_new("ds-test-client2", 1, &key2, &cert2, &err), 0);
  uint8_t spki[32];
  char hex[65];
  static char c2[128];
  teex_tls_cert_spki_sha256(cert2, spki);
  teex_hex_encode(spki, 32, hex);
  snprintf(c2, sizeof c2, "app2=%s:app2", hex);
  ga.init_extra[0] = gb.init_extra[0] = "--client";
  ga.init_extra[1] = gb.init_extra[1] = c2;
  net_init_states(&ga, NULL, NULL);
  net_init_states(&gb, NULL, NULL);
  net_start_all(&ga);
  net_start_all(&gb);
  net_warm_up(&ga);
  net_warm_up(&gb);
  /* group 2 starts without namespace app (warm-up wrote app/warm-up) */
  struct teex_ds_sync *s = net_client(&gb, "app", 5000);
  struct teex_ds_cmd del = {.op = TEEX_DS_DEL,
                            .grant = "app",
                            .key = (const uint8_t *)"app/warm-up",
                            .key_len = 11};
  struct teex_ds_result r;
  assert_int_equal(
      teex_ds_sync_exec(s, &del, TEEX_DS_READ_LINEARIZABLE, &r, &err), 0);
  teex_ds_result_free(&r);
  teex_ds_sync_close(s);
  tls2a = tls_for(&ga, key2, cert2);
  tls2b = tls_for(&gb, key2, cert2);

  snprintf(dirp, sizeof dirp, "%s/directory", ga.dir);
  snprintf(dir0p, sizeof dir0p, "%s/directory.epoch1", ga.dir);
  snprintf(keyp, sizeof keyp, "%s/pk/placement.key", ga.dir);
  snprintf(pubp, sizeof pubp, "%s/pk/placement.pub", ga.dir);
  snprintf(certp, sizeof certp, "%s/op.pem", ga.dir);
  snprintf(ckeyp, sizeof ckeyp, "%s/op.key", ga.dir);
  snprintf(cert2p, sizeof cert2p, "%s/op2.pem", ga.dir);
  snprintf(ckey2p, sizeof ckey2p, "%s/op2.key", ga.dir);
  snprintf(pola, sizeof pola, "%s/policy.conf", ga.state[0]);
  snprintf(polb, sizeof polb, "%s/policy.conf", gb.state[0]);
  write_pem(ckeyp, certp, ga.key, ga.cert);
  write_pem(ckey2p, cert2p, key2, cert2);
  char pkdir[600], g1[700], g2[700];
  snprintf(pkdir, sizeof pkdir, "%s/pk", ga.dir);
  snprintf(g1, sizeof g1, "1=%s", ga.state[0]);
  snprintf(g2, sizeof g2, "2=%s", gb.state[0]);
  char *kg[] = {
      (char *)tu_teex_bin(), "ds", "place", "keygen", "--out", pkdir, NULL};
  assert_int_equal(teex_cli(kg, NULL), 0);
  char *in[] = {(char *)tu_teex_bin(),
                "ds",
                "place",
                "init",
                "--place-key",
                keyp,
                "--out",
                dirp,
                "--group",
                g1,
                "--group",
                g2,
                "--place",
                "app=1",
                "--place",
                "app2=2",
                NULL};
  assert_int_equal(teex_cli(in, NULL), 0);
  size_t n;
  uint8_t *t = read_dir(dirp, &n);
  assert_int_equal(tu_write_file(dir0p, t, n), 0);
  free(t);
}

static void test_scale(void **state) {
  (void)state;
  setup();
  struct teex_err err;
  struct teex_ds_result r;
  char out_v[64];

  /* show: both groups, both placements, signature verified */
  char *out = NULL;
  char *sh[] = {(char *)tu_teex_bin(),
                "ds",
                "place",
                "show",
                "--dir",
                dirp,
                "--pub",
                pubp,
                "app",
                "app2",
                NULL};
  assert_int_equal(teex_cli(sh, &out), 0);
  assert_non_null(strstr(out, "signature verified"));
  assert_non_null(strstr(out, "ns app -> group 1 (placed)"));
  assert_non_null(strstr(out, "ns app2 -> group 2 (placed)"));
  free(out);

  /* namespaces on both groups, written through routers */
  struct teex_ds_router_sync *w = NULL, *w2 = NULL;
  assert_int_equal(router_open(dirp, "app", 0, &w, &err), 0);
  assert_int_equal(router_open(dirp, "app2", 1, &w2, &err), 0);
  assert_int_equal(teex_ds_router_group(teex_ds_router_sync_router(w)), 1);
  assert_int_equal(teex_ds_router_group(teex_ds_router_sync_router(w2)), 2);
  char k[64], v[64];
  for (int i = 0; i < 40; i++) {
    snprintf(k, sizeof k, "app/k%d", i);
    snprintf(v, sizeof v, "v%d", i);
    assert_int_equal(rset(w, k, v, i % 4 == 0 ? 600000 : 0), 0);
  }
  assert_int_equal(rset(w2, "app2/x", "on-two", 0), 0);
  /* each on its own group only */
  assert_int_equal(gget(&ga, "app/k1", &r), 0);
  teex_ds_result_free(&r);
  assert_int_equal(gget(&gb, "app/k1", &r), TEEX_ENOTFOUND);
  teex_ds_result_free(&r);

  /* move app 1 -> 2 in another process while this one keeps writing */
  char logp[600];
  snprintf(logp, sizeof logp, "%s/move.log", ga.dir);
  char *mv[] = {(char *)tu_teex_bin(),
                "ds",
                "move",
                "app",
                "--to",
                "2",
                "--dir",
                dirp,
                "--place-key",
                keyp,
                "--cert",
                certp,
                "--key",
                ckeyp,
                "--policy",
                pola,
                "--policy",
                polb,
                NULL};
  static int acked[100000];
  int n = 0, after_exit = 0, mover = -1, mover_st = -1, busy_seen = 0;
  while (after_exit < 20 && n < 100000) {
    if (n == 10)
      assert_true((mover = tu_spawn(mv, logp)) > 0);
    snprintf(k, sizeof k, "app/w%d", n);
    snprintf(v, sizeof v, "w%d", n);
    int rc = rset(w, k, v, 0);
    /* acknowledged, or refused while the namespace was frozen past the
     * timeout (not applied): anything else is a failure */
    if (rc != 0 && rc != TEEX_EBUSY)
      fail_msg("write %s during the move: %s", k, teex_strerror(rc));
    busy_seen += rc == TEEX_EBUSY;
    acked[n++] = rc == 0;
    if (mover > 0 && mover_st < 0) {
      int st;
      if (waitpid(mover, &st, WNOHANG) == mover)
        mover_st = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    }
    if (mover_st >= 0)
      after_exit++;
  }
  size_t ln;
  char *mlog = (char *)tu_read_file(logp, &ln);
  fprintf(stderr, "---- teex ds move ----\n%s", mlog ? mlog : "");
  assert_int_equal(mover_st, 0);
  assert_non_null(strstr(mlog, "4/4"));
  free(mlog);
  struct teex_ds_router *wr = teex_ds_router_sync_router(w);
  printf("move: %d writes during the run, %d refused as frozen past the "
         "timeout, %llu attempts waited on the frozen namespace; the writer "
         "followed %llu move(s)\n",
         n, busy_seen, (unsigned long long)teex_ds_router_waits(wr),
         (unsigned long long)teex_ds_router_moves(wr));
  /* the writer followed the move */
  assert_int_equal(teex_ds_router_group(wr), 2);
  assert_int_equal(teex_ds_router_epoch(wr), 2);
  assert_int_equal(teex_ds_router_moves(wr), 1);

  /* every acknowledged write is at the destination (read there directly) */
  for (int i = 0; i < n; i++) {
    if (!acked[i])
      continue;
    snprintf(k, sizeof k, "app/w%d", i);
    snprintf(v, sizeof v, "w%d", i);
    int rc = gget(&gb, k, &r);
    if (rc != 0)
      fail_msg("acknowledged %s missing at the destination: %s", k,
               teex_strerror(rc));
    assert_int_equal(r.val_len, strlen(v));
    assert_memory_equal(r.val, v, r.val_len);
    teex_ds_result_free(&r);
  }
  for (int i = 0; i < 40; i++) {
    snprintf(k, sizeof k, "app/k%d", i);
    assert_int_equal(gget(&gb, k, &r), 0);
    /* TTLs kept (within the move's duration) */
    if (i % 4 == 0)
      assert_true(r.expire_at_ms > r.clock_ms &&
                  r.expire_at_ms - r.clock_ms <= 600000);
    else
      assert_int_equal(r.expire_at_ms, 0);
    teex_ds_result_free(&r);
  }
  /* the source answers "moved" (with the signed directory) and has no copy */
  assert_int_equal(gget(&ga, "app/k1", &r), TEEX_EMOVED);
  struct teex_ds_place_record rec;
  assert_int_equal(teex_ds_place_record_parse(r.val, r.val_len, &rec), 0);
  assert_int_equal(rec.state, TEEX_DS_PLACE_MOVED);
  assert_int_equal(rec.group, 2);
  assert_int_equal(rec.epoch, 2);
  teex_ds_result_free(&r);
  struct teex_ds_replica_info info;
  assert_int_equal(net_info(&ga, net_leader(&ga), &info), 0);
  assert_int_equal(info.keys, 0); /* app was all it held */
  /* app2 untouched on group 2 */
  assert_int_equal(rget(w2, "app2", "app2/x", &r), 0);
  teex_ds_result_free(&r);

  /* a stale client (the epoch-1 directory) gets "moved" and follows */
  struct teex_ds_router_sync *stale = NULL;
  assert_int_equal(router_open(dir0p, "app", 0, &stale, &err), 0);
  struct teex_ds_router *sr = teex_ds_router_sync_router(stale);
  assert_int_equal(teex_ds_router_group(sr), 1);
  assert_int_equal(rget(stale, "app", "app/k3", &r), 0);
  snprintf(out_v, sizeof out_v, "%.*s", (int)r.val_len, (char *)r.val);
  assert_string_equal(out_v, "v3");
  teex_ds_result_free(&r);
  assert_int_equal(teex_ds_router_group(sr), 2);
  assert_int_equal(teex_ds_router_epoch(sr), 2);
  assert_int_equal(teex_ds_router_moves(sr), 1);
  teex_ds_router_sync_close(stale);

  /* forged directories: altered placement, unsigned, another key */
  size_t dn;
  uint8_t *text = read_dir(dirp, &dn);
  char *pl = strstr((char *)text, "place app 2");
  assert_non_null(pl);
  pl[10] = '1';
  char forged[600];
  snprintf(forged, sizeof forged, "%s/forged", ga.dir);
  assert_int_equal(tu_write_file(forged, text, dn), 0);
  assert_int_equal(router_open(forged, "app", 0, &stale, &err), TEEX_EBADSIG);
  char *sig = strstr((char *)text, "signature ");
  assert_int_equal(tu_write_file(forged, text, (size_t)((uint8_t *)sig - text)),
                   0);
  assert_int_equal(router_open(forged, "app", 0, &stale, &err), TEEX_EBADSIG);
  free(text);

  frozen_write();
  assert_int_equal(rget(w2, "app2", "app2/during", &r), 0);
  teex_ds_result_free(&r);

  /* a move interrupted after the source marked it moved (the file still
   * at epoch 1): running it again writes the directory the source holds */
  char resf[600];
  snprintf(resf, sizeof resf, "%s/resume-directory", ga.dir);
  text = read_dir(dir0p, &dn);
  assert_int_equal(tu_write_file(resf, text, dn), 0);
  free(text);
  mv[7] = resf;
  out = NULL;
  assert_int_equal(teex_cli(mv, &out), 0);
  assert_non_null(strstr(out, "had already moved"));
  free(out);
  size_t rn, dn2;
  uint8_t *rt = read_dir(resf, &rn), *dt = read_dir(dirp, &dn2);
  assert_int_equal(rn, dn2);
  assert_memory_equal(rt, dt, rn);
  free(rt);
  free(dt);

  /* the RESP proxy over the directory, started from the stale file:
   * redirected by group 1, it serves app from group 2 and keeps the newer
   * directory */
  char pxdir[600], pxready[600], pxlog[600];
  snprintf(pxdir, sizeof pxdir, "%s/proxy-directory", ga.dir);
  snprintf(pxready, sizeof pxready, "%s/proxy.ready", ga.dir);
  snprintf(pxlog, sizeof pxlog, "%s/proxy.log", ga.dir);
  text = read_dir(dir0p, &dn);
  assert_int_equal(tu_write_file(pxdir, text, dn), 0);
  free(text);
  char *px[] = {(char *)tu_teex_bin(),
                "ds",
                "proxy",
                "--listen",
                "127.0.0.1:0",
                "--ready-file",
                pxready,
                "--dir",
                pxdir,
                "--pub",
                pubp,
                "--ns",
                "app",
                "--cert",
                certp,
                "--key",
                ckeyp,
                "--policy",
                pola,
                "--policy",
                polb,
                NULL};
  int pxpid = tu_spawn(px, pxlog);
  assert_true(pxpid > 0);
  if (tu_wait_file(pxready, 20000) != 0) {
    char *plog = (char *)tu_read_file(pxlog, &dn);
    fail_msg("proxy did not start: %s", plog ? plog : "");
  }
  char *pt = (char *)tu_read_file(pxready, &dn);
  uint64_t port64 = 0;
  pt[strcspn(pt, "\n")] = 0;
  assert_int_equal(teex_parse_u64(pt, &port64), 0);
  int port = (int)port64;
  free(pt);
  char reply[256];
  resp_call(port, "*2\r\n$3\r\nGET\r\n$2\r\nk7\r\n", reply, sizeof reply);
  assert_string_equal(reply, "$2\r\nv7\r\n");
  resp_call(port, "*3\r\n$3\r\nSET\r\n$2\r\npx\r\n$3\r\nvia\r\n", reply,
            sizeof reply);
  assert_string_equal(reply, "+OK\r\n");
  assert_int_equal(tu_stop(pxpid, SIGTERM, 10000), 0);
  assert_int_equal(gget(&gb, "app/px", &r), 0);
  teex_ds_result_free(&r);
  text = read_dir(pxdir, &dn);
  assert_non_null(strstr((char *)text, "epoch 2\n"));
  free(text);

  /* the CLI: a routed read from a stale file follows and rewrites it */
  char stalef[600];
  snprintf(stalef, sizeof stalef, "%s/cli-directory", ga.dir);
  text = read_dir(dir0p, &dn);
  assert_int_equal(tu_write_file(stalef, text, dn), 0);
  free(text);
  char *cg[] = {(char *)tu_teex_bin(),
                "ds",
                "place",
                "get",
                "--dir",
                stalef,
                "--pub",
                pubp,
                "--cert",
                certp,
                "--key",
                ckeyp,
                "--policy",
                pola,
                "--policy",
                polb,
                "--ns",
                "app",
                "k5",
                NULL};
  out = NULL;
  assert_int_equal(teex_cli(cg, &out), 0);
  assert_string_equal(out, "v5\n");
  free(out);
  text = read_dir(stalef, &dn);
  assert_non_null(strstr((char *)text, "epoch 2\n"));
  free(text);
  /* pin: explicit placements at the next epoch */
  char *pin[] = {(char *)tu_teex_bin(), "ds", "place", "pin",  "--dir", dirp,
                 "--place-key",         keyp, "app",   "app2", NULL};
  assert_int_equal(teex_cli(pin, NULL), 0);
  text = read_dir(dirp, &dn);
  assert_non_null(strstr((char *)text, "epoch 3\n"));
  free(text);
  /* add-group: updating group 2 as it is is fine (epoch 4); taking it out
   * of hash placement is refused without --force */
  char g2s[700];
  snprintf(g2s, sizeof g2s, "2=%s", gb.state[0]);
  char *ag[] = {
      (char *)tu_teex_bin(), "ds", "place",   "add-group", "--dir",  dirp,
      "--place-key",         keyp, "--group", g2s,         "--hash", NULL};
  assert_int_equal(teex_cli(ag, NULL), 0);
  ag[10] = NULL; /* without --hash */
  char *eo = NULL;
  assert_int_not_equal(net_run_teex(ag, NULL, &eo), 0);
  assert_non_null(strstr(eo, "--force"));
  free(eo);
  text = read_dir(dirp, &dn);
  assert_non_null(strstr((char *)text, "epoch 4\n"));
  free(text);
  /* --abort unfreezes a namespace left frozen */
  struct teex_ds_client_config ac = {.replicas = gb.addrs,
                                     .n_replicas = NET_N,
                                     .tls = tls2b,
                                     .ns = "app2",
                                     .timeout_ms = 5000};
  struct teex_ds_sync *as = NULL;
  assert_int_equal(teex_ds_sync_open(&ac, &as, &err), 0);
  struct teex_ds_place_record frz = {TEEX_DS_PLACE_FROZEN, 1, 4, NULL, 0};
  uint8_t *fb;
  size_t fbn;
  assert_int_equal(teex_ds_place_record_encode(&frz, &fb, &fbn), 0);
  struct teex_ds_cmd fc = {
      .op = TEEX_DS_PLACE, .grant = "app2", .val = fb, .val_len = fbn};
  assert_int_equal(
      teex_ds_sync_exec(as, &fc, TEEX_DS_READ_LINEARIZABLE, &r, &err), 0);
  assert_int_equal(r.status, 0);
  teex_ds_result_free(&r);
  free(fb);
  struct teex_ds_cmd wy = {.op = TEEX_DS_SET,
                           .grant = "app2",
                           .key = (const uint8_t *)"app2/y",
                           .key_len = 6,
                           .val = (const uint8_t *)"1",
                           .val_len = 1};
  assert_int_equal(
      teex_ds_sync_exec(as, &wy, TEEX_DS_READ_LINEARIZABLE, &r, &err), 0);
  assert_int_equal(r.status, TEEX_EBUSY);
  teex_ds_result_free(&r);
  char *ab[] = {(char *)tu_teex_bin(),
                "ds",
                "move",
                "app2",
                "--abort",
                "--dir",
                dirp,
                "--place-key",
                keyp,
                "--cert",
                cert2p,
                "--key",
                ckey2p,
                "--policy",
                pola,
                "--policy",
                polb,
                NULL};
  assert_int_equal(teex_cli(ab, NULL), 0);
  assert_int_equal(
      teex_ds_sync_exec(as, &wy, TEEX_DS_READ_LINEARIZABLE, &r, &err), 0);
  assert_int_equal(r.status, 0);
  teex_ds_result_free(&r);
  teex_ds_sync_close(as);

  /* a group handing out a directory the placement key did not sign (an
   * operator certificate without the placement key): the router refuses
   * to follow it */
  struct teex_ds_dir *fd = calloc(1, sizeof(*fd));
  text = read_dir(dirp, &dn);
  uint8_t pk[32], sk2[64], pk2[32];
  pk_of(pk);
  assert_int_equal(teex_ds_dir_open(text, dn, pk, fd, &err), 0);
  free(text);
  fd->epoch = 9;
  assert_int_equal(teex_ds_dir_set_place(fd, "app2", 1, &err), 0);
  teex_ed25519_keypair(pk2, sk2);
  static uint8_t ftext[TEEX_DS_DIR_MAX];
  size_t fn;
  assert_int_equal(teex_ds_dir_sign(fd, sk2, ftext, sizeof ftext, &fn, &err),
                   0);
  free(fd);
  struct teex_ds_place_record bad = {TEEX_DS_PLACE_MOVED, 1, 9, ftext, fn};
  uint8_t *bb;
  size_t bn;
  assert_int_equal(teex_ds_place_record_encode(&bad, &bb, &bn), 0);
  struct teex_ds_client_config cc = {.replicas = gb.addrs,
                                     .n_replicas = NET_N,
                                     .tls = tls2b,
                                     .ns = "app2",
                                     .timeout_ms = 5000};
  struct teex_ds_sync *op2 = NULL;
  assert_int_equal(teex_ds_sync_open(&cc, &op2, &err), 0);
  struct teex_ds_cmd pc = {
      .op = TEEX_DS_PLACE, .grant = "app2", .val = bb, .val_len = bn};
  assert_int_equal(
      teex_ds_sync_exec(op2, &pc, TEEX_DS_READ_LINEARIZABLE, &r, &err), 0);
  assert_int_equal(r.status, 0);
  teex_ds_result_free(&r);
  teex_ds_sync_close(op2);
  free(bb);
  struct teex_ds_cmd g2 = {.op = TEEX_DS_GET,
                           .grant = "app2",
                           .key = (const uint8_t *)"app2/x",
                           .key_len = 6};
  assert_int_equal(
      teex_ds_router_sync_exec(w2, &g2, TEEX_DS_READ_LINEARIZABLE, &r, &err),
      TEEX_EBADSIG);
  assert_int_equal(teex_ds_router_epoch(teex_ds_router_sync_router(w2)), 1);
  assert_int_equal(teex_ds_router_group(teex_ds_router_sync_router(w2)), 2);

  /* placement changes are for operator clients only: an enclave client
   * (this process, role sm, namespace smns) is refused */
  EVP_PKEY *ek;
  X509 *ex;
  assert_int_equal(teex_ratls_identity_new(ga.enclave, NULL, &ek, &ex, &err),
                   0);
  struct teex_tls_ctx *etls = tls_for(&ga, ek, ex);
  struct teex_ds_client_config ec = {.replicas = ga.addrs,
                                     .n_replicas = NET_N,
                                     .tls = etls,
                                     .ns = "smns",
                                     .timeout_ms = 5000};
  struct teex_ds_sync *es = NULL;
  assert_int_equal(teex_ds_sync_open(&ec, &es, &err), 0);
  struct teex_ds_place_record fr = {TEEX_DS_PLACE_FROZEN, 2, 3, NULL, 0};
  assert_int_equal(teex_ds_place_record_encode(&fr, &bb, &bn), 0);
  struct teex_ds_cmd ep = {
      .op = TEEX_DS_PLACE, .grant = "smns", .val = bb, .val_len = bn};
  assert_int_equal(
      teex_ds_sync_exec(es, &ep, TEEX_DS_READ_LINEARIZABLE, &r, &err),
      TEEX_EPERM);
  free(bb);
  teex_ds_sync_close(es);
  teex_tls_ctx_free(etls);
  EVP_PKEY_free(ek);
  X509_free(ex);

  /* status of both groups through the directory */
  char *st[] = {(char *)tu_teex_bin(),
                "ds",
                "place",
                "status",
                "--dir",
                dirp,
                "--pub",
                pubp,
                "--cert",
                certp,
                "--key",
                ckeyp,
                "--policy",
                pola,
                "--policy",
                polb,
                NULL};
  out = NULL;
  assert_int_equal(teex_cli(st, &out), 0);
  assert_non_null(strstr(out, "group 1"));
  assert_non_null(strstr(out, "group 2"));
  assert_non_null(strstr(out, "leader"));
  free(out);

  teex_ds_router_sync_close(w);
  teex_ds_router_sync_close(w2);
  teex_tls_ctx_free(tls2a);
  teex_tls_ctx_free(tls2b);
  EVP_PKEY_free(key2);
  X509_free(cert2);
  net_close(&ga);
  net_close(&gb);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_scale)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
