/* A component's durable state ("statestore"): named records behind one
 * small interface with two backends, so a daemon's logic is written once.
 *
 *  - local: the sealed local store (include/teex/store.h) of the component;
 *  - TEE-DS: a replica group (include/teex/ds_client.h). Everything is
 *    encrypted by the calling enclave before it leaves the process
 *    (XChaCha20-Poly1305 under a key HKDF'd from the caller's root secret,
 *    the record's TEE-DS key as associated data, so records cannot be
 *    swapped), and a record's name is hidden: its TEE-DS key is
 *    "<ns>/<category>/<HMAC of the name>", the name itself travels inside the
 *    encrypted value. TEE-DS sees categories, sizes, counts and the access
 *    pattern, never a name or a value (docs/threat-model.md).
 *
 * Names are "<category>/<rest>": category 1..TEEX_STATESTORE_CATEGORY_MAX
 * bytes of [a-z0-9_-], rest non-empty, the whole at most
 * TEEX_STATESTORE_NAME_MAX bytes, NUL-terminated strings.
 *
 * Read-modify-write goes through teex_statestore_run: on TEE-DS it is an
 * optimistic transaction (reads are remembered; the commit is one atomic
 * conditional write, TEEX_DS_TXN, that applies only if nothing read
 * changed), re-run from scratch on a conflict a bounded number of times.
 *
 * Threads: one handle, one thread at a time. docs/internals/statestore.md. */
#ifndef TEEX_STATESTORE_H
#define TEEX_STATESTORE_H

#include "teex/buf.h"
#include "teex/ds_client.h"
#include "teex/error.h"
#include "teex/store.h"

#include <stddef.h>
#include <stdint.h>

#define TEEX_STATESTORE_CATEGORY_MAX 16
#define TEEX_STATESTORE_NAME_MAX 256
/* The largest value (the TEE-DS backend needs room for the name and the
 * AEAD overhead inside one TEE-DS value). */
#define TEEX_STATESTORE_VALUE_MAX                                              \
  (TEEX_DS_VALUE_MAX - 2 - TEEX_STATESTORE_NAME_MAX - 40)
/* Records one transaction may read and write together on TEE-DS. */
#define TEEX_STATESTORE_TXN_MAX TEEX_DS_MSET_MAX
/* How often teex_statestore_run re-runs a transaction that conflicted. */
#define TEEX_STATESTORE_RETRIES 16

struct teex_statestore;
struct teex_statestore_txn;

/* A statestore over the sealed local store `store` (borrowed: it must
 * outlive the handle). *out is owned by the caller. TEEX_ENOMEM. */
int teex_statestore_open_local(struct teex_store *store,
                               struct teex_statestore **out,
                               struct teex_err *err);

struct teex_statestore_ds_config {
  /* The group, the namespace (cfg.ns: the caller's enclave role's, from
   * group.conf [enclaves]) and the client TLS context (borrowed). */
  struct teex_ds_client_config client;
  /* The caller's root secret (e.g. its sealed identity key): the AEAD key
   * and the name-hashing key are derived from it with HKDF and labels
   * bound to `label`; the secret itself is not kept. */
  const uint8_t *secret;
  size_t secret_len;
  const char *label; /* e.g. "sm": different labels, unrelated keys */
};

/* A statestore in TEE-DS. Connects lazily (the first operation): opening
 * succeeds while the group is down. *out is owned by the caller.
 * TEEX_EINVAL (namespace, label), TEEX_ENOMEM. */
int teex_statestore_open_ds(const struct teex_statestore_ds_config *cfg,
                            struct teex_statestore **out, struct teex_err *err);

/* Closes (and for TEE-DS wipes the derived keys). NULL-safe. */
void teex_statestore_close(struct teex_statestore *s);

/* "local" or "tee-ds". */
const char *teex_statestore_backend(const struct teex_statestore *s);

/* One-shot get: the value into out (reset first; out's maximum bounds it:
 * TEEX_ETOOBIG). TEEX_ENOTFOUND; TEEX_EINVAL (name); TEEX_EAUTH (a record
 * that does not open under our key, or holds another name: tampered or
 * swapped); TEEX_ETIMEDOUT / TEEX_ECONN (TEE-DS unreachable: nothing was
 * changed); the local store's errors. */
int teex_statestore_get(struct teex_statestore *s, const char *name,
                        struct teex_buf *out, struct teex_err *err);

/* One-shot put (a transaction of one write). */
int teex_statestore_put(struct teex_statestore *s, const char *name,
                        const void *val, size_t len, struct teex_err *err);

/* The body of a transaction. It may run several times (after a conflict,
 * from scratch): it must touch nothing outside txn but what it redoes
 * each time. Returns 0 to commit, or an error (returned by
 * teex_statestore_run, nothing written). */
typedef int (*teex_statestore_txn_fn)(struct teex_statestore_txn *txn,
                                      void *arg, struct teex_err *err);

/* Runs fn in a transaction and commits what it wrote, atomically: on the
 * local store one write transaction; on TEE-DS one conditional write
 * that applies only if every record fn read is unchanged (a record read
 * as absent still absent). A conflict re-runs fn, at most
 * TEEX_STATESTORE_RETRIES times (then TEEX_EBUSY). A commit whose outcome
 * is unknown (the connection broke after sending) is re-run too: the
 * conditions make that safe — if the first commit landed, the re-run
 * reads what it wrote. TEEX_ETOOBIG: more than TEEX_STATESTORE_TXN_MAX
 * records read and written. */
int teex_statestore_run(struct teex_statestore *s, teex_statestore_txn_fn fn,
                        void *arg, struct teex_err *err);

/* Inside fn: a read (sees the transaction's own writes), a write, a
 * delete (of an absent record too). Errors as teex_statestore_get;
 * teex_statestore_txn_del does not report TEEX_ENOTFOUND. */
int teex_statestore_txn_get(struct teex_statestore_txn *txn, const char *name,
                            struct teex_buf *out, struct teex_err *err);
int teex_statestore_txn_put(struct teex_statestore_txn *txn, const char *name,
                            const void *val, size_t len, struct teex_err *err);
int teex_statestore_txn_del(struct teex_statestore_txn *txn, const char *name,
                            struct teex_err *err);

/* Calls cb for every record of `category`, in an unspecified order
 * (name order on the local store, hashed order on TEE-DS); cb returning
 * non-zero stops. cb must not call the statestore. The scan is not a
 * snapshot on TEE-DS (pages are read one after another). */
int teex_statestore_scan(struct teex_statestore *s, const char *category,
                         int (*cb)(const char *name, const uint8_t *val,
                                   size_t len, void *arg),
                         void *arg, struct teex_err *err);

/* Moves the records of `categories` (n of them) from the local statestore
 * `from` to `to` (TEE-DS, once a group is configured), except those
 * keep(name, keep_arg) returns non-zero for (keep may be NULL). Every
 * record is copied first (one transaction of `to` each), a record `to`
 * holds already identical skipped; then the local copies are deleted in
 * one transaction of `from`. A crash between leaves both; the next call
 * copies again (identical: skipped) and deletes. A record `to` holds with
 * another value: TEEX_EEXIST ("two <owner>s' state in one namespace?"),
 * nothing deleted locally. *moved (may be NULL): the records moved.
 * TEEX_EINVAL (`from` not local), TEEX_ENOMEM, both stores' errors. */
int teex_statestore_migrate(struct teex_statestore *from,
                            struct teex_statestore *to,
                            const char *const *categories, size_t n,
                            int (*keep)(const char *name, void *arg),
                            void *keep_arg, const char *owner, size_t *moved,
                            struct teex_err *err);

#endif
