/* TEE-DS client RPC payloads (see wire.h and proto/ds.proto). */
#include "ds/wire.h"

#include "teex/mem.h"
#include "teex/proto/ds.pb-c.h"

#include <stdlib.h>
#include <string.h>

static int ns_valid(const char *ns) {
  size_t n = strlen(ns);
  if (n == 0 || n > TEEX_DS_NS_MAX)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = ns[i];
    /* The state machine's own rule for a grant (src/ds/kv.c). */
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-' || c == '.'))
      return 0;
  }
  return 1;
}

int teex_ds_wire_request_encode(const struct teex_ds_cmd *cmd, const char *ns,
                                uint32_t read_mode, uint8_t **out,
                                size_t *out_len, struct teex_err *err) {
  return teex_ds_wire_request_encode_granted(cmd, ns, NULL, 0, read_mode, out,
                                             out_len, err);
}

int teex_ds_wire_request_encode_granted(const struct teex_ds_cmd *cmd,
                                        const char *ns, const uint8_t *grant,
                                        size_t grant_len, uint32_t read_mode,
                                        uint8_t **out, size_t *out_len,
                                        struct teex_err *err) {
  if (ns == NULL || !ns_valid(ns))
    return teex_err_set(err, TEEX_EINVAL, "bad namespace");
  if (grant_len > TEEX_DS_GRANT_MAX)
    return teex_err_set(err, TEEX_ETOOBIG, "grant of %zu bytes", grant_len);
  struct teex_ds_cmd c = *cmd;
  c.grant = ns;
  uint8_t *enc = NULL;
  size_t enc_len = 0;
  int rc = teex_ds_cmd_encode(&c, &enc, &enc_len, err);
  if (rc != 0)
    return rc;
  Teex__Ds__ExecRequest m = TEEX__DS__EXEC_REQUEST__INIT;
  m.cmd = (ProtobufCBinaryData){enc_len, enc};
  m.ns = (char *)ns;
  m.read_mode = read_mode;
  if (grant != NULL)
    m.grant = (ProtobufCBinaryData){grant_len, (uint8_t *)grant};
  size_t n = teex__ds__exec_request__get_packed_size(&m);
  uint8_t *buf = malloc(n ? n : 1);
  if (buf == NULL) {
    rc = teex_err_set(err, TEEX_ENOMEM, "out of memory");
  } else {
    teex__ds__exec_request__pack(&m, buf);
    *out = buf;
    *out_len = n;
  }
  teex_wipe(enc, enc_len);
  free(enc);
  return rc;
}

int teex_ds_wire_request_decode(const uint8_t *p, size_t len,
                                struct teex_ds_wire_request *req,
                                struct teex_err *err) {
  memset(req, 0, sizeof(*req));
  if (len > TEEX_DS_WIRE_MAX)
    return teex_err_set(err, TEEX_ETOOBIG, "request of %zu bytes", len);
  Teex__Ds__ExecRequest *m = teex__ds__exec_request__unpack(NULL, len, p);
  if (m == NULL)
    return teex_err_set(err, TEEX_EFORMAT, "malformed request");
  int rc;
  if (!ns_valid(m->ns)) {
    rc = teex_err_set(err, TEEX_EFORMAT, "bad namespace");
    goto fail;
  }
  if (m->read_mode > 1) {
    rc = teex_err_set(err, TEEX_EFORMAT, "unknown read mode %u", m->read_mode);
    goto fail;
  }
  if (m->grant.len > TEEX_DS_GRANT_MAX) {
    rc = teex_err_set(err, TEEX_EFORMAT, "grant of %zu bytes", m->grant.len);
    goto fail;
  }
  rc = teex_ds_cmd_decode(m->cmd.data, m->cmd.len, &req->view, err);
  if (rc != 0)
    goto fail;
  memcpy(req->ns, m->ns, strlen(m->ns) + 1);
  req->read_mode = m->read_mode;
  if (m->grant.len > 0) {
    req->grant = m->grant.data;
    req->grant_len = m->grant.len;
  }
  req->owned = m;
  return 0;
fail:
  teex__ds__exec_request__free_unpacked(m, NULL);
  return rc;
}

void teex_ds_wire_request_free(struct teex_ds_wire_request *req) {
  Teex__Ds__ExecRequest *m = req->owned;
  if (m != NULL) {
    teex_wipe(m->cmd.data, m->cmd.len);
    teex__ds__exec_request__free_unpacked(m, NULL);
  }
  memset(req, 0, sizeof(*req));
}

int teex_ds_wire_response_encode(const struct teex_ds_result *res,
                                 int not_leader, uint64_t leader_id,
                                 const char *leader_addr, uint8_t **out,
                                 size_t *out_len, struct teex_err *err) {
  Teex__Ds__ExecResponse m = TEEX__DS__EXEC_RESPONSE__INIT;
  Teex__Ds__Result r = TEEX__DS__RESULT__INIT;
  Teex__Ds__Pair *pairs = NULL, **pp = NULL;
  int rc = 0;
  if (res != NULL) {
    if (res->n_items > TEEX_DS_SCAN_MAX)
      return teex_err_set(err, TEEX_ETOOBIG, "result of %zu items",
                          res->n_items);
    r.status = res->status;
    r.found = res->found != 0;
    r.has_val = res->val != NULL;
    r.val = (ProtobufCBinaryData){res->val_len, res->val};
    r.num = res->num;
    r.more = res->more != 0;
    r.index = res->index;
    r.clock_ms = res->clock_ms;
    r.expire_at_ms = res->expire_at_ms;
    if (res->n_items > 0) {
      pairs = calloc(res->n_items, sizeof(*pairs));
      pp = calloc(res->n_items, sizeof(*pp));
      if (pairs == NULL || pp == NULL) {
        rc = teex_err_set(err, TEEX_ENOMEM, "out of memory");
        goto out;
      }
      for (size_t i = 0; i < res->n_items; i++) {
        teex__ds__pair__init(&pairs[i]);
        pairs[i].key = (ProtobufCBinaryData){res->items[i].key_len,
                                             (uint8_t *)res->items[i].key};
        pairs[i].val = (ProtobufCBinaryData){res->items[i].val_len,
                                             (uint8_t *)res->items[i].val};
        pp[i] = &pairs[i];
      }
      r.n_items = res->n_items;
      r.items = pp;
    }
    m.result = &r;
  }
  m.not_leader = not_leader != 0;
  m.leader_id = leader_id;
  m.leader_addr = (char *)(leader_addr ? leader_addr : "");
  size_t n = teex__ds__exec_response__get_packed_size(&m);
  uint8_t *buf = malloc(n ? n : 1);
  if (buf == NULL) {
    rc = teex_err_set(err, TEEX_ENOMEM, "out of memory");
    goto out;
  }
  teex__ds__exec_response__pack(&m, buf);
  *out = buf;
  *out_len = n;
out:
  free(pairs);
  free(pp);
  return rc;
}

/* Status codes a result may carry (include/teex/ds.h). */
static int status_valid(int s) {
  switch (s) {
  case 0:
  case TEEX_ENOTFOUND:
  case TEEX_EEXIST:
  case TEEX_ESTATE:
  case TEEX_EFORMAT:
  case TEEX_EINVAL:
  case TEEX_EPERM:
  case TEEX_ENOSPC:
  case TEEX_EREPLAY:
  case TEEX_ETOOBIG:
  case TEEX_ENOMEM:
  case TEEX_EBUSY:  /* namespace frozen: moving to another group */
  case TEEX_EMOVED: /* namespace moved: val is the placement record */
    return 1;
  default:
    return 0;
  }
}

static uint8_t *dup_bytes(const ProtobufCBinaryData *b) {
  uint8_t *d = malloc(b->len ? b->len : 1);
  if (d != NULL && b->len > 0)
    memcpy(d, b->data, b->len);
  return d;
}

int teex_ds_wire_response_decode(const uint8_t *p, size_t len,
                                 struct teex_ds_wire_response *out,
                                 struct teex_err *err) {
  memset(out, 0, sizeof(*out));
  if (len > TEEX_DS_WIRE_MAX)
    return teex_err_set(err, TEEX_ETOOBIG, "response of %zu bytes", len);
  Teex__Ds__ExecResponse *m = teex__ds__exec_response__unpack(NULL, len, p);
  if (m == NULL)
    return teex_err_set(err, TEEX_EFORMAT, "malformed response");
  int rc = 0;
  if (strlen(m->leader_addr) >= sizeof(out->leader_addr)) {
    rc = teex_err_set(err, TEEX_EFORMAT, "leader address too long");
    goto out;
  }
  memcpy(out->leader_addr, m->leader_addr, strlen(m->leader_addr) + 1);
  out->not_leader = m->not_leader;
  out->leader_id = m->leader_id;
  if (m->result == NULL) {
    if (!m->not_leader)
      rc = teex_err_set(err, TEEX_EFORMAT, "response without a result");
    goto out;
  }
  const Teex__Ds__Result *r = m->result;
  if (!status_valid(r->status)) {
    rc = teex_err_set(err, TEEX_EFORMAT, "unknown status %d", r->status);
    goto out;
  }
  if (r->val.len > TEEX_DS_VALUE_MAX || r->n_items > TEEX_DS_SCAN_MAX) {
    rc = teex_err_set(err, TEEX_ETOOBIG, "result beyond the limits");
    goto out;
  }
  if (!r->has_val && r->val.len > 0) {
    rc = teex_err_set(err, TEEX_EFORMAT, "value without has_val");
    goto out;
  }
  for (size_t i = 0; i < r->n_items; i++)
    if (r->items[i]->key.len == 0 || r->items[i]->key.len > TEEX_DS_KEY_MAX ||
        r->items[i]->val.len > TEEX_DS_VALUE_MAX) {
      rc =
          teex_err_set(err, TEEX_ETOOBIG, "scan item %zu beyond the limits", i);
      goto out;
    }
  struct teex_ds_result *res = &out->res;
  res->status = r->status;
  res->found = r->found;
  res->num = r->num;
  res->more = r->more;
  res->index = r->index;
  res->clock_ms = r->clock_ms;
  res->expire_at_ms = r->expire_at_ms;
  if (r->has_val) {
    if ((res->val = dup_bytes(&r->val)) == NULL)
      goto nomem;
    res->val_len = r->val.len;
  }
  if (r->n_items > 0) {
    res->items = calloc(r->n_items, sizeof(*res->items));
    if (res->items == NULL)
      goto nomem;
    for (size_t i = 0; i < r->n_items; i++) {
      uint8_t *k = dup_bytes(&r->items[i]->key);
      uint8_t *v = dup_bytes(&r->items[i]->val);
      if (k == NULL || v == NULL) {
        free(k);
        free(v);
        goto nomem;
      }
      res->items[i] = (struct teex_ds_pair){k, r->items[i]->key.len, v,
                                            r->items[i]->val.len};
      res->n_items = i + 1;
    }
  }
  out->has_result = 1;
  goto out;
nomem:
  teex_ds_result_free(&out->res);
  rc = teex_err_set(err, TEEX_ENOMEM, "out of memory");
out:
  if (m->result != NULL && m->result->val.len > 0)
    teex_wipe(m->result->val.data, m->result->val.len);
  teex__ds__exec_response__free_unpacked(m, NULL);
  return rc;
}
