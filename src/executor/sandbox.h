/* The kernel walls of the executor (internal): Landlock, seccomp, rlimits,
 * privileges. Built once in the executor process (the zygote); applied to
 * the zygote itself before any service code runs, and again, tighter, in
 * every task child. See docs/internals/executor.md. */
#ifndef TEEX_EXECUTOR_SANDBOX_H
#define TEEX_EXECUTOR_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

#include "teex/error.h"

/* The fixed descriptor numbers inside a task child. */
#define TEEX_SB_FD_CHANNEL 3
#define TEEX_SB_FD_RULESET 4

/* What the kernel offers and what we use. */
struct teex_sandbox {
  int abi;         /* Landlock ABI in force (after the cap); 0 = none */
  int ruleset_fd;  /* Landlock ruleset, -1 if none */
  int devnull_fd;  /* /dev/null, opened before the walls */
  int dropped_uid; /* 1 when root was left for the nobody user */
  /* Exported BPF programs (struct sock_filter arrays). */
  void *child_bpf;
  size_t child_bpf_len; /* in instructions */
  void *zygote_bpf;
  size_t zygote_bpf_len;
};

/* The Landlock ABI the kernel offers (0 when Landlock is off or absent). */
int teex_sb_landlock_abi(void);

/* Builds the ruleset (read-only access beneath stdlib_dir, with the
 * features of min(kernel ABI, abi_max when > 0)) and both seccomp filters.
 * Without Landlock: TEEX_EUNSUPPORTED unless accept_weaker. */
int teex_sb_prepare(struct teex_sandbox *sb, const char *stdlib_dir,
                    int abi_max, int accept_weaker, struct teex_err *err);
void teex_sb_free(struct teex_sandbox *sb);

/* Walls the executor process itself: leaves root for nobody (dropping
 * every capability), no-new-privs, Landlock, the zygote seccomp filter. */
int teex_sb_enter_zygote(struct teex_sandbox *sb, struct teex_err *err);

/* Limits applied in a task child. */
struct teex_sb_limits {
  uint32_t cpu_ms;
  uint64_t as_bytes; /* total address space */
  uint32_t threads;
};

/* In a freshly forked child: fds 0-2 to /dev/null, channel to fd 3, every
 * other descriptor closed, rlimits, no-new-privs, Landlock (with scopes),
 * the child seccomp filter. On failure the child must _exit: it returns a
 * static message. */
const char *teex_sb_enter_child(const struct teex_sandbox *sb, int channel_fd,
                                const struct teex_sb_limits *lim);

#endif
