/* Process hardening for a component that acts as an enclave (the `sim`
 * backend's share of protection): no core dumps, not ptrace-able by other
 * processes without CAP_SYS_PTRACE, optionally all memory locked. Secrets
 * themselves go into locked memory from include/teex/mem.h. */
#ifndef TEEX_HARDEN_H
#define TEEX_HARDEN_H

#include "teex/error.h"

#define TEEX_HARDEN_MLOCKALL 1u /* also mlockall(MCL_CURRENT | MCL_FUTURE) */

/* prctl(PR_SET_DUMPABLE, 0) — no core dumps, /proc/PID/mem and ptrace
 * closed to other non-privileged processes of the same user —
 * and RLIMIT_CORE 0; with TEEX_HARDEN_MLOCKALL also locks all memory (needs
 * RLIMIT_MEMLOCK or CAP_IPC_LOCK: TEEX_EPERM otherwise). Idempotent. */
int teex_harden_process(unsigned flags, struct teex_err *err);

/* 1 when the process is currently non-dumpable with RLIMIT_CORE 0. */
int teex_harden_is_active(void);

#endif
