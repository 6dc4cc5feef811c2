/* The worker daemon (`teex worker run`, docs/network.md "Worker"): an
 * enclave that fetches service images and keys from the Service Manager
 * when first needed, keeps them sealed, keeps warm sandboxed executors, and
 * runs users' tasks on its server-only RA-TLS endpoint — checking each
 * dispatcher-signed assignment, signing the result with the service key
 * and the receipt with its own enclave key.
 *
 * The assignment check and the request decoding are I/O-free (below) so
 * they are unit-tested and fuzzed; teex_worker_serve is the daemon. */
#ifndef TEEX_WORKER_H
#define TEEX_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "teex/chain.h"
#include "teex/error.h"
#include "teex/settle.h"
#include "teex/statements.h"
#include "teex/tee.h"

#define TEEX_WORKER_MAX_DISPATCHERS 16
#define TEEX_WORKER_MAX_SLOTS 64  /* executors (concurrent tasks) per image */
#define TEEX_WORKER_MAX_IMAGES 64 /* (service, image) pairs held */
/* The longest an assignment may still be valid when it reaches the worker:
 * the worker remembers task ids until their assignment expires, so this
 * bounds that memory's lifetime (seconds). */
#define TEEX_WORKER_MAX_ASSIGNMENT_TTL (24u * 3600u)
#define TEEX_WORKER_REATTEST_DEFAULT_S 3600u

/* The TLS exporter label of the SM's freshness proof (= TEEX_SM_FRESH_LABEL;
 * see include/teex/sm_server.h). */

struct teex_worker_config {
  struct teex_tee *tee;  /* role "worker"; borrowed */
  const char *state_dir; /* sealed store (created) */
  const char *listen;    /* user endpoint (server-only RA-TLS) */
  const char *sm_addr;   /* the SM's enclave endpoint, "host:port" */
  const struct teex_tee_policy *sm_policy; /* what the SM must prove */
  const char *ipfs_dir;                    /* local blockstore, or NULL */
  const char *ipfs_api; /* Kubo RPC API URL, or NULL (one of the two) */
  const char *exe_path; /* the teex binary the executors run (NULL:
                           /proc/self/exe) */
  const char *registration_file; /* SM-signed EnclaveRegistration written
                                    here (may be NULL) */
  const char *ready_file;        /* written once serving (may be NULL) */
  unsigned cert_refresh_s;       /* renew the RA-TLS certificate this often
                                   (0: TEEX_RATLS_REFRESH_DEFAULT_S) */
  /* Optional: register with this dispatcher and report receipts to it
   * (mutual RA-TLS). */
  const char *dispatcher_endpoint;
  const char *public_endpoint; /* "host:port" users reach this worker at,
                                  given to the dispatcher (NULL:
                                  127.0.0.1:<listening port>) */
  const struct teex_tee_policy *dispatcher_policy;
  struct teex_domain settlement; /* chain id + Settlement contract (receipt
                                    EIP-712 domain) */
  uint8_t dispatchers[TEEX_WORKER_MAX_DISPATCHERS][20]; /* trusted signers */
  size_t n_dispatchers;
  /* Optional: an Ethereum JSON-RPC URL and the network's contracts. Then
   * each service's split comes from its listing in the ServiceRegistry,
   * read when the image is loaded (worker_amount = the listed
   * remuneration), and remuneration below is not used. */
  const char *chain_rpc;
  struct teex_chain_addrs chain;
  teex_amount remuneration; /* worker_amount per task without chain_rpc */
  /* Optional: teex.kv. The TEE-DS replicas' client addresses and the
   * evidence they must show (role ds); each service's tasks reach its own
   * namespace with the SM's grant from sm.FetchKeys. */
  const char *const *ds_replicas;
  size_t n_ds_replicas;
  const struct teex_tee_policy *ds_policy;
  /* Re-attestation with the SM (sm.Attest) every reattest_s seconds (0:
   * TEEX_WORKER_REATTEST_DEFAULT_S, a quarter of the SM's default validity
   * window); no_reattest: never (the SM then refuses keys and leases once
   * the window since registration has passed). */
  unsigned reattest_s;
  int no_reattest;
  unsigned slots;            /* executors per image; 0: 2 */
  int accept_weaker_sandbox; /* run executors without Landlock */
};

/* Runs the daemon until SIGTERM or SIGINT; 0 on a clean stop. Errors
 * before serving (state, identity, listen) are returned with err set. */
int teex_worker_serve(const struct teex_worker_config *cfg,
                      struct teex_err *err);

/* ---- I/O-free core ---- */

/* What the worker checks of an assignment before running it. */
struct teex_worker_policy {
  uint64_t chain_id;
  uint8_t self[20]; /* this worker's enclave address */
  const uint8_t (*dispatchers)[20];
  size_t n_dispatchers;
};

/* Checks a: its signature recovers to a's dispatcher, which is one of
 * p->dispatchers; a's worker is p->self; a's chain is p->chain_id; it has
 * not expired at now and does not live past now +
 * TEEX_WORKER_MAX_ASSIGNMENT_TTL. Does not check replay (the caller's task
 * id memory). TEEX_EBADSIG (signature, unknown dispatcher), TEEX_EPERM
 * (another worker), TEEX_EINVAL (chain, too long-lived), TEEX_EEXPIRED;
 * one-line reason in err. */
int teex_worker_check_assignment(const struct teex_worker_policy *p,
                                 const struct teex_assignment *a,
                                 const uint8_t sig[65], uint64_t now,
                                 struct teex_err *err);

/* A decoded worker.Run request; input points into the caller's buffer. */
struct teex_worker_run_req {
  struct teex_assignment assignment;
  uint8_t dispatcher_sig[65];
  uint8_t input_salt[32];
  const uint8_t *input;
  size_t input_len;
  /* The task's datasets: ids (32 each, in order) whose keccak256 is
   * assignment.datasets_hash (checked by the decoder); n_datasets 0 and
   * datasets_hash all zero for a task without datasets. */
  const uint8_t *dataset_ids;
  size_t n_datasets;
  void *msg_; /* the protobuf message input points into */
};

/* Decodes and bounds-checks a worker.Run payload (every byte field its
 * exact size, the price a 128-bit amount, the input at most
 * TEEX_EXEC_INPUT_MAX, at most TEEX_EXEC_DATASETS_MAX dataset ids hashing
 * to the datasets hash). TEEX_EFORMAT / TEEX_EINVAL / TEEX_ETOOBIG. On
 * success release with teex_worker_run_req_free. */
int teex_worker_run_req_decode(const uint8_t *p, size_t n,
                               struct teex_worker_run_req *out,
                               struct teex_err *err);
void teex_worker_run_req_free(struct teex_worker_run_req *r);

/* A set of task ids with their expiry (the replay memory). */
struct teex_task_set;
int teex_task_set_new(struct teex_task_set **out);
void teex_task_set_free(struct teex_task_set *s);
/* Adds id (expiring at expires_at): 0, TEEX_EREPLAY when present,
 * TEEX_ENOMEM. Expired entries are dropped as now passes them. */
int teex_task_set_add(struct teex_task_set *s, const uint8_t id[32],
                      uint64_t expires_at, uint64_t now);
size_t teex_task_set_count(const struct teex_task_set *s);

#endif
