/*
 * main.c - the xitzin program: a thin user of libxitzin.
 *
 *   xitzin [-v] [-c FILE] [-p PIDFILE] [-t] [DIR]
 *   xitzin -k FILE
 *   xitzin -s reload|reopen|stop -p PIDFILE
 *
 * With -c it serves what xitzin.conf(5) describes; with DIR alone it
 * serves that directory on localhost:1965 with a certificate generated
 * under ./certs on first run; with neither, XITZIN_DEFAULT_CONF
 * (/etc/xitzin/xitzin.conf). Under systemd it takes the sockets of
 * socket activation (LISTEN_FDS) and tells it when it is ready
 * (NOTIFY_SOCKET). On SIGHUP it reads its configuration file again
 * (reload_config). Only this file exits, and only at startup.
 */
#include <sys/resource.h>

#include <err.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xitzin.h"

static void __attribute__((noreturn)) usage(int status)
{
	fprintf(status == 0 ? stdout : stderr,
	    "usage: xitzin [-tv] [-c FILE] [-p PIDFILE] [DIR]\n"
	    "       xitzin -k FILE\n"
	    "       xitzin -s reload|reopen|stop -p PIDFILE\n"
	    "  -c FILE  read the configuration from FILE (xitzin.conf(5))\n"
	    "  -k FILE  write a new session-ticket key to FILE and exit\n"
	    "  -p FILE  serving: write our pid to FILE; with -s: read it\n"
	    "  -s SIG   tell the xitzin of -p to reload (SIGHUP), reopen its\n"
	    "           logs (SIGUSR1) or stop (SIGTERM), and exit\n"
	    "  -t       check the configuration and exit (-n is the same)\n"
	    "  -v       verbose log (debug lines)\n"
	    "  -V       print the version and exit\n"
	    "  -h       this help\n"
	    "  DIR      serve DIR on localhost:1965 (no -c)\n"
	    "  neither  read " XITZIN_DEFAULT_CONF "\n");
	exit(status);
}

struct options {
	const char *config;
	const char *dir;
	const char *ticket_key; /* -k */
	const char *pid_file;   /* -p */
	const char *signal;     /* -s */
	bool check_only;
	bool verbose;
};

static void
parse_args(int argc, char **argv, struct options *o)
{
	int ch;

	while ((ch = getopt(argc, argv, "c:hk:np:s:tvV")) != -1) {
		switch (ch) {
		case 'c':
			o->config = optarg;
			break;
		case 'k':
			o->ticket_key = optarg;
			break;
		case 'p':
			o->pid_file = optarg;
			break;
		case 's':
			o->signal = optarg;
			break;
		case 'n':
		case 't':
			o->check_only = true;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'V':
			printf("xitzin %s\n", XITZIN_VERSION);
			exit(0);
		case 'h':
			usage(0);
		default:
			usage(1);
		}
	}
	argc -= optind;
	argv += optind;
	if (o->signal != NULL) {
		if (argc > 0 || o->pid_file == NULL || o->ticket_key != NULL ||
		    o->check_only)
			usage(1);
		return;
	}
	if (o->ticket_key != NULL) {
		if (argc > 0 || o->config != NULL || o->check_only)
			usage(1);
		return;
	}
	if (argc > 1 || (argc == 1 && o->config != NULL))
		usage(1);
	if (argc == 1)
		o->dir = argv[0];
	else if (o->config == NULL)
		o->config = XITZIN_DEFAULT_CONF;
}

/*
 * -s: the signal for the xitzin whose pid is in the file. A stale file
 * may name another process by now: only one called xitzin is signalled.
 */
static int __attribute__((noreturn))
send_signal(const char *what, const char *pid_file)
{
	char buf[32], comm[64] = "", path[64];
	FILE *f;
	long pid;
	char *end;
	int sig;

	if (strcmp(what, "reload") == 0)
		sig = SIGHUP;
	else if (strcmp(what, "reopen") == 0)
		sig = SIGUSR1;
	else if (strcmp(what, "stop") == 0)
		sig = SIGTERM;
	else
		errx(1, "-s %s: expected reload, reopen or stop", what);
	if ((f = fopen(pid_file, "r")) == NULL)
		err(1, "%s", pid_file);
	if (fgets(buf, sizeof(buf), f) == NULL)
		buf[0] = '\0';
	fclose(f);
	pid = strtol(buf, &end, 10);
	if (pid <= 1 || (*end != '\n' && *end != '\0'))
		errx(1, "%s: no pid in it", pid_file);
	snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
	if ((f = fopen(path, "r")) != NULL) {
		if (fgets(comm, sizeof(comm), f) == NULL)
			comm[0] = '\0';
		fclose(f);
	}
	comm[strcspn(comm, "\n")] = '\0';
	if (strcmp(comm, "xitzin") != 0)
		errx(1, "%s: process %ld is not running xitzin (%s)", pid_file,
		    pid, comm[0] != '\0' ? comm : "no such process");
	if (kill((pid_t)pid, sig) == -1)
		err(1, "%s: process %ld", pid_file, pid);
	exit(0);
}

/* -p: our pid, for -s; written once the listeners are bound. */
static void
write_pid_file(const char *path)
{
	char buf[32];
	int fd, len;

	len = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd == -1 || write(fd, buf, (size_t)len) != len)
		err(1, "%s", path);
	close(fd);
}

/*
 * Socket activation (sd_listen_fds(3), by hand): LISTEN_PID names us and
 * LISTEN_FDS counts the sockets from descriptor 3 on. The variables are
 * then removed so that CGI scripts do not take the sockets as theirs.
 */
static size_t
listen_fds(int *fds, size_t max)
{
	const char *pid = getenv("LISTEN_PID"), *n = getenv("LISTEN_FDS");
	char *end;
	long count;
	size_t i;

	if (pid == NULL || n == NULL ||
	    strtol(pid, &end, 10) != (long)getpid() || *end != '\0')
		return 0;
	count = strtol(n, &end, 10);
	if (*end != '\0' || count < 1 || (size_t)count > max)
		errx(1, "LISTEN_FDS=%s: expected 1 to %zu sockets", n, max);
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	for (i = 0; i < (size_t)count; i++)
		fds[i] = 3 + (int)i;
	return (size_t)count;
}

/* "xitzin DIR": the directory at /, localhost:1965, ./certs. */
static void
setup_dir(struct xz_app *app, struct xz_server_opts *so, const char *dir)
{
	static const char *const listen[] = { "localhost:1965", NULL };

	if (xz_static(app, "/", dir) != XZ_OK)
		errx(1, "%s: not a directory we can serve (%s)", dir,
		    xz_app_error(app));
	so->listen = listen;
	so->hostname = "localhost";
	so->cert_file = "certs/localhost.crt";
	so->key_file = "certs/localhost.key";
}

/* One error a line ("xitzin.conf:12: ..."), each as errx would, then exit. */
static void __attribute__((noreturn)) config_errors(char *errs)
{
	char *line, *save = NULL;

	for (line = strtok_r(errs, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save))
		warnx("%s", line);
	exit(1);
}

/* What a reload needs: the file, and the first configuration's logs. */
struct reload_arg {
	const char *path;
	const struct xz_log_opts *logs;
};

static bool
same_str(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/*
 * The log keys are the first configuration's (the files are opened
 * before privileges are dropped): a change is a warning for the server
 * to log, one a line, and waits for a restart.
 */
static void
reload_log_keys(const struct xz_log_opts *was, const struct xz_log_opts *now,
    char *errbuf, size_t errlen)
{
	errbuf[0] = '\0';
	if (same_str(was->access_log, now->access_log) &&
	    same_str(was->error_log, now->error_log) &&
	    was->style == now->style && was->ip == now->ip &&
	    was->no_query == now->no_query)
		return;
	snprintf(errbuf, errlen,
	    "access_log, error_log, log_style, log_ip or log_query changed: "
	    "the logs change at a restart");
}

/*
 * SIGHUP with -c: the file read again, its errors all returned (the
 * server logs them, the old configuration serving on), or a new app
 * handed to the server, which frees it when its time is over.
 */
/*
 * A reloaded configuration, freed when the server is done with it: the
 * default site's app, and the config, which owns its [host] sites' apps.
 */
struct loaded {
	struct xz_config *cfg;
	struct xz_app *app;
};

static void
loaded_free(void *arg)
{
	struct loaded *l = arg;

	xz_app_free(l->app);
	xz_config_free(l->cfg);
	free(l);
}

static int
reload_config(struct xz_server *srv, char *errbuf, size_t errlen, void *arg)
{
	const struct reload_arg *ra = arg;
	struct loaded *l;
	int rc;

	if ((l = calloc(1, sizeof(*l))) == NULL ||
	    (l->app = xz_app_new()) == NULL) {
		free(l);
		snprintf(errbuf, errlen, "out of memory");
		return XZ_ENOMEM;
	}
	if ((l->cfg = xz_config_load(ra->path, errbuf, errlen)) == NULL) {
		loaded_free(l);
		return XZ_EINVAL;
	}
	if ((rc = xz_config_apply(l->cfg, l->app, errbuf, errlen)) != XZ_OK) {
		loaded_free(l);
		return rc;
	}
	reload_log_keys(ra->logs, xz_config_log_opts(l->cfg), errbuf, errlen);
	/* On failure, loaded_free has run. */
	if ((rc = xz_server_reload(srv, l->app, xz_config_server_opts(l->cfg),
	         loaded_free, l, errbuf, errlen)) != XZ_OK)
		return rc;
	/*
	 * Its [host] sites join the staged configuration (their apps are
	 * the config's, freed with it); a failure drops it all.
	 */
	return xz_config_add_sites(l->cfg, srv, errbuf, errlen);
}

/* Each connection is a descriptor: take all the kernel allows us. */
static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int
main(int argc, char **argv)
{
	struct options o = { 0 };
	struct xz_server_opts dir_opts = { 0 }, so;
	int fds[64];
	struct xz_config *cfg = NULL;
	struct reload_arg ra;
	struct xz_server *srv;
	struct xz_app *app;
	char errbuf[8192] = "";
	int rc;

	parse_args(argc, argv, &o);
	if (o.signal != NULL)
		send_signal(o.signal, o.pid_file);
	if (o.ticket_key != NULL) {
		if (xz_ticket_key_new(o.ticket_key, errbuf, sizeof(errbuf)) !=
		    XZ_OK)
			errx(1, "%s", errbuf);
		return 0;
	}
	xz_log_enable(o.verbose);
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	if ((app = xz_app_new()) == NULL)
		errx(1, "out of memory");
	if (o.config != NULL) {
		if ((cfg = xz_config_load(o.config, errbuf, sizeof(errbuf))) ==
		        NULL ||
		    xz_config_apply(cfg, app, errbuf, sizeof(errbuf)) != XZ_OK)
			config_errors(errbuf);
		so = *xz_config_server_opts(cfg);
	} else {
		setup_dir(app, &dir_opts, o.dir);
		so = dir_opts;
	}
	if (o.check_only) {
		printf("%s: configuration OK\n", o.config ? o.config : o.dir);
		xz_config_free(cfg);
		xz_app_free(app);
		return 0;
	}
	if (cfg != NULL && xz_log_open(xz_config_log_opts(cfg), errbuf,
	                       sizeof(errbuf)) != XZ_OK)
		errx(1, "%s: %s", o.config, errbuf);
	so.listen_fds = fds;
	so.nlisten_fds = listen_fds(fds, sizeof(fds) / sizeof(*fds));
	so.sd_notify = true;
	if ((srv = xz_server_new(app, &so, errbuf, sizeof(errbuf))) == NULL)
		errx(1, "%s", errbuf);
	if (cfg != NULL &&
	    xz_config_add_sites(cfg, srv, errbuf, sizeof(errbuf)) != XZ_OK)
		errx(1, "%s", errbuf);
	for (size_t i = 0; i < so.nlisten_fds; i++)
		close(fds[i]); /* each worker listens on its own dup */
	if (o.pid_file != NULL)
		write_pid_file(o.pid_file);
	if (cfg != NULL) {
		ra.path = o.config;
		ra.logs = xz_config_log_opts(cfg);
		xz_server_on_reload(srv, reload_config, &ra);
	}
	rc = xz_server_run(srv); /* a failure is logged, with its reason */
	xz_server_free(srv);
	xz_config_free(cfg);
	xz_app_free(app);
	xz_log_close();
	/* Best effort: after dropping privileges it may not be ours to remove.
	 */
	if (o.pid_file != NULL)
		(void)unlink(o.pid_file);
	return rc == XZ_OK ? 0 : 1;
}
