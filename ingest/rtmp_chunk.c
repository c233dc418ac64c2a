/*
 * ingest/rtmp_chunk.c - RTMP chunk stream: a pure parser and a writer.
 *
 * The parser turns the peer's byte stream into messages without touching
 * a socket: the caller feeds bytes, gets one message at a time, "need
 * more", or an error. Invariants:
 * - A chunk header is consumed only once it is complete (basic header,
 *   message header and extended timestamp), so the caller never needs to
 *   keep more than RTMP_MAX_CHUNK_HEADER - 1 unconsumed bytes; payload
 *   bytes are copied as they come, so any receive buffer size works.
 * - Header state of a chunk stream changes only when a header was fully
 *   read; timestamps are 32-bit and wrap (unsigned arithmetic), deltas of
 *   type 1/2/3 headers included. A type 3 chunk carries the extended
 *   timestamp whenever the last header of its chunk stream did (librtmp
 *   and ffmpeg send it on continuations too).
 * - Limits: at most RTMP_MAX_CSIDS chunk streams, messages up to
 *   max_msg_size, chunk sizes up to max_chunk_size, reassembly buffers up
 *   to max_buffered bytes in all (one maximal message plus
 *   RTMP_CONN_EXTRA_BUFFERED: buffers grow with the bytes that really
 *   arrived, never with the length a header announces), and, when the
 *   parser shares an rtmp_budget_t, every byte it holds is charged there
 *   first, so all the connections together stay under one limit.
 */
#include "ingest_int.h"

#include "../core/err.h"

#include <stdlib.h>
#include <string.h>

/* A buffer larger than this is released once its message was handed out,
 * so idle chunk streams do not pin big allocations. */
#define KEEP_BUF_MAX (64 * 1024)

static uint32_t rd24(const uint8_t *p)
{
    return ((uint32_t)p[0] << 16) | ((uint32_t)p[1] << 8) | p[2];
}

static uint32_t rd32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | p[3];
}

static uint32_t rd32le(const uint8_t *p)
{
    return ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[1] << 8) | p[0];
}

static int fail(rtmp_chunk_parser_t *p, int code, const char *why)
{
    p->error = why;
    return code;
}

void rtmp_chunk_parser_init(rtmp_chunk_parser_t *p, uint32_t max_chunk_size,
                            uint32_t max_msg_size, rtmp_budget_t *shared)
{
    memset(p, 0, sizeof(*p));
    p->chunk_size = RTMP_DEFAULT_CHUNK_SIZE;
    p->max_chunk_size = max_chunk_size;
    p->max_msg_size = max_msg_size;
    /* one maximal message in progress plus the small kept buffers of the
     * other chunk streams (audio, commands, control) alongside */
    p->max_buffered = (size_t)max_msg_size + RTMP_CONN_EXTRA_BUFFERED;
    p->shared = shared;
}

static void cs_release(rtmp_chunk_parser_t *p, rtmp_cs_t *cs)
{
    free(cs->buf);
    p->buffered -= cs->cap;
    if (p->shared && cs->cap)
        atomic_fetch_sub(&p->shared->used, (size_t)cs->cap);
    cs->buf = NULL;
    cs->cap = 0;
}

void rtmp_chunk_parser_free(rtmp_chunk_parser_t *p)
{
    for (int i = 0; i < p->ncs; i++)
        cs_release(p, &p->cs[i]);
    p->ncs = 0;
    p->cur = NULL;
    p->shrink = NULL;
}

static rtmp_cs_t *cs_find(rtmp_chunk_parser_t *p, uint32_t csid)
{
    for (int i = 0; i < p->ncs; i++)
        if (p->cs[i].csid == csid)
            return &p->cs[i];
    return NULL;
}

/* Makes room for `more` bytes after cs->got (growing geometrically up to
 * the message length). */
static int cs_reserve(rtmp_chunk_parser_t *p, rtmp_cs_t *cs, uint32_t more)
{
    uint32_t needed = cs->got + more;
    if (needed <= cs->cap)
        return 0;
    uint64_t ncap = (uint64_t)cs->cap * 2;
    if (ncap < needed)
        ncap = needed;
    if (ncap < 256)
        ncap = 256;
    if (ncap > cs->msg_len)
        ncap = cs->msg_len;
    if (ncap < needed)
        ncap = needed;
    if (p->buffered - cs->cap + ncap > p->max_buffered)
        return fail(p, PD_ELIMIT, "reassembly buffers over their limit");
    size_t grow = (size_t)ncap - cs->cap;
    if (p->shared) {
        size_t before = atomic_fetch_add(&p->shared->used, grow);
        if (before + grow > p->shared->limit) {
            atomic_fetch_sub(&p->shared->used, grow);
            return fail(p, PD_ELIMIT,
                        "reassembly buffers over the server-wide limit");
        }
    }
    uint8_t *nb = realloc(cs->buf, (size_t)ncap);
    if (!nb) {
        if (p->shared)
            atomic_fetch_sub(&p->shared->used, grow);
        return fail(p, PD_ENOMEM, "out of memory");
    }
    p->buffered = p->buffered - cs->cap + (size_t)ncap;
    cs->buf = nb;
    cs->cap = (uint32_t)ncap;
    return 0;
}

/* Protocol control messages that change how chunks are read. */
static int apply_control(rtmp_chunk_parser_t *p, const rtmp_msg_t *m)
{
    if (m->type == RTMP_MSG_SET_CHUNK_SIZE) {
        if (m->len < 4)
            return fail(p, PD_EPROTO, "short Set Chunk Size");
        uint32_t v = rd32(m->payload);
        if (v & 0x80000000u || v == 0)
            return fail(p, PD_EPROTO, "invalid Set Chunk Size");
        if (v > p->max_chunk_size)
            return fail(p, PD_ELIMIT, "Set Chunk Size above the limit");
        p->chunk_size = v;
    } else if (m->type == RTMP_MSG_ABORT) {
        if (m->len < 4)
            return fail(p, PD_EPROTO, "short Abort message");
        rtmp_cs_t *cs = cs_find(p, rd32(m->payload));
        if (cs && cs != p->cur) {
            cs->in_msg = false;
            cs->got = 0;
        }
    }
    return 0;
}

/* Reads one complete chunk header at buf[0..len). Returns its length, 0
 * when incomplete, or an error. On success p->cur/chunk_left are set. */
static int parse_header(rtmp_chunk_parser_t *p, const uint8_t *buf, size_t len)
{
    if (len < 1)
        return 0;
    int fmt = buf[0] >> 6;
    uint32_t csid = buf[0] & 0x3F;
    size_t pos = 1;
    if (csid == 0) {
        if (len < 2)
            return 0;
        csid = 64 + (uint32_t)buf[1];
        pos = 2;
    } else if (csid == 1) {
        if (len < 3)
            return 0;
        csid = 64 + (uint32_t)buf[1] + ((uint32_t)buf[2] << 8);
        pos = 3;
    }
    static const size_t mh_len[4] = {11, 7, 3, 0};
    if (len - pos < mh_len[fmt])
        return 0;
    const uint8_t *mh = buf + pos;
    pos += mh_len[fmt];

    rtmp_cs_t *cs = cs_find(p, csid);
    if (!cs) {
        /* types 1-3 need a previous header (1: the stream id) */
        if (fmt != 0)
            return fail(p, PD_EPROTO, "first chunk of a stream not type 0");
        if (p->ncs == RTMP_MAX_CSIDS)
            return fail(p, PD_ELIMIT, "too many chunk streams");
    } else if (cs->in_msg && fmt != 3) {
        return fail(p, PD_EPROTO, "new header inside a message");
    }

    /* Fields of this header; committed only once it is complete. */
    uint32_t field = 0; /* timestamp (type 0) or delta (1, 2) */
    bool ext;
    if (fmt < 3) {
        field = rd24(mh);
        ext = field == 0xFFFFFF;
    } else {
        ext = cs->ext;
    }
    if (ext) {
        if (len - pos < 4)
            return 0;
        uint32_t e = rd32(buf + pos);
        pos += 4;
        if (fmt < 3 || !cs->in_msg)
            field = e;
        /* on a continuation the value repeats the message's: ignored */
    } else if (fmt == 3) {
        field = cs->delta;
    }

    if (!cs) {
        cs = &p->cs[p->ncs++];
        memset(cs, 0, sizeof(*cs));
        cs->csid = csid;
    }
    cs->ext = ext;
    if (fmt == 3 && cs->in_msg) {
        /* continuation: nothing else changes */
    } else {
        switch (fmt) {
        case 0:
            cs->timestamp = field;
            cs->delta = field; /* a type 3 after type 0 repeats it */
            cs->msg_len = rd24(mh + 3);
            cs->msg_type = mh[6];
            cs->stream_id = rd32le(mh + 7);
            break;
        case 1:
            cs->msg_len = rd24(mh + 3);
            cs->msg_type = mh[6];
            /* fall through */
        case 2:
        case 3:
            cs->delta = field;
            cs->timestamp += field; /* wraps: 32-bit arithmetic */
            break;
        }
        if (cs->msg_len > p->max_msg_size)
            return fail(p, PD_ELIMIT, "message larger than the limit");
        cs->in_msg = true;
        cs->got = 0;
    }
    uint32_t left = cs->msg_len - cs->got;
    p->chunk_left = left < p->chunk_size ? left : p->chunk_size;
    p->cur = cs;
    return (int)pos;
}

int rtmp_chunk_parse(rtmp_chunk_parser_t *p, const uint8_t *buf, size_t len,
                     size_t *used, rtmp_msg_t *msg)
{
    size_t pos = 0;
    *used = 0;
    if (p->shrink) {
        if (!p->shrink->in_msg && p->shrink->cap > KEEP_BUF_MAX)
            cs_release(p, p->shrink);
        p->shrink = NULL;
    }
    for (;;) {
        if (!p->cur) {
            int h = parse_header(p, buf + pos, len - pos);
            if (h < 0) {
                *used = pos;
                return h;
            }
            if (h == 0) {
                *used = pos;
                return 0;
            }
            pos += (size_t)h;
            int rc = cs_reserve(p, p->cur, p->chunk_left);
            if (rc) {
                *used = pos;
                return rc;
            }
        }
        rtmp_cs_t *cs = p->cur;
        size_t n = len - pos;
        if (n > p->chunk_left)
            n = p->chunk_left;
        if (n) {
            memcpy(cs->buf + cs->got, buf + pos, n);
            cs->got += (uint32_t)n;
            pos += n;
            p->chunk_left -= (uint32_t)n;
        }
        if (p->chunk_left > 0) {
            *used = pos;
            return 0; /* the chunk's payload continues in the next read */
        }
        p->cur = NULL;
        if (cs->got < cs->msg_len)
            continue; /* more chunks to come for this message */
        cs->in_msg = false;
        cs->got = 0;
        msg->csid = cs->csid;
        msg->type = cs->msg_type;
        msg->stream_id = cs->stream_id;
        msg->timestamp = cs->timestamp;
        msg->payload = cs->buf;
        msg->len = cs->msg_len;
        p->shrink = cs;
        *used = pos;
        int rc = apply_control(p, msg);
        return rc ? rc : 1;
    }
}

/* ---- writer ------------------------------------------------------------ */

int rtmp_chunk_basic_header(uint8_t *out, int fmt, uint32_t csid)
{
    if (fmt < 0 || fmt > 3 || csid < 2 || csid > RTMP_MAX_CSID)
        return PD_EINVAL;
    uint8_t f = (uint8_t)(fmt << 6);
    if (csid < 64) {
        out[0] = f | (uint8_t)csid;
        return 1;
    }
    if (csid < 64 + 256) {
        out[0] = f;
        out[1] = (uint8_t)(csid - 64);
        return 2;
    }
    out[0] = f | 1;
    out[1] = (uint8_t)((csid - 64) & 0xFF);
    out[2] = (uint8_t)((csid - 64) >> 8);
    return 3;
}

static void wr24(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 16);
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)v;
}

static void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    wr24(p + 1, v);
}

int rtmp_chunk_write(uint8_t *out, size_t cap, uint32_t csid, uint8_t type,
                     uint32_t stream_id, uint32_t ts, const uint8_t *payload,
                     size_t plen, uint32_t chunk_size)
{
    if (chunk_size < 1 || plen > 0xFFFFFF)
        return PD_EINVAL;
    bool ext = ts >= 0xFFFFFF;
    size_t pos = 0, off = 0;
    uint8_t hdr[RTMP_MAX_CHUNK_HEADER];
    do {
        int fmt = off == 0 ? 0 : 3;
        int h = rtmp_chunk_basic_header(hdr, fmt, csid);
        if (h < 0)
            return h;
        size_t hl = (size_t)h;
        if (fmt == 0) {
            wr24(hdr + hl, ext ? 0xFFFFFF : ts);
            wr24(hdr + hl + 3, (uint32_t)plen);
            hdr[hl + 6] = type;
            hdr[hl + 7] = (uint8_t)stream_id; /* little endian */
            hdr[hl + 8] = (uint8_t)(stream_id >> 8);
            hdr[hl + 9] = (uint8_t)(stream_id >> 16);
            hdr[hl + 10] = (uint8_t)(stream_id >> 24);
            hl += 11;
        }
        if (ext) {
            wr32(hdr + hl, ts);
            hl += 4;
        }
        size_t n = plen - off < chunk_size ? plen - off : chunk_size;
        if (cap - pos < hl + n)
            return PD_ELIMIT;
        memcpy(out + pos, hdr, hl);
        pos += hl;
        if (n)
            memcpy(out + pos, payload + off, n);
        pos += n;
        off += n;
    } while (off < plen);
    if (pos > 0x7FFFFFFF)
        return PD_ELIMIT;
    return (int)pos;
}
