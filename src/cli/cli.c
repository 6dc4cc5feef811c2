/* Command table dispatch (see cli.h). */
#include "cli/cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void teex_cli_usage(FILE *out, const char *prog,
                    const struct teex_cli_cmd *table) {
  fprintf(out, "usage: %s <command> [options]\n\ncommands:\n", prog);
  for (const struct teex_cli_cmd *c = table; c->name != NULL; c++)
    fprintf(out, "  %-12s %s\n", c->name, c->help);
  fprintf(out, "\nRun '%s <command> --help' for a command's options.\n", prog);
}

int teex_cli_wants_help(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0)
      break;
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
      return 1;
  }
  return 0;
}

int teex_cli_fail(const char *fmt, ...) {
  va_list ap;
  fputs("teex: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  return TEEX_EXIT_FAIL;
}

int teex_cli_dispatch(const char *prog, const struct teex_cli_cmd *table,
                      int argc, char **argv) {
  if (argc < 1 || strcmp(argv[0], "help") == 0 ||
      strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
    if (argc >= 2) {
      for (const struct teex_cli_cmd *c = table; c->name != NULL; c++) {
        if (strcmp(c->name, argv[1]) == 0) {
          char *help_argv[] = {argv[1], "--help", NULL};
          return c->handler(2, help_argv);
        }
      }
    }
    teex_cli_usage(argc < 1 ? stderr : stdout, prog, table);
    return argc < 1 ? TEEX_EXIT_USAGE : TEEX_EXIT_OK;
  }
  for (const struct teex_cli_cmd *c = table; c->name != NULL; c++)
    if (strcmp(c->name, argv[0]) == 0)
      return c->handler(argc, argv);
  fprintf(stderr, "teex: unknown command '%s' for '%s'\n", argv[0], prog);
  teex_cli_usage(stderr, prog, table);
  return TEEX_EXIT_USAGE;
}

void teex_cli_data_dir(char *out, size_t size) {
  const char *home = getenv("TEEX_HOME");
  if (home != NULL && home[0] != '\0')
    snprintf(out, size, "%s", home);
  else
    snprintf(out, size, "%s/.teex", getenv("HOME") ? getenv("HOME") : ".");
}
