/* `teex executor`: the executor process a worker (or `teex service run`)
 * starts for one service image. Internal: not for people to type. */
#include "cli/cli.h"

#include "teex/executor.h"

#include <stdio.h>

int teex_cmd_executor(int argc, char **argv) {
  if (teex_cli_wants_help(argc, argv)) {
    printf("usage: teex executor --fd N [--landlock-abi-max N]\n"
           "                     [--accept-weaker-sandbox] [--no-prefork]\n\n"
           "Internal: the sandboxed Python executor of one service image,\n"
           "started by a worker or `teex service run` with its task channel\n"
           "on descriptor N. See docs/internals/executor.md.\n");
    return TEEX_EXIT_OK;
  }
  return teex_executor_main(argc, argv);
}
