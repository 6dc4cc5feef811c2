/* Benchmark: datasets.
 *
 *   bench_data [TEEX_BIN] [ROUNDS]     (TEEX_BIN defaults to $TEEX_BIN or
 *                                      ./teex; run from the build directory)
 *
 * 1. Added latency of a task that reads a 1 MiB dataset, against the same
 *    task with the same 1 MiB inline as its input, through the real
 *    sandboxed executor, in alternating rounds; plus what a worker adds
 *    before it: decrypting the 1 MiB ciphertext (the image module's chunked
 *    AEAD).
 * 2. Data-key releases per second by the SM's core (sealed store: one
 *    write transaction per newly counted task), against the existing
 *    image-key release (teex_sm_fetch_keys, a read) and one committed
 *    sealed-store write, in the same run. The core only: no TLS handshake,
 *    no chain reads (the daemon adds both). */
#include "teex/chain.h"
#include "teex/crypto.h"
#include "teex/executor.h"
#include "teex/image.h"
#include "teex/mem.h"
#include "teex/sm.h"
#include "teex/statestore.h"
#include "teex/store.h"
#include "teex/tee.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024u * 1024u)

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  return v[n / 2];
}

static void die(const char *what, const struct teex_err *e) {
  fprintf(stderr, "bench_data: %s: %s\n", what, e ? teex_err_msg(e) : "");
  exit(1);
}

static struct teex_image *make_image(void) {
  static const char src[] = "import teex\n"
                            "def main(inp):\n"
                            "    if inp == b'data':\n"
                            "        return str(len(teex.data(0)))\n"
                            "    return str(len(inp))\n";
  struct teex_image *img = calloc(1, sizeof *img);
  snprintf(img->manifest.entry, sizeof img->manifest.entry, "main.py");
  snprintf(img->manifest.name, sizeof img->manifest.name, "len");
  img->files = calloc(1, sizeof *img->files);
  img->files[0].path = strdup("main.py");
  img->files[0].data = (uint8_t *)strdup(src);
  img->files[0].len = strlen(src);
  img->nfiles = 1;
  return img;
}

static double task(struct teex_executor *ex, const uint8_t *in, size_t in_len,
                   const struct teex_task_data *ds, size_t nds) {
  struct teex_task_ctx ctx = {
      .task_id = "b", .datasets = ds, .n_datasets = nds};
  struct teex_task_result r;
  struct teex_err err;
  double t0 = now_ms();
  if (teex_executor_run(ex, &ctx, in, in_len, &r, &err) != 0 ||
      r.status != TEEX_TASK_OK || r.output_len != 7 ||
      memcmp(r.output, "1048576", 7) != 0)
    die("task", &err);
  double dt = now_ms() - t0;
  teex_task_result_free(&r);
  return dt;
}

static void bench_executor(const char *bin, int rounds) {
  struct teex_image *img = make_image();
  struct teex_executor_opts o = {.exe_path = bin};
  struct teex_executor *ex = NULL;
  struct teex_err err;
  if (teex_executor_start(img, &o, &ex, &err) != 0)
    die("executor start", &err);
  uint8_t *mib = malloc(MIB), key[32], *ct = NULL, *pt = NULL;
  size_t ct_len = 0, pt_len = 0;
  teex_random(mib, MIB);
  teex_random(key, 32);
  if (teex_image_encrypt(key, mib, MIB, &ct, &ct_len, &err) != 0)
    die("encrypt", &err);
  struct teex_task_data ds = {.name = "d", .data = mib, .len = MIB};
  double *inl = calloc((size_t)rounds, sizeof *inl);
  double *dat = calloc((size_t)rounds, sizeof *dat);
  double *dec = calloc((size_t)rounds, sizeof *dec);
  for (int i = 0; i < 5; i++) { /* warm up both paths */
    task(ex, mib, MIB, NULL, 0);
    task(ex, (const uint8_t *)"data", 4, &ds, 1);
  }
  for (int i = 0; i < rounds; i++) {
    inl[i] = task(ex, mib, MIB, NULL, 0);
    dat[i] = task(ex, (const uint8_t *)"data", 4, &ds, 1);
    double t0 = now_ms();
    if (teex_image_decrypt(key, ct, ct_len, &pt, &pt_len, &err) != 0)
      die("decrypt", &err);
    dec[i] = now_ms() - t0;
    teex_image_bytes_free(pt, pt_len);
  }
  double mi = median(inl, rounds), md = median(dat, rounds),
         mc = median(dec, rounds);
  printf("executor, 1 MiB, median of %d alternating rounds:\n", rounds);
  printf("  task with the 1 MiB inline as input  %8.3f ms (baseline)\n", mi);
  printf("  task reading a 1 MiB dataset         %8.3f ms (%+.3f ms, x%.2f)\n",
         md, md - mi, md / mi);
  printf("  + worker decrypting the ciphertext   %8.3f ms\n", mc);
  printf("  dataset path in all                  %8.3f ms (%+.3f ms, x%.2f)\n",
         md + mc, md + mc - mi, (md + mc) / mi);
  free(inl);
  free(dat);
  free(dec);
  teex_image_bytes_free(ct, ct_len);
  free(mib);
  teex_executor_stop(ex);
  teex_image_free(img);
}

static void bench_sm(int n) {
  char dir[] = "/tmp/bench-data-XXXXXX", state[64];
  struct teex_err err;
  uint8_t root[32];
  if (mkdtemp(dir) == NULL || teex_tee_sim_init(dir, root, &err) != 0)
    die("sim init", &err);
  struct teex_tee_config tc = {.backend = "sim", .data_dir = dir, .role = "sm"};
  struct teex_tee *tee = NULL;
  if (teex_tee_open(&tc, &tee, &err) != 0)
    die("tee", &err);
  snprintf(state, sizeof state, "%s/sm", dir);
  struct teex_sm_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.state_dir = state;
  cfg.listing.chain_id = cfg.registration.chain_id = 31337;
  teex_tee_policy_init(&cfg.policy);
  struct teex_sm *sm = NULL;
  if (teex_sm_open(tee, &cfg, &sm, &err) != 0)
    die("sm open", &err);
  uint8_t sm_addr[20], pub[64], psk[32], dsk[32];
  teex_sm_address(sm, sm_addr);
  /* A service image (the baseline) and a dataset, both registered. */
  static const char image[] = "an image";
  struct teex_sm_register r;
  memset(&r, 0, sizeof r);
  teex_secp256k1_keypair(psk, pub);
  teex_eth_address(pub, r.provider);
  memset(r.service_id, 0x5e, 32);
  r.version = 1;
  teex_image_hash((const uint8_t *)image, sizeof image, r.image_hash);
  snprintf(r.image_cid, sizeof r.image_cid, "bafkreiimage");
  teex_random(r.image_key, 32);
  uint8_t digest[32];
  teex_sm_register_digest(&r, 31337, sm_addr, digest);
  teex_stmt_sign(psk, digest, r.provider_sig);
  struct teex_sm_registered reg;
  if (teex_sm_register_service(sm, &r, &reg, &err) != 0)
    die("register", &err);
  struct teex_sm_escrow e;
  memset(&e, 0, sizeof e);
  snprintf(e.name, sizeof e.name, "d");
  memcpy(e.provider, r.provider, 20);
  teex_dataset_id(e.provider, e.name, e.dataset_id);
  teex_sha256("x", 1, e.plaintext_hash);
  e.plaintext_size = 1;
  snprintf(e.cid, sizeof e.cid, "bafkreidata");
  teex_random(e.data_key, 32);
  teex_sm_escrow_digest(&e, 31337, sm_addr, digest);
  teex_stmt_sign(psk, digest, e.provider_sig);
  if (teex_sm_escrow_data_key(sm, &e, &err) != 0)
    die("escrow", &err);
  struct teex_sm_lease_req q;
  memset(&q, 0, sizeof q);
  teex_secp256k1_keypair(dsk, pub);
  teex_eth_address(pub, q.assignment.dispatcher);
  memset(q.worker, 0x3a, 20);
  memcpy(q.assignment.worker, q.worker, 20);
  q.assignment.chain_id = 31337;
  memcpy(q.assignment.service_id, r.service_id, 32);
  memcpy(q.assignment.image_hash, r.image_hash, 32);
  q.assignment.expires_at = (uint64_t)time(NULL) + 3600;
  teex_stmt_datasets_hash(e.dataset_id, 1, q.assignment.datasets_hash);
  q.dataset_ids = e.dataset_id;
  q.n_datasets = 1;
  struct teex_sm_data_terms t = {
      .listed = 1, .approved = 1, .dispatcher_active = 1};
  memcpy(t.provider, e.provider, 20);
  /* Each lease is a new task: the dispatcher signs a new assignment (as it
   * would), the SM counts it. The signing is timed apart and taken out. */
  double sign_ms = 0, lease_ms = 0, t0;
  struct teex_sm_data_lease l;
  for (int i = 0; i < n; i++) {
    memcpy(q.assignment.task_id, &i, sizeof i);
    t0 = now_ms();
    teex_stmt_assignment_digest(&q.assignment, digest);
    teex_stmt_sign(dsk, digest, q.dispatcher_sig);
    sign_ms += now_ms() - t0;
    t0 = now_ms();
    if (teex_sm_lease_data_key(sm, &q, &t, (uint64_t)time(NULL), &l, &err))
      die("lease", &err);
    lease_ms += now_ms() - t0;
  }
  t0 = now_ms();
  struct teex_sm_keys k;
  for (int i = 0; i < n; i++)
    if (teex_sm_fetch_keys(sm, r.service_id, r.image_hash, &k, &err) != 0)
      die("fetch", &err);
  double fetch_ms = now_ms() - t0;
  /* The durable part of a lease: one committed write of the sealed store. */
  t0 = now_ms();
  for (int i = 0; i < n; i++) {
    char key[32];
    snprintf(key, sizeof key, "bench/%d", i);
    if (teex_statestore_put(teex_sm__state(sm), key, "v", 1, &err))
      die("put", &err);
  }
  double put_ms = now_ms() - t0;
  teex_wipe(&k, sizeof k);
  teex_wipe(&l, sizeof l);
  printf("SM core, %d releases each:\n", n);
  printf("  image keys (teex_sm_fetch_keys, read)      %9.0f /s (baseline)\n",
         n * 1000.0 / fetch_ms);
  printf("  data-key leases, a new task each           %9.0f /s (x%.2f)\n",
         n * 1000.0 / lease_ms, fetch_ms / lease_ms);
  printf("  one committed sealed-store write      %9.0f /s (what a lease "
         "must wait for)\n",
         n * 1000.0 / put_ms);
  printf("  (the dispatcher's signing, %.1f us each, not included)\n",
         sign_ms * 1000.0 / n);
  teex_sm_close(sm);
  teex_tee_close(tee);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "bench_data: could not remove %s\n", dir);
}

int main(int argc, char **argv) {
  const char *bin = argc > 1 ? argv[1] : getenv("TEEX_BIN");
  int rounds = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 31;
  if (bin == NULL)
    bin = "./teex";
  if (rounds < 3)
    rounds = 3;
  teex_crypto_init();
  bench_executor(bin, rounds);
  bench_sm(2000);
  return 0;
}
