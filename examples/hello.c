/*
 * hello.c - the document's "Combine with Regular Routes", in C: a home
 * page and an about page written as routes, and an SCGI backend mounted at
 * /api. Mounted handlers take precedence over routes for their paths.
 *
 * Build it against an installed libxitzin:
 *
 *	cc -o hello hello.c $(pkg-config --cflags --libs xitzin)
 *	./hello [LISTEN [SCGI_PORT]]     # default 127.0.0.1:1965 and 4000
 */
#include <stdio.h>
#include <stdlib.h>

#include <xitzin.h>

/* @app.gemini("/") */
static int
home(struct xz_request *req, void *arg)
{
	(void)arg;
	return xz_gemtext(req, "# Home\n\n=> /api/ API (SCGI backend)\n");
}

/* @app.gemini("/about") */
static int
about(struct xz_request *req, void *arg)
{
	(void)arg;
	return xz_gemtext(req, "# About");
}

int
main(int argc, char **argv)
{
	const char *listen[] = { argc > 1 ? argv[1] : "127.0.0.1:1965", NULL };
	struct xz_server_opts opts = { .listen = listen,
		.hostname = "localhost",
		.cert_file = "certs/localhost.crt",
		.key_file = "certs/localhost.key" };
	struct xz_scgi_opts api = { .host = "127.0.0.1",
		.port = argc > 2 ? atoi(argv[2]) : 4000 };
	struct xz_server *srv;
	struct xz_app *app;
	char err[256];
	int rc;

	xz_log_enable(false);
	if ((app = xz_app_new()) == NULL)
		return 1;
	/* Regular route, SCGI backend, another regular route. */
	if (xz_route(app, "/", home, NULL) != XZ_OK ||
	    xz_scgi(app, "/api", &api) != XZ_OK ||
	    xz_route(app, "/about", about, NULL) != XZ_OK) {
		fprintf(stderr, "hello: %s\n", xz_app_error(app));
		return 1;
	}
	if ((srv = xz_server_new(app, &opts, err, sizeof(err))) == NULL) {
		fprintf(stderr, "hello: %s\n", err);
		return 1;
	}
	printf("hello: listening on port %d\n", xz_server_port(srv, 0));
	fflush(stdout);
	rc = xz_server_run(srv); /* until SIGTERM or SIGINT */
	if (rc != XZ_OK)
		fprintf(stderr, "hello: %s\n", xz_server_error(srv));
	xz_server_free(srv);
	xz_app_free(app);
	return rc == XZ_OK ? 0 : 1;
}
