/* `teex ds place ...` and `teex ds move`: the placement directory of a
 * TEE-DS deployment with several groups (include/teex/ds_place.h), routed
 * reads and writes (ds_router.h), and moving a namespace between groups
 * online. docs/internals/ds.md "Scale-out", docs/operations.md. */
#include "cli/cli.h"
#include "ds/group.h"
#include "teex/config.h"
#include "teex/crypto.h"
#include "teex/ds.h"
#include "teex/ds_client.h"
#include "teex/ds_place.h"
#include "teex/ds_router.h"
#include "teex/ds_server.h"
#include "teex/log.h"
#include "teex/mem.h"
#include "teex/ratls_channel.h"
#include "teex/tee_policy.h"

#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_POLICIES TEEX_DS_ROUTER_TLS_MAX
#define MAX_GROUP_ARGS 16

/* ---- files ---- */

static int read_all(const char *path, size_t max, uint8_t **out, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return -1;
  uint8_t *b = malloc(max + 1);
  size_t n = b ? fread(b, 1, max + 1, f) : 0;
  int bad = b == NULL || ferror(f) || n > max;
  fclose(f);
  if (bad) {
    free(b);
    return -1;
  }
  *out = b;
  *len = n;
  return 0;
}

/* Writes via a temporary file and rename, so a reader sees the old or the
 * new file, never half of one. */
static int write_atomic(const char *path, const void *p, size_t n, int mode) {
  char tmp[PATH_MAX + 8];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode);
  if (fd < 0)
    return -1;
  const uint8_t *b = p;
  size_t off = 0;
  while (off < n) {
    ssize_t w = write(fd, b + off, n - off);
    if (w <= 0) {
      close(fd);
      unlink(tmp);
      return -1;
    }
    off += (size_t)w;
  }
  if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
    unlink(tmp);
    return -1;
  }
  return 0;
}

/* The placement secret key (hex, 64 bytes) into locked memory. */
static int load_sk(const char *path, uint8_t **sk) {
  uint8_t *t;
  size_t n;
  if (read_all(path, 256, &t, &n) != 0)
    return teex_cli_fail("cannot read the placement key %s", path);
  while (n > 0 && (t[n - 1] == '\n' || t[n - 1] == '\r'))
    n--;
  t[n] = 0;
  *sk = teex_secret_alloc(64);
  size_t got = 0;
  int rc = *sk ? teex_hex_decode((char *)t, *sk, 64, &got) : -1;
  teex_wipe(t, n);
  free(t);
  if (rc != 0 || got != 64) {
    teex_secret_free(*sk);
    *sk = NULL;
    return teex_cli_fail("%s is not a placement key (128 hex digits)", path);
  }
  return 0;
}

static int load_pk(const char *path, uint8_t pk[32]) {
  uint8_t *t;
  size_t n, got = 0;
  if (read_all(path, 256, &t, &n) != 0)
    return teex_cli_fail("cannot read the placement public key %s", path);
  while (n > 0 && (t[n - 1] == '\n' || t[n - 1] == '\r'))
    n--;
  t[n] = 0;
  int rc = teex_hex_decode((char *)t, pk, 32, &got);
  free(t);
  if (rc != 0 || got != 32)
    return teex_cli_fail("%s is not a placement public key (64 hex digits)",
                         path);
  return 0;
}

/* Reads and verifies a directory file. */
static int load_dir(const char *path, const uint8_t pk[32],
                    struct teex_ds_dir *d, uint8_t **text, size_t *len) {
  struct teex_err err;
  teex_err_clear(&err);
  if (read_all(path, TEEX_DS_DIR_MAX, text, len) != 0)
    return teex_cli_fail("cannot read the directory %s", path);
  if (teex_ds_dir_open(*text, *len, pk, d, &err) != 0) {
    free(*text);
    *text = NULL;
    return teex_cli_fail("directory %s: %s", path, err.msg);
  }
  return 0;
}

static int save_dir(const char *path, const struct teex_ds_dir *d,
                    const uint8_t *sk) {
  static uint8_t text[TEEX_DS_DIR_MAX];
  size_t n;
  struct teex_err err;
  if (teex_ds_dir_sign(d, sk, text, sizeof text, &n, &err) != 0)
    return teex_cli_fail("directory: %s", err.msg);
  if (write_atomic(path, text, n, 0644) != 0)
    return teex_cli_fail("cannot write %s", path);
  return 0;
}

/* "ID=STATE_DIR": a group from a replica's group.conf (client addresses)
 * and policy.conf (hashed). */
static int group_from_state(const char *arg, int hashed,
                            struct teex_ds_dir_group *g) {
  memset(g, 0, sizeof(*g));
  const char *eq = strchr(arg, '=');
  char idtxt[24];
  if (eq == NULL || (size_t)(eq - arg) >= sizeof idtxt)
    return teex_cli_fail("--group %s: expected ID=STATE_DIR", arg);
  memcpy(idtxt, arg, (size_t)(eq - arg));
  idtxt[eq - arg] = 0;
  if (teex_parse_u64(idtxt, &g->id) != 0 || g->id == 0)
    return teex_cli_fail("--group %s: bad group id", arg);
  g->hashed = hashed;
  static struct teex_ds_group grp;
  char path[PATH_MAX];
  struct teex_err err;
  snprintf(path, sizeof path, "%s/%s", eq + 1, TEEX_DS_GROUP_FILE);
  if (teex_ds_group_load(&grp, path, &err) != 0)
    return teex_cli_fail("--group %s: %s", arg, err.msg);
  for (size_t i = 0; i < grp.n_members && i < TEEX_DS_DIR_MEMBERS_MAX; i++) {
    snprintf(g->members[i], sizeof g->members[i], "%s", grp.members[i].client);
    g->n_members++;
  }
  snprintf(path, sizeof path, "%s/%s", eq + 1, TEEX_DS_POLICY_FILE);
  uint8_t *pol;
  size_t pn;
  if (read_all(path, 1 << 20, &pol, &pn) != 0)
    return teex_cli_fail("--group %s: cannot read %s", arg, path);
  teex_sha256(pol, pn, g->policy);
  free(pol);
  return 0;
}

/* ---- connecting: one client certificate, one TLS context per policy ---- */

struct conn {
  const char *cert, *key;
  const char *policy_files[MAX_POLICIES];
  size_t n_policies;
  struct teex_tee_policy policies[MAX_POLICIES];
  struct teex_ratls_verifier verifiers[MAX_POLICIES];
  struct teex_ds_router_tls tls[MAX_POLICIES];
  EVP_PKEY *pkey;
  X509 *x509;
};

static int conn_open(struct conn *k) {
  if (k->cert == NULL || k->key == NULL || k->n_policies == 0)
    return teex_cli_fail("give --cert, --key and at least one --policy (the "
                         "evidence policy of the groups' replicas)");
  FILE *f = fopen(k->key, "r");
  k->pkey = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
  if (f)
    fclose(f);
  f = fopen(k->cert, "r");
  k->x509 = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
  if (f)
    fclose(f);
  if (k->pkey == NULL || k->x509 == NULL)
    return teex_cli_fail("cannot read the client key/certificate (%s, %s)",
                         k->key, k->cert);
  for (size_t i = 0; i < k->n_policies; i++) {
    struct teex_err err;
    uint8_t *pol;
    size_t pn;
    if (read_all(k->policy_files[i], 1 << 20, &pol, &pn) != 0)
      return teex_cli_fail("cannot read policy %s", k->policy_files[i]);
    teex_sha256(pol, pn, k->tls[i].policy);
    free(pol);
    teex_tee_policy_init(&k->policies[i]);
    if (teex_tee_policy_load(&k->policies[i], k->policy_files[i], &err) != 0)
      return teex_cli_fail("policy %s: %s", k->policy_files[i], err.msg);
    k->verifiers[i].policy = &k->policies[i];
    struct teex_tls_config tc = {.cert = k->x509,
                                 .key = k->pkey,
                                 .mutual = 1,
                                 .handshake_timeout_ms = 2000,
                                 .verify_peer = teex_ratls_channel_verify,
                                 .verify_arg = &k->verifiers[i]};
    if (teex_tls_ctx_new(&k->tls[i].tls, &tc, 0, &err) != 0)
      return teex_cli_fail("tls: %s", err.msg);
  }
  return 0;
}

static void conn_close(struct conn *k) {
  for (size_t i = 0; i < k->n_policies; i++) {
    teex_tls_ctx_free(k->tls[i].tls);
    k->tls[i].tls = NULL;
  }
  EVP_PKEY_free(k->pkey);
  X509_free(k->x509);
  k->pkey = NULL;
  k->x509 = NULL;
}

static struct teex_tls_ctx *conn_tls(struct conn *k,
                                     const struct teex_ds_dir_group *g) {
  for (size_t i = 0; i < k->n_policies; i++)
    if (memcmp(k->tls[i].policy, g->policy, 32) == 0)
      return k->tls[i].tls;
  return NULL;
}

/* A plain group client (no routing) for ns on group g, on a private loop,
 * that runs a batch of commands concurrently (the move's reads of a page:
 * the leader confirms reads queued together with one barrier). */
struct gconn {
  uv_loop_t loop;
  struct teex_ds_client *c;
};

static void gconn_close(struct gconn *g) {
  if (g == NULL)
    return;
  teex_ds_client_close(g->c);
  uv_run(&g->loop, UV_RUN_DEFAULT);
  uv_loop_close(&g->loop);
  free(g);
}

struct gslot {
  int *pending;
  int *status;
  struct teex_ds_result *res;
};

static void gslot_done(void *arg, int status, struct teex_ds_result *res) {
  struct gslot *sl = arg;
  *sl->status = status;
  if (res != NULL) {
    *sl->res = *res;
    free(res);
  }
  --*sl->pending;
}

/* Runs cmds[0..n) at once (n <= TEEX_DS_MSET_MAX) and waits for all:
 * status[i] is each call's status, res[i] its result when 0 (the caller
 * frees those). */
static void gconn_exec_many(struct gconn *g, const struct teex_ds_cmd *cmds,
                            size_t n, int *status, struct teex_ds_result *res) {
  struct gslot sl[TEEX_DS_MSET_MAX];
  int pending = 0;
  for (size_t i = 0; i < n; i++) {
    memset(&res[i], 0, sizeof res[i]);
    sl[i] = (struct gslot){&pending, &status[i], &res[i]};
    struct teex_err err;
    status[i] = teex_ds_client_exec(g->c, &cmds[i], TEEX_DS_READ_LINEARIZABLE,
                                    gslot_done, &sl[i], &err);
    pending += status[i] == 0;
  }
  while (pending > 0)
    uv_run(&g->loop, UV_RUN_ONCE);
}

static int group_client(struct conn *k, const struct teex_ds_dir_group *g,
                        const char *ns, uint32_t timeout_ms,
                        struct gconn **out) {
  struct teex_tls_ctx *tls = conn_tls(k, g);
  if (tls == NULL)
    return teex_cli_fail("group %llu: none of the --policy files is its "
                         "evidence policy",
                         (unsigned long long)g->id);
  const char *addrs[TEEX_DS_DIR_MEMBERS_MAX];
  for (size_t i = 0; i < g->n_members; i++)
    addrs[i] = g->members[i];
  struct teex_ds_client_config cc = {.replicas = addrs,
                                     .n_replicas = g->n_members,
                                     .tls = tls,
                                     .ns = ns,
                                     .timeout_ms = timeout_ms};
  struct teex_err err;
  struct gconn *gc = calloc(1, sizeof(*gc));
  if (gc == NULL || uv_loop_init(&gc->loop) != 0) {
    free(gc);
    return teex_cli_fail("out of memory");
  }
  if (teex_ds_client_new(&gc->loop, &cc, &gc->c, &err) != 0) {
    uv_loop_close(&gc->loop);
    free(gc);
    return teex_cli_fail("group %llu: %s", (unsigned long long)g->id, err.msg);
  }
  *out = gc;
  return 0;
}

/* ---- option parsing shared by the subcommands ---- */

struct popts {
  const char *dir, *pub, *place_key, *out, *to, *ns;
  const char *groups[MAX_GROUP_ARGS];
  size_t n_groups;
  const char *places[MAX_GROUP_ARGS];
  size_t n_places;
  int hash, nohash, force;
  uint32_t timeout_ms;
  uint64_t ttl_ms;
  struct conn k;
  int pos_i; /* first positional argument in argv */
};

enum {
  P_DIR = 256,
  P_PUB,
  P_PLACE_KEY,
  P_OUT,
  P_GROUP,
  P_HASH,
  P_NOHASH,
  P_CERT,
  P_KEY,
  P_POLICY,
  P_TIMEOUT,
  P_TO,
  P_NS,
  P_TTL,
  P_PLACE,
  P_FORCE
};

static int popts_parse(struct popts *o, int argc, char **argv,
                       const char *usage) {
  static const struct option longopts[] = {
      {"dir", required_argument, NULL, P_DIR},
      {"pub", required_argument, NULL, P_PUB},
      {"place-key", required_argument, NULL, P_PLACE_KEY},
      {"out", required_argument, NULL, P_OUT},
      {"group", required_argument, NULL, P_GROUP},
      {"hash", no_argument, NULL, P_HASH},
      {"nohash", no_argument, NULL, P_NOHASH},
      {"cert", required_argument, NULL, P_CERT},
      {"key", required_argument, NULL, P_KEY},
      {"policy", required_argument, NULL, P_POLICY},
      {"timeout", required_argument, NULL, P_TIMEOUT},
      {"to", required_argument, NULL, P_TO},
      {"ns", required_argument, NULL, P_NS},
      {"ttl", required_argument, NULL, P_TTL},
      {"place", required_argument, NULL, P_PLACE},
      {"force", no_argument, NULL, P_FORCE},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  teex_log_set_level(TEEX_LOG_ERROR);
  memset(o, 0, sizeof(*o));
  o->timeout_ms = 5000;
  optind = 0;
  int c;
  uint64_t v;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (c) {
    case P_DIR:
      o->dir = optarg;
      break;
    case P_PUB:
      o->pub = optarg;
      break;
    case P_PLACE_KEY:
      o->place_key = optarg;
      break;
    case P_OUT:
      o->out = optarg;
      break;
    case P_GROUP:
      if (o->n_groups == MAX_GROUP_ARGS)
        return teex_cli_fail("at most %d --group", MAX_GROUP_ARGS);
      o->groups[o->n_groups++] = optarg;
      break;
    case P_PLACE:
      if (o->n_places == MAX_GROUP_ARGS)
        return teex_cli_fail("at most %d --place", MAX_GROUP_ARGS);
      o->places[o->n_places++] = optarg;
      break;
    case P_HASH:
      o->hash = 1;
      break;
    case P_FORCE:
      o->force = 1;
      break;
    case P_NOHASH:
      o->nohash = 1;
      break;
    case P_CERT:
      o->k.cert = optarg;
      break;
    case P_KEY:
      o->k.key = optarg;
      break;
    case P_POLICY:
      if (o->k.n_policies == MAX_POLICIES)
        return teex_cli_fail("at most %d --policy", MAX_POLICIES);
      o->k.policy_files[o->k.n_policies++] = optarg;
      break;
    case P_TIMEOUT:
      if (teex_parse_u64(optarg, &v) != 0 || v == 0 || v > 3600000)
        return teex_cli_fail("--timeout: 1..3600000 ms");
      o->timeout_ms = (uint32_t)v;
      break;
    case P_TO:
      o->to = optarg;
      break;
    case P_NS:
      o->ns = optarg;
      break;
    case P_TTL:
      if (teex_parse_u64(optarg, &v) != 0 || v > TEEX_DS_TTL_MAX_MS)
        return teex_cli_fail("--ttl: milliseconds");
      o->ttl_ms = v;
      break;
    case 'h':
      printf("%s", usage);
      return -1;
    default:
      return TEEX_EXIT_USAGE;
    }
  }
  o->pos_i = optind;
  return 0;
}

/* The placement public key: --pub, or derived from --place-key. */
static int popts_pk(struct popts *o, uint8_t pk[32]) {
  if (o->pub != NULL)
    return load_pk(o->pub, pk);
  if (o->place_key != NULL) {
    uint8_t *sk;
    int rc = load_sk(o->place_key, &sk);
    if (rc != 0)
      return rc;
    memcpy(pk, sk + 32, 32); /* libsodium keeps the public half there */
    teex_secret_free(sk);
    return 0;
  }
  return teex_cli_fail("give --pub (the placement public key) or "
                       "--place-key");
}

/* The verified directory of --dir (the key from --pub or --place-key). */
static int popts_dir(struct popts *o, struct teex_ds_dir *d) {
  uint8_t pk[32];
  uint8_t *text = NULL;
  size_t len;
  int rc = popts_pk(o, pk);
  if (rc == 0)
    rc = load_dir(o->dir, pk, d, &text, &len);
  free(text);
  return rc;
}

#define PARSE(o, usage)                                                        \
  do {                                                                         \
    int prc_ = popts_parse(&(o), argc, argv, usage);                           \
    if (prc_ != 0)                                                             \
      return prc_ < 0 ? TEEX_EXIT_OK : prc_;                                   \
  } while (0)

/* ---- keygen ---- */

static const char keygen_usage[] =
    "usage: teex ds place keygen --out DIR\n"
    "Makes the deployment's placement key: DIR/placement.key (secret, mode\n"
    "0600: keep it offline, like a CA key; it signs every directory) and\n"
    "DIR/placement.pub (give it to every client).\n";

static int place_keygen(int argc, char **argv) {
  static struct popts o;
  PARSE(o, keygen_usage);
  if (o.out == NULL)
    return teex_cli_fail("--out DIR is required");
  mkdir(o.out, 0700);
  uint8_t pk[32];
  uint8_t *sk = teex_secret_alloc(64);
  char *hex = teex_secret_alloc(129);
  if (sk == NULL || hex == NULL || teex_ed25519_keypair(pk, sk) != 0) {
    teex_secret_free(sk);
    teex_secret_free(hex);
    return teex_cli_fail("key generation failed");
  }
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/placement.key", o.out);
  teex_hex_encode(sk, 64, hex);
  hex[128] = '\n';
  int rc = write_atomic(path, hex, 129, 0600);
  teex_secret_free(sk);
  teex_secret_free(hex);
  if (rc != 0)
    return teex_cli_fail("cannot write %s", path);
  char pub[66];
  teex_hex_encode(pk, 32, pub);
  pub[64] = '\n';
  snprintf(path, sizeof path, "%s/placement.pub", o.out);
  if (write_atomic(path, pub, 65, 0644) != 0)
    return teex_cli_fail("cannot write %s", path);
  pub[64] = 0;
  printf("placement public key %s\n", pub);
  return 0;
}

/* ---- init, add-group, assign ---- */

static const char init_usage[] =
    "usage: teex ds place init --place-key KEY --out DIRECTORY\n"
    "                          --group ID=STATE_DIR [--group ...] [--nohash]\n"
    "                          [--place NS=GROUP ...]\n"
    "Writes the first directory (epoch 1): each group's members and policy\n"
    "come from one of its replicas' state directory (group.conf,\n"
    "policy.conf). Namespaces are placed by rendezvous hashing over the\n"
    "groups (--nohash: only explicit placements, `teex ds move`); --place\n"
    "places a namespace explicitly (for namespaces that hold no data yet).\n";

static int place_init(int argc, char **argv) {
  static struct popts o;
  PARSE(o, init_usage);
  if (o.place_key == NULL || o.out == NULL || o.n_groups == 0)
    return teex_cli_fail("--place-key, --out and --group are required");
  static struct teex_ds_dir d;
  memset(&d, 0, sizeof d);
  d.epoch = 1;
  for (size_t i = 0; i < o.n_groups; i++) {
    struct teex_ds_dir_group g;
    int rc = group_from_state(o.groups[i], !o.nohash, &g);
    if (rc != 0)
      return rc;
    struct teex_err err;
    if (teex_ds_dir_put_group(&d, &g, &err) != 0)
      return teex_cli_fail("--group %s: %s", o.groups[i], err.msg);
  }
  for (size_t i = 0; i < o.n_places; i++) {
    char ns[TEEX_DS_NS_MAX + 1];
    const char *eq = strchr(o.places[i], '=');
    uint64_t g = 0;
    struct teex_err err;
    if (eq == NULL || (size_t)(eq - o.places[i]) > TEEX_DS_NS_MAX ||
        teex_parse_u64(eq + 1, &g) != 0)
      return teex_cli_fail("--place %s: expected NS=GROUP", o.places[i]);
    memcpy(ns, o.places[i], (size_t)(eq - o.places[i]));
    ns[eq - o.places[i]] = 0;
    if (teex_ds_dir_set_place(&d, ns, g, &err) != 0 || g == 0)
      return teex_cli_fail("--place %s: %s", o.places[i],
                           g == 0 ? "group 0" : err.msg);
  }
  uint8_t *sk;
  int rc = load_sk(o.place_key, &sk);
  if (rc != 0)
    return rc;
  rc = save_dir(o.out, &d, sk);
  teex_secret_free(sk);
  if (rc == 0)
    printf("directory %s: epoch 1, %zu groups\n", o.out, d.n_groups);
  return rc;
}

static const char add_usage[] =
    "usage: teex ds place add-group --dir DIRECTORY --place-key KEY\n"
    "                               --group ID=STATE_DIR [--hash] [--force]\n"
    "Adds (or updates) a group at the next epoch. Without --hash the group\n"
    "takes only namespaces moved to it explicitly, so no namespace changes\n"
    "owner; with --hash it joins rendezvous placement and about 1/n of the\n"
    "unplaced namespaces would belong to it, without their data: pin them\n"
    "first (teex ds place pin). A change into or out of hash placement is\n"
    "refused without --force. Also updates a group's members and policy.\n";

static int place_add_group(int argc, char **argv) {
  static struct popts o;
  PARSE(o, add_usage);
  if (o.dir == NULL || o.place_key == NULL || o.n_groups != 1)
    return teex_cli_fail("--dir, --place-key and one --group are required");
  static struct teex_ds_dir d;
  int rc = popts_dir(&o, &d);
  if (rc != 0)
    return rc;
  struct teex_ds_dir_group g;
  if ((rc = group_from_state(o.groups[0], o.hash, &g)) != 0)
    return rc;
  /* Joining or leaving hash placement changes the owner of namespaces
   * without an explicit placement, and data does not follow by itself. */
  const struct teex_ds_dir_group *old = teex_ds_dir_group(&d, g.id);
  int was_hashed = old != NULL && old->hashed;
  if (g.hashed != was_hashed && !o.force)
    return teex_cli_fail(
        "this %s group %llu %s hash placement: about 1/n of the namespaces "
        "that have no explicit placement would change owner WITHOUT their "
        "data moving; pin the namespaces that exist first (teex ds place pin "
        "NS...), then repeat with --force",
        old ? "takes" : "adds", (unsigned long long)g.id,
        g.hashed ? "into" : "out of");
  struct teex_err err;
  if (teex_ds_dir_put_group(&d, &g, &err) != 0)
    return teex_cli_fail("%s", err.msg);
  d.epoch++;
  uint8_t *sk;
  if ((rc = load_sk(o.place_key, &sk)) != 0)
    return rc;
  rc = save_dir(o.dir, &d, sk);
  teex_secret_free(sk);
  if (rc == 0)
    printf("directory %s: epoch %llu, group %llu %s\n", o.dir,
           (unsigned long long)d.epoch, (unsigned long long)g.id,
           g.hashed ? "in hash placement" : "for explicit placements only");
  return rc;
}

static const char pin_usage[] =
    "usage: teex ds place pin --dir DIRECTORY --place-key KEY NS...\n"
    "Records each namespace's current owner as an explicit placement (next\n"
    "epoch), so a later change of the hash groups does not move it.\n";

static int place_pin(int argc, char **argv) {
  static struct popts o;
  PARSE(o, pin_usage);
  if (o.dir == NULL || o.place_key == NULL || o.pos_i >= argc)
    return teex_cli_fail("--dir, --place-key and a namespace are required");
  static struct teex_ds_dir d;
  int rc = popts_dir(&o, &d);
  if (rc != 0)
    return rc;
  for (int i = o.pos_i; i < argc; i++) {
    struct teex_err err;
    uint64_t g = teex_ds_dir_owner(&d, argv[i]);
    if (g == 0 || teex_ds_dir_set_place(&d, argv[i], g, &err) != 0)
      return teex_cli_fail("%s: %s", argv[i], g == 0 ? "no owner" : err.msg);
    printf("%s pinned to group %llu\n", argv[i], (unsigned long long)g);
  }
  d.epoch++;
  uint8_t *sk;
  if ((rc = load_sk(o.place_key, &sk)) != 0)
    return rc;
  rc = save_dir(o.dir, &d, sk);
  teex_secret_free(sk);
  return rc;
}

/* ---- show, status ---- */

static const char show_usage[] =
    "usage: teex ds place show --dir DIRECTORY --pub PUB [NS...]\n"
    "Verifies the directory and lists its groups and placements, and the\n"
    "group that owns each NS given.\n";

static int place_show(int argc, char **argv) {
  static struct popts o;
  PARSE(o, show_usage);
  if (o.dir == NULL)
    return teex_cli_fail("--dir is required");
  static struct teex_ds_dir d;
  int rc = popts_dir(&o, &d);
  if (rc != 0)
    return rc;
  printf("epoch %llu (signature verified)\n", (unsigned long long)d.epoch);
  printf("%-6s %-7s %-18s %s\n", "group", "hash", "policy", "members");
  for (size_t i = 0; i < d.n_groups; i++) {
    char pol[65];
    teex_hex_encode(d.groups[i].policy, 32, pol);
    pol[16] = 0;
    printf("%-6llu %-7s %-18s", (unsigned long long)d.groups[i].id,
           d.groups[i].hashed ? "yes" : "no", pol);
    for (size_t m = 0; m < d.groups[i].n_members; m++)
      printf("%s%s", m ? "," : " ", d.groups[i].members[m]);
    printf("\n");
  }
  for (size_t i = 0; i < d.n_places; i++)
    printf("place %s -> group %llu\n", d.places[i].ns,
           (unsigned long long)d.places[i].group);
  for (int i = o.pos_i; i < argc; i++) {
    uint64_t g = teex_ds_dir_owner(&d, argv[i]);
    int explicit_ = g != 0 && g != teex_ds_dir_hash_owner(&d, argv[i]);
    for (size_t k = 0; k < d.n_places; k++)
      if (strcmp(d.places[k].ns, argv[i]) == 0)
        explicit_ = 1;
    if (g == 0)
      printf("ns %s: no owner (no placement, no hash group)\n", argv[i]);
    else
      printf("ns %s -> group %llu (%s)\n", argv[i], (unsigned long long)g,
             explicit_ ? "placed" : "hash");
  }
  return 0;
}

static const char status_usage[] =
    "usage: teex ds place status --dir DIRECTORY --pub PUB --cert C --key K\n"
    "                            --policy FILE [--policy FILE...]\n"
    "Asks every replica of every group of the directory for its status.\n";

static int place_status(int argc, char **argv) {
  static struct popts o;
  PARSE(o, status_usage);
  if (o.dir == NULL)
    return teex_cli_fail("--dir is required");
  static struct teex_ds_dir d;
  int rc = popts_dir(&o, &d);
  if (rc == 0)
    rc = conn_open(&o.k);
  if (rc != 0) {
    conn_close(&o.k);
    return rc;
  }
  int all_ok = 1;
  printf("epoch %llu\n", (unsigned long long)d.epoch);
  for (size_t i = 0; i < d.n_groups; i++) {
    const struct teex_ds_dir_group *g = &d.groups[i];
    struct teex_tls_ctx *tls = conn_tls(&o.k, g);
    int leaders = 0;
    printf("group %llu%s\n", (unsigned long long)g->id,
           tls ? "" : ": no --policy matches its evidence policy");
    for (size_t m = 0; tls && m < g->n_members; m++) {
      struct teex_ds_replica_info info;
      struct teex_err err;
      teex_err_clear(&err);
      if (teex_ds_replica_info_get(tls, g->members[m], o.timeout_ms, &info,
                                   &err) != 0) {
        printf("  %-22s down (%s)\n", g->members[m], err.msg);
        continue;
      }
      leaders += info.leader;
      printf("  %-22s id %llu %-8s term %llu applied %llu keys %llu%s\n",
             g->members[m], (unsigned long long)info.id,
             info.leader ? "leader" : "follower", (unsigned long long)info.term,
             (unsigned long long)info.last_applied,
             (unsigned long long)info.keys, info.failed ? " FAILED" : "");
    }
    if (leaders == 0)
      all_ok = 0;
  }
  conn_close(&o.k);
  return all_ok ? TEEX_EXIT_OK : TEEX_EXIT_FAIL;
}

/* ---- routed get / set ---- */

static void save_newer(void *arg, const uint8_t *dir, size_t len,
                       uint64_t epoch) {
  const char *path = arg;
  if (write_atomic(path, dir, len, 0644) == 0)
    fprintf(stderr,
            "teex: namespace moved: directory %s updated to epoch "
            "%llu\n",
            path, (unsigned long long)epoch);
}

static const char getset_usage[] =
    "usage: teex ds place get|set|del --dir DIRECTORY --pub PUB --cert C\n"
    "           --key K --policy FILE... --ns NS [--ttl MS] KEY [VALUE]\n"
    "Runs one command on the group that owns NS (the key is NS/KEY),\n"
    "following a move if the group answers that the namespace moved; a\n"
    "newer directory learnt that way is written back to DIRECTORY.\n";

static int place_cmd(int argc, char **argv, uint8_t op) {
  static struct popts o;
  PARSE(o, getset_usage);
  int need = op == TEEX_DS_SET ? 2 : 1;
  if (o.dir == NULL || o.ns == NULL || argc - o.pos_i != need)
    return teex_cli_fail("--dir, --ns and %s are required",
                         need == 2 ? "KEY VALUE" : "KEY");
  uint8_t pk[32];
  int rc = popts_pk(&o, pk);
  static struct teex_ds_dir d;
  uint8_t *text = NULL;
  size_t len = 0;
  if (rc == 0)
    rc = load_dir(o.dir, pk, &d, &text, &len);
  if (rc == 0)
    rc = conn_open(&o.k);
  if (rc != 0) {
    free(text);
    conn_close(&o.k);
    return rc;
  }
  struct teex_ds_router_config rc_ = {.dir = text,
                                      .dir_len = len,
                                      .placement_pk = pk,
                                      .tls = o.k.tls,
                                      .n_tls = o.k.n_policies,
                                      .ns = o.ns,
                                      .timeout_ms = o.timeout_ms,
                                      .on_directory = save_newer,
                                      .on_directory_arg = (void *)o.dir};
  struct teex_ds_router_sync *s = NULL;
  struct teex_err err;
  teex_err_clear(&err);
  rc = teex_ds_router_sync_open(&rc_, &s, &err);
  free(text);
  if (rc != 0) {
    conn_close(&o.k);
    return teex_cli_fail("%s", err.msg);
  }
  char key[TEEX_DS_KEY_MAX + 1];
  int kn = snprintf(key, sizeof key, "%s/%s", o.ns, argv[o.pos_i]);
  if (kn < 0 || (size_t)kn >= sizeof key) {
    teex_ds_router_sync_close(s);
    conn_close(&o.k);
    return teex_cli_fail("key too long");
  }
  struct teex_ds_cmd c = {.op = op, .grant = o.ns};
  c.key = (const uint8_t *)key;
  c.key_len = (size_t)kn;
  if (op == TEEX_DS_SET) {
    c.val = (const uint8_t *)argv[o.pos_i + 1];
    c.val_len = strlen(argv[o.pos_i + 1]);
    c.ttl_ms = o.ttl_ms;
  }
  struct teex_ds_result res;
  rc = teex_ds_router_sync_exec(s, &c, TEEX_DS_READ_LINEARIZABLE, &res, &err);
  int exit_ = TEEX_EXIT_OK;
  if (rc != 0) {
    exit_ = teex_cli_fail("%s", err.msg);
  } else {
    if (res.status == 0 && op == TEEX_DS_GET)
      printf("%.*s\n", (int)res.val_len, (const char *)res.val);
    else if (res.status != 0)
      exit_ = teex_cli_fail("%s: %s", key, teex_strerror(res.status));
    fprintf(
        stderr, "group %llu, directory epoch %llu\n",
        (unsigned long long)teex_ds_router_group(teex_ds_router_sync_router(s)),
        (unsigned long long)teex_ds_router_epoch(
            teex_ds_router_sync_router(s)));
    teex_ds_result_free(&res);
  }
  teex_ds_router_sync_close(s);
  conn_close(&o.k);
  return exit_;
}

static int place_get(int argc, char **argv) {
  return place_cmd(argc, argv, TEEX_DS_GET);
}
static int place_set(int argc, char **argv) {
  return place_cmd(argc, argv, TEEX_DS_SET);
}
static int place_del(int argc, char **argv) {
  return place_cmd(argc, argv, TEEX_DS_DEL);
}

static const struct teex_cli_cmd place_commands[] = {
    {"keygen", place_keygen, "make the deployment's placement key"},
    {"init", place_init, "write the first directory of groups"},
    {"add-group", place_add_group, "add a group at the next epoch"},
    {"pin", place_pin, "record namespaces' current owners explicitly"},
    {"show", place_show, "verify and list groups and placements"},
    {"status", place_status, "status of every replica of every group"},
    {"get", place_get, "read a key from the namespace's group"},
    {"set", place_set, "write a key to the namespace's group"},
    {"del", place_del, "delete a key in the namespace's group"},
    {NULL, NULL, NULL}};

int teex_cmd_ds_place(int argc, char **argv) {
  return teex_cli_dispatch("teex ds place", place_commands, argc - 1, argv + 1);
}

/* ---- move ---- */

static int run_cmd(struct gconn *s, const struct teex_ds_cmd *c,
                   struct teex_ds_result *res, const char *what) {
  int st;
  gconn_exec_many(s, c, 1, &st, res);
  if (st != 0)
    return teex_cli_fail("%s: %s%s", what, teex_strerror(st),
                         st == TEEX_EPERM ? " (the certificate is not the "
                                            "namespace's client there)"
                                          : "");
  return 0;
}

static int send_place(struct gconn *s, const char *ns, uint8_t state,
                      uint64_t group, uint64_t epoch, const uint8_t *dir,
                      size_t dir_len, struct teex_ds_result *res,
                      const char *what) {
  struct teex_ds_place_record r = {state, group, epoch, dir, dir_len};
  uint8_t *b;
  size_t n;
  if (teex_ds_place_record_encode(&r, &b, &n) != 0)
    return teex_cli_fail("%s: record", what);
  struct teex_ds_cmd c = {
      .op = TEEX_DS_PLACE, .grant = ns, .val = b, .val_len = n};
  int rc = run_cmd(s, &c, res, what);
  free(b);
  return rc;
}

static int count_ns(struct gconn *s, const char *ns, int64_t *n, int *status) {
  char pre[TEEX_DS_NS_MAX + 2];
  int pn = snprintf(pre, sizeof pre, "%s/", ns);
  struct teex_ds_cmd c = {.op = TEEX_DS_COUNT,
                          .grant = ns,
                          .key = (const uint8_t *)pre,
                          .key_len = (size_t)pn};
  struct teex_ds_result res;
  int rc = run_cmd(s, &c, &res, "count");
  if (rc != 0)
    return rc;
  *n = res.num;
  *status = res.status;
  teex_ds_result_free(&res);
  return 0;
}

/* Copies every live key of ns from src to dst with its remaining TTL (on
 * the source group's clock). Keys without a TTL go 64 to a multi-set. */
static int copy_ns(struct gconn *src, struct gconn *dst, const char *ns,
                   uint64_t *copied) {
  char pre[TEEX_DS_NS_MAX + 2];
  int pn = snprintf(pre, sizeof pre, "%s/", ns);
  static uint8_t after[TEEX_DS_KEY_MAX];
  size_t after_len = 0;
  int more = 1, rc = 0;
  *copied = 0;
  while (more && rc == 0) {
    struct teex_ds_cmd sc = {.op = TEEX_DS_SCAN,
                             .grant = ns,
                             .key = (const uint8_t *)pre,
                             .key_len = (size_t)pn,
                             .after = after,
                             .after_len = after_len,
                             .limit = TEEX_DS_MSET_MAX};
    struct teex_ds_result page;
    if ((rc = run_cmd(src, &sc, &page, "scan the source")) != 0)
      break;
    if (page.status != 0) {
      rc = teex_cli_fail("scan the source: %s", teex_strerror(page.status));
      teex_ds_result_free(&page);
      break;
    }
    struct teex_ds_pair plain[TEEX_DS_MSET_MAX];
    size_t np = 0;
    /* Every key's expiry, read all at once (a scan item has none). */
    struct teex_ds_cmd gets[TEEX_DS_MSET_MAX];
    struct teex_ds_result grs[TEEX_DS_MSET_MAX];
    int gst[TEEX_DS_MSET_MAX];
    size_t ng =
        page.n_items < TEEX_DS_MSET_MAX ? page.n_items : TEEX_DS_MSET_MAX;
    for (size_t i = 0; i < ng; i++)
      gets[i] = (struct teex_ds_cmd){.op = TEEX_DS_GET,
                                     .grant = ns,
                                     .key = page.items[i].key,
                                     .key_len = page.items[i].key_len};
    gconn_exec_many(src, gets, ng, gst, grs);
    for (size_t i = 0; i < ng; i++)
      if (gst[i] != 0 && rc == 0)
        rc = teex_cli_fail("read a key's TTL: %s", teex_strerror(gst[i]));
    for (size_t i = 0; i < ng && rc == 0; i++) {
      const struct teex_ds_pair *it = &page.items[i];
      struct teex_ds_result gr = grs[i];
      memset(&grs[i], 0, sizeof grs[i]);
      if (gr.status == 0 && gr.expire_at_ms == 0) {
        plain[np++] = *it;
      } else if (gr.status == 0 && gr.expire_at_ms > gr.clock_ms) {
        struct teex_ds_cmd s = {.op = TEEX_DS_SET,
                                .grant = ns,
                                .key = it->key,
                                .key_len = it->key_len,
                                .val = gr.val,
                                .val_len = gr.val_len,
                                .ttl_ms = gr.expire_at_ms - gr.clock_ms};
        struct teex_ds_result sr;
        if ((rc = run_cmd(dst, &s, &sr, "write to the destination")) == 0) {
          if (sr.status != 0)
            rc = teex_cli_fail("write to the destination: %s",
                               teex_strerror(sr.status));
          teex_ds_result_free(&sr);
          ++*copied;
        }
      } /* else expired or gone since the scan: nothing to copy */
      teex_ds_result_free(&gr);
    }
    for (size_t i = 0; i < ng; i++)
      teex_ds_result_free(&grs[i]); /* those not consumed after an error */
    if (rc == 0 && np > 0) {
      struct teex_ds_cmd m = {
          .op = TEEX_DS_MSET, .grant = ns, .pairs = plain, .n_pairs = np};
      struct teex_ds_result mr;
      if ((rc = run_cmd(dst, &m, &mr, "write to the destination")) == 0) {
        if (mr.status != 0)
          rc = teex_cli_fail("write to the destination: %s",
                             teex_strerror(mr.status));
        teex_ds_result_free(&mr);
        *copied += np;
      }
    }
    more = page.more && page.n_items > 0;
    if (page.n_items > 0) {
      const struct teex_ds_pair *last = &page.items[page.n_items - 1];
      memcpy(after, last->key, last->key_len);
      after_len = last->key_len;
    }
    teex_ds_result_free(&page);
  }
  return rc;
}

static const char move_usage[] =
    "usage: teex ds move NS --to GROUP --dir DIRECTORY --place-key KEY\n"
    "                   --cert C --key K --policy FILE [--policy FILE...]\n"
    "Moves namespace NS online to GROUP: freezes writes to NS on its group\n"
    "(through that group's log: clients' writes are refused, not lost, and\n"
    "retried), copies its keys with their TTLs, marks NS moved on the source\n"
    "(which answers \"moved\" with the new signed directory and drops its\n"
    "copy) and writes the directory at the next epoch. The client\n"
    "certificate must be an operator client of both groups for NS. Run it\n"
    "again after a failure: it resumes. --abort unfreezes NS on its group.\n";

static int ds_move_impl(int argc, char **argv, int abort_) {
  static struct popts o;
  PARSE(o, move_usage);
  if (o.pos_i != argc - 1 || o.dir == NULL || o.place_key == NULL ||
      (o.to == NULL && !abort_))
    return teex_cli_fail("NS, --to, --dir and --place-key are required");
  const char *ns = argv[o.pos_i];
  static struct teex_ds_dir d, nd;
  int rc = popts_dir(&o, &d);
  if (rc != 0)
    return rc;
  uint64_t to = 0, from = teex_ds_dir_owner(&d, ns);
  if (!abort_ &&
      (teex_parse_u64(o.to, &to) != 0 || teex_ds_dir_group(&d, to) == NULL))
    return teex_cli_fail("--to %s: no such group in the directory", o.to);
  if (from == 0)
    return teex_cli_fail("%s has no owner in the directory", ns);
  if (from == to)
    return teex_cli_fail("%s is already on group %llu", ns,
                         (unsigned long long)to);
  uint8_t *sk;
  if ((rc = load_sk(o.place_key, &sk)) != 0)
    return rc;
  struct gconn *src = NULL, *dst = NULL;
  if ((rc = conn_open(&o.k)) != 0 ||
      (rc = group_client(&o.k, teex_ds_dir_group(&d, from), ns, o.timeout_ms,
                         &src)) != 0 ||
      (!abort_ && (rc = group_client(&o.k, teex_ds_dir_group(&d, to), ns,
                                     o.timeout_ms, &dst)) != 0))
    goto out;
  uint64_t epoch = d.epoch + 1;
  struct teex_ds_result res;
  if (abort_) {
    rc = send_place(src, ns, TEEX_DS_PLACE_OWNED, from, epoch, NULL, 0, &res,
                    "unfreeze");
    if (rc == 0) {
      if (res.status != 0)
        rc = teex_cli_fail("unfreeze %s on group %llu: %s", ns,
                           (unsigned long long)from, teex_strerror(res.status));
      else
        printf("%s served by group %llu again\n", ns, (unsigned long long)from);
      teex_ds_result_free(&res);
    }
    goto out;
  }
  /* The directory of the move's epoch: ns placed on `to`. */
  nd = d;
  nd.epoch = epoch;
  struct teex_err err;
  static uint8_t ntext[TEEX_DS_DIR_MAX];
  size_t nlen;
  if (teex_ds_dir_set_place(&nd, ns, to, &err) != 0 ||
      teex_ds_dir_sign(&nd, sk, ntext, sizeof ntext, &nlen, &err) != 0) {
    rc = teex_cli_fail("new directory: %s", err.msg);
    goto out;
  }
  /* 1. Freeze on the source (in its log: every replica refuses writes). */
  if ((rc = send_place(src, ns, TEEX_DS_PLACE_FROZEN, to, epoch, ntext, nlen,
                       &res, "freeze on the source")) != 0)
    goto out;
  struct teex_ds_place_record prev;
  int resumed = 0;
  if (res.status == TEEX_ESTATE) {
    /* Moved already at this epoch (an interrupted run): just publish. */
    int done = res.val &&
               teex_ds_place_record_parse(res.val, res.val_len, &prev) == 0 &&
               prev.state == TEEX_DS_PLACE_MOVED && prev.group == to &&
               prev.epoch == epoch;
    if (done && prev.dir_len > 0 &&
        write_atomic(o.dir, prev.dir, prev.dir_len, 0644) == 0) {
      printf("%s had already moved to group %llu (epoch %llu): directory "
             "written\n",
             ns, (unsigned long long)to, (unsigned long long)epoch);
    } else {
      rc = teex_cli_fail("group %llu refused to freeze %s (a newer placement "
                         "exists there)",
                         (unsigned long long)from, ns);
    }
    teex_ds_result_free(&res);
    goto out;
  }
  if (res.status != 0) {
    rc = teex_cli_fail("freeze on the source: %s", teex_strerror(res.status));
    teex_ds_result_free(&res);
    goto out;
  }
  resumed = res.found && res.val &&
            teex_ds_place_record_parse(res.val, res.val_len, &prev) == 0 &&
            prev.state == TEEX_DS_PLACE_FROZEN && prev.group == to &&
            prev.epoch == epoch;
  teex_ds_result_free(&res);
  printf("1/4 %s frozen on group %llu%s\n", ns, (unsigned long long)from,
         resumed ? " (resuming an interrupted move)" : "");
  /* 2. The destination: served there (clears an old marker), and empty
   * unless this resumes a copy. */
  int64_t there = 0;
  int st = 0;
  if ((rc = send_place(dst, ns, TEEX_DS_PLACE_OWNED, to, epoch, NULL, 0, &res,
                       "open the destination")) != 0)
    goto out;
  st = res.status;
  teex_ds_result_free(&res);
  if (st != 0) {
    rc = teex_cli_fail("open %s on group %llu: %s", ns, (unsigned long long)to,
                       teex_strerror(st));
    goto out;
  }
  if ((rc = count_ns(dst, ns, &there, &st)) != 0)
    goto out;
  if (there > 0 && !resumed) {
    rc = teex_cli_fail("group %llu already holds %lld keys of %s: not "
                       "copying over them (unfreeze with `teex ds move %s "
                       "--abort ...`)",
                       (unsigned long long)to, (long long)there, ns, ns);
    goto out;
  }
  /* 3. Copy. */
  uint64_t copied = 0;
  if ((rc = copy_ns(src, dst, ns, &copied)) != 0)
    goto out;
  printf("2/4 %llu keys copied to group %llu\n", (unsigned long long)copied,
         (unsigned long long)to);
  /* 4. Moved on the source: it answers "moved" with the new directory and
   * drops its copy. */
  if ((rc = send_place(src, ns, TEEX_DS_PLACE_MOVED, to, epoch, ntext, nlen,
                       &res, "mark moved on the source")) != 0)
    goto out;
  st = res.status;
  int64_t dropped = res.num;
  teex_ds_result_free(&res);
  if (st != 0) {
    rc = teex_cli_fail("mark moved on the source: %s", teex_strerror(st));
    goto out;
  }
  printf("3/4 group %llu answers \"moved\" for %s (dropped %lld keys)\n",
         (unsigned long long)from, ns, (long long)dropped);
  if (write_atomic(o.dir, ntext, nlen, 0644) != 0) {
    rc = teex_cli_fail("cannot write %s (run the move again to write it)",
                       o.dir);
    goto out;
  }
  printf("4/4 directory %s: epoch %llu, %s -> group %llu\n", o.dir,
         (unsigned long long)epoch, ns, (unsigned long long)to);
out:
  gconn_close(src);
  gconn_close(dst);
  conn_close(&o.k);
  teex_secret_free(sk);
  return rc;
}

int teex_cmd_ds_move(int argc, char **argv) {
  int abort_ = 0;
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--abort") == 0) {
      abort_ = 1;
      for (int j = i; j < argc - 1; j++)
        argv[j] = argv[j + 1];
      argc--;
      break;
    }
  return ds_move_impl(argc, argv, abort_);
}

/* ---- the RESP proxy over the directory (cmd_ds_proxy.c --dir) ---- */

int teex_cli_ds_place_proxy_backend(uv_loop_t *loop, const char *dir,
                                    const char *pub, const char *cert,
                                    const char *key,
                                    const char *const *policies,
                                    size_t n_policies, const char *ns,
                                    unsigned timeout_ms,
                                    struct teex_ds_backend **out, void **hold) {
  *out = NULL;
  *hold = NULL;
  if (ns == NULL || pub == NULL || n_policies == 0 || n_policies > MAX_POLICIES)
    return teex_cli_fail("ds proxy --dir: give --ns, --pub and --policy "
                         "(1..%d, one per group policy)",
                         MAX_POLICIES);
  struct conn *k = calloc(1, sizeof(*k));
  if (k == NULL)
    return teex_cli_fail("out of memory");
  k->cert = cert;
  k->key = key;
  for (size_t i = 0; i < n_policies; i++)
    k->policy_files[i] = policies[i];
  k->n_policies = n_policies;
  uint8_t pk[32];
  static struct teex_ds_dir d;
  uint8_t *text = NULL;
  size_t len = 0;
  int rc = load_pk(pub, pk);
  if (rc == 0)
    rc = load_dir(dir, pk, &d, &text, &len);
  if (rc == 0)
    rc = conn_open(k);
  if (rc == 0) {
    struct teex_ds_router_config rc_ = {.dir = text,
                                        .dir_len = len,
                                        .placement_pk = pk,
                                        .tls = k->tls,
                                        .n_tls = k->n_policies,
                                        .ns = ns,
                                        .timeout_ms = timeout_ms,
                                        .on_directory = save_newer,
                                        .on_directory_arg = (void *)dir};
    struct teex_err err;
    teex_err_clear(&err);
    if (teex_ds_backend_router_new(loop, &rc_, out, &err) != 0)
      rc = teex_cli_fail("%s", err.msg);
  }
  free(text);
  if (rc != 0) {
    conn_close(k);
    free(k);
    return rc;
  }
  *hold = k;
  return 0;
}

void teex_cli_ds_place_proxy_release(void *hold) {
  if (hold == NULL)
    return;
  conn_close(hold);
  free(hold);
}
