/* Shared test helpers (see testutil.h). */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

char *tu_mkdtemp(const char *tag) {
  const char *base = getenv("TMPDIR");
  if (base == NULL || base[0] == '\0')
    base = "/tmp";
  size_t n = strlen(base) + strlen(tag) + 32;
  char *p = malloc(n);
  if (p == NULL)
    return NULL;
  snprintf(p, n, "%s/teex-%s-XXXXXX", base, tag);
  if (mkdtemp(p) == NULL) {
    free(p);
    return NULL;
  }
  return p;
}

void tu_rmtree(const char *path) {
  DIR *d = opendir(path);
  if (d != NULL) {
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
        continue;
      char child[4096];
      snprintf(child, sizeof child, "%s/%s", path, e->d_name);
      struct stat st;
      if (lstat(child, &st) == 0 && S_ISDIR(st.st_mode))
        tu_rmtree(child);
      else
        unlink(child);
    }
    closedir(d);
  }
  rmdir(path);
}

const char *tu_teex_bin(void) {
  const char *b = getenv("TEEX_BIN");
  return b ? b : "./teex";
}

const char *tu_source_dir(void) {
  const char *s = getenv("TEEX_SOURCE_DIR");
  return s ? s : ".";
}

static void append(char **buf, size_t *len, size_t *cap, const char *p,
                   size_t n) {
  if (*len + n + 1 > *cap) {
    size_t c = *cap ? *cap : 4096;
    while (c < *len + n + 1)
      c *= 2;
    char *nb = realloc(*buf, c);
    if (nb == NULL)
      abort();
    *buf = nb;
    *cap = c;
  }
  memcpy(*buf + *len, p, n);
  *len += n;
  (*buf)[*len] = '\0';
}

int tu_run(char *const argv[], const char *in, size_t in_len, char **out,
           char **errout) {
  int pin[2], pout[2], perr[2];
  if (pipe2(pin, O_CLOEXEC) || pipe2(pout, O_CLOEXEC) || pipe2(perr, O_CLOEXEC))
    return -1;
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    dup2(pin[0], 0);
    dup2(pout[1], 1);
    dup2(perr[1], 2);
    execv(argv[0], argv);
    _exit(127);
  }
  close(pin[0]);
  close(pout[1]);
  close(perr[1]);
  signal(SIGPIPE, SIG_IGN);
  size_t in_off = 0;
  if (in == NULL || in_len == 0) {
    close(pin[1]);
    pin[1] = -1;
  }
  char *ob = NULL, *eb = NULL;
  size_t ol = 0, oc = 0, el = 0, ec = 0;
  append(&ob, &ol, &oc, "", 0);
  append(&eb, &el, &ec, "", 0);
  int open_fds = 2;
  while (open_fds > 0 || pin[1] >= 0) {
    struct pollfd pf[3] = {
        {pout[0], POLLIN, 0}, {perr[0], POLLIN, 0}, {pin[1], POLLOUT, 0}};
    if (poll(pf, 3, -1) < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    char tmp[65536];
    for (int i = 0; i < 2; i++) {
      if (pf[i].fd >= 0 && (pf[i].revents & (POLLIN | POLLHUP | POLLERR))) {
        ssize_t r = read(pf[i].fd, tmp, sizeof tmp);
        if (r <= 0) {
          close(pf[i].fd);
          if (i == 0)
            pout[0] = -1;
          else
            perr[0] = -1;
          open_fds--;
        } else if (i == 0) {
          append(&ob, &ol, &oc, tmp, (size_t)r);
        } else {
          append(&eb, &el, &ec, tmp, (size_t)r);
        }
      }
    }
    if (pin[1] >= 0 && (pf[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w = write(pin[1], in + in_off, in_len - in_off);
      if (w > 0)
        in_off += (size_t)w;
      if (w <= 0 || in_off == in_len) {
        close(pin[1]);
        pin[1] = -1;
      }
    }
  }
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  if (out)
    *out = ob;
  else
    free(ob);
  if (errout)
    *errout = eb;
  else
    free(eb);
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  if (WIFSIGNALED(status))
    return 128 + WTERMSIG(status);
  return -1;
}

uint8_t *tu_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return NULL;
  size_t cap = 4096, n = 0;
  uint8_t *b = malloc(cap + 1);
  size_t r;
  while (b && (r = fread(b + n, 1, cap - n, f)) > 0) {
    n += r;
    if (n == cap) {
      cap *= 2;
      uint8_t *nb = realloc(b, cap + 1);
      if (nb == NULL) {
        free(b);
        b = NULL;
      }
      b = nb;
    }
  }
  fclose(f);
  if (b == NULL)
    return NULL;
  b[n] = 0;
  if (len)
    *len = n;
  return b;
}

int tu_write_file(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  if (f == NULL)
    return -1;
  size_t w = fwrite(p, 1, n, f);
  return fclose(f) == 0 && w == n ? 0 : -1;
}

static void hexenc(const uint8_t *p, size_t n, char *out, int upper) {
  const char *d = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = d[p[i] >> 4];
    out[2 * i + 1] = d[p[i] & 15];
  }
  out[2 * n] = 0;
}

static size_t b64enc(const uint8_t *p, size_t n, char *out) {
  static const char t[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0, i = 0;
  for (; i + 2 < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
    out[o++] = t[v >> 18];
    out[o++] = t[(v >> 12) & 63];
    out[o++] = t[(v >> 6) & 63];
    out[o++] = t[v & 63];
  }
  out[o] = 0;
  return o;
}

int tu_buf_contains_any_encoding(const uint8_t *hay, size_t hay_len,
                                 const void *needle, size_t n) {
  const uint8_t *nd = needle;
  if (memmem(hay, hay_len, nd, n))
    return 1;
  char *enc = malloc(2 * n + 8);
  int hit = 0;
  for (int up = 0; up < 2 && !hit; up++) {
    hexenc(nd, n, enc, up);
    hit = memmem(hay, hay_len, enc, 2 * n) != NULL;
  }
  /* base64 at the three alignments: skip 0, 1 or 2 leading bytes so the
   * encoding of the rest is aligned however the needle sat in the stream;
   * match the stable middle part. */
  for (size_t skip = 0; skip < 3 && !hit && n > skip + 6; skip++) {
    size_t m = b64enc(nd + skip, n - skip, enc);
    if (m > 4)
      hit = memmem(hay, hay_len, enc, m - 4 > 8 ? m - 4 : m) != NULL;
  }
  free(enc);
  return hit;
}

int tu_tree_contains(const char *dir, const void *needle, size_t n,
                     char *first_hit) {
  DIR *d = opendir(dir);
  if (d == NULL)
    return 0;
  int hits = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    char child[4096];
    snprintf(child, sizeof child, "%s/%s", dir, e->d_name);
    struct stat st;
    if (lstat(child, &st) != 0)
      continue;
    if (S_ISDIR(st.st_mode)) {
      hits += tu_tree_contains(child, needle, n, hits ? NULL : first_hit);
    } else if (S_ISREG(st.st_mode)) {
      size_t len;
      uint8_t *b = tu_read_file(child, &len);
      if (b && tu_buf_contains_any_encoding(b, len, needle, n)) {
        if (hits == 0 && first_hit)
          snprintf(first_hit, 512, "%s", child);
        hits++;
      }
      free(b);
    }
  }
  closedir(d);
  return hits;
}

int tu_spawn(char *const argv[], const char *log_path) {
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    int fd = open(log_path ? log_path : "/dev/null",
                  O_WRONLY | O_CREAT | O_APPEND, 0600);
    int null = open("/dev/null", O_RDONLY);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    if (null >= 0)
      dup2(null, 0);
    execv(argv[0], argv);
    _exit(127);
  }
  return (int)pid;
}

int tu_stop(int pid, int sig, int timeout_ms) {
  if (pid <= 0)
    return -1;
  kill(pid, sig);
  int status;
  for (int waited = 0;; waited += 10) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid)
      break;
    if (r < 0)
      return -1;
    if (waited >= timeout_ms) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    usleep(10000);
  }
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}

int tu_wait_file(const char *path, int timeout_ms) {
  for (int waited = 0; waited <= timeout_ms; waited += 10) {
    if (access(path, F_OK) == 0)
      return 0;
    usleep(10000);
  }
  return -1;
}
