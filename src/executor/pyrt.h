/* The embedded CPython of the executor (internal): interpreter start-up,
 * the PEP 578 audit hook, the per-task thread cap, and the calls into the
 * Python runtime (runtime.py). Used only inside the executor process. */
#ifndef TEEX_EXECUTOR_PYRT_H
#define TEEX_EXECUTOR_PYRT_H

#include <stdint.h>

#include "executor/msg.h"
#include "teex/buf.h"
#include "teex/error.h"
#include "teex/image.h"

/* Starts an isolated interpreter (no site, no bytecode writes, no
 * environment), installs the audit hook (not yet enforcing), pre-imports
 * the trusted stdlib list, and loads the runtime. */
int teex_pyrt_init(struct teex_err *err);

/* Directory of the standard library ("/usr/lib/python3.11"). */
const char *teex_pyrt_stdlib_dir(void);

/* Turns the audit hook's enforcement on. One way: nothing turns it off. */
void teex_pyrt_enforce(void);

/* Threads a task may start; 0 in the executor itself (it must stay
 * single-threaded to fork safely). */
void teex_pyrt_set_thread_cap(uint32_t n);

/* Installs the image's importer and imports the service (in the executor,
 * after its walls). TEEX_EFORMAT with the service's error in err. */
int teex_pyrt_setup(const struct teex_image *img, struct teex_err *err);

/* In a spare child: pays the runtime's copy-on-write faults ahead. */
void teex_pyrt_prepare(void);

/* Runs one task (in a child) and encodes its RESULT frame into frame. */
int teex_pyrt_run(const struct teex_xtask *t, uint32_t out_cap,
                  struct teex_buf *frame);

#endif
