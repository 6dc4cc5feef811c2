/* The worker daemon (include/teex/worker.h, docs/internals/worker.md).
 *
 * Threads: every RPC, the task id memory and the service table live on the
 * libuv loop thread. Blocking work runs on libuv's thread pool: loading a
 * service (sm.FetchKeys over its own blocking RA-TLS connection, IPFS,
 * decryption, starting executors) and running a task (the executor call,
 * the signatures, the sealed-store writes). One executor serves one task at
 * a time; a service holds `slots` warm executors and queues the rest.
 *
 * Sealed store layout (values sealed, keys hashed by the store):
 *   "worker/identity"           the enclave secp256k1 sk (32)
 *   "svc/<id hex>/<image hex>"  provider (20) | service secp256k1 sk (32) |
 *                               the image archive (plaintext, sealed)
 *   "task/<id hex>"             expires_at (8, BE): the replay memory
 *   "rcpt/<id hex>"             a dispatcher.Receipt not yet acknowledged by
 *                               the dispatcher
 *   "rcpt-refused/<id hex>"     a receipt the dispatcher refused as invalid
 *                               (kept for the operator, never re-sent) */
#include "teex/worker.h"
#include "teex/sm_client.h"

#include "teex/buf.h"
#include "teex/crypto.h"
#include "teex/data.h"
#include "teex/ds.h"
#include "teex/ds_client.h"
#include "teex/eth_rpc.h"
#include "teex/executor.h"
#include "teex/image.h"
#include "teex/ipfs.h"
#include "teex/log.h"
#include "teex/mem.h"
#include "teex/proto/dispatcher.pb-c.h"
#include "teex/proto/rpc.pb-c.h"
#include "teex/proto/sm.pb-c.h"
#include "teex/proto/worker.pb-c.h"
#include "teex/ratls.h"
#include "teex/ratls_channel.h"
#include "teex/rpc.h"
#include "teex/rpc_sync.h"
#include "teex/sm_server.h"
#include "teex/store.h"
#include "teex/version.h"

#include <errno.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define SM_TIMEOUT_MS 10000u
#define SVC_REC_HDR (20 + 32)

enum svc_state { SVC_LOADING, SVC_READY };

struct job;

struct svc {
  uint8_t service_id[32];
  uint8_t image_hash[32];
  uint8_t provider[20];
  uint8_t signing_addr[20];
  uint8_t *sk; /* locked: the service's secp256k1 secret key */
  enum svc_state state;
  struct teex_image *img;
  struct teex_executor *ex[TEEX_WORKER_MAX_SLOTS];
  int busy[TEEX_WORKER_MAX_SLOTS];
  unsigned nex;
  struct job *wait_head, *wait_tail; /* hellos and runs waiting */
  uint64_t tasks;
  /* The split: the listing's (chain_rpc), else the flag's. Read at load
   * and again by a task whose price is not the listed one (the provider
   * called setPrice) or when older than LISTING_TTL_S; tasks on several
   * executors read it at once, hence the lock. */
  uv_mutex_t listing_lock;
  teex_amount remuneration, listed_price;
  uint64_t listing_at; /* monotonic seconds of the last read; 0: never */
  /* teex.kv: the SM's grant to this service's TEE-DS namespace (from
   * sm.FetchKeys, fetched again before it expires) and a client using it;
   * tasks of the service take turns under ds_lock. */
  uv_mutex_t ds_lock;
  char ds_ns[TEEX_DS_SERVICE_NS_LEN + 1];
  uint8_t ds_grant[TEEX_DS_GRANT_MAX];
  size_t ds_grant_len;
  uint64_t ds_grant_expires; /* unix seconds */
  struct teex_ds_sync *ds;
  /* load results */
  int load_rc;
  struct teex_err load_err;
  uv_work_t load_work;
  struct worker *w;
};

enum job_kind { JOB_HELLO, JOB_RUN };

struct job {
  enum job_kind kind;
  struct worker *w;
  struct svc *svc;
  struct teex_rpc_call *call;
  struct job *next;
  uint8_t exporter[32]; /* hello: this session's exporter value */
  struct teex_worker_run_req req;
  unsigned slot;
  uv_work_t work;
  /* results of a run */
  int rc;
  struct teex_err err;
  struct teex_task_result res;
  uint8_t *resp; /* packed RunResponse */
  size_t resp_len;
  uint8_t *rcpt; /* packed teex.dispatcher.Receipt */
  size_t rcpt_len;
};

struct report;       /* a receipt on its way to the dispatcher */
struct persist_item; /* a task record waiting to be sealed */

struct worker {
  const struct teex_worker_config *cfg;
  uv_loop_t *loop;
  struct teex_store *store;
  uint8_t *sk; /* locked: the enclave key */
  uint8_t pub[64];
  uint8_t address[20];
  char address_hex[43];
  char measurement_hex[65];
  EVP_PKEY *key;
  X509 *cert;
  struct teex_tls_ctx *user_ctx;
  struct teex_rpc_server *user_srv;
  struct teex_ipfs_backend *ipfs;
  struct svc *svcs[TEEX_WORKER_MAX_IMAGES];
  size_t nsvcs;
  struct teex_task_set *seen;
  struct teex_worker_policy policy;
  unsigned slots;
  uv_signal_t sigterm, sigint;
  uint64_t started_ms;
  int stopping;
  unsigned busy_work; /* thread-pool jobs in flight */
  uint64_t tasks_ok, tasks_failed;
  /* receipts to the dispatcher */
  struct teex_ratls_verifier disp_verifier;
  struct teex_tls_ctx *disp_ctx;
  struct teex_tls_ctx **refresh_ctxs[2]; /* what the refresher renews */
  /* teex.kv: TEE-DS replicas checked against ds_policy (role ds). */
  struct teex_ratls_verifier ds_verifier;
  struct teex_tls_ctx *ds_ctx;
  struct teex_rpc_client *disp;
  int disp_ready;
  struct report *reports;
  uv_timer_t retry; /* re-sends unacknowledged receipts */
  int retry_on;
  struct persist_item *persist_head, *persist_tail; /* waiting to be sealed */
  int disp_registered;
  uv_timer_t hb; /* heartbeats to the dispatcher */
  int hb_on;
  char endpoint[256]; /* the public endpoint given to the dispatcher */
  int persist_busy;
  /* Re-attestation with the SM (sm.Attest) on a timer, well inside the
   * SM's validity window. */
  uv_timer_t reattest;
  uv_work_t reattest_work;
  int reattest_on, reattest_busy, reattest_rc;
  uint64_t attest_valid_until; /* what the SM said last (0: unknown) */
  uint64_t reattest_every_s;   /* --reattest */
  struct teex_err reattest_err;
};

struct report {
  struct report *next;
  struct worker *w;
  uint8_t task_id[32];
  uint8_t *payload;
  size_t len;
  int sent;
};

static uint64_t now_s(void) {
  return (uint64_t)time(NULL);
}

static void be64(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--)
    *p++ = (uint8_t)(v >> (8 * i));
}

static uint64_t rd64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | p[i];
  return v;
}

static void key_with_id(const char *ns, const uint8_t id[32], char *out) {
  size_t n = strlen(ns);
  memcpy(out, ns, n);
  teex_hex_encode(id, 32, out + n);
}

static void svc_store_key(const struct svc *s, char out[4 + 64 + 1 + 65]) {
  memcpy(out, "svc/", 4);
  teex_hex_encode(s->service_id, 32, out + 4);
  out[68] = '/';
  teex_hex_encode(s->image_hash, 32, out + 69);
}

static void respond_msg(struct teex_rpc_call *call, const ProtobufCMessage *m) {
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(n ? n : 1);
  if (buf == NULL) {
    teex_rpc_call_respond(call, TEEX_ENOMEM, "out of memory", NULL, 0);
    return;
  }
  protobuf_c_message_pack(m, buf);
  teex_rpc_call_respond(call, 0, NULL, buf, n);
  free(buf);
}

/* ---- the enclave identity ---- */

static int open_identity(struct worker *w, struct teex_err *err) {
  const struct teex_worker_config *cfg = w->cfg;
  uint8_t root[32];
  struct teex_buf val;
  int rc;
  if (mkdir(cfg->state_dir, 0700) != 0 && errno != EEXIST)
    return teex_err_set(err, TEEX_EIO, "create %s: %s", cfg->state_dir,
                        strerror(errno));
  /* Same-build policy: only this very code (mr_enclave) unseals the keys;
   * a new build gets a new enclave key and registers again. */
  rc = teex_tee_seal_key(cfg->tee, TEEX_SEAL_ENCLAVE, 0, root, err);
  if (rc != 0)
    return rc;
  rc = teex_store_open(cfg->state_dir, root, TEEX_STORE_CREATE, &w->store, err);
  teex_wipe(root, sizeof root);
  if (rc != 0)
    return teex_err_wrap(err, rc, "open worker state");
  w->sk = teex_secret_alloc(32);
  if (w->sk == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "locked memory for the enclave key");
  teex_buf_init(&val, 32, TEEX_BUF_SECRET);
  rc = teex_store_get(w->store, "worker/identity", 15, &val, err);
  if (rc == TEEX_ENOTFOUND) {
    rc = teex_secp256k1_keypair(w->sk, w->pub);
    if (rc == 0)
      rc = teex_store_put(w->store, "worker/identity", 15, w->sk, 32, err);
    if (rc == 0)
      TEEX_INFO("worker", "created enclave key", NULL);
  } else if (rc == 0 && val.len == 32) {
    memcpy(w->sk, val.data, 32);
    rc = teex_secp256k1_public(w->sk, w->pub);
  } else if (rc == 0) {
    rc = teex_err_set(err, TEEX_EFORMAT, "enclave key record has %zu bytes",
                      val.len);
  }
  teex_buf_free(&val);
  if (rc != 0)
    return teex_err_wrap(err, rc, "enclave key");
  teex_eth_address(w->pub, w->address);
  teex_eth_address_hex(w->address, w->address_hex);
  teex_hex_encode(teex_tee_self(cfg->tee)->mr_enclave, 32, w->measurement_hex);
  return 0;
}

/* Loads the task ids still unexpired into the replay memory. */
static int load_seen(struct worker *w, struct teex_err *err) {
  struct teex_store_txn *txn;
  struct teex_store_iter *it;
  uint64_t now = now_s();
  int rc = teex_store_txn_begin(w->store, TEEX_STORE_TXN_RDONLY, &txn, err);
  if (rc != 0)
    return rc;
  rc = teex_store_iter_begin(txn, "task/", 5, &it, err);
  if (rc == 0) {
    const uint8_t *k, *v;
    size_t kl, vl;
    uint8_t id[32];
    size_t idl;
    char hex[65];
    while ((rc = teex_store_iter_next(it, &k, &kl, &v, &vl, err)) == 1) {
      if (kl != 5 + 64 || vl != 8)
        continue;
      memcpy(hex, k + 5, 64);
      hex[64] = '\0';
      if (teex_hex_decode(hex, id, 32, &idl) != 0 || idl != 32)
        continue;
      uint64_t exp = rd64(v);
      if (exp > now && teex_task_set_add(w->seen, id, exp, now) == TEEX_ENOMEM)
        break;
    }
    teex_store_iter_free(it);
  }
  teex_store_txn_abort(txn);
  return rc < 0 ? rc : 0;
}

/* ---- talking to the Service Manager (blocking; thread pool or startup) */

struct sm_conn {
  EVP_PKEY *key;
  X509 *cert;
  uint8_t spki[32];
  struct teex_ratls_verifier verifier;
  struct teex_tls_ctx *ctx;
  struct teex_rpc_sync *c;
};

static void sm_close(struct sm_conn *s) {
  teex_rpc_sync_close(s->c);
  teex_tls_ctx_free(s->ctx);
  X509_free(s->cert);
  EVP_PKEY_free(s->key);
  memset(s, 0, sizeof *s);
}

/* A fresh RA-TLS identity per connection: its certificate's evidence is
 * issued now. */
static int sm_open(struct worker *w, struct sm_conn *s, struct teex_err *err) {
  memset(s, 0, sizeof *s);
  struct teex_ratls_keys keys = {.secp256k1_pub = w->pub};
  int rc = teex_ratls_identity_new(w->cfg->tee, &keys, &s->key, &s->cert, err);
  if (rc != 0)
    return teex_err_wrap(err, rc, "RA-TLS identity");
  if (teex_tls_cert_spki_sha256(s->cert, s->spki) != 0) {
    sm_close(s);
    return teex_err_set(err, TEEX_ECRYPTO, "certificate key");
  }
  s->verifier.policy = w->cfg->sm_policy;
  struct teex_tls_config tc = {.cert = s->cert,
                               .key = s->key,
                               .mutual = 1,
                               .verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &s->verifier};
  if ((rc = teex_tls_ctx_new(&s->ctx, &tc, 0, err)) != 0 ||
      (rc = teex_rpc_sync_connect(w->cfg->sm_addr, s->ctx, SM_TIMEOUT_MS, &s->c,
                                  err)) != 0) {
    sm_close(s);
    /* A TLS-level refusal here is the SM refusing our certificate's
     * evidence (or ours refusing the SM's): say which measurement. */
    if (strstr(err->msg, "TLS") != NULL || rc == TEEX_ECLOSED)
      teex_err_wrap(err, rc,
                    "the SM refuses this worker's evidence, or the SM does "
                    "not satisfy --sm-policy (this worker's measurement: %s)",
                    w->measurement_hex);
    return teex_err_wrap(err, rc, "connect to the SM at %s", w->cfg->sm_addr);
  }
  return 0;
}

/* Makes fresh evidence for an SM method (field 3 of FetchKeys: the caller
 * packs it). */
static int sm_evidence(struct worker *w, struct sm_conn *s, const char *method,
                       struct teex_buf *ev, struct teex_err *err) {
  struct teex_tee_binding b;
  memset(&b, 0, sizeof b);
  b.has_tls = 1;
  memcpy(b.tls_spki_sha256, s->spki, 32);
  b.has_secp256k1 = 1;
  memcpy(b.secp256k1_pub, w->pub, 64);
  b.has_nonce = 1;
  int rc = teex_sm_fresh_nonce(teex_rpc_sync_conn(s->c), method, b.nonce, err);
  if (rc == 0)
    rc = teex_tee_quote_binding(w->cfg->tee, &b, ev, err);
  return rc;
}

/* In TLS 1.3 the SM checks our certificate after our side of the handshake
 * is done, so a refusal shows as a closed connection on the first call. */
static int sm_call(struct worker *w, struct sm_conn *s, const char *method,
                   const uint8_t *p, size_t n, struct teex_buf *resp,
                   struct teex_err *err) {
  int rc = teex_rpc_sync_call(s->c, method, p, n, SM_TIMEOUT_MS, resp, err);
  if (rc == TEEX_ECLOSED || rc == TEEX_ECONN || rc == TEEX_EPROTO)
    teex_err_wrap(err, rc,
                  "the SM closed the connection: it refuses this worker's "
                  "evidence (is measurement %s allowed by the SM's policy?)",
                  w->measurement_hex);
  return rc;
}

/* Gets this worker's EnclaveRegistration signed by the SM (fresh evidence
 * over a new RA-TLS identity) and writes it for the operator to submit. */
static int register_enclave(struct worker *w, struct teex_err *err) {
  EVP_PKEY *key = NULL;
  X509 *cert = NULL;
  struct teex_ratls_keys keys = {.secp256k1_pub = w->pub};
  struct teex_enclave_registration reg;
  int rc = teex_ratls_identity_new(w->cfg->tee, &keys, &key, &cert, err);
  if (rc == 0)
    rc = teex_sm_client_register(w->cfg->tee, cert, key, w->pub,
                                 w->cfg->sm_addr, w->cfg->sm_policy, &reg, err);
  if (rc == 0 && w->cfg->registration_file != NULL)
    rc = teex_enclave_registration_write(&reg, w->cfg->registration_file, err);
  X509_free(cert);
  EVP_PKEY_free(key);
  return rc;
}

/* ---- loading a service (thread pool) ---- */

/* The sealed local copy, if any: provider, service key, image. */
static int load_local(struct worker *w, struct svc *s, struct teex_err *err) {
  char key[4 + 64 + 1 + 65];
  svc_store_key(s, key);
  struct teex_buf val;
  teex_buf_init(&val, TEEX_STORE_VALUE_MAX, TEEX_BUF_SECRET);
  int rc = teex_store_get(w->store, key, strlen(key), &val, err);
  if (rc == 0 && val.len <= SVC_REC_HDR)
    rc = teex_err_set(err, TEEX_EFORMAT, "sealed service record too short");
  if (rc == 0) {
    memcpy(s->provider, val.data, 20);
    memcpy(s->sk, val.data + 20, 32);
    rc = teex_image_parse(val.data + SVC_REC_HDR, val.len - SVC_REC_HDR,
                          &s->img, err);
  }
  teex_buf_free(&val);
  return rc;
}

static int ipfs_write(void *ctx, const uint8_t *p, size_t n) {
  return teex_buf_append(ctx, p, n);
}

/* sm.FetchKeys for s on an open SM connection: the answer (the caller
 * frees it with keys_free) in *out. */
static int fetch_keys(struct worker *w, struct svc *s, struct sm_conn *c,
                      Teex__Sm__FetchKeysResponse **out, struct teex_err *err) {
  struct teex_buf ev, resp;
  teex_buf_init(&ev, 16384, 0);
  teex_buf_init(&resp, 65536, TEEX_BUF_SECRET);
  Teex__Sm__FetchKeysResponse *keys = NULL;
  int rc = sm_evidence(w, c, "sm.FetchKeys", &ev, err);
  if (rc != 0)
    goto out;
  Teex__Sm__FetchKeysRequest req = TEEX__SM__FETCH_KEYS_REQUEST__INIT;
  req.service_id = (ProtobufCBinaryData){32, s->service_id};
  req.image_hash = (ProtobufCBinaryData){32, s->image_hash};
  req.evidence = (ProtobufCBinaryData){ev.len, ev.data};
  uint8_t buf[16384 + 128];
  size_t n = teex__sm__fetch_keys_request__pack(&req, buf);
  rc = sm_call(w, c, "sm.FetchKeys", buf, n, &resp, err);
  if (rc != 0) {
    teex_err_wrap(err, rc, "sm.FetchKeys");
    goto out;
  }
  keys = teex__sm__fetch_keys_response__unpack(NULL, resp.len, resp.data);
  if (keys == NULL || keys->image_key.len != 32 ||
      keys->service_secp256k1.len != 32 || keys->provider.len != 20 ||
      keys->ds_grant.len > TEEX_DS_GRANT_MAX) {
    if (keys != NULL)
      teex__sm__fetch_keys_response__free_unpacked(keys, NULL);
    keys = NULL;
    rc = teex_err_set(err, TEEX_EFORMAT, "malformed sm.FetchKeys answer");
    goto out;
  }
  /* The TEE-DS grant for teex.kv, kept beside the keys. */
  if (keys->ds_grant.len > 0) {
    memcpy(s->ds_grant, keys->ds_grant.data, keys->ds_grant.len);
    s->ds_grant_len = keys->ds_grant.len;
    s->ds_grant_expires = keys->ds_grant_expires;
  }
  *out = keys;
out:
  teex_buf_free(&ev);
  teex_buf_free(&resp);
  return rc;
}

static void keys_free(Teex__Sm__FetchKeysResponse *keys) {
  if (keys == NULL)
    return;
  teex_wipe(keys->image_key.data, keys->image_key.len);
  teex_wipe(keys->service_secp256k1.data, keys->service_secp256k1.len);
  teex_wipe(keys->service_x25519.data, keys->service_x25519.len);
  teex__sm__fetch_keys_response__free_unpacked(keys, NULL);
}

/* Keys from the SM, ciphertext from IPFS, decrypted and checked in memory,
 * then sealed locally. */
static int load_remote(struct worker *w, struct svc *s, struct teex_err *err) {
  struct sm_conn c;
  struct teex_buf ct;
  uint8_t *archive = NULL, *rec = NULL;
  size_t archive_len = 0;
  Teex__Sm__FetchKeysResponse *keys = NULL;
  teex_buf_init(&ct, TEEX_IMAGE_ENC_MAX, 0);
  int rc = sm_open(w, &c, err);
  if (rc != 0)
    goto out;
  rc = fetch_keys(w, s, &c, &keys, err);
  if (rc != 0)
    goto out_conn;
  memcpy(s->sk, keys->service_secp256k1.data, 32);
  memcpy(s->provider, keys->provider.data, 20);
  struct teex_cid cid;
  rc = teex_cid_parse(keys->image_cid, &cid, err);
  if (rc == 0)
    rc = teex_ipfs_cat(w->ipfs, &cid, TEEX_IMAGE_ENC_MAX, ipfs_write, &ct, err);
  if (rc != 0) {
    teex_err_wrap(err, rc, "fetch image %s from IPFS", keys->image_cid);
    goto out_conn;
  }
  rc = teex_image_decrypt(keys->image_key.data, ct.data, ct.len, &archive,
                          &archive_len, err);
  if (rc != 0) {
    teex_err_wrap(err, rc, "decrypt image");
    goto out_conn;
  }
  uint8_t hash[32];
  teex_image_hash(archive, archive_len, hash);
  if (memcmp(hash, s->image_hash, 32) != 0) {
    rc = teex_err_set(err, TEEX_EATTEST,
                      "the image from IPFS is not the assigned image hash");
    goto out_conn;
  }
  rc = teex_image_parse(archive, archive_len, &s->img, err);
  if (rc != 0)
    goto out_conn;
  if (archive_len > TEEX_STORE_VALUE_MAX - SVC_REC_HDR) {
    rc = teex_err_set(err, TEEX_ETOOBIG, "image too large to seal");
    goto out_conn;
  }
  rec = teex_secret_alloc(SVC_REC_HDR + archive_len);
  if (rec == NULL) {
    rc = teex_err_set(err, TEEX_ENOMEM, "locked memory for the image");
    goto out_conn;
  }
  memcpy(rec, s->provider, 20);
  memcpy(rec + 20, s->sk, 32);
  memcpy(rec + SVC_REC_HDR, archive, archive_len);
  char key[4 + 64 + 1 + 65];
  svc_store_key(s, key);
  rc = teex_store_put(w->store, key, strlen(key), rec,
                      SVC_REC_HDR + archive_len, err);
  if (rc != 0)
    teex_err_wrap(err, rc, "seal the service");
out_conn:
  sm_close(&c);
out:
  keys_free(keys);
  teex_secret_free(rec);
  teex_image_bytes_free(archive, archive_len);
  teex_buf_free(&ct);
  return rc;
}

/* teex.kv of a task of service s: the call, under the service's namespace,
 * to the TEE-DS group with the SM's grant (fetched again when missing — an
 * image unsealed locally comes without one — or about to expire). Runs on
 * the task's thread-pool thread; tasks of s take turns. */
static int svc_kv(void *arg, const struct teex_ds_cmd *cmd,
                  struct teex_ds_result *res, struct teex_err *err) {
  struct job *j = arg;
  struct worker *w = j->w;
  struct svc *s = j->svc;
  uint8_t key[TEEX_DS_KEY_MAX], after[TEEX_DS_KEY_MAX];
  struct teex_ds_cmd c;
  int rc = teex_ds_ns_cmd(s->ds_ns, cmd, &c, key, after);
  if (rc != 0)
    return teex_err_set(err, rc, "the key does not fit beside the namespace");
  uv_mutex_lock(&s->ds_lock);
  if (s->ds_grant_len == 0 || s->ds_grant_expires < (uint64_t)time(NULL) + 60) {
    struct sm_conn sc;
    Teex__Sm__FetchKeysResponse *keys = NULL;
    s->ds_grant_len = 0;
    rc = sm_open(w, &sc, err);
    if (rc == 0) {
      rc = fetch_keys(w, s, &sc, &keys, err);
      sm_close(&sc);
    }
    keys_free(keys);
    if (rc == 0 && s->ds_grant_len == 0)
      rc = teex_err_set(err, TEEX_EPERM, "the SM gave no TEE-DS grant");
    teex_ds_sync_close(s->ds); /* the next one presents the new grant */
    s->ds = NULL;
    if (rc != 0)
      teex_err_wrap(err, rc, "TEE-DS grant");
  }
  if (rc == 0 && s->ds == NULL) {
    struct teex_ds_client_config cc = {.replicas = w->cfg->ds_replicas,
                                       .n_replicas = w->cfg->n_ds_replicas,
                                       .tls = w->ds_ctx,
                                       .ns = s->ds_ns,
                                       .grant = s->ds_grant,
                                       .grant_len = s->ds_grant_len};
    rc = teex_ds_sync_open(&cc, &s->ds, err);
  }
  if (rc == 0) {
    rc = teex_ds_sync_exec(s->ds, &c, TEEX_DS_READ_LINEARIZABLE, res, err);
    if (rc == TEEX_EPERM)
      s->ds_grant_len = 0; /* refused: ask the SM again next time */
  }
  if (rc == 0 && (rc = teex_ds_ns_result(s->ds_ns, res)) != 0) {
    teex_ds_result_free(res);
    memset(res, 0, sizeof *res);
    teex_err_set(err, rc, "a scan answered keys outside the namespace");
  }
  uv_mutex_unlock(&s->ds_lock);
  return rc;
}

static void exec_opts(struct worker *w, struct teex_executor_opts *o) {
  memset(o, 0, sizeof *o);
  o->exe_path = w->cfg->exe_path;
  o->accept_weaker_sandbox = w->cfg->accept_weaker_sandbox;
}

/* The split of s from its listing on chain (on the thread pool, like the
 * rest of a load): the listed image must be the one loaded and the listed
 * provider the one the SM returned — what the dispatcher checks receipts
 * against. */
#define LISTING_TTL_S 60

static uint64_t mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec + 1; /* never 0 */
}

static int read_listing(struct worker *w, struct svc *s, struct teex_err *err) {
  struct teex_eth_rpc *rpc = NULL;
  struct teex_chain_service l;
  int rc = teex_eth_rpc_open(w->cfg->chain_rpc, NULL, &rpc, err);
  if (rc == 0)
    rc = teex_chain_get_service(rpc, &w->cfg->chain, s->service_id, &l, err);
  teex_eth_rpc_close(rpc);
  if (rc != 0)
    return teex_err_wrap(err, rc, "read the service's listing on chain");
  if (l.retired)
    return teex_err_set(err, TEEX_EPERM, "the service is retired on chain");
  if (memcmp(l.image_hash, s->image_hash, 32) != 0)
    return teex_err_set(err, TEEX_EPERM,
                        "the image is not the service's listed one");
  if (memcmp(l.provider, s->provider, 20) != 0)
    return teex_err_set(err, TEEX_EPERM,
                        "the listing's provider is not the SM's");
  uv_mutex_lock(&s->listing_lock);
  s->remuneration = l.remuneration;
  s->listed_price = l.price;
  s->listing_at = mono_s();
  uv_mutex_unlock(&s->listing_lock);
  return 0;
}

/* The worker's amount for a task at price: the listing's remuneration,
 * read again when stale or when the price is not the listed one; if the
 * chain cannot be read then, the last value read (logged). */
static teex_amount split_for(struct worker *w, struct svc *s,
                             teex_amount price) {
  if (w->cfg->chain_rpc == NULL)
    return w->cfg->remuneration;
  uv_mutex_lock(&s->listing_lock);
  int stale =
      s->listed_price != price || mono_s() - s->listing_at > LISTING_TTL_S;
  uv_mutex_unlock(&s->listing_lock);
  struct teex_err err;
  teex_err_clear(&err);
  if (stale && read_listing(w, s, &err) != 0)
    TEEX_WARN("worker", "listing not read again; using the last split",
              "reason=\"%s\"", err.msg);
  uv_mutex_lock(&s->listing_lock);
  teex_amount r = s->remuneration;
  uv_mutex_unlock(&s->listing_lock);
  return r;
}

static void load_work(uv_work_t *req) {
  struct svc *s = req->data;
  struct worker *w = s->w;
  struct teex_err *err = &s->load_err;
  teex_err_clear(err);
  int rc = load_local(w, s, err);
  if (rc == TEEX_ENOTFOUND) {
    teex_err_clear(err);
    rc = load_remote(w, s, err);
  }
  if (rc == 0) {
    uint8_t pub[64];
    rc = teex_secp256k1_public(s->sk, pub);
    if (rc == 0)
      teex_eth_address(pub, s->signing_addr);
    else
      teex_err_set(err, rc, "service key invalid");
  }
  s->remuneration = w->cfg->remuneration;
  if (rc == 0 && w->cfg->chain_rpc != NULL)
    rc = read_listing(w, s, err);
  struct teex_executor_opts o;
  exec_opts(w, &o);
  for (unsigned i = 0; rc == 0 && i < w->slots; i++) {
    rc = teex_executor_start(s->img, &o, &s->ex[i], err);
    if (rc != 0)
      teex_err_wrap(err, rc, "start executor");
    else
      s->nex++;
  }
  s->load_rc = rc;
}

static void job_free(struct job *j);

static void svc_free(struct svc *s) {
  if (s == NULL)
    return;
  while (s->wait_head != NULL) { /* only at shutdown */
    struct job *j = s->wait_head;
    s->wait_head = j->next;
    teex_rpc_call_respond(j->call, TEEX_ECLOSED, "worker stopping", NULL, 0);
    job_free(j);
  }
  for (unsigned i = 0; i < TEEX_WORKER_MAX_SLOTS; i++)
    teex_executor_stop(s->ex[i]);
  teex_image_free(s->img);
  teex_secret_free(s->sk);
  uv_mutex_destroy(&s->listing_lock);
  teex_ds_sync_close(s->ds);
  uv_mutex_destroy(&s->ds_lock);
  teex_wipe(s->ds_grant, sizeof s->ds_grant);
  free(s);
}

static void job_free(struct job *j) {
  if (j == NULL)
    return;
  teex_worker_run_req_free(&j->req);
  /* The output, and logs or errors that may quote the input. */
  if (j->res.output != NULL)
    teex_wipe(j->res.output, j->res.output_len);
  if (j->res.logs != NULL)
    teex_wipe(j->res.logs, j->res.logs_len);
  if (j->res.error != NULL)
    teex_wipe(j->res.error, strlen(j->res.error));
  teex_task_result_free(&j->res);
  if (j->resp != NULL) {
    teex_wipe(j->resp, j->resp_len); /* carries the output */
    free(j->resp);
  }
  free(j->rcpt);
  free(j);
}

static void answer_hello(struct job *j) {
  uint8_t digest[32], sig[65];
  teex_stmt_service_proof_digest(j->svc->service_id, j->exporter, digest);
  if (teex_stmt_sign(j->svc->sk, digest, sig) != 0) {
    teex_rpc_call_respond(j->call, TEEX_ECRYPTO, "signing failed", NULL, 0);
    return;
  }
  Teex__Worker__HelloResponse r = TEEX__WORKER__HELLO_RESPONSE__INIT;
  r.signature = (ProtobufCBinaryData){65, sig};
  r.worker = (ProtobufCBinaryData){20, j->w->address};
  respond_msg(j->call, &r.base);
}

static void dispatch(struct svc *s);

static void load_done(uv_work_t *req, int status) {
  struct svc *s = req->data;
  struct worker *w = s->w;
  w->busy_work--;
  if (status != 0 && s->load_rc == 0)
    s->load_rc = teex_err_set(&s->load_err, TEEX_ECANCELED, "load canceled");
  char sid[65];
  teex_hex_encode(s->service_id, 32, sid);
  if (s->load_rc == 0 && !w->stopping) {
    s->state = SVC_READY;
    TEEX_INFO("worker", "service ready", "service=%s executors=%u", sid,
              s->nex);
    dispatch(s);
    return;
  }
  /* Everyone waiting gets the reason; the next request tries again. */
  TEEX_ERROR("worker", "service unavailable: no keys or image",
             "service=%s reason=\"%s\"", sid, teex_err_msg(&s->load_err));
  struct job *j = s->wait_head;
  s->wait_head = s->wait_tail = NULL;
  while (j != NULL) {
    struct job *next = j->next;
    teex_rpc_call_respond(j->call, s->load_rc, teex_err_msg(&s->load_err), NULL,
                          0);
    job_free(j);
    j = next;
  }
  for (size_t i = 0; i < w->nsvcs; i++)
    if (w->svcs[i] == s) {
      w->svcs[i] = w->svcs[--w->nsvcs];
      break;
    }
  svc_free(s);
}

/* Finds or starts loading (service, image). NULL with err when the table is
 * full. */
static struct svc *svc_get(struct worker *w, const uint8_t id[32],
                           const uint8_t image[32], struct teex_err *err) {
  for (size_t i = 0; i < w->nsvcs; i++)
    if (memcmp(w->svcs[i]->service_id, id, 32) == 0 &&
        memcmp(w->svcs[i]->image_hash, image, 32) == 0)
      return w->svcs[i];
  if (w->nsvcs == TEEX_WORKER_MAX_IMAGES) {
    teex_err_set(err, TEEX_EBUSY, "this worker holds %u images already",
                 TEEX_WORKER_MAX_IMAGES);
    return NULL;
  }
  struct svc *s = calloc(1, sizeof *s);
  if (s == NULL || (s->sk = teex_secret_alloc(32)) == NULL) {
    free(s);
    teex_err_set(err, TEEX_ENOMEM, NULL);
    return NULL;
  }
  if (uv_mutex_init(&s->listing_lock) != 0) {
    teex_secret_free(s->sk);
    free(s);
    teex_err_set(err, TEEX_EINTERNAL, "mutex");
    return NULL;
  }
  if (uv_mutex_init(&s->ds_lock) != 0) {
    uv_mutex_destroy(&s->listing_lock);
    teex_secret_free(s->sk);
    free(s);
    teex_err_set(err, TEEX_EINTERNAL, "mutex");
    return NULL;
  }
  teex_ds_service_ns(id, s->ds_ns);
  memcpy(s->service_id, id, 32);
  memcpy(s->image_hash, image, 32);
  s->w = w;
  s->state = SVC_LOADING;
  s->load_work.data = s;
  if (uv_queue_work(w->loop, &s->load_work, load_work, load_done) != 0) {
    svc_free(s);
    teex_err_set(err, TEEX_EINTERNAL, "thread pool");
    return NULL;
  }
  w->busy_work++;
  w->svcs[w->nsvcs++] = s;
  return s;
}

/* ---- running a task (thread pool) ---- */

static void run_work(uv_work_t *req) {
  struct job *j = req->data;
  struct worker *w = j->w;
  struct svc *s = j->svc;
  const struct teex_assignment *a = &j->req.assignment;
  struct teex_err *err = &j->err;
  char tid[65], sid[65], caller[43];
  teex_hex_encode(a->task_id, 32, tid);
  teex_hex_encode(a->service_id, 32, sid);
  teex_eth_address_hex(a->user, caller);

  struct teex_task_ctx ctx = {
      .task_id = tid, .service_id = sid, .caller = caller};
  /* The task's datasets: each key leased from the SM for this very task
   * (the SM checks the assignment, the listing and the use count), the
   * ciphertext from IPFS, the plaintext only in this process's memory and
   * the task's. Nothing is run, nothing earned, if any lease fails. */
  struct teex_data_fetched fetched[TEEX_EXEC_DATASETS_MAX];
  struct teex_task_data tdata[TEEX_EXEC_DATASETS_MAX];
  struct teex_data_share shares[TEEX_EXEC_DATASETS_MAX];
  size_t nd = j->req.n_datasets;
  teex_amount data_price = 0;
  if (nd > 0) {
    uint32_t cap = 0;
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    struct teex_ratls_keys keys = {.secp256k1_pub = w->pub};
    j->rc = teex_ratls_identity_new(w->cfg->tee, &keys, &key, &cert, err);
    if (j->rc == 0)
      j->rc = teex_data_fetch_for_task(
          w->cfg->tee, cert, key, w->pub, w->cfg->sm_addr, w->cfg->sm_policy,
          w->ipfs, a, j->req.dispatcher_sig, j->req.dataset_ids, nd, fetched,
          &cap, err);
    X509_free(cert);
    EVP_PKEY_free(key);
    if (j->rc != 0) {
      teex_err_wrap(err, j->rc, "datasets");
      return;
    }
    for (size_t i = 0; i < nd; i++) {
      tdata[i] = (struct teex_task_data){.name = fetched[i].name,
                                         .data = fetched[i].data,
                                         .len = fetched[i].len};
      memcpy(shares[i].dataset_id, fetched[i].dataset_id, 32);
      memcpy(shares[i].payee, fetched[i].provider, 20);
      teex_amount_word(fetched[i].price, shares[i].amount);
      data_price += fetched[i].price;
    }
    ctx.datasets = tdata;
    ctx.n_datasets = nd;
    ctx.output_max = cap;
  }
  if (data_price > a->price) {
    teex_data_fetched_free(fetched, nd);
    j->rc = teex_err_set(err, TEEX_EINVAL,
                         "the task's price does not cover its datasets");
    return;
  }
  if (w->ds_ctx != NULL) {
    ctx.kv = svc_kv;
    ctx.kv_arg = j;
  }
  j->rc = teex_executor_run(s->ex[j->slot], &ctx, j->req.input,
                            j->req.input_len, &j->res, err);
  teex_data_fetched_free(fetched, nd); /* wipes the plaintexts */
  if (j->rc != 0) {
    /* The executor itself broke: replace it so the worker serves on. */
    struct teex_err e2;
    struct teex_executor_opts o;
    exec_opts(w, &o);
    teex_executor_stop(s->ex[j->slot]);
    s->ex[j->slot] = NULL;
    if (teex_executor_start(s->img, &o, &s->ex[j->slot], &e2) != 0)
      s->ex[j->slot] = NULL;
    teex_err_wrap(err, j->rc, "executor");
    return;
  }
  if (j->res.status != TEEX_TASK_OK) {
    j->rc = teex_err_set(
        err, j->res.status == TEEX_TASK_TIMEOUT ? TEEX_ETIMEDOUT : TEEX_EREMOTE,
        "task failed (%s): %s", teex_task_status_name(j->res.status),
        j->res.error ? j->res.error : "");
    return;
  }

  /* Commitments, the service's result signature, the receipt. */
  uint8_t in_c[32], out_salt[32], out_c[32], digest[32], rsig[65], wsig[65];
  teex_settle_commit(j->req.input_salt, j->req.input, j->req.input_len, in_c);
  teex_random(out_salt, 32);
  teex_settle_commit(out_salt, j->res.output, j->res.output_len, out_c);
  teex_stmt_result_digest(a->task_id, a->service_id, a->image_hash, in_c, out_c,
                          digest);
  if (teex_stmt_sign(s->sk, digest, rsig) != 0) {
    j->rc = teex_err_set(err, TEEX_ECRYPTO, "result signature");
    return;
  }
  struct teex_receipt r;
  memset(&r, 0, sizeof r);
  memcpy(r.task_id, a->task_id, 32);
  memcpy(r.service_id, a->service_id, 32);
  memcpy(r.image_hash, a->image_hash, 32);
  memcpy(r.user, a->user, 20);
  memcpy(r.dispatcher, a->dispatcher, 20);
  memcpy(r.worker, w->address, 20);
  memcpy(r.provider, s->provider, 20);
  memcpy(r.input_commitment, in_c, 32);
  memcpy(r.output_commitment, out_c, 32);
  /* The service's part of the price is what is left after the datasets. */
  teex_amount svc_price = a->price - data_price;
  teex_amount wa = split_for(w, s, svc_price);
  if (wa > svc_price)
    wa = svc_price; /* never pay the worker more than the price */
  teex_amount_word(a->price, r.price);
  teex_amount_word(wa, r.worker_amount);
  teex_amount_word(svc_price - wa, r.provider_amount);
  r.shares = nd ? shares : NULL;
  r.nshares = nd;
  teex_stmt_receipt_digest(&w->cfg->settlement, &r, digest);
  if (teex_stmt_sign(w->sk, digest, wsig) != 0) {
    j->rc = teex_err_set(err, TEEX_ECRYPTO, "receipt signature");
    return;
  }
  Teex__Dispatcher__Receipt sr = TEEX__DISPATCHER__RECEIPT__INIT;
  sr.task_id = (ProtobufCBinaryData){32, r.task_id};
  sr.service_id = (ProtobufCBinaryData){32, r.service_id};
  sr.image_hash = (ProtobufCBinaryData){32, r.image_hash};
  sr.user = (ProtobufCBinaryData){20, r.user};
  sr.dispatcher = (ProtobufCBinaryData){20, r.dispatcher};
  sr.worker = (ProtobufCBinaryData){20, r.worker};
  sr.provider = (ProtobufCBinaryData){20, r.provider};
  sr.input_commitment = (ProtobufCBinaryData){32, r.input_commitment};
  sr.output_commitment = (ProtobufCBinaryData){32, r.output_commitment};
  sr.price = (ProtobufCBinaryData){32, r.price};
  sr.worker_amount = (ProtobufCBinaryData){32, r.worker_amount};
  sr.provider_amount = (ProtobufCBinaryData){32, r.provider_amount};
  sr.signature = (ProtobufCBinaryData){65, wsig};
  Teex__Dispatcher__DataShare dsm[TEEX_EXEC_DATASETS_MAX];
  Teex__Dispatcher__DataShare *dsp[TEEX_EXEC_DATASETS_MAX];
  for (size_t i = 0; i < nd; i++) {
    teex__dispatcher__data_share__init(&dsm[i]);
    dsm[i].dataset_id = (ProtobufCBinaryData){32, shares[i].dataset_id};
    dsm[i].payee = (ProtobufCBinaryData){20, shares[i].payee};
    dsm[i].amount = (ProtobufCBinaryData){32, shares[i].amount};
    dsp[i] = &dsm[i];
  }
  sr.n_data_shares = nd;
  sr.data_shares = nd ? dsp : NULL;
  Teex__Worker__RunResponse resp = TEEX__WORKER__RUN_RESPONSE__INIT;
  resp.output = (ProtobufCBinaryData){j->res.output_len, j->res.output};
  resp.output_salt = (ProtobufCBinaryData){32, out_salt};
  resp.result_sig = (ProtobufCBinaryData){65, rsig};
  resp.receipt = &sr;
  resp.duration_us = j->res.duration_us;
  j->resp_len = teex__worker__run_response__get_packed_size(&resp);
  j->rcpt_len = teex__dispatcher__receipt__get_packed_size(&sr);
  j->resp = malloc(j->resp_len ? j->resp_len : 1);
  j->rcpt = malloc(j->rcpt_len);
  if (j->resp == NULL || j->rcpt == NULL) {
    j->rc = teex_err_set(err, TEEX_ENOMEM, NULL);
    return;
  }
  teex__worker__run_response__pack(&resp, j->resp);
  teex__dispatcher__receipt__pack(&sr, j->rcpt);
}

static void report_receipt(struct worker *w, const uint8_t task_id[32],
                           uint8_t *payload, size_t len);

/* ---- sealing task ids and receipts, batched ----
 * One fsync'd LMDB commit costs ~5 ms on this kind of disk: one per task
 * would cap a worker at ~200 tasks/s and add it to every task's latency.
 * Finished tasks are answered first and sealed in batches: every record
 * pending when a commit starts goes into that one transaction. */

struct persist_item {
  struct persist_item *next;
  uint8_t task_id[32];
  uint64_t expires_at;
  uint8_t *rcpt; /* NULL for a failed task (its id stays used) */
  size_t rcpt_len;
};

struct persist_batch {
  uv_work_t work;
  struct worker *w;
  struct persist_item *items;
  int rc;
  struct teex_err err;
};

static void persist_kick(struct worker *w);

static void persist_work(uv_work_t *req) {
  struct persist_batch *b = req->data;
  struct teex_store_txn *txn;
  teex_err_clear(&b->err);
  b->rc = teex_store_txn_begin(b->w->store, 0, &txn, &b->err);
  if (b->rc != 0)
    return;
  char key[5 + 65];
  uint8_t exp[8];
  for (struct persist_item *it = b->items; it != NULL && b->rc == 0;
       it = it->next) {
    be64(exp, it->expires_at);
    key_with_id("task/", it->task_id, key);
    b->rc = teex_store_txn_put(txn, key, strlen(key), exp, 8, &b->err);
    if (b->rc == 0 && it->rcpt != NULL) {
      key_with_id("rcpt/", it->task_id, key);
      b->rc = teex_store_txn_put(txn, key, strlen(key), it->rcpt, it->rcpt_len,
                                 &b->err);
    }
  }
  if (b->rc == 0)
    b->rc = teex_store_txn_commit(txn, &b->err);
  else
    teex_store_txn_abort(txn);
}

static void persist_done(uv_work_t *req, int status) {
  struct persist_batch *b = req->data;
  struct worker *w = b->w;
  w->busy_work--;
  w->persist_busy = 0;
  if (status != 0 || b->rc != 0)
    TEEX_ERROR("worker", "sealing task records failed", "reason=\"%s\"",
               status != 0 ? "canceled" : teex_err_msg(&b->err));
  struct persist_item *it = b->items;
  while (it != NULL) {
    struct persist_item *next = it->next;
    if (it->rcpt != NULL)
      report_receipt(w, it->task_id, it->rcpt, it->rcpt_len);
    free(it);
    it = next;
  }
  free(b);
  persist_kick(w);
}

static void persist_kick(struct worker *w) {
  if (w->persist_busy || w->persist_head == NULL)
    return;
  struct persist_batch *b = calloc(1, sizeof *b);
  if (b == NULL)
    return; /* tried again with the next task */
  b->w = w;
  b->items = w->persist_head;
  b->work.data = b;
  w->persist_head = w->persist_tail = NULL;
  if (uv_queue_work(w->loop, &b->work, persist_work, persist_done) != 0) {
    w->persist_head = b->items;
    for (w->persist_tail = b->items; w->persist_tail->next != NULL;)
      w->persist_tail = w->persist_tail->next;
    free(b);
    return;
  }
  w->persist_busy = 1;
  w->busy_work++;
}

static void persist_add(struct worker *w, const uint8_t task_id[32],
                        uint64_t expires_at, uint8_t *rcpt, size_t rcpt_len) {
  struct persist_item *it = calloc(1, sizeof *it);
  if (it == NULL) {
    free(rcpt);
    TEEX_ERROR("worker", "out of memory sealing a task record", NULL);
    return;
  }
  memcpy(it->task_id, task_id, 32);
  it->expires_at = expires_at;
  it->rcpt = rcpt;
  it->rcpt_len = rcpt_len;
  if (w->persist_tail != NULL)
    w->persist_tail->next = it;
  else
    w->persist_head = it;
  w->persist_tail = it;
  persist_kick(w);
}

static void run_done(uv_work_t *req, int status) {
  struct job *j = req->data;
  struct worker *w = j->w;
  struct svc *s = j->svc;
  w->busy_work--;
  s->busy[j->slot] = 0;
  char tid[65];
  teex_hex_encode(j->req.assignment.task_id, 32, tid);
  if (status != 0 && j->rc == 0)
    j->rc = teex_err_set(&j->err, TEEX_ECANCELED, "canceled");
  if (j->rc == 0) {
    w->tasks_ok++;
    s->tasks++;
    teex_rpc_call_respond(j->call, 0, NULL, j->resp, j->resp_len);
    TEEX_INFO("worker", "task done", "task=%s us=%llu", tid,
              (unsigned long long)j->res.duration_us);
    persist_add(w, j->req.assignment.task_id, j->req.assignment.expires_at,
                j->rcpt, j->rcpt_len);
    j->rcpt = NULL;
  } else {
    w->tasks_failed++;
    /* The service's own error text goes to the user only, never the log:
     * it may quote the input. */
    TEEX_WARN("worker", "task failed", "task=%s code=%s", tid,
              teex_err_name(j->rc));
    persist_add(w, j->req.assignment.task_id, j->req.assignment.expires_at,
                NULL, 0);
    teex_rpc_call_respond(j->call, j->rc, teex_err_msg(&j->err), NULL, 0);
  }
  teex_wipe(&j->err, sizeof j->err);
  job_free(j);
  if (!w->stopping)
    dispatch(s);
}

/* Answers everyone waiting on s with an error, removes s from the table
 * and frees it (no job of s may be running); the next request reloads. */
static void svc_drop(struct svc *s) {
  struct worker *w = s->w;
  char sid[65];
  teex_hex_encode(s->service_id, 32, sid);
  TEEX_ERROR("worker", "service dropped: its executors could not be restarted",
             "service=%s", sid);
  struct job *j = s->wait_head;
  s->wait_head = s->wait_tail = NULL;
  while (j != NULL) {
    struct job *next = j->next;
    teex_rpc_call_respond(j->call, TEEX_EIO,
                          "the service's sandbox could not be restarted", NULL,
                          0);
    job_free(j);
    j = next;
  }
  for (size_t i = 0; i < w->nsvcs; i++)
    if (w->svcs[i] == s) {
      w->svcs[i] = w->svcs[--w->nsvcs];
      break;
    }
  svc_free(s);
}

/* Hands waiting jobs of a ready service to free executors. */
static void dispatch(struct svc *s) {
  struct worker *w = s->w;
  while (s->wait_head != NULL) {
    struct job *j = s->wait_head;
    if (j->kind == JOB_HELLO) {
      s->wait_head = j->next;
      answer_hello(j);
      job_free(j);
      continue;
    }
    unsigned slot = TEEX_WORKER_MAX_SLOTS;
    for (unsigned i = 0; i < s->nex; i++)
      if (!s->busy[i] && s->ex[i] != NULL) {
        slot = i;
        break;
      }
    if (slot == TEEX_WORKER_MAX_SLOTS) {
      unsigned alive = 0;
      for (unsigned i = 0; i < s->nex; i++)
        alive += s->busy[i] || s->ex[i] != NULL;
      if (alive == 0) {
        svc_drop(s); /* every executor died and none restarted */
        return;
      }
      break;
    }
    s->wait_head = j->next;
    j->slot = slot;
    j->work.data = j;
    if (uv_queue_work(w->loop, &j->work, run_work, run_done) != 0) {
      teex_rpc_call_respond(j->call, TEEX_EINTERNAL, "thread pool", NULL, 0);
      job_free(j);
      continue;
    }
    s->busy[slot] = 1;
    w->busy_work++;
    /* Operators (and the fault tests) see which worker runs a task now. */
    char tid[65];
    teex_hex_encode(j->req.assignment.task_id, 32, tid);
    TEEX_INFO("worker", "task started", "task=%s", tid);
  }
  if (s->wait_head == NULL)
    s->wait_tail = NULL;
}

static void enqueue(struct svc *s, struct job *j) {
  j->svc = s;
  j->next = NULL;
  if (s->state == SVC_READY && j->kind == JOB_HELLO) {
    answer_hello(j); /* needs the key, not an executor: never queued */
    job_free(j);
    return;
  }
  if (s->wait_tail)
    s->wait_tail->next = j;
  else
    s->wait_head = j;
  s->wait_tail = j;
  if (s->state == SVC_READY)
    dispatch(s);
}

/* ---- RPC handlers (loop thread) ---- */

static void on_health(struct teex_rpc_call *call, const uint8_t *p, size_t n,
                      void *arg) {
  (void)p;
  (void)n;
  struct worker *w = arg;
  Teex__Rpc__HealthResponse r = TEEX__RPC__HEALTH_RESPONSE__INIT;
  r.status = "ok";
  r.role = "worker";
  r.uptime_ms = teex_rpc_now(w->loop) - w->started_ms;
  r.version = (char *)teex_version();
  respond_msg(call, &r.base);
}

static void on_info(struct teex_rpc_call *call, const uint8_t *p, size_t n,
                    void *arg) {
  (void)p;
  (void)n;
  struct worker *w = arg;
  Teex__Worker__InfoResponse r = TEEX__WORKER__INFO_RESPONSE__INIT;
  r.address = (ProtobufCBinaryData){20, w->address};
  r.chain_id = w->cfg->settlement.chain_id;
  r.settlement = (ProtobufCBinaryData){
      20, (uint8_t *)w->cfg->settlement.verifying_contract};
  r.services = (uint32_t)w->nsvcs;
  r.slots = w->slots;
  respond_msg(call, &r.base);
}

static struct job *job_new(struct worker *w, struct teex_rpc_call *call,
                           enum job_kind kind) {
  struct job *j = calloc(1, sizeof *j);
  if (j == NULL) {
    teex_rpc_call_respond(call, TEEX_ENOMEM, "out of memory", NULL, 0);
    return NULL;
  }
  j->w = w;
  j->call = call;
  j->kind = kind;
  return j;
}

static void on_hello(struct teex_rpc_call *call, const uint8_t *p, size_t n,
                     void *arg) {
  struct worker *w = arg;
  struct teex_err err;
  teex_err_clear(&err);
  Teex__Worker__HelloRequest *req =
      teex__worker__hello_request__unpack(NULL, n, p);
  if (req == NULL || req->service_id.len != 32 || req->image_hash.len != 32) {
    teex_rpc_call_respond(call, TEEX_EFORMAT,
                          "malformed worker.Hello: service_id and image_hash "
                          "are 32 bytes",
                          NULL, 0);
    goto out;
  }
  struct job *j = job_new(w, call, JOB_HELLO);
  if (j == NULL)
    goto out;
  struct teex_tls_conn *c = teex_rpc_call_conn(call);
  int rc = c == NULL ? TEEX_ECLOSED
                     : teex_tls_export(c, TEEX_SERVICE_PROOF_LABEL,
                                       req->service_id.data, 32, j->exporter,
                                       32, &err);
  struct svc *s = NULL;
  if (rc == 0 && (s = svc_get(w, req->service_id.data, req->image_hash.data,
                              &err)) == NULL)
    rc = err.code;
  if (rc != 0) {
    teex_rpc_call_respond(call, rc, teex_err_msg(&err), NULL, 0);
    job_free(j);
    goto out;
  }
  enqueue(s, j);
out:
  if (req != NULL)
    teex__worker__hello_request__free_unpacked(req, NULL);
}

static void on_run(struct teex_rpc_call *call, const uint8_t *p, size_t n,
                   void *arg) {
  struct worker *w = arg;
  struct teex_err err;
  teex_err_clear(&err);
  struct job *j = job_new(w, call, JOB_RUN);
  if (j == NULL)
    return;
  int rc = teex_worker_run_req_decode(p, n, &j->req, &err);
  const struct teex_assignment *a = &j->req.assignment;
  uint64_t now = now_s();
  if (rc == 0)
    rc = teex_worker_check_assignment(&w->policy, a, j->req.dispatcher_sig, now,
                                      &err);
  if (rc == 0 && (rc = teex_task_set_add(w->seen, a->task_id, a->expires_at,
                                         now)) == TEEX_EREPLAY)
    teex_err_set(&err, rc, "task id already seen: assignment replayed");
  else if (rc == TEEX_ENOMEM)
    teex_err_set(&err, rc, NULL);
  struct svc *s = NULL;
  if (rc == 0 && (s = svc_get(w, a->service_id, a->image_hash, &err)) == NULL)
    rc = err.code;
  if (rc != 0) {
    char tid[65];
    teex_hex_encode(a->task_id, 32, tid);
    TEEX_WARN("worker", "task refused", "peer=%s task=%s reason=\"%s\"",
              teex_tls_peer_addr(teex_rpc_call_conn(call)), tid, err.msg);
    teex_rpc_call_respond(call, rc, teex_err_msg(&err), NULL, 0);
    job_free(j);
    return;
  }
  enqueue(s, j);
}

/* ---- receipts to the dispatcher ---- */

static void disp_flush(struct worker *w);

static void report_done(void *arg, int code, const char *msg,
                        const uint8_t *payload, size_t len) {
  (void)payload;
  (void)len;
  struct report *r = arg;
  struct worker *w = r->w;
  char tid[65];
  teex_hex_encode(r->task_id, 32, tid);
  /* Refusals no later report can change: another receipt earned the task,
   * or it failed at the dispatcher (past its deadline)... */
  int final = code == TEEX_EREPLAY || code == TEEX_EEXPIRED;
  /* ...or the dispatcher found the receipt itself invalid (it does not
   * match the task, its split or its datasets, or its signature): sending
   * the same bytes again gets the same answer, so it is set aside sealed
   * for the operator instead of being re-sent with every later report. */
  int invalid = code == TEEX_EINVAL || code == TEEX_EBADSIG ||
                code == TEEX_EPERM || code == TEEX_EFORMAT;
  if (code == 0 || final || invalid) {
    char key[5 + 65], aside[14 + 65];
    struct teex_err err;
    key_with_id("rcpt/", r->task_id, key);
    if (invalid) {
      key_with_id("rcpt-refused/", r->task_id, aside);
      if (teex_store_put(w->store, aside, strlen(aside), r->payload, r->len,
                         &err) != 0)
        TEEX_WARN("worker", "refused receipt not set aside",
                  "task=%s reason=\"%s\"", tid, err.msg);
    }
    teex_store_del(w->store, key, strlen(key), &err);
    if (code == 0)
      TEEX_INFO("worker", "receipt reported", "task=%s", tid);
    else if (invalid)
      TEEX_ERROR("worker",
                 "receipt refused as invalid; kept aside, not re-sent",
                 "task=%s reason=\"%s\"", tid, msg ? msg : teex_err_name(code));
    else
      TEEX_ERROR("worker", "receipt refused for good; dropped",
                 "task=%s reason=\"%s\"", tid, msg ? msg : teex_err_name(code));
    struct report **pp = &w->reports;
    while (*pp != NULL && *pp != r)
      pp = &(*pp)->next;
    if (*pp == r)
      *pp = r->next;
    free(r->payload);
    free(r);
  } else {
    /* Kept (in memory and sealed) for the next connection. */
    r->sent = 0;
    TEEX_WARN("worker", "receipt report failed", "task=%s reason=\"%s\"", tid,
              msg ? msg : teex_err_name(code));
  }
}

/* The images this worker holds ready (hashes, 32 bytes each). */
static size_t warm_images(struct worker *w, ProtobufCBinaryData *out) {
  size_t n = 0;
  for (size_t i = 0; i < w->nsvcs; i++)
    if (w->svcs[i]->state == SVC_READY)
      out[n++] = (ProtobufCBinaryData){32, w->svcs[i]->image_hash};
  return n;
}

static unsigned load_now(struct worker *w) {
  unsigned busy = 0;
  for (size_t i = 0; i < w->nsvcs; i++)
    for (unsigned k = 0; k < w->svcs[i]->nex; k++)
      busy += (unsigned)w->svcs[i]->busy[k];
  return busy;
}

static void disp_register(struct worker *w);

static void heartbeat_done(void *arg, int code, const char *msg,
                           const uint8_t *p, size_t n) {
  (void)p;
  (void)n;
  struct worker *w = arg;
  if (code == TEEX_ENOTFOUND) { /* the dispatcher forgot us: register */
    w->disp_registered = 0;
    disp_register(w);
  } else if (code != 0) {
    TEEX_WARN("worker", "heartbeat failed", "reason=\"%s\"",
              msg ? msg : teex_err_name(code));
  }
}

static void on_heartbeat(uv_timer_t *h) {
  struct worker *w = h->data;
  if (w->disp == NULL || !w->disp_registered || w->stopping)
    return;
  ProtobufCBinaryData warm[TEEX_WORKER_MAX_IMAGES];
  Teex__Dispatcher__HeartbeatRequest req =
      TEEX__DISPATCHER__HEARTBEAT_REQUEST__INIT;
  req.load = load_now(w);
  req.n_warm_images = warm_images(w, warm);
  req.warm_images = warm;
  uint8_t buf[TEEX_WORKER_MAX_IMAGES * 36 + 16];
  size_t n = teex__dispatcher__heartbeat_request__pack(&req, buf);
  struct teex_err err;
  teex_rpc_client_call(w->disp, "dispatcher.Heartbeat", buf, n, 0,
                       heartbeat_done, NULL, w, &err);
}

static void register_done(void *arg, int code, const char *msg,
                          const uint8_t *p, size_t n) {
  struct worker *w = arg;
  if (code != 0) {
    TEEX_ERROR("worker", "dispatcher registration refused", "reason=\"%s\"",
               msg ? msg : teex_err_name(code));
    return; /* tried again when the connection is made again */
  }
  Teex__Dispatcher__RegisterResponse *r =
      teex__dispatcher__register_response__unpack(NULL, n, p);
  uint64_t every = r != NULL ? r->heartbeat_interval_ms : 0;
  if (r != NULL)
    teex__dispatcher__register_response__free_unpacked(r, NULL);
  if (every < 100 || every > 600000)
    every = 5000;
  w->disp_registered = 1;
  TEEX_INFO("worker", "registered with the dispatcher",
            "endpoint=%s heartbeat_ms=%llu", w->cfg->dispatcher_endpoint,
            (unsigned long long)every);
  if (w->hb_on)
    uv_timer_start(&w->hb, on_heartbeat, every, every);
  disp_flush(w);
}

/* dispatcher.Register: address, capacity, public endpoint, warm images. */
static void disp_register(struct worker *w) {
  if (w->disp == NULL || !w->disp_ready || w->stopping)
    return;
  ProtobufCBinaryData warm[TEEX_WORKER_MAX_IMAGES];
  Teex__Dispatcher__RegisterRequest req =
      TEEX__DISPATCHER__REGISTER_REQUEST__INIT;
  req.address = (ProtobufCBinaryData){20, w->address};
  req.capacity = w->slots;
  req.endpoint = w->endpoint;
  req.n_warm_images = warm_images(w, warm);
  req.warm_images = warm;
  uint8_t buf[TEEX_WORKER_MAX_IMAGES * 36 + 512];
  size_t n = teex__dispatcher__register_request__pack(&req, buf);
  struct teex_err err;
  if (teex_rpc_client_call(w->disp, "dispatcher.Register", buf, n, 0,
                           register_done, NULL, w, &err) != 0)
    TEEX_WARN("worker", "dispatcher registration not sent", "reason=\"%s\"",
              err.msg);
}

static void disp_state(struct teex_rpc_client *c, int code, const char *reason,
                       void *arg) {
  struct worker *w = arg;
  (void)c;
  if (code == 0 && !w->disp_ready) {
    w->disp_ready = 1;
    disp_register(w);
    return;
  }
  TEEX_WARN("worker", "dispatcher connection closed", "reason=\"%s\"",
            reason ? reason : "");
  w->disp = NULL;
  w->disp_ready = 0;
  w->disp_registered = 0;
  if (w->hb_on)
    uv_timer_stop(&w->hb);
  for (struct report *r = w->reports; r != NULL; r = r->next)
    r->sent = 0;
}

static void disp_flush(struct worker *w) {
  if (w->cfg->dispatcher_endpoint == NULL || w->stopping)
    return;
  struct teex_err err;
  teex_err_clear(&err);
  if (w->disp == NULL) {
    if (teex_rpc_client_connect(w->loop, w->disp_ctx,
                                w->cfg->dispatcher_endpoint, NULL, disp_state,
                                w, &w->disp, &err) != 0) {
      TEEX_WARN("worker", "dispatcher unreachable", "reason=\"%s\"", err.msg);
      w->disp = NULL;
    }
    return;
  }
  /* The dispatcher takes receipts from registered workers only. */
  if (!w->disp_ready || !w->disp_registered)
    return;
  for (struct report *r = w->reports; r != NULL; r = r->next) {
    if (r->sent)
      continue;
    if (teex_rpc_client_call(w->disp, "dispatcher.Receipt", r->payload, r->len,
                             0, report_done, NULL, r, &err) == 0)
      r->sent = 1;
  }
}

static void report_receipt(struct worker *w, const uint8_t task_id[32],
                           uint8_t *payload, size_t len) {
  if (w->cfg->dispatcher_endpoint == NULL) {
    free(payload); /* kept sealed under "rcpt/" for the operator */
    return;
  }
  struct report *r = calloc(1, sizeof *r);
  if (r == NULL) {
    free(payload);
    return;
  }
  r->w = w;
  memcpy(r->task_id, task_id, 32);
  r->payload = payload;
  r->len = len;
  r->next = w->reports;
  w->reports = r;
  disp_flush(w);
}

static int disp_setup(struct worker *w, struct teex_err *err) {
  if (w->cfg->dispatcher_endpoint == NULL)
    return 0;
  if (w->cfg->dispatcher_policy == NULL)
    return teex_err_set(err, TEEX_ECONFIG,
                        "a dispatcher endpoint needs a dispatcher policy");
  w->disp_verifier.policy = w->cfg->dispatcher_policy;
  struct teex_tls_config tc = {.cert = w->cert,
                               .key = w->key,
                               .mutual = 1,
                               .verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &w->disp_verifier};
  return teex_tls_ctx_new(&w->disp_ctx, &tc, 0, err);
}

/* teex.kv: a client context for the TEE-DS replicas, with this worker's
 * RA-TLS identity (its evidence binds the address SM grants name). */
static int ds_setup(struct worker *w, struct teex_err *err) {
  if (w->cfg->n_ds_replicas == 0)
    return 0;
  if (w->cfg->ds_policy == NULL ||
      w->cfg->n_ds_replicas > TEEX_DS_CLIENT_MAX_REPLICAS)
    return teex_err_set(err, TEEX_ECONFIG,
                        "TEE-DS: 1 to %d replicas and their policy",
                        TEEX_DS_CLIENT_MAX_REPLICAS);
  w->ds_verifier.policy = w->cfg->ds_policy;
  struct teex_tls_config tc = {.cert = w->cert,
                               .key = w->key,
                               .mutual = 1,
                               .verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &w->ds_verifier};
  return teex_tls_ctx_new(&w->ds_ctx, &tc, 0, err);
}

static void on_retry(uv_timer_t *h) {
  struct worker *w = h->data;
  if (w->disp == NULL)
    disp_flush(w); /* reconnects, registers, re-sends receipts */
  else if (w->disp_ready && !w->disp_registered)
    disp_register(w); /* refused before: try again */
}

/* Receipts sealed but never acknowledged (a restart, a dispatcher that was
 * away) are sent again: the dispatcher records a task once. */
static int requeue_receipts(struct worker *w, struct teex_err *err) {
  if (w->cfg->dispatcher_endpoint == NULL)
    return 0;
  struct teex_store_txn *txn;
  struct teex_store_iter *it;
  int rc = teex_store_txn_begin(w->store, TEEX_STORE_TXN_RDONLY, &txn, err);
  if (rc != 0)
    return rc;
  rc = teex_store_iter_begin(txn, "rcpt/", 5, &it, err);
  if (rc == 0) {
    const uint8_t *k, *v;
    size_t kl, vl, idl;
    uint8_t id[32];
    char hex[65];
    while ((rc = teex_store_iter_next(it, &k, &kl, &v, &vl, err)) == 1) {
      if (kl != 5 + 64)
        continue;
      memcpy(hex, k + 5, 64);
      hex[64] = '\0';
      uint8_t *copy = malloc(vl ? vl : 1);
      if (copy == NULL || teex_hex_decode(hex, id, 32, &idl) != 0) {
        free(copy);
        continue;
      }
      memcpy(copy, v, vl);
      report_receipt(w, id, copy, vl);
    }
    teex_store_iter_free(it);
  }
  teex_store_txn_abort(txn);
  return rc < 0 ? rc : 0;
}

/* ---- lifecycle ---- */

static void on_signal(uv_signal_t *h, int signum) {
  struct worker *w = h->data;
  TEEX_INFO("worker", "stopping", "signal=%d", signum);
  w->stopping = 1;
  if (w->user_srv != NULL)
    teex_rpc_server_close(w->user_srv);
  w->user_srv = NULL;
  if (w->disp != NULL)
    teex_rpc_client_close(w->disp);
  if (w->retry_on) {
    uv_timer_stop(&w->retry);
    uv_close((uv_handle_t *)&w->retry, NULL);
    w->retry_on = 0;
  }
  if (w->hb_on) {
    uv_timer_stop(&w->hb);
    uv_close((uv_handle_t *)&w->hb, NULL);
    w->hb_on = 0;
  }
  if (w->reattest_on) {
    uv_timer_stop(&w->reattest);
    uv_close((uv_handle_t *)&w->reattest, NULL);
    w->reattest_on = 0;
  }
  uv_signal_stop(&w->sigterm);
  uv_signal_stop(&w->sigint);
  uv_close((uv_handle_t *)&w->sigterm, NULL);
  uv_close((uv_handle_t *)&w->sigint, NULL);
}

static int write_ready(struct worker *w, struct teex_err *err) {
  const char *path = w->cfg->ready_file;
  if (path == NULL)
    return 0;
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (f == NULL)
    return teex_err_set(err, TEEX_EIO, "write %s", tmp);
  fprintf(f, "port = %d\naddress = %s\nmeasurement = %s\n",
          teex_rpc_server_port(w->user_srv), w->address_hex,
          w->measurement_hex);
  if (fclose(f) != 0 || rename(tmp, path) != 0)
    return teex_err_set(err, TEEX_EIO, "write %s", path);
  return 0;
}

/* ---- re-attestation (thread pool) ---- */

static void reattest_work(uv_work_t *wk) {
  struct worker *w = wk->data;
  EVP_PKEY *key = NULL;
  X509 *cert = NULL;
  struct teex_ratls_keys keys = {.secp256k1_pub = w->pub};
  uint64_t until = 0;
  teex_err_clear(&w->reattest_err);
  int rc = teex_ratls_identity_new(w->cfg->tee, &keys, &key, &cert,
                                   &w->reattest_err);
  if (rc == 0)
    rc = teex_sm_client_attest(w->cfg->tee, cert, key, w->pub, w->cfg->sm_addr,
                               w->cfg->sm_policy, &until, &w->reattest_err);
  X509_free(cert);
  EVP_PKEY_free(key);
  w->reattest_rc = rc;
  if (rc == 0)
    w->attest_valid_until = until;
}

static void on_reattest(uv_timer_t *t);

static void reattest_done(uv_work_t *wk, int status) {
  struct worker *w = wk->data;
  w->reattest_busy = 0;
  if (status != 0)
    return;
  if (w->reattest_rc == 0) {
    TEEX_INFO("worker", "re-attested with the SM", "valid_until=%llu",
              (unsigned long long)w->attest_valid_until);
    /* Well inside the SM's window, whatever the flag says: at most half of
     * what is left of it. */
    uint64_t now = (uint64_t)time(NULL), next = w->reattest_every_s;
    if (w->attest_valid_until > now && (w->attest_valid_until - now) / 2 < next)
      next = (w->attest_valid_until - now) / 2;
    if (next == 0)
      next = 1;
    if (w->reattest_on && !w->stopping)
      uv_timer_start(&w->reattest, on_reattest, next * 1000, next * 1000);
  } else
    TEEX_ERROR("worker", "re-attestation refused or failed",
               "measurement=%s reason=\"%s\"", w->measurement_hex,
               w->reattest_err.msg);
}

static void on_reattest(uv_timer_t *t) {
  struct worker *w = t->data;
  if (w->stopping || w->reattest_busy)
    return;
  w->reattest_busy = 1;
  w->reattest_work.data = w;
  if (uv_queue_work(w->loop, &w->reattest_work, reattest_work, reattest_done) !=
      0)
    w->reattest_busy = 0;
}

int teex_worker_serve(const struct teex_worker_config *cfg,
                      struct teex_err *err) {
  struct worker w;
  memset(&w, 0, sizeof w);
  struct teex_ratls_refresher *refresher = NULL;
  uv_loop_t loop;
  int rc;
  if (cfg->tee == NULL || cfg->state_dir == NULL || cfg->listen == NULL ||
      cfg->sm_addr == NULL || cfg->sm_policy == NULL ||
      (cfg->ipfs_dir == NULL) == (cfg->ipfs_api == NULL))
    return teex_err_set(err, TEEX_ECONFIG,
                        "worker: tee, state dir, listen address, SM address "
                        "and policy, and one IPFS source are required");
  if (cfg->n_dispatchers == 0 ||
      cfg->n_dispatchers > TEEX_WORKER_MAX_DISPATCHERS)
    return teex_err_set(err, TEEX_ECONFIG,
                        "worker: 1 to %d dispatcher addresses are required",
                        TEEX_WORKER_MAX_DISPATCHERS);
  if (uv_loop_init(&loop) != 0)
    return teex_err_set(err, TEEX_EIO, "event loop");
  w.cfg = cfg;
  w.loop = &loop;
  w.slots = cfg->slots ? cfg->slots : 2;
  if (w.slots > TEEX_WORKER_MAX_SLOTS)
    w.slots = TEEX_WORKER_MAX_SLOTS;
  if ((rc = teex_task_set_new(&w.seen)) != 0) {
    teex_err_set(err, rc, NULL);
    goto out;
  }
  if ((rc = open_identity(&w, err)) != 0 || (rc = load_seen(&w, err)) != 0)
    goto out;
  w.policy.chain_id = cfg->settlement.chain_id;
  memcpy(w.policy.self, w.address, 20);
  w.policy.dispatchers = cfg->dispatchers;
  w.policy.n_dispatchers = cfg->n_dispatchers;
  rc = cfg->ipfs_dir ? teex_ipfs_store_open(cfg->ipfs_dir, &w.ipfs, err)
                     : teex_ipfs_kubo_open(cfg->ipfs_api, &w.ipfs, err);
  if (rc != 0) {
    teex_err_wrap(err, rc, "IPFS");
    goto out;
  }
  struct teex_ratls_keys keys = {.secp256k1_pub = w.pub};
  rc = teex_ratls_identity_new(cfg->tee, &keys, &w.key, &w.cert, err);
  if (rc != 0)
    goto out;
  struct teex_tls_config user_tls = {.cert = w.cert, .key = w.key};
  if ((rc = teex_tls_ctx_new(&w.user_ctx, &user_tls, 1, err)) != 0 ||
      (rc = disp_setup(&w, err)) != 0 || (rc = ds_setup(&w, err)) != 0 ||
      (rc = teex_rpc_server_new(&loop, w.user_ctx, cfg->listen, NULL,
                                &w.user_srv, err)) != 0)
    goto out;
  /* The SM connections make a fresh identity each time; these two are
   * long-lived. */
  w.refresh_ctxs[0] = &w.user_ctx;
  w.refresh_ctxs[1] = &w.disp_ctx;
  if ((rc = teex_ratls_refresher_start(&loop, cfg->tee, &keys, w.key, w.cert,
                                       cfg->cert_refresh_s, w.refresh_ctxs, 2,
                                       &refresher, err)) != 0)
    goto out;
  teex_rpc_server_register(w.user_srv, "teex.Health", on_health, &w);
  teex_rpc_server_register(w.user_srv, "worker.Info", on_info, &w);
  teex_rpc_server_register(w.user_srv, "worker.Hello", on_hello, &w);
  teex_rpc_server_register(w.user_srv, "worker.Run", on_run, &w);

  /* Registration with the SM: a refusal is logged, not fatal — the SM may
   * be down for now, and every key fetch tries again. */
  struct teex_err rerr;
  teex_err_clear(&rerr);
  if (register_enclave(&w, &rerr) != 0)
    TEEX_ERROR("worker", "registration with the SM failed",
               "measurement=%s reason=\"%s\"", w.measurement_hex, rerr.msg);
  else
    TEEX_INFO("worker", "registered with the SM", "address=%s file=%s",
              w.address_hex,
              cfg->registration_file ? cfg->registration_file : "-");

  w.started_ms = teex_rpc_now(&loop);
  uv_signal_init(&loop, &w.sigterm);
  uv_signal_init(&loop, &w.sigint);
  w.sigterm.data = w.sigint.data = &w;
  uv_signal_start(&w.sigterm, on_signal, SIGTERM);
  uv_signal_start(&w.sigint, on_signal, SIGINT);
  if (cfg->public_endpoint != NULL)
    snprintf(w.endpoint, sizeof w.endpoint, "%s", cfg->public_endpoint);
  else
    snprintf(w.endpoint, sizeof w.endpoint, "127.0.0.1:%d",
             teex_rpc_server_port(w.user_srv));
  if (cfg->dispatcher_endpoint != NULL) {
    uv_timer_init(&loop, &w.retry);
    w.retry.data = &w;
    uv_timer_start(&w.retry, on_retry, 5000, 5000);
    w.retry_on = 1;
    uv_timer_init(&loop, &w.hb);
    w.hb.data = &w;
    w.hb_on = 1;
    if ((rc = requeue_receipts(&w, err)) != 0)
      goto out;
    disp_flush(&w); /* connect and register now */
  }
  /* Registration was this worker's first attestation; the timer renews
   * it before the SM's window (TEEX_SM_ATTEST_VALID_DEFAULT_S unless the
   * SM says otherwise) closes. */
  if (!cfg->no_reattest) {
    unsigned every =
        cfg->reattest_s ? cfg->reattest_s : TEEX_WORKER_REATTEST_DEFAULT_S;
    w.reattest_every_s = every;
    uv_timer_init(&loop, &w.reattest);
    w.reattest.data = &w;
    /* The first one soon, to learn the SM's window; then every `every`
     * seconds, or sooner when the window asks (reattest_done). */
    uv_timer_start(&w.reattest, on_reattest, 1000, (uint64_t)every * 1000);
    w.reattest_on = 1;
  }
  if ((rc = write_ready(&w, err)) != 0)
    goto out;
  TEEX_INFO("worker", "serving", "address=%s port=%d measurement=%s",
            w.address_hex, teex_rpc_server_port(w.user_srv), w.measurement_hex);
  uv_run(&loop, UV_RUN_DEFAULT);
  rc = 0;
out:
  w.stopping = 1;
  if (w.user_srv)
    teex_rpc_server_close(w.user_srv);
  if (w.disp != NULL)
    teex_rpc_client_close(w.disp);
  if (w.retry_on) {
    uv_timer_stop(&w.retry);
    uv_close((uv_handle_t *)&w.retry, NULL);
  }
  if (w.hb_on) {
    uv_timer_stop(&w.hb);
    uv_close((uv_handle_t *)&w.hb, NULL);
  }
  if (w.reattest_on) {
    uv_timer_stop(&w.reattest);
    uv_close((uv_handle_t *)&w.reattest, NULL);
  }
  teex_ratls_refresher_close(refresher);
  uv_run(&loop, UV_RUN_DEFAULT); /* thread-pool jobs end; handles close */
  uv_loop_close(&loop);
  for (size_t i = 0; i < w.nsvcs; i++)
    svc_free(w.svcs[i]);
  while (w.persist_head != NULL) {
    struct persist_item *it = w.persist_head;
    w.persist_head = it->next;
    free(it->rcpt);
    free(it);
  }
  while (w.reports != NULL) {
    struct report *r = w.reports;
    w.reports = r->next;
    free(r->payload);
    free(r);
  }
  teex_tls_ctx_free(w.disp_ctx);
  teex_tls_ctx_free(w.ds_ctx);
  teex_tls_ctx_free(w.user_ctx);
  EVP_PKEY_free(w.key);
  X509_free(w.cert);
  teex_ipfs_close(w.ipfs);
  teex_task_set_free(w.seen);
  teex_secret_free(w.sk);
  teex_store_close(w.store);
  return rc;
}
