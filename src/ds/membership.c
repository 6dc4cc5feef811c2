/* TEE-DS membership RPC: codec and the operator's blocking client
 * (docs/internals/ds.md, "Membership"). */
#include "ds/membership.h"

#include "teex/buf.h"
#include "teex/proto/ds_member.pb-c.h"
#include "teex/rpc_sync.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A request or response is a few addresses: anything larger is refused
 * before protobuf-c allocates. */
#define MEMBER_WIRE_MAX 4096

int teex_ds_member_addr_ok(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > TEEX_DS_ADDR_MAX || strchr(s, ':') == NULL)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (s[i] <= ' ' || s[i] > '~' || s[i] == ',')
      return 0;
  return 1;
}

int teex_ds_member_req_decode(const uint8_t *p, size_t n,
                              struct teex_ds_member_req *out,
                              struct teex_err *err) {
  memset(out, 0, sizeof(*out));
  if (n > MEMBER_WIRE_MAX)
    return teex_err_set(err, TEEX_ETOOBIG, "membership request too large");
  Teex__Ds__MemberRequest *m = teex__ds__member_request__unpack(NULL, n, p);
  if (m == NULL)
    return teex_err_set(err, TEEX_EFORMAT, "malformed membership request");
  int rc = 0;
  out->op = m->op;
  out->id = m->id;
  out->wait_ms = m->wait_ms;
  if (m->op < TEEX_DS_MEMBER_ADD || m->op > TEEX_DS_MEMBER_ROTATE)
    rc = teex_err_set(err, TEEX_EINVAL, "unknown membership operation %u",
                      (unsigned)m->op);
  else if ((m->op == TEEX_DS_MEMBER_ADD || m->op == TEEX_DS_MEMBER_REMOVE) &&
           m->id == 0)
    rc = teex_err_set(err, TEEX_EINVAL, "replica id must be positive");
  else if (m->op == TEEX_DS_MEMBER_ADD && (!teex_ds_member_addr_ok(m->peer) ||
                                           !teex_ds_member_addr_ok(m->client)))
    rc = teex_err_set(err, TEEX_EINVAL,
                      "a new replica needs a raft and a client address "
                      "(HOST:PORT, at most %d bytes)",
                      TEEX_DS_ADDR_MAX);
  if (rc == 0 && m->op == TEEX_DS_MEMBER_ADD) {
    memcpy(out->peer, m->peer, strlen(m->peer) + 1);
    memcpy(out->client, m->client, strlen(m->client) + 1);
  }
  teex__ds__member_request__free_unpacked(m, NULL);
  return rc;
}

int teex_ds_member_req_encode(const struct teex_ds_member_req *r, uint8_t **out,
                              size_t *out_len, struct teex_err *err) {
  Teex__Ds__MemberRequest m = TEEX__DS__MEMBER_REQUEST__INIT;
  m.op = r->op;
  m.id = r->id;
  m.peer = (char *)r->peer;
  m.client = (char *)r->client;
  m.wait_ms = r->wait_ms;
  size_t n = teex__ds__member_request__get_packed_size(&m);
  *out = malloc(n ? n : 1);
  if (*out == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "out of memory");
  *out_len = teex__ds__member_request__pack(&m, *out);
  return 0;
}

int teex_ds_member_resp_encode(const struct teex_ds_member_list *l,
                               uint8_t **out, size_t *out_len,
                               struct teex_err *err) {
  Teex__Ds__MemberResponse m = TEEX__DS__MEMBER_RESPONSE__INIT;
  Teex__Ds__Member ms[TEEX_DS_GROUP_MAX_MEMBERS];
  Teex__Ds__Member *mp[TEEX_DS_GROUP_MAX_MEMBERS];
  m.not_leader = l->not_leader;
  m.leader_id = l->leader_id;
  m.leader_addr = (char *)l->leader_addr;
  for (size_t i = 0; i < l->n && i < TEEX_DS_GROUP_MAX_MEMBERS; i++) {
    teex__ds__member__init(&ms[i]);
    ms[i].id = l->m[i].id;
    ms[i].peer = (char *)l->m[i].peer;
    ms[i].client = (char *)l->m[i].client;
    ms[i].role = l->role[i];
    mp[i] = &ms[i];
  }
  m.n_members = l->n;
  m.members = mp;
  size_t n = teex__ds__member_response__get_packed_size(&m);
  *out = malloc(n ? n : 1);
  if (*out == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "out of memory");
  *out_len = teex__ds__member_response__pack(&m, *out);
  return 0;
}

int teex_ds_member_resp_decode(const uint8_t *p, size_t n,
                               struct teex_ds_member_list *out,
                               struct teex_err *err) {
  memset(out, 0, sizeof(*out));
  if (n > MEMBER_WIRE_MAX)
    return teex_err_set(err, TEEX_ETOOBIG, "membership response too large");
  Teex__Ds__MemberResponse *m = teex__ds__member_response__unpack(NULL, n, p);
  if (m == NULL)
    return teex_err_set(err, TEEX_EFORMAT, "malformed membership response");
  int rc = 0;
  if (m->n_members > TEEX_DS_GROUP_MAX_MEMBERS)
    rc = teex_err_set(err, TEEX_EFORMAT, "more than %d members",
                      TEEX_DS_GROUP_MAX_MEMBERS);
  else if (m->leader_addr[0] != '\0' && !teex_ds_member_addr_ok(m->leader_addr))
    rc = teex_err_set(err, TEEX_EFORMAT, "bad leader address");
  for (size_t i = 0; rc == 0 && i < m->n_members; i++) {
    const Teex__Ds__Member *x = m->members[i];
    if (x->id == 0 || !teex_ds_member_addr_ok(x->peer) ||
        (x->client[0] != '\0' && !teex_ds_member_addr_ok(x->client)) ||
        x->role < TEEX_DS_ROLE_VOTER || x->role > TEEX_DS_ROLE_SPARE)
      rc = teex_err_set(err, TEEX_EFORMAT, "bad member entry");
    else {
      out->m[i].id = x->id;
      memcpy(out->m[i].peer, x->peer, strlen(x->peer) + 1);
      memcpy(out->m[i].client, x->client, strlen(x->client) + 1);
      out->role[i] = x->role;
      out->n = i + 1;
    }
  }
  if (rc == 0) {
    out->not_leader = m->not_leader;
    out->leader_id = m->leader_id;
    memcpy(out->leader_addr, m->leader_addr, strlen(m->leader_addr) + 1);
  }
  teex__ds__member_response__free_unpacked(m, NULL);
  return rc;
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void pause_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

int teex_ds_member_call(struct teex_tls_ctx *tls, const char *const *addrs,
                        size_t n_addrs, const struct teex_ds_member_req *r,
                        uint32_t timeout_ms, struct teex_ds_member_list *out,
                        struct teex_err *err) {
  if (n_addrs == 0)
    return teex_err_set(err, TEEX_EINVAL, "no replica address");
  uint8_t *req = NULL;
  size_t req_len = 0;
  int rc = teex_ds_member_req_encode(r, &req, &req_len, err);
  if (rc != 0)
    return rc;
  uint64_t deadline = now_ms() + timeout_ms;
  char target[TEEX_DS_ADDR_MAX + 1] = "";
  size_t next = 0;
  char last[TEEX_ERRMSG_SIZE] = "no replica answered";
  struct teex_buf resp;
  teex_buf_init(&resp, MEMBER_WIRE_MAX, 0);
  rc = TEEX_ETIMEDOUT;
  while (now_ms() < deadline) {
    const char *addr = target[0] ? target : addrs[next++ % n_addrs];
    uint64_t left = deadline - now_ms();
    struct teex_rpc_sync *rpc = NULL;
    struct teex_err e2;
    teex_err_clear(&e2);
    int crc = teex_rpc_sync_connect(
        addr, tls, left < 2000 ? (uint32_t)left : 2000, &rpc, &e2);
    target[0] = '\0';
    if (crc == 0) {
      left = deadline > now_ms() ? deadline - now_ms() : 1;
      crc = teex_rpc_sync_call(rpc, TEEX_DS_METHOD_MEMBER, req, req_len,
                               (uint32_t)left, &resp, &e2);
      teex_rpc_sync_close(rpc);
      if (crc == 0) {
        crc = teex_ds_member_resp_decode(resp.data, resp.len, out, &e2);
        if (crc == 0 && !out->not_leader) {
          rc = 0;
          break;
        }
        if (crc == 0) {
          snprintf(last, sizeof last, "%s is not the leader", addr);
          if (out->leader_addr[0] && strcmp(out->leader_addr, addr) != 0)
            memcpy(target, out->leader_addr, sizeof(target));
          else
            pause_ms(100); /* no leader known there: an election is on */
          continue;
        }
      }
      /* The leader refused or failed the change: that is the answer. */
      if (crc != TEEX_ECONN && crc != TEEX_ETIMEDOUT && crc != TEEX_ECLOSED &&
          crc != TEEX_EIO) {
        rc = teex_err_set(err, crc, "%s", e2.msg);
        goto out;
      }
    }
    snprintf(last, sizeof last, "%s: %s", addr, e2.msg);
    pause_ms(100);
  }
  if (rc != 0)
    rc = teex_err_set(err, TEEX_ETIMEDOUT,
                      "no leader answered in time (last: %s)", last);
out:
  teex_buf_free(&resp);
  free(req);
  return rc;
}
