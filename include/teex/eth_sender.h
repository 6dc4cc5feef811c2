/* Sending transactions from one account: nonce management for many
 * transactions in flight, fees (EIP-1559 by default, legacy on request),
 * gas estimation, receipts with timeouts, revert reasons.
 *
 * Nonces come from a local counter seeded from the node's pending count, so
 * many transactions can be in flight at once. A transaction is signed once
 * and its exact bytes are kept: any resend (after a timeout, a dropped
 * connection, or a node that forgot it) reuses them, so it can never be
 * executed twice. When the node reports a nonce conflict the counter is
 * resynchronised from the node. Not thread-safe: one sender per thread, or
 * a lock around it. */
#ifndef TEEX_ETH_SENDER_H
#define TEEX_ETH_SENDER_H

#include "teex/eth_rpc.h"
#include "teex/eth_types.h"

#include <stddef.h>
#include <stdint.h>

struct teex_eth_sender;

struct teex_eth_sender_opts {
  int legacy;              /* 1: legacy transactions with eth_gasPrice */
  unsigned gas_margin_pct; /* added to eth_estimateGas; 0: 20 */
  unsigned poll_ms;        /* receipt polling interval; 0: 100 */
  /* Highest maxFeePerGas / gasPrice accepted (wei); all zero: no cap. */
  teex_u256 max_fee_cap;
};

/* Creates a sender for the key sk (copied into locked memory). Reads the
 * chain id and the account's pending nonce. rpc is borrowed and must outlive
 * the sender. opts may be NULL. */
int teex_eth_sender_new(struct teex_eth_rpc *rpc, const uint8_t sk[32],
                        const struct teex_eth_sender_opts *opts,
                        struct teex_eth_sender **out, struct teex_err *err);
/* Wipes the key. NULL-safe. */
void teex_eth_sender_free(struct teex_eth_sender *s);
const uint8_t *teex_eth_sender_address(const struct teex_eth_sender *s);
uint64_t teex_eth_sender_chain_id(const struct teex_eth_sender *s);
/* The nonce the next transaction will use. */
uint64_t teex_eth_sender_next_nonce(const struct teex_eth_sender *s);
/* Re-reads the pending nonce from the node (after a gap or an external
 * transaction from the same account). */
int teex_eth_sender_resync(struct teex_eth_sender *s, struct teex_err *err);

struct teex_eth_request {
  int has_to; /* 0: deploy data as init code */
  uint8_t to[20];
  teex_u256 value;
  const uint8_t *data; /* borrowed during the call */
  size_t data_len;
  uint64_t gas_limit; /* 0: estimate (plus the margin) */
};

/* A transaction that was signed and handed to the node. Owns its bytes. */
struct teex_eth_pending {
  uint8_t hash[32];
  uint64_t nonce;
  uint64_t gas_limit;
  int has_to;
  uint8_t to[20];
  teex_u256 value;
  uint8_t *data; /* owned copy of the call data */
  size_t data_len;
  uint8_t *raw; /* owned: the signed transaction, for idempotent resends */
  size_t raw_len;
  int submitted; /* 1 once the node acknowledged it */
};
void teex_eth_pending_clear(struct teex_eth_pending *p);

/* Estimates gas if needed (a revert here gives TEEX_ECHAIN with the reason
 * and consumes no nonce), fills fees, signs with the next nonce and submits.
 * A node that reports a nonce conflict makes the sender resynchronise and
 * re-sign once (the refused bytes were never accepted, so this cannot
 * duplicate anything). On TEEX_ECONN/TEEX_ETIMEDOUT the transaction may or
 * may not have reached the node: p is still filled (submitted = 0) and its
 * nonce stays reserved for its bytes; teex_eth_sender_wait (or
 * teex_eth_sender_rebroadcast) delivers them. Do not drop such a p: later
 * transactions would wait behind the nonce gap. On any other error p is
 * empty. */
int teex_eth_sender_send(struct teex_eth_sender *s,
                         const struct teex_eth_request *req,
                         struct teex_eth_pending *p, struct teex_err *err);
/* Resends p's exact bytes (idempotent). */
int teex_eth_sender_rebroadcast(struct teex_eth_sender *s,
                                struct teex_eth_pending *p,
                                struct teex_err *err);

/* Polls for p's receipt for up to timeout_ms, rebroadcasting the same bytes
 * if the node has forgotten the transaction. r is filled on success and on
 * revert. A reverted transaction gives TEEX_ECHAIN with "transaction 0x..
 * reverted in block N (gas used G): <reason>", the reason found by
 * replaying the call at that block. TEEX_ETIMEDOUT when no receipt came. */
int teex_eth_sender_wait(struct teex_eth_sender *s, struct teex_eth_pending *p,
                         unsigned timeout_ms, struct teex_eth_receipt *r,
                         struct teex_err *err);

/* send + wait. */
int teex_eth_sender_transact(struct teex_eth_sender *s,
                             const struct teex_eth_request *req,
                             unsigned timeout_ms, struct teex_eth_receipt *r,
                             struct teex_err *err);

#endif
