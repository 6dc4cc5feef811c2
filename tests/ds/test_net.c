/* TEE-DS over the network, with real `teex ds run` processes: reads and
 * writes through the client library, follower reads, status, namespace and
 * client refusals, a tampered raft metadata file refused at start, a replica
 * without its sealed record kept from voting until it caught up, a taken
 * peer port named in the replica's error, a silent replica skipped by the
 * client after its connect limit, and no
 * plaintext key or value in any replica's files (with a positive control). */
#include "net_fixture.c"

#include <dirent.h>
#include <sys/wait.h>

static int setup(void **state) {
  struct net *t = calloc(1, sizeof(*t));
  net_init(t);
  net_start_all(t);
  net_leader(t);
  net_warm_up(t);
  *state = t;
  return 0;
}

/* The same with every linearizable read confirmed by a barrier. */
static int setup_no_lease(void **state) {
  struct net *t = calloc(1, sizeof(*t));
  net_init(t);
  t->no_lease = 1;
  net_start_all(t);
  net_leader(t);
  net_warm_up(t);
  *state = t;
  return 0;
}

static int teardown(void **state) {
  struct net *t = *state;
  net_close(t);
  free(t);
  return 0;
}

static void test_read_write(void **state) {
  struct net *t = *state;
  struct teex_ds_sync *s = net_client(t, "app", 10000);
  char v[64];
  assert_int_equal(net_set(s, "app/a", "1"), 0);
  assert_int_equal(net_set(s, "app/b", "2"), 0);
  assert_int_equal(net_get(s, "app/a", TEEX_DS_READ_LINEARIZABLE, v, sizeof v),
                   0);
  assert_string_equal(v, "1");
  assert_int_equal(net_get(s, "app/zz", TEEX_DS_READ_LINEARIZABLE, v, sizeof v),
                   TEEX_ENOTFOUND);
  /* Every field of the result crosses the wire: index and clock too. */
  struct teex_ds_cmd c = {.op = TEEX_DS_SCAN, .grant = "app", .limit = 1};
  c.key = (const uint8_t *)"app/";
  c.key_len = 4;
  struct teex_ds_result r;
  struct teex_err err;
  assert_int_equal(
      teex_ds_sync_exec(s, &c, TEEX_DS_READ_LINEARIZABLE, &r, &err), 0);
  assert_int_equal(r.status, 0);
  assert_int_equal(r.n_items, 1);
  assert_true(r.more);
  assert_memory_equal(r.items[0].key, "app/a", 5);
  assert_true(r.index > 0);
  assert_true(r.clock_ms > 0);
  teex_ds_result_free(&r);
  /* A TTL'd key reports its expiry against the group clock. */
  struct teex_ds_cmd st = {.op = TEEX_DS_SET, .grant = "app", .ttl_ms = 60000};
  st.key = (const uint8_t *)"app/ttl";
  st.key_len = 7;
  st.val = (const uint8_t *)"x";
  st.val_len = 1;
  assert_int_equal(
      teex_ds_sync_exec(s, &st, TEEX_DS_READ_LINEARIZABLE, &r, &err), 0);
  assert_int_equal(r.status, 0);
  teex_ds_result_free(&r);
  /* Follower reads see the write once it reached that replica. */
  int seen = 0;
  for (int i = 0; i < 100 && !seen; i++) {
    if (net_get(s, "app/b", TEEX_DS_READ_FOLLOWER, v, sizeof v) == 0 &&
        strcmp(v, "2") == 0)
      seen = 1;
    else
      net_sleep_ms(20);
  }
  assert_true(seen);
  /* A delete through the leader. */
  c = (struct teex_ds_cmd){.op = TEEX_DS_DEL, .grant = "app"};
  c.key = (const uint8_t *)"app/a";
  c.key_len = 5;
  assert_int_equal(
      teex_ds_sync_exec(s, &c, TEEX_DS_READ_LINEARIZABLE, &r, &err), 0);
  assert_int_equal(r.num, 1);
  teex_ds_result_free(&r);
  assert_int_equal(net_get(s, "app/a", TEEX_DS_READ_LINEARIZABLE, v, sizeof v),
                   TEEX_ENOTFOUND);
  teex_ds_sync_close(s);
  /* Status: one leader, everyone on the same term and applied index (once
   * the followers caught up), nobody failed. */
  int settled = 0;
  for (int tries = 0; tries < 200 && !settled; tries++) {
    int leaders = 0;
    uint64_t term = 0, applied = 0;
    settled = 1;
    for (int i = 0; i < NET_N; i++) {
      struct teex_ds_replica_info info;
      assert_int_equal(net_info(t, i, &info), 0);
      assert_int_equal(info.id, (uint64_t)(i + 1));
      assert_int_equal(info.failed, 0);
      leaders += info.leader;
      if (i == 0) {
        term = info.term;
        applied = info.last_applied;
      }
      if (info.term != term || info.last_applied != applied || !info.voting)
        settled = 0;
    }
    if (leaders != 1)
      settled = 0;
    if (!settled)
      net_sleep_ms(25);
  }
  assert_true(settled);
}

struct nreads {
  int done, ok;
};

static void read_cb(void *arg, int status, struct teex_ds_result *res) {
  struct nreads *n = arg;
  n->done++;
  if (status == 0 && res->status == 0 && res->val_len == 1 &&
      res->val[0] == '7')
    n->ok++;
  if (res != NULL) {
    teex_ds_result_free(res);
    free(res);
  }
}

/* Writes issued together: libraft sends an AppendEntries per proposal to
 * each follower; the leader's sealed_io merges those that continue each
 * other into one message. Every write is acknowledged and every replica
 * applies them all. */
static void write_cb(void *arg, int status, struct teex_ds_result *res) {
  struct nreads *n = arg;
  n->done++;
  if (status == 0 && res->status == 0)
    n->ok++;
  if (res != NULL) {
    teex_ds_result_free(res);
    free(res);
  }
}

static void test_writes_coalesced(void **state) {
  struct net *t = *state;
  int l = net_leader(t);
  struct teex_ds_replica_info before, after;
  assert_int_equal(net_info(t, l, &before), 0);
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  struct teex_ds_client_config cc = {.replicas = t->addrs,
                                     .n_replicas = NET_N,
                                     .tls = t->tls,
                                     .ns = "app",
                                     .timeout_ms = 10000};
  struct teex_ds_client *c;
  struct teex_err err;
  assert_int_equal(teex_ds_client_new(&loop, &cc, &c, &err), 0);
  enum { WRITES = 200 };
  static char keys[WRITES][16];
  struct nreads n = {0, 0};
  for (int i = 0; i < WRITES; i++) {
    snprintf(keys[i], sizeof keys[i], "app/w%03d", i);
    struct teex_ds_cmd w = {.op = TEEX_DS_SET, .grant = "app"};
    w.key = (const uint8_t *)keys[i];
    w.key_len = strlen(keys[i]);
    w.val = (const uint8_t *)"v";
    w.val_len = 1;
    assert_int_equal(teex_ds_client_exec(c, &w, TEEX_DS_READ_LINEARIZABLE,
                                         write_cb, &n, &err),
                     0);
  }
  while (n.done < WRITES)
    uv_run(&loop, UV_RUN_ONCE);
  teex_ds_client_close(c);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  assert_int_equal(n.ok, WRITES);
  assert_int_equal(net_info(t, l, &after), 0);
  uint64_t entries = after.last_index - before.last_index;
  fprintf(stderr, "%llu entries, %llu AppendEntries merged into others\n",
          (unsigned long long)entries,
          (unsigned long long)(after.coalesced - before.coalesced));
  assert_true(entries >= WRITES);
  assert_true(after.coalesced > before.coalesced);
  /* every replica applies every write */
  int settled = 0;
  for (int tries = 0; tries < 200 && !settled; tries++) {
    settled = 1;
    for (int i = 0; i < NET_N; i++) {
      struct teex_ds_replica_info info;
      if (net_info(t, i, &info) != 0 || info.last_applied < after.last_index)
        settled = 0;
    }
    if (!settled)
      net_sleep_ms(25);
  }
  assert_true(settled);
}

/* Linearizable reads issued together share raft barriers. */
static void test_reads_share_barriers(void **state) {
  struct net *t = *state;
  struct teex_ds_sync *s = net_client(t, "app", 10000);
  NET_SET_OK(t, s, "app/r", "7");
  teex_ds_sync_close(s);
  int l = net_leader(t);
  struct teex_ds_replica_info before, after;
  assert_int_equal(net_info(t, l, &before), 0);
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  struct teex_ds_client_config cc = {.replicas = t->addrs,
                                     .n_replicas = NET_N,
                                     .tls = t->tls,
                                     .ns = "app",
                                     .timeout_ms = 10000};
  struct teex_ds_client *c;
  struct teex_err err;
  assert_int_equal(teex_ds_client_new(&loop, &cc, &c, &err), 0);
  struct teex_ds_cmd g = {.op = TEEX_DS_GET, .grant = "app"};
  g.key = (const uint8_t *)"app/r";
  g.key_len = 5;
  struct nreads n = {0, 0};
  enum { READS = 64 };
  for (int i = 0; i < READS; i++)
    assert_int_equal(teex_ds_client_exec(c, &g, TEEX_DS_READ_LINEARIZABLE,
                                         read_cb, &n, &err),
                     0);
  while (n.done < READS)
    uv_run(&loop, UV_RUN_ONCE);
  teex_ds_client_close(c);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  assert_int_equal(n.ok, READS);
  assert_int_equal(net_info(t, l, &after), 0);
  uint64_t reads = after.reads - before.reads;
  uint64_t barriers = after.read_barriers - before.read_barriers;
  fprintf(stderr, "%llu reads confirmed by %llu barriers\n",
          (unsigned long long)reads, (unsigned long long)barriers);
  assert_int_equal(reads, READS);
  assert_int_equal(after.lease_reads, 0);
  assert_true(barriers >= 1 && barriers < reads);
}

static void test_namespace_refused(void **state) {
  struct net *t = *state;
  /* A namespace the client was not granted: refused by the server. */
  struct teex_ds_sync *s = net_client(t, "other", 5000);
  struct teex_ds_cmd c = {.op = TEEX_DS_SET, .grant = "other"};
  c.key = (const uint8_t *)"other/x";
  c.key_len = 7;
  c.val = (const uint8_t *)"v";
  c.val_len = 1;
  struct teex_ds_result r;
  struct teex_err err;
  assert_int_equal(
      teex_ds_sync_exec(s, &c, TEEX_DS_READ_LINEARIZABLE, &r, &err),
      TEEX_EPERM);
  c.op = TEEX_DS_GET;
  assert_int_equal(teex_ds_sync_exec(s, &c, TEEX_DS_READ_FOLLOWER, &r, &err),
                   TEEX_EPERM);
  teex_ds_sync_close(s);
  /* The granted namespace, but a key outside it: the state machine refuses
   * it on every replica (the grant is the server's, not the client's). */
  s = net_client(t, "app", 5000);
  assert_int_equal(net_set(s, "other/x", "v"), TEEX_EPERM);
  teex_ds_sync_close(s);
  /* A client certificate the group config does not list never completes
   * the handshake. */
  EVP_PKEY *k;
  X509 *x;
  assert_int_equal(teex_tls_selfsigned_new("stranger", 1, &k, &x, &err), 0);
  struct teex_tls_config tc = {.cert = x,
                               .key = k,
                               .mutual = 1,
                               .verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &t->ver};
  struct teex_tls_ctx *ctx;
  assert_int_equal(teex_tls_ctx_new(&ctx, &tc, 0, &err), 0);
  struct teex_ds_replica_info info;
  assert_int_not_equal(
      teex_ds_replica_info_get(ctx, t->client[0], 2000, &info, &err), 0);
  teex_tls_ctx_free(ctx);
  EVP_PKEY_free(k);
  X509_free(x);
}

/* An enclave client: its RA-TLS evidence (role sm, allowed by the group's
 * clients-policy.conf) grants it namespace smns and nothing else; an
 * enclave of a role the group does not map is refused in the handshake. */
static void test_enclave_client(void **state) {
  struct net *t = *state;
  struct teex_err err;
  EVP_PKEY *k;
  X509 *x;
  assert_int_equal(teex_ratls_identity_new(t->enclave, NULL, &k, &x, &err), 0);
  struct teex_tls_config tc = {.cert = x,
                               .key = k,
                               .mutual = 1,
                               .verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &t->ver};
  struct teex_tls_ctx *ctx;
  assert_int_equal(teex_tls_ctx_new(&ctx, &tc, 0, &err), 0);
  struct teex_ds_client_config cc = {.replicas = t->addrs,
                                     .n_replicas = NET_N,
                                     .tls = ctx,
                                     .ns = "smns",
                                     .timeout_ms = 10000};
  struct teex_ds_sync *s;
  assert_int_equal(teex_ds_sync_open(&cc, &s, &err), 0);
  struct teex_ds_cmd c = {.op = TEEX_DS_SET, .grant = "smns"};
  c.key = (const uint8_t *)"smns/state";
  c.key_len = 10;
  c.val = (const uint8_t *)"sealed-by-sm";
  c.val_len = 12;
  struct teex_ds_result r;
  assert_int_equal(
      teex_ds_sync_exec(s, &c, TEEX_DS_READ_LINEARIZABLE, &r, &err), 0);
  assert_int_equal(r.status, 0);
  teex_ds_result_free(&r);
  teex_ds_sync_close(s);
  cc.ns = "app"; /* the certificate client's namespace: not this enclave's */
  assert_int_equal(teex_ds_sync_open(&cc, &s, &err), 0);
  c.grant = "app";
  c.key = (const uint8_t *)"app/x";
  c.key_len = 5;
  assert_int_equal(
      teex_ds_sync_exec(s, &c, TEEX_DS_READ_LINEARIZABLE, &r, &err),
      TEEX_EPERM);
  teex_ds_sync_close(s);
  teex_tls_ctx_free(ctx);
  EVP_PKEY_free(k);
  X509_free(x);
  /* The same code in role worker: evidence refused by the client policy,
   * and its key is not listed either. */
  struct teex_tee_config wc;
  memset(&wc, 0, sizeof wc);
  wc.data_dir = t->dir;
  wc.role = "worker";
  struct teex_tee *w;
  assert_int_equal(teex_tee_open(&wc, &w, &err), 0);
  assert_int_equal(teex_ratls_identity_new(w, NULL, &k, &x, &err), 0);
  tc.cert = x;
  tc.key = k;
  assert_int_equal(teex_tls_ctx_new(&ctx, &tc, 0, &err), 0);
  struct teex_ds_replica_info info;
  assert_int_not_equal(
      teex_ds_replica_info_get(ctx, t->client[0], 2000, &info, &err), 0);
  teex_tls_ctx_free(ctx);
  EVP_PKEY_free(k);
  X509_free(x);
  teex_tee_close(w);
}

static int wait_exit(int pid, int timeout_ms) {
  for (int i = 0; i < timeout_ms / 20; i++) {
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid)
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    net_sleep_ms(20);
  }
  return -1;
}

static int log_has(struct net *t, int i, const char *needle) {
  size_t n;
  char *log = (char *)tu_read_file(t->log[i], &n);
  int found = log != NULL && strstr(log, needle) != NULL;
  free(log);
  return found;
}

static void test_tampered_metadata_refused(void **state) {
  struct net *t = *state;
  struct teex_ds_sync *s = net_client(t, "app", 10000);
  assert_int_equal(net_set(s, "app/k", "v"), 0);
  int victim = (net_leader(t) + 1) % NET_N;
  assert_int_equal(net_stop(t, victim, SIGTERM), 0);
  /* raft_uv's metadata: format, version, term, vote (u64 little-endian).
   * Raise the term in both copies, as a host editing the files would. */
  int edited = 0;
  for (int m = 1; m <= 2; m++) {
    char p[700];
    snprintf(p, sizeof p, "%s/raft/metadata%d", t->state[victim], m);
    size_t n;
    uint8_t *b = tu_read_file(p, &n);
    if (b == NULL)
      continue; /* raft_uv writes the second copy at its second update */
    assert_int_equal(n, 32);
    b[16] = (uint8_t)(b[16] + 7);
    assert_int_equal(tu_write_file(p, b, n), 0);
    free(b);
    edited++;
  }
  assert_true(edited > 0);
  assert_int_equal(net_start_nowait(t, victim, "5000"), 0);
  int st = wait_exit(t->pid[victim], 20000);
  t->pid[victim] = 0;
  if (st == 0 || st == -1)
    net_dump_log(t, victim);
  assert_true(st > 0 && st < 128);
  assert_true(log_has(t, victim, "disagrees with the sealed record"));
  /* The other two still serve. */
  NET_SET_OK(t, s, "app/k2", "v2");
  teex_ds_sync_close(s);
}

/* The port of "127.0.0.1:PORT". */
static int atoi_port(const char *addr) {
  const char *c = strrchr(addr, ':');
  assert_non_null(c);
  return (int)strtol(c + 1, NULL, 10);
}

/* A loopback socket listening on port (0: any) that never accepts: TCP
 * connects complete, nothing is ever answered. */
static int listen_on(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
      listen(fd, 8) != 0) {
    if (fd >= 0)
      close(fd);
    return -1;
  }
  return fd;
}

/* A replica whose peer port is taken exits saying so (libraft leaves its
 * own message empty for a listen error); and a client whose first replica
 * accepts TCP but never answers the handshake moves on to the next one
 * after its per-attempt connect limit, well before the operation's own
 * timeout (the TLS handshake timeout alone, 10 s, is longer than it). */
static void test_taken_port_and_silent_replica(void **state) {
  struct net *t = *state;
  int victim = (net_leader(t) + 1) % NET_N;
  assert_int_equal(net_stop(t, victim, SIGTERM), 0);
  int port = atoi_port(t->peer[victim]);
  int hold = listen_on(port);
  assert_true(hold >= 0);
  assert_int_equal(net_start_nowait(t, victim, "5000"), 0);
  int st = wait_exit(t->pid[victim], 20000);
  t->pid[victim] = 0;
  close(hold);
  if (st == 0 || st == -1)
    net_dump_log(t, victim);
  assert_true(st > 0 && st < 128);
  char want[128];
  snprintf(want, sizeof want, "raft start: listen %s:", t->peer[victim]);
  if (!log_has(t, victim, want))
    net_dump_log(t, victim);
  assert_true(log_has(t, victim, want));

  int silent = listen_on(0);
  assert_true(silent >= 0);
  struct sockaddr_in a;
  socklen_t l = sizeof a;
  assert_int_equal(getsockname(silent, (struct sockaddr *)&a, &l), 0);
  char silent_addr[64];
  snprintf(silent_addr, sizeof silent_addr, "127.0.0.1:%d", ntohs(a.sin_port));
  const char *addrs[NET_N];
  size_t n = 0;
  addrs[n++] = silent_addr; /* tried first */
  for (int i = 0; i < NET_N; i++)
    if (i != victim)
      addrs[n++] = t->client[i];
  struct teex_ds_client_config cc = {.replicas = addrs,
                                     .n_replicas = n,
                                     .tls = t->tls,
                                     .ns = "app",
                                     .timeout_ms = 6000,
                                     .connect_timeout_ms = 1000};
  struct teex_ds_sync *s = NULL;
  struct teex_err err;
  assert_int_equal(teex_ds_sync_open(&cc, &s, &err), 0);
  NET_SET_OK(t, s, "app/past-silent", "1");
  char v[16];
  assert_int_equal(
      net_get(s, "app/past-silent", TEEX_DS_READ_LINEARIZABLE, v, sizeof v), 0);
  assert_string_equal(v, "1");
  teex_ds_sync_close(s);
  close(silent);
}

static void test_no_record_waits_before_voting(void **state) {
  struct net *t = *state;
  struct teex_ds_sync *s = net_client(t, "app", 10000);
  assert_int_equal(net_set(s, "app/k", "v"), 0);
  int victim = (net_leader(t) + 1) % NET_N;
  assert_int_equal(net_stop(t, victim, SIGTERM), 0);
  char rec[700];
  snprintf(rec, sizeof rec, "%s/%s", t->state[victim], TEEX_DS_RECORD_FILE);
  assert_int_equal(unlink(rec), 0);
  for (int i = 0; i < 10; i++) {
    char k[32];
    snprintf(k, sizeof k, "app/more%d", i);
    NET_SET_OK(t, s, k, "x");
  }
  net_start(t, victim);
  /* It refuses to vote until it has the leader's commit index, then
   * writes a new sealed record and votes again. */
  int voting = 0;
  for (int i = 0; i < 200 && !voting; i++) {
    struct teex_ds_replica_info info;
    if (net_info(t, victim, &info) == 0 && info.voting)
      voting = 1;
    else
      net_sleep_ms(25);
  }
  assert_true(voting);
  assert_true(log_has(t, victim, "not voting until caught up"));
  assert_true(log_has(t, victim, "votes again"));
  assert_int_equal(access(rec, F_OK), 0);
  teex_ds_sync_close(s);
}

/* A log cut short on disk (its newest segments deleted while the replica
 * was down) ends before the index the sealed record says was persisted:
 * the replica starts as a non-voter and votes again once caught up. */
static void test_truncated_log_waits_before_voting(void **state) {
  struct net *t = *state;
  struct teex_ds_sync *s = net_client(t, "app", 10000);
  for (int i = 0; i < 20; i++) {
    char k[32];
    snprintf(k, sizeof k, "app/t%d", i);
    NET_SET_OK(t, s, k, "x");
  }
  int victim = (net_leader(t) + 1) % NET_N;
  net_sleep_ms(200); /* the follower has the last entries too */
  assert_int_equal(net_stop(t, victim, SIGTERM), 0);
  /* Delete every segment but the first (the bootstrap configuration). */
  char dir[700];
  snprintf(dir, sizeof dir, "%s/raft", t->state[victim]);
  DIR *d = opendir(dir);
  assert_non_null(d);
  struct dirent *e;
  int removed = 0;
  while ((e = readdir(d)) != NULL) {
    int seg = strlen(e->d_name) == 33 && e->d_name[16] == '-';
    int open_seg = strncmp(e->d_name, "open-", 5) == 0;
    if ((seg && strcmp(e->d_name, "0000000000000001-0000000000000001") != 0) ||
        open_seg) {
      char p[1000];
      snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
      assert_int_equal(unlink(p), 0);
      removed += seg;
    }
  }
  closedir(d);
  assert_true(removed > 0);
  NET_SET_OK(t, s, "app/more", "y");
  net_start(t, victim);
  int voting = 0;
  for (int i = 0; i < 200 && !voting; i++) {
    struct teex_ds_replica_info info;
    if (net_info(t, victim, &info) == 0 && info.voting)
      voting = 1;
    else
      net_sleep_ms(25);
  }
  assert_true(voting);
  if (!log_has(t, victim, "before the sealed record's persisted index"))
    net_dump_log(t, victim);
  assert_true(log_has(t, victim, "before the sealed record's persisted index"));
  assert_true(log_has(t, victim, "votes again"));
  char v[16];
  assert_int_equal(
      net_get(s, "app/t19", TEEX_DS_READ_LINEARIZABLE, v, sizeof v), 0);
  teex_ds_sync_close(s);
}

static void test_no_plaintext_at_rest(void **state) {
  struct net *t = *state;
  struct teex_ds_sync *s = net_client(t, "app", 10000);
  const char *key = "app/canary-key-4d1f9a";
  const char *val = "canary-value-b7e20c55";
  assert_int_equal(net_set(s, key, val), 0);
  char v[64];
  /* Applied everywhere (a follower read on each replica would be racy:
   * wait for the group to settle through status instead). */
  assert_int_equal(net_get(s, key, TEEX_DS_READ_LINEARIZABLE, v, sizeof v), 0);
  teex_ds_sync_close(s);
  for (int i = 0; i < NET_N; i++)
    net_stop(t, i, SIGTERM);
  for (int i = 0; i < NET_N; i++) {
    char hit[512];
    assert_int_equal(
        tu_tree_contains(t->state[i], key + 4, strlen(key + 4), hit), 0);
    assert_int_equal(tu_tree_contains(t->state[i], val, strlen(val), hit), 0);
  }
  /* Positive control: the same search finds the canary written in clear. */
  char ctl[700];
  snprintf(ctl, sizeof ctl, "%s/raft/control", t->state[1]);
  assert_int_equal(tu_write_file(ctl, val, strlen(val)), 0);
  assert_int_equal(tu_tree_contains(t->state[1], val, strlen(val), NULL), 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_read_write, setup, teardown),
      cmocka_unit_test_setup_teardown(test_writes_coalesced, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reads_share_barriers, setup_no_lease,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_namespace_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_enclave_client, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tampered_metadata_refused, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_taken_port_and_silent_replica, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_no_record_waits_before_voting, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_truncated_log_waits_before_voting,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_plaintext_at_rest, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
