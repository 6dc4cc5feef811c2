/* Process hardening (include/teex/harden.h). */
#include "teex/harden.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>

int teex_harden_process(unsigned flags, struct teex_err *err) {
  struct rlimit rl = {0, 0};
  if (setrlimit(RLIMIT_CORE, &rl) != 0)
    return teex_err_set(err, TEEX_EPERM, "harden: RLIMIT_CORE: %s",
                        strerror(errno));
  /* Non-dumpable: no core file, and ptrace / /proc/PID/mem access needs
   * CAP_SYS_PTRACE even for processes of the same user. */
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
    return teex_err_set(err, TEEX_EPERM, "harden: PR_SET_DUMPABLE: %s",
                        strerror(errno));
  if ((flags & TEEX_HARDEN_MLOCKALL) && mlockall(MCL_CURRENT | MCL_FUTURE) != 0)
    return teex_err_set(err, TEEX_EPERM,
                        "harden: mlockall: %s (raise RLIMIT_MEMLOCK)",
                        strerror(errno));
  return 0;
}

int teex_harden_is_active(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_CORE, &rl) != 0 || rl.rlim_cur != 0)
    return 0;
  return prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0;
}
