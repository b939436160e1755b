/*
 * main.c - the xitzin program: a thin user of libxitzin.
 *
 *   xitzin [-v] [-c FILE] [-t] [DIR]
 *   xitzin -k FILE
 *
 * With -c it serves what xitzin.conf(5) describes; with DIR alone it
 * serves that directory on localhost:1965 with a certificate generated
 * under ./certs on first run. Only this file exits, and only at startup.
 */
#include <sys/resource.h>

#include <err.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xitzin.h"

static void __attribute__((noreturn)) usage(int status)
{
	fprintf(status == 0 ? stdout : stderr,
	    "usage: xitzin [-tv] [-c FILE] [DIR]\n"
	    "       xitzin -k FILE\n"
	    "  -c FILE  read the configuration from FILE (xitzin.conf(5))\n"
	    "  -k FILE  write a new session-ticket key to FILE and exit\n"
	    "  -t       check the configuration and exit (-n is the same)\n"
	    "  -v       verbose log (debug lines)\n"
	    "  -V       print the version and exit\n"
	    "  -h       this help\n"
	    "  DIR      serve DIR on localhost:1965 (no -c)\n");
	exit(status);
}

struct options {
	const char *config;
	const char *dir;
	const char *ticket_key; /* -k */
	bool check_only;
	bool verbose;
};

static void
parse_args(int argc, char **argv, struct options *o)
{
	int ch;

	while ((ch = getopt(argc, argv, "c:hk:ntvV")) != -1) {
		switch (ch) {
		case 'c':
			o->config = optarg;
			break;
		case 'k':
			o->ticket_key = optarg;
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
	if (o->ticket_key != NULL) {
		if (argc > 0 || o->config != NULL || o->check_only)
			usage(1);
		return;
	}
	if (argc > 1 || (argc == 1 && o->config != NULL) ||
	    (argc == 0 && o->config == NULL))
		usage(1);
	if (argc == 1)
		o->dir = argv[0];
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
	struct xz_server_opts dir_opts = { 0 };
	const struct xz_server_opts *so = &dir_opts;
	struct xz_config *cfg = NULL;
	struct xz_server *srv;
	struct xz_app *app;
	char errbuf[8192] = "";
	int rc;

	parse_args(argc, argv, &o);
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
		so = xz_config_server_opts(cfg);
	} else {
		setup_dir(app, &dir_opts, o.dir);
	}
	if (o.check_only) {
		printf("%s: configuration OK\n", o.config ? o.config : o.dir);
		xz_config_free(cfg);
		xz_app_free(app);
		return 0;
	}
	if ((srv = xz_server_new(app, so, errbuf, sizeof(errbuf))) == NULL)
		errx(1, "%s", errbuf);
	rc = xz_server_run(srv); /* a failure is logged, with its reason */
	xz_server_free(srv);
	xz_config_free(cfg);
	xz_app_free(app);
	return rc == XZ_OK ? 0 : 1;
}
