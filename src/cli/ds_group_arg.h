/* `--ds-group FILE|ADDRS` of the daemons that use TEE-DS: a group.conf
 * (its members' client addresses; the replicas' policy.conf beside it
 * unless a policy is given) or comma-separated host:port addresses (then a
 * policy must be given). */
#ifndef TEEX_CLI_DS_GROUP_ARG_H
#define TEEX_CLI_DS_GROUP_ARG_H

#include "ds/transport.h"
#include "teex/ds_client.h"

#include <limits.h>
#include <stddef.h>

struct teex_cli_ds_group_arg {
  char addrs[TEEX_DS_CLIENT_MAX_REPLICAS][TEEX_DS_ADDR_MAX + 1];
  const char *list[TEEX_DS_CLIENT_MAX_REPLICAS]; /* into addrs */
  size_t n;
  char policy[PATH_MAX]; /* the replicas' evidence policy file */
};

/* Fills out from arg and policy (may be NULL). 0, or prints the reason
 * (naming --ds-group / --ds-policy) and returns an exit status. */
int teex_cli_ds_group_arg(const char *arg, const char *policy,
                          struct teex_cli_ds_group_arg *out);

#endif
