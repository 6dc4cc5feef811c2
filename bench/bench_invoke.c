/* Benchmark: end-to-end latency of invoking a trivial service through the
 * client library over one reused connection (assignment check, executor
 * task, commitments, two signatures, RA-TLS RPC both ways; receipts are
 * sealed in batches after the answer),
 * against the executor alone for the same service in the same run.
 *
 *   bench_invoke [TEEX_BIN] [TASKS]   (TEEX_BIN defaults to $TEEX_BIN or
 *                                       ./teex; TASKS to 2000)
 *
 * It starts a real network in a temporary folder: `teex sm run` and `teex
 * worker run` (two slots), deploys the service through the SM (image
 * encrypted, ciphertext in a local IPFS blockstore), signs assignments with
 * a test dispatcher key, and prints p50/p99 of each and their ratio; then
 * the tasks per second of 32 concurrent clients, each on its own
 * connection. */
#include "teex/client.h"
#include "teex/config.h"
#include "teex/crypto.h"
#include "teex/executor.h"
#include "teex/image.h"
#include "teex/ipfs.h"
#include "teex/proto/sm.pb-c.h"
#include "teex/ratls_channel.h"
#include "teex/rpc_sync.h"
#include "teex/sm.h"
#include "teex/tee.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SETTLE "0x5e77000000000000000000000000000000005e77"
#define CHAIN 31337

static const char service[] = "def main(data):\n    return data\n";

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double report(const char *what, double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  printf("%-40s n=%-5d p50 %7.3f ms  p99 %7.3f ms  max %7.3f ms\n", what, n,
         v[n / 2], v[(n * 99) / 100], v[n - 1]);
  return v[n / 2];
}

static void die(const char *what, const struct teex_err *err) {
  fprintf(stderr, "bench_invoke: %s: %s\n", what, err ? err->msg : "");
  exit(1);
}

static int spawn(char *const argv[], const char *log) {
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    execv(argv[0], argv);
    _exit(127);
  }
  return (int)pid;
}

static int wait_port(const char *ready, const char *key) {
  for (int i = 0; i < 2000; i++) {
    struct teex_config c;
    struct teex_err err;
    uint64_t v = 0;
    teex_config_init(&c);
    int ok = teex_config_load(&c, ready, &err) == 0 &&
             teex_config_get_u64(&c, key, 0, &v, &err) == 0 && v != 0;
    teex_config_free(&c);
    if (ok)
      return (int)v;
    usleep(10000);
  }
  die("daemon did not start (see its log in the work folder)", NULL);
  return 0;
}

static void measure(const char *dir, const char *role, const char *exe,
                    char hex[65]) {
  struct teex_tee_config c;
  memset(&c, 0, sizeof c);
  c.data_dir = dir;
  c.role = role;
  c.exe_path = exe;
  struct teex_tee *tee = NULL;
  struct teex_err err;
  if (teex_tee_open(&c, &tee, &err) != 0)
    die("tee", &err);
  teex_hex_encode(teex_tee_self(tee)->mr_enclave, 32, hex);
  teex_tee_close(tee);
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
    die(path, NULL);
}

static struct teex_image *make_image(void) {
  struct teex_image *img = calloc(1, sizeof *img);
  snprintf(img->manifest.entry, sizeof img->manifest.entry, "main.py");
  snprintf(img->manifest.name, sizeof img->manifest.name, "echo");
  snprintf(img->manifest.version, sizeof img->manifest.version, "1.0");
  snprintf(img->manifest.python, sizeof img->manifest.python, "3.11");
  img->files = calloc(1, sizeof *img->files);
  img->files[0].path = strdup("main.py");
  img->files[0].data = (uint8_t *)strdup(service);
  img->files[0].len = strlen(service);
  img->nfiles = 1;
  return img;
}

/* Registers the image with the SM; fills the service id and signing key. */
static void deploy(const char *dir, int sm_port, struct teex_tee_policy *smp,
                   const uint8_t *archive, size_t len, uint8_t service_id[32],
                   uint8_t signing_key[20]) {
  struct teex_err err;
  uint8_t key[32], *ct = NULL, hash[32];
  size_t ct_len = 0;
  teex_random(key, 32);
  teex_image_hash(archive, len, hash);
  if (teex_image_encrypt(key, archive, len, &ct, &ct_len, &err) != 0)
    die("encrypt", &err);
  char ipfs_dir[4096], cid_s[TEEX_CID_STR_SIZE];
  snprintf(ipfs_dir, sizeof ipfs_dir, "%s/ipfs", dir);
  struct teex_ipfs_backend *ipfs = NULL;
  struct teex_cid cid;
  if (teex_ipfs_store_open(ipfs_dir, &ipfs, &err) != 0 ||
      teex_ipfs_add_buffer(ipfs, ct, ct_len, &cid, &err) != 0)
    die("ipfs", &err);
  teex_ipfs_close(ipfs);
  teex_cid_to_string(&cid, cid_s);
  struct teex_ratls_verifier v = {.policy = smp};
  struct teex_tls_config tc = {.verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &v};
  struct teex_tls_ctx *ctx = NULL;
  struct teex_rpc_sync *c = NULL;
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", sm_port);
  if (teex_tls_ctx_new(&ctx, &tc, 0, &err) != 0 ||
      teex_rpc_sync_connect(addr, ctx, 5000, &c, &err) != 0)
    die("connect to the SM", &err);
  struct teex_buf resp;
  teex_buf_init(&resp, 1 << 20, 0);
  if (teex_rpc_sync_call(c, "sm.Info", NULL, 0, 5000, &resp, &err) != 0)
    die("sm.Info", &err);
  Teex__Sm__InfoResponse *info =
      teex__sm__info_response__unpack(NULL, resp.len, resp.data);
  uint8_t sm_addr[20], psk[32], ppub[64], sig[65], digest[32];
  memcpy(sm_addr, info->address.data, 20);
  teex__sm__info_response__free_unpacked(info, NULL);
  teex_secp256k1_keypair(psk, ppub);
  struct teex_sm_register r;
  memset(&r, 0, sizeof r);
  teex_random(service_id, 32);
  memcpy(r.service_id, service_id, 32);
  r.version = 1;
  teex_eth_address(ppub, r.provider);
  memcpy(r.image_hash, hash, 32);
  snprintf(r.image_cid, sizeof r.image_cid, "%s", cid_s);
  teex_sm_register_digest(&r, CHAIN, sm_addr, digest);
  teex_stmt_sign(psk, digest, sig);
  Teex__Sm__RegisterServiceRequest req =
      TEEX__SM__REGISTER_SERVICE_REQUEST__INIT;
  req.service_id = (ProtobufCBinaryData){32, r.service_id};
  req.version = 1;
  req.provider = (ProtobufCBinaryData){20, r.provider};
  req.image_hash = (ProtobufCBinaryData){32, hash};
  req.image_cid = cid_s;
  req.image_key = (ProtobufCBinaryData){32, key};
  req.image_ciphertext = (ProtobufCBinaryData){ct_len, ct};
  req.provider_sig = (ProtobufCBinaryData){65, sig};
  size_t n = teex__sm__register_service_request__get_packed_size(&req);
  uint8_t *buf = malloc(n);
  teex__sm__register_service_request__pack(&req, buf);
  if (teex_rpc_sync_call(c, "sm.RegisterService", buf, n, 10000, &resp, &err) !=
      0)
    die("sm.RegisterService", &err);
  Teex__Sm__RegisterServiceResponse *reg =
      teex__sm__register_service_response__unpack(NULL, resp.len, resp.data);
  memcpy(signing_key, reg->signing_key.data, 20);
  teex__sm__register_service_response__free_unpacked(reg, NULL);
  free(buf);
  teex_image_bytes_free(ct, ct_len);
  teex_buf_free(&resp);
  teex_rpc_sync_close(c);
  teex_tls_ctx_free(ctx);
}

/* ---- throughput: many clients, each on its own connection ---- */

#define TP_CLIENTS 32
#define TP_TASKS 40 /* per client */

struct tp_client {
  pthread_t th;
  const char *addr;
  const struct teex_tee_policy *policy;
  const struct teex_client_expect *ex;
  struct teex_assignment a;
  uint8_t sigs[TP_TASKS][65];
  uint8_t ids[TP_TASKS][32];
  int failed;
};

static void *tp_run(void *arg) {
  struct tp_client *c = arg;
  struct teex_client_worker *w = NULL;
  struct teex_err err;
  if (teex_client_connect(c->addr, c->policy, 10000, &w, &err) != 0) {
    c->failed = 1;
    return NULL;
  }
  for (int i = 0; i < TP_TASKS; i++) {
    struct teex_client_result r;
    memcpy(c->a.task_id, c->ids[i], 32);
    if (teex_client_run(w, &c->a, c->sigs[i], c->ex, (const uint8_t *)"ping", 4,
                        &r, &err) != 0) {
      fprintf(stderr, "throughput task: %s\n", err.msg);
      c->failed = 1;
      break;
    }
    teex_client_result_free(&r);
  }
  teex_client_close(w);
  return NULL;
}

static void throughput(const char *addr, const struct teex_tee_policy *wp,
                       const struct teex_client_expect *ex,
                       const struct teex_assignment *tmpl,
                       const uint8_t dsk[32]) {
  struct tp_client *cs = calloc(TP_CLIENTS, sizeof *cs);
  for (int k = 0; k < TP_CLIENTS; k++) {
    cs[k].addr = addr;
    cs[k].policy = wp;
    cs[k].ex = ex;
    cs[k].a = *tmpl;
    for (int i = 0; i < TP_TASKS; i++) {
      uint8_t d[32];
      teex_random(cs[k].ids[i], 32);
      memcpy(cs[k].a.task_id, cs[k].ids[i], 32);
      teex_stmt_assignment_digest(&cs[k].a, d);
      teex_stmt_sign(dsk, d, cs[k].sigs[i]);
    }
  }
  double t0 = now_ms();
  for (int k = 0; k < TP_CLIENTS; k++)
    pthread_create(&cs[k].th, NULL, tp_run, &cs[k]);
  int failed = 0;
  for (int k = 0; k < TP_CLIENTS; k++) {
    pthread_join(cs[k].th, NULL);
    failed |= cs[k].failed;
  }
  double dt = now_ms() - t0;
  if (failed)
    die("throughput run failed", NULL);
  printf("throughput: %d clients x %d tasks (connect included): %.0f "
         "tasks/s over %.2f s\n",
         TP_CLIENTS, TP_TASKS, TP_CLIENTS * TP_TASKS / (dt / 1e3), dt / 1e3);
  free(cs);
}

int main(int argc, char **argv) {
  const char *bin = argc > 1 ? argv[1] : getenv("TEEX_BIN");
  if (bin == NULL)
    bin = "./teex";
  uint64_t ntasks = 2000;
  if (argc > 2 && (teex_parse_u64(argv[2], &ntasks) != 0 || ntasks > 1000000))
    die("TASKS must be a number up to 1000000", NULL);
  int tasks = ntasks < 100 ? 100 : (int)ntasks;
  char abs_bin[4096];
  if (realpath(bin, abs_bin) == NULL)
    die("teex binary not found", NULL);
  bin = abs_bin;
  signal(SIGPIPE, SIG_IGN);
  if (teex_crypto_init() != 0)
    die("crypto", NULL);
  struct teex_err err;
  char dir[] = "/tmp/teex-bench-invoke-XXXXXX";
  if (mkdtemp(dir) == NULL)
    die("mkdtemp", NULL);
  uint8_t root[32];
  if (teex_tee_sim_init(dir, root, &err) != 0)
    die("tee init", &err);
  char root_hex[65], wm[65], smm[65], text[1024], p[4096], q[4096];
  teex_hex_encode(root, 32, root_hex);
  measure(dir, "worker", bin, wm);
  measure(dir, "sm", bin, smm);
  snprintf(text, sizeof text,
           "[policy]\nallow_simulated = true\nroles = worker\n[roots]\nnet = "
           "%s\n[measurements]\nworker = %s\n",
           root_hex, wm);
  snprintf(p, sizeof p, "%s/enclaves.policy", dir);
  write_file(p, text);
  snprintf(text, sizeof text,
           "[policy]\nallow_simulated = true\nroles = sm\n[roots]\nnet = "
           "%s\n[measurements]\nsm = %s\n",
           root_hex, smm);
  snprintf(q, sizeof q, "%s/sm.policy", dir);
  write_file(q, text);

  char sm_ready[4096], sm_log[4096], sm_state[4096];
  snprintf(sm_ready, sizeof sm_ready, "%s/sm.ready", dir);
  snprintf(sm_log, sizeof sm_log, "%s/sm.log", dir);
  snprintf(sm_state, sizeof sm_state, "%s/sm", dir);
  char *sm_argv[] = {(char *)bin,
                     "sm",
                     "run",
                     "--data-dir",
                     dir,
                     "--state",
                     sm_state,
                     "--listen",
                     "127.0.0.1:0",
                     "--client-listen",
                     "127.0.0.1:0",
                     "--policy",
                     p,
                     "--service-registry",
                     "0x5151515151515151515151515151515151515151",
                     "--enclave-registry",
                     "0xe7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7",
                     "--ready-file",
                     sm_ready,
                     NULL};
  int sm_pid = spawn(sm_argv, sm_log);
  int sm_client = wait_port(sm_ready, "client_port");
  int sm_enclave = wait_port(sm_ready, "enclave_port");

  struct teex_tee_policy smp, wp;
  teex_tee_policy_init(&smp);
  teex_tee_policy_parse(&smp, text, strlen(text), &err);
  teex_tee_policy_init(&wp);
  snprintf(text, sizeof text,
           "[policy]\nallow_simulated = true\nroles = worker\n[roots]\nnet = "
           "%s\n[measurements]\nworker = %s\n",
           root_hex, wm);
  if (teex_tee_policy_parse(&wp, text, strlen(text), &err) != 0)
    die("policy", &err);

  struct teex_image *img = make_image();
  uint8_t *archive = NULL;
  size_t archive_len = 0;
  if (teex_image_encode(img, &archive, &archive_len, &err) != 0)
    die("image", &err);
  uint8_t service_id[32], signing_key[20], image_hash[32];
  memcpy(image_hash, img->hash, 32);
  deploy(dir, sm_client, &smp, archive, archive_len, service_id, signing_key);

  uint8_t dsk[32], dpub[64], daddr[20];
  teex_secp256k1_keypair(dsk, dpub);
  teex_eth_address(dpub, daddr);
  char dhex[43], sm_addr[64], w_ready[4096], w_log[4096], w_state[4096],
      w_ipfs[4096];
  teex_eth_address_hex(daddr, dhex);
  snprintf(sm_addr, sizeof sm_addr, "127.0.0.1:%d", sm_enclave);
  snprintf(w_ready, sizeof w_ready, "%s/worker.ready", dir);
  snprintf(w_log, sizeof w_log, "%s/worker.log", dir);
  snprintf(w_state, sizeof w_state, "%s/worker", dir);
  snprintf(w_ipfs, sizeof w_ipfs, "%s/ipfs", dir);
  char *w_argv[] = {(char *)bin,
                    "worker",
                    "run",
                    "--data-dir",
                    dir,
                    "--state",
                    w_state,
                    "--listen",
                    "127.0.0.1:0",
                    "--sm",
                    sm_addr,
                    "--sm-policy",
                    q,
                    "--ipfs-dir",
                    w_ipfs,
                    "--dispatcher",
                    dhex,
                    "--settlement",
                    SETTLE,
                    "--slots",
                    "2",
                    "--ready-file",
                    w_ready,
                    NULL};
  int w_pid = spawn(w_argv, w_log);
  int w_port = wait_port(w_ready, "port");

  struct teex_client_worker *c = NULL;
  char waddr[64];
  snprintf(waddr, sizeof waddr, "127.0.0.1:%d", w_port);
  if (teex_client_connect(waddr, &wp, 5000, &c, &err) != 0)
    die("connect to the worker", &err);
  if (teex_client_hello(c, service_id, image_hash, signing_key, &err) != 0)
    die("hello", &err);
  struct teex_client_expect ex;
  memset(&ex, 0, sizeof ex);
  memcpy(ex.signing_key, signing_key, 20);
  ex.settlement.chain_id = CHAIN;
  teex_eth_address_parse(SETTLE, ex.settlement.verifying_contract);
  struct teex_assignment a;
  memset(&a, 0, sizeof a);
  a.chain_id = CHAIN;
  memcpy(a.dispatcher, daddr, 20);
  teex_client_worker_address(c, a.worker);
  memset(a.user, 0xab, 20);
  memcpy(a.service_id, service_id, 32);
  memcpy(a.image_hash, image_hash, 32);
  a.price = 1000;
  const uint8_t input[] = "ping";

  /* Assignments are signed ahead: the dispatcher's work is not measured. */
  uint8_t(*sigs)[65] = malloc((size_t)tasks * 65);
  uint8_t(*ids)[32] = malloc((size_t)tasks * 32);
  double *e2e = malloc((size_t)tasks * sizeof(double));
  double *alone = malloc((size_t)tasks * sizeof(double));
  a.expires_at = (uint64_t)time(NULL) + 3600;
  for (int i = 0; i < tasks; i++) {
    uint8_t d[32];
    teex_random(ids[i], 32);
    memcpy(a.task_id, ids[i], 32);
    teex_stmt_assignment_digest(&a, d);
    teex_stmt_sign(dsk, d, sigs[i]);
  }

  /* The executor alone, same service, in this process. */
  struct teex_executor_opts o = {.exe_path = bin};
  struct teex_executor *exr = NULL;
  if (teex_executor_start(img, &o, &exr, &err) != 0)
    die("executor", &err);
  struct teex_task_ctx tctx = {.task_id = "t", .service_id = "s"};

  int warm = 50;
  for (int i = 0; i < tasks + warm; i++) {
    /* interleave: one executor-alone task, one end-to-end invoke */
    struct teex_task_result res;
    double t0 = now_ms();
    if (teex_executor_run(exr, &tctx, input, 4, &res, &err) != 0 ||
        res.status != TEEX_TASK_OK)
      die("executor run", &err);
    double t1 = now_ms();
    teex_task_result_free(&res);
    if (i >= warm)
      alone[i - warm] = t1 - t0;
    if (i < warm)
      continue;
    int k = i - warm;
    memcpy(a.task_id, ids[k], 32);
    struct teex_client_result r;
    t0 = now_ms();
    if (teex_client_run(c, &a, sigs[k], &ex, input, 4, &r, &err) != 0)
      die("invoke", &err);
    t1 = now_ms();
    if (r.output_len != 4 || memcmp(r.output, "ping", 4) != 0)
      die("wrong output", NULL);
    teex_client_result_free(&r);
    e2e[k] = t1 - t0;
  }
  double pa = report("executor alone (teex_executor_run)", alone, tasks);
  double pe = report("invoke via worker (teex_client_run)", e2e, tasks);
  printf("ratio p50 invoke / executor alone: %.2f (overhead %.3f ms)\n",
         pe / pa, pe - pa);

  teex_executor_stop(exr);
  teex_client_close(c);
  throughput(waddr, &wp, &ex, &a, dsk);
  kill(w_pid, SIGTERM);
  kill(sm_pid, SIGTERM);
  waitpid(w_pid, NULL, 0);
  waitpid(sm_pid, NULL, 0);
  teex_image_bytes_free(archive, archive_len);
  teex_image_free(img);
  free(sigs);
  free(ids);
  free(e2e);
  free(alone);
  char *rm[] = {"/bin/rm", "-rf", dir, NULL};
  int rp = fork();
  if (rp == 0) {
    execv(rm[0], rm);
    _exit(127);
  }
  waitpid(rp, NULL, 0);
  return 0;
}
