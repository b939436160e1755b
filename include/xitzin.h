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
	XZ_EIO = -5,    /* errno was logged where it happened */
	XZ_EINVAL = -6, /* a bad argument, e.g. an invalid status or meta */
	XZ_ESTATE = -7, /* not allowed now, e.g. a second reply */
};

/* A short English description of an enum xz_err. Never NULL. */
const char *xz_strerror(int err);

/*
 * The library is silent by default. This turns its log on: errors (with
 * the details clients never see) and, unless the server's opts.quiet,
 * one access line per request, on stderr; verbose adds debug lines.
 */
void xz_log_enable(bool verbose);

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
 * Routes: C functions answering paths. Patterns are exact paths with
 * optional parameters: "{name}" matches one non-empty segment and
 * "{name:path}" the non-empty rest of the path (only as the last
 * segment): "/users/{id}", "/files/{rest:path}". The whole path must
 * match; among routes the first registered wins; mounts win over routes.
 * A route answers now or later (then it must end the response itself:
 * xz_end). Returning non-zero means it failed: the client gets 40.
 */
typedef int (*xz_route_fn)(struct xz_request *req, void *arg);
int xz_route(struct xz_app *app, const char *pattern, xz_route_fn fn,
    void *arg);
/* A route parameter by name ("id" for "{id}"), decoded; NULL if none. */
const char *xz_param(const struct xz_request *req, const char *name);

/*
 * Middleware wraps every request, mounted ones included. The first
 * registered is the outermost: with two, the order is first.before,
 * second.before, handler, second.after, first.after.
 *
 * before (may be NULL) runs before dispatch. It may answer early (e.g.
 * xz_respond): then dispatch stops and only the outer middlewares' after
 * hooks run. Returning non-zero without answering gives 40.
 *
 * after (may be NULL) sees the status and meta about to be sent, errors
 * included (a 43 from SCGI), before any byte leaves; it may replace them
 * by setting res->status and res->meta (which must live until it
 * returns; it is copied). A replaced pair that is not a valid Gemini
 * header becomes 40.
 */
struct xz_response {
	int status;
	const char *meta;
};
struct xz_middleware {
	int (*before)(struct xz_request *req, void *arg);
	void (
	    *after)(struct xz_request *req, struct xz_response *res, void *arg);
};
/* mw is copied; arg is passed to both hooks. */
int xz_middleware(struct xz_app *app, const struct xz_middleware *mw,
    void *arg);

/*
 * Hooks: startup hooks run in registration order before the first
 * request (a non-zero return stops the server from starting); shutdown
 * hooks run in reverse order after the last.
 */
typedef int (*xz_hook_fn)(struct xz_app *app, void *arg);
int xz_on_startup(struct xz_app *app, xz_hook_fn fn, void *arg);
int xz_on_shutdown(struct xz_app *app, xz_hook_fn fn, void *arg);

/*
 * App state: string keys and values (both copied). Safe from any thread;
 * a value returned by xz_state_get stays valid until the app is freed,
 * even when the key is set again. NULL when unset.
 */
int xz_state_set(struct xz_app *app, const char *key, const char *value);
const char *xz_state_get(struct xz_app *app, const char *key);

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
 * A response is a header (xz_reply), body bytes after a 2x header
 * (xz_write), and its end (xz_end). After xz_end the request belongs to
 * the server again: do not touch it.
 *
 * Answers with a status (10..69) and meta (at most 1024 bytes, no CR, LF
 * or NUL; may be empty only for 2x, 4x, 5x and 6x). Middleware `after`
 * hooks see and may replace both before the header is sent. After a
 * status other than 2x no body follows (xz_write returns XZ_ESTATE) but
 * the response still ends with xz_end. An invalid pair is logged and the
 * client gets 40 instead; XZ_ESTATE for a second reply.
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
 * Input (Gemini 10/11): the query, percent-decoded, when the request
 * carries one ("" for a bare "?"); NULL when it has none. Binary-safe
 * callers should use xz_request_query and decode themselves.
 */
const char *xz_request_input(struct xz_request *req);
/* Asks for input: 10 (11 when sensitive) with prompt; ends the response. */
int xz_input(struct xz_request *req, const char *prompt, bool sensitive);
/*
 * A route that needs input: without a query the client gets 10 (11 when
 * sensitive) with prompt; with one, fn runs and reads xz_request_input.
 */
int xz_input_route(struct xz_app *app, const char *pattern, const char *prompt,
    bool sensitive, xz_route_fn fn, void *arg);
/* Redirects: 30 (31 when permanent) to url; ends the response. */
int xz_redirect(struct xz_request *req, const char *url, bool permanent);
/*
 * Client certificates. xz_require_cert returns true when the client
 * presented one; otherwise it answers 60 "Certificate required" (ending
 * the response) and returns false. xz_require_cert_in also wants the
 * certificate's hash among hashes (NULL-ended "SHA256:..." strings) and
 * answers 61 "Certificate not authorised" when it is not.
 */
bool xz_require_cert(struct xz_request *req);
bool xz_require_cert_in(struct xz_request *req, const char *const *hashes);

/*
 * For a route that answers later: fn runs if the client goes away (or the
 * server stops) before xz_end, so the route can drop its timers and
 * state. After it, req is gone. Mounted handlers use ops->cancel instead.
 */
void xz_request_on_cancel(struct xz_request *req,
    void (*fn)(struct xz_request *req, void *arg), void *arg);

/*
 * Backpressure for handlers that stream: the number of body bytes queued
 * and not yet taken by the client, and a callback run once when that
 * falls to low or below (cb NULL cancels it).
 */
size_t xz_pending(const struct xz_request *req);
void xz_on_drain(struct xz_request *req, size_t low,
    void (*cb)(struct xz_request *req, void *arg), void *arg);

/* xz_reply + xz_end: an answer with no body (30, 51, 10, ...). */
int xz_respond(struct xz_request *req, int status, const char *meta);
/* 20 text/gemini with body as the whole response (ends it). */
int xz_gemtext(struct xz_request *req, const char *body);

/*
 * Registration errors: the reason for the last XZ_EINVAL a registration
 * call (xz_mount, xz_route, xz_scgi, xz_cgi, ...) returned for this app,
 * such as "scgi /api: host given without port". "" when none.
 */
const char *xz_app_error(const struct xz_app *app);

/*
 * SCGI backends: persistent processes in any language, reached over TCP
 * or a Unix socket. The backend gets the CGI variable set as an SCGI
 * netstring (CONTENT_LENGTH first, SCGI=1, empty values left out) and
 * answers with a Gemini line ("20 text/gemini\r\n..."), a CGI header
 * block ("Status: 20 text/gemini\r\n\r\n...") or NPH ("GEMINI 20
 * ...\r\n\r\n..."). Failures are 43 with these metas: "Failed to connect
 * to SCGI backend", "SCGI connection timeout", "SCGI backend timeout",
 * "SCGI response exceeds maximum size", "SCGI backend error"; the details
 * go to the log only.
 */
struct xz_scgi_config {
	/* Bounds the connect, then each wait for the backend's next bytes. */
	double timeout; /* seconds; default 30.0 */
	/*
	 * Bytes the backend may send, header included; default 1048576.
	 * With a limit the answer is held until complete (so that "too
	 * large" can still be a 43); 0 = unlimited: it streams to the client
	 * with backpressure, in constant memory.
	 */
	size_t max_response_size;
	size_t buffer_size;       /* read chunk; default 8192 */
	bool inherit_environment; /* pass the server's environment; true */
	/* State keys sent as XITZIN_<KEY>; NULL-ended, NULL for none; the
	 * strings are copied at registration. */
	const char *const *app_state_keys;
	/*
	 * A bound on the whole answer, from the moment the backend has the
	 * request, however steadily it drips (timeout is per wait); default
	 * 0: off. Before the header it is a 43 "SCGI backend timeout"; after,
	 * the connection is cut without close_notify.
	 */
	double max_duration;
};

/* Sets the document's defaults (above). */
void xz_scgi_config_init(struct xz_scgi_config *cfg);

/* Where a backend is: host + port (TCP) or socket_path (Unix), not both. */
struct xz_scgi_opts {
	const char
	    *host; /* a name or an IP literal, resolved at registration */
	int port;
	const char *socket_path;
	const struct xz_scgi_config *config; /* NULL: the defaults */
};

/*
 * app.scgi(prefix, ...): mounts an SCGI backend at prefix. XZ_EINVAL (see
 * xz_app_error, e.g. "scgi /api: host given without port") for both or
 * neither of TCP and socket, a host without a port or a port without a
 * host, a port outside 1..65535, a host that does not resolve, a socket
 * path too long for sockaddr_un, timeout <= 0, buffer_size 0, or a prefix
 * already mounted. opts and everything it points to are copied.
 */
int xz_scgi(struct xz_app *app, const char *prefix,
    const struct xz_scgi_opts *opts);
/*
 * SCGIHandler / SCGIApp: the explicit handlers, for xz_mount() (which
 * takes them). cfg may be NULL (defaults) and is copied. NULL on a bad
 * argument (as for xz_scgi; xz_mount then fails with XZ_EINVAL) or when
 * out of memory.
 */
struct xz_handler *xz_scgi_tcp(const char *host, int port,
    const struct xz_scgi_config *cfg);
struct xz_handler *xz_scgi_unix(const char *socket_path,
    const struct xz_scgi_config *cfg);

/*
 * CGI scripts (RFC 3875): a new process per request, the same variable
 * set as SCGI in its environment, output in the same three shapes.
 * Failures are 42: "CGI script not executable", "CGI script timeout",
 * "CGI script error", "CGI response exceeds maximum size"; a missing
 * script is 51 "Not found"; too many scripts at once is 44.
 */
struct xz_cgi_config {
	double timeout;           /* seconds without output; default 30 */
	size_t max_response_size; /* default 1048576; 0 = unlimited */
	bool inherit_environment; /* default true */
	const char *const *app_state_keys; /* as for SCGI */
	int max_processes;                 /* concurrent scripts; default 64 */
	double max_duration; /* whole answer, as for SCGI; default 0: off */
};

void xz_cgi_config_init(struct xz_cgi_config *cfg);

/*
 * Mounts the executable files of dir at prefix: the first path segment
 * after prefix names the script, the rest is PATH_INFO. cfg may be NULL.
 */
int xz_cgi(struct xz_app *app, const char *prefix, const char *dir,
    const struct xz_cgi_config *cfg);
/* Mounts one script at prefix: all of the path after it is PATH_INFO. */
int xz_cgi_script(struct xz_app *app, const char *prefix, const char *script,
    const struct xz_cgi_config *cfg);

/*
 * Servers: the program is a thin user of these.
 */
struct xz_server;

struct xz_server_opts {
	const char *const
	    *listen;           /* "0.0.0.0:1965", "[::1]:1965"; NULL-ended */
	const char *hostname;  /* names the URL may carry, comma-separated */
	const char *cert_file; /* PEM; generated with key_file when missing */
	const char *key_file;
	bool key_ed25519;       /* generate Ed25519 instead of ECDSA P-256 */
	int workers;            /* 0: one per core */
	double request_timeout; /* handshake + request line, seconds; 0: 10 */
	/*
	 * A client that takes no bytes for this long is dropped (nginx's
	 * send_timeout; bytes its TCP acknowledged count); 0: 60.
	 */
	double write_timeout;
	/*
	 * While a response waits for the client, it must take this many
	 * bytes a second over each write_timeout-long stretch, or be
	 * dropped. 0: 1024; negative: no minimum (write_timeout only).
	 */
	long send_min_rate;
	double drain_timeout; /* graceful stop bound; 0: 10 */
	bool quiet;           /* no access log */
	/*
	 * Started as root: after binding and reading the keys, before the
	 * startup hooks, chroot to chroot_dir (if set) and become user (if
	 * set). Paths used later (SCGI socket paths) are then inside the
	 * chroot; mounted directories stay reachable (opened before).
	 */
	const char *user;
	const char *chroot_dir;
	/*
	 * Connections over these are closed as soon as accepted, before
	 * any TLS work (0: no limit but the file descriptor limit).
	 */
	unsigned max_connections;             /* in all, across workers */
	unsigned max_connections_per_address; /* from one client address */
};

/*
 * Binds the listeners and loads (or generates) the certificate. Returns
 * NULL and writes the reason to errbuf on failure. app stays the caller's
 * and must outlive the server.
 */
struct xz_server *xz_server_new(struct xz_app *app,
    const struct xz_server_opts *opts, char *errbuf, size_t errlen);
/*
 * Drops privileges (opts.user, opts.chroot_dir), runs the startup hooks,
 * serves until SIGTERM/SIGINT or xz_server_stop(),
 * lets in-flight requests finish (up to drain_timeout), runs the shutdown
 * hooks and returns XZ_OK.
 */
int xz_server_run(struct xz_server *srv);
/* Asks a running server to stop, from any thread or a signal handler. */
void xz_server_stop(struct xz_server *srv);
/* The port a listener was bound to (useful with port 0), or -1. */
int xz_server_port(const struct xz_server *srv, size_t listener);
void xz_server_free(struct xz_server *srv);

/*
 * The in-process test client: the app's real dispatch path over a
 * socketpair, no TLS, on the client's own event loop (SCGI and CGI
 * backends are still real). Startup hooks run in xz_test_client_new (NULL
 * if one fails), shutdown hooks in xz_test_client_free.
 */
struct xz_test_client;

struct xz_test_response {
	int status;          /* 0 when no valid header came back */
	char *meta;          /* never NULL */
	unsigned char *body; /* binary-safe: body_len bytes, NUL after */
	size_t body_len;
	char *mime_type; /* 2x: the meta before any ';', trimmed; else NULL */
};

struct xz_test_client *xz_test_client_new(struct xz_app *app);
void xz_test_client_free(struct xz_test_client *tc);
/* Presents a fake client certificate with this hash ("SHA256:..."). */
int xz_test_client_set_cert(struct xz_test_client *tc, const char *hash);
/* How long one request may take (default 60 s): then status 0. */
void xz_test_client_set_timeout(struct xz_test_client *tc, double seconds);
/* The loop requests run on (for test backends that share it). */
struct event_base *xz_test_client_base(const struct xz_test_client *tc);
/*
 * GET gemini://localhost + path; query (may be NULL) is percent-encoded
 * and appended. xz_test_request sends a raw URL line (CRLF added). NULL
 * only when out of memory. Free with xz_test_response_free.
 */
struct xz_test_response *xz_test_get(struct xz_test_client *tc,
    const char *path);
struct xz_test_response *xz_test_get_query(struct xz_test_client *tc,
    const char *path, const char *query);
struct xz_test_response *xz_test_request(struct xz_test_client *tc,
    const char *line);
void xz_test_response_free(struct xz_test_response *r);
bool xz_test_is_success(const struct xz_test_response *r);        /* 2x */
bool xz_test_is_input_required(const struct xz_test_response *r); /* 1x */
bool xz_test_is_redirect(const struct xz_test_response *r);       /* 3x */
bool xz_test_is_error(const struct xz_test_response *r);          /* 4x-6x */
bool xz_test_is_certificate_required(const struct xz_test_response *r);
/* The meta of a 3x (the redirect URL) or of a 1x (the prompt); or NULL. */
const char *xz_test_redirect_url(const struct xz_test_response *r);
const char *xz_test_input_prompt(const struct xz_test_response *r);

/*
 * The program's configuration file, xitzin.conf (see xitzin.conf(5)).
 */
struct xz_config;

/*
 * Reads the INI file at path. Returns NULL and writes "file:line: reason"
 * to errbuf on failure (unknown section or key, bad value). Relative paths
 * inside are taken from the file's directory.
 */
struct xz_config *xz_config_load(const char *path, char *errbuf, size_t errlen);
/* The [server] options; valid while cfg lives. */
const struct xz_server_opts *xz_config_server_opts(const struct xz_config *cfg);
/* Sets [state] and mounts every [static|scgi|cgi PREFIX] section on app. */
int xz_config_apply(struct xz_config *cfg, struct xz_app *app, char *errbuf,
    size_t errlen);
void xz_config_free(struct xz_config *cfg);

#ifdef __cplusplus
}
#endif
#endif /* XITZIN_H */
