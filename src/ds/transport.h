/* Internal: raft's stream transport over mutual RA-TLS, and the group-key
 * hand-over between replicas (docs/internals/ds.md, "Transport").
 *
 * Every raft connection is a teex_tls connection whose both ends presented
 * RA-TLS evidence of role "ds" that the group's policy allows (checked in
 * the handshake, so a refused peer never sends or receives a byte). After
 * the handshake the connecting side sends a preamble
 *   "TXR1" | kind u8 | id u64 | addr_len u16 | addr
 * (big-endian); kind 1 relays a raft stream, kind 2 asks for the group key
 * (addr: the asking replica's raft address).
 * A raft stream is relayed through a socketpair: raft reads and writes a
 * plain uv_pipe_t, and this module moves the bytes to and from TLS. */
#ifndef TEEX_DS_TRANSPORT_H
#define TEEX_DS_TRANSPORT_H

#include "teex/ds.h"
#include "teex/error.h"
#include "teex/tls.h"

#include <raft.h>
#include <raft/uv.h>
#include <stdint.h>

#define TEEX_DS_PREAMBLE_MAGIC "TXR1"
#define TEEX_DS_ADDR_MAX 128
#define TEEX_DS_KIND_RAFT 1
#define TEEX_DS_KIND_KEY 2
/* Bytes relayed toward one side and not yet written, past which the
 * connection is dropped (raft reconnects). */
#define TEEX_DS_RELAY_MAX_PENDING (64u << 20)

#define TEEX_DS_PREAMBLE_FIXED 15 /* magic 4 | kind 1 | id 8 | addr_len 2 */

/* The connecting side's preamble, parsed incrementally (no I/O). */
struct teex_ds_preamble {
  uint8_t buf[TEEX_DS_PREAMBLE_FIXED + TEEX_DS_ADDR_MAX];
  size_t len;
  int kind;                        /* when complete */
  uint64_t id;                     /* when complete */
  char addr[TEEX_DS_ADDR_MAX + 1]; /* when complete */
};

/* Feeds n bytes; *used = how many belong to the preamble (the rest is the
 * stream after it). Returns 0 (more needed), 1 (complete: kind, id, addr
 * set) or TEEX_EPROTO (bad magic, kind, address length or a NUL in the
 * address): the connection must be closed. */
int teex_ds_preamble_feed(struct teex_ds_preamble *pr, const uint8_t *p,
                          size_t n, size_t *used);

/* Writes a preamble into out (TEEX_DS_PREAMBLE_FIXED + strlen(addr) bytes,
 * addr at most TEEX_DS_ADDR_MAX); returns its length. */
size_t teex_ds_preamble_encode(uint8_t *out, int kind, uint64_t id,
                               const char *addr);

struct teex_ds_transport_config {
  uv_loop_t *loop;
  struct teex_tls_ctx *server_ctx; /* mutual RA-TLS, role ds */
  struct teex_tls_ctx *client_ctx; /* presents our RA-TLS identity */
  const char *bind_addr;           /* this replica's raft address */
  /* Members allowed to open raft streams (ids): is_member(member_arg, id)
   * when set (the live raft configuration), else this fixed list. */
  const uint64_t *members;
  size_t n_members;
  int (*is_member)(void *member_arg, uint64_t id);
  void *member_arg;
  /* Answer for kind-2 requests: group id and the group's keys per epoch
   * (src/ds/keyset.h encoding, *group_keys_len bytes; NULL: refuse).
   * Borrowed, and read at each request (rotation changes them). */
  const uint8_t *group_id;   /* 16 */
  const uint8_t *group_keys; /* TEEX_DS_KEYS_ENC_MAX */
  const size_t *group_keys_len;
};

/* Fills t (zeroed first) as a raft_uv_transport over RA-TLS. The transport
 * keeps a copy of cfg's scalars and borrows its pointers. Free with
 * teex_ds_transport_free after raft_uv has closed it. */
int teex_ds_transport_init(struct raft_uv_transport *t,
                           const struct teex_ds_transport_config *cfg,
                           struct teex_err *err);
void teex_ds_transport_free(struct raft_uv_transport *t);

/* Refused handshakes and preambles so far (for status and tests). */
uint64_t teex_ds_transport_refused(const struct raft_uv_transport *t);

/* A replica that is not a member (yet) asked this one for the group key
 * with evidence the policy accepted (so it is running and attested): its id,
 * the raft address it announced and when (uv_now of the loop). Returns 1 if
 * id was seen, 0 otherwise. This is what a leader checks before adding it. */
int teex_ds_transport_joiner(const struct raft_uv_transport *t, uint64_t id,
                             char *addr, size_t cap, uint64_t *seen_ms);

/* The last connection refused by policy (handshake or preamble), if any:
 * copies "REASON (from ADDR)" into out and returns 1, else 0. */
int teex_ds_transport_last_refusal(const struct raft_uv_transport *t, char *out,
                                   size_t cap);

/* The raft address part of a configuration address "PEER CLIENT" (a
 * configuration entry also carries the member's client address, so every
 * replica learns it): copies PEER into out. */
void teex_ds_addr_peer(const char *conf_addr, char *out, size_t cap);

/* Asks the replicas at addrs (in turn, until one answers or timeout_ms
 * passes) for the group's keys over mutual RA-TLS with client_ctx; runs its
 * own loop. keys (TEEX_DS_KEYS_ENC_MAX bytes) receives the keyset.h
 * encoding (a bare 32-byte key from a replica of an older build), checked
 * to decode; *keys_len its length. TEEX_ETIMEDOUT when none answered. keys
 * is wiped by the caller. */
int teex_ds_fetch_group_key(struct teex_tls_ctx *client_ctx,
                            const char *const *addrs, size_t n_addrs,
                            uint64_t self_id, const char *self_addr,
                            uint32_t timeout_ms, uint8_t group_id[16],
                            uint8_t *keys, size_t *keys_len,
                            struct teex_err *err);

#endif
