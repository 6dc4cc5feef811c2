/* Length-prefixed frames: the byte layer of the teex wire protocol.
 *
 * A frame is an 8-byte header — 'T' 'X', version, flags (0), payload length
 * (u32 big-endian) — followed by the payload (one serialized RpcFrame, see
 * docs/protocol.md). The reader is I/O-free and bounded: it holds at most
 * one frame, refuses any length above its maximum before allocating, and
 * never reads past what it is given. */
#ifndef TEEX_FRAME_H
#define TEEX_FRAME_H

#include "teex/buf.h"
#include "teex/error.h"

#include <stddef.h>
#include <stdint.h>

#define TEEX_FRAME_HEADER_SIZE 8
#define TEEX_FRAME_MAGIC0 0x54 /* 'T' */
#define TEEX_FRAME_MAGIC1 0x58 /* 'X' */
#define TEEX_FRAME_VERSION 1
/* Hard maximum payload of one frame. Larger messages are streamed in chunks
 * (RpcChunk), each in its own frame. */
#define TEEX_FRAME_MAX_PAYLOAD (1u << 20)

/* Writes a header for a payload of len bytes. TEEX_ETOOBIG when len is 0 or
 * above TEEX_FRAME_MAX_PAYLOAD. */
int teex_frame_header_encode(uint8_t out[TEEX_FRAME_HEADER_SIZE], size_t len);

/* Checks a header and returns the payload length in *len. Errors: TEEX_EFORMAT
 * (bad magic, nonzero flags, zero length), TEEX_EVERSION, TEEX_ETOOBIG (above
 * max_payload). */
int teex_frame_header_decode(const uint8_t in[TEEX_FRAME_HEADER_SIZE],
                             size_t max_payload, size_t *len,
                             struct teex_err *err);

/* Appends header + payload to out. */
int teex_frame_append(struct teex_buf *out, const uint8_t *payload, size_t len);

struct teex_frame_reader {
  uint8_t hdr[TEEX_FRAME_HEADER_SIZE];
  size_t hdr_len; /* header bytes gathered */
  size_t need;    /* payload length of the current frame */
  int in_payload; /* header complete */
  int have_frame; /* the last returned frame lives in buf */
  int failed;     /* a bad header was seen: the stream is dead */
  size_t max_payload;
  struct teex_buf buf; /* a partial payload, at most max_payload bytes */
};

/* max_payload 0 means TEEX_FRAME_MAX_PAYLOAD. */
void teex_frame_reader_init(struct teex_frame_reader *r, size_t max_payload);
void teex_frame_reader_free(struct teex_frame_reader *r);

/* Consumes bytes from (*in, *in_len) — advancing both — until one frame is
 * complete. Returns 1 with the payload in (*frame, *frame_len) (borrowed:
 * valid until the next call or the next change to the input), 0 when all
 * input was consumed without completing a frame, or a negative code on a bad
 * header, after which every call fails (the stream cannot be resynchronised).
 */
int teex_frame_reader_next(struct teex_frame_reader *r, const uint8_t **in,
                           size_t *in_len, const uint8_t **frame,
                           size_t *frame_len, struct teex_err *err);

/* 1 when a frame is partly received (for "peer vanished mid-frame"). */
int teex_frame_reader_partial(const struct teex_frame_reader *r);

#endif
