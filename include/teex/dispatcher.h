/* The dispatcher daemon (`teex dispatcher`, docs/network.md): workers
 * register and heartbeat over mutual RA-TLS and report receipts; users
 * submit EIP-712 payment authorisations over server-only RA-TLS and get
 * signed assignments; receipts are settled on chain in batches whose content
 * goes to IPFS. The decisions are the I/O-free cores (scheduler.h,
 * ledger.h, statements.h, settle.h); this module wires them to the network,
 * the chain and a sealed store. */
#ifndef TEEX_DISPATCHER_H
#define TEEX_DISPATCHER_H

#include <stddef.h>
#include <stdint.h>

#include "teex/buf.h"
#include "teex/error.h"
#include "teex/ipfs.h"
#include "teex/ledger.h"
#include "teex/settle.h"
#include "teex/statements.h"
#include "teex/tee.h"
#include "teex/tee_policy.h"

/* ---- the chain, as the dispatcher needs it ----
 *
 * A small interface so the daemon does not depend on how the Settlement and
 * ServiceRegistry contracts are reached: teex_dispatcher_chain_file is a
 * local file (development and tests); a contract-backed implementation
 * plugs in the same way. Every call may block; a call that fails returns a
 * TEEX_E* code (TEEX_ECHAIN when the chain cannot be reached) and the
 * daemon logs it and carries on. */

/* A service version's price split, as listed on chain. */
struct teex_dispatcher_service {
  uint8_t provider[20];
  teex_amount price;        /* what a call costs the user */
  teex_amount remuneration; /* the worker's share; provider gets the rest */
  int is_private; /* only the provider and allowed callers (may_invoke) */
};

/* A dataset a task may read, as listed on chain now. */
struct teex_dispatcher_dataset {
  uint8_t provider[20]; /* the data share's payee */
  teex_amount price;    /* wei per use */
};

struct teex_dispatcher_credit {
  uint8_t payee[20];
  teex_amount amount;
};

/* One settleBatch call (docs/settlement.md §4.1). */
struct teex_dispatcher_batch {
  uint8_t batch_id[32];
  uint8_t root[32];
  uint32_t task_count;
  char cid[TEEX_CID_STR_SIZE];
  const struct teex_payment_auth *auths; /* one per user */
  size_t nauths;
  const struct teex_dispatcher_credit *credits; /* one per payee */
  size_t ncredits;
};

struct teex_dispatcher_chain_ops {
  /* The user's escrow held for this dispatcher and the cumulative amount
   * settled on chain for (user, dispatcher). */
  int (*escrow)(void *arg, const uint8_t user[20], teex_amount *escrow,
                teex_amount *settled, struct teex_err *err);
  /* The listing of (service, image): TEEX_ENOTFOUND when there is none. */
  int (*service)(void *arg, const uint8_t service_id[32],
                 const uint8_t image_hash[32],
                 struct teex_dispatcher_service *out, struct teex_err *err);
  /* Submits settleBatch and returns once it is confirmed (0) or refused. */
  int (*settle)(void *arg, const struct teex_dispatcher_batch *b,
                struct teex_err *err);
  /* *active = 1 when addr is registered on chain as a worker enclave and
   * not revoked. May be NULL: workers are then trusted on their RA-TLS
   * evidence alone. */
  int (*worker_active)(void *arg, const uint8_t addr[20], int *active,
                       struct teex_err *err);
  /* Called once the daemon has its enclave key: the chain sends settleBatch
   * from this account and reads escrow for this dispatcher. May be NULL. */
  int (*bind)(void *arg, const uint8_t sk[32], const uint8_t addr[20],
              struct teex_err *err);
  void (*close)(void *arg);
  /* The root recorded on chain for batch_id, all zero when no such batch
   * was settled: how a restarted dispatcher learns that a batch it sent
   * before crashing was confirmed. May be NULL (no such recovery). */
  int (*batch_root)(void *arg, const uint8_t batch_id[32], uint8_t root[32],
                    struct teex_err *err);
  /* For a private service: *allowed = 1 when caller (not the provider,
   * which the daemon lets through itself) is on the service's allow-list
   * now. May be NULL: then only the provider may invoke a private
   * service. */
  int (*may_invoke)(void *arg, const uint8_t service_id[32],
                    const uint8_t caller[20], int *allowed,
                    struct teex_err *err);
  /* The listing of dataset_id when a task of (service_id, image_hash) may
   * read it now: TEEX_ENOTFOUND (never listed), TEEX_EPOLICY (revoked),
   * TEEX_EEXPIRED, TEEX_EPERM (this exact image not approved), each with a
   * message. May be NULL: tasks with datasets are then refused. */
  int (*dataset)(void *arg, const uint8_t dataset_id[32],
                 const uint8_t service_id[32], const uint8_t image_hash[32],
                 struct teex_dispatcher_dataset *out, struct teex_err *err);
};

struct teex_dispatcher_chain {
  const struct teex_dispatcher_chain_ops *ops;
  void *arg;
};

/* A chain kept in a text file (for development and tests; no security):
 *   service 0x<service id> 0x<image hash> <price> <remuneration> 0x<provider>
 *           [private]
 *   allow 0x<service id> 0x<caller>   (may invoke the private service)
 *   escrow 0x<user> <escrow wei> <settled cumulative wei>
 *   batch 0x<batch id> 0x<root> <task count> <cid>
 * '#' starts a comment. The file is read on every call (another process may
 * change it; write it atomically with rename). settle applies the contract's
 * rules (signatures, debit = cumulative increase, escrow, debits == credits,
 * new batch id) and rewrites the file atomically; credits are not kept.
 * The file belongs to one dispatcher (escrow lines are that dispatcher's);
 * domain is the Settlement domain the signatures are checked in. */
int teex_dispatcher_chain_file(const char *path,
                               const struct teex_domain *domain,
                               struct teex_dispatcher_chain *out,
                               struct teex_err *err);

/* The Settlement and ServiceRegistry contracts through an Ethereum node at
 * rpc_url (include/teex/chain.h). Reads need nothing; settleBatch is sent
 * from the dispatcher enclave's own key (bound by the daemon), so that
 * address must be registered on chain as a dispatcher (EnclaveRegistry,
 * with the SM's statement) and hold ether for gas. A (service, image) is
 * listed when image is the service's current image and it is not retired;
 * the allow-list of a private service is read with canInvoke.
 * Nothing is requested here: a node that is down fails the calls, not the
 * open. */
struct teex_chain_addrs;
int teex_dispatcher_chain_eth(const char *rpc_url,
                              const struct teex_chain_addrs *addrs,
                              struct teex_dispatcher_chain *out,
                              struct teex_err *err);

/* ---- batches ---- */

/* keccak256(abi.encode(dispatcher, seq)): the recommended batch id. */
void teex_dispatcher_batch_id(const uint8_t dispatcher[20], uint64_t seq,
                              uint8_t out[32]);

/* ---- the daemon ---- */

#define TEEX_DISPATCHER_WORKER_RECHECK_DEFAULT_S 10u

struct teex_dispatcher_config {
  struct teex_tee *tee;               /* role "dispatcher"; borrowed */
  const char *state_dir;              /* sealed store (created) */
  struct teex_domain domain;          /* chain id + Settlement address */
  struct teex_tee_policy policy;      /* what workers must prove */
  struct teex_dispatcher_chain chain; /* borrowed; not closed */
  struct teex_ipfs_backend *ipfs;     /* batch content; borrowed */
  const char *worker_listen;          /* mutual RA-TLS */
  const char *user_listen;            /* server-only RA-TLS */
  const char *ready_file;             /* ports and address; may be NULL */
  unsigned cert_refresh_s;            /* renew the RA-TLS certificate this often
                                        (0: TEEX_RATLS_REFRESH_DEFAULT_S) */
  uint64_t heartbeat_timeout_ms;      /* 0: 10 s */
  uint64_t settle_interval_ms;        /* 0: 60 s */
  uint32_t settle_receipts;           /* settle at this many; 0: 100 */
  uint32_t assignment_ttl_s;          /* 0: 300 */
  uint32_t receipt_grace_s;           /* after expiry a task fails; 0: 60 */
  uint32_t max_workers;               /* 0: 10000 */
  uint32_t max_tasks;                 /* 0: 100000 */
  /* With a chain that has worker_active: a registered worker is read
   * again from the EnclaveRegistry at most this often (seconds; 0:
   * TEEX_DISPATCHER_WORKER_RECHECK_DEFAULT_S), at its heartbeats and receipts;
   * once revoked there it is dropped and its receipts refused. */
  uint32_t worker_recheck_s;
  /* When sm_addr is set: at start, get this dispatcher's EnclaveRegistration
   * signed by the SM (its enclave endpoint, verified against sm_policy) and
   * write it to registration_file for the operator to submit on chain. */
  const char *sm_addr;
  const struct teex_tee_policy *sm_policy;
  const char *registration_file;
  /* State in TEE-DS (docs/internals/dispatcher.md, "State"): the client
   * addresses of the group's replicas (n_ds_replicas 0: the sealed local
   * store only), what their evidence must satisfy (role ds), and the
   * namespace the group maps the dispatcher's role to (NULL:
   * "dispatcher"). Only the identity stays in the sealed store; local
   * records are moved to TEE-DS once, at the first start with a group. */
  const char *const *ds_replicas;
  size_t n_ds_replicas;
  const struct teex_tee_policy *ds_policy;
  const char *ds_ns;
  uint32_t ds_timeout_ms; /* per state operation; 0: 3000 */
};

/* Runs the daemon until SIGTERM or SIGINT. 0 on a clean stop. */
int teex_dispatcher_serve(const struct teex_dispatcher_config *cfg,
                          struct teex_err *err);

#endif
