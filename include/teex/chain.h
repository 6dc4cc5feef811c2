/* The teex contracts from C: deploy them (from the bytecode libteex carries,
 * include/teex/contracts.h), record their addresses in a network's
 * configuration, list services and read the catalogue (the app store),
 * register and revoke enclaves, deposit and withdraw escrow, settle batches
 * and check receipts against a settled batch's root (docs/settlement.md v1),
 * and the data providers' dataset listings and approvals.
 *
 * Transactions go through an eth sender (include/teex/eth_sender.h: nonces,
 * fees, receipts, revert reasons); reads through an eth RPC handle. A revert
 * comes back as TEEX_ECHAIN with the contract's custom error decoded
 * ("custom error InsufficientEscrow(0xab..,500,100)"). Nothing here keeps
 * state between calls but what the caller passes in. */
#ifndef TEEX_CHAIN_H
#define TEEX_CHAIN_H

#include <stddef.h>
#include <stdint.h>

#include "teex/config.h"
#include "teex/error.h"
#include "teex/eth_rpc.h"
#include "teex/eth_sender.h"
#include "teex/ledger.h"
#include "teex/settle.h"

#define TEEX_CHAIN_MAX_CID 128         /* bytes, as the contracts enforce */
#define TEEX_CHAIN_MAX_CATALOGUE 65536 /* services read from events */
#define TEEX_CHAIN_TX_TIMEOUT_MS 60000 /* default wait for a receipt */

/* Where the contracts of one network live. */
struct teex_chain_addrs {
  uint64_t chain_id;
  uint8_t enclave_registry[20];
  uint8_t service_registry[20];
  uint8_t settlement[20];
  uint8_t dataset_registry[20]; /* all zero: none (an older deployment) */
  uint8_t ds_anchor[20];        /* all zero: none (include/teex/ds_anchor.h) */
  uint64_t deploy_block;        /* first block to scan for events */
};

/* 1 when a has a DatasetRegistry address. */
int teex_chain_has_datasets(const struct teex_chain_addrs *a);

struct teex_chain_deploy_opts {
  uint8_t service_manager[20]; /* the SM enclave's address, fixed for good */
  uint64_t withdrawal_delay;   /* seconds between request and withdrawal */
  unsigned timeout_ms;         /* per receipt; 0: TEEX_CHAIN_TX_TIMEOUT_MS */
};

/* Deploys EnclaveRegistry, ServiceRegistry, Settlement, DatasetRegistry and
 * DsAnchor from s's account and fills out. */
int teex_chain_deploy(struct teex_eth_sender *s,
                      const struct teex_chain_deploy_opts *o,
                      struct teex_chain_addrs *out, struct teex_err *err);

/* A network's chain file, DIR/chain.conf (what `teex up` and the Service
 * Manager read): top-level keys rpc_url, chain_id, enclave_registry,
 * service_registry, settlement, deploy_block and (optional, for networks
 * deployed before them) dataset_registry and ds_anchor. */
#define TEEX_CHAIN_CONF "chain.conf"
#define TEEX_CHAIN_DEFAULT_RPC "http://127.0.0.1:8545"

/* Reads the contract addresses from a loaded chain.conf. TEEX_ECONFIG
 * naming the missing or bad key ("... (teex chain deploy)"). */
int teex_chain_addrs_from_config(const struct teex_config *c,
                                 struct teex_chain_addrs *out,
                                 struct teex_err *err);
/* Writes chain.conf at path: rpc_url (may be NULL: left out), chain_id, and
 * when a is not NULL the contract addresses. The file is replaced
 * atomically (written beside it, then renamed). */
int teex_chain_conf_save(const char *path, const char *rpc_url,
                         uint64_t chain_id, const struct teex_chain_addrs *a,
                         struct teex_err *err);

/* Checks that code is deployed at the contracts' addresses and that the node's
 * chain id matches a's. TEEX_ECONFIG otherwise. */
int teex_chain_check(struct teex_eth_rpc *rpc, const struct teex_chain_addrs *a,
                     struct teex_err *err);

/* Makes rpc describe reverts with the contracts' custom errors. */
void teex_chain_use_errors(struct teex_eth_rpc *rpc);
/* The custom error signatures of all contracts ("ZeroRoot()", ...),
 * NULL-terminated, static. */
const char *const *teex_chain_error_sigs(void);

/* ---- services (the app store) ---- */

struct teex_chain_service {
  uint8_t service_id[32];
  uint8_t provider[20];
  uint32_t version;
  int is_private;
  int retired;
  uint8_t signing_key[20];    /* address of the service's secp256k1 key */
  uint8_t encryption_key[32]; /* X25519 public key */
  uint8_t image_hash[32];
  teex_amount price;        /* wei per call, paid by the user */
  teex_amount remuneration; /* wei per call, paid to the worker */
  char metadata_cid[TEEX_CHAIN_MAX_CID + 1];
};

/* Lists svc (version 1) from s's account, which must be svc->provider;
 * sm_sig (r || s || v) is the SM's ServiceListing signature. */
int teex_chain_list_service(struct teex_eth_sender *s,
                            const struct teex_chain_addrs *a,
                            const struct teex_chain_service *svc,
                            const uint8_t sm_sig[65], unsigned timeout_ms,
                            struct teex_err *err);
/* Publishes version svc->version (the current one + 1) of svc->service_id:
 * new metadata CID, keys and image hash, SM-signed. */
int teex_chain_publish_version(struct teex_eth_sender *s,
                               const struct teex_chain_addrs *a,
                               const struct teex_chain_service *svc,
                               const uint8_t sm_sig[65], unsigned timeout_ms,
                               struct teex_err *err);
int teex_chain_retire_service(struct teex_eth_sender *s,
                              const struct teex_chain_addrs *a,
                              const uint8_t service_id[32], unsigned timeout_ms,
                              struct teex_err *err);
/* Private services: only the provider and the addresses it allows may
 * invoke them (ServiceRegistry.setPrivate / setAllowed; the provider's
 * account only). An allow-list change names 1..TEEX_CHAIN_MAX_ACCESS_LIST
 * addresses; it is kept while the service is public and applies again when
 * it turns private. */
#define TEEX_CHAIN_MAX_ACCESS_LIST 256
int teex_chain_set_private(struct teex_eth_sender *s,
                           const struct teex_chain_addrs *a,
                           const uint8_t service_id[32], int is_private,
                           unsigned timeout_ms, struct teex_err *err);
int teex_chain_set_allowed(struct teex_eth_sender *s,
                           const struct teex_chain_addrs *a,
                           const uint8_t service_id[32],
                           const uint8_t (*callers)[20], size_t n, int allowed,
                           unsigned timeout_ms, struct teex_err *err);
/* *allowed = 1 when caller may invoke the service now
 * (ServiceRegistry.canInvoke: listed, not retired, and public, or caller is
 * the provider or allow-listed). An unknown service answers 0. */
int teex_chain_can_invoke(struct teex_eth_rpc *rpc,
                          const struct teex_chain_addrs *a,
                          const uint8_t service_id[32],
                          const uint8_t caller[20], int *allowed,
                          struct teex_err *err);
/* The current record of one service. TEEX_ENOTFOUND when never listed. */
int teex_chain_get_service(struct teex_eth_rpc *rpc,
                           const struct teex_chain_addrs *a,
                           const uint8_t service_id[32],
                           struct teex_chain_service *out,
                           struct teex_err *err);
/* The catalogue rebuilt from the registry's events alone (listings,
 * versions, prices, visibility, retirement), in listing order. *out is
 * owned by the caller (free()). */
int teex_chain_catalogue(struct teex_eth_rpc *rpc,
                         const struct teex_chain_addrs *a,
                         struct teex_chain_service **out, size_t *n,
                         struct teex_err *err);

/* ---- enclaves ---- */

int teex_chain_register_enclave(struct teex_eth_sender *s,
                                const struct teex_chain_addrs *a,
                                const uint8_t enclave[20], uint8_t role,
                                const uint8_t measurement[32],
                                uint64_t issued_at, const uint8_t sm_sig[65],
                                unsigned timeout_ms, struct teex_err *err);
int teex_chain_revoke_enclave(struct teex_eth_sender *s,
                              const struct teex_chain_addrs *a,
                              const uint8_t enclave[20],
                              const uint8_t sm_sig[65], unsigned timeout_ms,
                              struct teex_err *err);
/* *active = 1 when enclave is registered in role and not revoked. */
int teex_chain_enclave_active(struct teex_eth_rpc *rpc,
                              const struct teex_chain_addrs *a,
                              const uint8_t enclave[20], uint8_t role,
                              int *active, struct teex_err *err);

/* ---- escrow ---- */

struct teex_chain_escrow {
  teex_amount balance;
  teex_amount settled; /* highest cumulative authorisation honoured */
  teex_amount pending_withdrawal;
  uint64_t unlock_at; /* 0: no withdrawal pending */
};

int teex_chain_deposit(struct teex_eth_sender *s,
                       const struct teex_chain_addrs *a,
                       const uint8_t dispatcher[20], teex_amount amount,
                       unsigned timeout_ms, struct teex_err *err);
int teex_chain_request_withdrawal(struct teex_eth_sender *s,
                                  const struct teex_chain_addrs *a,
                                  const uint8_t dispatcher[20],
                                  teex_amount amount, unsigned timeout_ms,
                                  struct teex_err *err);
int teex_chain_complete_withdrawal(struct teex_eth_sender *s,
                                   const struct teex_chain_addrs *a,
                                   const uint8_t dispatcher[20],
                                   unsigned timeout_ms, struct teex_err *err);
int teex_chain_cancel_withdrawal(struct teex_eth_sender *s,
                                 const struct teex_chain_addrs *a,
                                 const uint8_t dispatcher[20],
                                 unsigned timeout_ms, struct teex_err *err);
int teex_chain_get_escrow(struct teex_eth_rpc *rpc,
                          const struct teex_chain_addrs *a,
                          const uint8_t user[20], const uint8_t dispatcher[20],
                          struct teex_chain_escrow *out, struct teex_err *err);
/* Pays amount of the sender's credited balance to `to`. */
int teex_chain_withdraw_credits(struct teex_eth_sender *s,
                                const struct teex_chain_addrs *a,
                                const uint8_t to[20], teex_amount amount,
                                unsigned timeout_ms, struct teex_err *err);
int teex_chain_get_credits(struct teex_eth_rpc *rpc,
                           const struct teex_chain_addrs *a,
                           const uint8_t payee[20], teex_amount *out,
                           struct teex_err *err);

/* ---- settlement ---- */

struct teex_chain_credit {
  uint8_t payee[20];
  teex_amount amount;
};

struct teex_chain_batch {
  uint8_t batch_id[32];
  uint8_t root[32];
  uint32_t task_count;
  const char *cid; /* the batch content's CID, 1..128 bytes */
  const struct teex_payment_auth *auths;
  size_t n_auths;
  const struct teex_chain_credit *credits;
  size_t n_credits;
};

/* Settles b from the dispatcher enclave's sender. *gas_used (may be NULL)
 * gets the transaction's gas. */
int teex_chain_settle_batch(struct teex_eth_sender *s,
                            const struct teex_chain_addrs *a,
                            const struct teex_chain_batch *b,
                            unsigned timeout_ms, uint64_t *gas_used,
                            struct teex_err *err);

struct teex_chain_batch_record {
  uint8_t root[32]; /* all zero: never settled */
  uint8_t dispatcher[20];
  uint64_t settled_at;
  uint32_t task_count;
};
int teex_chain_get_batch(struct teex_eth_rpc *rpc,
                         const struct teex_chain_addrs *a,
                         const uint8_t batch_id[32],
                         struct teex_chain_batch_record *out,
                         struct teex_err *err);
/* Asks the Settlement contract whether receipt r (with proof, nproof
 * 32-byte hashes) is in batch batch_id: *included = 1 or 0. */
int teex_chain_verify_receipt(struct teex_eth_rpc *rpc,
                              const struct teex_chain_addrs *a,
                              const uint8_t batch_id[32],
                              const struct teex_receipt *r,
                              const uint8_t *proof, size_t nproof,
                              int *included, struct teex_err *err);

/* ---- batch content (docs/settlement.md §4.2), stored on IPFS ---- */

#define TEEX_CHAIN_BATCH_MAGIC_TEXT "teex/settlement/v1/batch"
#define TEEX_CHAIN_BATCH_CONTENT_MAX (64u << 20)

struct teex_chain_batch_content {
  uint64_t chain_id;
  uint8_t settlement[20];
  uint8_t dispatcher[20];
  const struct teex_chain_batch *batch; /* id, root, auths, credits */
  const struct teex_receipt *receipts;  /* leaf order */
  const uint8_t (*receipt_sigs)[65];    /* the workers' r || s || v */
  size_t n_receipts;
};

/* Appends the ABI encoding of the batch content (what Solidity's
 * abi.encode(content) gives: an offset word, then the tuple). out should be
 * initialised with a maximum of TEEX_CHAIN_BATCH_CONTENT_MAX. TEEX_EINVAL
 * when the receipt count does not match batch->task_count. */
int teex_chain_batch_content_encode(const struct teex_chain_batch_content *c,
                                    struct teex_buf *out, struct teex_err *err);

/* The ABI type of the batch content, for decoders. */
extern const char teex_chain_batch_content_type[];

/* ---- datasets (DatasetRegistry) ----
 * Every function below fails with TEEX_ECONFIG when a has no dataset
 * registry ("redeploy the contracts"). */

#define TEEX_CHAIN_MAX_DATASET_NAME 64 /* bytes, as the contract enforces */
#define TEEX_CHAIN_MAX_APPROVALS 64    /* pairs per approve/remove call */
#define TEEX_CHAIN_MAX_DATASETS 65536  /* listings read from events */
#define TEEX_CHAIN_MAX_DATASET_APPROVALS 4096 /* pairs read per dataset */

struct teex_chain_dataset {
  uint8_t dataset_id[32];
  uint8_t provider[20];
  int revoked;
  uint64_t expires_at; /* unix seconds; 0: never */
  uint64_t plaintext_size;
  uint32_t max_uses;         /* 0: unlimited */
  uint64_t max_output_bytes; /* 0: no cap */
  teex_amount price;         /* wei per use */
  uint8_t plaintext_hash[32];
  char name[TEEX_CHAIN_MAX_DATASET_NAME + 1];
  char ciphertext_cid[TEEX_CHAIN_MAX_CID + 1];
};

/* One approval: a service at an exact image hash. */
struct teex_chain_approval {
  uint8_t service_id[32];
  uint8_t image_hash[32];
};

/* The id of provider's dataset called name: keccak256("teex/dataset-id/v1"
 * || provider || name), as DatasetRegistry.datasetIdOf computes it. */
void teex_dataset_id(const uint8_t provider[20], const char *name,
                     uint8_t out[32]);

/* Lists d (name, CID, plaintext hash and size, price, terms) from s's
 * account; the id is teex_dataset_id(sender, d->name), written to
 * d->dataset_id. TEEX_EINVAL for a bad name or CID before anything is
 * sent. */
int teex_chain_list_dataset(struct teex_eth_sender *s,
                            const struct teex_chain_addrs *a,
                            struct teex_chain_dataset *d, unsigned timeout_ms,
                            struct teex_err *err);
/* Adds (approve != 0) or removes the n pairs (1..TEEX_CHAIN_MAX_APPROVALS)
 * for dataset_id; the sender must be its provider. */
int teex_chain_approve_dataset(struct teex_eth_sender *s,
                               const struct teex_chain_addrs *a,
                               const uint8_t dataset_id[32],
                               const struct teex_chain_approval *pairs,
                               size_t n, int approve, unsigned timeout_ms,
                               struct teex_err *err);
/* Revokes dataset_id for good. */
int teex_chain_revoke_dataset(struct teex_eth_sender *s,
                              const struct teex_chain_addrs *a,
                              const uint8_t dataset_id[32], unsigned timeout_ms,
                              struct teex_err *err);
/* The current record. TEEX_ENOTFOUND when never listed. */
int teex_chain_get_dataset(struct teex_eth_rpc *rpc,
                           const struct teex_chain_addrs *a,
                           const uint8_t dataset_id[32],
                           struct teex_chain_dataset *out,
                           struct teex_err *err);
/* *usable = 1 when a task of service_id at image_hash may read the dataset
 * now (listed, not revoked, not expired at the latest block, pair
 * approved). The use count is the Service Manager's to check. */
int teex_chain_dataset_usable(struct teex_eth_rpc *rpc,
                              const struct teex_chain_addrs *a,
                              const uint8_t dataset_id[32],
                              const uint8_t service_id[32],
                              const uint8_t image_hash[32], int *usable,
                              struct teex_err *err);
/* *approved = 1 when the provider approved exactly (service_id,
 * image_hash) for the dataset (whatever its expiry or revocation). */
int teex_chain_dataset_approved(struct teex_eth_rpc *rpc,
                                const struct teex_chain_addrs *a,
                                const uint8_t dataset_id[32],
                                const uint8_t service_id[32],
                                const uint8_t image_hash[32], int *approved,
                                struct teex_err *err);
/* All listings rebuilt from the registry's events (listing, price,
 * revocation), in listing order. *out owned by the caller (free()). */
int teex_chain_datasets(struct teex_eth_rpc *rpc,
                        const struct teex_chain_addrs *a,
                        struct teex_chain_dataset **out, size_t *n,
                        struct teex_err *err);
/* The pairs approved for dataset_id now, from its approval events (added,
 * then removed). *out owned by the caller (free()); may be NULL when *n is
 * 0. */
int teex_chain_dataset_approvals(struct teex_eth_rpc *rpc,
                                 const struct teex_chain_addrs *a,
                                 const uint8_t dataset_id[32],
                                 struct teex_chain_approval **out, size_t *n,
                                 struct teex_err *err);

#endif
