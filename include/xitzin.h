/*
 * xitzin.h - the public API of libxitzin, a Gemini application framework.
 *
 * An application is a struct xz_app: routes written in C, mounted handlers
 * (static files, CGI, SCGI, or your own), middleware, startup and shutdown
 * hooks and a small string state. Serve it with xz_server_* over TLS, or
 * drive it in-process with the test client (xz_test_*).
 *
 * Conventions: functions return XZ_OK (0) or a negative enum xz_err unless
 * said otherwise; pointer parameters are borrowed unless said "taken";
 * callbacks take their void *arg last and xitzin never frees it.
 *
 * The API is not thread-safe while the app is being built: register routes,
 * mounts, middleware and hooks before serving. Requests of one connection
 * are handled on one worker thread; a handler's callbacks run on that
 * thread (xz_request_base()).
 */
#ifndef XITZIN_H
#define XITZIN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define XITZIN_VERSION "0.1.0"

enum xz_err {
	XZ_OK = 0,
	XZ_EAGAIN = -1, /* need more input: not a failure */
	XZ_ENOMEM = -2,
	XZ_EPARSE = -3,
	XZ_ETOOBIG = -4,
	XZ_EIO = -5,	/* errno was logged where it happened */
	XZ_EINVAL = -6, /* a bad argument, e.g. an invalid status or meta */
	XZ_ESTATE = -7, /* not allowed now, e.g. a second reply */
};

/* A short English description of an enum xz_err. Never NULL. */
const char *xz_strerror(int err);

struct xz_app;
struct xz_request;
struct xz_handler;
struct event_base;

/*
 * Applications.
 */

/* A new, empty app; NULL when out of memory. Free with xz_app_free(). */
struct xz_app *xz_app_new(void);

/*
 * Frees the app, its routes, mounts (and their handlers) and state. It
 * does not run shutdown hooks: the server and the test client do.
 * NULL is a no-op.
 */
void xz_app_free(struct xz_app *app);

/*
 * Handlers: the plugins that answer mounted requests (static files, CGI,
 * SCGI and your own). The core only ever calls these three functions.
 */
struct xz_handler_ops {
	const char *name; /* "static", "cgi", "scgi", ... for the log */
	/*
	 * Starts answering req. Answer now or later (xz_reply, xz_write,
	 * xz_end). Returning non-zero means the handler failed before it
	 * answered: the client gets 40 "Handler error".
	 */
	int (*start)(struct xz_request *req, void *state);
	/*
	 * The client went away (or the server stops) before xz_end(): free
	 * what the request holds (xz_request_data()) and never touch req
	 * again. May be NULL for handlers that always answer within start().
	 */
	void (*cancel)(struct xz_request *req, void *state);
	/* Frees state when the app is freed. May be NULL. */
	void (*dispose)(void *state);
};

/*
 * A handler from an ops table (borrowed: keep it static) and its state
 * (taken: ops->dispose frees it). NULL when out of memory, in which case
 * state has been disposed.
 */
struct xz_handler *xz_handler_new(const struct xz_handler_ops *ops,
    void *state);

/*
 * Mounts handler (taken, even on failure) at prefix. The prefix is
 * normalised ("api", "/api/" and "//api//" all mean "/api"; "" means "/").
 * A mount matches its prefix and everything under prefix + "/" (never
 * "/apiv2" for "/api"); the longest matching mount wins, and mounts win
 * over routes. Returns XZ_EINVAL for a prefix already mounted.
 */
int xz_mount(struct xz_app *app, const char *prefix,
    struct xz_handler *handler);

/*
 * Serves the files under root at prefix: index.gmi for a directory,
 * MIME types by extension (.gmi -> text/gemini), 31 to the slash form for
 * a directory named without its trailing slash, 51 "Not found" for what
 * is missing. Symlinks may not lead out of root. root must exist.
 */
int xz_static(struct xz_app *app, const char *prefix, const char *root);

/*
 * Requests: what a handler or route reads and how it answers.
 */

/* The URL exactly as the client sent it. */
const char *xz_request_url(const struct xz_request *req);
/* The percent-decoded path, dot segments removed: "/users/123". */
const char *xz_request_path(const struct xz_request *req);
/* The raw (still percent-encoded) query, or NULL when there is none. */
const char *xz_request_query(const struct xz_request *req);
/* The host of the URL, lower-cased, IPv6 without brackets. */
const char *xz_request_host(const struct xz_request *req);
/* The port the request arrived on. */
int xz_request_port(const struct xz_request *req);
/* The client's address, "127.0.0.1" or "::1". */
const char *xz_request_remote_addr(const struct xz_request *req);
/*
 * For a mounted handler: the mount prefix ("/api") and the decoded path
 * after it ("/users/123", "" for the prefix itself). "" and the whole path
 * for a route.
 */
const char *xz_request_mount(const struct xz_request *req);
const char *xz_request_path_info(const struct xz_request *req);
/*
 * The client certificate's "SHA256:" + lowercase hex of its DER, or NULL
 * when the client presented none.
 */
const char *xz_request_cert_hash(const struct xz_request *req);
/* The event loop the request runs on: schedule deferred work there. */
struct event_base *xz_request_base(const struct xz_request *req);
/* Per-request data of the handler answering it (set and freed by it). */
void *xz_request_data(const struct xz_request *req);
void xz_request_set_data(struct xz_request *req, void *data);
/* The app the request is dispatched in. */
struct xz_app *xz_request_app(const struct xz_request *req);

/*
 * Answers with a status (10..69) and meta (at most 1024 bytes, no CR, LF
 * or NUL; may be empty only for 2x, 4x, 5x and 6x). Middleware `after`
 * hooks see and may replace both before the header is sent. Statuses
 * other than 2x end the response: no body follows. Returns XZ_EINVAL for
 * an invalid pair (the client then gets 40), XZ_ESTATE for a second reply.
 */
int xz_reply(struct xz_request *req, int status, const char *meta);
/* Appends body bytes (binary-safe) after a 2x reply. */
int xz_write(struct xz_request *req, const void *data, size_t len);
/* Like xz_write for a NUL-terminated string. */
int xz_puts(struct xz_request *req, const char *s);
/*
 * Ends the response: the bytes are flushed, TLS close_notify sent, the
 * connection closed. A request never replied to gets 40 first.
 */
void xz_end(struct xz_request *req);

/*
 * Backpressure for handlers that stream: the number of body bytes queued
 * and not yet taken by the client, and a callback run once when that
 * falls to low or below (cb NULL cancels it).
 */
size_t xz_pending(const struct xz_request *req);
void xz_on_drain(struct xz_request *req, size_t low,
    void (*cb)(struct xz_request *req, void *arg), void *arg);

/* 20 text/gemini with body as the whole response. */
int xz_gemtext(struct xz_request *req, const char *body);

/*
 * Servers: the program is a thin user of these.
 */
struct xz_server;

struct xz_server_opts {
	const char *const *listen; /* "0.0.0.0:1965", "[::1]:1965"; NULL-ended */
	const char *hostname; /* names the URL may carry, comma-separated */
	const char *cert_file; /* PEM; generated with key_file when missing */
	const char *key_file;
	bool key_ed25519;	/* generate Ed25519 instead of ECDSA P-256 */
	int workers;		/* 0: one per core */
	double request_timeout; /* handshake + request line, seconds; 0: 10 */
	double write_timeout;	/* a client that takes no bytes; 0: 60 */
	double drain_timeout; /* graceful stop bound; 0: 10 */
	bool quiet;	      /* no access log */
};

/*
 * Binds the listeners and loads (or generates) the certificate. Returns
 * NULL and writes the reason to errbuf on failure. app stays the caller's
 * and must outlive the server.
 */
struct xz_server *xz_server_new(struct xz_app *app,
    const struct xz_server_opts *opts, char *errbuf, size_t errlen);
/*
 * Runs the startup hooks, serves until SIGTERM/SIGINT or xz_server_stop(),
 * lets in-flight requests finish (up to drain_timeout), runs the shutdown
 * hooks and returns XZ_OK.
 */
int xz_server_run(struct xz_server *srv);
/* Asks a running server to stop, from any thread or a signal handler. */
void xz_server_stop(struct xz_server *srv);
/* The port a listener was bound to (useful with port 0), or -1. */
int xz_server_port(const struct xz_server *srv, size_t listener);
void xz_server_free(struct xz_server *srv);

#ifdef __cplusplus
}
#endif
#endif /* XITZIN_H */
