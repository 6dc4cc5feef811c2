/* Ethereum JSON-RPC client over HTTP(S) with keep-alive (one reused libcurl
 * handle), typed wrappers for the methods teex uses, and a parser for
 * responses that treats them as hostile: bounded size, exact JSON-RPC 2.0
 * shape, strict hex quantities.
 *
 * Retries: a request the node may have acted on is repeated only when it is
 * idempotent. Every wrapper here is: reads are, and eth_sendRawTransaction
 * resends the very same signed bytes (same hash, same nonce), which a node
 * can only accept once. A handle is not thread-safe; use one per thread. */
#ifndef TEEX_ETH_RPC_H
#define TEEX_ETH_RPC_H

#include "teex/abi.h"
#include "teex/buf.h"
#include "teex/error.h"
#include "teex/eth_types.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define TEEX_ETH_RPC_MAX_RESPONSE (32u << 20) /* default bound on a body */
#define TEEX_ETH_RPC_MAX_URL 1024
#define TEEX_ETH_MAX_LOGS 100000 /* per eth_getLogs answer */

struct teex_eth_rpc;

struct teex_eth_rpc_opts {
  long timeout_ms;     /* per HTTP request; 0: 30000 */
  long connect_ms;     /* 0: 5000 */
  size_t max_response; /* 0: TEEX_ETH_RPC_MAX_RESPONSE */
  int retries;         /* extra attempts for idempotent calls; -1: none, 0: 2 */
};

/* The JSON-RPC error object of the last failed call. */
struct teex_eth_rpc_error {
  int present;
  int64_t code;
  char message[256];  /* control characters replaced */
  uint8_t data[4096]; /* error.data when it was a hex string (revert data) */
  size_t data_len;
  int has_data;
};

/* Opens a client for url (http:// or https://). opts may be NULL. No
 * request is made. *out owned by the caller (teex_eth_rpc_close). */
int teex_eth_rpc_open(const char *url, const struct teex_eth_rpc_opts *opts,
                      struct teex_eth_rpc **out, struct teex_err *err);
void teex_eth_rpc_close(struct teex_eth_rpc *rpc);
const char *teex_eth_rpc_url(const struct teex_eth_rpc *rpc);

/* Calls method with params (a JSON array, reference stolen; NULL = []).
 * *result (a new reference, may be JSON null) on success. Errors:
 * TEEX_ECONN (cannot connect / connection dropped), TEEX_ETIMEDOUT,
 * TEEX_ETOOBIG (response over the bound), TEEX_EPROTO (not a valid JSON-RPC
 * response), TEEX_EREMOTE (the node answered with an error object: see
 * teex_eth_rpc_last_error). idempotent: may the request be retried after
 * it possibly reached the node. */
int teex_eth_rpc_call(struct teex_eth_rpc *rpc, const char *method,
                      json_t *params, int idempotent, json_t **result,
                      struct teex_err *err);
const struct teex_eth_rpc_error *
teex_eth_rpc_last_error(const struct teex_eth_rpc *rpc);

/* The response parser on its own (what the fuzzer drives): checks the body
 * is one JSON-RPC 2.0 response to request id. TEEX_EREMOTE fills rerr. */
int teex_eth_rpc_parse_response(const char *body, size_t len, uint64_t id,
                                json_t **result,
                                struct teex_eth_rpc_error *rerr,
                                struct teex_err *err);

/* ---- typed wrappers. block: "latest", "pending", "earliest" or a 0x
 * quantity; NULL means "latest". ---- */

int teex_eth_chain_id(struct teex_eth_rpc *rpc, uint64_t *out,
                      struct teex_err *err);
int teex_eth_block_number(struct teex_eth_rpc *rpc, uint64_t *out,
                          struct teex_err *err);
int teex_eth_get_balance(struct teex_eth_rpc *rpc, const uint8_t addr[20],
                         const char *block, teex_u256 out,
                         struct teex_err *err);
int teex_eth_get_nonce(struct teex_eth_rpc *rpc, const uint8_t addr[20],
                       const char *block, uint64_t *out, struct teex_err *err);
int teex_eth_gas_price(struct teex_eth_rpc *rpc, teex_u256 out,
                       struct teex_err *err);
int teex_eth_max_priority_fee(struct teex_eth_rpc *rpc, teex_u256 out,
                              struct teex_err *err);
/* baseFeePerGas of the latest block (TEEX_EUNSUPPORTED before London). */
int teex_eth_base_fee(struct teex_eth_rpc *rpc, teex_u256 out,
                      struct teex_err *err);
int teex_eth_get_code(struct teex_eth_rpc *rpc, const uint8_t addr[20],
                      const char *block, struct teex_buf *out,
                      struct teex_err *err);

struct teex_eth_block {
  uint64_t number;
  uint64_t timestamp;
  uint8_t hash[32];
  int has_base_fee;
  teex_u256 base_fee;
  uint64_t gas_limit;
  uint64_t gas_used;
};
/* eth_getBlockByNumber(block, false). TEEX_ENOTFOUND for a future block. */
int teex_eth_get_block(struct teex_eth_rpc *rpc, const char *block,
                       struct teex_eth_block *out, struct teex_err *err);

/* A call or gas estimate. from/to may be NULL (to NULL: contract creation);
 * value NULL means 0; gas 0 means unspecified. */
struct teex_eth_call_req {
  const uint8_t *from;
  const uint8_t *to;
  const uint8_t *value; /* teex_u256 or NULL */
  const uint8_t *data;
  size_t data_len;
  uint64_t gas;
};

/* eth_call: the return data appended to out. A revert gives TEEX_ECHAIN
 * with the decoded reason in err ("execution reverted: reverted: not
 * owner"); the raw revert data is in teex_eth_rpc_last_error. */
int teex_eth_call(struct teex_eth_rpc *rpc, const struct teex_eth_call_req *c,
                  const char *block, struct teex_buf *out,
                  struct teex_err *err);
int teex_eth_estimate_gas(struct teex_eth_rpc *rpc,
                          const struct teex_eth_call_req *c, uint64_t *out,
                          struct teex_err *err);
/* eth_call of a function by signature: encodes args (a TUPLE value of the
 * parameters) with the selector, calls `to`, and decodes the return data as
 * returns (a tuple type string such as "(uint256,address)"; "()" accepts
 * anything). from may be NULL. *out is owned by the caller. Reverts as in
 * teex_eth_call; malformed return data gives TEEX_EFORMAT. */
int teex_eth_call_fn(struct teex_eth_rpc *rpc, const uint8_t *from,
                     const uint8_t to[20], const char *sig,
                     const struct teex_abi_value *args, const char *returns,
                     const char *block, struct teex_abi_value *out,
                     struct teex_err *err);

/* Custom error signatures ("NotRegistered(address)") used to describe
 * revert data in err messages; NULL-terminated, borrowed, may be NULL. */
void teex_eth_rpc_set_custom_errors(struct teex_eth_rpc *rpc,
                                    const char *const *sigs);

/* eth_sendRawTransaction. hash = keccak256(raw), checked against the node's
 * answer. A node that already has this exact transaction ("already known")
 * counts as success, so a resend is harmless. */
int teex_eth_send_raw(struct teex_eth_rpc *rpc, const uint8_t *raw, size_t len,
                      uint8_t hash[32], struct teex_err *err);
/* 1 when the node knows the transaction (pending or mined), else 0. */
int teex_eth_tx_known(struct teex_eth_rpc *rpc, const uint8_t hash[32],
                      int *known, struct teex_err *err);

struct teex_eth_log {
  uint8_t address[20];
  uint8_t topics[4][32];
  size_t n_topics;
  uint8_t *data; /* owned */
  size_t data_len;
  uint64_t block_number;
  uint8_t tx_hash[32];
  uint64_t log_index;
};

struct teex_eth_receipt {
  uint8_t tx_hash[32];
  int status; /* 1 success, 0 reverted */
  uint64_t block_number;
  uint8_t block_hash[32];
  uint8_t from[20];
  int has_contract;
  uint8_t contract_address[20];
  uint64_t gas_used;
  teex_u256 effective_gas_price;
  struct teex_eth_log *logs; /* owned */
  size_t n_logs;
};

/* TEEX_ENOTFOUND while the transaction has no receipt yet. */
int teex_eth_get_receipt(struct teex_eth_rpc *rpc, const uint8_t hash[32],
                         struct teex_eth_receipt *r, struct teex_err *err);
void teex_eth_receipt_clear(struct teex_eth_receipt *r);
/* What the transaction cost: gas_used * effective_gas_price (wei). */
void teex_eth_receipt_fee(const struct teex_eth_receipt *r, teex_u256 out);

struct teex_eth_log_filter {
  uint64_t from_block;
  uint64_t to_block; /* UINT64_MAX: "latest" */
  int has_address;
  uint8_t address[20];
  unsigned topic_mask; /* bit i set: topics[i] must match (else any) */
  uint8_t topics[4][32];
};
int teex_eth_get_logs(struct teex_eth_rpc *rpc,
                      const struct teex_eth_log_filter *f,
                      struct teex_eth_log **logs, size_t *n,
                      struct teex_err *err);
void teex_eth_logs_free(struct teex_eth_log *logs, size_t n);

/* Parses one log / receipt JSON object (exposed for the fuzzer). */
int teex_eth_log_parse(json_t *j, struct teex_eth_log *log,
                       struct teex_err *err);
int teex_eth_receipt_parse(json_t *j, struct teex_eth_receipt *r,
                           struct teex_err *err);

#endif
