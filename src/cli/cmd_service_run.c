/* `teex service run DIR|FILE --input FILE|- [--bench N]`: runs a service in
 * exactly the sandbox a worker uses (the executor), for service authors. */
#include "cli/cli.h"

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "teex/config.h"
#include "teex/executor.h"
#include "teex/image.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: teex service run DIR|FILE --input FILE|- [--bench N]\n"
          "                        [--data FILE]... [--max-output BYTES]\n"
          "                        [--accept-weaker-sandbox]\n\n"
          "Runs the service (a folder, packed on the fly, or an image file)\n"
          "once on the input, in the worker's sandbox, and prints its output\n"
          "on stdout; its logs and errors go to stderr. With --bench N it\n"
          "runs N tasks and prints latency percentiles to stderr.\n\n"
          "  -i, --input FILE|-          the task input ('-' = stdin)\n"
          "  -b, --bench N               run N tasks and report latency\n"
          "  -d, --data FILE             a dataset the service reads as\n"
          "                              teex.data(i) / TEEX_getdata(i), in\n"
          "                              order (local plaintext, for tests)\n"
          "      --max-output BYTES      cap output, logs and error together\n"
          "      --accept-weaker-sandbox run even if the kernel has no "
          "Landlock\n"
          "The env TEEX_LANDLOCK_ABI_MAX=N caps the Landlock ABI used.\n");
}

int teex_cmd_service_run(int argc, char **argv) {
  static const struct option opts[] = {
      {"input", required_argument, NULL, 'i'},
      {"bench", required_argument, NULL, 'b'},
      {"accept-weaker-sandbox", no_argument, NULL, 'w'},
      {"data", required_argument, NULL, 'd'},
      {"max-output", required_argument, NULL, 'm'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *input = NULL;
  const char *data[TEEX_EXEC_DATASETS_MAX];
  size_t n_data = 0;
  uint64_t bench = 0, output_max = 0;
  struct teex_executor_opts xo = {0};
  int c;
  optind = 0;
  while ((c = getopt_long(argc, argv, "i:b:d:h", opts, NULL)) != -1) {
    switch (c) {
    case 'i':
      input = optarg;
      break;
    case 'b':
      if (teex_parse_u64(optarg, &bench) != 0 || bench == 0 ||
          bench > 10000000) {
        fprintf(stderr, "teex: --bench: a count from 1 to 10000000\n");
        return TEEX_EXIT_USAGE;
      }
      break;
    case 'w':
      xo.accept_weaker_sandbox = 1;
      break;
    case 'd':
      if (n_data == TEEX_EXEC_DATASETS_MAX) {
        fprintf(stderr, "teex: at most %u --data files\n",
                TEEX_EXEC_DATASETS_MAX);
        return TEEX_EXIT_USAGE;
      }
      data[n_data++] = optarg;
      break;
    case 'm':
      if (teex_parse_u64(optarg, &output_max) != 0 || output_max == 0 ||
          output_max > UINT32_MAX) {
        fprintf(stderr, "teex: --max-output: a positive number of bytes\n");
        return TEEX_EXIT_USAGE;
      }
      break;
    case 'h':
      usage(stdout);
      return TEEX_EXIT_OK;
    default:
      usage(stderr);
      return TEEX_EXIT_USAGE;
    }
  }
  if (optind != argc - 1 || input == NULL) {
    usage(stderr);
    return TEEX_EXIT_USAGE;
  }
  struct teex_image *img = NULL;
  struct teex_err err;
  teex_err_clear(&err);
  if (teex_image_load(argv[optind], NULL, &img, &err) != 0)
    return teex_cli_fail("%s: %s", argv[optind], teex_err_msg(&err));
  int rc = teex_service_run_image(img, input, data, n_data,
                                  (uint32_t)output_max, (unsigned)bench, &xo);
  teex_image_free(img);
  return rc;
}
