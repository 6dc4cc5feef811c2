/* The chain side of TEE-DS freshness for the CLI (src/cli/cmd_ds_anchor.c). */
#ifndef TEEX_CLI_CMD_DS_ANCHOR_H
#define TEEX_CLI_CMD_DS_ANCHOR_H

#include <stddef.h>
#include <stdint.h>

#include "teex/chain.h"
#include "teex/error.h"

/* Reads rpc_url (default TEEX_CHAIN_DEFAULT_RPC) and the contract addresses
 * from a chain.conf; TEEX_ECONFIG when it has no ds_anchor. */
int teex_cli_ds_chain_conf(const char *path, char *rpc_url, size_t cap,
                           struct teex_chain_addrs *a, struct teex_err *err);

/* Commits (index, term, applied_chain) of the TEE-DS group ds_group_id to
 * the DsAnchor contract of chain_conf, signed with the key in key_file
 * (hex), which also pays; the group is created on chain at its first
 * anchor with that key as owner and anchorer. The commitment document is
 * written to doc_out (may be NULL); its keccak256 and CID go on chain. */
int teex_cli_ds_anchor_submit(const char *chain_conf, const char *key_file,
                              const uint8_t ds_group_id[16], uint64_t index,
                              uint64_t term, const uint8_t applied_chain[32],
                              const char *doc_out, struct teex_err *err);

/* Prints the group's latest anchor on chain (index, term, signer, CID,
 * state digest, commitment hash, applied chain), or that there is none. */
int teex_cli_ds_anchor_show(const char *chain_conf,
                            const uint8_t ds_group_id[16],
                            struct teex_err *err);

/* Reads a hex secp256k1 key file (one line) into sk. */
int teex_cli_ds_read_key(const char *file, uint8_t sk[32],
                         struct teex_err *err);

/* The group's owner (key_file, which pays) lists the n enclave addresses
 * as the group's anchorers: creates the group on chain with them, or, when
 * it exists, allows each one (setAnchorer). */
int teex_cli_ds_anchor_enroll(const char *chain_conf, const char *key_file,
                              const uint8_t ds_group_id[16],
                              const uint8_t (*enclaves)[20], size_t n,
                              struct teex_err *err);

#endif
