/* teex.kv: a service's namespace and the mapping of a task's keys into it
 * (see ds.h). No I/O: the worker calls these around its TEE-DS client. */
#include "teex/crypto.h"
#include "teex/ds.h"

#include <string.h>

void teex_ds_service_ns(const uint8_t service_id[32],
                        char out[TEEX_DS_SERVICE_NS_LEN + 1]) {
  char hex[65];
  teex_hex_encode(service_id, 32, hex);
  out[0] = 's';
  memcpy(out + 1, hex, TEEX_DS_SERVICE_NS_LEN - 1);
  out[TEEX_DS_SERVICE_NS_LEN] = '\0';
}

/* "ns/" + rest into buf; its length, or 0 when it does not fit. */
static size_t put_under(const char *ns, size_t ns_len, const uint8_t *rest,
                        size_t rest_len, uint8_t buf[TEEX_DS_KEY_MAX]) {
  if (ns_len + 1 + rest_len > TEEX_DS_KEY_MAX)
    return 0;
  memcpy(buf, ns, ns_len);
  buf[ns_len] = '/';
  if (rest_len > 0)
    memcpy(buf + ns_len + 1, rest, rest_len);
  return ns_len + 1 + rest_len;
}

int teex_ds_ns_cmd(const char *ns, const struct teex_ds_cmd *cmd,
                   struct teex_ds_cmd *out, uint8_t key_buf[TEEX_DS_KEY_MAX],
                   uint8_t after_buf[TEEX_DS_KEY_MAX]) {
  size_t ns_len = ns != NULL ? strnlen(ns, TEEX_DS_NS_MAX + 1) : 0;
  if (ns_len == 0 || ns_len > TEEX_DS_NS_MAX || memchr(ns, '/', ns_len))
    return TEEX_EINVAL;
  switch (cmd->op) {
  case TEEX_DS_GET:
  case TEEX_DS_SET:
  case TEEX_DS_DEL:
  case TEEX_DS_CAS:
  case TEEX_DS_INCR:
  case TEEX_DS_SCAN:
    break;
  default:
    return TEEX_EINVAL; /* MSET, EXPIRE, COUNT: not part of teex.kv */
  }
  *out = *cmd;
  out->grant = NULL;
  out->pairs = NULL;
  out->n_pairs = 0;
  out->key = key_buf;
  out->key_len = put_under(ns, ns_len, cmd->key, cmd->key_len, key_buf);
  if (out->key_len == 0)
    return TEEX_ETOOBIG;
  if (cmd->op == TEEX_DS_SCAN && cmd->after_len > 0) {
    out->after = after_buf;
    out->after_len =
        put_under(ns, ns_len, cmd->after, cmd->after_len, after_buf);
    if (out->after_len == 0)
      return TEEX_ETOOBIG;
  } else {
    out->after = NULL;
    out->after_len = 0;
  }
  return 0;
}

int teex_ds_ns_result(const char *ns, struct teex_ds_result *res) {
  size_t ns_len = strlen(ns);
  for (size_t i = 0; i < res->n_items; i++) {
    struct teex_ds_pair *p = &res->items[i];
    if (p->key_len <= ns_len || memcmp(p->key, ns, ns_len) != 0 ||
        p->key[ns_len] != '/')
      return TEEX_EPROTO;
  }
  for (size_t i = 0; i < res->n_items; i++) {
    struct teex_ds_pair *p = &res->items[i];
    /* The keys are owned by the result: move the rest to the front. */
    memmove((uint8_t *)p->key, p->key + ns_len + 1, p->key_len - ns_len - 1);
    p->key_len -= ns_len + 1;
  }
  return 0;
}
