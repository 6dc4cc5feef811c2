/* The dispatcher's task records in its sealed store: a fixed layout of
 * fields back to back (big-endian integers). The store authenticates
 * records; the decoder still checks every length and value range. */
#include "dispatcher/state.h"

#include "teex/error.h"

#include <string.h>

struct cur {
  const uint8_t *p;
  size_t n, off;
  int bad;
};

static void get(struct cur *c, void *out, size_t n) {
  if (c->bad || c->n - c->off < n) {
    c->bad = 1;
    memset(out, 0, n);
    return;
  }
  memcpy(out, c->p + c->off, n);
  c->off += n;
}

static uint64_t get64(struct cur *c) {
  uint8_t b[8];
  get(c, b, 8);
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | b[i];
  return v;
}

static uint8_t get8(struct cur *c) {
  uint8_t v;
  get(c, &v, 1);
  return v;
}

static teex_amount get_amount(struct cur *c) {
  uint8_t w[32];
  teex_amount v = 0;
  get(c, w, 32);
  if (!c->bad && teex_amount_from_word(w, &v) != 0)
    c->bad = 1;
  return v;
}

static size_t put(uint8_t *out, size_t off, const void *p, size_t n) {
  memcpy(out + off, p, n);
  return off + n;
}

static size_t put64(uint8_t *out, size_t off, uint64_t v) {
  for (int i = 0; i < 8; i++)
    out[off + (size_t)i] = (uint8_t)(v >> (56 - 8 * i));
  return off + 8;
}

static size_t put_amount(uint8_t *out, size_t off, teex_amount v) {
  teex_amount_word(v, out + off);
  return off + 32;
}

void dsp_receipt_encode(const struct teex_receipt *r, const uint8_t sig[65],
                        uint8_t out[DSP_RECEIPT_LEN]) {
  size_t o = 0;
  o = put(out, o, r->task_id, 32);
  o = put(out, o, r->service_id, 32);
  o = put(out, o, r->image_hash, 32);
  o = put(out, o, r->user, 20);
  o = put(out, o, r->dispatcher, 20);
  o = put(out, o, r->worker, 20);
  o = put(out, o, r->provider, 20);
  o = put(out, o, r->input_commitment, 32);
  o = put(out, o, r->output_commitment, 32);
  o = put(out, o, r->price, 32);
  o = put(out, o, r->worker_amount, 32);
  o = put(out, o, r->provider_amount, 32);
  put(out, o, sig, 65);
}

void dsp_receipt_decode(const uint8_t in[DSP_RECEIPT_LEN],
                        struct teex_receipt *r, uint8_t sig[65]) {
  struct cur c = {in, DSP_RECEIPT_LEN, 0, 0};
  memset(r, 0, sizeof *r);
  get(&c, r->task_id, 32);
  get(&c, r->service_id, 32);
  get(&c, r->image_hash, 32);
  get(&c, r->user, 20);
  get(&c, r->dispatcher, 20);
  get(&c, r->worker, 20);
  get(&c, r->provider, 20);
  get(&c, r->input_commitment, 32);
  get(&c, r->output_commitment, 32);
  get(&c, r->price, 32);
  get(&c, r->worker_amount, 32);
  get(&c, r->provider_amount, 32);
  get(&c, sig, 65);
}

#define REC_VERSION 1

size_t dsp_task_encode(const struct dsp_task *t, uint8_t *out) {
  size_t o = 0;
  out[o++] = REC_VERSION;
  out[o++] = t->state;
  o = put64(out, o, t->seq);
  const struct teex_payment_auth *a = &t->auth;
  o = put(out, o, a->user, 20);
  o = put(out, o, a->dispatcher, 20);
  o = put(out, o, a->task_id, 32);
  o = put(out, o, a->service_id, 32);
  o = put(out, o, a->image_hash, 32);
  o = put(out, o, a->datasets_hash, 32);
  o = put_amount(out, o, a->price);
  o = put_amount(out, o, a->cumulative);
  o = put(out, o, a->sig, 65);
  o = put(out, o, t->svc.provider, 20);
  o = put_amount(out, o, t->svc.price);
  o = put_amount(out, o, t->svc.remuneration);
  o = put(out, o, t->worker, 20);
  out[o++] = t->nassigned;
  for (unsigned i = 0; i < t->nassigned; i++)
    o = put(out, o, t->assigned[i], 20);
  out[o++] = t->nfailed;
  for (unsigned i = 0; i < t->nfailed; i++)
    o = put(out, o, t->failed[i], 20);
  o = put64(out, o, t->expires_at);
  o = put64(out, o, t->fail_at);
  o = put64(out, o, t->deadline);
  o = put(out, o, t->asig, 65);
  out[o++] = (uint8_t)(t->has_receipt != 0);
  if (t->has_receipt) {
    dsp_receipt_encode(&t->rcpt, t->rsig, out + o);
    o += DSP_RECEIPT_LEN;
  }
  /* Datasets are appended only when there are some, so a record of a task
   * without datasets is byte for byte what it was before datasets. */
  if (t->nds > 0) {
    out[o++] = t->nds;
    for (unsigned i = 0; i < t->nds; i++) {
      o = put(out, o, t->ds[i].dataset_id, 32);
      o = put(out, o, t->ds[i].payee, 20);
      o = put(out, o, t->ds[i].amount, 32);
    }
  }
  return o;
}

int dsp_task_decode(const uint8_t *p, size_t n, struct dsp_task *t) {
  struct cur c = {p, n, 0, 0};
  memset(t, 0, sizeof *t);
  if (get8(&c) != REC_VERSION)
    return TEEX_EFORMAT;
  t->state = get8(&c);
  t->seq = get64(&c);
  struct teex_payment_auth *a = &t->auth;
  get(&c, a->user, 20);
  get(&c, a->dispatcher, 20);
  get(&c, a->task_id, 32);
  get(&c, a->service_id, 32);
  get(&c, a->image_hash, 32);
  get(&c, a->datasets_hash, 32);
  a->price = get_amount(&c);
  a->cumulative = get_amount(&c);
  get(&c, a->sig, 65);
  get(&c, t->svc.provider, 20);
  t->svc.price = get_amount(&c);
  t->svc.remuneration = get_amount(&c);
  get(&c, t->worker, 20);
  t->nassigned = get8(&c);
  if (t->nassigned > DSP_MAX_ASSIGNED)
    return TEEX_EFORMAT;
  for (unsigned i = 0; i < t->nassigned; i++)
    get(&c, t->assigned[i], 20);
  t->nfailed = get8(&c);
  if (t->nfailed > TEEX_SCHED_EXCLUDE_MAX)
    return TEEX_EFORMAT;
  for (unsigned i = 0; i < t->nfailed; i++)
    get(&c, t->failed[i], 20);
  t->expires_at = get64(&c);
  t->fail_at = get64(&c);
  t->deadline = get64(&c);
  get(&c, t->asig, 65);
  t->has_receipt = get8(&c);
  if (t->has_receipt > 1)
    return TEEX_EFORMAT;
  if (t->has_receipt) {
    uint8_t r[DSP_RECEIPT_LEN];
    get(&c, r, sizeof r);
    if (!c.bad)
      dsp_receipt_decode(r, &t->rcpt, t->rsig);
  }
  if (!c.bad && c.off < n) {
    t->nds = get8(&c);
    if (t->nds == 0 || t->nds > TEEX_EXEC_DATASETS_MAX)
      return TEEX_EFORMAT;
    for (unsigned i = 0; i < t->nds; i++) {
      get(&c, t->ds[i].dataset_id, 32);
      get(&c, t->ds[i].payee, 20);
      get(&c, t->ds[i].amount, 32);
    }
    if (t->has_receipt) {
      t->rcpt.shares = t->ds;
      t->rcpt.nshares = t->nds;
    }
  }
  if (c.bad || c.off != n || t->state < DSP_QUEUED || t->state > DSP_FAILED)
    return TEEX_EFORMAT;
  return 0;
}

/* ---- in-flight batches ---- */

size_t dsp_inflight_len(const struct dsp_inflight *f) {
  return 64 + 1 + strlen(f->cid) + 4 +
         (size_t)f->nusers * DSP_INFLIGHT_USER_LEN + 4 + 32 * (size_t)f->ntasks;
}

static void put_u32be(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static uint32_t get_u32be(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         p[3];
}

void dsp_inflight_encode(const struct dsp_inflight *f, uint8_t *out) {
  size_t o = 0, cidlen = strlen(f->cid);
  memcpy(out, f->batch_id, 32);
  memcpy(out + 32, f->root, 32);
  o = 64;
  out[o++] = (uint8_t)cidlen;
  memcpy(out + o, f->cid, cidlen);
  o += cidlen;
  put_u32be(out + o, f->nusers);
  o += 4;
  memcpy(out + o, f->users, (size_t)f->nusers * DSP_INFLIGHT_USER_LEN);
  o += (size_t)f->nusers * DSP_INFLIGHT_USER_LEN;
  put_u32be(out + o, f->ntasks);
  o += 4;
  memcpy(out + o, f->tasks, 32 * (size_t)f->ntasks);
}

int dsp_inflight_decode(const uint8_t *p, size_t n, uint32_t max,
                        struct dsp_inflight *out) {
  memset(out, 0, sizeof *out);
  if (n < 65)
    return TEEX_EFORMAT;
  size_t cidlen = p[64], o = 65;
  if (cidlen >= TEEX_CID_STR_SIZE || n - o < cidlen + 4 ||
      memchr(p + o, 0, cidlen) != NULL)
    return TEEX_EFORMAT;
  memcpy(out->batch_id, p, 32);
  memcpy(out->root, p + 32, 32);
  memcpy(out->cid, p + o, cidlen);
  out->cid[cidlen] = '\0';
  o += cidlen;
  out->nusers = get_u32be(p + o);
  o += 4;
  if (out->nusers > max ||
      n - o < (size_t)out->nusers * DSP_INFLIGHT_USER_LEN + 4)
    return TEEX_EFORMAT;
  out->users = p + o;
  o += (size_t)out->nusers * DSP_INFLIGHT_USER_LEN;
  out->ntasks = get_u32be(p + o);
  o += 4;
  if (out->ntasks == 0 || out->ntasks > max ||
      n - o != 32 * (size_t)out->ntasks)
    return TEEX_EFORMAT;
  out->tasks = p + o;
  return 0;
}
