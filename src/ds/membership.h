/* Internal: TEE-DS membership changes over the client RPC (ds.Member):
 * the request/response codec (bounded, fuzzed by fuzz/fuzz_ds_member.c)
 * and the operator's blocking client (teex ds add-replica|remove-replica).
 * The leader side is in server.c (docs/internals/ds.md, "Membership"). */
#ifndef TEEX_DS_MEMBERSHIP_H
#define TEEX_DS_MEMBERSHIP_H

#include "ds/group.h"
#include "teex/error.h"
#include "teex/tls.h"

#include <stddef.h>
#include <stdint.h>

#define TEEX_DS_METHOD_MEMBER "ds.Member"
#define TEEX_DS_MEMBER_ADD 1
#define TEEX_DS_MEMBER_REMOVE 2
#define TEEX_DS_MEMBER_LIST 3
/* Group key rotation (teex ds rotate-key): a new key epoch made by the
 * leader; the answer is the member list, as for list. */
#define TEEX_DS_MEMBER_ROTATE 4
#define TEEX_DS_MEMBER_MSG_MAX 4096
/* Default wait of an add: for the new replica to show up attested, then to
 * catch up (libraft gives a promotion 30 s of catch-up rounds). */
#define TEEX_DS_MEMBER_DEFAULT_WAIT_MS 60000u

struct teex_ds_member_req {
  uint32_t op;
  uint64_t id;
  char peer[TEEX_DS_ADDR_MAX + 1];
  char client[TEEX_DS_ADDR_MAX + 1];
  uint32_t wait_ms;
};

#define TEEX_DS_ROLE_VOTER 1
#define TEEX_DS_ROLE_STANDBY 2
#define TEEX_DS_ROLE_SPARE 3

struct teex_ds_member_list {
  struct teex_ds_member m[TEEX_DS_GROUP_MAX_MEMBERS];
  uint32_t role[TEEX_DS_GROUP_MAX_MEMBERS];
  size_t n;
  int not_leader;
  uint64_t leader_id;
  char leader_addr[TEEX_DS_ADDR_MAX + 1];
};

/* 1 if s is a HOST:PORT address we accept in a membership (non-empty, at
 * most TEEX_DS_ADDR_MAX, printable, no spaces or commas). */
int teex_ds_member_addr_ok(const char *s);

/* Decodes a MemberRequest: op known, id non-zero for add/remove, addresses
 * valid for add. TEEX_EFORMAT / TEEX_EINVAL with the reason otherwise. */
int teex_ds_member_req_decode(const uint8_t *p, size_t n,
                              struct teex_ds_member_req *out,
                              struct teex_err *err);
/* Encodes r (malloc'd into *out; the caller frees). */
int teex_ds_member_req_encode(const struct teex_ds_member_req *r, uint8_t **out,
                              size_t *out_len, struct teex_err *err);
int teex_ds_member_resp_encode(const struct teex_ds_member_list *l,
                               uint8_t **out, size_t *out_len,
                               struct teex_err *err);
/* Decodes a MemberResponse: at most TEEX_DS_GROUP_MAX_MEMBERS members, every
 * address valid. */
int teex_ds_member_resp_decode(const uint8_t *p, size_t n,
                               struct teex_ds_member_list *out,
                               struct teex_err *err);

/* Sends r to the group's leader: tries the replicas at addrs (client
 * addresses) in turn, follows not_leader answers (also to a leader not in
 * addrs), until one leader answers or timeout_ms passes. On success out is
 * the configuration after the change. The server's refusal (its code and
 * message) otherwise. */
int teex_ds_member_call(struct teex_tls_ctx *tls, const char *const *addrs,
                        size_t n_addrs, const struct teex_ds_member_req *r,
                        uint32_t timeout_ms, struct teex_ds_member_list *out,
                        struct teex_err *err);

#endif
