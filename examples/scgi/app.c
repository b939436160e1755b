/*
 * app.c - the examples of the "SCGI Backends" document, in C, as one
 * program: each block below names the section it stands for.
 *
 *	scgi-app [LISTEN [BACKEND_PORT [SOCKET_PATH]]]
 *
 * defaults: 127.0.0.1:1965, a TCP backend on 127.0.0.1:4000 and a Unix
 * socket backend at /tmp/myapp.sock (any of the backends in this
 * directory will do: simple_server.py, uWSGI with flup_app.py,
 * perl_backend.pl, echo_backend). Certificates go to ./certs, made on the
 * first run. It prints "scgi-app: listening on port N", then serves until
 * SIGTERM or SIGINT.
 */
#include <stdio.h>
#include <stdlib.h>

#include <xitzin.h>

/* "Pass Application State": the keys the backends get as XITZIN_*. */
static const char *const state_keys[] = { "db_url", "api_key", NULL };

/* @app.on_startup: app.state.db_url = ..., app.state.api_key = ... */
static int
setup(struct xz_app *app, void *arg)
{
	if (xz_state_set(app, "db_url", "postgres://localhost/mydb") != XZ_OK ||
	    xz_state_set(app, "api_key", "secret123") != XZ_OK)
		return XZ_ENOMEM;
	return XZ_OK;
}

/* The fallback: a page of our own instead of the backend's 43. */
static int
fallback_page(struct xz_request *req, void *arg)
{
	char body[256];

	snprintf(body, sizeof(body),
	    "# Temporarily unavailable\n\n%s is down; try again later.\n\n"
	    "=> / Home\n",
	    xz_request_mount(req));
	return xz_gemtext(req, body);
}

/*
 * "Handle these gracefully": a 43 reaches the middleware's after hook
 * before any byte of it leaves, so the hook may answer instead.
 */
static void
handle_proxy_errors(struct xz_request *req, struct xz_response *res, void *arg)
{
	if (res->status == 43) {
		/* Log the error, maybe try a fallback */
		printf("Proxy error: %s\n", res->meta);
		fflush(stdout);
		if (xz_request_replace(req, fallback_page, NULL) != XZ_OK)
			return; /* out of memory: the 43 goes out */
	}
}

/* "Apply Middleware": log_requests, before and after the handler. */
static int
log_requests_before(struct xz_request *req, void *arg)
{
	printf("Request: %s\n", xz_request_path(req));
	return XZ_OK;
}

static void
log_requests_after(struct xz_request *req, struct xz_response *res, void *arg)
{
	printf("Response: %d\n", res->status);
	fflush(stdout);
}

/* "Combine with Regular Routes": @app.gemini("/") and ("/about"). */
static int
home(struct xz_request *req, void *arg)
{
	return xz_gemtext(req, "# Home\n\n=> /api/ API (SCGI backend)");
}

static int
about(struct xz_request *req, void *arg)
{
	return xz_gemtext(req, "# About");
}

/*
 * "Connect via TCP" with "Configure Timeouts" and "Pass Application
 * State": app.scgi("/api", host=, port=, timeout=60.0, app_state_keys=).
 * "Connect via Unix Socket": app.scgi("/app", socket_path=).
 */
static int
mount_backends(struct xz_app *app, int port, const char *sock)
{
	if (xz_scgi(app, "/api",
	        &(struct xz_scgi_opts){ .host = "127.0.0.1",
	            .port = port,
	            .timeout = 60.0,
	            .app_state_keys = state_keys }) != XZ_OK ||
	    xz_scgi(app, "/app",
	        &(struct xz_scgi_opts){ .socket_path = sock }) != XZ_OK)
		return -1;
	return 0;
}

/*
 * "Use Explicit Handlers" (SCGIHandler, SCGIApp + app.mount), "Limit
 * Response Size" and the "Configuration Reference" example. A field left
 * out keeps the document's default (zero means default).
 */
static int
mount_explicit(struct xz_app *app, int port, const char *sock)
{
	struct xz_backend_config config = { .timeout = 60.0,
		.max_response_size = 10 * 1024 * 1024 }; /* 10MB */
	struct xz_backend_config unix_config = { .timeout = 60.0 };
	struct xz_backend_config limited = { .max_response_size =
		                                 5 * 1024 * 1024 }; /* 5MB */
	struct xz_backend_config full = { .timeout = 60.0,
		.max_response_size = 10 * 1024 * 1024,
		.buffer_size = 16384,
		.no_inherit_environment = false, /* inherit_environment=True */
		.app_state_keys = state_keys };

	if (xz_mount(app, "/explicit",
	        xz_scgi_tcp("127.0.0.1", port, &config)) != XZ_OK ||
	    xz_mount(app, "/explicit-unix", xz_scgi_unix(sock, &unix_config)) !=
	        XZ_OK ||
	    xz_mount(app, "/limited",
	        xz_scgi_tcp("127.0.0.1", port, &limited)) != XZ_OK ||
	    xz_mount(app, "/full", xz_scgi_tcp("127.0.0.1", port, &full)) !=
	        XZ_OK)
		return -1;
	return 0;
}

static struct xz_app *
build_app(int port, const char *sock)
{
	static const struct xz_middleware errors = { NULL,
		handle_proxy_errors };
	static const struct xz_middleware logger = { log_requests_before,
		log_requests_after };
	struct xz_app *app = xz_app_new();

	if (app == NULL)
		return NULL;
	if (xz_on_startup(app, setup, NULL) != XZ_OK ||
	    xz_middleware(app, &errors, NULL) != XZ_OK ||
	    xz_middleware(app, &logger, NULL) != XZ_OK ||
	    xz_route(app, "/", home, NULL) != XZ_OK ||
	    mount_backends(app, port, sock) != 0 ||
	    mount_explicit(app, port, sock) != 0 ||
	    xz_route(app, "/about", about, NULL) != XZ_OK) {
		fprintf(stderr, "scgi-app: %s\n", xz_app_error(app));
		xz_app_free(app);
		return NULL;
	}
	return app;
}

int
main(int argc, char **argv)
{
	const char *listen[] = { argc > 1 ? argv[1] : "127.0.0.1:1965", NULL };
	struct xz_server_opts opts = { .listen = listen,
		.hostname = "localhost",
		.cert_file = "certs/localhost.crt",
		.key_file = "certs/localhost.key" };
	struct xz_server *srv;
	struct xz_app *app;
	char err[256];
	int rc;

	app = build_app(argc > 2 ? atoi(argv[2]) : 4000,
	    argc > 3 ? argv[3] : "/tmp/myapp.sock");
	if (app == NULL)
		return 1;
	if ((srv = xz_server_new(app, &opts, err, sizeof(err))) == NULL) {
		fprintf(stderr, "scgi-app: %s\n", err);
		xz_app_free(app);
		return 1;
	}
	printf("scgi-app: listening on port %d\n", xz_server_port(srv, 0));
	fflush(stdout);
	rc = xz_server_run(srv);
	if (rc != XZ_OK)
		fprintf(stderr, "scgi-app: %s\n", xz_server_error(srv));
	xz_server_free(srv);
	xz_app_free(app);
	return rc == XZ_OK ? 0 : 1;
}
