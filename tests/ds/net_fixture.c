/* A 3-replica TEE-DS group of real `teex ds run` processes on loopback,
 * shared by the network tests (included, not compiled alone). */
#include "testutil.h"

#include "teex/config.h"
#include "teex/crypto.h"
#include "teex/ds.h"
#include "teex/ds_client.h"
#include "teex/ds_server.h"
#include "teex/ratls.h"
#include "teex/ratls_channel.h"
#include "teex/tee.h"
#include "teex/tee_policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* NET_N replicas have addresses; the first NET_INITIAL form the group
 * (the others can join it: tests/ds/test_net_member.c). */
#ifndef NET_N
#define NET_N 3
#endif
#ifndef NET_INITIAL
#define NET_INITIAL NET_N
#endif
#define NF static __attribute__((unused))

struct net {
  char *dir;
  uint8_t root[32];
  char state[NET_N][512], log[NET_N][512], ready[NET_N][512];
  char peer[NET_N][64], client[NET_N][64];
  const char *addrs[NET_N];
  const char *exe[NET_N];
  int pid[NET_N];
  EVP_PKEY *key;
  X509 *cert;
  struct teex_tee_policy policy;
  struct teex_ratls_verifier ver;
  struct teex_tls_ctx *tls;
  struct teex_tee *enclave;  /* this test process as an enclave of role sm */
  char client_grant[160];    /* --client LABEL=SPKI:NS of the test client */
  const char *init_extra[4]; /* more `ds init --new-group` arguments */
  int no_lease;              /* run replicas with --no-read-lease */
  const char
      *snapshot_threshold; /* ds run --snapshot-threshold (NULL: default) */
};

NF void net_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* NET_N*2 distinct loopback ports that were free a moment ago. They come
 * from 10000-14999, below the kernel's ephemeral range (32768+): a port
 * freed here cannot be handed to another process's connect() or bind(0)
 * before the replica binds it. The test scripts that pick ports take
 * 15000-19999 (ds) and 20000-31999 (chain ports); blocks here are picked
 * at random per process and probed together, so two tests running at once
 * would have to pick the same block within the same moments. */
/* Fixtures of another size (NET_N) take their own sub-range, so that one
 * test's block never straddles a port another test just freed (and is
 * about to take again, e.g. to hold it): 10000-13999 for 3 replicas,
 * tests/ds/test_net_member.c sets 14000-14999 for 5. */
#ifndef NET_PORT_BASE
#define NET_PORT_BASE 10000
#define NET_PORT_SPAN 4000
#endif
#define NET_PORT_BLOCKS (NET_PORT_SPAN / (2 * NET_N))
static void free_ports(int *ports, int n) {
  int fds[16];
  for (int attempt = 0; attempt < 200; attempt++) {
    uint32_t r;
    teex_random(&r, sizeof r);
    int base = NET_PORT_BASE + (int)(r % NET_PORT_BLOCKS) * n;
    int ok = 1, k = 0;
    for (; k < n && ok; k++) {
      fds[k] = socket(AF_INET, SOCK_STREAM, 0);
      struct sockaddr_in a = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)(base + k))};
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      ok = fds[k] >= 0 && bind(fds[k], (struct sockaddr *)&a, sizeof a) == 0;
      ports[k] = base + k;
    }
    for (int i = 0; i < k; i++)
      if (fds[i] >= 0)
        close(fds[i]);
    if (ok)
      return;
  }
  fail_msg("no block of %d free loopback ports in %d-%d", n, NET_PORT_BASE,
           NET_PORT_BASE + NET_PORT_SPAN - 1);
}

NF void net_dump_log(struct net *t, int i) {
  size_t n;
  char *log = (char *)tu_read_file(t->log[i], &n);
  fprintf(stderr, "---- replica %d log ----\n%s\n", i + 1, log ? log : "");
  free(log);
}

NF int net_run_teex(char **argv, char **out, char **errout) {
  return tu_run(argv, NULL, 0, out, errout);
}

/* Creates the sim platform and the client identities (net_init_states
 * then makes the replicas' states). */
NF void net_prepare(struct net *t) {
  memset(t, 0, sizeof(*t));
  struct teex_err err;
  t->dir = tu_mkdtemp("dsnet");
  assert_int_equal(teex_tee_sim_init(t->dir, t->root, &err), 0);
  int ports[2 * NET_N];
  free_ports(ports, 2 * NET_N);
  for (int i = 0; i < NET_N; i++) {
    snprintf(t->state[i], sizeof t->state[i], "%s/r%d", t->dir, i + 1);
    snprintf(t->log[i], sizeof t->log[i], "%s/r%d.log", t->dir, i + 1);
    snprintf(t->ready[i], sizeof t->ready[i], "%s/r%d.ready", t->dir, i + 1);
    snprintf(t->peer[i], sizeof t->peer[i], "127.0.0.1:%d", ports[2 * i]);
    snprintf(t->client[i], sizeof t->client[i], "127.0.0.1:%d",
             ports[2 * i + 1]);
    t->addrs[i] = t->client[i];
    t->exe[i] = tu_teex_bin();
  }
  assert_int_equal(
      teex_tls_selfsigned_new("ds-test-client", 1, &t->key, &t->cert, &err), 0);
  uint8_t spki[32];
  char hex[65], client[128];
  teex_tls_cert_spki_sha256(t->cert, spki);
  teex_hex_encode(spki, 32, hex);
  snprintf(client, sizeof client, "app=%s:app", hex);
  /* Enclave clients: this test process in role sm gets namespace smns. */
  struct teex_tee_config ec;
  memset(&ec, 0, sizeof ec);
  ec.data_dir = t->dir;
  ec.role = "sm";
  assert_int_equal(teex_tee_open(&ec, &t->enclave, &err), 0);
  char root_hex[65], meas_hex[65], cpol[600], ptext[1024];
  teex_hex_encode(t->root, 32, root_hex);
  teex_hex_encode(teex_tee_self(t->enclave)->mr_enclave, 32, meas_hex);
  int pn = snprintf(ptext, sizeof ptext,
                    "[policy]\nroles = sm\nallow_simulated = true\n[roots]\n"
                    "net = %s\n[measurements]\nsm = %s\n",
                    root_hex, meas_hex);
  snprintf(cpol, sizeof cpol, "%s/clients-policy.conf", t->dir);
  assert_int_equal(tu_write_file(cpol, ptext, (size_t)pn), 0);
  snprintf(t->client_grant, sizeof t->client_grant, "%s", client);
}

/* ds init of the 3 replicas; sm_addr/sm_policy: the SM that provisions the
 * group key, or NULL (the first replica makes it). */
NF void net_init_states(struct net *t, const char *sm_addr,
                        const char *sm_policy) {
  struct teex_err err;
  char m[NET_N][200], cpol[600];
  snprintf(cpol, sizeof cpol, "%s/clients-policy.conf", t->dir);
  char *client = t->client_grant;
  for (int i = 0; i < NET_N; i++)
    snprintf(m[i], sizeof m[i], "%d=%s,%s", i + 1, t->peer[i], t->client[i]);
  char *a1[] = {(char *)tu_teex_bin(),
                "ds",
                "init",
                "--data-dir",
                t->dir,
                "--state",
                t->state[0],
                "--id",
                "1",
                "--new-group",
                "--member",
                m[0],
                "--member",
                m[1],
                "--member",
                m[2],
                "--client",
                client,
                "--enclave",
                "sm=smns",
                "--client-policy",
                cpol,
                NULL,
                NULL,
                NULL,
                NULL,
                NULL,
                NULL,
                NULL,
                NULL,
                NULL};
  int na = 22;
  if (sm_addr != NULL) {
    a1[na++] = "--sm";
    a1[na++] = (char *)sm_addr;
    a1[na++] = "--sm-policy";
    a1[na++] = (char *)sm_policy;
  }
  for (int i = 0; i < 4 && t->init_extra[i] != NULL; i++)
    a1[na++] = (char *)t->init_extra[i];
  char *eo = NULL;
  if (net_run_teex(a1, NULL, &eo) != 0)
    fail_msg("ds init 1: %s", eo ? eo : "");
  free(eo);
  char group[600];
  snprintf(group, sizeof group, "%s/group.conf", t->state[0]);
  for (int i = 1; i < NET_INITIAL; i++) {
    char id[8];
    snprintf(id, sizeof id, "%d", i + 1);
    char *a[] = {(char *)tu_teex_bin(),
                 "ds",
                 "init",
                 "--data-dir",
                 t->dir,
                 "--state",
                 t->state[i],
                 "--id",
                 id,
                 "--group",
                 group,
                 NULL,
                 NULL,
                 NULL,
                 NULL,
                 NULL};
    if (sm_addr != NULL) {
      a[11] = "--sm";
      a[12] = (char *)sm_addr;
      a[13] = "--sm-policy";
      a[14] = (char *)sm_policy;
    }
    eo = NULL;
    if (net_run_teex(a, NULL, &eo) != 0)
      fail_msg("ds init %d: %s", i + 1, eo ? eo : "");
    free(eo);
  }
  /* The client checks replicas against the group's own policy. */
  char pol[600];
  snprintf(pol, sizeof pol, "%s/policy.conf", t->state[0]);
  teex_tee_policy_init(&t->policy);
  assert_int_equal(teex_tee_policy_load(&t->policy, pol, &err), 0);
  t->ver.policy = &t->policy;
  struct teex_tls_config tc = {.cert = t->cert,
                               .key = t->key,
                               .mutual = 1,
                               .verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &t->ver};
  assert_int_equal(teex_tls_ctx_new(&t->tls, &tc, 0, &err), 0);
}

/* Creates the sim platform, the client identity and 3 replica states. */
NF void net_init(struct net *t) {
  net_prepare(t);
  net_init_states(t, NULL, NULL);
}

/* Starts replica i; 0 once it wrote its ready file, else -1 (the process
 * may have exited: see its log). */
NF int net_start_nowait(struct net *t, int i, const char *key_timeout) {
  unlink(t->ready[i]);
  char *argv[] = {(char *)t->exe[i],
                  "ds",
                  "run",
                  "--data-dir",
                  t->dir,
                  "--state",
                  t->state[i],
                  "--ready-file",
                  t->ready[i],
                  "--election-timeout",
                  "150",
                  "--key-timeout",
                  (char *)key_timeout,
                  NULL,
                  NULL,
                  NULL,
                  NULL};
  int n = 13; /* the fixed arguments above */
  if (t->no_lease)
    argv[n++] = "--no-read-lease";
  if (t->snapshot_threshold != NULL) {
    argv[n++] = "--snapshot-threshold";
    argv[n++] = (char *)t->snapshot_threshold;
  }
  t->pid[i] = tu_spawn(argv, t->log[i]);
  return t->pid[i] > 0 ? 0 : -1;
}

NF void net_start(struct net *t, int i) {
  assert_int_equal(net_start_nowait(t, i, "20000"), 0);
  if (tu_wait_file(t->ready[i], 30000) != 0) {
    net_dump_log(t, i);
    fail_msg("replica %d did not start", i + 1);
  }
}

NF void net_start_all(struct net *t) {
  /* Start together: the later ones fetch the group key from the first. */
  for (int i = 0; i < NET_INITIAL; i++)
    assert_int_equal(net_start_nowait(t, i, "20000"), 0);
  for (int i = 0; i < NET_INITIAL; i++)
    if (tu_wait_file(t->ready[i], 30000) != 0) {
      net_dump_log(t, i);
      fail_msg("replica %d did not start", i + 1);
    }
}

/* Stops replica i with sig; returns its exit status. */
NF int net_stop(struct net *t, int i, int sig) {
  int st = -1;
  if (t->pid[i] > 0)
    st = tu_stop(t->pid[i], sig, 10000);
  t->pid[i] = 0;
  return st;
}

NF void net_close(struct net *t) {
  for (int i = 0; i < NET_N; i++)
    net_stop(t, i, SIGKILL);
  teex_tls_ctx_free(t->tls);
  teex_tee_close(t->enclave);
  EVP_PKEY_free(t->key);
  X509_free(t->cert);
  tu_rmtree(t->dir);
  free(t->dir);
}

NF int net_info(struct net *t, int i, struct teex_ds_replica_info *info) {
  struct teex_err err;
  return teex_ds_replica_info_get(t->tls, t->client[i], 2000, info, &err);
}

/* The index of the replica that reports itself leader (polls up to 15 s),
 * among the running ones. */
NF int net_leader(struct net *t) {
  for (int tries = 0; tries < 300; tries++) {
    for (int i = 0; i < NET_N; i++) {
      struct teex_ds_replica_info info;
      if (t->pid[i] > 0 && net_info(t, i, &info) == 0 && info.leader)
        return i;
    }
    net_sleep_ms(50);
  }
  fail_msg("no leader elected");
  return -1;
}

/* Waits until the group acknowledges a write (an election right after the
 * first one is normal while the last replicas come up). */
NF int net_set(struct teex_ds_sync *s, const char *k, const char *v);
NF struct teex_ds_sync *net_client(struct net *t, const char *ns,
                                   uint32_t timeout_ms);
NF void net_warm_up(struct net *t) {
  struct teex_ds_sync *s = net_client(t, "app", 2000);
  int rc = -1;
  for (int i = 0; i < 100 && rc != 0; i++)
    if ((rc = net_set(s, "app/warm-up", "1")) != 0)
      net_sleep_ms(50);
  teex_ds_sync_close(s);
  assert_int_equal(rc, 0);
}

/* net_set that must succeed; dumps the replicas' logs when it does not. */
#define NET_SET_OK(t, s, k, v)                                                 \
  do {                                                                         \
    int rc_ = net_set((s), (k), (v));                                          \
    if (rc_ != 0) {                                                            \
      for (int i_ = 0; i_ < NET_N; i_++)                                       \
        net_dump_log((t), i_);                                                 \
      fail_msg("set %s: %s", (k), teex_strerror(rc_));                         \
    }                                                                          \
  } while (0)

NF struct teex_ds_sync *net_client(struct net *t, const char *ns,
                                   uint32_t timeout_ms) {
  struct teex_ds_client_config cc = {.replicas = t->addrs,
                                     .n_replicas = NET_N,
                                     .tls = t->tls,
                                     .ns = ns,
                                     .timeout_ms = timeout_ms};
  struct teex_ds_sync *s = NULL;
  struct teex_err err;
  assert_int_equal(teex_ds_sync_open(&cc, &s, &err), 0);
  return s;
}

/* set/get helpers: the command's own status, or the transport error. */
NF int net_set(struct teex_ds_sync *s, const char *k, const char *v) {
  struct teex_ds_cmd c = {.op = TEEX_DS_SET, .grant = "app"};
  c.key = (const uint8_t *)k;
  c.key_len = strlen(k);
  c.val = (const uint8_t *)v;
  c.val_len = strlen(v);
  struct teex_ds_result r;
  struct teex_err err;
  int rc = teex_ds_sync_exec(s, &c, TEEX_DS_READ_LINEARIZABLE, &r, &err);
  if (rc != 0)
    return rc;
  rc = r.status;
  teex_ds_result_free(&r);
  return rc;
}

/* Reads k into out (NUL-terminated); returns the status. */
NF int net_get(struct teex_ds_sync *s, const char *k,
               enum teex_ds_read_mode mode, char *out, size_t cap) {
  struct teex_ds_cmd c = {.op = TEEX_DS_GET, .grant = "app"};
  c.key = (const uint8_t *)k;
  c.key_len = strlen(k);
  struct teex_ds_result r;
  struct teex_err err;
  out[0] = '\0';
  int rc = teex_ds_sync_exec(s, &c, mode, &r, &err);
  if (rc != 0)
    return rc;
  rc = r.status;
  if (rc == 0) {
    size_t n = r.val_len < cap - 1 ? r.val_len : cap - 1;
    memcpy(out, r.val, n);
    out[n] = '\0';
  }
  teex_ds_result_free(&r);
  return rc;
}
