/*
 * routes_server.c - a xitzin server whose answers are C routes, for the
 * end-to-end tests that need routes over real TLS: /sync answers at once,
 * /later from a timer 300 ms on (an asynchronous route), /big with 1 MiB
 * written in one go. Prints "listening on port N" once it listens.
 *
 *	routes-server LISTEN CERT KEY
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include <xitzin.h>

#define BIG (1024 * 1024)

static int
route_sync(struct xz_request *req, void *arg)
{
	return xz_gemtext(req, "sync\n");
}

struct later {
	struct event *ev;
	struct xz_request *req;
};

static void
later_free(struct later *l)
{
	event_free(l->ev);
	free(l);
}

static void
later_fire(evutil_socket_t fd, short what, void *arg)
{
	struct later *l = arg;
	struct xz_request *req = l->req;

	later_free(l);
	xz_request_on_cancel(req, NULL, NULL);
	xz_gemtext(req, "later\n");
}

/* The client went away (reset, failed write): the timer must not fire. */
static void
later_cancel(struct xz_request *req, void *arg)
{
	later_free(arg);
}

static int
route_later(struct xz_request *req, void *arg)
{
	struct timeval tv = { 0, 300000 };
	struct later *l = calloc(1, sizeof(*l));

	if (l == NULL)
		return xz_respond(req, 40, "Server busy");
	l->req = req;
	l->ev = evtimer_new(xz_request_base(req), later_fire, l);
	if (l->ev == NULL) {
		free(l);
		return xz_respond(req, 40, "Server busy");
	}
	xz_request_on_cancel(req, later_cancel, l);
	evtimer_add(l->ev, &tv);
	return XZ_OK;
}

static int
route_big(struct xz_request *req, void *arg)
{
	char *body = malloc(BIG);
	int rc;

	if (body == NULL)
		return xz_respond(req, 40, "Server busy");
	memset(body, 'b', BIG);
	rc = xz_reply(req, 20, "application/octet-stream");
	if (rc == XZ_OK)
		rc = xz_write(req, body, BIG);
	free(body);
	xz_end(req);
	return rc;
}

int
main(int argc, char **argv)
{
	const char *listen[] = { argc > 1 ? argv[1] : "127.0.0.1:0", NULL };
	struct xz_server_opts opts = { .listen = listen,
		.hostname = "localhost",
		.cert_file = argc > 2 ? argv[2] : "test.crt",
		.key_file = argc > 3 ? argv[3] : "test.key",
		.workers = 1 };
	struct xz_server *srv;
	struct xz_app *app;
	char err[256];
	int rc;

	xz_log_enable(false);
	if ((app = xz_app_new()) == NULL)
		return 1;
	if (xz_route(app, "/sync", route_sync, NULL) != XZ_OK ||
	    xz_route(app, "/later", route_later, NULL) != XZ_OK ||
	    xz_route(app, "/big", route_big, NULL) != XZ_OK) {
		fprintf(stderr, "routes-server: %s\n", xz_app_error(app));
		return 1;
	}
	if ((srv = xz_server_new(app, &opts, err, sizeof(err))) == NULL) {
		fprintf(stderr, "routes-server: %s\n", err);
		return 1;
	}
	printf("listening on port %d\n", xz_server_port(srv, 0));
	fflush(stdout);
	rc = xz_server_run(srv); /* until SIGTERM */
	xz_server_free(srv);
	xz_app_free(app);
	return rc == XZ_OK ? 0 : 1;
}
