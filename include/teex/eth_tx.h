/* Ethereum transactions: legacy (EIP-155, chain id in v) and EIP-1559
 * (type 2) transactions, their signing hash, secp256k1 signature, raw
 * encoding and transaction hash; and the decoding of a raw transaction with
 * recovery of its sender. No I/O. */
#ifndef TEEX_ETH_TX_H
#define TEEX_ETH_TX_H

#include "teex/buf.h"
#include "teex/error.h"
#include "teex/eth_types.h"

#include <stddef.h>
#include <stdint.h>

#define TEEX_ETH_TX_LEGACY 0
#define TEEX_ETH_TX_1559 2
/* Largest raw transaction teex builds or accepts (geth's pool takes 128 KiB).
 */
#define TEEX_ETH_TX_MAX (128u * 1024u)

struct teex_eth_tx {
  int type;          /* TEEX_ETH_TX_LEGACY or TEEX_ETH_TX_1559 */
  uint64_t chain_id; /* must be nonzero (EIP-155 replay protection) */
  uint64_t nonce;
  uint64_t gas_limit;
  teex_u256 gas_price;        /* legacy */
  teex_u256 max_fee;          /* 1559: maxFeePerGas */
  teex_u256 max_priority_fee; /* 1559: maxPriorityFeePerGas */
  int has_to;                 /* 0: contract creation */
  uint8_t to[20];
  teex_u256 value;
  const uint8_t *data; /* call data / init code; borrowed */
  size_t data_len;
};

/* The digest that is signed: keccak256 of the EIP-155 legacy list
 * (with chain_id, 0, 0) or of 0x02 || rlp(1559 fields without signature).
 * TEEX_EINVAL for a bad type, zero chain id, or data past TEEX_ETH_TX_MAX. */
int teex_eth_tx_signing_hash(const struct teex_eth_tx *tx, uint8_t hash[32],
                             struct teex_err *err);

/* Signs tx with sk and appends the raw signed transaction (what
 * eth_sendRawTransaction takes) to raw; tx_hash = keccak256(raw). The
 * signature is deterministic (RFC 6979), so signing the same tx twice gives
 * the same bytes. */
int teex_eth_tx_sign(const struct teex_eth_tx *tx, const uint8_t sk[32],
                     struct teex_buf *raw, uint8_t tx_hash[32],
                     struct teex_err *err);

/* Decodes a raw signed transaction (legacy with EIP-155 v, or type 2),
 * strictly, and recovers its sender. tx->data points into raw. TEEX_EFORMAT
 * / TEEX_EUNSUPPORTED (other types, pre-EIP-155 legacy) / TEEX_EBADSIG. */
int teex_eth_tx_decode(const uint8_t *raw, size_t len, struct teex_eth_tx *tx,
                       uint8_t from[20], struct teex_err *err);

#endif
