/* The Ethereum client in libteex, in one include: 256-bit quantities, RLP,
 * the contract ABI, transactions, EIP-712 typed data, v3 keystores,
 * JSON-RPC and the transaction sender. See docs/internals/eth.md. */
#ifndef TEEX_ETH_H
#define TEEX_ETH_H

#include "teex/abi.h"
#include "teex/eip712.h"
#include "teex/eth_rpc.h"
#include "teex/eth_sender.h"
#include "teex/eth_tx.h"
#include "teex/eth_types.h"
#include "teex/keystore.h"
#include "teex/rlp.h"

#endif
