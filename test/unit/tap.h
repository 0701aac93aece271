/* A minimal TAP producer for the C unit tests (run by prove). */
#ifndef ENCFS_TAP_H
#define ENCFS_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n, tap_failed;

__attribute__((format(printf, 2, 3))) static inline int ok(int cond, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("%s %d - ", cond ? "ok" : "not ok", ++tap_n);
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
	if (!cond)
		tap_failed++;
	return cond;
}

#define is_int(got, want, ...)                                                                     \
	do {                                                                                       \
		long long g_ = (long long)(got), w_ = (long long)(want);                           \
		if (!ok(g_ == w_, __VA_ARGS__))                                                    \
			printf("# got %lld, want %lld\n", g_, w_);                                 \
	} while (0)

#define is_str(got, want, ...)                                                                     \
	do {                                                                                       \
		const char *g_ = (got), *w_ = (want);                                              \
		if (!ok(g_ && w_ && strcmp(g_, w_) == 0, __VA_ARGS__))                             \
			printf("# got \"%s\"\n# want \"%s\"\n", g_ ? g_ : "(null)", w_ ? w_ : "(null)"); \
	} while (0)

#define like(got, needle, ...)                                                                     \
	do {                                                                                       \
		const char *g_ = (got), *w_ = (needle);                                            \
		if (!ok(g_ && strstr(g_, w_) != NULL, __VA_ARGS__))                                \
			printf("# got \"%s\"\n# missing \"%s\"\n", g_ ? g_ : "(null)", w_);        \
	} while (0)

static inline void diag(const char *msg) { printf("# %s\n", msg); }

/* Ends the run: the plan comes last, so tests need not count ahead. */
static inline int done_testing(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
