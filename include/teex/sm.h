/* The Service Manager's core: it keeps image keys and services' secret
 * keys in its sealed store, creates service keys, signs service listings and
 * enclave registrations, and releases keys only to enclaves whose fresh
 * evidence satisfies the network's policy (docs/network.md).
 *
 * No network I/O here: the daemon (src/sm/sm_server.c) decodes requests and
 * proves freshness (a nonce bound to the TLS session); this core decides. */
#ifndef TEEX_SM_H
#define TEEX_SM_H

#include <stddef.h>
#include <stdint.h>

#include "teex/ds_client.h"
#include "teex/error.h"
#include "teex/statements.h"
#include "teex/tee.h"

#define TEEX_SM_CID_MAX 128

struct teex_sm;
struct teex_statestore;

struct teex_sm_config {
  const char *state_dir;           /* sealed store directory (created) */
  struct teex_domain listing;      /* chain id + ServiceRegistry address */
  struct teex_domain registration; /* chain id + EnclaveRegistry address */
  struct teex_tee_policy policy;   /* what enclaves must prove */
  /* How long an enclave's attestation (sm.Attest, or its first check)
   * lets it receive keys and leases (0: TEEX_SM_ATTEST_VALID_DEFAULT_S);
   * see teex_sm_check_attestation. */
  uint32_t attest_valid_s;
};

#define TEEX_SM_ATTEST_VALID_DEFAULT_S (4u * 3600)

/* Opens the SM over tee (role "sm"): its sealed store (sealing key of the
 * signer policy, so a newer build of the same signer keeps the keys) and its
 * own secp256k1 and X25519 keys, created on first start. *out is owned by
 * the caller. Errors of teex_store_open (TEEX_EAUTH, TEEX_EROLLBACK ...). */
int teex_sm_open(struct teex_tee *tee, const struct teex_sm_config *cfg,
                 struct teex_sm **out, struct teex_err *err);
void teex_sm_close(struct teex_sm *sm); /* NULL-safe; wipes keys */

/* The SM's enclave address, secp256k1 public key and X25519 public key. */
void teex_sm_address(const struct teex_sm *sm, uint8_t addr[20]);
void teex_sm_public_keys(const struct teex_sm *sm, uint8_t secp256k1[64],
                         uint8_t x25519[32]);
uint32_t teex_sm_service_count(const struct teex_sm *sm);
const struct teex_sm_config *teex_sm_config(const struct teex_sm *sm);

struct teex_sm_register {
  uint8_t service_id[32];
  uint32_t version;
  uint8_t provider[20];
  uint8_t image_hash[32];
  char image_cid[TEEX_SM_CID_MAX + 1];
  uint8_t image_key[32];
  const uint8_t *ciphertext; /* the encrypted image (may be NULL) */
  size_t ciphertext_len;
  uint8_t provider_sig[65];
};

struct teex_sm_registered {
  uint8_t signing_key[20];    /* the service's secp256k1 address */
  uint8_t encryption_key[32]; /* the service's X25519 public key */
  uint8_t listing_sig[65];    /* EIP-712 ServiceListing, by the SM */
};

/* The digest a provider signs (EIP-191 personal message over
 * keccak256("teex/sm/v1/register-service" || chain id (8, BE) || SM address
 * || service id || version (4, BE) || provider || image hash ||
 * keccak256(cid))). */
void teex_sm_register_digest(const struct teex_sm_register *r,
                             uint64_t chain_id, const uint8_t sm_addr[20],
                             uint8_t out[32]);

/* Registers a service version: the provider's signature, ownership of the
 * service id (bound to the first provider), the version sequence (the same
 * request again is answered as before), and — when the ciphertext is given
 * — that it decrypts under image_key to an image whose hash is image_hash.
 * Creates the service keys on the first version. TEEX_EBADSIG, TEEX_EPERM
 * (another provider's service), TEEX_EINVAL (version out of sequence),
 * TEEX_EAUTH (ciphertext does not decrypt), TEEX_EATTEST (hash differs). */
int teex_sm_register_service(struct teex_sm *sm,
                             const struct teex_sm_register *r,
                             struct teex_sm_registered *out,
                             struct teex_err *err);

/* Checks an enclave's fresh evidence: verified against the policy with
 * `nonce` as the expected challenge, role worker or dispatcher (or exactly
 * `role` when not NULL), bound to the TLS key the peer presented
 * (peer_spki_sha256), and neither its enclave address nor its measurement
 * revoked (teex_sm_revoke). Every release (keys, leases, grants, group
 * keys, registrations) passes here, so a revocation holds for all of them
 * at once. On success the enclave's record (address, role, measurement,
 * last fresh attestation = now) is written to the sealed store. Fills id.
 * TEEX_EATTEST / TEEX_EPOLICY (also: revoked) / TEEX_EEXPIRED with a
 * one-line reason. */
int teex_sm_check_enclave(struct teex_sm *sm, const uint8_t *evidence,
                          size_t len, const uint8_t nonce[32],
                          const uint8_t peer_spki_sha256[32], const char *role,
                          uint64_t now, struct teex_tee_identity *id,
                          struct teex_err *err);

struct teex_sm_keys {
  uint8_t image_key[32];
  char image_cid[TEEX_SM_CID_MAX + 1];
  uint8_t service_secp256k1[32];
  uint8_t service_x25519[32];
  uint32_t version;
  uint8_t provider[20];
};

/* Keys for (service, image hash), to a worker already checked with
 * teex_sm_check_enclave. TEEX_ENOTFOUND (unknown service or image). The
 * caller wipes out (teex_wipe) once sent. */
int teex_sm_fetch_keys(struct teex_sm *sm, const uint8_t service_id[32],
                       const uint8_t image_hash[32], struct teex_sm_keys *out,
                       struct teex_err *err);

/* ---- the SM as the enclaves' monitor ---- */

#define TEEX_SM_REASON_MAX 128 /* bytes of a revocation's reason */

enum teex_sm_revoke_kind {
  TEEX_SM_REVOKE_ENCLAVE = 1,     /* one enclave address (20 bytes) */
  TEEX_SM_REVOKE_MEASUREMENT = 2, /* a build: mr_enclave (32 bytes) */
};

/* Revokes an enclave address or a measurement (every enclave of that
 * build), kept in the sealed store: from now on teex_sm_check_enclave
 * refuses it. `reason` (may be NULL) is at most TEEX_SM_REASON_MAX bytes.
 * Revoking again keeps the first time and reason. TEEX_EINVAL. */
int teex_sm_revoke(struct teex_sm *sm, enum teex_sm_revoke_kind kind,
                   const uint8_t *value, const char *reason, uint64_t now,
                   struct teex_err *err);

/* Whether value (an enclave address, or a measurement) is revoked: 0 and
 * *at, reason filled when it is, TEEX_ENOTFOUND when not. */
int teex_sm_revocation_of(struct teex_sm *sm, enum teex_sm_revoke_kind kind,
                          const uint8_t *value, uint64_t *at,
                          char reason[TEEX_SM_REASON_MAX + 1],
                          struct teex_err *err);

/* The SM's EIP-712 EnclaveRevocation signature for enclave (settlement v1,
 * the registration domain): anyone may submit it to the EnclaveRegistry,
 * which then refuses the address for good. */
int teex_sm_sign_revocation(const struct teex_sm *sm, const uint8_t enclave[20],
                            uint8_t sig[65]);

/* An enclave the SM has checked: what teex_sm_enclaves reports. */
struct teex_sm_enclave {
  uint8_t address[20];
  char role[16];
  uint8_t mr_enclave[32];
  uint64_t first_seen;    /* first successful check */
  uint64_t last_attested; /* last successful fresh check */
  int revoked;            /* its address or its measurement */
  uint64_t revoked_at;    /* 0 when not revoked */
  char reason[TEEX_SM_REASON_MAX + 1];
};

/* Calls cb for every enclave the SM has checked (in the store's order),
 * with revocation state filled in; cb returning non-zero stops. */
int teex_sm_enclaves(struct teex_sm *sm,
                     int (*cb)(const struct teex_sm_enclave *e, void *arg),
                     void *arg, struct teex_err *err);

/* How long a TEE-DS grant the SM signs with a service's keys lasts: short,
 * so that revoking a worker reaches TEE-DS within it (the worker renews it
 * through sm.FetchKeys, which a revoked enclave no longer passes, when
 * less than a minute is left; the replicas check it on every command). */
#define TEEX_SM_DS_GRANT_TTL_S (5u * 60)

/* Signs, with the SM's key, the TEE-DS grant that opens service_id's
 * namespace (teex_ds_service_ns) to the attested worker address `worker`
 * until *expires_at (now + TEEX_SM_DS_GRANT_TTL_S). out holds
 * TEEX_DS_GRANT_MAX bytes; *out_len is set. TEEX_ECRYPTO. */
int teex_sm_ds_grant(const struct teex_sm *sm, const uint8_t service_id[32],
                     const uint8_t worker[20], uint8_t *out, size_t *out_len,
                     uint64_t *expires_at);

/* The key of TEE-DS group group_id, for a replica already checked with
 * teex_sm_check_enclave (role ds): made (random) and kept sealed in the SM's
 * store the first time, the same afterwards. The caller wipes key. */
int teex_sm_ds_group_key(struct teex_sm *sm, const uint8_t group_id[16],
                         uint8_t key[32], struct teex_err *err);

/* The EnclaveRegistration statement for a checked enclave: role 1 worker,
 * 2 dispatcher. */
int teex_sm_sign_registration(struct teex_sm *sm,
                              const struct teex_tee_identity *id, uint8_t *role,
                              uint8_t sig[65], struct teex_err *err);

/* ---- datasets (src/sm/sm_data.c) ----
 * A data provider escrows a dataset's data key with the SM; the SM releases
 * it, as a lease that ends with the task, only to an attested worker
 * holding the dispatcher-signed assignment of a task that names the
 * dataset, for a service and image hash the listing approves, while the
 * listing is neither expired nor revoked and under its maximum uses. The
 * use counter lives in the SM's sealed local store (see docs/internals/
 * data.md for what rolling it back allows). */

#define TEEX_SM_DATASET_NAME_MAX 64
#define TEEX_SM_TASK_DATASETS_MAX 16 /* datasets one task may use */
#define TEEX_SM_DATA_MAX (32u << 20) /* plaintext bytes of a dataset */

struct teex_sm_escrow {
  uint8_t dataset_id[32]; /* teex_dataset_id(provider, name) */
  char name[TEEX_SM_DATASET_NAME_MAX + 1];
  uint8_t provider[20];
  uint8_t plaintext_hash[32]; /* SHA-256 of the plaintext */
  uint64_t plaintext_size;
  char cid[TEEX_SM_CID_MAX + 1]; /* where the ciphertext is */
  uint8_t data_key[32];
  const uint8_t *ciphertext; /* the encrypted dataset (may be NULL) */
  size_t ciphertext_len;
  uint8_t provider_sig[65];
  /* Set by the daemon when the chain has no listing for the id yet: an
   * earlier escrow with another key may then be replaced (a publish whose
   * listing failed is retried with a fresh key; nothing can depend on an
   * unlisted key, as no lease is given for it). */
  int replace_unlisted;
};

/* The digest a data provider signs (EIP-191 personal message over
 * keccak256("teex/sm/v1/escrow-data-key" || chain id (8, BE) || SM address
 * || dataset id || provider || plaintext hash || plaintext size (8, BE) ||
 * keccak256(cid))). */
void teex_sm_escrow_digest(const struct teex_sm_escrow *e, uint64_t chain_id,
                           const uint8_t sm_addr[20], uint8_t out[32]);

/* Keeps a dataset's key: the provider's signature, the id derived from the
 * provider and the name, and — when the ciphertext is given — that it
 * decrypts under data_key to plaintext_size bytes whose SHA-256 is
 * plaintext_hash. The same request again is accepted (a retry); another
 * key or terms for a known dataset is refused unless e->replace_unlisted.
 * TEEX_EBADSIG, TEEX_EINVAL (id, name, size), TEEX_EAUTH (does not
 * decrypt), TEEX_EATTEST (hash or size differs), TEEX_EEXIST. */
int teex_sm_escrow_data_key(struct teex_sm *sm, const struct teex_sm_escrow *e,
                            struct teex_err *err);

/* What the chain says at lease time (the daemon reads it; tests pass it). */
struct teex_sm_data_terms {
  int listed; /* 0: no listing for the dataset id */
  uint8_t provider[20];
  int revoked;
  uint64_t expires_at; /* 0: never */
  uint32_t max_uses;   /* 0: unlimited */
  uint64_t max_output_bytes;
  teex_amount price;     /* wei per use (for the receipt's data share) */
  int approved;          /* the assignment's (service, image hash) */
  int dispatcher_active; /* the assignment's dispatcher is registered */
};

struct teex_sm_lease_req {
  uint8_t worker[20];                /* the attested caller's enclave address */
  struct teex_assignment assignment; /* datasets_hash names the datasets */
  uint8_t dispatcher_sig[65];
  const uint8_t *dataset_ids; /* the task's datasets, 32 bytes each, in
                                 order: they must hash to datasets_hash */
  size_t n_datasets;
  size_t index; /* which of them is leased */
};

struct teex_sm_data_lease {
  uint8_t data_key[32];
  char name[TEEX_SM_DATASET_NAME_MAX + 1];
  uint8_t provider[20]; /* the data share's payee */
  teex_amount price;    /* the listing's price per use now */
  char cid[TEEX_SM_CID_MAX + 1];
  uint8_t plaintext_hash[32];
  uint64_t plaintext_size;
  uint64_t max_output_bytes; /* 0: no cap */
  uint64_t expires_at;       /* the lease ends with the assignment */
  uint32_t uses;             /* tasks counted for this dataset so far */
};

/* Releases a data key for one task (see above), checked in this order:
 * the assignment (signature of its dispatcher, dispatcher registered,
 * chain, addressed to this worker, not expired), the dataset among the
 * task's, the escrowed key, the listing (listed by the escrowing provider,
 * not revoked, not expired at now, the pair approved), the use count. A
 * task is counted once: a second lease for the same task and dataset is
 * not a new use. TEEX_EBADSIG, TEEX_EPERM (another worker, unapproved,
 * unregistered dispatcher), TEEX_EEXPIRED, TEEX_EPOLICY (revoked, uses
 * exhausted), TEEX_ENOTFOUND (no key or no listing), TEEX_EINVAL. The
 * caller wipes out once sent. */
int teex_sm_lease_data_key(struct teex_sm *sm,
                           const struct teex_sm_lease_req *req,
                           const struct teex_sm_data_terms *terms, uint64_t now,
                           struct teex_sm_data_lease *out,
                           struct teex_err *err);

/* The use count of a dataset (0 when never leased). */
int teex_sm_data_uses(struct teex_sm *sm, const uint8_t dataset_id[32],
                      uint32_t *uses, struct teex_err *err);

/* Where the SM's state (keys, grants, counters) lives, for sm_data.c
 * (internal): the sealed local store, or TEE-DS after teex_sm_use_ds. */
struct teex_statestore *teex_sm__state(struct teex_sm *sm);

/* ---- state in TEE-DS ----
 * Without a group the SM keeps everything in its sealed local store. With
 * one, the local store keeps only the bootstrap set — the SM's identity
 * (from which the TEE-DS state keys are derived), the TEE-DS group keys it
 * provisions (replicas must get them before any group is up), enclave
 * records and revocations (checked on the group-key path too) — and
 * services, image keys, data keys, use counters and leases live in TEE-DS,
 * encrypted by the SM (include/teex/statestore.h). No fallback: while the
 * group is unreachable, requests that need that state fail with a clear
 * error and nothing is changed. */

/* Moves the SM's state to the TEE-DS group of cc (namespace cc->ns; the
 * replicas and cc->tls borrowed, must outlive the SM). Records of those
 * kinds still in the local store (an SM that ran without a group) are
 * migrated once: copied into TEE-DS (a record TEE-DS already holds must be
 * identical, else TEEX_EEXIST and nothing changes), then deleted locally.
 * Needs the group only when there is something to migrate. */
int teex_sm_use_ds(struct teex_sm *sm, const struct teex_ds_client_config *cc,
                   struct teex_err *err);

/* "local" or "tee-ds". */
const char *teex_sm_state_backend(const struct teex_sm *sm);

/* ---- the monitor's records (src/sm/sm_monitor.c) ----
 * What the SM knows of each enclave beyond its enc/ record: its standing
 * attestation (renewed on the enclave's timer with sm.Attest), what it was
 * given, and whether its revocation reached the chain. */

/* The validity window in force (cfg.attest_valid_s or the default). */
uint32_t teex_sm_attest_valid(const struct teex_sm *sm);

/* Records an attestation of enclave at now: fresh evidence that
 * teex_sm_check_enclave accepted (sm.Attest, sm.RegisterEnclave,
 * sm.DsGroupKey). Starts a new validity window; *valid_until (may be NULL)
 * is its end. */
int teex_sm_note_attestation(struct teex_sm *sm, const uint8_t enclave[20],
                             uint64_t now, uint64_t *valid_until,
                             struct teex_err *err);

/* Whether enclave may receive a key or a lease at now: its last
 * attestation is less than teex_sm_attest_valid seconds old. An enclave
 * never attested before is admitted, and this check is recorded as its
 * first attestation. TEEX_EPOLICY "attestation expired at T (...)" when
 * the window has passed: the enclave must call sm.Attest again. */
int teex_sm_check_attestation(struct teex_sm *sm, const uint8_t enclave[20],
                              uint64_t now, struct teex_err *err);

/* As teex_sm_ds_grant, but the grant also ends with worker's attestation
 * window (at most TEEX_SM_DS_GRANT_TTL_S from now): a worker that stops
 * re-attesting, or is revoked and so cannot, loses teex.kv access when its
 * window closes. TEEX_ECRYPTO. */
int teex_sm_ds_grant_bounded(struct teex_sm *sm, const uint8_t service_id[32],
                             const uint8_t worker[20], uint64_t now,
                             uint8_t *out, size_t *out_len,
                             uint64_t *expires_at, struct teex_err *err);

/* The time of enclave's last attestation (0 when none). */
int teex_sm_attested_at(struct teex_sm *sm, const uint8_t enclave[20],
                        uint64_t *at, struct teex_err *err);

/* What an enclave was given. */
enum teex_sm_held_kind {
  TEEX_SM_HELD_SERVICE = 1, /* service keys and image key: id = service id,
                               sub = image hash; expires_at = end of the
                               TEE-DS grant that came with them */
  TEEX_SM_HELD_LEASE = 2,   /* a data key: id = dataset id, sub = task id;
                               expires_at = end of the lease */
  TEEX_SM_HELD_GROUP = 3,   /* a TEE-DS group key: id = group id (16 bytes,
                               zero-padded) */
};

struct teex_sm_holding {
  uint8_t kind; /* enum teex_sm_held_kind */
  uint8_t id[32];
  uint8_t sub[32];
  uint64_t first_at;   /* first release */
  uint64_t last_at;    /* latest release */
  uint64_t expires_at; /* 0: does not expire */
};

/* Records that h was released to enclave at now (a repeat updates last_at
 * and expires_at). One write; ended leases stay until
 * teex_sm_prune_holdings. */
int teex_sm_note_holding(struct teex_sm *sm, const uint8_t enclave[20],
                         const struct teex_sm_holding *h, uint64_t now,
                         struct teex_err *err);

/* Drops every lease record that ended by now (one scan of all holdings, in
 * one transaction; the daemon runs it every minute). */
int teex_sm_prune_holdings(struct teex_sm *sm, uint64_t now,
                           struct teex_err *err);

/* Calls cb for what enclave holds at now: every service and group key it
 * was given (those cannot be taken back) and its unexpired leases. cb
 * returning non-zero stops. */
int teex_sm_holdings(struct teex_sm *sm, const uint8_t enclave[20],
                     uint64_t now,
                     int (*cb)(const struct teex_sm_holding *h, void *arg),
                     void *arg, struct teex_err *err);

/* Where an enclave's revocation stands on chain. */
enum teex_sm_chain_state {
  TEEX_SM_CHAIN_NONE = 0,      /* not revoked, or no chain configured */
  TEEX_SM_CHAIN_PENDING = 1,   /* to be submitted, or being retried */
  TEEX_SM_CHAIN_CONFIRMED = 2, /* EnclaveRegistry.revoke mined */
};

struct teex_sm_chain_revocation {
  uint8_t enclave[20];
  uint8_t state;     /* enum teex_sm_chain_state */
  uint32_t attempts; /* submissions tried */
  uint64_t updated;  /* last attempt or confirmation */
  char last_error[TEEX_SM_REASON_MAX + 1];
};

/* Queues enclave's revocation for submission (a no-op when queued or
 * confirmed already). */
int teex_sm_chain_revocation_queue(struct teex_sm *sm,
                                   const uint8_t enclave[20], uint64_t now,
                                   struct teex_err *err);

/* Records an attempt: confirmed, or failed with error (kept pending). */
int teex_sm_chain_revocation_result(struct teex_sm *sm,
                                    const uint8_t enclave[20], int confirmed,
                                    const char *error, uint64_t now,
                                    struct teex_err *err);

/* The record of enclave (state NONE when there is none). */
int teex_sm_chain_revocation_get(struct teex_sm *sm, const uint8_t enclave[20],
                                 struct teex_sm_chain_revocation *out,
                                 struct teex_err *err);

/* Calls cb for every revocation queued for the chain, pending or
 * confirmed; cb returning non-zero stops. */
int teex_sm_chain_revocations(
    struct teex_sm *sm,
    int (*cb)(const struct teex_sm_chain_revocation *r, void *arg), void *arg,
    struct teex_err *err);

/* Calls cb for every pending revocation; cb returning non-zero stops. */
int teex_sm_chain_revocations_pending(
    struct teex_sm *sm,
    int (*cb)(const struct teex_sm_chain_revocation *r, void *arg), void *arg,
    struct teex_err *err);

/* The SM's secp256k1 secret key (internal: the daemon's chain account,
 * which pays for the revocations it submits). Borrowed, locked memory. */
const uint8_t *teex_sm__secp256k1_sk(const struct teex_sm *sm);

/* The SM's sealed local store (internal): the bootstrap set, with the
 * enclave records, revocations and the monitor's records
 * (src/sm/sm_monitor.c), which stay local even when the rest of the state
 * is in TEE-DS (they are read on the group-key path, before any group is
 * up). */
struct teex_store *teex_sm__local_store(struct teex_sm *sm);

#endif
