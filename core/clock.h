/*
 * core/clock.h - the two clocks podium uses.
 *
 * Monotonic microseconds for deadlines and intervals; wallclock
 * microseconds since the Unix epoch for EXT-X-PROGRAM-DATE-TIME and logs.
 */
#ifndef PD_CLOCK_H
#define PD_CLOCK_H

#include <stdint.h>

int64_t pd_mono_us(void); /* CLOCK_MONOTONIC, microseconds */
int64_t pd_wall_us(void); /* CLOCK_REALTIME, microseconds since epoch */

#endif
