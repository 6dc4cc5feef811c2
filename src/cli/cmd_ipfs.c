/* teex ipfs: content addressing from the command line — compute a file's
 * CIDv1, add it to the local blockstore or a real node (Kubo RPC API), and
 * read it back verified against its CID. */
#include "cli/cli.h"

#include "teex/config.h"
#include "teex/ipfs.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct ipfs_opts {
  const char *api;
  const char *store;
  uint64_t max_size;
};

static const struct option backend_options[] = {
    {"api", required_argument, NULL, 'a'},
    {"store", required_argument, NULL, 's'},
    {"max-size", required_argument, NULL, 'm'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static const char backend_help[] =
    "  --api URL       a node's Kubo RPC API (e.g. http://127.0.0.1:5001)\n"
    "                  instead of the local blockstore\n"
    "  --store DIR     the local blockstore (default $TEEX_HOME/ipfs or\n"
    "                  ~/.teex/ipfs)\n";

/* Parses the options shared by the subcommands; returns the index of the
 * first operand, or -1 after printing usage (status in *status). */
static int parse_opts(int argc, char **argv, struct ipfs_opts *o,
                      const char *usage, int *status) {
  o->api = NULL;
  o->store = NULL;
  o->max_size = UINT64_MAX;
  optind = 0;
  opterr = 1;
  int ch;
  while ((ch = getopt_long(argc, argv, "h", backend_options, NULL)) != -1) {
    switch (ch) {
    case 'a':
      o->api = optarg;
      break;
    case 's':
      o->store = optarg;
      break;
    case 'm':
      if (teex_parse_u64(optarg, &o->max_size) != 0) {
        fprintf(stderr, "teex: --max-size: not a number: %s\n", optarg);
        *status = TEEX_EXIT_USAGE;
        return -1;
      }
      break;
    case 'h':
      fputs(usage, stdout);
      *status = TEEX_EXIT_OK;
      return -1;
    default:
      fputs(usage, stderr);
      *status = TEEX_EXIT_USAGE;
      return -1;
    }
  }
  if (o->api != NULL && o->store != NULL) {
    fprintf(stderr, "teex: --api and --store exclude each other\n");
    *status = TEEX_EXIT_USAGE;
    return -1;
  }
  return optind;
}

static int open_backend(const struct ipfs_opts *o, struct teex_ipfs_backend **b,
                        struct teex_err *err) {
  if (o->api != NULL)
    return teex_ipfs_kubo_open(o->api, b, err);
  char data[PATH_MAX], dir[PATH_MAX + 8];
  const char *d = o->store;
  if (d == NULL) {
    /* The network's data directory, as for every other command. */
    teex_cli_data_dir(data, sizeof data);
    snprintf(dir, sizeof dir, "%s/ipfs", data);
    d = dir;
  }
  return teex_ipfs_store_open(d, b, err);
}

static int one_operand(int argc, int first, const char *usage) {
  if (first < 0)
    return -1;
  if (argc - first != 1) {
    fputs(usage, stderr);
    return -1;
  }
  return first;
}

static int cmd_cid(int argc, char **argv) {
  static const char usage[] =
      "usage: teex ipfs cid FILE\n\n"
      "Prints the CIDv1 of FILE (\"-\" for standard input) as an IPFS node\n"
      "computes it for `add --cid-version=1` with Kubo's defaults. Stores\n"
      "nothing.\n";
  struct ipfs_opts o;
  int status = TEEX_EXIT_USAGE;
  int first = parse_opts(argc, argv, &o, usage, &status);
  if (first < 0)
    return status;
  if ((first = one_operand(argc, first, usage)) < 0)
    return TEEX_EXIT_USAGE;
  const char *path = argv[first];
  int fd = strcmp(path, "-") == 0 ? 0 : open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return teex_cli_fail("cannot open %s: %s", path, strerror(errno));
  struct teex_err err;
  struct teex_cid cid;
  teex_err_clear(&err);
  int rc = teex_ipfs_cid_of_fd(fd, &cid, NULL, &err);
  if (fd != 0)
    close(fd);
  if (rc != 0)
    return teex_cli_fail("cid %s: %s", path, teex_err_msg(&err));
  char s[TEEX_CID_STR_SIZE];
  teex_cid_to_string(&cid, s);
  printf("%s\n", s);
  return TEEX_EXIT_OK;
}

static int cmd_add(int argc, char **argv) {
  static const char usage_head[] =
      "usage: teex ipfs add FILE [--api URL | --store DIR]\n\n"
      "Adds FILE (\"-\" for standard input), pinned, and prints its CIDv1.\n"
      "With --api, the node's CID must equal the one teex computes.\n\n";
  char usage[1024];
  snprintf(usage, sizeof usage, "%s%s", usage_head, backend_help);
  struct ipfs_opts o;
  int status = TEEX_EXIT_USAGE;
  int first = parse_opts(argc, argv, &o, usage, &status);
  if (first < 0)
    return status;
  if ((first = one_operand(argc, first, usage)) < 0)
    return TEEX_EXIT_USAGE;
  struct teex_err err;
  struct teex_ipfs_backend *b;
  teex_err_clear(&err);
  if (open_backend(&o, &b, &err) != 0)
    return teex_cli_fail("%s", teex_err_msg(&err));
  struct teex_cid cid;
  int rc = teex_ipfs_add_file(b, argv[first], &cid, NULL, &err);
  teex_ipfs_close(b);
  if (rc != 0)
    return teex_cli_fail("add %s: %s", argv[first], teex_err_msg(&err));
  char s[TEEX_CID_STR_SIZE];
  teex_cid_to_string(&cid, s);
  printf("%s\n", s);
  return TEEX_EXIT_OK;
}

static int write_stdout(void *ctx, const uint8_t *p, size_t n) {
  (void)ctx;
  while (n > 0) {
    ssize_t w = write(1, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return TEEX_EIO;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int cmd_cat(int argc, char **argv) {
  static const char usage_head[] =
      "usage: teex ipfs cat CID [--api URL | --store DIR] [--max-size N]\n\n"
      "Writes the file named by CID to standard output. Every block is\n"
      "verified against its CID first; a block whose bytes do not match\n"
      "stops the output with an error (exit status 1). Output written\n"
      "before the error stays written: redirect to a file and keep it only\n"
      "on success.\n\n";
  char usage[1024];
  snprintf(usage, sizeof usage, "%s%s%s", usage_head, backend_help,
           "  --max-size N    refuse files larger than N bytes\n");
  struct ipfs_opts o;
  int status = TEEX_EXIT_USAGE;
  int first = parse_opts(argc, argv, &o, usage, &status);
  if (first < 0)
    return status;
  if ((first = one_operand(argc, first, usage)) < 0)
    return TEEX_EXIT_USAGE;
  struct teex_err err;
  struct teex_cid cid;
  struct teex_ipfs_backend *b;
  teex_err_clear(&err);
  if (teex_cid_parse(argv[first], &cid, &err) != 0)
    return teex_cli_fail("%s", teex_err_msg(&err));
  if (open_backend(&o, &b, &err) != 0)
    return teex_cli_fail("%s", teex_err_msg(&err));
  int rc = teex_ipfs_cat(b, &cid, o.max_size, write_stdout, NULL, &err);
  teex_ipfs_close(b);
  if (rc != 0)
    return teex_cli_fail("%s", teex_err_msg(&err));
  return TEEX_EXIT_OK;
}

/* pin, unpin, and has share a shape: one CID, one backend call. */
static int cid_command(int argc, char **argv, const char *usage_head,
                       int which) {
  char usage[1024];
  snprintf(usage, sizeof usage, "%s%s", usage_head, backend_help);
  struct ipfs_opts o;
  int status = TEEX_EXIT_USAGE;
  int first = parse_opts(argc, argv, &o, usage, &status);
  if (first < 0)
    return status;
  if ((first = one_operand(argc, first, usage)) < 0)
    return TEEX_EXIT_USAGE;
  struct teex_err err;
  struct teex_cid cid;
  struct teex_ipfs_backend *b;
  teex_err_clear(&err);
  if (teex_cid_parse(argv[first], &cid, &err) != 0)
    return teex_cli_fail("%s", teex_err_msg(&err));
  if (open_backend(&o, &b, &err) != 0)
    return teex_cli_fail("%s", teex_err_msg(&err));
  int rc;
  if (which == 0)
    rc = teex_ipfs_pin(b, &cid, &err);
  else if (which == 1)
    rc = teex_ipfs_unpin(b, &cid, &err);
  else
    rc = teex_ipfs_has(b, &cid, &err);
  teex_ipfs_close(b);
  if (rc < 0)
    return teex_cli_fail("%s", teex_err_msg(&err));
  if (which == 2) {
    printf("%s\n", rc ? "yes" : "no");
    return rc ? TEEX_EXIT_OK : TEEX_EXIT_FAIL;
  }
  return TEEX_EXIT_OK;
}

static int cmd_pin(int argc, char **argv) {
  return cid_command(argc, argv,
                     "usage: teex ipfs pin CID [--api URL | --store DIR]\n\n"
                     "Pins the file named by CID (all its blocks must be "
                     "present\nand intact).\n\n",
                     0);
}

static int cmd_unpin(int argc, char **argv) {
  return cid_command(argc, argv,
                     "usage: teex ipfs unpin CID [--api URL | --store DIR]\n\n"
                     "Removes the pin of CID.\n\n",
                     1);
}

static int cmd_has(int argc, char **argv) {
  return cid_command(argc, argv,
                     "usage: teex ipfs has CID [--api URL | --store DIR]\n\n"
                     "Prints \"yes\" (exit 0) if the block CID is present, "
                     "else \"no\"\n(exit 1).\n\n",
                     2);
}

static int cmd_gc(int argc, char **argv) {
  static const char usage[] =
      "usage: teex ipfs gc [--store DIR]\n\n"
      "Deletes every block of the local blockstore that no pinned file\n"
      "needs. Do not run it while an add is in progress.\n";
  struct ipfs_opts o;
  int status = TEEX_EXIT_USAGE;
  int first = parse_opts(argc, argv, &o, usage, &status);
  if (first < 0)
    return status;
  if (argc != first || o.api != NULL) {
    fputs(usage, stderr);
    return TEEX_EXIT_USAGE;
  }
  struct teex_err err;
  struct teex_ipfs_backend *b;
  size_t removed = 0;
  teex_err_clear(&err);
  if (open_backend(&o, &b, &err) != 0)
    return teex_cli_fail("%s", teex_err_msg(&err));
  int rc = teex_ipfs_store_gc(b, &removed, &err);
  teex_ipfs_close(b);
  if (rc != 0)
    return teex_cli_fail("%s", teex_err_msg(&err));
  printf("removed %zu blocks\n", removed);
  return TEEX_EXIT_OK;
}

static const struct teex_cli_cmd ipfs_commands[] = {
    {"add", cmd_add, "add a file (pinned) and print its CID"},
    {"cat", cmd_cat, "write a file named by CID, verified, to stdout"},
    {"cid", cmd_cid, "print a file's CIDv1 without storing it"},
    {"pin", cmd_pin, "pin a file already present"},
    {"unpin", cmd_unpin, "remove a pin"},
    {"has", cmd_has, "tell whether a block is present"},
    {"gc", cmd_gc, "delete unpinned blocks of the local store"},
    {NULL, NULL, NULL},
};

int teex_cmd_ipfs(int argc, char **argv) {
  return teex_cli_dispatch("teex ipfs", ipfs_commands, argc - 1, argv + 1);
}
