/* Redis commands on TEE-DS: maps a parsed RESP command to the TEE-DS
 * commands (struct teex_ds_cmd) that carry it out, and their results back
 * to RESP replies, with Redis's semantics and reply types. No I/O: the
 * proxy runs each TEE-DS command through its backend and hands the result
 * back here; docs/internals/ds.md ("Redis protocol at the edge") lists the
 * commands and where they differ from Redis.
 *
 * Keys: a Redis key K is the TEE-DS key "NS/K" of the proxy's namespace NS;
 * the prefix is stripped from every key returned (SCAN). */
#ifndef TEEX_DS_RESP_CMDS_H
#define TEEX_DS_RESP_CMDS_H

#include "ds/resp.h"
#include "teex/buf.h"
#include "teex/ds.h"
#include "teex/ds_proxy.h"

#include <stddef.h>
#include <stdint.h>

/* Read modes given to the backend (the values of the network client's
 * enum teex_ds_read_mode). */
#define TEEX_RESP_READ_LINEARIZABLE 0
#define TEEX_RESP_READ_FOLLOWER 1

/* SCAN cursors: a cursor is a small integer naming the last key of a page
 * (redis-cli reads cursors as unsigned 64-bit integers). The table is
 * shared by every connection of a proxy, so a client library that sends
 * each SCAN of one iteration on another pooled connection works; the
 * oldest cursor is forgotten when a new one needs its slot. A cursor only
 * names a key of the proxy's own namespace, which every client of the
 * proxy may read anyway. */
#define TEEX_RESP_CURSORS 1024
struct teex_resp_cursors {
  uint64_t next; /* the last id handed out */
  struct {
    uint64_t id; /* 0: free */
    size_t len;
    uint8_t key[TEEX_DS_KEY_MAX];
  } slot[TEEX_RESP_CURSORS];
};
/* COUNT of a SCAN without one (Redis's default). */
#define TEEX_RESP_SCAN_DEFAULT 10

/* One client connection's state. */
struct teex_resp_session {
  char ns[TEEX_DS_NS_MAX + 1];
  size_t ns_len;
  int read_mode;  /* TEEX_RESP_READ_* for GET, MGET, EXISTS, TTL, SCAN, ... */
  int quit;       /* QUIT was answered: close once the reply is written */
  char name[128]; /* CLIENT SETNAME */
  uint64_t id;    /* connection id (HELLO, CLIENT ID) */
  struct teex_resp_cursors *cursors; /* not owned; NULL: SCAN pages of one */
  /* INFO's backend section (may be NULL). */
  void (*info)(void *arg, struct teex_ds_backend_info *out);
  void *info_arg;
};

/* ns must be a valid namespace (lower-case letters, digits, '_', '-', '.').
 * TEEX_EINVAL otherwise. */
int teex_resp_session_init(struct teex_resp_session *s, const char *ns,
                           uint64_t id);

/* One RESP command being carried out. Owns a copy of its arguments. */
struct teex_resp_call {
  const struct resp_command *def;
  size_t argc;
  struct teex_resp_arg *argv; /* owned: argc entries pointing into args */
  uint8_t *args;              /* owned copy of the arguments' bytes */
  size_t step;                /* next key of a multi-key command */
  int64_t acc;                /* count so far (DEL, EXISTS) */
  int flags;                  /* per command */
  uint64_t ttl_ms;
  uint32_t limit;
  size_t match_at; /* SCAN: argv index of the MATCH pattern, 0 if none */
  /* the TEE-DS command to run next, and the buffers it points into */
  struct teex_ds_cmd cmd;
  int read_mode;
  uint8_t key[TEEX_DS_KEY_MAX];
  uint8_t after[TEEX_DS_KEY_MAX];
  struct teex_ds_pair *pairs; /* MSET (owned) */
  uint8_t *pair_keys;         /* MSET (owned) */
};

#define TEEX_RESP_DONE 0 /* the reply is in out */
#define TEEX_RESP_EXEC 1 /* run call->cmd with call->read_mode, then _next */

/* Starts req (argc >= 1): TEEX_RESP_DONE with the whole reply appended to
 * out (errors included: a bad command is a RESP error, not a failure), or
 * TEEX_RESP_EXEC. Negative: TEEX_ENOMEM, or TEEX_ETOOBIG when out is full
 * (the proxy then closes the connection). req is not kept. */
int teex_resp_call_begin(struct teex_resp_session *s, struct teex_resp_call *c,
                         const struct teex_resp_cmd *req, struct teex_buf *out);

/* The outcome of call->cmd: status < 0 when the backend could not run it
 * (res NULL), else res. Returns as teex_resp_call_begin. */
int teex_resp_call_next(struct teex_resp_session *s, struct teex_resp_call *c,
                        int status, const struct teex_ds_result *res,
                        struct teex_buf *out);

/* Releases what the call owns (NULL-safe); the call can be begun again. */
void teex_resp_call_reset(struct teex_resp_call *c);

/* Redis's glob matching (stringmatchlen): * ? [abc] [^a-z] and \x. */
int teex_resp_glob(const uint8_t *pat, size_t plen, const uint8_t *s,
                   size_t slen);

#endif
