/* Off-chain side of settlement v1 (docs/settlement.md): receipt leaves and
 * the sorted-pair Merkle tree over them, with inclusion proofs, exactly as
 * the Settlement contract checks them. I/O-free; amounts are uint256
 * big-endian words so nothing is lost between chain and C. */
#ifndef TEEX_SETTLE_H
#define TEEX_SETTLE_H

#include <stddef.h>
#include <stdint.h>

#include "teex/error.h"

#define TEEX_SETTLE_LEAF_TAG_TEXT "teex/settlement/v1/receipt-leaf"
#define TEEX_SETTLE_MAX_LEAVES (1u << 20)
#define TEEX_SETTLE_MAX_PROOF 40 /* > log2(MAX_LEAVES) */
#define TEEX_SETTLE_MAX_SHARES 64

struct teex_data_share {
  uint8_t dataset_id[32];
  uint8_t payee[20];
  uint8_t amount[32]; /* uint256, big-endian */
};

/* Receipt v1 (settlement.md §2.2), without the worker's signature. */
struct teex_receipt {
  uint8_t task_id[32];
  uint8_t service_id[32];
  uint8_t image_hash[32];
  uint8_t user[20];
  uint8_t dispatcher[20];
  uint8_t worker[20];
  uint8_t provider[20];
  uint8_t input_commitment[32];
  uint8_t output_commitment[32];
  uint8_t price[32];           /* uint256 big-endian */
  uint8_t worker_amount[32];   /* uint256 big-endian */
  uint8_t provider_amount[32]; /* uint256 big-endian */
  const struct teex_data_share *shares;
  size_t nshares;
};

/* keccak256 of the shares' abi.encode words, in order (§2.3);
 * keccak256("") for none. */
void teex_settle_data_shares_hash(const struct teex_data_share *shares,
                                  size_t n, uint8_t out[32]);

/* 1 when price == worker + provider + sum(shares) without overflow, else 0. */
int teex_settle_split_ok(const struct teex_receipt *r);

/* The receipt's Merkle leaf (§3.1). */
void teex_settle_receipt_leaf(const struct teex_receipt *r, uint8_t out[32]);

/* keccak256(salt || data): the salted commitments to input and output. */
void teex_settle_commit(const uint8_t salt[32], const void *data, size_t len,
                        uint8_t out[32]);

/* Leaves and proofs are arrays of 32-byte hashes, back to back.
 *
 * Merkle root over n leaves (§3.2: sorted pairs, odd node carried up).
 * TEEX_EINVAL for n == 0, TEEX_ETOOBIG past TEEX_SETTLE_MAX_LEAVES,
 * TEEX_ENOMEM. */
int teex_settle_merkle_root(const uint8_t *leaves, size_t n, uint8_t root[32]);

/* The proof for leaf `index`: sibling hashes bottom-up, levels where the
 * node was carried up skipped; proof must hold TEEX_SETTLE_MAX_PROOF * 32
 * bytes. *nproof gets the count. */
int teex_settle_merkle_proof(const uint8_t *leaves, size_t n, size_t index,
                             uint8_t *proof, size_t *nproof);

/* 1 when the proof takes leaf to root, else 0. */
int teex_settle_merkle_verify(const uint8_t leaf[32], const uint8_t *proof,
                              size_t nproof, const uint8_t root[32]);

#endif
