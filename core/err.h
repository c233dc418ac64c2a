/*
 * core/err.h - status codes shared by every module.
 *
 * Functions return int: 0 is success, negative values are the errors below.
 * Results come back through out-parameters. FFmpeg's AVERRORs are
 * translated at the packager's edge and never leak past it.
 */
#ifndef PD_ERR_H
#define PD_ERR_H

enum {
    PD_OK = 0,
    PD_ERR = -1,      /* unspecified failure */
    PD_EAGAIN = -2,   /* not ready yet; try again later (or wait) */
    PD_EINVAL = -3,   /* malformed or out-of-range input */
    PD_ENOMEM = -4,   /* allocation failed */
    PD_ENOENT = -5,   /* no such object */
    PD_EEXIST = -6,   /* object exists (e.g. stream already live) */
    PD_ELIMIT = -7,   /* a configured limit was hit */
    PD_EIO = -8,      /* socket or file error */
    PD_ECLOSED = -9,  /* peer closed / object ended */
    PD_ETIMEDOUT = -10,
    PD_EPROTO = -11,  /* protocol violation by the peer */
    PD_EUNSUP = -12,  /* valid but unsupported (codec, feature) */
    PD_EPERM = -13,   /* not allowed (bad/missing/revoked key or token) */
};

/* Returns a static string naming the code; never NULL. */
const char *pd_strerror(int code);

#endif
