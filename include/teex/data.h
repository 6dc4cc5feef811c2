/* The data provider's side (docs/data-providers.md): publish a dataset —
 * encrypt it under a fresh data key with the image module's chunked AEAD,
 * store the ciphertext on IPFS, verify the Service Manager's evidence
 * (RA-TLS) and escrow the key with it under the provider's signature — then
 * list it on chain with its terms and approvals of exact (service, image
 * hash) pairs. The plaintext and the key never leave this process except
 * inside the RA-TLS session with the verified SM. */
#ifndef TEEX_DATA_H
#define TEEX_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "teex/chain.h"
#include "teex/error.h"
#include "teex/ipfs.h"
#include "teex/sm.h"
#include "teex/statements.h"
#include "teex/tee.h"
#include "teex/tee_policy.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

#define TEEX_DATA_MAX TEEX_SM_DATA_MAX /* plaintext bytes of a dataset */
#define TEEX_DATA_NAME_MAX TEEX_CHAIN_MAX_DATASET_NAME
#define TEEX_DATA_MAX_ALLOW TEEX_CHAIN_MAX_APPROVALS /* --allow per call */

struct teex_data_publish_req {
  const char *file;           /* the dataset */
  const char *name;           /* 1..64 bytes: the id is (provider, name) */
  const uint8_t *provider_sk; /* 32 bytes: the provider account's key */
  const char *sm_addr;        /* the SM's client endpoint, host:port */
  const struct teex_tee_policy *sm_policy; /* what the SM must prove */
  struct teex_ipfs_backend *ipfs;          /* where the ciphertext goes */
};

struct teex_data_published {
  uint8_t dataset_id[32];
  char name[TEEX_DATA_NAME_MAX + 1];
  uint8_t provider[20];
  uint8_t plaintext_hash[32]; /* SHA-256 */
  uint64_t plaintext_size;
  char cid[TEEX_CHAIN_MAX_CID + 1]; /* the ciphertext on IPFS */
  uint8_t sm_address[20];
  uint64_t chain_id;
  uint8_t dataset_registry[20]; /* the SM's (all zero: it has none) */
};

/* Encrypts, stores and escrows (see above). Errors are wrapped with the
 * step ("read", "encrypt", "ipfs", "connect SM", "SM refused"):
 * TEEX_ETOOBIG past TEEX_DATA_MAX, TEEX_EINVAL for a bad name. */
int teex_data_publish(const struct teex_data_publish_req *req,
                      struct teex_data_published *out, struct teex_err *err);

/* The terms a listing carries. */
struct teex_data_terms {
  teex_amount price;                       /* wei per use */
  uint64_t expires_at;                     /* unix seconds; 0: never */
  uint32_t max_uses;                       /* 0: unlimited */
  uint64_t max_output_bytes;               /* 0: no cap */
  const struct teex_chain_approval *allow; /* approved (service, image) */
  size_t n_allow;
};

/* Lists p on chain from the provider's account with terms t and, when
 * t->n_allow > 0, approves those pairs. chain_conf is the network's
 * chain.conf; its dataset registry must be the SM's. Errors wrapped "list
 * on chain". */
int teex_data_list_on_chain(const struct teex_data_published *p,
                            const uint8_t provider_sk[32],
                            const char *chain_conf,
                            const struct teex_data_terms *t,
                            struct teex_err *err);

/* ---- the worker's side (src/data/fetch.c) ---- */

/* One dataset of a task, ready for the executor: its plaintext in this
 * process's memory (never written anywhere), and the data share the
 * receipt names. */
struct teex_data_fetched {
  uint8_t dataset_id[32];
  char name[TEEX_DATA_NAME_MAX + 1];
  uint8_t provider[20]; /* the data share's payee */
  teex_amount price;    /* per use, as listed at the lease */
  uint64_t max_output_bytes;
  uint8_t *data; /* plaintext; teex_data_fetched_free wipes it */
  size_t len;
};

/* For a task whose assignment a (signed: dispatcher_sig) names the n
 * datasets ids (32 bytes each, in order): leases each key from the SM
 * (sm.LeaseDataKey over mutual RA-TLS as the enclave tee / cert / key with
 * secp256k1_pub), reads the ciphertext from ipfs, decrypts it in memory and
 * checks its size and SHA-256 against what the SM escrowed. out has room
 * for n; *output_cap gets the lowest --max-output of them (0: none). On any
 * failure nothing is kept (what was fetched is wiped) and the error names
 * the dataset. */
int teex_data_fetch_for_task(
    struct teex_tee *tee, X509 *cert, EVP_PKEY *key,
    const uint8_t secp256k1_pub[64], const char *sm_addr,
    const struct teex_tee_policy *sm_policy, struct teex_ipfs_backend *ipfs,
    const struct teex_assignment *a, const uint8_t dispatcher_sig[65],
    const uint8_t *ids, size_t n, struct teex_data_fetched *out,
    uint32_t *output_cap, struct teex_err *err);
/* Wipes and frees the plaintexts of n fetched datasets. NULL-safe. */
void teex_data_fetched_free(struct teex_data_fetched *f, size_t n);

/* ---- what a dataset has earned (src/data/earnings.c) ---- */

struct teex_data_earnings {
  uint32_t uses;       /* settled tasks that used the dataset */
  teex_amount earned;  /* their data shares for it, summed (wei) */
  uint32_t batches;    /* settled batches seen on chain */
  uint32_t unreadable; /* of them: content missing, malformed, or not
                          hashing to the root on chain (not counted) */
};

/* Scans the Settlement contract's BatchSettled events, reads each batch's
 * content from ipfs and sums the data shares for dataset_id of the
 * receipts of every content whose receipts hash to the root recorded on
 * chain. TEEX_ECHAIN etc. when the events cannot be read; a batch that
 * cannot be read is counted in unreadable, not an error. */
struct teex_eth_rpc;
int teex_data_earnings(struct teex_eth_rpc *rpc,
                       const struct teex_chain_addrs *a,
                       struct teex_ipfs_backend *ipfs,
                       const uint8_t dataset_id[32],
                       struct teex_data_earnings *out, struct teex_err *err);

/* One batch content (docs/settlement.md §4.2, ABI-encoded, untrusted):
 * adds to *uses and *earned the data shares for dataset_id, only when the
 * content names root and its receipts hash to it (TEEX_EAUTH otherwise;
 * TEEX_EFORMAT etc. when it does not decode). Pure. */
int teex_data_batch_uses(const uint8_t *content, size_t len,
                         const uint8_t root[32], const uint8_t dataset_id[32],
                         uint32_t *uses, teex_amount *earned,
                         struct teex_err *err);

/* Parses "SERVICE@IMAGE": two 32-byte hex words (0x optional). */
int teex_data_parse_allow(const char *s, struct teex_chain_approval *out,
                          struct teex_err *err);

#endif
