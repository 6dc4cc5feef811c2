/* A TEE-DS group's configuration file (see group.h). */
#include "ds/group.h"

#include "ds/sealed_io.h"
#include "teex/config.h"
#include "teex/crypto.h"
#include "teex/tee.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ns_ok(const char *ns) {
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

static int hex_exact(const char *s, uint8_t *out, size_t n) {
  size_t got = 0;
  return strlen(s) == 2 * n && teex_hex_decode(s, out, n, &got) == 0 &&
         got == n;
}

/* An address is HOST:PORT: letters, digits and . - _ : [ ] only (what a
 * host name or an IPv4/IPv6 literal with a port can hold), so that what is
 * saved reads back the same. */
static int addr_ok(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_' ||
          c == ':' || c == '[' || c == ']'))
      return 0;
  }
  return 1;
}

static int member_fields(const char *id_s, const char *v,
                         struct teex_ds_member *m, struct teex_err *err) {
  memset(m, 0, sizeof(*m));
  if (teex_parse_u64(id_s, &m->id) != 0 || m->id == 0)
    return teex_err_set(err, TEEX_ECONFIG,
                        "member id '%s': not a positive "
                        "number",
                        id_s);
  const char *sep = strpbrk(v, " ,");
  if (sep == NULL)
    return teex_err_set(err, TEEX_ECONFIG,
                        "member %s: want 'PEER_ADDR CLIENT_ADDR'", id_s);
  size_t a = (size_t)(sep - v);
  const char *b = sep + 1;
  while (*b == ' ')
    b++;
  if (a == 0 || a > TEEX_DS_ADDR_MAX || strlen(b) == 0 ||
      strlen(b) > TEEX_DS_ADDR_MAX || !addr_ok(v, a) || !addr_ok(b, strlen(b)))
    return teex_err_set(err, TEEX_ECONFIG, "member %s: bad addresses", id_s);
  memcpy(m->peer, v, a);
  m->peer[a] = '\0';
  memcpy(m->client, b, strlen(b) + 1);
  return 0;
}

static int client_fields(const char *label, const char *v,
                         struct teex_ds_client_grant *c, struct teex_err *err) {
  memset(c, 0, sizeof(*c));
  if (strlen(label) == 0 || strlen(label) >= sizeof(c->label))
    return teex_err_set(err, TEEX_ECONFIG, "client label '%s'", label);
  const char *sep = strpbrk(v, " :");
  if (sep == NULL || sep - v != 64)
    return teex_err_set(err, TEEX_ECONFIG,
                        "client %s: want 'SPKI_SHA256_HEX NAMESPACE'", label);
  char hex[65];
  memcpy(hex, v, 64);
  hex[64] = '\0';
  const char *ns = sep + 1;
  while (*ns == ' ')
    ns++;
  if (!hex_exact(hex, c->spki, 32) || !ns_ok(ns))
    return teex_err_set(err, TEEX_ECONFIG,
                        "client %s: bad key hash or "
                        "namespace",
                        label);
  memcpy(c->label, label, strlen(label) + 1);
  memcpy(c->ns, ns, strlen(ns) + 1);
  return 0;
}

static int enclave_fields(const char *role, const char *ns,
                          struct teex_ds_client_grant *c,
                          struct teex_err *err) {
  memset(c, 0, sizeof(*c));
  if (!teex_tee_role_valid(role) ||
      (!ns_ok(ns) && strcmp(ns, TEEX_DS_NS_BY_GRANT) != 0))
    return teex_err_set(err, TEEX_ECONFIG,
                        "enclave grant '%s': want ROLE = "
                        "NAMESPACE",
                        role);
  memcpy(c->label, role, strlen(role) + 1);
  memcpy(c->ns, ns, strlen(ns) + 1);
  return 0;
}

int teex_ds_group_parse(struct teex_ds_group *g, const char *text, size_t len,
                        struct teex_err *err) {
  memset(g, 0, sizeof(*g));
  struct teex_config c;
  teex_config_init(&c);
  int rc = teex_config_parse(&c, text, len, err);
  if (rc != 0)
    goto out;
  int have_id = 0;
  for (size_t i = 0; i < c.count && rc == 0; i++) {
    const char *k = c.entries[i].key, *v = c.entries[i].value;
    if (strcmp(k, "group.id") == 0) {
      if (!hex_exact(v, g->id, 16))
        rc = teex_err_set(err, TEEX_ECONFIG, "group.id: want 32 hex digits");
      have_id = 1;
    } else if (strcmp(k, "group.sm") == 0) {
      if (teex_eth_address_parse(v, g->sm_address) != 0)
        rc = teex_err_set(err, TEEX_ECONFIG, "group.sm: want an address");
      g->has_sm = 1;
    } else if (strcmp(k, "group.operators") == 0) {
      if (strlen(v) >= sizeof(g->operators))
        rc = teex_err_set(err, TEEX_ECONFIG, "group.operators: too long");
      else
        memcpy(g->operators, v, strlen(v) + 1);
    } else if (strncmp(k, "members.", 8) == 0) {
      if (g->n_members == TEEX_DS_GROUP_MAX_MEMBERS)
        rc = teex_err_set(err, TEEX_ECONFIG, "more than %d members",
                          TEEX_DS_GROUP_MAX_MEMBERS);
      else if ((rc = member_fields(k + 8, v, &g->members[g->n_members], err)) ==
               0) {
        if (teex_ds_group_member(g, g->members[g->n_members].id) != NULL)
          rc = teex_err_set(err, TEEX_ECONFIG, "member %s listed twice", k + 8);
        else
          g->n_members++;
      }
    } else if (strncmp(k, "clients.", 8) == 0) {
      if (g->n_clients == TEEX_DS_GROUP_MAX_CLIENTS)
        rc = teex_err_set(err, TEEX_ECONFIG, "more than %d clients",
                          TEEX_DS_GROUP_MAX_CLIENTS);
      else if ((rc = client_fields(k + 8, v, &g->clients[g->n_clients], err)) ==
               0)
        g->n_clients++;
    } else if (strncmp(k, "enclaves.", 9) == 0) {
      if (g->n_enclaves == TEEX_DS_GROUP_MAX_ENCLAVES)
        rc = teex_err_set(err, TEEX_ECONFIG, "more than %d enclave grants",
                          TEEX_DS_GROUP_MAX_ENCLAVES);
      else if ((rc = enclave_fields(k + 9, v, &g->enclaves[g->n_enclaves],
                                    err)) == 0)
        g->n_enclaves++;
    } else {
      rc = teex_err_set(err, TEEX_ECONFIG, "unknown key '%s'", k);
    }
  }
  if (rc == 0 && (!have_id || g->n_members == 0))
    rc = teex_err_set(err, TEEX_ECONFIG, "group.id and members are required");
  for (size_t i = 0; rc == 0 && i < g->n_enclaves; i++)
    if (strcmp(g->enclaves[i].ns, TEEX_DS_NS_BY_GRANT) == 0 && !g->has_sm)
      rc = teex_err_set(err, TEEX_ECONFIG,
                        "enclaves.%s = *: grants need group.sm (the SM "
                        "address)",
                        g->enclaves[i].label);
  /* Every operator must be a listed certificate client. */
  for (const char *o = g->operators; rc == 0 && *o != '\0';) {
    size_t n = strcspn(o, ",");
    int found = 0;
    for (size_t i = 0; i < g->n_clients && !found; i++)
      found = strlen(g->clients[i].label) == n &&
              memcmp(g->clients[i].label, o, n) == 0;
    if (!found)
      rc = teex_err_set(err, TEEX_ECONFIG,
                        "group.operators: '%.*s' is not a listed client",
                        (int)(n < 64 ? n : 64), o);
    o += n;
    if (*o == ',')
      o++;
  }
out:
  teex_config_free(&c);
  return rc;
}

int teex_ds_group_is_operator(const struct teex_ds_group *g,
                              const char *label) {
  size_t len = strlen(label);
  for (const char *o = g->operators; len > 0 && *o != '\0';) {
    size_t n = strcspn(o, ",");
    if (n == len && memcmp(o, label, n) == 0)
      return 1;
    o += n;
    if (*o == ',')
      o++;
  }
  return 0;
}

int teex_ds_group_load(struct teex_ds_group *g, const char *path,
                       struct teex_err *err) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return teex_err_set(err, TEEX_ENOTFOUND, "%s: cannot open", path);
  char *buf = malloc(TEEX_CONFIG_FILE_MAX + 1);
  size_t n = buf ? fread(buf, 1, TEEX_CONFIG_FILE_MAX + 1, f) : 0;
  fclose(f);
  if (buf == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "out of memory");
  int rc = n > TEEX_CONFIG_FILE_MAX
               ? teex_err_set(err, TEEX_ETOOBIG, "%s: too large", path)
               : teex_ds_group_parse(g, buf, n, err);
  free(buf);
  if (rc != 0)
    return teex_err_wrap(err, 0, "%s", path);
  return 0;
}

int teex_ds_group_save(const struct teex_ds_group *g, const char *path,
                       struct teex_err *err) {
  size_t cap =
      1024 + TEEX_DS_GROUP_MAX_MEMBERS * 300 + TEEX_DS_GROUP_MAX_CLIENTS * 220;
  char *t = malloc(cap);
  if (t == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "out of memory");
  char hex[65];
  teex_hex_encode(g->id, 16, hex);
  size_t o = (size_t)snprintf(t, cap,
                              "# TEE-DS group (teex ds init)\n[group]\n"
                              "id = %s\n",
                              hex);
  if (g->has_sm) {
    char sm[43];
    teex_eth_address_hex(g->sm_address, sm);
    o += (size_t)snprintf(t + o, cap - o, "sm = %s\n", sm);
  }
  if (g->operators[0] != '\0')
    o += (size_t)snprintf(t + o, cap - o, "operators = %s\n", g->operators);
  o += (size_t)snprintf(t + o, cap - o, "[members]\n");
  for (size_t i = 0; i < g->n_members; i++)
    o += (size_t)snprintf(t + o, cap - o, "%llu = %s %s\n",
                          (unsigned long long)g->members[i].id,
                          g->members[i].peer, g->members[i].client);
  o += (size_t)snprintf(t + o, cap - o, "[clients]\n");
  for (size_t i = 0; i < g->n_clients; i++) {
    teex_hex_encode(g->clients[i].spki, 32, hex);
    o += (size_t)snprintf(t + o, cap - o, "%s = %s %s\n", g->clients[i].label,
                          hex, g->clients[i].ns);
  }
  o += (size_t)snprintf(t + o, cap - o, "[enclaves]\n");
  for (size_t i = 0; i < g->n_enclaves; i++)
    o += (size_t)snprintf(t + o, cap - o, "%s = %s\n", g->enclaves[i].label,
                          g->enclaves[i].ns);
  int rc = teex_ds_write_atomic(path, t, o, err);
  free(t);
  return rc;
}

int teex_ds_member_parse(const char *s, struct teex_ds_member *m,
                         struct teex_err *err) {
  const char *eq = strchr(s, '=');
  char id[32];
  if (eq == NULL || (size_t)(eq - s) >= sizeof(id))
    return teex_err_set(err, TEEX_EINVAL, "member '%s': want ID=PEER,CLIENT",
                        s);
  memcpy(id, s, (size_t)(eq - s));
  id[eq - s] = '\0';
  return member_fields(id, eq + 1, m, err);
}

int teex_ds_enclave_parse(const char *s, struct teex_ds_client_grant *c,
                          struct teex_err *err) {
  const char *eq = strchr(s, '=');
  char role[64];
  if (eq == NULL || (size_t)(eq - s) >= sizeof(role))
    return teex_err_set(err, TEEX_EINVAL, "enclave '%s': want ROLE=NS", s);
  memcpy(role, s, (size_t)(eq - s));
  role[eq - s] = '\0';
  return enclave_fields(role, eq + 1, c, err);
}

int teex_ds_client_parse(const char *s, struct teex_ds_client_grant *c,
                         struct teex_err *err) {
  const char *eq = strchr(s, '=');
  char label[64];
  if (eq == NULL || (size_t)(eq - s) >= sizeof(label))
    return teex_err_set(err, TEEX_EINVAL, "client '%s': want LABEL=SPKI:NS", s);
  memcpy(label, s, (size_t)(eq - s));
  label[eq - s] = '\0';
  return client_fields(label, eq + 1, c, err);
}

const struct teex_ds_member *teex_ds_group_member(const struct teex_ds_group *g,
                                                  uint64_t id) {
  for (size_t i = 0; i < g->n_members; i++)
    if (g->members[i].id == id)
      return &g->members[i];
  return NULL;
}
