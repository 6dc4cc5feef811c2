/* Helpers shared by teex tests: temporary directories, running the teex
 * binary, reading files, and searching a tree for canary strings (plain, hex
 * and base64) for confidentiality tests. */
#ifndef TEEX_TESTUTIL_H
#define TEEX_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

/* Creates a fresh directory under $TMPDIR (or /tmp); returns a malloc'd path.
 * Removed by tu_rmtree. */
char *tu_mkdtemp(const char *tag);
void tu_rmtree(const char *path);

/* Path of the teex binary under test ($TEEX_BIN). */
const char *tu_teex_bin(void);
/* $TEEX_SOURCE_DIR, the repository root. */
const char *tu_source_dir(void);

/* Runs argv (argv[0] a path) with stdin from `in` (may be NULL), captures
 * stdout and stderr (each NUL-terminated, malloc'd; pass NULL to discard).
 * Returns the exit status, or 128+signal, or -1 if it could not run. */
int tu_run(char *const argv[], const char *in, size_t in_len, char **out,
           char **errout);

/* Reads a whole file (malloc'd, NUL-terminated). NULL on error. */
uint8_t *tu_read_file(const char *path, size_t *len);
int tu_write_file(const char *path, const void *p, size_t n);

/* Searches every regular file below dir for needle in plain form, lower and
 * upper hex and base64 (at each of the three alignments). Returns the
 * number of files that contain it; the first hit's path goes to first_hit
 * (may be NULL, size 512). */
int tu_tree_contains(const char *dir, const void *needle, size_t n,
                     char *first_hit);
/* The same search in one buffer: 1 if found in any encoding. */
int tu_buf_contains_any_encoding(const uint8_t *hay, size_t hay_len,
                                 const void *needle, size_t n);

/* Starts argv in the background with stdout and stderr appended to log_path
 * (NULL: /dev/null). Returns the pid, or -1. */
int tu_spawn(char *const argv[], const char *log_path);
/* Sends sig and waits for pid; returns its exit status (128+signal when
 * killed by a signal), or -1. Kills with SIGKILL after timeout_ms. */
int tu_stop(int pid, int sig, int timeout_ms);
/* Waits until path exists (polling), at most timeout_ms. 0 or -1. */
int tu_wait_file(const char *path, int timeout_ms);

#endif
