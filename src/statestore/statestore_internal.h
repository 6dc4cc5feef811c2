/* Internal to src/statestore: what the front (statestore.c, which is also
 * the local backend) shares with the TEE-DS backend (statestore_ds.c). */
#ifndef TEEX_STATESTORE_INTERNAL_H
#define TEEX_STATESTORE_INTERNAL_H

#include "teex/statestore.h"

enum teex_statestore__kind { STATESTORE_LOCAL = 1, STATESTORE_DS = 2 };

struct teex_statestore__ds; /* statestore_ds.c */
struct teex_statestore__dstxn;

struct teex_statestore {
  enum teex_statestore__kind kind;
  struct teex_store *store;       /* local: borrowed */
  struct teex_statestore__ds *ds; /* tee-ds: owned */
};

struct teex_statestore_txn {
  struct teex_statestore *s;
  struct teex_store_txn *local;      /* local backend */
  struct teex_statestore__dstxn *ds; /* TEE-DS backend */
};

/* 0 when name is "<category>/<rest>" within the limits, else TEEX_EINVAL
 * with a message. */
int teex_statestore__check_name(const char *name, struct teex_err *err);
/* 0 when category is 1..TEEX_STATESTORE_CATEGORY_MAX of [a-z0-9_-]. */
int teex_statestore__check_category(const char *category, size_t len);

/* ---- the TEE-DS backend ---- */

/* A record's TEE-DS value: XChaCha20-Poly1305 under key, dskey as
 * associated data, over len(name) (u16 BE) | name | val. out holds
 * 2 + strlen(name) + len + TEEX_XAEAD_OVERHEAD bytes (*out_len). 0 or
 * TEEX_ENOMEM / TEEX_ECRYPTO. */
int teex_statestore__record_seal(const uint8_t key[32], const char *dskey,
                                 size_t dskey_len, const char *name,
                                 const void *val, size_t len, uint8_t *out,
                                 size_t *out_len);
/* Opens a TEE-DS value found under dskey: the name inside (1..NAME_MAX
 * bytes, no NUL) into name, the value into *val (malloc'd; the caller
 * wipes and frees it). TEEX_EAUTH (does not open, or malformed inside),
 * TEEX_ENOMEM. */
int teex_statestore__record_open(const uint8_t key[32], const char *dskey,
                                 size_t dskey_len, const uint8_t *ct,
                                 size_t ct_len,
                                 char name[TEEX_STATESTORE_NAME_MAX + 1],
                                 uint8_t **val, size_t *val_len,
                                 struct teex_err *err);
int teex_statestore__ds_open(const struct teex_statestore_ds_config *cfg,
                             struct teex_statestore__ds **out,
                             struct teex_err *err);
void teex_statestore__ds_close(struct teex_statestore__ds *d);
int teex_statestore__ds_txn_new(struct teex_statestore__ds *d,
                                struct teex_statestore__dstxn **out);
void teex_statestore__ds_txn_free(struct teex_statestore__dstxn *t);
int teex_statestore__ds_txn_get(struct teex_statestore__dstxn *t,
                                const char *name, struct teex_buf *out,
                                struct teex_err *err);
int teex_statestore__ds_txn_put(struct teex_statestore__dstxn *t,
                                const char *name, const void *val, size_t len,
                                int del, struct teex_err *err);
/* 0 committed; TEEX_ESTATE: a conflict, or an outcome that is unknown
 * (both: run the transaction again); other errors: give up. */
int teex_statestore__ds_txn_commit(struct teex_statestore__dstxn *t,
                                   struct teex_err *err);
int teex_statestore__ds_scan(struct teex_statestore__ds *d,
                             const char *category,
                             int (*cb)(const char *name, const uint8_t *val,
                                       size_t len, void *arg),
                             void *arg, struct teex_err *err);

#endif
