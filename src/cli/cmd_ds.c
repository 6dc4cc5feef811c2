/* `teex ds`: TEE-DS commands. */
#include "cli/cli.h"

static const struct teex_cli_cmd ds_cmds[] = {
    {"proxy", teex_cmd_ds_proxy,
     "serve a namespace to local Redis tools (RESP)"},
    {NULL, NULL, NULL},
};

int teex_cmd_ds(int argc, char **argv) {
  return teex_cli_dispatch("teex ds", ds_cmds, argc - 1, argv + 1);
}
