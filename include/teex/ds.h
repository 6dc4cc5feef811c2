/* TEE-DS: the replicated, encrypted key-value store inside TEEs.
 *
 * This header holds the client-facing command and result types, their wire
 * encoding, the deterministic state machine that applies them, and the
 * replica handle that ties the state machine to a consensus group and seals
 * every command under the group key. The consensus interface itself is
 * internal (src/ds/consensus.h); docs/internals/ds.md describes the design,
 * what is encrypted, and how the transport and RESP proxy plug in. */
#ifndef TEEX_DS_H
#define TEEX_DS_H

#include "teex/error.h"

#include <stddef.h>
#include <stdint.h>

/* ---- limits (every length from a peer is checked against these) ---- */
#define TEEX_DS_NS_MAX 64             /* namespace name, bytes */
#define TEEX_DS_KEY_MAX 512           /* full key "ns/rest", bytes */
#define TEEX_DS_VALUE_MAX (64 * 1024) /* one value, bytes */
#define TEEX_DS_MSET_MAX 64           /* pairs in one multi-set or txn */
#define TEEX_DS_SCAN_MAX 256          /* items in one scan page */
#define TEEX_DS_KEYS_MAX (1u << 20)   /* live keys in one group */
#define TEEX_DS_TTL_MAX_MS (10ull * 365 * 24 * 3600 * 1000)
/* Largest encoded command (a full multi-set plus headers). */
#define TEEX_DS_CMD_MAX                                                        \
  (256 + TEEX_DS_NS_MAX +                                                      \
   TEEX_DS_MSET_MAX * (8 + TEEX_DS_KEY_MAX + TEEX_DS_VALUE_MAX))

enum teex_ds_op {
  TEEX_DS_GET = 1,
  TEEX_DS_SET = 2,
  TEEX_DS_DEL = 3,
  TEEX_DS_CAS = 4,  /* compare-and-set */
  TEEX_DS_INCR = 5, /* add a signed delta to a decimal integer value */
  TEEX_DS_MSET = 6, /* set several keys atomically */
  TEEX_DS_SCAN = 7, /* keys with a prefix, in byte order, paginated */
  /* Sets or clears an existing key's expiry: ttl_ms > 0 expires it ttl_ms
   * after the group clock, ttl_ms 0 removes the expiry (PERSIST). found = the
   * key existed; TEEX_ENOTFOUND otherwise. */
  TEEX_DS_EXPIRE = 8,
  /* Number of live keys under the prefix `key` (which must start with
   * "grant/"), in num. Read-only, like GET and SCAN. */
  TEEX_DS_COUNT = 9,
  /* Atomic conditional multi-key write (an optimistic transaction's
   * commit): pairs[i] is acted on as expect[i] says (expect_len ==
   * n_pairs, one TEEX_DS_TXN_* byte per pair). Every check is evaluated
   * against the state before the command; only if all hold are the writes
   * applied, in order (a later write of the same key wins). Otherwise
   * status TEEX_ESTATE, nothing changes, and num is the index of the first
   * check that failed. On success num is the number of writes. */
  TEEX_DS_TXN = 10,
  /* Placement of the grant's namespace on this group (scale-out,
   * include/teex/ds_place.h). val is a placement record
   * (teex_ds_place_record_encode): state OWNED clears the namespace's
   * marker, FROZEN refuses every write to the namespace with TEEX_EBUSY
   * (reads go on), MOVED answers every command on it with TEEX_EMOVED
   * (res->val = the record, carrying the signed directory) and deletes all
   * its keys. Refused (TEEX_ESTATE): a record of a lower epoch than the
   * current one, and FROZEN/OWNED at the epoch that MOVED it. found/val:
   * the previous record. key must be empty. The replicas take it only from
   * an operator client (group.conf [clients]). num = keys deleted. */
  TEEX_DS_PLACE = 32,
};

/* TEEX_DS_TXN pair kinds. */
#define TEEX_DS_TXN_EQ 1     /* check: the key holds exactly val (live) */
#define TEEX_DS_TXN_ABSENT 2 /* check: the key does not exist (val unused) */
#define TEEX_DS_TXN_PUT 3    /* write: set the key to val, no expiry */
#define TEEX_DS_TXN_DEL 4    /* write: delete the key (absent is fine) */

/* SET flags. */
#define TEEX_DS_IF_ABSENT 0x01  /* only if the key does not exist (NX) */
#define TEEX_DS_IF_PRESENT 0x02 /* only if the key exists (XX) */
#define TEEX_DS_KEEP_TTL 0x04   /* SET/INCR of an existing key keeps its TTL */
/* CAS flag: the expected state is "absent" (expect is ignored). */
#define TEEX_DS_EXPECT_ABSENT 0x08

struct teex_ds_pair {
  const uint8_t *key;
  size_t key_len;
  const uint8_t *val;
  size_t val_len;
};

/* One command. Pointers are borrowed; nothing is owned.
 *
 * grant: the namespace the caller was granted (set by the server from the
 * caller's evidence and the SM's grant, never by the client); every key must
 * be "grant/..." or the command is refused with TEEX_EPERM.
 * key: GET/SET/DEL/CAS/INCR: the key; SCAN: the prefix (must itself start
 * with "grant/"). val: SET value, CAS new value. expect: CAS expected value.
 * TXN: pairs, and expect holds one kind byte per pair.
 * delta: INCR. ttl_ms: SET/CAS/INCR/MSET, 0 = no expiry. after: SCAN cursor
 * (the last key of the previous page, or empty). limit: SCAN page size
 * (1..TEEX_DS_SCAN_MAX). */
struct teex_ds_cmd {
  uint8_t op;
  uint8_t flags;
  const char *grant;
  const uint8_t *key;
  size_t key_len;
  const uint8_t *val;
  size_t val_len;
  const uint8_t *expect;
  size_t expect_len;
  int64_t delta;
  uint64_t ttl_ms;
  const struct teex_ds_pair *pairs;
  size_t n_pairs;
  const uint8_t *after;
  size_t after_len;
  uint32_t limit;
};

/* The result of one applied command, identical on every replica.
 *
 * status: 0; TEEX_ENOTFOUND (GET/DEL/INCR-free: missing key; SET IF_PRESENT
 * on a missing key); TEEX_EEXIST (SET IF_ABSENT on an existing key);
 * TEEX_ESTATE (CAS mismatch: val holds the current value, or found = 0);
 * TEEX_EFORMAT (INCR on a non-integer value); TEEX_EINVAL (INCR overflow,
 * invalid command); TEEX_EPERM (key outside the grant); TEEX_ENOSPC (key
 * count limit); TEEX_EREPLAY (an entry replayed or out of order in the log);
 * TEEX_EBUSY (a write to a namespace frozen while it moves to another group:
 * nothing was applied, retry) and TEEX_EMOVED (the namespace lives in
 * another group now) — both with val = the placement record (ds_place.h).
 * found: the key existed (live) before the command.
 * val: GET value, CAS current value on mismatch. num: INCR new value, DEL 1
 * or 0. items/n_items/more: SCAN page (more = 1 if another page follows; the
 * cursor is the last item's key). index: the log index the command was
 * applied at; clock_ms: the group clock it was applied with.
 * expire_at_ms: GET of a live key: the group-clock time it expires at, 0 when
 * it has no expiry (a remaining TTL is expire_at_ms - clock_ms). */
struct teex_ds_result {
  int status;
  int found;
  uint8_t *val;
  size_t val_len;
  int64_t num;
  struct teex_ds_pair *items; /* keys and values owned by the result */
  size_t n_items;
  int more;
  uint64_t index;
  uint64_t clock_ms;
  uint64_t expire_at_ms;
};

/* Frees a result returned by this module (its val, items). NULL-safe. */
void teex_ds_result_free(struct teex_ds_result *res);

/* ---- command encoding (the plaintext inside a sealed log entry) ---- */

/* Encodes cmd into a malloc'd buffer (*out, *out_len; the caller frees).
 * Validates every limit first: TEEX_EINVAL, TEEX_ETOOBIG, TEEX_ENOMEM. */
int teex_ds_cmd_encode(const struct teex_ds_cmd *cmd, uint8_t **out,
                       size_t *out_len, struct teex_err *err);

/* A decoded command whose pointers reference the input buffer. */
struct teex_ds_cmd_view {
  struct teex_ds_cmd cmd;
  char grant[TEEX_DS_NS_MAX + 1];
  struct teex_ds_pair pairs[TEEX_DS_MSET_MAX];
};

/* Decodes buf (which must outlive view). TEEX_ETRUNC, TEEX_EFORMAT,
 * TEEX_ETOOBIG, TEEX_EVERSION, TEEX_EINVAL. */
int teex_ds_cmd_decode(const uint8_t *buf, size_t len,
                       struct teex_ds_cmd_view *view, struct teex_err *err);

/* ---- the deterministic state machine (no I/O, no local clock) ---- */

struct teex_ds_kv;

/* new/free. free is NULL-safe and wipes keys and values. */
int teex_ds_kv_new(struct teex_ds_kv **out);
void teex_ds_kv_free(struct teex_ds_kv *kv);

/* Applies one command at log index `index` with the group clock `clock_ms`
 * (proposed by the leader inside the sealed entry; the state machine keeps
 * its clock monotonic: max(previous, clock_ms)). Fills *res (caller frees
 * with teex_ds_result_free). Returns 0 when the command was applied (its
 * outcome, including refusals, is in res->status) or TEEX_ENOMEM. */
int teex_ds_kv_apply(struct teex_ds_kv *kv, uint64_t index, uint64_t clock_ms,
                     const struct teex_ds_cmd *cmd, struct teex_ds_result *res);

/* Executes a read-only command (GET, SCAN, COUNT) against the local state at
 * the state machine's current clock, without changing anything. TEEX_EINVAL for
 * a command that writes. Used after a barrier (linearizable read) or on a
 * follower (bounded-staleness read). */
int teex_ds_kv_read(const struct teex_ds_kv *kv, const struct teex_ds_cmd *cmd,
                    struct teex_ds_result *res);

/* Number of live (unexpired at the current clock) keys; current clock. */
size_t teex_ds_kv_count(const struct teex_ds_kv *kv);
uint64_t teex_ds_kv_clock(const struct teex_ds_kv *kv);

/* A digest of the whole applied state (keys, values, expiries, clock), for
 * comparing replicas in tests and for the later freshness anchor. */
void teex_ds_kv_digest(const struct teex_ds_kv *kv, uint8_t out[32]);

/* Snapshot: serialise the whole state (malloc'd, caller frees) / replace
 * the state with a decoded snapshot (all or nothing). */
int teex_ds_kv_snapshot(const struct teex_ds_kv *kv, uint8_t **out,
                        size_t *out_len);
int teex_ds_kv_restore(struct teex_ds_kv *kv, const uint8_t *buf, size_t len,
                       struct teex_err *err);

/* ---- a replica: the state machine behind a consensus group ----
 *
 * Every command is sealed before it is proposed: a log entry is
 *   "TXD1" | group_id(16) | term(8) | seq(8) | nonce(24) | ct | tag(16)
 * with XChaCha20-Poly1305 under the group key, the first 36 bytes as
 * associated data, and plaintext = leader clock (8) | encoded command. The
 * state machine applies an entry only if its (term, seq) is greater than the
 * last applied one's (so an entry cannot be replayed or reordered in the
 * log) and its group_id is this group's (so it cannot move across groups).
 * A replica that cannot open an entry halts (status.failed) instead of
 * skipping it. */

struct teex_ds_replica;
struct teex_ds_consensus; /* src/ds/consensus.h */

struct teex_ds_replica_config {
  uint8_t group_id[16];
  /* 32-byte group key (provisioned by the SM to attested replicas); copied
   * into locked memory and wiped on free. */
  const uint8_t *group_key;
  /* Or, with rotation: the group's keys per epoch (src/ds/keyset.h
   * encoding); when set, group_key is ignored. New entries and snapshots
   * are sealed under the last (current) epoch. */
  const uint8_t *group_keys;
  size_t group_keys_len;
  /* Called (from apply or restore) for an entry or snapshot sealed under
   * an epoch this replica lacks: fetch it and hand it over with
   * teex_ds_replica_add_keys, then return 0. NULL, or an error: the
   * replica halts (never skips the entry). */
  int (*need_key)(void *arg, struct teex_ds_replica *r, uint32_t epoch);
  void *need_key_arg;
  /* The proposing leader's clock in ms (Unix time). NULL: CLOCK_REALTIME.
   * Only the leader reads it, when proposing; replicas never do. */
  uint64_t (*clock_ms)(void *arg);
  void *clock_arg;
};

/* Creates a replica with an empty state. TEEX_EINVAL, TEEX_ENOMEM. */
int teex_ds_replica_new(const struct teex_ds_replica_config *cfg,
                        struct teex_ds_replica **out, struct teex_err *err);
/* Group key rotation. add_keys merges encoded keys (keyset.h) into the
 * replica's set (TEEX_EAUTH if an epoch it holds has another key);
 * rotate adds epoch current+1 with key and makes it current: entries and
 * snapshots this replica seals from then on use it. keys_encode writes the
 * whole set (at most TEEX_DS_KEYS_ENC_MAX bytes) into out, returning its
 * length; the caller wipes it. */
#define TEEX_DS_KEYS_ENC_MAX (8 + 64 * 36)
int teex_ds_replica_add_keys(struct teex_ds_replica *r, const uint8_t *keys,
                             size_t len, struct teex_err *err);
int teex_ds_replica_rotate(struct teex_ds_replica *r, const uint8_t key[32],
                           uint32_t *epoch, struct teex_err *err);
size_t teex_ds_replica_keys_encode(const struct teex_ds_replica *r,
                                   uint8_t *out);
uint32_t teex_ds_replica_key_epoch(const struct teex_ds_replica *r);

/* Frees the replica (not its consensus) and wipes the group key. */
void teex_ds_replica_free(struct teex_ds_replica *r);

/* Binds the consensus that carries this replica's log (not owned). */
void teex_ds_replica_bind(struct teex_ds_replica *r,
                          struct teex_ds_consensus *c);

/* status 0: applied; res (owned by the callback; teex_ds_result_free, then
 * free the struct with free()) holds the outcome. status < 0: not
 * committed (TEEX_ESTATE not leader / leadership lost; TEEX_ECANCELED), res
 * NULL; the command may or may not take effect later (an indeterminate
 * write: retry with CAS or an idempotent command). */
typedef void (*teex_ds_done_cb)(void *arg, int status,
                                struct teex_ds_result *res);

/* Seals cmd and proposes it (on the leader). Every replica applies it; the
 * result reaches cb on this replica. Fails synchronously without calling cb:
 * TEEX_ESTATE (not leader), TEEX_EINVAL/ETOOBIG (bad command), TEEX_ENOMEM. */
int teex_ds_replica_submit(struct teex_ds_replica *r,
                           const struct teex_ds_cmd *cmd, teex_ds_done_cb cb,
                           void *arg, struct teex_err *err);

/* Linearizable read (GET, SCAN, COUNT) on the leader without a log entry of its
 * own: a barrier confirms leadership and that everything committed before
 * the call is applied, then the command runs on the local state. */
int teex_ds_replica_read(struct teex_ds_replica *r,
                         const struct teex_ds_cmd *cmd, teex_ds_done_cb cb,
                         void *arg, struct teex_err *err);

/* Reads the local state now (any replica; may be stale by the replication
 * lag). res is filled in place (teex_ds_result_free). */
int teex_ds_replica_read_local(struct teex_ds_replica *r,
                               const struct teex_ds_cmd *cmd,
                               struct teex_ds_result *res);

struct teex_ds_status {
  int leader;
  uint64_t self_id, leader_id, term, last_applied, last_index;
  uint64_t clock_ms;         /* group clock of the last applied command */
  size_t keys;               /* live keys */
  uint64_t refused;          /* entries refused as replayed/out of order */
  uint8_t applied_chain[32]; /* hash chain of applied entries + results */
  int failed;        /* 0, or why this replica halted (TEEX_EAUTH ...) */
  char failure[256]; /* human message when failed */
};
void teex_ds_replica_status(struct teex_ds_replica *r,
                            struct teex_ds_status *st);

/* Freshness anchor check: when this replica applies entry `index`, its
 * applied hash chain must equal `chain` (the anchor's); otherwise it halts
 * with TEEX_EROLLBACK ("forked: ..."). Skipped when the chain was not
 * computed from the first entry (a snapshot was restored: snapshots do not
 * carry the chain). Set before the replica applies anything. */
enum teex_ds_watch {
  TEEX_DS_WATCH_NONE = 0,
  TEEX_DS_WATCH_PENDING, /* index not applied yet */
  TEEX_DS_WATCH_MATCHED,
  TEEX_DS_WATCH_FORKED,
  TEEX_DS_WATCH_SKIPPED, /* chain not comparable (snapshot restored) */
};
void teex_ds_replica_watch(struct teex_ds_replica *r, uint64_t index,
                           const uint8_t chain[32]);
enum teex_ds_watch
teex_ds_replica_watch_result(const struct teex_ds_replica *r);

/* The applied state (for status and tests; not owned). */
const struct teex_ds_kv *teex_ds_replica_kv(const struct teex_ds_replica *r);

/* ---- teex.kv: a service's own namespace (src/ds/service_ns.c) ----
 *
 * A service's namespace is "s" followed by the first 20 bytes of its
 * 32-byte service id in lower-case hex (41 characters). A task's commands
 * carry keys relative to that namespace; the worker maps them in and the
 * SCAN items back out, so a task can never name another namespace. */
#define TEEX_DS_SERVICE_NS_LEN 41

/* Writes the namespace of service_id into out (NUL-terminated). */
void teex_ds_service_ns(const uint8_t service_id[32],
                        char out[TEEX_DS_SERVICE_NS_LEN + 1]);

/* Copies cmd into *out with its key (and SCAN's cursor) put under "ns/",
 * built in key_buf / after_buf (which must outlive *out). GET SET DEL CAS
 * INCR SCAN only. TEEX_EINVAL (another operation, bad namespace),
 * TEEX_ETOOBIG (the full key over TEEX_DS_KEY_MAX). */
int teex_ds_ns_cmd(const char *ns, const struct teex_ds_cmd *cmd,
                   struct teex_ds_cmd *out, uint8_t key_buf[TEEX_DS_KEY_MAX],
                   uint8_t after_buf[TEEX_DS_KEY_MAX]);

/* Takes "ns/" off the keys of res's SCAN items, in place. TEEX_EPROTO when
 * an item lies outside the namespace (a server bug: nothing is shown). */
int teex_ds_ns_result(const char *ns, struct teex_ds_result *res);

/* ---- SM grants: a worker's access to a service's namespace ----
 * (src/ds/grant.c)
 *
 * The SM, when it releases a service's keys to an attested worker, signs a
 * grant naming the worker's attested Ethereum address, the service's
 * namespace and an expiry. The worker presents it with each ds.Exec; a
 * replica whose group maps the worker's role to "*" (grants only) checks
 * the SM's signature against the group's SM address, that the grant names
 * the caller's attested address and the namespace asked for, and that it
 * has not expired. Layout (big-endian):
 *   "TXG1" | worker (20) | expires_at unix s (8) | ns_len (1) | ns | sig (65)
 * sig: secp256k1 over keccak256("teex ds grant v1" || all that precedes). */
#define TEEX_DS_GRANT_MAX (4 + 20 + 8 + 1 + TEEX_DS_NS_MAX + 65)

/* Signs a grant into out (*out_len bytes). TEEX_EINVAL (bad namespace or
 * key), TEEX_ECRYPTO. */
int teex_ds_grant_sign(const uint8_t sm_sk[32], const uint8_t worker[20],
                       const char *ns, uint64_t expires_at,
                       uint8_t out[TEEX_DS_GRANT_MAX], size_t *out_len);

/* Checks a grant for caller and ns at time now (unix seconds): TEEX_EFORMAT
 * (malformed), TEEX_EBADSIG (not signed by sm_addr), TEEX_EPERM (another
 * worker or namespace), TEEX_EEXPIRED. err says which. */
int teex_ds_grant_verify(const uint8_t *grant, size_t len,
                         const uint8_t sm_addr[20], const uint8_t caller[20],
                         const char *ns, uint64_t now, struct teex_err *err);

#endif
