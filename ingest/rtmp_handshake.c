/*
 * ingest/rtmp_handshake.c - the RTMP handshake answer, plain and digest.
 *
 * Plain: S1 = time + zero + random, S2 = C1 echoed. Digest (what
 * Flash-era clients and some librtmp builds send): C1 holds an
 * HMAC-SHA256 of itself (without the 32 digest bytes) keyed by the first
 * 30 bytes of the Flash Player key, at an offset derived from four bytes
 * of C1 (scheme 0: bytes 8..11, scheme 1: bytes 772..775). We then answer
 * with an S1 signed the same way (Flash Media Server key, 36 bytes, same
 * scheme) and an S2 whose last 32 bytes are HMAC(HMAC(full FMS key, C1
 * digest), S2[0..1504)). HMAC-SHA256 comes from OpenSSL's libcrypto.
 * Pure functions over fixed-size buffers; only randomness is external.
 * Invariant: no libcrypto object outlives a call. HMAC() is OpenSSL's
 * one-shot (it creates and frees its MAC context on every path, errors
 * included); the only state left behind is libcrypto's per-thread state
 * (RAND_bytes' per-thread generators), which rtmp_hs_thread_done()
 * releases before a connection thread ends.
 */
#include "ingest_int.h"

#include "../core/err.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <string.h>

#define KEY_TAIL                                                               \
    0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1,    \
        0x02, 0x9E, 0x7E, 0x57, 0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F,      \
        0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE

const uint8_t rtmp_hs_fp_key[62] = {'G', 'e', 'n', 'u', 'i', 'n', 'e',     ' ',
                                    'A', 'd', 'o', 'b', 'e', ' ', 'F',     'l',
                                    'a', 's', 'h', ' ', 'P', 'l', 'a',     'y',
                                    'e', 'r', ' ', '0', '0', '1', KEY_TAIL};

const uint8_t rtmp_hs_fms_key[68] = {
    'G', 'e', 'n', 'u', 'i', 'n', 'e', ' ', 'A', 'd', 'o',     'b', 'e',
    ' ', 'F', 'l', 'a', 's', 'h', ' ', 'M', 'e', 'd', 'i',     'a', ' ',
    'S', 'e', 'r', 'v', 'e', 'r', ' ', '0', '0', '1', KEY_TAIL};

size_t rtmp_hs_digest_offset(const uint8_t *sig, int scheme)
{
    size_t base = scheme == 0 ? 8 : 772;
    size_t sum =
        (size_t)sig[base] + sig[base + 1] + sig[base + 2] + sig[base + 3];
    return sum % 728 + base + 4;
}

static int hmac256(const uint8_t *key, size_t keylen, const uint8_t *data,
                   size_t len, uint8_t out[RTMP_HS_DIGEST_LEN])
{
    unsigned int olen = 0;
    if (!HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &olen) ||
        olen != RTMP_HS_DIGEST_LEN)
        return PD_ERR;
    return 0;
}

int rtmp_hs_calc_digest(const uint8_t *sig, size_t off, const uint8_t *key,
                        size_t keylen, uint8_t out[RTMP_HS_DIGEST_LEN])
{
    if (off > RTMP_HS_SIZE - RTMP_HS_DIGEST_LEN)
        return PD_EINVAL;
    uint8_t msg[RTMP_HS_SIZE - RTMP_HS_DIGEST_LEN];
    memcpy(msg, sig, off);
    memcpy(msg + off, sig + off + RTMP_HS_DIGEST_LEN,
           RTMP_HS_SIZE - off - RTMP_HS_DIGEST_LEN);
    return hmac256(key, keylen, msg, sizeof(msg), out);
}

int rtmp_hs_find_digest(const uint8_t *c1, size_t *off)
{
    for (int scheme = 0; scheme < 2; scheme++) {
        size_t o = rtmp_hs_digest_offset(c1, scheme);
        uint8_t d[RTMP_HS_DIGEST_LEN];
        if (rtmp_hs_calc_digest(c1, o, rtmp_hs_fp_key, RTMP_HS_FP_KEY_TEXT, d))
            return -1;
        if (CRYPTO_memcmp(d, c1 + o, RTMP_HS_DIGEST_LEN) == 0) {
            *off = o;
            return scheme;
        }
    }
    return -1;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

int rtmp_hs_response(const uint8_t *c1, uint32_t now_ms, uint8_t *out,
                     bool *digest)
{
    uint8_t *s0 = out, *s1 = out + 1, *s2 = out + 1 + RTMP_HS_SIZE;
    s0[0] = 3;
    if (RAND_bytes(s1 + 8, RTMP_HS_SIZE - 8) != 1)
        return PD_ERR;
    put32(s1, now_ms);

    size_t coff = 0;
    int scheme = rtmp_hs_find_digest(c1, &coff);
    if (digest)
        *digest = scheme >= 0;
    if (scheme < 0) {
        memset(s1 + 4, 0, 4);
        memcpy(s2, c1, RTMP_HS_SIZE);
        return 0;
    }

    /* S1: a server version, then our digest where the client put its */
    s1[4] = 4;
    s1[5] = 5;
    s1[6] = 0;
    s1[7] = 1;
    size_t soff = rtmp_hs_digest_offset(s1, scheme);
    if (rtmp_hs_calc_digest(s1, soff, rtmp_hs_fms_key, RTMP_HS_FMS_KEY_TEXT,
                            s1 + soff))
        return PD_ERR;

    /* S2: random, signed with a key derived from the client's digest */
    if (RAND_bytes(s2, RTMP_HS_SIZE) != 1)
        return PD_ERR;
    uint8_t tmp[RTMP_HS_DIGEST_LEN];
    if (hmac256(rtmp_hs_fms_key, sizeof(rtmp_hs_fms_key), c1 + coff,
                RTMP_HS_DIGEST_LEN, tmp) ||
        hmac256(tmp, sizeof(tmp), s2, RTMP_HS_SIZE - RTMP_HS_DIGEST_LEN,
                s2 + RTMP_HS_SIZE - RTMP_HS_DIGEST_LEN))
        return PD_ERR;
    return 0;
}

void rtmp_hs_thread_done(void)
{
    OPENSSL_thread_stop();
}
