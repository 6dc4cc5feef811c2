/* Internal: the dispatcher's records and their sealed-store encoding. */
#ifndef TEEX_DISPATCHER_STATE_H
#define TEEX_DISPATCHER_STATE_H

#include "teex/dispatcher.h"
#include "teex/executor.h"
#include "teex/ipfs.h"
#include "teex/scheduler.h"

#include <stddef.h>
#include <stdint.h>

enum dsp_task_state {
  DSP_QUEUED = 1,   /* accepted, waiting for a worker slot */
  DSP_ASSIGNED = 2, /* a worker holds an assignment */
  DSP_EARNED = 3,   /* a valid receipt came back */
  DSP_FAILED = 4    /* never ran: nothing charged */
};

struct teex_rpc_call;

#define DSP_MAX_ASSIGNED (TEEX_SCHED_EXCLUDE_MAX + 1)
#define DSP_ENDPOINT_MAX 255

struct dsp_task {
  uint64_t seq; /* acceptance order; the store key */
  uint32_t gen; /* the slot's reuse count when this task took it */
  uint32_t idx; /* its slot */
  uint8_t used;
  uint8_t state;
  struct teex_payment_auth auth;
  struct teex_dispatcher_service svc;
  uint8_t worker[20]; /* the current (last) assignment */
  uint8_t assigned[DSP_MAX_ASSIGNED][20];
  uint8_t nassigned;
  uint8_t failed[TEEX_SCHED_EXCLUDE_MAX][20];
  uint8_t nfailed;
  uint64_t expires_at; /* unix s of the current assignment */
  uint64_t fail_at;    /* unix s: no receipt by then, the task fails */
  uint64_t deadline;   /* the user's, unix s (0 none) */
  uint8_t asig[65];
  /* The task's datasets in order, each with the payee and price read from
   * its listing when the task was accepted: what the receipt's data shares
   * must be. */
  uint8_t nds;
  struct teex_data_share ds[TEEX_EXEC_DATASETS_MAX];
  int has_receipt;
  struct teex_receipt rcpt; /* its shares point at ds */
  uint8_t rsig[65];
  /* not persisted */
  int holds_slot;
  uint32_t handle;
  struct teex_rpc_call *waiting; /* a Submit queued for a slot */
};

/* Encodes a task record; returns its length (at most DSP_TASK_REC_MAX). */
#define DSP_TASK_REC_MAX 4096
size_t dsp_task_encode(const struct dsp_task *t, uint8_t *out);
/* Decodes; TEEX_EFORMAT when it does not parse. */
int dsp_task_decode(const uint8_t *p, size_t n, struct dsp_task *t);

#define DSP_RECEIPT_LEN (32 * 3 + 20 * 4 + 32 * 2 + 32 * 3 + 65)
void dsp_receipt_encode(const struct teex_receipt *r, const uint8_t sig[65],
                        uint8_t out[DSP_RECEIPT_LEN]);
void dsp_receipt_decode(const uint8_t in[DSP_RECEIPT_LEN],
                        struct teex_receipt *r, uint8_t sig[65]);

/* A batch sent to the chain and not yet recorded ("f/<seq>"): batch id |
 * root | cid length (1) | cid | users (u32 BE) | per user: address (20) |
 * settled cumulative (32, BE) | tasks (u32 BE) | their task ids (32 each),
 * in leaf order. Decoded, users and tasks point into the record. */
#define DSP_INFLIGHT_USER_LEN 52
struct dsp_inflight {
  uint8_t batch_id[32];
  uint8_t root[32];
  char cid[TEEX_CID_STR_SIZE];
  uint32_t nusers;
  const uint8_t *users; /* nusers * DSP_INFLIGHT_USER_LEN bytes */
  uint32_t ntasks;      /* at least 1 */
  const uint8_t *tasks; /* ntasks * 32 bytes */
};
/* Its encoded length. */
size_t dsp_inflight_len(const struct dsp_inflight *f);
/* Encodes f into out (dsp_inflight_len bytes). */
void dsp_inflight_encode(const struct dsp_inflight *f, uint8_t *out);
/* Decodes p; at most max entries of users and of tasks. TEEX_EFORMAT when
 * it does not parse exactly. */
int dsp_inflight_decode(const uint8_t *p, size_t n, uint32_t max,
                        struct dsp_inflight *out);

#endif
