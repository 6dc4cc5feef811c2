/* TEE-DS freshness anchors on chain (contracts/DsAnchor.sol): per group the
 * latest signed commitment to the group's log head — applied index, term,
 * applied hash chain, state digest, time, and the hash and CID of the full
 * commitment document on IPFS. Only a strictly higher index is accepted, so
 * the chain keeps a floor that a group restored from older disks cannot
 * reach (docs/threat-model.md "TEE-DS freshness").
 *
 * The commitment is signed (EIP-712, domain "teex"/"1", the DsAnchor
 * contract) by a replica's enclave key; the contract accepts it only from an
 * address the group's owner listed (createGroup/setAnchorer). Anyone may
 * submit it. Every function fails with TEEX_ECONFIG when the network has no
 * DsAnchor contract (ds_anchor missing from chain.conf). */
#ifndef TEEX_DS_ANCHOR_H
#define TEEX_DS_ANCHOR_H

#include <stddef.h>
#include <stdint.h>

#include "teex/chain.h"
#include "teex/statements.h"

#define TEEX_DS_ANCHOR_MAX_ANCHORERS 8 /* as the contract enforces */

struct teex_ds_anchor {
  uint8_t group_id[32]; /* teex_ds_anchor_group_id() of the TEE-DS group */
  uint64_t index;       /* the applied index the commitment is for */
  uint64_t term;
  uint64_t time_ms; /* the signer's clock, ms since the epoch */
  uint8_t applied_chain[32];
  uint8_t state_digest[32];
  uint8_t commitment_hash[32]; /* keccak256 of the document at cid */
  char cid[TEEX_CHAIN_MAX_CID + 1];
  /* Filled by teex_chain_ds_anchor_latest only. */
  uint64_t anchored_at; /* block timestamp */
  uint8_t signer[20];
};

/* The contract's group id for a TEE-DS group id: the 16 bytes left-aligned,
 * zero-padded (as Solidity's bytes32(bytes16)). */
void teex_ds_anchor_group_id(const uint8_t ds_group_id[16], uint8_t out[32]);

/* The EIP-712 digest a replica signs (teex_stmt_sign) for c; d is the
 * chain id and the DsAnchor contract's address. */
void teex_ds_anchor_digest(const struct teex_domain *d,
                           const struct teex_ds_anchor *c, uint8_t out[32]);

/* The commitment document (`teex/ds-anchor/v1`, text; nothing secret:
 * hashes and numbers) for c into out; its keccak256 and CID go on chain.
 * The length, or -1 when cap is too small. */
#define TEEX_DS_ANCHOR_DOC_MAX 512
int teex_ds_anchor_document(const struct teex_ds_anchor *c, char *out,
                            size_t cap);

/* 1 when a has a DsAnchor address. */
int teex_chain_has_ds_anchor(const struct teex_chain_addrs *a);

/* Creates group_id owned by s's account, with n (<= MAX_ANCHORERS) enclave
 * addresses allowed to sign its anchors. */
int teex_chain_ds_anchor_create_group(struct teex_eth_sender *s,
                                      const struct teex_chain_addrs *a,
                                      const uint8_t group_id[32],
                                      const uint8_t (*anchorers)[20], size_t n,
                                      unsigned timeout_ms,
                                      struct teex_err *err);
/* The owner allows (allowed != 0) or removes an anchorer. */
int teex_chain_ds_anchor_set(struct teex_eth_sender *s,
                             const struct teex_chain_addrs *a,
                             const uint8_t group_id[32],
                             const uint8_t enclave[20], int allowed,
                             unsigned timeout_ms, struct teex_err *err);
/* Submits c with its signer's signature (r || s || v). TEEX_EINVAL for a
 * bad CID before anything is sent; TEEX_ECHAIN with the contract's error
 * (IndexNotIncreasing, NotAnAnchorer, ...) when refused. */
int teex_chain_ds_anchor_submit(struct teex_eth_sender *s,
                                const struct teex_chain_addrs *a,
                                const struct teex_ds_anchor *c,
                                const uint8_t sig[65], unsigned timeout_ms,
                                struct teex_err *err);
/* The latest anchor of group_id into *out (out->index 0: none yet, or no
 * such group). */
int teex_chain_ds_anchor_latest(struct teex_eth_rpc *rpc,
                                const struct teex_chain_addrs *a,
                                const uint8_t group_id[32],
                                struct teex_ds_anchor *out,
                                struct teex_err *err);

#endif
