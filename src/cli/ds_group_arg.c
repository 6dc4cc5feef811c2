/* `--ds-group FILE|ADDRS` (ds_group_arg.h). */
#include "ds_group_arg.h"

#include "cli.h"
#include "ds/group.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

int teex_cli_ds_group_arg(const char *arg, const char *policy,
                          struct teex_cli_ds_group_arg *out) {
  struct teex_err err;
  memset(out, 0, sizeof *out);
  if (access(arg, F_OK) == 0) {
    static struct teex_ds_group g;
    if (teex_ds_group_load(&g, arg, &err) != 0)
      return teex_cli_fail("--ds-group: %s", err.msg);
    for (size_t i = 0; i < g.n_members && out->n < TEEX_DS_CLIENT_MAX_REPLICAS;
         i++)
      snprintf(out->addrs[out->n++], sizeof out->addrs[0], "%s",
               g.members[i].client);
    if (policy == NULL) {
      const char *slash = strrchr(arg, '/');
      int dir_len = slash != NULL ? (int)(slash - arg) + 1 : 0;
      snprintf(out->policy, sizeof out->policy, "%.*spolicy.conf", dir_len,
               arg);
    }
  } else {
    const char *p = arg;
    while (*p != '\0') {
      size_t len = strcspn(p, ",");
      if (len == 0 || len > TEEX_DS_ADDR_MAX ||
          out->n == TEEX_DS_CLIENT_MAX_REPLICAS)
        return teex_cli_fail("--ds-group: want a group.conf or up to %d "
                             "host:port addresses, comma-separated",
                             TEEX_DS_CLIENT_MAX_REPLICAS);
      memcpy(out->addrs[out->n], p, len);
      out->addrs[out->n++][len] = '\0';
      p += len + (p[len] == ',');
    }
    if (policy == NULL)
      return teex_cli_fail("--ds-group ADDRS needs --ds-policy");
  }
  if (out->n == 0)
    return teex_cli_fail("--ds-group: no replica");
  if (policy != NULL)
    snprintf(out->policy, sizeof out->policy, "%s", policy);
  for (size_t i = 0; i < out->n; i++)
    out->list[i] = out->addrs[i];
  return 0;
}
