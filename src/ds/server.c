/* The TEE-DS replica daemon (include/teex/ds_server.h). */
#include "teex/ds_server.h"

#include "ds/consensus.h"
#include "ds/group.h"
#include "ds/keyset.h"
#include "ds/membership.h"
#include "ds/replica.h"
#include "ds/sealed_io.h"
#include "ds/transport.h"
#include "ds/wire.h"
#include "teex/buf.h"
#include "teex/config.h"
#include "teex/crypto.h"
#include "teex/ds.h"
#include "teex/ds_anchor.h"
#include "teex/eip712.h"
#include "teex/eth_rpc.h"
#include "teex/eth_sender.h"
#include "teex/ipfs.h"
#include "teex/log.h"
#include "teex/mem.h"
#include "teex/proto/ds.pb-c.h"
#include "teex/proto/rpc.pb-c.h"
#include "teex/ratls.h"
#include "teex/ratls_channel.h"
#include "teex/rpc.h"
#include "teex/seal.h"
#include "teex/sm_client.h"
#include "teex/tee_policy.h"
#include "teex/version.h"

#include <errno.h>
#include <raft.h>
#include <raft/uv.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char key_ctx[] = "teex-ds group key v1";

static void path_of(char *out, size_t cap, const char *dir, const char *f) {
  snprintf(out, cap, "%s/%s", dir, f);
}

static int read_small(const char *path, size_t max, char **out, size_t *len,
                      struct teex_err *err) {
  *out = NULL;
  *len = 0;
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return teex_err_set(err, errno == ENOENT ? TEEX_ENOTFOUND : TEEX_EIO,
                        "%s: cannot open", path);
  char *b = malloc(max + 1);
  size_t n = b ? fread(b, 1, max + 1, f) : 0;
  fclose(f);
  if (b == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "out of memory");
  if (n > max) {
    free(b);
    return teex_err_set(err, TEEX_ETOOBIG, "%s: larger than %zu bytes", path,
                        max);
  }
  b[n] = '\0';
  *out = b;
  *len = n;
  return 0;
}

/* group.key: the group's keys per epoch (src/ds/keyset.h encoding; a bare
 * 32-byte key, epoch 0, from before rotation), sealed to this enclave. */
static int key_save(struct teex_tee *tee, const char *dir,
                    const uint8_t group_id[16], const uint8_t *keys,
                    size_t keys_len, struct teex_err *err) {
  uint8_t ctx[sizeof(key_ctx) + 16];
  memcpy(ctx, key_ctx, sizeof(key_ctx));
  memcpy(ctx + sizeof(key_ctx), group_id, 16);
  struct teex_buf out;
  teex_buf_init(&out, 4096, 0);
  int rc = teex_seal(tee, TEEX_SEAL_ENCLAVE, ctx, sizeof(ctx), keys, keys_len,
                     &out, err);
  char path[4096];
  path_of(path, sizeof(path), dir, TEEX_DS_KEY_FILE);
  if (rc == 0)
    rc = teex_ds_write_atomic(path, out.data, out.len, err);
  teex_buf_free(&out);
  return rc;
}

/* 0 with the keys (TEEX_DS_KEYS_ENC_MAX bytes), TEEX_ENOTFOUND when there
 * is no key file yet. */
static int key_load(struct teex_tee *tee, const char *dir,
                    const uint8_t group_id[16], uint8_t *keys, size_t *keys_len,
                    struct teex_err *err) {
  char path[4096];
  path_of(path, sizeof(path), dir, TEEX_DS_KEY_FILE);
  char *blob;
  size_t n;
  int rc = read_small(path, 2 * TEEX_DS_KEYS_ENC_MAX + 4096, &blob, &n, err);
  if (rc != 0)
    return rc;
  uint8_t ctx[sizeof(key_ctx) + 16];
  memcpy(ctx, key_ctx, sizeof(key_ctx));
  memcpy(ctx + sizeof(key_ctx), group_id, 16);
  struct teex_buf pt;
  teex_buf_init(&pt, TEEX_DS_KEYS_ENC_MAX + 64, TEEX_BUF_SECRET);
  rc = teex_unseal(tee, ctx, sizeof(ctx), (const uint8_t *)blob, n, &pt, err);
  struct teex_ds_keyset *ks = rc == 0 ? teex_secret_alloc(sizeof(*ks)) : NULL;
  if (rc == 0 && ks == NULL)
    rc = teex_err_set(err, TEEX_ENOMEM, "out of memory");
  if (rc == 0 && (pt.len > TEEX_DS_KEYS_ENC_MAX ||
                  teex_ds_keyset_decode(pt.data, pt.len, ks, NULL) != 0))
    rc = teex_err_set(err, TEEX_EFORMAT, "%s: not a group key", path);
  teex_secret_free(ks);
  if (rc == 0) {
    memcpy(keys, pt.data, pt.len);
    *keys_len = pt.len;
  }
  teex_buf_free(&pt);
  free(blob);
  return rc == 0 ? 0 : teex_err_wrap(err, 0, "group key");
}

/* The replica's enclave anchoring key: unsealed from the state directory,
 * or made and sealed (same-enclave policy) on the first run. */
static const char anchor_key_ctx[] = "teex-ds anchor key v1";

static int anchor_key_load(struct teex_tee *tee, const char *dir,
                           uint8_t sk[32], struct teex_err *err) {
  char path[4096];
  path_of(path, sizeof(path), dir, TEEX_DS_ANCHOR_KEY_FILE);
  char *blob;
  size_t n;
  int rc = read_small(path, 4096, &blob, &n, err);
  if (rc == TEEX_ENOTFOUND) {
    struct teex_buf out;
    uint8_t pub[64];
    teex_buf_init(&out, 4096, 0);
    rc = teex_secp256k1_keypair(sk, pub);
    if (rc != 0)
      rc = teex_err_set(err, TEEX_ECRYPTO, "anchoring key generation");
    if (rc == 0)
      rc = teex_seal(tee, TEEX_SEAL_ENCLAVE, anchor_key_ctx,
                     sizeof(anchor_key_ctx), sk, 32, &out, err);
    if (rc == 0)
      rc = teex_ds_write_atomic(path, out.data, out.len, err);
    teex_buf_free(&out);
    return rc == 0 ? 0 : teex_err_wrap(err, rc, "anchoring key");
  }
  if (rc != 0)
    return teex_err_wrap(err, rc, "anchoring key");
  struct teex_buf pt;
  teex_buf_init(&pt, 64, TEEX_BUF_SECRET);
  rc = teex_unseal(tee, anchor_key_ctx, sizeof(anchor_key_ctx),
                   (const uint8_t *)blob, n, &pt, err);
  if (rc == 0 && pt.len != 32)
    rc = teex_err_set(err, TEEX_EFORMAT, "%s: not an anchoring key", path);
  if (rc == 0)
    memcpy(sk, pt.data, 32);
  teex_buf_free(&pt);
  free(blob);
  return rc == 0 ? 0 : teex_err_wrap(err, rc, "anchoring key");
}

int teex_ds_default_policy(struct teex_tee *tee, char *out, size_t cap,
                           struct teex_err *err) {
  const struct teex_tee_identity *self = teex_tee_self(tee);
  char root[65], meas[65];
  teex_hex_encode(self->root, 32, root);
  teex_hex_encode(self->mr_enclave, 32, meas);
  int n = snprintf(out, cap,
                   "# Evidence a TEE-DS replica must present to its peers.\n"
                   "[policy]\nroles = ds\nallow_simulated = %s\n"
                   "[roots]\nplatform = %s\n[measurements]\nds = %s\n",
                   self->simulated ? "true" : "false", root, meas);
  if (n < 0 || (size_t)n >= cap)
    return teex_err_set(err, TEEX_ETOOBIG, "policy text");
  return 0;
}

int teex_ds_init(const struct teex_ds_init_config *cfg, struct teex_err *err) {
  struct teex_ds_group g;
  int rc = teex_ds_group_parse(&g, cfg->group_text, cfg->group_len, err);
  if (rc != 0)
    return teex_err_wrap(err, 0, "group config");
  if (teex_ds_group_member(&g, cfg->self_id) == NULL)
    return teex_err_set(err, TEEX_ECONFIG,
                        "id %llu is not a member of the "
                        "group",
                        (unsigned long long)cfg->self_id);
  char policy_buf[2048];
  const char *ptext = cfg->policy_text;
  size_t plen = cfg->policy_len;
  if (ptext == NULL) {
    if ((rc = teex_ds_default_policy(cfg->tee, policy_buf, sizeof(policy_buf),
                                     err)) != 0)
      return rc;
    ptext = policy_buf;
    plen = strlen(policy_buf);
  }
  struct teex_tee_policy pol;
  teex_tee_policy_init(&pol);
  if ((rc = teex_tee_policy_parse(&pol, ptext, plen, err)) != 0)
    return teex_err_wrap(err, 0, "policy");
  if (pol.n_roles != 1 || strcmp(pol.roles[0], "ds") != 0)
    return teex_err_set(err, TEEX_ECONFIG,
                        "policy: roles must be exactly 'ds' (only replicas "
                        "may join a group)");
  char path[4096];
  path_of(path, sizeof(path), cfg->state_dir, TEEX_DS_SELF_FILE);
  if (access(path, F_OK) == 0)
    return teex_err_set(err, TEEX_EEXIST, "%s already holds a replica",
                        cfg->state_dir);
  if (mkdir(cfg->state_dir, 0700) != 0 && errno != EEXIST)
    return teex_err_set(err, TEEX_EIO, "mkdir %s: %s", cfg->state_dir,
                        strerror(errno));
  path_of(path, sizeof(path), cfg->state_dir, TEEX_DS_GROUP_FILE);
  if ((rc = teex_ds_group_save(&g, path, err)) != 0)
    return rc;
  path_of(path, sizeof(path), cfg->state_dir, TEEX_DS_POLICY_FILE);
  if ((rc = teex_ds_write_atomic(path, ptext, plen, err)) != 0)
    return rc;
  if (cfg->client_policy_text != NULL) {
    struct teex_tee_policy cp;
    teex_tee_policy_init(&cp);
    if ((rc = teex_tee_policy_parse(&cp, cfg->client_policy_text,
                                    cfg->client_policy_len, err)) != 0)
      return teex_err_wrap(err, 0, "client policy");
    path_of(path, sizeof(path), cfg->state_dir, TEEX_DS_CLIENT_POLICY_FILE);
    if ((rc = teex_ds_write_atomic(path, cfg->client_policy_text,
                                   cfg->client_policy_len, err)) != 0)
      return rc;
  }
  if (cfg->sm_addr != NULL) {
    struct teex_tee_policy sp;
    teex_tee_policy_init(&sp);
    if (cfg->sm_policy_text == NULL ||
        (rc = teex_tee_policy_parse(&sp, cfg->sm_policy_text,
                                    cfg->sm_policy_len, err)) != 0)
      return cfg->sm_policy_text == NULL
                 ? teex_err_set(err, TEEX_ECONFIG, "an SM needs its policy")
                 : teex_err_wrap(err, 0, "SM policy");
    char conf[512];
    int cn = snprintf(conf, sizeof(conf), "address = %s\n", cfg->sm_addr);
    if (cn < 0 || (size_t)cn >= sizeof(conf))
      return teex_err_set(err, TEEX_ECONFIG, "SM address too long");
    path_of(path, sizeof(path), cfg->state_dir, TEEX_DS_SM_FILE);
    if ((rc = teex_ds_write_atomic(path, conf, (size_t)cn, err)) != 0)
      return rc;
    path_of(path, sizeof(path), cfg->state_dir, TEEX_DS_SM_POLICY_FILE);
    if ((rc = teex_ds_write_atomic(path, cfg->sm_policy_text,
                                   cfg->sm_policy_len, err)) != 0)
      return rc;
  }
  if (cfg->create_key && cfg->sm_addr == NULL) {
    uint8_t *key = teex_secret_alloc(32);
    if (key == NULL)
      return teex_err_set(err, TEEX_ENOMEM, "out of memory");
    teex_random(key, 32);
    rc = key_save(cfg->tee, cfg->state_dir, g.id, key, 32, err);
    teex_secret_free(key);
    if (rc != 0)
      return rc;
  }
  char self[64];
  int n = snprintf(self, sizeof(self), "id = %llu\n%s",
                   (unsigned long long)cfg->self_id,
                   cfg->join ? "join = true\n" : "");
  path_of(path, sizeof(path), cfg->state_dir, TEEX_DS_SELF_FILE);
  return teex_ds_write_atomic(path, self, (size_t)n, err);
}

/* ---- the running replica ---- */

struct srv {
  uv_loop_t loop;
  struct teex_tee *tee;
  const char *state_dir;
  struct teex_ds_group group;
  struct teex_tee_policy policy;
  struct teex_ratls_verifier verifier;
  struct teex_tee_policy client_policy; /* enclave clients */
  int have_client_policy;
  uint64_t self_id;
  const struct teex_ds_member *self; /* &self_m */
  struct teex_ds_member self_m;
  /* Membership (docs/internals/ds.md, "Membership"): join = this replica
   * was initialised to join a running group (never bootstraps); group.conf
   * [members] follows the committed raft configuration. */
  int join;
  uv_timer_t member_timer;
  int member_timer_on;
  uint64_t synced_conf; /* configuration index written to group.conf */
  int was_member;
  struct member_op *mop; /* the membership change in flight (leader) */
  uint8_t *keys;         /* secret memory: keyset.h encoding */
  size_t keys_len;
  EVP_PKEY *pkey;
  X509 *cert;
  struct teex_tls_ctx *peer_srv, *peer_cli, *client_srv;
  struct teex_ds_replica *rep;
  struct teex_ds_consensus *cons;
  struct raft raft;
  int raft_inited, raft_closed;
  struct raft_io uv_io;
  int uv_inited;
  struct raft_uv_transport transport;
  int transport_inited;
  struct teex_ds_sealed_io sio;
  /* Flush the AppendEntries sealed_io coalesces, before the loop polls and
   * after it ran the I/O callbacks (unreferenced: they keep nothing up). */
  uv_prepare_t flush_prepare;
  uv_check_t flush_check;
  int flush_inited;
  struct teex_rpc_server *rpc;
  uv_signal_t sigterm, sigint;
  int stopping;
  uint64_t started_ms;
  /* Linearizable reads wait for a barrier; one barrier confirms every read
   * queued before it was proposed (reads_next waits for the following one). */
  struct read_op *reads_next, **reads_tail, *reads_batch;
  int barrier_busy;
  uint64_t barriers, batched_reads;
  uint64_t barrier_ns, barrier_term; /* when the barrier in flight began */
  /* Leader lease (docs/internals/ds.md, "Reads and clocks"): an entry this
   * leader appended at lease_ns (monotonic clock) in lease_term has
   * committed, so a majority heard from it at or after lease_ns and none of
   * them votes for another before an election timeout passes on its own
   * clock. Until lease_ns + lease_ms a linearizable read with no write in
   * flight runs on the local state without a barrier. lease_ms 0: off. */
  uint64_t lease_ms, lease_ns, lease_term;
  uint64_t lease_reads;
  /* The chain anchor read at start (anchored = 0: no chain configured). */
  int anchored;
  struct teex_ds_anchor anchor;
  /* This replica's enclave anchoring key (secret memory), sealed in the
   * state directory and bound in its RA-TLS evidence. */
  uint8_t *anchor_sk;
  uint8_t anchor_pub[64], anchor_addr[20];
  /* Publishing (publish = 1): the leader's anchors, one job at a time on
   * libuv's threadpool. */
  int publish;
  const struct teex_ds_server_config *cfg;
  uv_timer_t anchor_timer;
  int anchor_timer_on;
  int anchor_busy;
  int stop_waiting;     /* a stop waits for the anchor job in flight */
  int stop_anchored;    /* the final anchor was tried */
  uint64_t anchor_done; /* highest index this replica anchored or read */
  uint64_t anchor_last_ms, anchor_retry_at, anchor_failures;
  struct teex_ds_anchor published; /* index 0: none by this replica */
};

/* A membership change the leader is carrying out (one at a time). */
struct member_op {
  struct srv *s;
  struct teex_rpc_call *call;
  struct teex_ds_member_req req;
  uint64_t deadline, started;
  int phase; /* 0: waiting for the new replica to show up; 1: raft change */
};

struct read_op {
  struct read_op *next;
  struct teex_rpc_call *call;
  uint8_t *enc; /* the command, grant set */
  size_t enc_len;
};

/* Peers: RA-TLS evidence the group policy allows, of role ds. */
static int peer_verify(void *arg, struct teex_tls_conn *c, X509 *peer,
                       struct teex_err *err) {
  struct srv *s = arg;
  int rc = teex_ratls_channel_verify(&s->verifier, c, peer, err);
  if (rc != 0)
    return rc;
  const struct teex_tee_identity *id = teex_ratls_channel_peer(c);
  if (id == NULL || strcmp(id->role, "ds") != 0)
    return teex_err_set(err, TEEX_EPOLICY, "peer is not a ds replica");
  return 0;
}

/* An enclave client whose role maps to "*": its attested address, which an
 * SM grant must name (the grant struct first, so the connection's peer
 * info reads as a grant whose namespace is "*"). */
struct granted_peer {
  struct teex_ds_client_grant g;
  uint8_t address[20];
};

/* Clients: an enclave whose RA-TLS evidence passes clients-policy.conf and
 * whose role group.conf maps to a namespace, or a certificate whose key the
 * group config lists. */
static int client_verify(void *arg, struct teex_tls_conn *c, X509 *peer,
                         struct teex_err *err) {
  struct srv *s = arg;
  if (s->have_client_policy) {
    struct teex_tee_identity id;
    struct teex_err e2;
    if (teex_ratls_verify_cert(peer, &s->client_policy, NULL, &id, &e2) == 0) {
      for (size_t i = 0; i < s->group.n_enclaves; i++) {
        if (strcmp(s->group.enclaves[i].label, id.role) != 0)
          continue;
        if (strcmp(s->group.enclaves[i].ns, TEEX_DS_NS_BY_GRANT) != 0) {
          teex_tls_set_peer_info(c, &s->group.enclaves[i], NULL);
          return 0;
        }
        /* Namespaces by SM grant only: remember whom they must name. */
        if (!id.has_binding || !id.binding.has_secp256k1)
          return teex_err_set(err, TEEX_EPOLICY,
                              "enclave role %s: evidence binds no address "
                              "for SM grants",
                              id.role);
        struct granted_peer *gp = calloc(1, sizeof(*gp));
        if (gp == NULL)
          return teex_err_set(err, TEEX_ENOMEM, "out of memory");
        gp->g = s->group.enclaves[i];
        memcpy(gp->address, id.binding.eth_address, 20);
        teex_tls_set_peer_info(c, gp, free);
        return 0;
      }
      return teex_err_set(err, TEEX_EPERM,
                          "enclave role %s has no namespace in the group",
                          id.role);
    }
  }
  uint8_t spki[32];
  if (teex_tls_cert_spki_sha256(peer, spki) != 0)
    return teex_err_set(err, TEEX_ECRYPTO, "client certificate key");
  for (size_t i = 0; i < s->group.n_clients; i++)
    if (memcmp(s->group.clients[i].spki, spki, 32) == 0) {
      teex_tls_set_peer_info(c, &s->group.clients[i], NULL);
      return 0;
    }
  return teex_err_set(err, TEEX_EPERM,
                      "client certificate not listed in the group config");
}

static const char *leader_client_addr(struct srv *s, uint64_t *id_out) {
  uint64_t id = s->cons->ops->leader_id(s->cons);
  *id_out = id;
  const struct teex_ds_member *m = teex_ds_group_member(&s->group, id);
  return m ? m->client : "";
}

static void respond_result(struct teex_rpc_call *call,
                           const struct teex_ds_result *res, int not_leader,
                           uint64_t leader_id, const char *leader) {
  uint8_t *buf = NULL;
  size_t n = 0;
  struct teex_err err;
  int rc = teex_ds_wire_response_encode(res, not_leader, leader_id, leader,
                                        &buf, &n, &err);
  if (rc != 0) {
    teex_rpc_call_respond(call, rc, err.msg, NULL, 0);
    return;
  }
  teex_rpc_call_respond(call, 0, NULL, buf, n);
  teex_wipe(buf, n);
  free(buf);
}

static void respond_not_leader(struct srv *s, struct teex_rpc_call *call) {
  uint64_t id;
  const char *addr = leader_client_addr(s, &id);
  respond_result(call, NULL, 1, id, addr);
}

struct exec_op {
  struct srv *s;
  struct teex_rpc_call *call;
  uint64_t ns, term; /* when it was proposed */
};

/* An entry appended at ns in term committed: extend the lease. */
static void lease_renew(struct srv *s, uint64_t ns, uint64_t term) {
  if (s->lease_ms == 0 || term != s->cons->ops->term(s->cons) ||
      !s->cons->ops->is_leader(s->cons))
    return;
  if (term != s->lease_term || ns > s->lease_ns) {
    s->lease_term = term;
    s->lease_ns = ns;
  }
}

/* Nanoseconds of lease left now (0: not held). Not while a leadership
 * transfer is under way: its target may be elected at once. */
static uint64_t lease_left(struct srv *s) {
  if (s->lease_ms == 0 || s->lease_ns == 0 || s->raft.transfer != NULL ||
      !s->cons->ops->is_leader(s->cons) ||
      s->lease_term != s->cons->ops->term(s->cons))
    return 0;
  uint64_t end = s->lease_ns + s->lease_ms * 1000000u, now = uv_hrtime();
  return now < end ? end - now : 0;
}

static void exec_done(void *arg, int status, struct teex_ds_result *res) {
  struct exec_op *op = arg;
  if (status == 0)
    lease_renew(op->s, op->ns, op->term);
  if (status == 0) {
    respond_result(op->call, res, 0, 0, NULL);
    teex_ds_result_free(res);
    free(res);
  } else if (status == TEEX_ESTATE && !op->s->stopping) {
    TEEX_WARN("ds", "leadership lost with a command in flight", "term=%llu",
              (unsigned long long)op->s->cons->ops->term(op->s->cons));
    /* Leadership lost before the command committed: the outcome is
     * unknown (it may still commit under the next leader). */
    teex_rpc_call_respond(op->call, TEEX_ESTATE,
                          "leadership lost: outcome unknown", NULL, 0);
  } else {
    teex_rpc_call_respond(op->call, status, teex_strerror(status), NULL, 0);
  }
  free(op);
}

static void respond_not_leader(struct srv *s, struct teex_rpc_call *call);
static void start_barrier(struct srv *s);

static void read_op_free(struct read_op *r) {
  teex_wipe(r->enc, r->enc_len);
  free(r->enc);
  free(r);
}

static void barrier_done(void *arg, int status) {
  struct srv *s = arg;
  if (status == 0)
    lease_renew(s, s->barrier_ns, s->barrier_term);
  struct read_op *batch = s->reads_batch;
  s->reads_batch = NULL;
  s->barrier_busy = 0;
  struct teex_ds_cmd_view *v = malloc(sizeof(*v));
  while (batch != NULL) {
    struct read_op *r = batch;
    batch = r->next;
    if (s->stopping) {
      teex_rpc_call_respond(r->call, TEEX_ECANCELED, "shutting down", NULL, 0);
    } else if (status == TEEX_ESTATE) {
      respond_not_leader(s, r->call); /* a read is safe to retry */
    } else if (status != 0 || v == NULL) {
      int code = status ? status : TEEX_ENOMEM;
      teex_rpc_call_respond(r->call, code, teex_strerror(code), NULL, 0);
    } else {
      /* Everything committed before the barrier is applied here, and this
       * replica was leader when it committed: the local state is current. */
      struct teex_ds_result res;
      int rc = teex_ds_cmd_decode(r->enc, r->enc_len, v, NULL);
      if (rc == 0)
        rc = teex_ds_replica_read_local(s->rep, &v->cmd, &res);
      if (rc != 0) {
        teex_rpc_call_respond(r->call, rc, teex_strerror(rc), NULL, 0);
      } else {
        respond_result(r->call, &res, 0, 0, NULL);
        teex_ds_result_free(&res);
      }
    }
    read_op_free(r);
  }
  free(v);
  if (s->reads_next != NULL && !s->stopping)
    start_barrier(s);
}

static void start_barrier(struct srv *s) {
  struct read_op *batch = s->reads_next;
  s->reads_next = NULL;
  s->reads_tail = &s->reads_next;
  s->barrier_ns = uv_hrtime();
  s->barrier_term = s->cons->ops->term(s->cons);
  int rc = s->cons->ops->barrier(s->cons, barrier_done, s);
  if (rc != 0) {
    while (batch != NULL) {
      struct read_op *r = batch;
      batch = r->next;
      if (rc == TEEX_ESTATE)
        respond_not_leader(s, r->call);
      else
        teex_rpc_call_respond(r->call, rc, teex_strerror(rc), NULL, 0);
      read_op_free(r);
    }
    return;
  }
  s->barriers++;
  s->reads_batch = batch;
  s->barrier_busy = 1;
}

/* Queues a linearizable read (GET, SCAN) for the next barrier: one raft
 * barrier confirms every read queued while the previous one was in flight. */
static int queue_read(struct srv *s, struct teex_rpc_call *call,
                      const struct teex_ds_cmd *cmd, struct teex_err *err) {
  struct read_op *r = calloc(1, sizeof(*r));
  if (r == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "out of memory");
  int rc = teex_ds_cmd_encode(cmd, &r->enc, &r->enc_len, err);
  if (rc != 0) {
    free(r);
    return rc;
  }
  r->call = call;
  if (s->reads_tail == NULL)
    s->reads_tail = &s->reads_next;
  *s->reads_tail = r;
  s->reads_tail = &r->next;
  s->batched_reads++;
  if (!s->barrier_busy)
    start_barrier(s);
  return 0;
}

/* Bounded staleness for follower reads: the leader itself, or a follower
 * that heard from a known leader within the election timeout and has
 * applied everything that leader said was committed. Its answer then misses
 * at most what committed since that message: an election timeout plus one
 * network delay. */
static int follower_fresh(struct srv *s) {
  struct raft *r = &s->raft;
  if (s->sio.rolled_back)
    return 0;
  if (raft_state(r) == RAFT_LEADER)
    return 1;
  raft_id lid = 0;
  const char *laddr = NULL;
  raft_leader(r, &lid, &laddr);
  if (raft_state(r) != RAFT_FOLLOWER || lid == 0)
    return 0;
  raft_time now = r->io->time(r->io);
  return now - r->election_timer_start <= r->election_timeout &&
         raft_last_applied(r) >= r->commit_index;
}

/* Read-only commands: confirmed by a barrier and run on the local state
 * (teex_ds_kv_read refuses any it does not know as TEEX_EINVAL). */
static int is_read(uint8_t op) {
  return op == TEEX_DS_GET || op == TEEX_DS_SCAN || op == TEEX_DS_COUNT;
}

/* A certificate client listed in group.conf [clients] (not an enclave). */
static int operator_client(const struct srv *s,
                           const struct teex_ds_client_grant *g) {
  for (size_t i = 0; g != NULL && i < s->group.n_clients; i++)
    if (g == &s->group.clients[i])
      return 1;
  return 0;
}

static void on_exec(struct teex_rpc_call *call, const uint8_t *p, size_t n,
                    void *arg) {
  struct srv *s = arg;
  struct teex_err err;
  teex_err_clear(&err);
  struct teex_ds_wire_request *req = malloc(sizeof(*req));
  if (req == NULL) {
    teex_rpc_call_respond(call, TEEX_ENOMEM, "out of memory", NULL, 0);
    return;
  }
  int rc = teex_ds_wire_request_decode(p, n, req, &err);
  if (rc != 0) {
    teex_rpc_call_respond(call, rc, err.msg, NULL, 0);
    free(req);
    return;
  }
  struct teex_tls_conn *conn = teex_rpc_call_conn(call);
  const struct teex_ds_client_grant *g = conn ? teex_tls_peer_info(conn) : NULL;
  if (g != NULL && strcmp(g->ns, TEEX_DS_NS_BY_GRANT) == 0) {
    /* A namespace only by the SM's grant, naming this caller's attested
     * address and the namespace asked for. */
    const struct granted_peer *gp = (const struct granted_peer *)g;
    rc = req->grant == NULL
             ? teex_err_set(&err, TEEX_EPERM, "no SM grant for namespace")
             : teex_ds_grant_verify(req->grant, req->grant_len,
                                    s->group.sm_address, gp->address, req->ns,
                                    (uint64_t)time(NULL), &err);
    if (rc != 0) {
      TEEX_WARN("ds", "grant refused", "role=%s ns=%s reason=\"%s\"", g->label,
                req->ns, err.msg);
      teex_rpc_call_respond(call, TEEX_EPERM, err.msg, NULL, 0);
      goto out;
    }
    req->view.cmd.grant = req->ns;
  } else if (g == NULL || strcmp(g->ns, req->ns) != 0) {
    TEEX_WARN("ds", "namespace refused", "client=%s ns=%s", g ? g->label : "?",
              req->ns);
    teex_rpc_call_respond(call, TEEX_EPERM,
                          "namespace not granted to this client", NULL, 0);
    goto out;
  } else {
    /* The grant comes from the verified identity, never from the request. */
    req->view.cmd.grant = g->ns;
  }
  if (req->view.cmd.op == TEEX_DS_PLACE && !operator_client(s, g)) {
    /* Freezing or moving a namespace is the operator's (scale-out). */
    TEEX_WARN("ds", "placement change refused", "client=%s ns=%s",
              g ? g->label : "?", req->ns);
    teex_rpc_call_respond(call, TEEX_EPERM,
                          "placement changes are for operator clients "
                          "(group.conf [clients])",
                          NULL, 0);
    goto out;
  }
  if (s->sio.rolled_back) {
    char m[160];
    snprintf(m, sizeof m,
             "replica state rolled back below the group's anchored index "
             "%llu: not serving until the group brings it up",
             (unsigned long long)s->anchor.index);
    teex_rpc_call_respond(call, TEEX_EROLLBACK, m, NULL, 0);
    goto out;
  }
  if (req->read_mode == 1) {
    if (!follower_fresh(s)) {
      teex_rpc_call_respond(call, TEEX_EAGAIN,
                            "replica too stale for a follower read (no "
                            "leader heard from within the election timeout)",
                            NULL, 0);
      goto out;
    }
    if (!is_read(req->view.cmd.op)) {
      teex_rpc_call_respond(call, TEEX_EINVAL,
                            "follower reads are for read-only commands", NULL,
                            0);
      goto out;
    }
    struct teex_ds_result res;
    rc = teex_ds_replica_read_local(s->rep, &req->view.cmd, &res);
    if (rc != 0)
      teex_rpc_call_respond(call, rc, teex_strerror(rc), NULL, 0);
    else
      respond_result(call, &res, 0, 0, NULL);
    teex_ds_result_free(&res);
    goto out;
  }
  if (!s->cons->ops->is_leader(s->cons)) {
    respond_not_leader(s, call);
    goto out;
  }
  if (is_read(req->view.cmd.op)) {
    uint64_t left = lease_left(s);
    if (left > 0 && s->cons->ops->last_applied(s->cons) ==
                        s->cons->ops->last_index(s->cons)) {
      /* Under the lease, with nothing in flight: every write acknowledged
       * before this read arrived is applied here, and no other leader can
       * have been elected. A write still in flight (possibly this client's
       * own, pipelined before the read) sends the read to a barrier, which
       * comes after that write in the log. */
      struct teex_ds_result res;
      rc = teex_ds_replica_read_local(s->rep, &req->view.cmd, &res);
      if (rc != 0)
        teex_rpc_call_respond(call, rc, teex_strerror(rc), NULL, 0);
      else
        respond_result(call, &res, 0, 0, NULL);
      teex_ds_result_free(&res);
      s->lease_reads++;
      /* Renew ahead of expiry with an empty barrier, so steady reads keep
       * the lease without waiting for one. */
      if (left < s->lease_ms * 500000u && !s->barrier_busy)
        start_barrier(s);
      goto out;
    }
    rc = queue_read(s, call, &req->view.cmd, &err);
    if (rc != 0)
      teex_rpc_call_respond(call, rc, err.msg, NULL, 0);
    goto out;
  }
  struct exec_op *op = calloc(1, sizeof(*op));
  if (op == NULL) {
    teex_rpc_call_respond(call, TEEX_ENOMEM, "out of memory", NULL, 0);
    goto out;
  }
  op->s = s;
  op->call = call;
  op->ns = uv_hrtime();
  op->term = s->cons->ops->term(s->cons);
  rc = teex_ds_replica_submit(s->rep, &req->view.cmd, exec_done, op, &err);
  if (rc != 0) {
    free(op);
    if (rc == TEEX_ESTATE)
      respond_not_leader(s, call);
    else
      teex_rpc_call_respond(call, rc, err.msg, NULL, 0);
  }
out:
  teex_ds_wire_request_free(req);
  free(req);
}

static void on_status(struct teex_rpc_call *call, const uint8_t *p, size_t n,
                      void *arg) {
  (void)p;
  (void)n;
  struct srv *s = arg;
  struct teex_ds_status st;
  teex_ds_replica_status(s->rep, &st);
  Teex__Ds__StatusResponse r = TEEX__DS__STATUS_RESPONSE__INIT;
  uint64_t lid;
  r.id = s->self_id;
  r.leader = st.leader;
  r.leader_addr = (char *)leader_client_addr(s, &lid);
  r.leader_id = lid;
  r.term = st.term;
  r.last_index = st.last_index;
  r.last_applied = st.last_applied;
  r.keys = st.keys;
  r.clock_ms = st.clock_ms;
  r.failed = st.failed;
  r.failure = st.failure;
  r.voting = s->sio.fresh;
  r.catch_up_to = s->sio.catch_up_to;
  r.group_id = (ProtobufCBinaryData){16, s->group.id};
  r.read_barriers = s->barriers;
  r.reads = s->batched_reads;
  r.lease_reads = s->lease_reads;
  r.coalesced = s->sio.coalesced;
  r.applied_chain = (ProtobufCBinaryData){32, st.applied_chain};
  char fresh[448];
  if (!s->anchored)
    snprintf(fresh, sizeof fresh, "not anchored (no chain configured)");
  else if (s->sio.rolled_back)
    snprintf(fresh, sizeof fresh,
             "rolled back: state below the anchored index %llu, waiting for "
             "the group to bring it up",
             (unsigned long long)s->anchor.index);
  else if (s->anchor.index == 0)
    snprintf(fresh, sizeof fresh, "not anchored yet");
  else {
    enum teex_ds_watch w = teex_ds_replica_watch_result(s->rep);
    snprintf(fresh, sizeof fresh, "at or past the anchored index %llu (%s)",
             (unsigned long long)s->anchor.index,
             w == TEEX_DS_WATCH_MATCHED  ? "hash chain matches the anchor"
             : w == TEEX_DS_WATCH_FORKED ? "FORKED: hash chain differs"
             : w == TEEX_DS_WATCH_SKIPPED
                 ? "hash chain not comparable: the anchored index is older "
                   "than the chain points of the restored snapshot"
                 : "hash chain not checked yet");
  }
  if (s->published.index > 0) {
    size_t used = strlen(fresh);
    snprintf(fresh + used, sizeof fresh - used,
             "; anchored by this replica at index %llu (%s)",
             (unsigned long long)s->published.index, s->published.cid);
  } else if (s->anchor_failures > 0) {
    size_t used = strlen(fresh);
    snprintf(fresh + used, sizeof fresh - used, "; %llu anchoring failures",
             (unsigned long long)s->anchor_failures);
  }
  r.freshness = fresh;
  r.anchor_index = s->anchor.index;
  size_t len = teex__ds__status_response__get_packed_size(&r);
  uint8_t *buf = malloc(len ? len : 1);
  if (buf == NULL) {
    teex_rpc_call_respond(call, TEEX_ENOMEM, "out of memory", NULL, 0);
    return;
  }
  teex__ds__status_response__pack(&r, buf);
  teex_rpc_call_respond(call, 0, NULL, buf, len);
  free(buf);
}

static void on_health(struct teex_rpc_call *call, const uint8_t *p, size_t n,
                      void *arg) {
  (void)p;
  (void)n;
  struct srv *s = arg;
  Teex__Rpc__HealthResponse r = TEEX__RPC__HEALTH_RESPONSE__INIT;
  r.status = "ok";
  r.role = "ds";
  r.uptime_ms = teex_rpc_now(&s->loop) - s->started_ms;
  r.version = (char *)teex_version();
  size_t len = teex__rpc__health_response__get_packed_size(&r);
  uint8_t buf[512];
  if (len > sizeof(buf)) {
    teex_rpc_call_respond(call, TEEX_EINTERNAL, "health", NULL, 0);
    return;
  }
  teex__rpc__health_response__pack(&r, buf);
  teex_rpc_call_respond(call, 0, NULL, buf, len);
}

static void raft_closed(struct raft *r) {
  struct srv *s = r->data;
  s->raft_closed = 1;
}

/* ---- anchors published by the leader ---- */

struct anchor_job {
  uv_work_t w;
  struct srv *s;
  struct teex_ds_anchor c;
  unsigned tx_timeout_ms; /* 0: TEEX_CHAIN_TX_TIMEOUT_MS */
  int rc;
  struct teex_err err;
};

/* The commitment for the current log head (on the loop: the applied index,
 * its hash chain and the state digest are read at the same instant). */
static int anchor_fill(struct srv *s, struct teex_ds_anchor *c) {
  struct teex_ds_status st;
  teex_ds_replica_status(s->rep, &st);
  if (st.failed || st.last_applied <= s->anchor_done)
    return 0;
  /* Only raft's own entries (barriers, configurations) applied so far: no
   * command, so no state to vouch for and no hash chain yet (the contract
   * refuses a zero one). The first write starts it. */
  static const uint8_t none[32];
  if (memcmp(st.applied_chain, none, 32) == 0)
    return 0;
  memset(c, 0, sizeof(*c));
  teex_ds_anchor_group_id(s->group.id, c->group_id);
  c->index = st.last_applied;
  c->term = st.term;
  c->time_ms = (uint64_t)time(NULL) * 1000;
  memcpy(c->applied_chain, st.applied_chain, 32);
  teex_ds_kv_digest(teex_ds_replica_kv(s->rep), c->state_digest);
  return 1;
}

/* Blocking: the document into IPFS, signed by the enclave key, submitted
 * (gas from the payer). Reads only what does not change while serving. */
static int anchor_publish(const struct srv *s, struct teex_ds_anchor *c,
                          unsigned tx_timeout_ms, struct teex_err *err) {
  const struct teex_ds_server_config *cfg = s->cfg;
  char doc[TEEX_DS_ANCHOR_DOC_MAX];
  int dn = teex_ds_anchor_document(c, doc, sizeof doc);
  if (dn < 0)
    return teex_err_set(err, TEEX_EINTERNAL, "commitment document");
  teex_keccak256(doc, (size_t)dn, c->commitment_hash);
  struct teex_ipfs_backend *ipfs = NULL;
  struct teex_cid cid;
  int rc = cfg->ipfs_api != NULL
               ? teex_ipfs_kubo_open(cfg->ipfs_api, &ipfs, err)
               : teex_ipfs_store_open(cfg->ipfs_dir, &ipfs, err);
  if (rc == 0)
    rc = teex_ipfs_add_buffer(ipfs, doc, (size_t)dn, &cid, err);
  teex_ipfs_close(ipfs);
  if (rc != 0)
    return teex_err_wrap(err, rc, "storing the commitment document in IPFS");
  char cs[TEEX_CID_STR_SIZE];
  teex_cid_to_string(&cid, cs);
  if (snprintf(c->cid, sizeof c->cid, "%s", cs) >= (int)sizeof c->cid)
    return teex_err_set(err, TEEX_EINTERNAL, "CID too long");
  struct teex_eth_rpc_opts o = {.timeout_ms = 10000};
  struct teex_eth_rpc *rpc = NULL;
  struct teex_eth_sender *snd = NULL;
  struct teex_chain_addrs a;
  struct teex_domain d;
  uint8_t digest[32], sig[65];
  memset(&a, 0, sizeof a);
  memcpy(a.ds_anchor, cfg->anchor_contract, 20);
  rc = teex_eth_rpc_open(cfg->anchor_rpc, &o, &rpc, err);
  if (rc == 0) {
    teex_chain_use_errors(rpc);
    rc = teex_eth_sender_new(rpc, cfg->anchor_payer_sk, NULL, &snd, err);
  }
  if (rc == 0) {
    d.chain_id = teex_eth_sender_chain_id(snd);
    memcpy(d.verifying_contract, a.ds_anchor, 20);
    teex_ds_anchor_digest(&d, c, digest);
    if (teex_eip712_sign(s->anchor_sk, digest, sig) != 0)
      rc = teex_err_set(err, TEEX_ECRYPTO, "signing the anchor");
  }
  if (rc == 0)
    rc = teex_chain_ds_anchor_submit(snd, &a, c, sig, tx_timeout_ms, err);
  teex_eth_sender_free(snd);
  teex_eth_rpc_close(rpc);
  return rc == 0 ? 0
                 : teex_err_wrap(err, rc, "anchor at index %llu",
                                 (unsigned long long)c->index);
}

static void anchor_result(struct srv *s, const struct teex_ds_anchor *c, int rc,
                          const struct teex_err *err) {
  uint64_t now = uv_now(&s->loop);
  if (rc == 0) {
    s->anchor_done = c->index;
    s->published = *c;
    s->anchor_last_ms = now;
    char addr[41];
    teex_hex_encode(s->anchor_addr, 20, addr);
    TEEX_INFO("ds", "anchored", "index=%llu term=%llu cid=%s signer=0x%s",
              (unsigned long long)c->index, (unsigned long long)c->term, c->cid,
              addr);
  } else {
    s->anchor_failures++;
    s->anchor_retry_at = now + 1000;
    TEEX_WARN("ds", "anchoring failed (still serving; retrying)", "err=%s",
              err->msg);
  }
}

static void finish_stop(struct srv *s);

static void anchor_work(uv_work_t *w) {
  struct anchor_job *j = w->data;
  j->rc = anchor_publish(j->s, &j->c, j->tx_timeout_ms, &j->err);
}

static void anchor_after(uv_work_t *w, int status) {
  struct anchor_job *j = w->data;
  j->s->anchor_busy = 0;
  if (status != 0 && j->rc == 0)
    j->rc = teex_err_set(&j->err, TEEX_ECANCELED, "anchor job cancelled");
  anchor_result(j->s, &j->c, j->rc, &j->err);
  struct srv *s = j->s;
  free(j);
  if (s->stop_waiting) {
    s->stop_waiting = 0;
    finish_stop(s);
  }
}

static int anchor_may(struct srv *s) {
  return s->publish && !s->anchor_busy && s->raft_inited &&
         s->cons->ops->is_leader(s->cons) && !s->sio.rolled_back;
}

/* Queues a job for the current head; 1 when one was queued. */
static int anchor_queue(struct srv *s) {
  if (!anchor_may(s))
    return 0;
  struct anchor_job *j = calloc(1, sizeof(*j));
  if (j == NULL)
    return 0;
  j->s = s;
  j->w.data = j;
  /* A stopping replica waits for the final receipt only so long. */
  j->tx_timeout_ms = s->stopping ? 10000 : 0;
  if (!anchor_fill(s, &j->c) ||
      uv_queue_work(&s->loop, &j->w, anchor_work, anchor_after) != 0) {
    free(j);
    return 0;
  }
  s->anchor_busy = 1;
  return 1;
}

static void anchor_tick(uv_timer_t *t) {
  struct srv *s = t->data;
  if (s->stopping || !anchor_may(s))
    return;
  uint64_t now = uv_now(&s->loop);
  if (now < s->anchor_retry_at)
    return;
  struct teex_ds_status st;
  teex_ds_replica_status(s->rep, &st);
  if (st.last_applied <= s->anchor_done)
    return;
  if (st.last_applied - s->anchor_done < s->cfg->anchor_every &&
      now - s->anchor_last_ms < s->cfg->anchor_interval_ms)
    return;
  anchor_queue(s);
}

/* The rest of a clean stop, once no anchor job is in flight: the leader
 * anchors its final state (no request arrives any more) off the loop, so
 * that it keeps leading meanwhile; then raft closes. */
static void finish_stop(struct srv *s) {
  if (!s->stop_anchored) {
    s->stop_anchored = 1;
    if (anchor_queue(s)) {
      s->stop_waiting = 1; /* anchor_after comes back here */
      return;
    }
  }
  uv_signal_stop(&s->sigterm);
  uv_signal_stop(&s->sigint);
  uv_close((uv_handle_t *)&s->sigterm, NULL);
  uv_close((uv_handle_t *)&s->sigint, NULL);
  if (s->raft_inited)
    raft_close(&s->raft, raft_closed);
}

static void stop_replica(struct srv *s, const char *why) {
  if (s->stopping)
    return;
  s->stopping = 1;
  TEEX_INFO("ds", "stopping", "reason=\"%s\"", why);
  if (s->member_timer_on) {
    uv_timer_stop(&s->member_timer);
    uv_close((uv_handle_t *)&s->member_timer, NULL);
    s->member_timer_on = 0;
  }
  if (s->mop != NULL) {
    /* Its change may still complete in raft: answer now, never later. */
    struct member_op *op = s->mop;
    s->mop = NULL;
    if (op->phase == 0) {
      teex_rpc_call_respond(op->call, TEEX_ECANCELED, "replica stopping", NULL,
                            0);
      free(op);
    } /* else raft calls member_change_done at its close, which frees it */
  }
  if (s->rpc) {
    teex_rpc_server_close(s->rpc);
    s->rpc = NULL;
  }
  if (s->anchor_timer_on) {
    uv_timer_stop(&s->anchor_timer);
    uv_close((uv_handle_t *)&s->anchor_timer, NULL);
    s->anchor_timer_on = 0;
  }
  if (s->anchor_busy)
    s->stop_waiting = 1; /* anchor_after finishes the stop */
  else
    finish_stop(s);
}

static void on_signal(uv_signal_t *h, int signum) {
  (void)signum;
  stop_replica(h->data, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

static int write_ready(const char *path, struct srv *s, struct teex_err *err) {
  char text[512];
  int n =
      snprintf(text, sizeof(text), "id = %llu\npeer = %s\nclient_port = %d\n",
               (unsigned long long)s->self_id, s->self->peer,
               teex_rpc_server_port(s->rpc));
  return teex_ds_write_atomic(path, text, (size_t)n, err);
}

static int load_state(struct srv *s, struct teex_err *err) {
  char path[4096];
  path_of(path, sizeof(path), s->state_dir, TEEX_DS_GROUP_FILE);
  int rc = teex_ds_group_load(&s->group, path, err);
  if (rc != 0)
    return rc;
  path_of(path, sizeof(path), s->state_dir, TEEX_DS_POLICY_FILE);
  teex_tee_policy_init(&s->policy);
  if ((rc = teex_tee_policy_load(&s->policy, path, err)) != 0)
    return teex_err_wrap(err, 0, "policy");
  if (s->policy.n_roles != 1 || strcmp(s->policy.roles[0], "ds") != 0)
    return teex_err_set(err, TEEX_ECONFIG, "%s: roles must be exactly 'ds'",
                        path);
  path_of(path, sizeof(path), s->state_dir, TEEX_DS_CLIENT_POLICY_FILE);
  teex_tee_policy_init(&s->client_policy);
  if (access(path, F_OK) == 0) {
    if ((rc = teex_tee_policy_load(&s->client_policy, path, err)) != 0)
      return teex_err_wrap(err, 0, "client policy");
    s->have_client_policy = 1;
  }
  struct teex_config c;
  teex_config_init(&c);
  path_of(path, sizeof(path), s->state_dir, TEEX_DS_SELF_FILE);
  rc = teex_config_load(&c, path, err);
  if (rc == 0)
    rc = teex_config_get_u64(&c, "id", 0, &s->self_id, err);
  if (rc == 0)
    s->join = strcmp(teex_config_get(&c, "join", "false"), "true") == 0;
  teex_config_free(&c);
  if (rc != 0)
    return teex_err_wrap(err, 0, "%s (run teex ds init first)", path);
  const struct teex_ds_member *me = teex_ds_group_member(&s->group, s->self_id);
  if (me == NULL)
    return teex_err_set(err, TEEX_ECONFIG,
                        "id %llu is not a group member (removed from the "
                        "group?)",
                        (unsigned long long)s->self_id);
  s->self_m = *me;
  s->self = &s->self_m;
  return 0;
}

/* The group key from the SM (sm.conf, sm-policy.conf), retried until
 * timeout_ms: the SM releases it to replicas whose fresh evidence passes
 * its policy, making it the first time. */
static int key_from_sm(struct srv *s, uint32_t timeout_ms,
                       struct teex_err *err) {
  char path[4096];
  struct teex_config c;
  teex_config_init(&c);
  path_of(path, sizeof(path), s->state_dir, TEEX_DS_SM_FILE);
  int rc = teex_config_load(&c, path, err);
  char addr[256] = "";
  if (rc == 0)
    snprintf(addr, sizeof(addr), "%s", teex_config_get(&c, "address", ""));
  teex_config_free(&c);
  if (rc != 0 || addr[0] == '\0')
    return rc != 0 ? rc
                   : teex_err_set(err, TEEX_ECONFIG, "%s: no address", path);
  struct teex_tee_policy sp;
  teex_tee_policy_init(&sp);
  path_of(path, sizeof(path), s->state_dir, TEEX_DS_SM_POLICY_FILE);
  if ((rc = teex_tee_policy_load(&sp, path, err)) != 0)
    return teex_err_wrap(err, 0, "SM policy");
  TEEX_INFO("ds", "asking the SM for the group key", "sm=%s", addr);
  uv_loop_t *loop = &s->loop;
  uv_update_time(loop);
  uint64_t deadline = uv_now(loop) + timeout_ms;
  for (;;) {
    rc = teex_sm_client_ds_group_key(s->tee, s->cert, s->pkey, addr, &sp,
                                     s->group.id, s->keys, err);
    uv_update_time(loop);
    if (rc == 0 || rc == TEEX_EPOLICY || rc == TEEX_EATTEST ||
        uv_now(loop) >= deadline)
      break;
    uv_sleep(200);
  }
  if (rc != 0)
    return teex_err_wrap(err, 0, "group key from the SM");
  s->keys_len = 32; /* epoch 0 */
  rc = key_save(s->tee, s->state_dir, s->group.id, s->keys, s->keys_len, err);
  if (rc == 0)
    TEEX_INFO("ds", "group key received from the SM and sealed", "id=%llu",
              (unsigned long long)s->self_id);
  return rc;
}

static int get_key(struct srv *s, uint32_t timeout_ms, struct teex_err *err) {
  s->keys = teex_secret_alloc(TEEX_DS_KEYS_ENC_MAX);
  if (s->keys == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "out of memory");
  int rc =
      key_load(s->tee, s->state_dir, s->group.id, s->keys, &s->keys_len, err);
  if (rc != TEEX_ENOTFOUND)
    return rc;
  teex_err_clear(err);
  char smconf[4096];
  path_of(smconf, sizeof(smconf), s->state_dir, TEEX_DS_SM_FILE);
  if (access(smconf, F_OK) == 0)
    return key_from_sm(s, timeout_ms, err);
  const char *addrs[TEEX_DS_GROUP_MAX_MEMBERS];
  size_t n = 0;
  for (size_t i = 0; i < s->group.n_members; i++)
    if (s->group.members[i].id != s->self_id)
      addrs[n++] = s->group.members[i].peer;
  TEEX_INFO("ds", "asking the group for its key", "replicas=%zu", n);
  uint8_t gid[16];
  rc = teex_ds_fetch_group_key(s->peer_cli, addrs, n, s->self_id, s->self->peer,
                               timeout_ms, gid, s->keys, &s->keys_len, err);
  if (rc == 0 && memcmp(gid, s->group.id, 16) != 0)
    rc = teex_err_set(err, TEEX_EAUTH, "a replica answered for another group");
  if (rc == 0)
    rc = key_save(s->tee, s->state_dir, s->group.id, s->keys, s->keys_len, err);
  if (rc == 0)
    TEEX_INFO("ds", "group key received and sealed", "id=%llu",
              (unsigned long long)s->self_id);
  return rc == 0 ? 0 : teex_err_wrap(err, 0, "group key");
}

/* Reads the group's latest anchor from the chain (blocking, before raft
 * starts). A replica told to check freshness that cannot read the chain
 * does not start: serving unchecked is what the anchor exists to prevent. */
static int read_anchor(struct srv *s, const struct teex_ds_server_config *cfg,
                       struct teex_err *err) {
  struct teex_eth_rpc_opts o = {.timeout_ms = 10000};
  struct teex_eth_rpc *rpc = NULL;
  struct teex_chain_addrs a;
  uint8_t gid[32];
  memset(&a, 0, sizeof a);
  memcpy(a.ds_anchor, cfg->anchor_contract, 20);
  teex_ds_anchor_group_id(s->group.id, gid);
  int rc = teex_eth_rpc_open(cfg->anchor_rpc, &o, &rpc, err);
  if (rc == 0) {
    teex_chain_use_errors(rpc);
    rc = teex_chain_ds_anchor_latest(rpc, &a, gid, &s->anchor, err);
  }
  teex_eth_rpc_close(rpc);
  if (rc != 0)
    return teex_err_wrap(err, rc,
                         "cannot read the freshness anchor from the chain "
                         "(refusing to start unchecked)");
  s->anchored = 1;
  TEEX_INFO("ds", "freshness anchor read", "index=%llu term=%llu",
            (unsigned long long)s->anchor.index,
            (unsigned long long)s->anchor.term);
  return 0;
}

/* Why raft_start failed. libraft does not copy the transport's listen
 * error (e.g. the peer port already in use) into any message, and its own
 * message may still hold an earlier, harmless note; the transport's message
 * is only ever set by a failure (and no peer is dialled before the start),
 * so it comes first, then the sealed I/O's, then libraft's. */
static const char *raft_start_errmsg(struct srv *s, int rv) {
  if (s->transport.errmsg[0] != '\0')
    return s->transport.errmsg;
  if (s->sio.io.errmsg[0] != '\0')
    return s->sio.io.errmsg;
  const char *m = raft_errmsg(&s->raft);
  if (m != NULL && m[0] != '\0')
    return m;
  return raft_strerror(rv);
}

static void on_flush_prepare(uv_prepare_t *h) {
  struct srv *s = h->data;
  teex_ds_sealed_io_flush(&s->sio);
}

static void on_flush_check(uv_check_t *h) {
  struct srv *s = h->data;
  teex_ds_sealed_io_flush(&s->sio);
}

/* ---- membership (docs/internals/ds.md, "Membership") ---- */

/* The transport's member check: the live raft configuration (any role, so
 * a replica added as a spare can fetch the key and be caught up), or
 * group.conf before raft has one (a joining replica). */
static int transport_member(void *arg, uint64_t id) {
  struct srv *s = arg;
  if (s->raft_inited && s->raft.configuration.n > 0) {
    for (unsigned i = 0; i < s->raft.configuration.n; i++)
      if (s->raft.configuration.servers[i].id == id)
        return 1;
    return 0;
  }
  return teex_ds_group_member(&s->group, id) != NULL;
}

/* The current raft configuration as members (the client address from the
 * configuration's "PEER CLIENT", or group.conf for a group bootstrapped
 * before configurations carried it). */
static void conf_list(struct srv *s, struct teex_ds_member_list *l) {
  memset(l, 0, sizeof(*l));
  const struct raft_configuration *c = &s->raft.configuration;
  for (unsigned i = 0; i < c->n && l->n < TEEX_DS_GROUP_MAX_MEMBERS; i++) {
    struct teex_ds_member *m = &l->m[l->n];
    m->id = c->servers[i].id;
    teex_ds_addr_peer(c->servers[i].address, m->peer, sizeof(m->peer));
    const char *sp = strchr(c->servers[i].address, ' ');
    const struct teex_ds_member *old = teex_ds_group_member(&s->group, m->id);
    snprintf(m->client, sizeof(m->client), "%s",
             sp    ? sp + 1
             : old ? old->client
                   : "");
    l->role[l->n] = c->servers[i].role == RAFT_VOTER     ? TEEX_DS_ROLE_VOTER
                    : c->servers[i].role == RAFT_STANDBY ? TEEX_DS_ROLE_STANDBY
                                                         : TEEX_DS_ROLE_SPARE;
    l->n++;
  }
}

static void stop_replica(struct srv *s, const char *why);

/* Keeps group.conf [members] equal to the committed configuration, so a
 * client or replica started later finds the members; stops this replica
 * once a committed configuration no longer lists it. */
static void member_sync(struct srv *s) {
  if (!s->raft_inited || s->raft.configuration_index == 0 ||
      s->raft.configuration_uncommitted_index != 0 ||
      s->raft.configuration_index == s->synced_conf)
    return;
  struct teex_ds_member_list l;
  conf_list(s, &l);
  s->synced_conf = s->raft.configuration_index;
  int self_in = 0, same = l.n == s->group.n_members;
  for (size_t i = 0; i < l.n; i++) {
    self_in |= l.m[i].id == s->self_id;
    const struct teex_ds_member *g = teex_ds_group_member(&s->group, l.m[i].id);
    same = same && g != NULL && strcmp(g->peer, l.m[i].peer) == 0 &&
           strcmp(g->client, l.m[i].client) == 0;
  }
  if (!same && l.n > 0) {
    memcpy(s->group.members, l.m, l.n * sizeof(l.m[0]));
    s->group.n_members = l.n;
    char path[4096];
    struct teex_err err;
    path_of(path, sizeof(path), s->state_dir, TEEX_DS_GROUP_FILE);
    if (teex_ds_group_save(&s->group, path, &err) != 0)
      TEEX_WARN("ds", "cannot update group.conf", "reason=\"%s\"", err.msg);
    else
      TEEX_INFO("ds", "membership changed", "members=%zu conf_index=%llu", l.n,
                (unsigned long long)s->synced_conf);
  }
  if (self_in)
    s->was_member = 1;
  else if (s->was_member)
    stop_replica(s, "removed from the group");
}

static void member_respond_list(struct srv *s, struct teex_rpc_call *call,
                                int not_leader) {
  struct teex_ds_member_list l;
  conf_list(s, &l);
  l.not_leader = not_leader;
  if (not_leader) {
    const char *a = leader_client_addr(s, &l.leader_id);
    snprintf(l.leader_addr, sizeof(l.leader_addr), "%s", a);
  }
  uint8_t *buf = NULL;
  size_t n = 0;
  struct teex_err err;
  if (teex_ds_member_resp_encode(&l, &buf, &n, &err) != 0)
    teex_rpc_call_respond(call, TEEX_ENOMEM, err.msg, NULL, 0);
  else
    teex_rpc_call_respond(call, 0, NULL, buf, n);
  free(buf);
}

static void member_finish(struct member_op *op, int rc, const char *msg) {
  struct srv *s = op->s;
  if (rc == 0)
    member_respond_list(s, op->call, 0);
  else
    teex_rpc_call_respond(op->call, rc, msg, NULL, 0);
  if (s->mop == op)
    s->mop = NULL;
  free(op);
}

static void member_change_done(void *arg, int status) {
  struct member_op *op = arg;
  char m[512];
  const struct teex_ds_member_req *r = &op->req;
  if (status == 0) {
    TEEX_INFO("ds",
              r->op == TEEX_DS_MEMBER_ADD ? "replica added" : "replica removed",
              "id=%llu", (unsigned long long)r->id);
    /* Write group.conf now rather than at the next tick. */
    member_sync(op->s);
    member_finish(op, 0, NULL);
    return;
  }
  if (r->op == TEEX_DS_MEMBER_ADD)
    snprintf(m, sizeof m,
             "replica %llu was added as a spare but not made a voter: %s "
             "(it did not catch up, or leadership changed; remove it with "
             "teex ds remove-replica %llu and try again)",
             (unsigned long long)r->id, teex_strerror(status),
             (unsigned long long)r->id);
  else
    snprintf(m, sizeof m, "removing replica %llu: %s",
             (unsigned long long)r->id, teex_strerror(status));
  member_finish(op, status, m);
}

/* Phase 0 of an add, every tick: has the new replica shown up, attested
 * (it asks the members for the group key with evidence the policy
 * accepted)? Only then is it added, so a replica whose evidence fails is
 * refused with the reason instead of sitting in the configuration. */
static void member_add_poll(struct srv *s, struct member_op *op) {
  char addr[TEEX_DS_ADDR_MAX + 1], m[768];
  uint64_t seen = 0, now = uv_now(&s->loop);
  if (!s->cons->ops->is_leader(s->cons)) {
    member_finish(op, TEEX_ESTATE,
                  "leadership lost before the replica was added: retry");
    return;
  }
  if (teex_ds_transport_joiner(&s->transport, op->req.id, addr, sizeof addr,
                               &seen) &&
      seen + 5000 >= op->started) {
    if (strcmp(addr, op->req.peer) != 0) {
      snprintf(m, sizeof m,
               "replica %llu announces raft address %s, not %s: not added",
               (unsigned long long)op->req.id, addr, op->req.peer);
      member_finish(op, TEEX_EINVAL, m);
      return;
    }
    char conf_addr[2 * TEEX_DS_ADDR_MAX + 2];
    snprintf(conf_addr, sizeof conf_addr, "%s %s", op->req.peer,
             op->req.client);
    op->phase = 1;
    TEEX_INFO("ds", "adding replica", "id=%llu peer=%s client=%s",
              (unsigned long long)op->req.id, op->req.peer, op->req.client);
    int rc = s->cons->ops->add_voter(s->cons, op->req.id, conf_addr,
                                     member_change_done, op);
    if (rc != 0) {
      snprintf(m, sizeof m, "adding replica %llu: %s",
               (unsigned long long)op->req.id, teex_strerror(rc));
      member_finish(op, rc, m);
    }
    return;
  }
  if (now < op->deadline)
    return;
  char refusal[320] = "";
  int refused =
      teex_ds_transport_last_refusal(&s->transport, refusal, sizeof refusal);
  snprintf(m, sizeof m,
           "replica %llu did not show up with evidence the group's policy "
           "accepts (is `teex ds run` running for it, initialised with "
           "--join?)%s%s; nothing was changed",
           (unsigned long long)op->req.id,
           refused ? "; last refused replica connection: " : "",
           refused ? refusal : "");
  member_finish(op, TEEX_EPOLICY, m);
}

static void member_tick(uv_timer_t *t) {
  struct srv *s = t->data;
  member_sync(s);
  if (s->mop != NULL && s->mop->phase == 0)
    member_add_poll(s, s->mop);
}

static void member_transfer_done(void *arg, int status) {
  struct member_op *op = arg;
  struct srv *s = op->s;
  (void)status;
  /* The leader to remove stepped down: the caller retries on the new one. */
  member_respond_list(s, op->call, 1);
  if (s->mop == op)
    s->mop = NULL;
  free(op);
}

/* ---- group key rotation (docs/internals/ds.md, "Group key rotation") ---- */

/* The replica's keys into s->keys, sealed into group.key. */
static int keys_sync(struct srv *s, struct teex_err *err) {
  s->keys_len = teex_ds_replica_keys_encode(s->rep, s->keys);
  return key_save(s->tee, s->state_dir, s->group.id, s->keys, s->keys_len, err);
}

/* An entry or snapshot sealed under an epoch this replica lacks: ask each
 * other member in turn (over mutual RA-TLS; a member answers only ids in
 * its raft configuration) until one hands over a set that holds it. Blocks
 * this replica's loop meanwhile (at most ~2 s a member); failing, the
 * replica halts at this entry and retries at its next start. */
static int need_key(void *arg, struct teex_ds_replica *r, uint32_t epoch) {
  struct srv *s = arg;
  struct teex_err err;
  teex_err_clear(&err);
  uint8_t *buf = teex_secret_alloc(TEEX_DS_KEYS_ENC_MAX);
  if (buf == NULL)
    return TEEX_ENOMEM;
  int rc = TEEX_ENOTFOUND;
  for (size_t i = 0; i < s->group.n_members && rc != 0; i++) {
    if (s->group.members[i].id == s->self_id)
      continue;
    const char *addr = s->group.members[i].peer;
    uint8_t gid[16];
    size_t len = 0;
    int frc =
        teex_ds_fetch_group_key(s->peer_cli, &addr, 1, s->self_id,
                                s->self->peer, 2000, gid, buf, &len, &err);
    if (frc == 0 && memcmp(gid, s->group.id, 16) != 0)
      frc = teex_err_set(&err, TEEX_EAUTH,
                         "a replica answered for another "
                         "group");
    if (frc == 0)
      frc = teex_ds_replica_add_keys(r, buf, len, &err);
    if (frc == 0 && teex_ds_replica_key_epoch(r) >= epoch &&
        (frc = keys_sync(s, &err)) == 0)
      rc = 0;
    if (frc != 0)
      TEEX_WARN("ds", "group key epoch not received", "epoch=%u from=%s err=%s",
                epoch, addr, err.msg);
  }
  teex_secret_free(buf);
  if (rc == 0)
    TEEX_INFO("ds", "group key epoch received and sealed", "epoch=%u", epoch);
  return rc;
}

struct rotate_op {
  struct srv *s;
  struct teex_rpc_call *call;
  uint32_t epoch;
};

static void rotate_marker_done(void *arg, int status,
                               struct teex_ds_result *res) {
  struct rotate_op *op = arg;
  if (res != NULL) {
    teex_ds_result_free(res);
    free(res);
  }
  if (status != 0) {
    char m[200];
    snprintf(m, sizeof m,
             "group key epoch %u is in use on the leader, but its first "
             "entry did not commit (%s); it is current all the same",
             op->epoch, teex_strerror(status));
    teex_rpc_call_respond(op->call, status, m, NULL, 0);
  } else {
    TEEX_INFO("ds", "group key rotated", "epoch=%u", op->epoch);
    member_respond_list(op->s, op->call, 0);
  }
  free(op);
}

/* On the leader: a fresh key as epoch current+1, sealed into group.key
 * first (it must outlive a crash once an entry uses it), then current;
 * answered once an entry sealed under it (a harmless GET) has committed.
 * Followers fetch the key when they apply that entry. */
static void rotate_key(struct srv *s, struct teex_rpc_call *call) {
  struct teex_err err;
  teex_err_clear(&err);
  struct teex_ds_keyset *ks = teex_secret_alloc(sizeof(*ks));
  uint8_t *enc = teex_secret_alloc(TEEX_DS_KEYS_ENC_MAX);
  struct rotate_op *op = calloc(1, sizeof(*op));
  int rc = ks && enc && op ? 0 : TEEX_ENOMEM;
  if (rc == 0)
    rc = teex_ds_keyset_decode(s->keys, s->keys_len, ks, &err);
  uint32_t epoch = rc == 0 ? teex_ds_keyset_current(ks) + 1 : 0;
  if (rc == 0 && epoch == 0)
    rc = teex_err_set(&err, TEEX_ETOOBIG, "no key epoch left");
  if (rc == 0) {
    uint8_t k[32];
    teex_random(k, sizeof k);
    rc = teex_ds_keyset_add(ks, epoch, k, &err);
    teex_wipe(k, sizeof k);
  }
  size_t len = 0;
  if (rc == 0) {
    len = teex_ds_keyset_encode(ks, enc);
    rc = key_save(s->tee, s->state_dir, s->group.id, enc, len, &err);
  }
  if (rc == 0)
    rc = teex_ds_replica_add_keys(s->rep, enc, len, &err);
  if (rc == 0) {
    memcpy(s->keys, enc, len);
    s->keys_len = len;
  }
  teex_secret_free(ks);
  teex_secret_free(enc);
  if (rc != 0) {
    free(op);
    teex_rpc_call_respond(call, rc, err.msg[0] ? err.msg : teex_strerror(rc),
                          NULL, 0);
    return;
  }
  op->s = s;
  op->call = call;
  op->epoch = epoch;
  static const char marker[] = "keyrot";
  struct teex_ds_cmd c = {.op = TEEX_DS_GET, .grant = "teex.ds"};
  c.key = (const uint8_t *)marker;
  c.key_len = sizeof marker - 1;
  rc = teex_ds_replica_submit(s->rep, &c, rotate_marker_done, op, &err);
  if (rc != 0) {
    free(op);
    teex_rpc_call_respond(call, rc, err.msg, NULL, 0);
  }
}

static void on_member(struct teex_rpc_call *call, const uint8_t *p, size_t n,
                      void *arg) {
  struct srv *s = arg;
  struct teex_err err;
  char m[512];
  teex_err_clear(&err);
  /* Operators only: certificate clients group.conf names in operators. */
  struct teex_tls_conn *conn = teex_rpc_call_conn(call);
  const struct teex_ds_client_grant *g = conn ? teex_tls_peer_info(conn) : NULL;
  int is_cert = g != NULL && g >= s->group.clients &&
                g < s->group.clients + s->group.n_clients;
  if (!is_cert || !teex_ds_group_is_operator(&s->group, g->label)) {
    TEEX_WARN("ds", "membership change refused", "client=%s",
              g ? g->label : "?");
    teex_rpc_call_respond(call, TEEX_EPERM,
                          "membership changes are for the group's operators "
                          "(group.conf operators)",
                          NULL, 0);
    return;
  }
  struct teex_ds_member_req req;
  int rc = teex_ds_member_req_decode(p, n, &req, &err);
  if (rc != 0) {
    teex_rpc_call_respond(call, rc, err.msg, NULL, 0);
    return;
  }
  if (req.op == TEEX_DS_MEMBER_LIST) {
    member_respond_list(s, call, 0);
    return;
  }
  if (!s->cons->ops->is_leader(s->cons)) {
    member_respond_list(s, call, 1);
    return;
  }
  if (req.op == TEEX_DS_MEMBER_ROTATE) {
    rotate_key(s, call);
    return;
  }
  if (s->mop != NULL) {
    teex_rpc_call_respond(call, TEEX_EAGAIN,
                          "another membership change is in progress", NULL, 0);
    return;
  }
  struct teex_ds_member_list cur;
  conf_list(s, &cur);
  int found = 0;
  size_t voters = 0;
  for (size_t i = 0; i < cur.n; i++) {
    found |= cur.m[i].id == req.id;
    voters += cur.role[i] == TEEX_DS_ROLE_VOTER;
    if (req.op == TEEX_DS_MEMBER_ADD && cur.m[i].id != req.id &&
        (strcmp(cur.m[i].peer, req.peer) == 0 ||
         strcmp(cur.m[i].client, req.client) == 0)) {
      snprintf(m, sizeof m, "replica %llu already uses that address",
               (unsigned long long)cur.m[i].id);
      teex_rpc_call_respond(call, TEEX_EEXIST, m, NULL, 0);
      return;
    }
  }
  if (req.op == TEEX_DS_MEMBER_ADD && found) {
    snprintf(m, sizeof m, "replica %llu is already a member",
             (unsigned long long)req.id);
    teex_rpc_call_respond(call, TEEX_EEXIST, m, NULL, 0);
    return;
  }
  if (req.op == TEEX_DS_MEMBER_ADD && cur.n >= TEEX_DS_GROUP_MAX_MEMBERS) {
    snprintf(m, sizeof m, "a group has at most %d replicas",
             TEEX_DS_GROUP_MAX_MEMBERS);
    teex_rpc_call_respond(call, TEEX_ETOOBIG, m, NULL, 0);
    return;
  }
  if (req.op == TEEX_DS_MEMBER_REMOVE && !found) {
    snprintf(m, sizeof m, "replica %llu is not a member",
             (unsigned long long)req.id);
    teex_rpc_call_respond(call, TEEX_ENOTFOUND, m, NULL, 0);
    return;
  }
  if (req.op == TEEX_DS_MEMBER_REMOVE && voters <= 1 && req.id == s->self_id) {
    teex_rpc_call_respond(call, TEEX_EINVAL, "cannot remove the last voter",
                          NULL, 0);
    return;
  }
  struct member_op *op = calloc(1, sizeof(*op));
  if (op == NULL) {
    teex_rpc_call_respond(call, TEEX_ENOMEM, "out of memory", NULL, 0);
    return;
  }
  op->s = s;
  op->call = call;
  op->req = req;
  op->started = uv_now(&s->loop);
  op->deadline = op->started +
                 (req.wait_ms ? req.wait_ms : TEEX_DS_MEMBER_DEFAULT_WAIT_MS);
  s->mop = op;
  if (req.op == TEEX_DS_MEMBER_ADD) {
    member_add_poll(s, op); /* phase 0, then every tick */
    return;
  }
  op->phase = 1;
  if (req.id == s->self_id) {
    /* Removing the leader: hand leadership over first; the operator's
     * client follows the not_leader answer and asks the new leader. */
    TEEX_INFO("ds", "handing leadership over before removal", "id=%llu",
              (unsigned long long)req.id);
    rc = s->cons->ops->transfer(s->cons, 0, member_transfer_done, op);
  } else {
    TEEX_INFO("ds", "removing replica", "id=%llu", (unsigned long long)req.id);
    rc = s->cons->ops->remove(s->cons, req.id, member_change_done, op);
  }
  if (rc != 0) {
    snprintf(m, sizeof m, "removing replica %llu: %s",
             (unsigned long long)req.id, teex_strerror(rc));
    member_finish(op, rc, m);
  }
}

static int start_raft(struct srv *s, uint32_t election_ms,
                      struct teex_err *err) {
  char dir[4096], rec[4096];
  path_of(dir, sizeof(dir), s->state_dir, TEEX_DS_RAFT_DIR);
  path_of(rec, sizeof(rec), s->state_dir, TEEX_DS_RECORD_FILE);
  if (mkdir(dir, 0700) != 0 && errno != EEXIST)
    return teex_err_set(err, TEEX_EIO, "mkdir %s", dir);
  struct teex_ds_replica_config rc_cfg = {.group_keys = s->keys,
                                          .group_keys_len = s->keys_len,
                                          .need_key = need_key,
                                          .need_key_arg = s};
  memcpy(rc_cfg.group_id, s->group.id, 16);
  int rc = teex_ds_replica_new(&rc_cfg, &s->rep, err);
  if (rc != 0)
    return rc;
  if (s->anchored && s->anchor.index > 0)
    teex_ds_replica_watch(s->rep, s->anchor.index, s->anchor.applied_chain);
  if (teex_ds_raft_new(&teex_ds_replica_hooks, s->rep, &s->cons) != 0)
    return teex_err_set(err, TEEX_ENOMEM, "consensus");
  uint64_t members[TEEX_DS_GROUP_MAX_MEMBERS];
  for (size_t i = 0; i < s->group.n_members; i++)
    members[i] = s->group.members[i].id;
  struct teex_ds_transport_config tc = {.loop = &s->loop,
                                        .server_ctx = s->peer_srv,
                                        .client_ctx = s->peer_cli,
                                        .bind_addr = s->self->peer,
                                        .members = members,
                                        .n_members = s->group.n_members,
                                        .is_member = transport_member,
                                        .member_arg = s,
                                        .group_id = s->group.id,
                                        .group_keys = s->keys,
                                        .group_keys_len = &s->keys_len};
  if ((rc = teex_ds_transport_init(&s->transport, &tc, err)) != 0)
    return rc;
  s->transport_inited = 1;
  int rv = raft_uv_init(&s->uv_io, &s->loop, dir, &s->transport);
  if (rv != 0)
    return teex_err_set(err, TEEX_EIO, "raft storage %s: %s", dir,
                        s->uv_io.errmsg);
  s->uv_inited = 1;
  teex_ds_sealed_io_init(&s->sio, &s->uv_io, s->tee, rec, s->group.id);
  s->sio.anchor_floor = s->anchor.index;
  s->sio.coalesce = 1;
  if (s->lease_ms > 0)
    s->sio.vote_guard_ms = election_ms;
  uv_prepare_init(&s->loop, &s->flush_prepare);
  uv_check_init(&s->loop, &s->flush_check);
  s->flush_prepare.data = s->flush_check.data = s;
  uv_prepare_start(&s->flush_prepare, on_flush_prepare);
  uv_check_start(&s->flush_check, on_flush_check);
  uv_unref((uv_handle_t *)&s->flush_prepare);
  uv_unref((uv_handle_t *)&s->flush_check);
  s->flush_inited = 1;
  rv = raft_init(&s->raft, &s->sio.io, teex_ds_raft_fsm(s->cons), s->self_id,
                 s->self->peer);
  if (rv != 0)
    return teex_err_set(err, TEEX_EIO, "raft init: %s", raft_errmsg(&s->raft));
  s->raft_inited = 1;
  s->raft.data = s;
  raft_set_election_timeout(&s->raft, election_ms);
  raft_set_heartbeat_timeout(&s->raft, election_ms / 5 ? election_ms / 5 : 1);
  raft_set_pre_vote(&s->raft, true);
  unsigned snap =
      s->cfg->snapshot_threshold ? s->cfg->snapshot_threshold : 1024;
  raft_set_snapshot_threshold(&s->raft, snap);
  raft_set_snapshot_trailing(&s->raft, snap / 4 > 2 ? snap / 4 : 2);
  /* A replica that joins a running group never bootstraps: its first
   * configuration comes from the leader that added it (a bootstrap entry
   * at index 1 would look like the group's own and never be replaced). The
   * configuration's addresses carry the client address too ("PEER
   * CLIENT"), so every replica learns where new members serve clients. */
  if (!s->join) {
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    for (size_t i = 0; i < s->group.n_members; i++) {
      char a[2 * TEEX_DS_ADDR_MAX + 2];
      snprintf(a, sizeof a, "%s %s", s->group.members[i].peer,
               s->group.members[i].client);
      if (raft_configuration_add(&conf, s->group.members[i].id, a,
                                 RAFT_VOTER) != 0) {
        raft_configuration_close(&conf);
        return teex_err_set(err, TEEX_ENOMEM, "raft configuration");
      }
    }
    rv = raft_bootstrap(&s->raft, &conf);
    raft_configuration_close(&conf);
    if (rv != 0 && rv != RAFT_CANTBOOTSTRAP)
      return teex_err_set(err, TEEX_EIO, "raft bootstrap: %s",
                          raft_errmsg(&s->raft));
  }
  teex_ds_raft_attach(s->cons, &s->raft);
  teex_ds_replica_bind(s->rep, s->cons);
  rv = raft_start(&s->raft);
  if (rv != 0) {
    /* A snapshot the replica refused (e.g. its hash chain differs from the
     * anchor's): the replica's own reason. */
    struct teex_ds_status st;
    teex_ds_replica_status(s->rep, &st);
    if (st.failed)
      return teex_err_set(err, st.failed, "raft start: %s", st.failure);
    return teex_err_set(err, rv == RAFT_CORRUPT ? TEEX_EROLLBACK : TEEX_EIO,
                        "raft start: %s", raft_start_errmsg(s, rv));
  }
  return 0;
}

int teex_ds_serve(const struct teex_ds_server_config *cfg,
                  struct teex_err *err) {
  signal(SIGPIPE, SIG_IGN); /* a peer that dies must not kill us */
  struct srv *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "out of memory");
  if (uv_loop_init(&s->loop) != 0) {
    free(s);
    return teex_err_set(err, TEEX_EIO, "event loop");
  }
  s->tee = cfg->tee;
  s->state_dir = cfg->state_dir;
  int rc = load_state(s, err);
  if (rc != 0)
    goto out;
  s->verifier.policy = &s->policy;
  s->cfg = cfg;
  s->anchor_sk = teex_secret_alloc(32);
  if (s->anchor_sk == NULL) {
    rc = teex_err_set(err, TEEX_ENOMEM, "out of memory");
    goto out;
  }
  if ((rc = anchor_key_load(s->tee, s->state_dir, s->anchor_sk, err)) != 0)
    goto out;
  if (teex_secp256k1_public(s->anchor_sk, s->anchor_pub) != 0) {
    rc = teex_err_set(err, TEEX_ECRYPTO, "anchoring key");
    goto out;
  }
  teex_eth_address(s->anchor_pub, s->anchor_addr);
  struct teex_ratls_keys rkeys = {.secp256k1_pub = s->anchor_pub};
  if ((rc = teex_ratls_identity_new(s->tee, &rkeys, &s->pkey, &s->cert, err)))
    goto out;
  struct teex_tls_config peer = {.cert = s->cert,
                                 .key = s->pkey,
                                 .mutual = 1,
                                 .verify_peer = peer_verify,
                                 .verify_arg = s};
  struct teex_tls_config client = {.cert = s->cert,
                                   .key = s->pkey,
                                   .mutual = 1,
                                   .verify_peer = client_verify,
                                   .verify_arg = s};
  if ((rc = teex_tls_ctx_new(&s->peer_srv, &peer, 1, err)) != 0 ||
      (rc = teex_tls_ctx_new(&s->peer_cli, &peer, 0, err)) != 0 ||
      (rc = teex_tls_ctx_new(&s->client_srv, &client, 1, err)) != 0)
    goto out;
  if ((rc = get_key(s, cfg->key_timeout_ms ? cfg->key_timeout_ms : 30000,
                    err)) != 0)
    goto out;
  if (cfg->anchor_rpc != NULL && cfg->anchor_contract != NULL &&
      (rc = read_anchor(s, cfg, err)) != 0)
    goto out;
  uint32_t election = cfg->election_timeout_ms ? cfg->election_timeout_ms
                                               : TEEX_DS_DEFAULT_ELECTION_MS;
  /* Half the election timeout: safe while clocks' rates differ by less
   * than a third (docs/internals/ds.md, "Reads and clocks"). */
  s->lease_ms = cfg->no_read_lease ? 0 : election / 2;
  if ((rc = start_raft(s, election, err)) != 0)
    goto out;
  struct teex_rpc_limits lim = {.max_message = TEEX_DS_WIRE_MAX};
  if ((rc = teex_rpc_server_new(&s->loop, s->client_srv, s->self->client, &lim,
                                &s->rpc, err)) != 0)
    goto out;
  teex_rpc_server_register(s->rpc, "teex.Health", on_health, s);
  teex_rpc_server_register(s->rpc, TEEX_DS_METHOD_EXEC, on_exec, s);
  teex_rpc_server_register(s->rpc, TEEX_DS_METHOD_STATUS, on_status, s);
  teex_rpc_server_register(s->rpc, TEEX_DS_METHOD_MEMBER, on_member, s);
  uv_timer_init(&s->loop, &s->member_timer);
  s->member_timer.data = s;
  s->member_timer_on = 1;
  uv_timer_start(&s->member_timer, member_tick, 200, 200);
  s->started_ms = teex_rpc_now(&s->loop);
  if (s->anchored && cfg->anchor_payer_sk != NULL) {
    s->publish = 1;
    s->anchor_done = s->anchor.index;
    s->anchor_last_ms = uv_now(&s->loop);
    uv_timer_init(&s->loop, &s->anchor_timer);
    s->anchor_timer.data = s;
    s->anchor_timer_on = 1;
    uv_timer_start(&s->anchor_timer, anchor_tick, 200, 200);
  }
  uv_signal_init(&s->loop, &s->sigterm);
  uv_signal_init(&s->loop, &s->sigint);
  s->sigterm.data = s->sigint.data = s;
  uv_signal_start(&s->sigterm, on_signal, SIGTERM);
  uv_signal_start(&s->sigint, on_signal, SIGINT);
  if (cfg->ready_file != NULL &&
      (rc = write_ready(cfg->ready_file, s, err)) != 0)
    goto out;
  TEEX_INFO("ds", "replica serving", "id=%llu peer=%s client_port=%d",
            (unsigned long long)s->self_id, s->self->peer,
            teex_rpc_server_port(s->rpc));
  uv_run(&s->loop, UV_RUN_DEFAULT);
  rc = 0;
out:
  if (s->rpc != NULL)
    teex_rpc_server_close(s->rpc);
  if (s->anchor_timer_on)
    uv_close((uv_handle_t *)&s->anchor_timer, NULL);
  if (s->member_timer_on)
    uv_close((uv_handle_t *)&s->member_timer, NULL);
  if (s->raft_inited && !s->stopping) {
    s->stopping = 1;
    raft_close(&s->raft, raft_closed);
  }
  if (!s->raft_inited && s->uv_inited)
    raft_uv_close(&s->uv_io);
  uv_run(&s->loop, UV_RUN_DEFAULT);
  if (s->flush_inited) {
    uv_close((uv_handle_t *)&s->flush_prepare, NULL);
    uv_close((uv_handle_t *)&s->flush_check, NULL);
  }
  if (s->raft_inited)
    raft_uv_close(&s->uv_io);
  if (s->transport_inited)
    teex_ds_transport_free(&s->transport);
  uv_run(&s->loop, UV_RUN_DEFAULT);
  uv_loop_close(&s->loop);
  /* Reads still queued when raft closed: their calls are gone. */
  for (struct read_op *lists[2] = {s->reads_next, s->reads_batch}, **l = lists;
       l < lists + 2; l++)
    while (*l != NULL) {
      struct read_op *r = *l;
      *l = r->next;
      read_op_free(r);
    }
  if (s->cons)
    s->cons->ops->free(s->cons);
  teex_ds_replica_free(s->rep);
  teex_tls_ctx_free(s->peer_srv);
  teex_tls_ctx_free(s->peer_cli);
  teex_tls_ctx_free(s->client_srv);
  EVP_PKEY_free(s->pkey);
  X509_free(s->cert);
  teex_secret_free(s->keys);
  teex_secret_free(s->anchor_sk);
  free(s);
  return rc;
}
