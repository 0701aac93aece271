/* Starting a test service (one of test/fakes) from a C unit test: it writes its port to a file,
 * we wait for it, and it is killed at exit. */
#ifndef ENCFS_TEST_SERVICE_H
#define ENCFS_TEST_SERVICE_H

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAX_SERVICES 8
static pid_t service_pids[MAX_SERVICES];
static int service_count;

static inline void stop_services(void)
{
	for (int i = 0; i < service_count; i++) {
		kill(service_pids[i], SIGTERM);
		waitpid(service_pids[i], NULL, 0);
	}
	service_count = 0;
}

/* The source tree: $ENCFS_SRC, or the current directory (make check runs from the top). */
static inline const char *test_src(void)
{
	const char *s = getenv("ENCFS_SRC");
	return s && *s ? s : ".";
}

static inline const char *test_python(void)
{
	const char *s = getenv("PYTHON");
	return s && *s ? s : "/usr/bin/python3";
}

/* A fresh temporary directory for this test program. */
static inline const char *test_tmpdir(void)
{
	static char dir[256];
	if (!dir[0]) {
		const char *t = getenv("TMPDIR");
		snprintf(dir, sizeof dir, "%s/encfs-unit.XXXXXX", t && *t ? t : "/tmp");
		if (!mkdtemp(dir)) {
			printf("Bail out! mkdtemp failed\n");
			exit(255);
		}
	}
	return dir;
}

/* argv[0] is the program; returns the port, or bails out. */
static inline int start_service(char *const argv[])
{
	char ready[512];
	static int seq;
	snprintf(ready, sizeof ready, "%s/ready.%d", test_tmpdir(), seq++);
	setenv("READY", ready, 1);
	if (service_count == 0)
		atexit(stop_services);
	/* the service's own log goes to a file beside its port file, out of the TAP stream */
	char logfile[520];
	snprintf(logfile, sizeof logfile, "%s.log", ready);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, logfile, O_WRONLY | O_CREAT | O_APPEND, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	int spawned = service_count < MAX_SERVICES &&
		      posix_spawn(&service_pids[service_count], argv[0], &fa, NULL, argv, environ) == 0;
	posix_spawn_file_actions_destroy(&fa);
	if (!spawned) {
		printf("Bail out! cannot start %s\n", argv[0]);
		exit(255);
	}
	service_count++;
	unsetenv("READY");
	for (int i = 0; i < 300; i++) {
		FILE *f = fopen(ready, "r");
		int port = 0;
		if (f) {
			if (fscanf(f, "%d", &port) != 1)
				port = 0;
			fclose(f);
		}
		if (port > 0)
			return port;
		struct timespec ts = {0, 100000000};
		nanosleep(&ts, NULL);
	}
	printf("Bail out! %s did not start within 30 s\n", argv[1] ? argv[1] : argv[0]);
	exit(255);
}

#endif
