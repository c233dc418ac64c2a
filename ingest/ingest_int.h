/*
 * ingest/ingest_int.h - internals shared by the RTMP server's files.
 *
 * The server (rtmp_server.c) owns sockets and threads; everything it parses
 * lives in pure functions over byte buffers so the unit tests reach them
 * without sockets:
 *   amf0.c            AMF0 encoder and decoder (bounded depth and size)
 *   rtmp_chunk.c      chunk stream parser and writer
 *   rtmp_handshake.c  C0/C1 -> S0/S1/S2, plain and HMAC-SHA256 digest
 *   flv.c             FLV audio/video tag headers, timestamp unwrapping
 *
 * Invariants: every parser takes an explicit length, never reads past it,
 * and reports truncation, oversize and protocol violations as PD_ codes
 * (PD_EPROTO malformed, PD_ELIMIT a limit hit). None of these functions
 * logs; the caller (the connection thread) logs once with the peer.
 * Threads: all of it is per connection; nothing here is shared, except
 * an rtmp_budget_t (an atomic counter) that many parsers may charge.
 */
#ifndef INGEST_INGEST_INT_H
#define INGEST_INGEST_INT_H

#include "ingest.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ==== AMF0 ============================================================= */

typedef enum {
    AMF0_NUMBER = 0x00,
    AMF0_BOOLEAN = 0x01,
    AMF0_STRING = 0x02,
    AMF0_OBJECT = 0x03,
    AMF0_NULL = 0x05,
    AMF0_UNDEFINED = 0x06,
    AMF0_REFERENCE = 0x07, /* decoded as an opaque index, never resolved */
    AMF0_ECMA_ARRAY = 0x08,
    AMF0_OBJECT_END = 0x09, /* only as a terminator, never a value */
    AMF0_STRICT_ARRAY = 0x0A,
    AMF0_DATE = 0x0B,
    AMF0_LONG_STRING = 0x0C,
} amf0_type_t;

#define AMF0_MAX_DEPTH 32 /* nesting of objects/arrays */
/* Value budget of one RTMP command or data message, shared by all the
 * values it holds (connect, publish and onMetaData need a few dozen). */
#define AMF0_MSG_VALUES 4096

typedef struct amf0_value_s amf0_value_t;

/* One entry of an object / ECMA array (key set) or strict array (key
 * NULL). */
typedef struct amf0_prop_s {
    char *key;      /* NUL-terminated copy (may hold embedded NULs:
                       key_len is authoritative); NULL in strict arrays */
    size_t key_len; /* bytes */
    amf0_value_t *val;
} amf0_prop_t;

struct amf0_value_s {
    amf0_type_t type;
    double num;          /* NUMBER; DATE: ms since the epoch */
    int16_t tz;          /* DATE: timezone field (ignored by everyone) */
    bool boolean;        /* BOOLEAN */
    uint16_t ref;        /* REFERENCE: the index, not resolved */
    char *str;           /* STRING, LONG_STRING: NUL-terminated copy */
    size_t str_len;      /* bytes, without the NUL */
    uint32_t ecma_count; /* ECMA_ARRAY: the declared count (advisory) */
    amf0_prop_t *props;  /* OBJECT, ECMA_ARRAY, STRICT_ARRAY */
    size_t nprops;
    size_t props_cap;
};

/* Decodes one value from buf[*pos..len) and advances *pos past it.
 * *budget is the number of values (every number, string, object, array
 * element, ...) the caller still allows; each value decoded spends one.
 * Pass the same budget to every call decoding values of one message, so
 * the whole message is bounded, not each value. Returns 0 and a new tree
 * in *out (free with amf0_free), PD_EAGAIN if the buffer ends inside the
 * value (truncated), PD_EPROTO for malformed input (unknown marker, stray
 * object end), PD_ELIMIT for nesting deeper than AMF0_MAX_DEPTH or a
 * spent budget, PD_EINVAL (NULL buf or budget, *pos > len), PD_ENOMEM.
 * On error *pos and *budget are unchanged and *out NULL. Borrows buf. */
int amf0_decode(const uint8_t *buf, size_t len, size_t *pos, size_t *budget,
                amf0_value_t **out);

/* Frees a tree; *v set to NULL. v and *v may be NULL. */
void amf0_free(amf0_value_t **v);

/* Object / ECMA array property lookup by key (first match), or NULL.
 * Borrows; the result lives as long as obj. */
const amf0_value_t *amf0_get(const amf0_value_t *obj, const char *key);

/* The string of a STRING/LONG_STRING value (and its length), or NULL. */
const char *amf0_str(const amf0_value_t *v, size_t *len);

/* The number of a NUMBER value into *out; returns false otherwise. */
bool amf0_num(const amf0_value_t *v, double *out);

/* Encoder into a caller-owned fixed buffer. An encoder call that does not
 * fit sets overflow and writes nothing more; check with amf0_wr_status()
 * once at the end. */
typedef struct amf0_wr_s {
    uint8_t *buf;
    size_t cap; /* bytes */
    size_t len; /* bytes written */
    bool overflow;
} amf0_wr_t;

void amf0_wr_init(amf0_wr_t *w, uint8_t *buf, size_t cap);
int amf0_wr_status(const amf0_wr_t *w); /* 0 or PD_ELIMIT */
void amf0_put_number(amf0_wr_t *w, double v);
void amf0_put_bool(amf0_wr_t *w, bool v);
/* STRING when len <= 65535, else LONG_STRING. Borrows s. */
void amf0_put_string(amf0_wr_t *w, const char *s, size_t len);
void amf0_put_cstr(amf0_wr_t *w, const char *s);
void amf0_put_null(amf0_wr_t *w);
void amf0_put_undefined(amf0_wr_t *w);
void amf0_put_date(amf0_wr_t *w, double ms, int16_t tz);
void amf0_put_object_start(amf0_wr_t *w);
void amf0_put_ecma_start(amf0_wr_t *w, uint32_t count);
void amf0_put_strict_array_start(amf0_wr_t *w, uint32_t count);
/* A property key inside an object/ECMA array (u16 length + bytes; keys
 * longer than 65535 bytes set overflow). */
void amf0_put_key(amf0_wr_t *w, const char *key, size_t len);
/* Empty key + OBJECT_END marker: closes an object or ECMA array. */
void amf0_put_object_end(amf0_wr_t *w);
/* Shorthands for {key: value} properties. */
void amf0_put_prop_cstr(amf0_wr_t *w, const char *key, const char *val);
void amf0_put_prop_number(amf0_wr_t *w, const char *key, double val);
/* Encodes a decoded tree (REFERENCE encodes its index). */
void amf0_put_value(amf0_wr_t *w, const amf0_value_t *v);

/* ==== RTMP chunk stream ================================================ */

#define RTMP_DEFAULT_CHUNK_SIZE 128
#define RTMP_MAX_CSIDS 64        /* distinct chunk streams per connection */
#define RTMP_MAX_CSID 65599      /* largest id a 3-byte basic header holds */
#define RTMP_MAX_CHUNK_HEADER 18 /* 3 basic + 11 message + 4 extended */

enum {
    RTMP_MSG_SET_CHUNK_SIZE = 1,
    RTMP_MSG_ABORT = 2,
    RTMP_MSG_ACK = 3,
    RTMP_MSG_USER_CONTROL = 4,
    RTMP_MSG_WINDOW_ACK_SIZE = 5,
    RTMP_MSG_SET_PEER_BW = 6,
    RTMP_MSG_AUDIO = 8,
    RTMP_MSG_VIDEO = 9,
    RTMP_MSG_DATA_AMF3 = 15,
    RTMP_MSG_COMMAND_AMF3 = 17,
    RTMP_MSG_DATA_AMF0 = 18,
    RTMP_MSG_COMMAND_AMF0 = 20,
    RTMP_MSG_AGGREGATE = 22,
};

/* A complete message. payload is borrowed from the parser and valid until
 * the next rtmp_chunk_parse()/rtmp_chunk_parser_free() call. */
typedef struct rtmp_msg_s {
    uint32_t csid;      /* chunk stream it arrived on */
    uint8_t type;       /* RTMP_MSG_* */
    uint32_t stream_id; /* message stream id */
    uint32_t timestamp; /* ms, 32-bit, wraps (deltas already applied) */
    const uint8_t *payload;
    uint32_t len; /* bytes */
} rtmp_msg_t;

/* Reassembly state of one chunk stream. */
typedef struct rtmp_cs_s {
    uint32_t csid;
    uint32_t timestamp; /* ms: of the message in progress / the last one */
    uint32_t delta;     /* ms: last timestamp delta (type 0: its time) */
    uint32_t msg_len;   /* bytes of the message in progress / the last */
    uint8_t msg_type;
    uint32_t stream_id;
    bool ext;     /* the last header carried an extended timestamp */
    bool in_msg;  /* a message is being reassembled */
    uint32_t got; /* bytes of it received */
    uint8_t *buf; /* reassembly buffer */
    uint32_t cap; /* bytes allocated in buf */
} rtmp_cs_t;

/* Reassembly bytes shared by many parsers (the whole server): a parser
 * that would take `used` above `limit` fails instead. Thread-safe (one
 * atomic counter); outlives every parser pointing at it. */
typedef struct rtmp_budget_s {
    atomic_size_t used; /* bytes: held by all the parsers sharing it */
    size_t limit;       /* bytes */
} rtmp_budget_t;

/* Extra reassembly bytes a connection may hold beside one message of
 * max_msg_size: the kept buffers of its small chunk streams (audio,
 * commands, data, control), each at most 64 KiB. */
#define RTMP_CONN_EXTRA_BUFFERED (512 * 1024)

typedef struct rtmp_chunk_parser_s {
    uint32_t chunk_size;     /* bytes: the peer's current chunk size */
    uint32_t max_chunk_size; /* bytes: largest Set Chunk Size accepted */
    uint32_t max_msg_size;   /* bytes: largest message accepted */
    size_t max_buffered;     /* bytes: all reassembly buffers together
                                (max_msg_size + RTMP_CONN_EXTRA_BUFFERED) */
    size_t buffered;         /* bytes: allocated now */
    rtmp_budget_t *shared;   /* borrowed, may be NULL: also charged */
    rtmp_cs_t cs[RTMP_MAX_CSIDS];
    int ncs;
    rtmp_cs_t *cur;      /* inside a chunk's payload: its stream */
    uint32_t chunk_left; /* bytes of that payload still to come */
    rtmp_cs_t *shrink;   /* release its large buffer on the next call */
    const char *error;   /* static text of the error returned, for logs */
} rtmp_chunk_parser_t;

/* Sets up a parser (chunk size 128). Limits in bytes. shared (may be
 * NULL) is borrowed and must outlive the parser: every reassembly byte
 * this parser holds is charged to it too. */
void rtmp_chunk_parser_init(rtmp_chunk_parser_t *p, uint32_t max_chunk_size,
                            uint32_t max_msg_size, rtmp_budget_t *shared);
/* Frees every buffer (and gives their bytes back to the shared budget). */
void rtmp_chunk_parser_free(rtmp_chunk_parser_t *p);

/* Consumes bytes of buf[0..len) and stops after the first complete
 * message. Returns 1 with *msg filled, 0 when more bytes are needed (the
 * unconsumed tail, at most RTMP_MAX_CHUNK_HEADER - 1 bytes of an
 * incomplete chunk header, must be presented again with more bytes), or
 * PD_EPROTO (malformed / protocol violation), PD_ELIMIT (message larger
 * than max_msg_size, chunk size above max_chunk_size, more than
 * RTMP_MAX_CSIDS chunk streams, buffers above max_buffered or above the
 * shared budget's limit), PD_ENOMEM.
 * *used is the number of bytes consumed in every case. After an error the
 * parser must not be used again (except to free it). Set Chunk Size and
 * Abort messages take effect inside the parser and are returned too. */
int rtmp_chunk_parse(rtmp_chunk_parser_t *p, const uint8_t *buf, size_t len,
                     size_t *used, rtmp_msg_t *msg);

/* Serialises one message as chunks of chunk_size bytes (type 0 header,
 * type 3 continuations, extended timestamp when ts >= 0xFFFFFF, also on
 * the continuations) into out[0..cap). Returns the byte count or
 * PD_ELIMIT if it does not fit, PD_EINVAL for a bad csid/chunk size. */
int rtmp_chunk_write(uint8_t *out, size_t cap, uint32_t csid, uint8_t type,
                     uint32_t stream_id, uint32_t ts, const uint8_t *payload,
                     size_t plen, uint32_t chunk_size);

/* Writes a chunk basic header for fmt/csid into out (>= 3 bytes).
 * Returns its length (1-3) or PD_EINVAL. */
int rtmp_chunk_basic_header(uint8_t *out, int fmt, uint32_t csid);

/* ==== handshake ======================================================== */

#define RTMP_HS_SIZE 1536
#define RTMP_HS_DIGEST_LEN 32

extern const uint8_t rtmp_hs_fp_key[62];  /* "Genuine Adobe Flash Player
                                             001" + 32 bytes */
extern const uint8_t rtmp_hs_fms_key[68]; /* "Genuine Adobe Flash Media
                                             Server 001" + 32 bytes */
#define RTMP_HS_FP_KEY_TEXT 30            /* bytes of the text part */
#define RTMP_HS_FMS_KEY_TEXT 36

/* Offset of the digest in a 1536-byte C1/S1 for scheme 0 (offset bytes at
 * 8..11) or 1 (offset bytes at 772..775). Always within [12, 1504]. */
size_t rtmp_hs_digest_offset(const uint8_t *sig, int scheme);

/* HMAC-SHA256 of sig without the 32 digest bytes at off, keyed by key.
 * Returns 0 or PD_ERR (libcrypto failure). */
int rtmp_hs_calc_digest(const uint8_t *sig, size_t off, const uint8_t *key,
                        size_t keylen, uint8_t out[RTMP_HS_DIGEST_LEN]);

/* Looks for a valid client digest (Flash Player key, 30 bytes) in c1,
 * scheme 0 then 1. Returns the scheme (0/1) and its offset in *off, or -1
 * when c1 carries no valid digest (a plain handshake). */
int rtmp_hs_find_digest(const uint8_t *c1, size_t *off);

/* Builds S0+S1+S2 (1 + 2 * 1536 bytes) answering C1. With a valid client
 * digest: S1 carries a server digest (FMS key, same scheme) and S2 ends
 * with HMAC(HMAC(full FMS key, C1 digest), S2[0..1504)). Otherwise S1 is
 * time + zeros + random and S2 echoes C1. *digest (may be NULL) says which.
 * Returns 0 or PD_ERR. */
int rtmp_hs_response(const uint8_t *c1, uint32_t now_ms, uint8_t *out,
                     bool *digest);

/* Releases the calling thread's libcrypto state (per-thread random
 * generators). Call once, last, in every thread that used the functions
 * above; libcrypto builds it again if the thread calls them later. */
void rtmp_hs_thread_done(void);

/* ==== FLV tags ========================================================= */

enum {
    FLV_CODEC_H264 = 7, /* video codec id */
    FLV_SOUND_MP3 = 2,  /* audio sound formats */
    FLV_SOUND_AAC = 10,
    FLV_SOUND_MP3_8K = 14,
    FLV_FRAME_KEY = 1,
    FLV_FRAME_COMMAND = 5, /* video info/command frame, no picture */
    FLV_AVC_SEQ_HEADER = 0,
    FLV_AVC_NALU = 1,
    FLV_AVC_END_OF_SEQ = 2,
    FLV_AAC_SEQ_HEADER = 0,
    FLV_AAC_RAW = 1,
};

typedef struct flv_video_s {
    bool ex_header;      /* Enhanced RTMP: the rest is not parsed */
    uint32_t fourcc;     /* ex_header: the codec FourCC, if present */
    int frame_type;      /* 1 key, 2 inter, ... 5 command */
    int codec_id;        /* 7 = AVC */
    int packet_type;     /* AVC only: FLV_AVC_*; -1 otherwise */
    int32_t cts_ms;      /* AVC only: composition offset, sign-extended */
    const uint8_t *data; /* borrowed from the tag: AVC body / the rest */
    size_t len;
} flv_video_t;

typedef struct flv_audio_s {
    int sound_format;    /* 10 = AAC */
    int packet_type;     /* AAC only: FLV_AAC_*; -1 otherwise */
    const uint8_t *data; /* borrowed from the tag */
    size_t len;
} flv_audio_t;

/* Parse the header of an RTMP video/audio message body (an FLV tag
 * without the 11-byte tag header). Returns 0, or PD_EPROTO when the body
 * is too short for its header (empty bodies included). Borrows p. */
int flv_parse_video(const uint8_t *p, size_t len, flv_video_t *out);
int flv_parse_audio(const uint8_t *p, size_t len, flv_audio_t *out);

/* 32-bit wrapping RTMP timestamps -> int64 ms. */
typedef struct flv_ts_s {
    bool started;
    uint32_t last; /* ms, the last 32-bit value seen */
    int64_t value; /* ms, its unwrapped value */
} flv_ts_t;

/* Unwraps ts: each value moves by the signed 32-bit difference to the
 * previous one (so wraps go forward and small steps back stay small); a
 * step back of more than 2^30 between values below 2^31 is taken as a
 * 31-bit wrap (ffmpeg's FLV timestamps). The first value of u is unwrapped
 * the same way against ref, the connection's other track, when ref (may
 * be NULL) has started: audio and video share one time line even when
 * they start on either side of a wrap. Otherwise it is taken as is.
 * Borrows ref. */
int64_t flv_ts_unwrap(flv_ts_t *u, const flv_ts_t *ref, uint32_t ts);

/* ==== server (rtmp_server.c) ========================================== */

/* The reassembly bytes all connections of a server may hold together
 * (ingest_start's budget): the largest of 64 MiB, four connections each
 * with a maximal message in progress (4 x (rtmp_max_message_size +
 * RTMP_CONN_EXTRA_BUFFERED)) and 1 MiB per allowed publisher. 64 MiB by
 * default. A connection that would go over it is closed. */
size_t ingest_default_budget(const pd_config_t *cfg);

/* ingest_start() with an explicit server-wide reassembly budget in bytes
 * (ingest_start passes ingest_default_budget(cfg)); the unit tests use a
 * small one. Same contract as ingest_start otherwise. */
int ingest_start_budget(const pd_config_t *cfg, pkg_t *pkg,
                        const ingest_hooks_t *hooks, size_t reassembly_budget,
                        ingest_t **out);

/* Longest `key` query parameter of a publish name (bytes, decoded). */
#define INGEST_KEY_MAX 128

/* Finds the `key` parameter in a publish name's query string qs[0..len)
 * (the bytes after '?'; '&' separates, the first '=' splits; other
 * parameters are ignored; the first `key` wins) and writes it
 * %XX-decoded and NUL-terminated into key (size >= INGEST_KEY_MAX + 1).
 * '+' stays '+' (secrets may hold it); "%00" and malformed escapes stay
 * as they are. Returns 1 found, 0 absent (key ""), PD_ELIMIT longer than
 * INGEST_KEY_MAX, PD_EINVAL a raw NUL byte in it (or key_size too small).
 * Borrows qs; pure, never logs. */
int ingest_query_key(const char *qs, size_t len, char *key, size_t key_size);

#endif
