/* The kernel walls of the executor (see sandbox.h). */
#include "executor/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/sched.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/filter.h>
#include <linux/seccomp.h>

/* ---- Landlock, defined here: Debian 12's headers stop at ABI 2 ---- */

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif

#define LL_CREATE_RULESET_VERSION (1u << 0)
#define LL_RULE_PATH_BENEATH 1

/* Filesystem rights: bits 0-12 since ABI 1. */
#define LL_FS_READ_FILE (1ull << 2)
#define LL_FS_READ_DIR (1ull << 3)
#define LL_FS_ABI1 ((1ull << 13) - 1)
#define LL_FS_REFER (1ull << 13)     /* ABI 2 */
#define LL_FS_TRUNCATE (1ull << 14)  /* ABI 3 */
#define LL_FS_IOCTL_DEV (1ull << 15) /* ABI 5 */
/* Network rights, ABI 4. */
#define LL_NET_BIND_TCP (1ull << 0)
#define LL_NET_CONNECT_TCP (1ull << 1)
/* Scopes, ABI 6. */
#define LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ull << 0)
#define LL_SCOPE_SIGNAL (1ull << 1)

struct ll_ruleset_attr {
  uint64_t handled_access_fs;
  uint64_t handled_access_net; /* ABI 4 */
  uint64_t scoped;             /* ABI 6 */
};

struct ll_path_beneath_attr {
  uint64_t allowed_access;
  int32_t parent_fd;
} __attribute__((packed));

int teex_sb_landlock_abi(void) {
  long v =
      syscall(SYS_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);
  return v < 0 ? 0 : (int)v;
}

static int build_ruleset(int abi, const char *stdlib_dir,
                         struct teex_err *err) {
  struct ll_ruleset_attr attr = {0};
  size_t size = sizeof attr.handled_access_fs;
  attr.handled_access_fs = LL_FS_ABI1;
  if (abi >= 2)
    attr.handled_access_fs |= LL_FS_REFER;
  if (abi >= 3)
    attr.handled_access_fs |= LL_FS_TRUNCATE;
  if (abi >= 4) {
    /* No TCP bind or connect at all (seccomp refuses sockets too). */
    attr.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
    size = offsetof(struct ll_ruleset_attr, scoped);
  }
  if (abi >= 5)
    attr.handled_access_fs |= LL_FS_IOCTL_DEV;
  if (abi >= 6) {
    /* Cannot signal or reach abstract sockets outside its own domain: not
     * the executor, not the worker, not another task. */
    attr.scoped = LL_SCOPE_ABSTRACT_UNIX_SOCKET | LL_SCOPE_SIGNAL;
    size = sizeof attr;
  }
  long fd = syscall(SYS_landlock_create_ruleset, &attr, size, 0);
  if (fd < 0)
    return teex_err_set(err, TEEX_EUNSUPPORTED,
                        "landlock: create ruleset (ABI %d): %s", abi,
                        strerror(errno));
  int dir = open(stdlib_dir, O_PATH | O_CLOEXEC | O_DIRECTORY);
  if (dir < 0) {
    int e = errno;
    close((int)fd);
    return teex_err_set(err, TEEX_EIO, "landlock: open %s: %s", stdlib_dir,
                        strerror(e));
  }
  struct ll_path_beneath_attr pb = {
      .allowed_access = LL_FS_READ_FILE | LL_FS_READ_DIR, .parent_fd = dir};
  long r =
      syscall(SYS_landlock_add_rule, (int)fd, LL_RULE_PATH_BENEATH, &pb, 0);
  int e = errno;
  close(dir);
  if (r < 0) {
    close((int)fd);
    return teex_err_set(err, TEEX_EIO, "landlock: add rule for %s: %s",
                        stdlib_dir, strerror(e));
  }
  return (int)fd;
}

/* ---- seccomp ---- */

/* Syscalls CPython needs to compute, read its stdlib, make threads and talk
 * on its channel (measured: see docs/internals/executor.md). */
static const char *const child_allow[] = {"read",
                                          "write",
                                          "close",
                                          "newfstatat",
                                          "fstat",
                                          "lseek",
                                          "getdents64",
                                          "mmap",
                                          "munmap",
                                          "mprotect",
                                          "mremap",
                                          "madvise",
                                          "brk",
                                          "futex",
                                          "rseq",
                                          "set_robust_list",
                                          "clock_nanosleep",
                                          "nanosleep",
                                          "clock_gettime",
                                          "clock_getres",
                                          "gettimeofday",
                                          "getrandom",
                                          "uname",
                                          "exit",
                                          "exit_group",
                                          "rt_sigreturn",
                                          "rt_sigprocmask",
                                          "rt_sigaction",
                                          "sigaltstack",
                                          "gettid",
                                          "getpid",
                                          "sched_yield",
                                          "sched_getaffinity",
                                          "getcwd",
                                          "getuid",
                                          "geteuid",
                                          "getgid",
                                          "getegid",
                                          "readlink",
                                          "pread64",
                                          "readv",
                                          "writev",
                                          "statx",
                                          "poll",
                                          "ppoll",
                                          "select",
                                          "pselect6",
                                          "restart_syscall",
                                          "set_tid_address",
                                          "membarrier",
                                          "get_mempolicy",
                                          "times",
                                          "getrusage",
                                          "sysinfo",
                                          NULL};

/* The executor itself additionally forks, waits, kills its own children,
 * makes channels and walls its children in. */
static const char *const zygote_allow[] = {"wait4",
                                           "waitid",
                                           "kill",
                                           "pidfd_open",
                                           "pidfd_send_signal",
                                           "prctl",
                                           "seccomp",
                                           "landlock_restrict_self",
                                           "setrlimit",
                                           "prlimit64",
                                           "close_range",
                                           "dup",
                                           "dup2",
                                           "dup3",
                                           "fcntl",
                                           "setresuid",
                                           "setresgid",
                                           "setgroups",
                                           "capget",
                                           "capset",
                                           "getppid",
                                           NULL};

static int add_names(scmp_filter_ctx ctx, const char *const *names) {
  for (size_t i = 0; names[i] != NULL; i++) {
    int nr = seccomp_syscall_resolve_name(names[i]);
    if (nr == __NR_SCMP_ERROR)
      continue; /* not on this architecture */
    if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0) != 0)
      return -1;
  }
  return 0;
}

/* Opening files only for reading: O_WRONLY, O_RDWR, O_CREAT, O_TRUNC (and
 * so O_TMPFILE, which needs write access) are refused. */
#define OPEN_WRITE_BITS (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC)
/* Namespace flags: the executor forks plain children only. */
#define CLONE_NS_BITS                                                          \
  (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC |               \
   CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET)

/* An argument comparison with every field set (the SCMP_A* macros leave
 * datum_b implicit, which clang warns about). */
static struct scmp_arg_cmp arg_cmp(unsigned arg, enum scmp_compare op,
                                   uint64_t a, uint64_t b) {
  struct scmp_arg_cmp c = {.arg = arg, .op = op, .datum_a = a, .datum_b = b};
  return c;
}

static int export_bpf(scmp_filter_ctx ctx, void **out, size_t *len) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0)
    return -1;
  int rc = seccomp_export_bpf(ctx, p[1]);
  close(p[1]);
  if (rc != 0) {
    close(p[0]);
    return -1;
  }
  size_t cap = 65536, n = 0;
  uint8_t *buf = malloc(cap);
  if (buf == NULL) {
    close(p[0]);
    return -1;
  }
  for (;;) {
    ssize_t r = read(p[0], buf + n, cap - n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    n += (size_t)r;
    if (n == cap)
      break; /* a filter this large is a bug: refuse below */
  }
  close(p[0]);
  if (n == 0 || n == cap || n % sizeof(struct sock_filter) != 0) {
    free(buf);
    return -1;
  }
  *out = buf;
  *len = n / sizeof(struct sock_filter);
  return 0;
}

static int build_filter(int zygote, void **out, size_t *len) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
  if (ctx == NULL)
    return -1;
  int rc = add_names(ctx, child_allow);
  if (rc == 0)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
                          arg_cmp(2, SCMP_CMP_MASKED_EQ, OPEN_WRITE_BITS, 0));
  if (rc == 0)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(open), 1,
                          arg_cmp(1, SCMP_CMP_MASKED_EQ, OPEN_WRITE_BITS, 0));
  /* send(MSG_NOSIGNAL) on the channel; never to an address. */
  if (rc == 0)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(sendto), 1,
                          arg_cmp(4, SCMP_CMP_EQ, 0, 0));
  /* glibc tries clone3 first; ENOSYS makes it fall back to clone, whose
   * flags a filter can read (clone3 passes them in memory). */
  if (rc == 0)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
  if (zygote) {
    if (rc == 0)
      rc = add_names(ctx, zygote_allow);
    if (rc == 0)
      rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                            arg_cmp(0, SCMP_CMP_MASKED_EQ, CLONE_NS_BITS, 0));
    if (rc == 0)
      rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socketpair), 1,
                            arg_cmp(0, SCMP_CMP_EQ, AF_UNIX, 0));
  } else {
    /* Threads only: a clone without CLONE_THREAD is a new process. */
    if (rc == 0)
      rc = seccomp_rule_add(
          ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
          arg_cmp(0, SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
    /* fcntl for descriptor flags only (no F_DUPFD, no locks). */
    if (rc == 0)
      rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1,
                            arg_cmp(1, SCMP_CMP_EQ, F_GETFD, 0));
    if (rc == 0)
      rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1,
                            arg_cmp(1, SCMP_CMP_EQ, F_SETFD, 0));
    if (rc == 0)
      rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1,
                            arg_cmp(1, SCMP_CMP_EQ, F_GETFL, 0));
    /* Reading its own limits (resource.getrlimit), never setting them. */
    if (rc == 0)
      rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prlimit64), 2,
                            arg_cmp(0, SCMP_CMP_EQ, 0, 0),
                            arg_cmp(2, SCMP_CMP_EQ, 0, 0));
  }
  if (rc == 0)
    rc = export_bpf(ctx, out, len);
  seccomp_release(ctx);
  return rc;
}

static int load_bpf(void *bpf, size_t len) {
  struct sock_fprog prog = {.len = (unsigned short)len,
                            .filter = (struct sock_filter *)bpf};
  return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}

/* ---- building and entering ---- */

int teex_sb_prepare(struct teex_sandbox *sb, const char *stdlib_dir,
                    int abi_max, int accept_weaker, struct teex_err *err) {
  memset(sb, 0, sizeof *sb);
  sb->ruleset_fd = -1;
  sb->devnull_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (sb->devnull_fd < 0)
    return teex_err_set(err, TEEX_EIO, "open /dev/null: %s", strerror(errno));
  int abi = teex_sb_landlock_abi();
  if (abi_max < 0)
    abi = 0;
  else if (abi_max > 0 && abi > abi_max)
    abi = abi_max;
  if (abi > 0) {
    int fd = build_ruleset(abi, stdlib_dir, err);
    if (fd < 0) {
      teex_sb_free(sb);
      return fd;
    }
    sb->ruleset_fd = fd;
    sb->abi = abi;
  } else if (!accept_weaker) {
    teex_sb_free(sb);
    return teex_err_set(err, TEEX_EUNSUPPORTED,
                        "this kernel offers no Landlock: refusing to run "
                        "services without a filesystem wall (pass "
                        "--accept-weaker-sandbox to run anyway)");
  }
  if (build_filter(0, &sb->child_bpf, &sb->child_bpf_len) != 0 ||
      build_filter(1, &sb->zygote_bpf, &sb->zygote_bpf_len) != 0) {
    teex_sb_free(sb);
    return teex_err_set(err, TEEX_EINTERNAL, "seccomp: cannot build filter");
  }
  return 0;
}

void teex_sb_free(struct teex_sandbox *sb) {
  if (sb->ruleset_fd >= 0)
    close(sb->ruleset_fd);
  if (sb->devnull_fd > 0)
    close(sb->devnull_fd);
  free(sb->child_bpf);
  free(sb->zygote_bpf);
  memset(sb, 0, sizeof *sb);
  sb->ruleset_fd = -1;
}

/* When root: leave for the nobody user; the change of uid clears every
 * capability, and the bounding set is emptied first. */
static int drop_root(struct teex_sandbox *sb, struct teex_err *err) {
  if (geteuid() != 0 && getuid() != 0)
    return 0;
  for (int cap = 0; cap < 64; cap++)
    (void)prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
  const uid_t nobody = 65534;
  if (setgroups(0, NULL) != 0 || setresgid(nobody, nobody, nobody) != 0 ||
      setresuid(nobody, nobody, nobody) != 0)
    return teex_err_set(err, TEEX_EPERM, "cannot leave root: %s",
                        strerror(errno));
  if (geteuid() == 0 || getuid() == 0)
    return teex_err_set(err, TEEX_EPERM, "still root after setresuid");
  sb->dropped_uid = 1;
  return 0;
}

int teex_sb_enter_zygote(struct teex_sandbox *sb, struct teex_err *err) {
  int rc = drop_root(sb, err);
  if (rc != 0)
    return rc;
  /* The uid change cleared these: no core dumps, no ptrace by peers, and
   * die with the worker that started us. */
  (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  (void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  struct rlimit zero = {0, 0};
  (void)setrlimit(RLIMIT_CORE, &zero);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    return teex_err_set(err, TEEX_EPERM, "no_new_privs: %s", strerror(errno));
  if (sb->ruleset_fd >= 0 &&
      syscall(SYS_landlock_restrict_self, sb->ruleset_fd, 0) != 0)
    return teex_err_set(err, TEEX_EPERM, "landlock_restrict_self: %s",
                        strerror(errno));
  if (load_bpf(sb->zygote_bpf, sb->zygote_bpf_len) != 0)
    return teex_err_set(err, TEEX_EPERM, "seccomp: %s", strerror(errno));
  return 0;
}

const char *teex_sb_enter_child(const struct teex_sandbox *sb, int channel_fd,
                                const struct teex_sb_limits *lim) {
  /* Fixed numbers first (through high copies, so no dup2 can clobber the
   * other), then close everything else: an inherited writable descriptor
   * would walk straight through Landlock. */
  int ch = fcntl(channel_fd, F_DUPFD, 100);
  int rs = sb->ruleset_fd >= 0 ? fcntl(sb->ruleset_fd, F_DUPFD, 100) : -1;
  if (ch < 0 || (sb->ruleset_fd >= 0 && rs < 0))
    return "cannot move descriptors";
  for (int fd = 0; fd < 3; fd++)
    if (dup2(sb->devnull_fd, fd) != fd)
      return "cannot point stdio at /dev/null";
  if (dup2(ch, TEEX_SB_FD_CHANNEL) != TEEX_SB_FD_CHANNEL)
    return "cannot place the channel";
  if (rs >= 0 && dup2(rs, TEEX_SB_FD_RULESET) != TEEX_SB_FD_RULESET)
    return "cannot place the ruleset";
  int first_free = rs >= 0 ? TEEX_SB_FD_RULESET + 1 : TEEX_SB_FD_CHANNEL + 1;
  if (close_range((unsigned)first_free, ~0u, 0) != 0)
    return "close_range failed";

  struct rlimit r;
  uint64_t cpu_s = (lim->cpu_ms + 999u) / 1000u;
  if (cpu_s == 0)
    cpu_s = 1;
  r.rlim_cur = cpu_s;
  r.rlim_max = cpu_s + 1; /* SIGXCPU at the soft limit, SIGKILL at hard */
  if (setrlimit(RLIMIT_CPU, &r) != 0)
    return "cannot limit CPU time";
  r.rlim_cur = r.rlim_max = lim->as_bytes;
  if (setrlimit(RLIMIT_AS, &r) != 0)
    return "cannot limit address space";
  r.rlim_cur = r.rlim_max = 0;
  if (setrlimit(RLIMIT_FSIZE, &r) != 0 || setrlimit(RLIMIT_CORE, &r) != 0)
    return "cannot limit file size";
  r.rlim_cur = r.rlim_max = 64;
  if (setrlimit(RLIMIT_NOFILE, &r) != 0)
    return "cannot limit descriptors";
  if (sb->dropped_uid) {
    /* Counts every process of the nobody user: a coarse second wall under
     * the exact per-task thread count kept by the runtime. */
    r.rlim_cur = r.rlim_max = (rlim_t)lim->threads + 256;
    if (setrlimit(RLIMIT_NPROC, &r) != 0)
      return "cannot limit processes";
  }
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
    return "cannot set the parent-death signal";
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    return "cannot set no_new_privs";
  if (rs >= 0) {
    if (syscall(SYS_landlock_restrict_self, TEEX_SB_FD_RULESET, 0) != 0)
      return "landlock_restrict_self failed";
    close(TEEX_SB_FD_RULESET);
  }
  if (load_bpf(sb->child_bpf, sb->child_bpf_len) != 0)
    return "cannot load the seccomp filter";
  return NULL;
}
