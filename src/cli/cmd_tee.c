/* `teex tee ...`: the TEE of this machine (sim backend) from the command
 * line — create a network root and platform key, show the measurement,
 * produce and verify evidence, write an RA-TLS certificate. */
#include "cli/cli.h"

#include "teex/crypto.h"
#include "teex/evidence.h"
#include "teex/ratls.h"
#include "teex/tee.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Options every tee command takes. */
struct tee_opts {
  char data_dir[PATH_MAX];
  const char *role;
  const char *role_config_path;
  struct teex_tee_config cfg;
  uint8_t *role_config;
};

#define COMMON_HELP                                                            \
  "common options (also accepted before the command: teex tee --data-dir "     \
  "DIR quote ...):\n"                                                          \
  "  --data-dir DIR       teex data directory (default $TEEX_HOME, else "      \
  "~/.teex)\n"                                                                 \
  "  --role ROLE          component role: sm, dispatcher, worker, ds, "        \
  "client, ... (default client)\n"                                             \
  "  --role-config FILE   role configuration, measured with the executable\n"  \
  "  --signer HEX         mr_signer (64 hex digits; default: the sim dev "     \
  "signer)\n"                                                                  \
  "  --product-id N       product id (default 0)\n"                            \
  "  --svn N              security version number (default 0)\n"               \
  "  --debug              declare a debug enclave\n"

enum {
  OPT_DATA_DIR = 1000,
  OPT_ROLE,
  OPT_ROLE_CONFIG,
  OPT_SIGNER,
  OPT_PRODUCT,
  OPT_SVN,
  OPT_DEBUG,
  OPT_REPORT_DATA,
  OPT_OUT,
  OPT_POLICY,
  OPT_NONCE,
  OPT_AT,
  OPT_SECP,
  OPT_X25519,
};

#define COMMON_LONGOPTS                                                        \
  {"data-dir", required_argument, NULL, OPT_DATA_DIR},                         \
      {"role", required_argument, NULL, OPT_ROLE},                             \
      {"role-config", required_argument, NULL, OPT_ROLE_CONFIG},               \
      {"signer", required_argument, NULL, OPT_SIGNER},                         \
      {"product-id", required_argument, NULL, OPT_PRODUCT},                    \
      {"svn", required_argument, NULL, OPT_SVN},                               \
      {"debug", no_argument, NULL, OPT_DEBUG}, {                               \
    "help", no_argument, NULL, 'h'                                             \
  }

/* Options given before the command (`teex tee --data-dir D quote ...`). */
static const char *global_data_dir, *global_role;

static void opts_init(struct tee_opts *o) {
  memset(o, 0, sizeof *o);
  const char *home = getenv("TEEX_HOME");
  if (global_data_dir != NULL) {
    snprintf(o->data_dir, sizeof o->data_dir, "%s", global_data_dir);
  } else if (home != NULL && home[0] != '\0') {
    snprintf(o->data_dir, sizeof o->data_dir, "%s", home);
  } else {
    const char *h = getenv("HOME");
    snprintf(o->data_dir, sizeof o->data_dir, "%s/.teex", h ? h : ".");
  }
  o->role = global_role ? global_role : "client";
}

static void opts_free(struct tee_opts *o) {
  free(o->role_config);
}

static int parse_u16(const char *s, const char *what, uint16_t *out) {
  uint64_t v;
  if (teex_parse_u64(s, &v) != 0 || v > 0xffff) {
    teex_cli_fail("%s must be a number from 0 to 65535", what);
    return -1;
  }
  *out = (uint16_t)v;
  return 0;
}

/* Handles a common option; 1 if handled, 0 if not, -1 on error. */
static int opts_common(struct tee_opts *o, int c, const char *arg) {
  size_t n;
  switch (c) {
  case OPT_DATA_DIR:
    if (strlen(arg) >= sizeof o->data_dir - 32) {
      teex_cli_fail("--data-dir too long");
      return -1;
    }
    snprintf(o->data_dir, sizeof o->data_dir, "%s", arg);
    return 1;
  case OPT_ROLE:
    o->role = arg;
    return 1;
  case OPT_ROLE_CONFIG:
    o->role_config_path = arg;
    return 1;
  case OPT_SIGNER:
    if (teex_hex_decode(arg, o->cfg.mr_signer, 32, &n) != 0 || n != 32) {
      teex_cli_fail("--signer must be 64 hex digits");
      return -1;
    }
    o->cfg.has_signer = 1;
    return 1;
  case OPT_PRODUCT:
    return parse_u16(arg, "--product-id", &o->cfg.product_id) ? -1 : 1;
  case OPT_SVN:
    return parse_u16(arg, "--svn", &o->cfg.svn) ? -1 : 1;
  case OPT_DEBUG:
    o->cfg.debug = 1;
    return 1;
  default:
    return 0;
  }
}

/* Reads a whole file of at most max bytes (malloc'd). */
static int read_file(const char *path, size_t max, uint8_t **out, size_t *len) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    teex_cli_fail("%s: %s", path, strerror(errno));
    return -1;
  }
  uint8_t *b = malloc(max + 1);
  size_t n = b ? fread(b, 1, max + 1, f) : 0;
  int bad = b == NULL || ferror(f);
  fclose(f);
  if (bad) {
    free(b);
    teex_cli_fail("%s: read failed", path);
    return -1;
  }
  if (n > max) {
    free(b);
    teex_cli_fail("%s: larger than %zu bytes", path, max);
    return -1;
  }
  *out = b;
  *len = n;
  return 0;
}

static int write_file(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  if (f == NULL)
    return teex_cli_fail("%s: %s", path, strerror(errno));
  size_t w = fwrite(p, 1, n, f);
  if (fclose(f) != 0 || w != n)
    return teex_cli_fail("%s: write failed", path);
  return 0;
}

/* Fills o->cfg from the options and opens the TEE. */
static int open_tee(struct tee_opts *o, struct teex_tee **tee) {
  if (o->role_config_path != NULL &&
      read_file(o->role_config_path, 1024 * 1024, &o->role_config,
                &o->cfg.role_config_len) != 0)
    return -1;
  o->cfg.backend = "sim";
  o->cfg.data_dir = o->data_dir;
  o->cfg.role = o->role;
  o->cfg.role_config = o->role_config;
  struct teex_err err;
  teex_err_clear(&err);
  if (teex_tee_open(&o->cfg, tee, &err) != 0) {
    teex_cli_fail("%s", teex_err_msg(&err));
    return -1;
  }
  return 0;
}

static void print_hex(const char *label, const uint8_t *p, size_t n) {
  char hex[2 * 64 + 1];
  teex_hex_encode(p, n, hex);
  printf("%-14s %s\n", label, hex);
}

static void print_identity(const struct teex_tee_identity *id, int quoted) {
  printf("%-14s %s\n", "tee", teex_tee_type_name(id->tee_type));
  printf("%-14s %s\n", "role", id->role);
  print_hex("mr_enclave", id->mr_enclave, 32);
  print_hex("mr_signer", id->mr_signer, 32);
  printf("%-14s %u\n", "product_id", id->product_id);
  printf("%-14s %u\n", "svn", id->svn);
  printf("%-14s %s\n", "debug", id->debug ? "yes" : "no");
  print_hex("root", id->root, 32);
  print_hex("platform", id->platform, 32);
  if (!quoted)
    return;
  printf("%-14s %" PRIu64 "\n", "issued_at", id->issued_at);
  print_hex("report_data", id->report_data, 64);
  if (!id->has_binding) {
    printf("%-14s none (report data given by the quoter)\n", "binding");
    return;
  }
  const struct teex_tee_binding *b = &id->binding;
  if (b->has_tls)
    print_hex("tls_spki", b->tls_spki_sha256, 32);
  if (b->has_secp256k1) {
    char addr[43];
    teex_eth_address_hex(b->eth_address, addr);
    printf("%-14s %s\n", "eth_address", addr);
  }
  if (b->has_x25519)
    print_hex("x25519", b->x25519_pub, 32);
  if (b->has_nonce)
    print_hex("nonce", b->nonce, 32);
}

static int cmd_init(int argc, char **argv) {
  static const struct option longopts[] = {COMMON_LONGOPTS, {0, 0, 0, 0}};
  struct tee_opts o;
  opts_init(&o);
  int c, rc = TEEX_EXIT_USAGE;
  optind = 0;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    if (c == 'h') {
      printf(
          "usage: teex tee init [--data-dir DIR]\n\n"
          "Creates DIR/tee/root.key (the network root, unless one is "
          "there),\nDIR/tee/root.pub and DIR/tee/platform.key (this "
          "platform's attestation\nkey and sealing secret, certified by "
          "the root). Key files are mode 0600.\nsim keys are files: the "
          "host's root user can read them and forge evidence.\n\n" COMMON_HELP);
      rc = TEEX_EXIT_OK;
      goto out;
    }
    if (opts_common(&o, c, optarg) <= 0)
      goto out;
  }
  if (optind != argc) {
    teex_cli_fail("tee init: unexpected argument %s", argv[optind]);
    goto out;
  }
  struct teex_err err;
  teex_err_clear(&err);
  uint8_t root[32];
  if (teex_tee_sim_init(o.data_dir, root, &err) != 0) {
    rc = teex_cli_fail("%s", teex_err_msg(&err));
    goto out;
  }
  printf("initialised sim platform in %s/tee\n", o.data_dir);
  print_hex("root", root, 32);
  rc = TEEX_EXIT_OK;
out:
  opts_free(&o);
  return rc;
}

static int cmd_measure(int argc, char **argv) {
  static const struct option longopts[] = {COMMON_LONGOPTS, {0, 0, 0, 0}};
  struct tee_opts o;
  opts_init(&o);
  int c, rc = TEEX_EXIT_USAGE;
  optind = 0;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    if (c == 'h') {
      printf("usage: teex tee measure [options]\n\nPrints this component's "
             "identity: mr_enclave (sim: SHA-256 over the\nrunning "
             "executable, the role, the role configuration and the "
             "declared\nsigner, product, svn and debug flag), mr_signer, "
             "product id, svn, debug.\n\n" COMMON_HELP);
      rc = TEEX_EXIT_OK;
      goto out;
    }
    if (opts_common(&o, c, optarg) <= 0)
      goto out;
  }
  struct teex_tee *tee;
  if (open_tee(&o, &tee) != 0) {
    rc = TEEX_EXIT_FAIL;
    goto out;
  }
  print_identity(teex_tee_self(tee), 0);
  teex_tee_close(tee);
  rc = TEEX_EXIT_OK;
out:
  opts_free(&o);
  return rc;
}

static int cmd_quote(int argc, char **argv) {
  static const struct option longopts[] = {
      COMMON_LONGOPTS,
      {"report-data", required_argument, NULL, OPT_REPORT_DATA},
      {"out", required_argument, NULL, OPT_OUT},
      {0, 0, 0, 0}};
  struct tee_opts o;
  opts_init(&o);
  const char *rd_hex = NULL, *out_path = NULL;
  int c, rc = TEEX_EXIT_USAGE;
  optind = 0;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    if (c == 'h') {
      printf("usage: teex tee quote --report-data HEX --out FILE "
             "[options]\n\nWrites evidence (docs/attestation.md) over up to "
             "64 bytes of report data\n(shorter data is zero-padded), issued "
             "now, signed by this platform's key.\n\n" COMMON_HELP);
      rc = TEEX_EXIT_OK;
      goto out;
    }
    if (c == OPT_REPORT_DATA) {
      rd_hex = optarg;
      continue;
    }
    if (c == OPT_OUT) {
      out_path = optarg;
      continue;
    }
    if (opts_common(&o, c, optarg) <= 0)
      goto out;
  }
  if (rd_hex == NULL || out_path == NULL || optind != argc) {
    teex_cli_fail("tee quote: needs --report-data HEX and --out FILE");
    goto out;
  }
  uint8_t rd[64] = {0};
  size_t n;
  if (teex_hex_decode(rd_hex, rd, sizeof rd, &n) != 0) {
    teex_cli_fail("--report-data: at most 64 bytes of hex");
    goto out;
  }
  rc = TEEX_EXIT_FAIL;
  struct teex_tee *tee;
  if (open_tee(&o, &tee) != 0)
    goto out;
  struct teex_buf ev;
  teex_buf_init(&ev, TEEX_EVIDENCE_MAX, 0);
  struct teex_err err;
  teex_err_clear(&err);
  if (teex_tee_quote(tee, rd, (uint64_t)time(NULL), NULL, &ev, &err) != 0)
    teex_cli_fail("%s", teex_err_msg(&err));
  else if (write_file(out_path, ev.data, ev.len) == 0)
    rc = TEEX_EXIT_OK;
  teex_buf_free(&ev);
  teex_tee_close(tee);
out:
  opts_free(&o);
  return rc;
}

static int cmd_verify(int argc, char **argv) {
  static const struct option longopts[] = {
      COMMON_LONGOPTS,
      {"policy", required_argument, NULL, OPT_POLICY},
      {"nonce", required_argument, NULL, OPT_NONCE},
      {"at", required_argument, NULL, OPT_AT},
      {0, 0, 0, 0}};
  struct tee_opts o;
  opts_init(&o);
  const char *policy_path = NULL;
  uint8_t nonce[TEEX_TEE_NONCE_LEN];
  int has_nonce = 0;
  uint64_t now = (uint64_t)time(NULL);
  int c, rc = TEEX_EXIT_USAGE;
  size_t n;
  optind = 0;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    if (c == 'h') {
      printf("usage: teex tee verify FILE [--policy FILE] [--nonce HEX] "
             "[--at UNIXTIME]\n\nVerifies evidence: its signature chain, the "
             "binding of its report data and\nthe policy. Prints the identity; "
             "on failure prints one line saying why and\nexits 1. Without "
             "--policy: trusts the root of DIR's platform, allows\nsimulated "
             "and debug evidence, any code and any age (a diagnostic, not a\n"
             "policy to release keys on). --at verifies as of another time.\n\n"
             "Policy file format: docs/attestation.md.\n\n" COMMON_HELP);
      rc = TEEX_EXIT_OK;
      goto out;
    }
    if (c == OPT_POLICY) {
      policy_path = optarg;
    } else if (c == OPT_NONCE) {
      if (teex_hex_decode(optarg, nonce, sizeof nonce, &n) != 0 ||
          n != sizeof nonce) {
        teex_cli_fail("--nonce must be 64 hex digits");
        goto out;
      }
      has_nonce = 1;
    } else if (c == OPT_AT) {
      if (teex_parse_u64(optarg, &now) != 0) {
        teex_cli_fail("--at must be a unix time in seconds");
        goto out;
      }
    } else if (opts_common(&o, c, optarg) <= 0) {
      goto out;
    }
  }
  if (optind != argc - 1) {
    teex_cli_fail("tee verify: needs exactly one evidence FILE");
    goto out;
  }
  const char *path = argv[optind];
  rc = TEEX_EXIT_FAIL;
  struct teex_err err;
  teex_err_clear(&err);
  struct teex_tee_policy policy;
  teex_tee_policy_init(&policy);
  if (policy_path != NULL) {
    if (teex_tee_policy_load(&policy, policy_path, &err) != 0) {
      teex_cli_fail("%s", teex_err_msg(&err));
      goto out;
    }
  } else {
    uint8_t root[32];
    if (teex_tee_sim_root(o.data_dir, root, &err) != 0) {
      teex_cli_fail("no --policy, and no local root: %s", teex_err_msg(&err));
      goto out;
    }
    teex_tee_policy_add_root(&policy, root);
    policy.allow_simulated = 1;
    policy.allow_debug = 1;
    policy.allow_any_code = 1;
    policy.max_age = 0;
  }
  uint8_t *ev;
  size_t ev_len;
  if (read_file(path, TEEX_EVIDENCE_MAX, &ev, &ev_len) != 0)
    goto out;
  struct teex_tee_identity id;
  if (teex_tee_verify(ev, ev_len, &policy, has_nonce ? nonce : NULL, now, &id,
                      &err) != 0) {
    teex_cli_fail("verify %s: %s", path, teex_err_msg(&err));
  } else {
    printf("evidence OK (%s)\n",
           policy_path ? policy_path : "default diagnostic policy");
    print_identity(&id, 1);
    rc = TEEX_EXIT_OK;
  }
  free(ev);
out:
  opts_free(&o);
  return rc;
}

static int cmd_cert(int argc, char **argv) {
  static const struct option longopts[] = {
      COMMON_LONGOPTS,
      {"out", required_argument, NULL, OPT_OUT},
      {"secp256k1-pub", required_argument, NULL, OPT_SECP},
      {"x25519-pub", required_argument, NULL, OPT_X25519},
      {0, 0, 0, 0}};
  struct tee_opts o;
  opts_init(&o);
  const char *out_path = NULL;
  uint8_t secp[65], x25519[32];
  struct teex_ratls_keys keys = {NULL, NULL, NULL};
  int c, rc = TEEX_EXIT_USAGE;
  size_t n;
  optind = 0;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    if (c == 'h') {
      printf("usage: teex tee cert --out FILE [--secp256k1-pub HEX] "
             "[--x25519-pub HEX] [options]\n\nWrites the PEM RA-TLS "
             "certificate this component would present: a fresh\nP-256 key "
             "(kept in this process, never written) and a self-signed "
             "certificate\nwhose extension " TEEX_RATLS_OID_EVIDENCE
             "\ncarries evidence binding the key (and the given public "
             "keys).\n\n" COMMON_HELP);
      rc = TEEX_EXIT_OK;
      goto out;
    }
    if (c == OPT_OUT) {
      out_path = optarg;
    } else if (c == OPT_SECP) {
      /* 64 bytes x||y, or SEC1 (33 or 65 bytes). */
      uint8_t raw[65];
      int bad = teex_hex_decode(optarg, raw, sizeof raw, &n) != 0;
      if (!bad && n == 64)
        memcpy(secp, raw, 64);
      else if (!bad)
        bad = teex_secp256k1_parse_public(raw, n, secp) != 0;
      if (bad) {
        teex_cli_fail("--secp256k1-pub: not a secp256k1 public key");
        goto out;
      }
      keys.secp256k1_pub = secp;
    } else if (c == OPT_X25519) {
      if (teex_hex_decode(optarg, x25519, 32, &n) != 0 || n != 32) {
        teex_cli_fail("--x25519-pub must be 64 hex digits");
        goto out;
      }
      keys.x25519_pub = x25519;
    } else if (opts_common(&o, c, optarg) <= 0) {
      goto out;
    }
  }
  if (out_path == NULL || optind != argc) {
    teex_cli_fail("tee cert: needs --out FILE");
    goto out;
  }
  rc = TEEX_EXIT_FAIL;
  struct teex_tee *tee;
  if (open_tee(&o, &tee) != 0)
    goto out;
  struct teex_err err;
  teex_err_clear(&err);
  EVP_PKEY *key;
  X509 *cert;
  if (teex_ratls_identity_new(tee, &keys, &key, &cert, &err) != 0) {
    teex_cli_fail("%s", teex_err_msg(&err));
  } else {
    FILE *f = fopen(out_path, "w");
    if (f == NULL) {
      teex_cli_fail("%s: %s", out_path, strerror(errno));
    } else {
      int ok = PEM_write_X509(f, cert);
      if (fclose(f) == 0 && ok)
        rc = TEEX_EXIT_OK;
      else
        teex_cli_fail("%s: write failed", out_path);
    }
    X509_free(cert);
    EVP_PKEY_free(key);
  }
  teex_tee_close(tee);
out:
  opts_free(&o);
  return rc;
}

static const struct teex_cli_cmd tee_commands[] = {
    {"init", cmd_init, "create a sim network root and platform key"},
    {"measure", cmd_measure, "print this component's identity"},
    {"quote", cmd_quote, "write evidence over given report data"},
    {"verify", cmd_verify, "verify evidence and print the identity"},
    {"cert", cmd_cert, "write this component's PEM RA-TLS certificate"},
    {"serve", teex_cmd_tee_serve, "diagnostic RA-TLS endpoint (health, echo)"},
    {"connect", teex_cmd_tee_connect,
     "verify an RA-TLS endpoint's evidence, print its identity and RTT"},
    {NULL, NULL, NULL},
};

int teex_cmd_tee(int argc, char **argv) {
  int i = 1;
  /* Leading --data-dir/--role apply to the command that follows. */
  while (i + 1 < argc && (strcmp(argv[i], "--data-dir") == 0 ||
                          strcmp(argv[i], "--role") == 0)) {
    if (argv[i][2] == 'd')
      global_data_dir = argv[i + 1];
    else
      global_role = argv[i + 1];
    i += 2;
  }
  if (global_data_dir != NULL && strlen(global_data_dir) >= PATH_MAX - 32)
    return teex_cli_fail("--data-dir too long");
  /* Subcommands in other files (serve, connect) read the data directory
   * from the environment: make a leading --data-dir reach them too. */
  if (global_data_dir != NULL)
    setenv("TEEX_HOME", global_data_dir, 1);
  return teex_cli_dispatch("teex tee", tee_commands, argc - i, argv + i);
}
