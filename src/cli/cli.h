/* The teex command line: every command and command group is a table of
 * {name, handler, one-line help}. A group's handler dispatches into its own
 * table with teex_cli_dispatch, so `teex tee quote --help` works the same
 * way at every depth. */
#ifndef TEEX_CLI_H
#define TEEX_CLI_H

#include <stdint.h>
#include <stdio.h>

/* argv[0] is the command's own name. Returns the process exit status. */
typedef int (*teex_cli_handler)(int argc, char **argv);

struct teex_cli_cmd {
  const char *name;
  teex_cli_handler handler;
  const char *help; /* one line */
};

/* Runs the command argv[0] from a table terminated by {NULL}. `prog` is the
 * path shown in usage ("teex tee"). Prints the table for "help", "--help",
 * "-h" or no argument. */
int teex_cli_dispatch(const char *prog, const struct teex_cli_cmd *table,
                      int argc, char **argv);

/* Prints "usage: PROG ..." followed by the table's commands. */
void teex_cli_usage(FILE *out, const char *prog,
                    const struct teex_cli_cmd *table);

/* True when argv holds -h or --help. */
int teex_cli_wants_help(int argc, char **argv);

/* Prints "teex: <msg>" to stderr and returns exit status 1. */
int teex_cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The default data directory: $TEEX_HOME, else ~/.teex. */
void teex_cli_data_dir(char *out, size_t size);

/* Resolves a service given by id (64 hex digits) or by the name in its
 * listed description (unique among live services). Prints the error and
 * returns an exit status on failure. */
int teex_cli_find_service(const char *chain_conf, const char *ipfs_store,
                          const char *name_or_id, uint8_t id[32]);

/* Appends the comma-separated addresses of list to out[*n..max): the
 * error (naming opt) is printed and non-zero returned on a bad address or
 * more than max. */
int teex_cli_parse_addrs(const char *list, uint8_t (*out)[20], size_t max,
                         size_t *n, const char *opt);

/* Exit statuses: 0 ok, 1 operation failed, 2 usage error. */
#define TEEX_EXIT_OK 0
#define TEEX_EXIT_FAIL 1
#define TEEX_EXIT_USAGE 2

/* Command groups, one per file src/cli/cmd_<group>.c. */
int teex_cmd_version(int argc, char **argv);
int teex_cmd_tee(int argc, char **argv);
int teex_cmd_service(int argc, char **argv);        /* cmd_service.c */
int teex_cmd_sm(int argc, char **argv);             /* cmd_sm.c */
int teex_cmd_ds(int argc, char **argv);             /* cmd_ds.c */
int teex_cmd_account(int argc, char **argv);        /* cmd_account.c */
int teex_cmd_service_deploy(int argc, char **argv); /* cmd_deploy.c */
int teex_cmd_service_list(int argc, char **argv);   /* cmd_service_list.c */
int teex_cmd_service_access(int argc, char **argv); /* cmd_service_access.c */
int teex_cmd_task(int argc, char **argv);           /* cmd_task.c */
int teex_cmd_up(int argc, char **argv);             /* cmd_up.c */
int teex_cmd_status(int argc, char **argv);         /* cmd_up.c */
int teex_cmd_down(int argc, char **argv);           /* cmd_up.c */
int teex_cmd_dispatcher(int argc, char **argv);
int teex_cmd_ipfs(int argc, char **argv);
int teex_cmd_executor(int argc, char **argv);
int teex_cmd_service_run(int argc, char **argv); /* cmd_service_run.c */
int teex_cmd_worker(int argc, char **argv);      /* cmd_worker.c */
int teex_cmd_invoke(int argc, char **argv);      /* cmd_invoke.c */
int teex_cmd_ds(int argc, char **argv);          /* cmd_ds.c */
int teex_cmd_ds_proxy(int argc, char **argv);    /* cmd_ds_proxy.c */
int teex_cmd_ds_place(int argc, char **argv);    /* cmd_ds_place.c */
int teex_cmd_ds_move(int argc, char **argv);     /* cmd_ds_place.c */
/* The RESP proxy's backend over a placement directory (cmd_ds_place.c):
 * the TLS contexts live in *hold until teex_cli_ds_place_proxy_release,
 * after the backend is freed and the loop has run out. Prints the reason
 * and returns an exit status on failure. */
struct teex_ds_backend;
struct uv_loop_s;
int teex_cli_ds_place_proxy_backend(struct uv_loop_s *loop, const char *dir,
                                    const char *pub, const char *cert,
                                    const char *key,
                                    const char *const *policies,
                                    size_t n_policies, const char *ns,
                                    unsigned timeout_ms,
                                    struct teex_ds_backend **out, void **hold);
void teex_cli_ds_place_proxy_release(void *hold);
/* `teex tee serve` / `teex tee connect` (src/cli/cmd_tee_net.c). */
int teex_cmd_tee_serve(int argc, char **argv);
int teex_cmd_tee_connect(int argc, char **argv);
/* cmd_chain.c, cmd_escrow.c */
int teex_cmd_chain(int argc, char **argv);
int teex_cmd_deposit(int argc, char **argv);
int teex_cmd_withdraw(int argc, char **argv);
int teex_cmd_data(int argc, char **argv); /* cmd_data.c */
struct teex_err;
/* A dataset by id (64 hex digits) or by name (unique among live listings)
 * on the chain of chain_conf (cmd_data.c). */
int teex_cli_find_dataset(const char *chain_conf, const char *s, uint8_t id[32],
                          struct teex_err *err);
/* A comma-separated list of datasets (as above) into ids (room for max);
 * *n gets how many. */
int teex_cli_find_datasets(const char *chain_conf, const char *list,
                           uint8_t *ids, size_t max, size_t *n,
                           struct teex_err *err);
/* The datasets a service's provider assigned to it at deploy (the
 * "datasets" of its description on IPFS), in order; *n = 0 when none
 * (cmd_service_list.c). */
int teex_cli_service_datasets(const char *chain_conf, const char *ipfs_store,
                              const uint8_t service_id[32], uint8_t *ids,
                              size_t max, size_t *n, struct teex_err *err);

#endif
