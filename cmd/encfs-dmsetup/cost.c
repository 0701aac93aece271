/* The cost policy of unlocking, and the clock that enforces its total time. */
#include "cost.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static bool read_u64(const char *path, uint64_t *v)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	unsigned long long x;
	bool ok = fscanf(f, "%llu", &x) == 1; /* "max" (no limit) reads as nothing */
	fclose(f);
	if (ok)
		*v = x;
	return ok;
}

/* The room left under the limits of cgroup path (relative to root) and each of its ancestors:
 * v2 memory.max - memory.current, or v1 memory.limit_in_bytes - memory.usage_in_bytes. */
static void cgroup_room(const char *root, const char *path, const char *max_file, const char *cur_file,
			uint64_t *room_kib, bool *known)
{
	char dir[PATH_MAX];
	if (snprintf(dir, sizeof dir, "%s%s", root, path) >= (int)sizeof dir)
		return;
	for (;;) {
		char p[PATH_MAX + 32];
		uint64_t max, cur;
		snprintf(p, sizeof p, "%s/%s", dir, max_file);
		bool have_max = read_u64(p, &max);
		snprintf(p, sizeof p, "%s/%s", dir, cur_file);
		/* v1 reports "no limit" as a huge number: anything past 2^60 is none */
		if (have_max && max < (1ull << 60) && read_u64(p, &cur)) {
			uint64_t left = max > cur ? (max - cur) / 1024 : 0;
			if (!*known || left < *room_kib)
				*room_kib = left;
			*known = true;
		}
		char *slash = strrchr(dir, '/');
		if (!slash || (size_t)(slash - dir) < strlen(root))
			break;
		*slash = '\0';
	}
}

uint64_t memory_available_kib(bool *known)
{
	uint64_t avail = 0;
	*known = false;
	FILE *f = fopen("/proc/meminfo", "re");
	if (f) {
		char line[128];
		unsigned long long kib;
		while (fgets(line, sizeof line, f))
			if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1) {
				avail = kib;
				*known = true;
			}
		fclose(f);
	}
	f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return avail;
	char line[PATH_MAX + 64];
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = '\0';
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2 || strstr(c2 + 1, ".."))
			continue;
		if (strncmp(line, "0::", 3) == 0)
			cgroup_room("/sys/fs/cgroup", c2 + 1, "memory.max", "memory.current", &avail, known);
		else if (c2 - c1 == 7 && strncmp(c1 + 1, "memory", 6) == 0)
			cgroup_room("/sys/fs/cgroup/memory", c2 + 1, "memory.limit_in_bytes", "memory.usage_in_bytes",
				    &avail, known);
	}
	fclose(f);
	return avail;
}

void limits_complete(struct luks_limits *l)
{
	if (!l->max_pbkdf2_iterations)
		l->max_pbkdf2_iterations = LUKS_DEFAULT_MAX_PBKDF2_ITER;
	if (!l->max_argon2_time)
		l->max_argon2_time = LUKS_DEFAULT_MAX_ARGON2_TIME;
	if (!l->max_argon2_memory_kib)
		l->max_argon2_memory_kib = LUKS_DEFAULT_MAX_ARGON2_MIB * 1024ull;
	if (!l->max_total_ms)
		l->max_total_ms = LUKS_DEFAULT_MAX_UNLOCK_S * 1000ll;
	/* never all of it: the application shares this memory, and a cgroup that is full has none */
	bool known;
	uint64_t avail = memory_available_kib(&known);
	if (known && avail / 4 * 3 < l->max_argon2_memory_kib)
		l->max_argon2_memory_kib = avail / 4 * 3;
}

/* --- the deadline ------------------------------------------------------------------------- */

static long long deadline_limit_ms;

/* Text into p, never past end (async-signal-safe); the end of the text.  The program name is
 * argv[0]'s, of any length: a long one is cut, not written past the line. */
static char *put_str(char *p, const char *end, const char *s)
{
	while (*s && p < end)
		*p++ = *s++;
	return p;
}

/* Decimal of v into p, never past end. */
static char *put_num(char *p, const char *end, long long v)
{
	char tmp[24];
	int n = 0;
	unsigned long long u = v < 0 ? 0 - (unsigned long long)v : (unsigned long long)v;
	if (v < 0)
		p = put_str(p, end, "-");
	do
		tmp[n++] = (char)('0' + u % 10);
	while ((u /= 10) > 0 && n < (int)sizeof tmp - 1);
	tmp[n] = '\0';
	for (int i = 0; i < n / 2; i++) {
		char t = tmp[i];
		tmp[i] = tmp[n - 1 - i];
		tmp[n - 1 - i] = t;
	}
	return put_str(p, end, tmp);
}

static void on_deadline(int sig)
{
	(void)sig;
	char line[512], *p = line;
	const char *end = line + sizeof line - 1; /* room for the newline */
	p = put_str(p, line + 256, log_progname());
	p = put_str(p, end, ": unlocking: stopped during keyslot ");
	p = put_num(p, end, luks_current_keyslot);
	p = put_str(p, end, ": unlocking took ");
	p = put_num(p, end, deadline_limit_ms);
	p = put_str(p, end, " ms, the limit (--max-unlock-time)");
	*p++ = '\n';
	if (write(STDERR_FILENO, line, (size_t)(p - line)) < 0) {
		/* nothing more to do: exiting */
	}
	/* nothing exists yet (the derivation comes before any device); the kernel frees the
	 * key material with the process, which cannot dump core (secmem_init) */
	_exit(EXIT_CONFIG);
}

void unlock_deadline_arm(const struct luks_limits *l)
{
	deadline_limit_ms = l->max_total_ms;
	struct sigaction sa = {.sa_handler = on_deadline};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = {.it_value = {.tv_sec = l->max_total_ms / 1000, .tv_usec = (l->max_total_ms % 1000) * 1000}};
	setitimer(ITIMER_REAL, &it, NULL);
}

void unlock_deadline_disarm(void)
{
	struct itimerval off = {0};
	setitimer(ITIMER_REAL, &off, NULL);
	signal(SIGALRM, SIG_DFL);
}
