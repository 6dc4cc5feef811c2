/* The EIP-712 statements of settlement v1 (docs/settlement.md §1–§2), hashed
 * with their fixed layouts: payment authorisations (users), receipts (worker
 * enclaves), service listings and enclave registrations/revocations (the
 * Service Manager). Daemons use these rather than a generic typed-data
 * encoder: the layouts are frozen, and a fixed encoding cannot be fed a
 * type string that means something else. Tested against ethers. */
#ifndef TEEX_STATEMENTS_H
#define TEEX_STATEMENTS_H

#include <stddef.h>
#include <stdint.h>

#include "teex/ledger.h"
#include "teex/settle.h"

/* The EIP-712 domain: name "teex", version "1", chainId, verifyingContract. */
struct teex_domain {
  uint64_t chain_id;
  uint8_t verifying_contract[20];
};

void teex_domain_separator(const struct teex_domain *d, uint8_t out[32]);

/* digest = keccak256(0x19 0x01 || domainSeparator || structHash). */
void teex_stmt_payment_auth_digest(const struct teex_domain *d,
                                   const struct teex_payment_auth *a,
                                   uint8_t out[32]);
void teex_stmt_receipt_digest(const struct teex_domain *d,
                              const struct teex_receipt *r, uint8_t out[32]);

struct teex_service_listing {
  uint8_t service_id[32];
  uint8_t provider[20];
  uint32_t version;
  uint8_t signing_key[20];    /* address of the service's secp256k1 key */
  uint8_t encryption_key[32]; /* the service's X25519 public key */
  uint8_t image_hash[32];
};
void teex_stmt_service_listing_digest(const struct teex_domain *d,
                                      const struct teex_service_listing *l,
                                      uint8_t out[32]);

enum teex_enclave_role { TEEX_ENCLAVE_WORKER = 1, TEEX_ENCLAVE_DISPATCHER = 2 };
void teex_stmt_enclave_registration_digest(const struct teex_domain *d,
                                           const uint8_t enclave[20],
                                           uint8_t role,
                                           const uint8_t measurement[32],
                                           uint64_t issued_at, uint8_t out[32]);
void teex_stmt_enclave_revocation_digest(const struct teex_domain *d,
                                         const uint8_t enclave[20],
                                         uint8_t out[32]);

/* ---- off-chain statements of the network (docs/network.md) ----
 * Plain tagged keccak256 digests (never seen by a wallet or contract). */

/* An assignment: the dispatcher (its enclave key) tells a user which worker
 * runs a task; the worker checks it before running. */
struct teex_assignment {
  uint64_t chain_id;
  uint8_t dispatcher[20];
  uint8_t worker[20];
  uint8_t user[20];
  uint8_t task_id[32];
  uint8_t service_id[32];
  uint8_t image_hash[32];
  teex_amount price;
  uint64_t expires_at; /* unix seconds */
  /* The task's datasets: teex_stmt_datasets_hash of their ids, in task
   * order (what the payment authorisation's datasetsHash is). All zero: a
   * task without datasets. */
  uint8_t datasets_hash[32];
};
/* keccak256("teex/assignment/v1" || chain id (8, BE) || dispatcher ||
 * worker || user || task id || service id || image hash || price (32, BE) ||
 * expires_at (8, BE) [|| datasets hash]). The datasets hash is appended
 * only when it is not all zero, so an assignment without datasets hashes as
 * it did before datasets existed. */
void teex_stmt_assignment_digest(const struct teex_assignment *a,
                                 uint8_t out[32]);

/* keccak256(id_1 || ... || id_n) over n 32-byte dataset ids (ids: 32 * n
 * bytes), in task order
 * (docs/settlement.md §2.1 datasetsHash; keccak256("") when n is 0). */
void teex_stmt_datasets_hash(const uint8_t *ids, size_t n, uint8_t out[32]);

/* A task's result, signed with the service's secp256k1 key:
 * keccak256("teex/result/v1" || task id || service id || image hash ||
 * input commitment || output commitment). */
void teex_stmt_result_digest(const uint8_t task_id[32],
                             const uint8_t service_id[32],
                             const uint8_t image_hash[32],
                             const uint8_t input_commitment[32],
                             const uint8_t output_commitment[32],
                             uint8_t out[32]);

/* The worker's proof that it holds the service key on this TLS session:
 * keccak256("teex/service-proof/v1" || service id || exporter), exporter =
 * 32 bytes of TEEX_SERVICE_PROOF_LABEL with the service id as context. */
#define TEEX_SERVICE_PROOF_LABEL "EXPORTER-teex-service-proof"
void teex_stmt_service_proof_digest(const uint8_t service_id[32],
                                    const uint8_t exporter[32],
                                    uint8_t out[32]);

/* Signs a digest as the contracts expect: r || s || v with v in {27, 28},
 * low s. */
int teex_stmt_sign(const uint8_t sk[32], const uint8_t digest[32],
                   uint8_t sig[65]);
/* Recovers the signer's address; TEEX_EBADSIG for a malformed, high-s or
 * zero-address signature. */
int teex_stmt_recover(const uint8_t digest[32], const uint8_t sig[65],
                      uint8_t addr[20]);

/* Encodes an amount as a uint256 big-endian word. */
void teex_amount_word(teex_amount v, uint8_t w[32]);
/* Decodes a uint256 word; TEEX_ETOOBIG when it does not fit 128 bits. */
int teex_amount_from_word(const uint8_t w[32], teex_amount *v);

#endif
