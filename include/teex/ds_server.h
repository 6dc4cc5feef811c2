/* TEE-DS replica daemon: one process = one replica of a group (`teex ds
 * init` / `teex ds run`). Raft (libraft, log and metadata in raft_uv files
 * whose entries are ciphertext under the group key, term and vote sealed
 * and rollback-evident) runs over mutual RA-TLS between replicas; clients
 * reach the replica's RPC endpoint (proto/ds.proto) with a certificate the
 * group config lists with its namespace. docs/internals/ds.md describes the
 * state directory, the transport and what is and is not detected. */
#ifndef TEEX_DS_SERVER_H
#define TEEX_DS_SERVER_H

#include "teex/error.h"
#include "teex/tee.h"

#include <stddef.h>
#include <stdint.h>

/* Files in a replica's state directory. */
#define TEEX_DS_GROUP_FILE "group.conf"   /* members, clients (group.h) */
#define TEEX_DS_POLICY_FILE "policy.conf" /* what peers' evidence must pass */
/* Optional: what enclave clients' evidence must pass (their role then maps
 * to a namespace in group.conf [enclaves]). */
#define TEEX_DS_CLIENT_POLICY_FILE "clients-policy.conf"
#define TEEX_DS_SELF_FILE "self.conf" /* id = N */
/* Optional: the Service Manager that provisions the group key. */
#define TEEX_DS_SM_FILE "sm.conf"               /* address = HOST:PORT */
#define TEEX_DS_SM_POLICY_FILE "sm-policy.conf" /* what the SM must prove */
#define TEEX_DS_KEY_FILE "group.key"            /* the sealed group key */
#define TEEX_DS_RECORD_FILE "raft.record"       /* sealed term/vote record */
#define TEEX_DS_RAFT_DIR "raft"                 /* raft_uv's files */

#define TEEX_DS_DEFAULT_ELECTION_MS 150u

struct teex_ds_init_config {
  struct teex_tee *tee; /* this replica's TEE (role ds) */
  const char *state_dir;
  uint64_t self_id;
  /* group.conf text (a group id and the members; self_id must be one). */
  const char *group_text;
  size_t group_len;
  /* policy.conf text, or NULL: allow exactly this build in role ds on this
   * TEE's root (simulated evidence allowed when this TEE is the sim). */
  const char *policy_text;
  size_t policy_len;
  /* clients-policy.conf text, or NULL: no enclave clients. */
  const char *client_policy_text;
  size_t client_policy_len;
  /* The SM that provisions the group key (its enclave endpoint) and the
   * policy it must satisfy, or NULL: the key comes from the first replica. */
  const char *sm_addr;
  const char *sm_policy_text;
  size_t sm_policy_len;
  /* 1: create the group key here (the group's first replica, no SM). 0:
   * fetch it at the first `run` from the SM when one is configured, else
   * from a replica that has it, over mutual RA-TLS. */
  int create_key;
};

/* Creates the state directory (which must not hold a replica yet).
 * TEEX_EEXIST, TEEX_ECONFIG, TEEX_EIO. */
int teex_ds_init(const struct teex_ds_init_config *cfg, struct teex_err *err);

/* The default policy text for tee (see policy_text above) into out. */
int teex_ds_default_policy(struct teex_tee *tee, char *out, size_t cap,
                           struct teex_err *err);

struct teex_ds_server_config {
  struct teex_tee *tee;
  const char *state_dir;
  const char *ready_file;       /* written once serving (ports), or NULL */
  uint32_t election_timeout_ms; /* 0: TEEX_DS_DEFAULT_ELECTION_MS */
  uint32_t key_timeout_ms;      /* waiting for the group key; 0: 30 s */
  /* Linearizable reads: by default the leader serves them under a lease of
   * half the election timeout when no write is in flight, assuming the
   * replicas' clocks run at rates within a third of each other (see
   * docs/internals/ds.md, "Reads and clocks", and docs/threat-model.md);
   * no_read_lease: every one waits for a raft barrier instead. */
  int no_read_lease;
  /* Freshness anchor (include/teex/ds_anchor.h): the chain's JSON-RPC URL
   * and the DsAnchor contract, or NULL: not anchored (works as before).
   * When set, the latest anchor of the group is read before raft starts; a
   * replica whose log ends below it neither votes nor stands until the
   * group brings it up to the anchor, and one that cannot read the chain
   * does not start. */
  const char *anchor_rpc;
  const uint8_t *anchor_contract; /* 20 bytes */
  /* Publishing anchors (with anchor_rpc and anchor_contract): when
   * anchor_payer_sk is set, the leader commits its log head by itself —
   * after anchor_every applied entries (0: TEEX_DS_ANCHOR_EVERY) or
   * anchor_interval_ms (0: TEEX_DS_ANCHOR_INTERVAL_MS) since the last
   * anchor, and at a clean stop — signed by this replica's enclave key (the
   * secp256k1 key sealed in the state directory and bound in its RA-TLS
   * evidence), the document stored in IPFS (ipfs_api: a Kubo RPC URL, else
   * the local block store ipfs_dir), the transaction paid by the account of
   * anchor_payer_sk (32 bytes). Off the event loop; failures are logged and
   * retried. */
  const uint8_t *anchor_payer_sk;
  uint32_t anchor_every;
  uint32_t anchor_interval_ms;
  const char *ipfs_dir;
  const char *ipfs_api;
};

#define TEEX_DS_ANCHOR_EVERY 64
#define TEEX_DS_ANCHOR_INTERVAL_MS 30000
#define TEEX_DS_ANCHOR_KEY_FILE "anchor.key" /* sealed enclave key */

/* Runs the replica until SIGTERM/SIGINT. Errors at start (bad state,
 * metadata disagreeing with the sealed record, no group key) return a code
 * with the reason. */
int teex_ds_serve(const struct teex_ds_server_config *cfg,
                  struct teex_err *err);

#endif
