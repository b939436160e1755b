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

/*
 * Marks what libxitzin exports. The library is built with hidden
 * visibility, so that its private functions (log_warn, url_parse, ...)
 * never meet an application's own names: only XZ_API declarations
 * leave libxitzin.so, and all of them are named xz_.
 */
#if defined(__GNUC__) || defined(__clang__)
#define XZ_API __attribute__((visibility("default")))
#else
#define XZ_API
#endif

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
XZ_API const char *xz_strerror(int err);

/*
 * The library is silent by default. This turns its log on: errors (with
 * the details clients never see) and, unless the server's opts.quiet,
 * one access line per request, on stderr; verbose adds debug lines.
 */
XZ_API void xz_log_enable(bool verbose);

/* The access line's shape (xitzin.conf(5), log_style). */
enum xz_log_style {
	XZ_LOG_XITZIN =
	    0,           /* TIME ADDR "URL" STATUS BYTES SNI CERT DURATIONms */
	XZ_LOG_COMMON,   /* NCSA common: ADDR - - [TIME] "URL" STATUS BYTES */
	XZ_LOG_COMBINED, /* common + "referer" "agent" (always "-") */
};

/* How much of the client's address the access log keeps. */
enum xz_log_ip {
	XZ_LOG_IP_FULL = 0,
	XZ_LOG_IP_TRUNCATED, /* its /24 (IPv4) or /48 (IPv6) network */
	XZ_LOG_IP_OFF,       /* "-" */
};

/*
 * Where the logs go, each: NULL or "stderr", "syslog" (facility daemon),
 * "off", or a file appended to (both logs may name the same one). Every
 * byte a client chose is escaped (\r, \x1b, \", invalid UTF-8 as \xHH).
 * Error lines carry a level ("xitzin: warning: ..."); lines written to a
 * file carry a timestamp, those to journald (JOURNAL_STREAM) none but a
 * <N> priority prefix. Zeroed opts: all to stderr, as before.
 */
struct xz_log_opts {
	const char *access_log;
	const char *error_log;
	enum xz_log_style style;
	enum xz_log_ip ip;
	bool no_query; /* the URL without its query (user input) */
};

/*
 * Opens the logs as o says, before the server starts (files are opened
 * now, before privileges are dropped). Returns XZ_OK, or an error with
 * the reason in errbuf; the logs then go to stderr.
 */
XZ_API int xz_log_open(const struct xz_log_opts *o, char *errbuf,
    size_t errlen);
/*
 * Reopens log files by name (logrotate moved them); the server does so
 * on SIGUSR1. A file that cannot be reopened keeps the old one, logged.
 */
XZ_API int xz_log_reopen(void);
/* Closes log files and syslog; the logs go back to stderr. */
XZ_API void xz_log_close(void);

struct xz_app;
struct xz_request;
struct xz_handler;
struct event_base;

/*
 * Applications.
 */

/* A new, empty app; NULL when out of memory. Free with xz_app_free(). */
XZ_API struct xz_app *xz_app_new(void);

/*
 * Frees the app, its routes, mounts (and their handlers) and state. It
 * does not run shutdown hooks: the server and the test client do.
 * NULL is a no-op.
 */
XZ_API void xz_app_free(struct xz_app *app);

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
 * (taken: ops->dispose frees it). NULL when out of memory or ops has no
 * start, in which case state has been disposed (see xz_handler_error).
 */
XZ_API struct xz_handler *xz_handler_new(const struct xz_handler_ops *ops,
    void *state);
/*
 * Frees a handler that was never mounted (xz_scgi_tcp, xz_handler_new,
 * ...), disposing of its state. A mounted handler belongs to the app:
 * never free it. NULL is a no-op.
 */
XZ_API void xz_handler_free(struct xz_handler *handler);

/*
 * Mounts handler (taken, even on failure) at prefix. The prefix is
 * normalised ("api", "/api/" and "//api//" all mean "/api"; "" means "/").
 * A mount matches its prefix and everything under prefix + "/" (never
 * "/apiv2" for "/api"); the longest matching mount wins, and mounts win
 * over routes. Returns XZ_EINVAL for a prefix already mounted. handler
 * may be NULL, the result of a failed constructor (xz_mount(app, "/api",
 * xz_scgi_tcp(...)) is fine): then nothing is mounted, and the call
 * returns that constructor's code with its reason in xz_app_error().
 */
XZ_API int xz_mount(struct xz_app *app, const char *prefix,
    struct xz_handler *handler);

/*
 * Serves the files under root at prefix: index.gmi for a directory,
 * MIME types by extension (.gmi -> text/gemini), 31 to the slash form for
 * a directory named without its trailing slash, 51 "Not found" for what
 * is missing. Symlinks may not lead out of root. root must be a
 * directory we can open: XZ_EINVAL otherwise, with the reason in
 * xz_app_error() ("static /: root /srv: No such file or directory").
 */
XZ_API int xz_static(struct xz_app *app, const char *prefix, const char *root);
/*
 * By default a path with a segment starting with "." (/.env, /.git/config,
 * /a/.hidden/b) gets 51 "Not found", the answer for a missing file, so a
 * probe cannot tell it exists; /.well-known/ (RFC 8615) is served.
 * Zero-filled (or NULL) options are xz_static's.
 */
struct xz_static_opts {
	bool serve_hidden; /* serve dot-files like any other */
};
XZ_API int xz_static_with(struct xz_app *app, const char *prefix,
    const char *root, const struct xz_static_opts *opts);

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
XZ_API int xz_route(struct xz_app *app, const char *pattern, xz_route_fn fn,
    void *arg);
/* A route parameter by name ("id" for "{id}"), decoded; NULL if none. */
XZ_API const char *xz_param(const struct xz_request *req, const char *name);

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
 * header becomes 40. Or it may answer instead, body included (below).
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
XZ_API int xz_middleware(struct xz_app *app, const struct xz_middleware *mw,
    void *arg);

/*
 * Rate limits per client address (Molly Brown's and Jetforce's 44): each
 * address has a bucket of burst requests, refilled at rate a second; a
 * request that finds it empty is answered 44 with the whole seconds to
 * wait as meta (at least 1), before any handler runs, and logged once a
 * minute per address. prefix NULL or "/": every request; else only the
 * paths under prefix (by segment, as mounts), where it replaces the
 * shorter ones' limit (the longest prefix wins; rate 0 there: no limit).
 * burst 0: twice the rate, at least 1. Memory is fixed whatever the
 * number of clients: 2 MiB per prefix limited (65,536 addresses; past
 * them an address whose bucket is full is forgotten first). Runs as a
 * middleware registered at the first call: call it before the others to
 * keep limited requests from them. XZ_EINVAL for a rate or burst
 * outside 0 to 1,000,000, a prefix not starting with '/', or one
 * already limited.
 */
XZ_API int xz_rate_limit(struct xz_app *app, const char *prefix, double rate,
    double burst);

/*
 * Answering instead (the document's "maybe try a fallback"), from an
 * after hook only: the answer it sees is discarded, and fn(req, arg)
 * answers as a route would (xz_reply, xz_write, xz_end, now or later,
 * xz_request_on_cancel); or handler (borrowed: it must outlive the
 * request, e.g. made with xz_scgi_tcp and freed with xz_handler_free
 * after xz_app_free) answers, with the request's mount and path info
 * unchanged. This is always possible inside an after hook: the hooks
 * run inside xz_reply before the header is queued, so nothing of the
 * answer has reached the client, whatever made it (a 43 or any answer
 * of SCGI and CGI, held or streamed, a route, a handler, a before
 * hook). The maker of the discarded answer carries on unaware (its
 * writes are dropped) until it ends, or is cancelled as if the client
 * had gone; the new answer starts from the event loop after the hook,
 * and only the after hooks of middlewares outside this one see it (as
 * with call_next). The hook should leave res alone (it is ignored).
 * XZ_ESTATE outside an after hook or for a second call in one hook,
 * XZ_EINVAL for NULL fn or handler, XZ_ENOMEM.
 */
XZ_API int xz_request_replace(struct xz_request *req, xz_route_fn fn,
    void *arg);
XZ_API int xz_request_replace_handler(struct xz_request *req,
    struct xz_handler *handler);

/*
 * Per-request storage for middleware, under a key of its own (any
 * address unique to it: its struct xz_middleware, its arg). Setting a
 * key again replaces its data (the old one freed by its free_fn); when
 * the request ends (answered, or the client gone) each free_fn (may be
 * NULL) runs on its data. XZ_EINVAL for a NULL key, XZ_ENOMEM.
 * xz_request_mw_data returns NULL for a key never set.
 */
XZ_API int xz_request_set_mw_data(struct xz_request *req, const void *key,
    void *data, void (*free_fn)(void *));
XZ_API void *xz_request_mw_data(const struct xz_request *req, const void *key);

/*
 * Hooks: startup hooks run in registration order before the first
 * request (a non-zero return stops the server from starting); shutdown
 * hooks run in reverse order after the last.
 */
typedef int (*xz_hook_fn)(struct xz_app *app, void *arg);
XZ_API int xz_on_startup(struct xz_app *app, xz_hook_fn fn, void *arg);
XZ_API int xz_on_shutdown(struct xz_app *app, xz_hook_fn fn, void *arg);

/*
 * Periodic tasks, the original's @app.task(interval=...): fn runs every
 * seconds (> 0), first one interval after the app starts. The server
 * starts its tasks after the startup hooks and stops them before the
 * shutdown hooks (a run under way finishes first); so does the test
 * client, from xz_test_client_new to xz_test_client_free. All of an
 * app's tasks run one at a time on one thread of their own, never on a
 * worker: a task never runs beside itself, and a run that overruns its
 * interval delays the next instead of piling runs up. Use xz_state_set
 * (safe from any thread) to hand results to requests. A non-zero return
 * is logged, not fatal: the task runs again at its next interval.
 * XZ_EINVAL for no fn or an interval that is not a positive number;
 * XZ_ESTATE once the app has started.
 */
typedef int (*xz_task_fn)(struct xz_app *app, void *arg);
XZ_API int xz_every(struct xz_app *app, double seconds, xz_task_fn fn,
    void *arg);

/*
 * App state: string keys and values (both copied). Safe from any thread.
 * xz_state_get returns NULL when unset. A value read while answering a
 * request stays valid until that request ends (xz_end, or its cancel),
 * even if another thread sets the key again meanwhile: a replaced value
 * is freed once no request in flight can hold it, so runtime updates do
 * not make memory grow. Outside requests (hooks, your own threads) a
 * value stays valid until its key is next set: copy it first if another
 * thread may set it.
 */
XZ_API int xz_state_set(struct xz_app *app, const char *key, const char *value);
XZ_API const char *xz_state_get(struct xz_app *app, const char *key);

/*
 * Requests: what a handler or route reads and how it answers.
 */

/* The URL exactly as the client sent it. */
XZ_API const char *xz_request_url(const struct xz_request *req);
/* The percent-decoded path, dot segments removed: "/users/123". */
XZ_API const char *xz_request_path(const struct xz_request *req);
/* The raw (still percent-encoded) query, or NULL when there is none. */
XZ_API const char *xz_request_query(const struct xz_request *req);
/* The host of the URL, lower-cased, IPv6 without brackets. */
XZ_API const char *xz_request_host(const struct xz_request *req);
/* The port the request arrived on. */
XZ_API int xz_request_port(const struct xz_request *req);
/* The client's address, "127.0.0.1" or "::1". */
XZ_API const char *xz_request_remote_addr(const struct xz_request *req);
/*
 * For a mounted handler: the mount prefix ("/api") and the decoded path
 * after it ("/users/123", "" for the prefix itself). "" and the whole path
 * for a route.
 */
XZ_API const char *xz_request_mount(const struct xz_request *req);
XZ_API const char *xz_request_path_info(const struct xz_request *req);
/*
 * The client certificate's "SHA256:" + lowercase hex of its DER, or NULL
 * when the client presented none.
 */
XZ_API const char *xz_request_cert_hash(const struct xz_request *req);
/* The event loop the request runs on: schedule deferred work there. */
XZ_API struct event_base *xz_request_base(const struct xz_request *req);
/* Per-request data of the handler answering it (set and freed by it). */
XZ_API void *xz_request_data(const struct xz_request *req);
XZ_API void xz_request_set_data(struct xz_request *req, void *data);
/* The app the request is dispatched in. */
XZ_API struct xz_app *xz_request_app(const struct xz_request *req);

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
XZ_API int xz_reply(struct xz_request *req, int status, const char *meta);
/* Appends body bytes (binary-safe) after a 2x reply. */
XZ_API int xz_write(struct xz_request *req, const void *data, size_t len);
/* Like xz_write for a NUL-terminated string. */
XZ_API int xz_puts(struct xz_request *req, const char *s);
/*
 * Ends the response: the bytes are flushed, TLS close_notify sent, the
 * connection closed. A request never replied to gets 40 first.
 */
XZ_API void xz_end(struct xz_request *req);

/*
 * Input (Gemini 10/11): the query, percent-decoded, when the request
 * carries one ("" for a bare "?"); NULL when it has none. Binary-safe
 * callers should use xz_request_query and decode themselves.
 */
XZ_API const char *xz_request_input(struct xz_request *req);
/* Asks for input: 10 (11 when sensitive) with prompt; ends the response. */
XZ_API int xz_input(struct xz_request *req, const char *prompt, bool sensitive);
/*
 * A route that needs input: without a query the client gets 10 (11 when
 * sensitive) with prompt; with one, fn runs and reads xz_request_input.
 */
XZ_API int xz_input_route(struct xz_app *app, const char *pattern,
    const char *prompt, bool sensitive, xz_route_fn fn, void *arg);
/* Redirects: 30 (31 when permanent) to url; ends the response. */
XZ_API int xz_redirect(struct xz_request *req, const char *url, bool permanent);
/*
 * Client certificates. xz_require_cert returns true when the client
 * presented one; otherwise it answers 60 "Certificate required" (ending
 * the response) and returns false. xz_require_cert_in also wants the
 * certificate's hash among hashes (NULL-ended "SHA256:..." strings) and
 * answers 61 "Certificate not authorised" when it is not.
 */
XZ_API bool xz_require_cert(struct xz_request *req);
XZ_API bool xz_require_cert_in(struct xz_request *req,
    const char *const *hashes);

/*
 * For a route that answers later: fn runs if the client goes away (or the
 * server stops) before xz_end, so the route can drop its timers and
 * state. After it, req is gone. Mounted handlers use ops->cancel instead.
 */
XZ_API void xz_request_on_cancel(struct xz_request *req,
    void (*fn)(struct xz_request *req, void *arg), void *arg);

/*
 * Backpressure for handlers that stream: the number of body bytes queued
 * and not yet taken by the client, and a callback run once when that
 * falls to low or below (cb NULL cancels it).
 */
XZ_API size_t xz_pending(const struct xz_request *req);
XZ_API void xz_on_drain(struct xz_request *req, size_t low,
    void (*cb)(struct xz_request *req, void *arg), void *arg);

/* xz_reply + xz_end: an answer with no body (30, 51, 10, ...). */
XZ_API int xz_respond(struct xz_request *req, int status, const char *meta);
/* 20 text/gemini with body as the whole response (ends it). */
XZ_API int xz_gemtext(struct xz_request *req, const char *body);

/*
 * Titan uploads (titan://host/path;size=N;mime=T;token=X, Gemini's
 * upload companion). The server takes them only where a Titan route or
 * a mount whose config has .titan says so; elsewhere 59 "Titan not
 * accepted here". A missing or bad size is 59 "Bad request"; a size
 * over the place's max_upload_size (0: 10 MiB) is 59 "Upload larger
 * than N bytes", before any byte of the body is read. size 0 asks for a
 * delete. The body follows the request line; a client that stops
 * sending it for request_timeout, or closes before its end, is dropped
 * (logged) and the handler cancelled.
 *
 * The body reaches the handler as it arrives, at most XZ_UPLOAD_WINDOW
 * (64 KiB) held at a time: the client is not read again until the
 * handler takes some, so an upload of any size passes in constant
 * memory. xz_upload_read returns the bytes copied, 0 once the whole
 * body has been read, or XZ_EAGAIN when the next bytes have not come
 * yet: xz_upload_on_data's callback then runs when they do (each time
 * bytes come, the last time with the end of the body). Answer when
 * done, as any handler; an answer before the end drops the rest.
 */
#define XZ_DEFAULT_MAX_UPLOAD ((size_t)10 * 1024 * 1024)
XZ_API bool xz_request_is_upload(const struct xz_request *req);
XZ_API size_t xz_upload_size(const struct xz_request *req); /* 0: delete */
XZ_API const char *xz_upload_mime(const struct xz_request *req);
XZ_API const char *xz_upload_token(const struct xz_request *req); /* or NULL */
XZ_API ssize_t xz_upload_read(struct xz_request *req, void *buf, size_t len);
XZ_API void xz_upload_on_data(struct xz_request *req,
    void (*cb)(struct xz_request *req, void *arg), void *arg);
/*
 * For a route with .whole: the whole body, contiguous, valid until
 * xz_end (len 0 for a delete); NULL before it has all come.
 */
XZ_API const void *xz_upload_body(struct xz_request *req, size_t *len);

/*
 * A Titan route: fn answers Titan uploads to pattern (parameters as for
 * xz_route). Gemini requests never match it, so the same path may have
 * a Gemini route that shows what was uploaded. opts may be NULL (the
 * defaults) and is copied, tokens too.
 */
struct xz_titan_opts {
	size_t max_upload_size; /* 0: XZ_DEFAULT_MAX_UPLOAD */
	/*
	 * NULL-ended tokens allowed; NULL: any or none. With a list, an
	 * upload without a token gets 60 "Token required", one with a
	 * token not in it 61 "Token not authorised", and fn never runs.
	 */
	const char *const *tokens;
	/*
	 * fn runs once the whole body has come (xz_upload_body); held in
	 * memory, so keep max_upload_size in proportion. false: fn runs
	 * at once and reads the body as it arrives (xz_upload_read).
	 */
	bool whole;
};
XZ_API int xz_titan_route(struct xz_app *app, const char *pattern,
    xz_route_fn fn, void *arg);
XZ_API int xz_titan_route_opts(struct xz_app *app, const char *pattern,
    const struct xz_titan_opts *opts, xz_route_fn fn, void *arg);

/*
 * Registration errors: the reason for the last failure (XZ_EINVAL,
 * XZ_ENOMEM) of a registration call on this app (xz_mount, xz_static,
 * xz_route, xz_input_route, xz_middleware, xz_on_startup, xz_on_shutdown,
 * xz_every, xz_state_set, xz_scgi, xz_cgi, xz_cgi_script), such as "scgi /api:
 * host given without port" or "static /: root /srv: No such file or directory".
 * A call that succeeds leaves it as it was (like errno).
 * "" when none.
 */
XZ_API const char *xz_app_error(const struct xz_app *app);
/*
 * Why the last handler constructor (xz_handler_new, xz_scgi_tcp,
 * xz_scgi_unix) called on this thread returned NULL; "" after one that
 * succeeded. The handlers have no app yet: xz_mount(app, prefix, NULL)
 * copies this reason into xz_app_error() and returns the constructor's
 * code, so a failed constructor passed straight to xz_mount reports like
 * any registration call. Never NULL.
 */
XZ_API const char *xz_handler_error(void);

/*
 * Backends: CGI scripts and SCGI servers share one config, the fields of
 * SCGIConfig; only what differs (a process, or a socket) is theirs.
 *
 * Zero means default, field by field: a zero-filled config (or NULL) is
 * exactly the document's defaults, and { .timeout = 60 } changes the
 * timeout alone. XZ_UNLIMITED asks for no size limit; the one boolean
 * whose default is true is spelled so that zero keeps it
 * (no_inherit_environment). xz_scgi_config_init() and
 * xz_cgi_config_init() still fill in the defaults explicitly.
 */
#define XZ_UNLIMITED ((size_t)-1) /* max_response_size: no limit */

/* The fields, once: struct xz_backend_config and struct xz_scgi_opts. */
#define XZ_BACKEND_CONFIG_FIELDS                                               \
	/*                                                                     \
	 * Seconds: SCGI, the connect; then, for both, each wait for the       \
	 * backend's next bytes. 0: 30.0; negative is refused.                 \
	 */                                                                    \
	double timeout;                                                        \
	/*                                                                     \
	 * Bytes the backend may send, header included; 0: 1048576. With       \
	 * a limit the answer is held until complete (so that "too large"      \
	 * can still be an error); XZ_UNLIMITED: it streams to the client      \
	 * with backpressure, in constant memory.                              \
	 */                                                                    \
	size_t max_response_size;                                              \
	/* Bytes read at a time; 0: SCGI 8192, CGI 65536 (a pipe's). */        \
	size_t buffer_size;                                                    \
	/*                                                                     \
	 * false (the default): the backend gets the server's whole            \
	 * environment too, secrets included (in clear text over TCP for       \
	 * SCGI); true: only the request's variables.                          \
	 */                                                                    \
	bool no_inherit_environment;                                           \
	/* State keys sent as XITZIN_<KEY>; NULL-ended, NULL for none; the     \
	 * strings are copied at registration. */                              \
	const char *const *app_state_keys;                                     \
	/*                                                                     \
	 * A bound on the whole answer, from the moment the backend has        \
	 * the request, however steadily it drips (timeout is per wait);       \
	 * 0: off. Before the header it is the timeout's error; after,         \
	 * the connection is cut without close_notify.                         \
	 */                                                                    \
	double max_duration;                                                   \
	int max_processes; /* CGI only: scripts at once per mount; 0: 64 */    \
	/*                                                                     \
	 * Titan uploads reach the backend as its request body (SCGI: after    \
	 * the header, CONTENT_LENGTH; CGI: stdin), streamed; false: 59.       \
	 */                                                                    \
	bool titan;                                                            \
	size_t max_upload_size /* bytes of one upload; 0: 10 MiB */

struct xz_backend_config {
	XZ_BACKEND_CONFIG_FIELDS;
};

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

/* Sets the document's defaults explicitly (SCGIConfig's; buffer 8192). */
XZ_API void xz_scgi_config_init(struct xz_backend_config *cfg);

/*
 * Pools: one mount, several backends. Each request goes to one of them
 * (XZ_LEAST_CONN, the default: the fewest connections open, ties in turn;
 * XZ_ROUND_ROBIN: in turn). Failover: a connect that fails or takes over
 * connect_timeout, or a backend that closes or resets the connection
 * before a byte of its answer, passes the request on to the next backend,
 * each tried at most once; never once a byte reached the client, nor
 * once part of a Titan upload was sent (the body cannot be sent again).
 * Passive health: after max_fails such failures in a row a backend rests
 * for fail_timeout seconds (skipped), then is tried again. When every
 * backend fails or rests: 43 "Failed to connect to SCGI backend" (or the
 * last failure's meta). A pool of one never rests its backend.
 *
 * max_conns bounds each backend's connections at once; a request that
 * finds every live backend full waits in a queue of queue_size for up to
 * queue_timeout seconds, and is answered 44 with the seconds to wait (the
 * queue_timeout, rounded up) when the queue is full or the wait is over.
 * The state is the mount's, shared by its worker threads.
 */
enum xz_balance {
	XZ_LEAST_CONN = 0,
	XZ_ROUND_ROBIN = 1,
};

struct xz_pool_config {
	enum xz_balance balance;
	int max_fails;          /* failures before a rest; 0: 1; -1: never */
	double fail_timeout;    /* seconds of rest; 0: 10 */
	double connect_timeout; /* seconds a connect may take; 0: timeout */
	int max_conns;          /* per backend at once; 0: no limit */
	int queue_size;         /* requests waiting for a slot; 0: none */
	double queue_timeout;   /* seconds one may wait; 0: 10 */
};

/*
 * Where a backend is: host + port (TCP) or socket_path (Unix), not both;
 * and its config, either field by field (.timeout = 60) or whole
 * (.config = cfg): the two name the same bytes. Zero-filled: the
 * defaults, so one call does it:
 *   xz_scgi(app, "/api", &(struct xz_scgi_opts){ .host = "127.0.0.1",
 *       .port = 4000, .timeout = 60 });
 */
struct xz_scgi_opts {
	const char
	    *host; /* a name or an IP literal, resolved at registration */
	int port;
	const char *socket_path;
	union {
		struct xz_backend_config config;
		struct {
			XZ_BACKEND_CONFIG_FIELDS;
		};
	};
	/*
	 * Or a pool: NULL-ended addresses, "unix:/run/a.sock",
	 * "127.0.0.1:4000", "[::1]:4000", "name:4000" (at most 64; not with
	 * host, port or socket_path), copied at registration.
	 */
	const char *const *backends;
	struct xz_pool_config pool; /* zero-filled: the defaults */
};

/*
 * app.scgi(prefix, ...): mounts an SCGI backend at prefix. XZ_EINVAL (see
 * xz_app_error, e.g. "scgi /api: host given without port") for both or
 * neither of TCP and socket, a host without a port or a port without a
 * host, a port outside 1..65535, a host that does not resolve, a socket
 * path too long for sockaddr_un, a negative timeout, or a prefix already
 * mounted; with backends, for host, port or socket_path given too, or a
 * bad address. opts and everything it points to are copied.
 */
XZ_API int xz_scgi(struct xz_app *app, const char *prefix,
    const struct xz_scgi_opts *opts);
/*
 * SCGIHandler / SCGIApp: the explicit handlers, for xz_mount() (which
 * takes them). cfg may be NULL (defaults) and is copied. NULL on a bad
 * argument (as for xz_scgi) or when out of memory, with the reason in
 * xz_handler_error(); xz_mount(app, prefix, NULL) then fails with
 * XZ_EINVAL or XZ_ENOMEM and that reason in xz_app_error().
 */
XZ_API struct xz_handler *xz_scgi_tcp(const char *host, int port,
    const struct xz_backend_config *cfg);
XZ_API struct xz_handler *xz_scgi_unix(const char *socket_path,
    const struct xz_backend_config *cfg);
/*
 * A pool of backends (addresses as xz_scgi_opts.backends) for xz_mount();
 * pool and cfg may be NULL (defaults) and are copied, as backends is.
 * NULL on a bad address, a name that does not resolve, no backend or
 * over 64, or out of memory, with the reason in xz_handler_error().
 */
XZ_API struct xz_handler *xz_scgi_pool(const char *const *backends,
    const struct xz_pool_config *pool, const struct xz_backend_config *cfg);

/*
 * CGI scripts (RFC 3875): a new process per request, the same variable
 * set as SCGI in its environment, output in the same three shapes.
 * Failures are 42: "CGI script not executable", "CGI script timeout",
 * "CGI script error", "CGI response exceeds maximum size"; a missing
 * script is 51 "Not found"; too many scripts at once is 44.
 *
 * The first CGI mount makes the process a child subreaper
 * (PR_SET_CHILD_SUBREAPER): what a script leaves outside its process
 * group (setsid, a daemon) becomes our child and is killed and reaped
 * when a script is reaped. So would be a child of the host program's own
 * that runs in a session of its own (setsid): keep those out of a
 * process with CGI mounts.
 */

/* The defaults of xz_scgi_config_init(), with buffer_size 65536. */
XZ_API void xz_cgi_config_init(struct xz_backend_config *cfg);

/*
 * Mounts the executable files of dir at prefix: the first path segment
 * after prefix names the script, the rest is PATH_INFO. cfg may be NULL
 * (the defaults) and is copied. XZ_EINVAL (see xz_app_error) for a
 * directory that cannot be opened, a negative timeout or max_processes,
 * or a prefix already mounted.
 */
XZ_API int xz_cgi(struct xz_app *app, const char *prefix, const char *dir,
    const struct xz_backend_config *cfg);
/* Mounts one script at prefix: all of the path after it is PATH_INFO. */
XZ_API int xz_cgi_script(struct xz_app *app, const char *prefix,
    const char *script, const struct xz_backend_config *cfg);

/*
 * Servers: the program is a thin user of these.
 */
struct xz_server;

struct xz_server_opts {
	/*
	 * "0.0.0.0:1965", "[::1]:1965"; NULL-ended. An address may be
	 * followed by " proxy_protocol=v1" (or v2, or any): its connections
	 * open with a PROXY protocol header (HAProxy's send-proxy,
	 * send-proxy-v2) before TLS, whose client is then the connection's
	 * (REMOTE_ADDR, REMOTE_PORT, the access log, the per-address limit,
	 * rate limits); a connection without a valid one is closed.
	 */
	const char *const *listen;
	const char *hostname; /* names the URL may carry, comma-separated */
	/*
	 * The port a URL may name (gemini://host:PORT/): behind a proxy
	 * that passes TLS through from another port, that port. A URL with
	 * any other port gets 53. 0: the port the request arrived on.
	 */
	int public_port;
	/*
	 * PEM files, generated (both) when neither exists. Neither given:
	 * certs/HOST.crt and certs/HOST.key under the working directory,
	 * HOST the first hostname (localhost); the log says so.
	 */
	const char *cert_file;
	const char *key_file;
	bool key_ed25519; /* generate Ed25519 instead of ECDSA P-256 */
	/*
	 * The session-ticket master key (64 raw bytes, mode 0600; see
	 * xz_ticket_key_new), read when the server is made. Instances that
	 * share the file resume each other's TLS sessions (1.2 and 1.3).
	 * NULL: a random key of this process's own, as before.
	 */
	const char *ticket_key_file;
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
	/*
	 * On SIGTERM/SIGINT or xz_server_stop(), keep accepting and serving
	 * this many seconds more, announced as stopping (STOPPING=1), so
	 * that a load balancer's health checks take the server out of
	 * rotation first; then close the listeners and drain. A second
	 * signal ends the delay at once. 0: none (close at once).
	 */
	double stop_delay;
	bool quiet; /* no access log */
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
	 * any TLS work. max_connections 0: derived from RLIMIT_NOFILE as
	 * xz_server_new() finds it, (limit - descriptors open - 32) / 2,
	 * at least 1, so that connections are refused before descriptors
	 * run out (UINT_MAX: no limit). Should they run out all the same,
	 * accepting pauses 100 ms at a time, one log line per 10 s.
	 * max_connections_per_address 0: no limit.
	 */
	unsigned max_connections;             /* in all, across workers */
	unsigned max_connections_per_address; /* from one client address */
	/*
	 * Sockets already bound and listening (systemd's LISTEN_FDS), served
	 * instead of listen when nlisten_fds > 0. Borrowed: every worker
	 * listens on its own dup(); close them once xz_server_new returns.
	 */
	const int *listen_fds;
	size_t nlisten_fds;
	/*
	 * Tell the service manager (the datagram socket named by
	 * $NOTIFY_SOCKET, as sd_notify(3)) READY=1 once serving,
	 * RELOADING=1 (with MONOTONIC_USEC=) then READY=1 around a reload,
	 * STOPPING=1 when the stop begins (before any stop_delay), and
	 * WATCHDOG=1 every half $WATCHDOG_USEC from the main thread's loop
	 * (when $WATCHDOG_PID is unset or ours). No $NOTIFY_SOCKET: nothing.
	 */
	bool sd_notify;
	/*
	 * Metrics: "127.0.0.1:9165" serves, over plain HTTP on the thread
	 * that runs xz_server_run, GET /metrics (the Prometheus text format
	 * 0.0.4: requests by mount and status, a latency histogram, bytes,
	 * connections, TLS handshakes, backend failures, CGI processes,
	 * rate-limited answers, reloads) and GET /health (200 "ok" while
	 * serving, 503 "stopping" once the drain has begun). NULL: off.
	 * xz_server_new refuses an address that is not loopback unless
	 * metrics_allow_remote (the labels name mounts and backends).
	 */
	const char *metrics_listen;
	bool metrics_allow_remote;
};

/*
 * Binds the listeners and loads (or generates) the certificate. Returns
 * NULL and writes the reason to errbuf on failure. app stays the caller's
 * and must outlive the server.
 */
XZ_API struct xz_server *xz_server_new(struct xz_app *app,
    const struct xz_server_opts *opts, char *errbuf, size_t errlen);
/*
 * Several sites (virtual hosts) on one server. The server made by
 * xz_server_new serves its app under opts.hostname: that is the default
 * site, whose certificate a client gets when it sends no server name
 * (SNI), as for an IP literal, or one no site has. Each site added here
 * has its own names, app and certificate; the handshake picks the
 * certificate by SNI, and a request is answered by the app of the site
 * its URL's host belongs to, which must be the site the SNI chose
 * (53 "Proxy request refused" otherwise, and for a host no site has).
 * Names are matched as the original framework's vhost mapping does:
 * exact names first ("example.org"), then single-label wildcards
 * ("*.example.org" matches "a.example.org", neither "example.org" nor
 * "a.b.example.org"), then a site named "*" (any host: a fallback).
 */
struct xz_site_opts {
	const char *hostname; /* "example.org, *.example.org"; required */
	/*
	 * PEM files, as in xz_server_opts: generated (both, for all the
	 * names) when neither exists; neither given: certs/NAME.crt and
	 * .key, NAME the first name with '*' written '_'.
	 */
	const char *cert_file;
	const char *key_file;
};
/*
 * Adds a site serving app (borrowed: it must outlive the server; one app
 * may serve several sites) before xz_server_run, which runs each app's
 * startup hooks once. The certificate is loaded (or generated) now.
 * In the reload callback, after xz_server_reload, the site joins the
 * configuration being reloaded instead (its app then lives until that
 * configuration's release runs). XZ_OK; XZ_EINVAL with the reason in
 * errbuf (a bad or empty name, a name another site has, a wildcard of
 * more than one label, the certificate); XZ_ESTATE once the server has
 * run (outside a reload); XZ_ENOMEM.
 */
XZ_API int xz_server_add_site(struct xz_server *srv, struct xz_app *app,
    const struct xz_site_opts *opts, char *errbuf, size_t errlen);
/*
 * Drops privileges (opts.user, opts.chroot_dir), sets up SIGTERM/SIGINT
 * and SIGHUP (reload, below) handling, runs the startup hooks, starts the
 * workers, serves until SIGTERM/SIGINT or xz_server_stop() (then
 * opts.stop_delay more), lets in-flight requests finish (up to
 * drain_timeout), runs the shutdown hooks (of every app it served) and
 * returns XZ_OK.
 * On failure (privileges, signals, a startup hook, a worker thread that
 * cannot start) it returns an error with the reason in xz_server_error():
 * the listeners are closed by then (connections are refused, none waits
 * in a backlog nobody accepts from), workers already started are stopped
 * and, if the startup hooks ran, the shutdown hooks have run too. Free
 * the server with xz_server_free() either way; it cannot be run again.
 */
XZ_API int xz_server_run(struct xz_server *srv);
/* Why the last xz_server_run failed; "" when it did not. Never NULL. */
XZ_API const char *xz_server_error(const struct xz_server *srv);
/* Asks a running server to stop, from any thread or a signal handler. */
XZ_API void xz_server_stop(struct xz_server *srv);

/*
 * Reload: new connections are served by app under opts, while those
 * already accepted finish under what they were accepted with (app,
 * certificate, timeouts: a request in flight never sees a change). The
 * old app's shutdown hooks run, and its tasks stop, once its last
 * connection has ended.
 *
 * app serves the default site (opts.hostname); xz_server_add_site, called
 * next in the reload callback, adds other sites to the new configuration.
 * The apps are borrowed: release (may be NULL) runs with arg once the new
 * configuration is over (its last connection ended, its shutdown hooks
 * run, the processes its CGI mounts started reaped; at the latest in
 * xz_server_free), or at once when this reload fails: free the apps
 * there, and what opts and their handlers point into. Their startup
 * hooks run when it takes over, if the server runs already; a failing one
 * fails the reload. A reload's apps are new ones, or (app NULL, release
 * NULL) the current ones: the same sites, their certificates read again,
 * their hooks not run again (the app serving now with a release:
 * XZ_EINVAL, and release is not run). The app given to xz_server_new
 * stays the caller's: free it after xz_server_free, as always.
 *
 * opts (copied; NULL: the current ones) give the hostnames, the
 * certificate and key (read again, so a renewed certificate is taken),
 * the ticket key file (read again), public_port, the timeouts,
 * send_min_rate, stop_delay and quiet. What a reload cannot change keeps its
 * old value, with a warning in the log: listen (the listening sockets stay, so
 * no connection is refused meanwhile), workers, user, chroot_dir,
 * max_connections, max_connections_per_address, drain_timeout,
 * metrics_listen and metrics_allow_remote.
 *
 * Call it on the server's main thread: in the reload callback below,
 * where the new configuration takes over when the callback returns
 * XZ_OK (and is dropped when it fails), or before xz_server_run, where it
 * does at once. XZ_OK; or an error with the reason in errbuf, the
 * configuration before still serving. No lock is taken on the request
 * path: each worker takes the new configuration up between two
 * callbacks.
 */
XZ_API int xz_server_reload(struct xz_server *srv, struct xz_app *app,
    const struct xz_server_opts *opts, void (*release)(void *arg), void *arg,
    char *errbuf, size_t errlen);
/*
 * What SIGHUP does, on the server's main thread: fn builds a new app
 * (re-reading its configuration) and calls xz_server_reload; it returns
 * XZ_OK, or an error with one reason a line in errbuf ("xitzin.conf:12:
 * reason"), each then logged, while the old configuration keeps serving.
 * errbuf starts empty; lines left in it on XZ_OK are logged as warnings.
 * Without a callback, SIGHUP reloads the same app with the same opts:
 * the certificate, key and ticket key are read again.
 */
typedef int (*xz_reload_fn)(struct xz_server *srv, char *errbuf, size_t errlen,
    void *arg);
XZ_API void xz_server_on_reload(struct xz_server *srv, xz_reload_fn fn,
    void *arg);
/* The port a listener was bound to (useful with port 0), or -1. */
XZ_API int xz_server_port(const struct xz_server *srv, size_t listener);
/* The port metrics_listen was bound to (useful with port 0), or -1. */
XZ_API int xz_server_metrics_port(const struct xz_server *srv);
XZ_API void xz_server_free(struct xz_server *srv);
/*
 * Writes a new random session-ticket master key to path, mode 0600; an
 * existing file is never overwritten (rotate by writing a new file and
 * renaming it over the old). XZ_OK, or XZ_EIO with "path: reason" in
 * errbuf.
 */
XZ_API int xz_ticket_key_new(const char *path, char *errbuf, size_t errlen);

/*
 * The in-process test client: the app's real dispatch path over a
 * socketpair, no TLS, on the client's own event loop (SCGI and CGI
 * backends are still real). Startup hooks run in xz_test_client_new (NULL
 * if one fails), shutdown hooks in xz_test_client_free; periodic tasks
 * (xz_every) run, on their own thread, in between.
 */
struct xz_test_client;

struct xz_test_response {
	int status;          /* 0 when no valid header came back */
	char *meta;          /* never NULL */
	unsigned char *body; /* binary-safe: body_len bytes, NUL after */
	size_t body_len;
	char *mime_type; /* 2x: the meta before any ';', trimmed; else NULL */
};

XZ_API struct xz_test_client *xz_test_client_new(struct xz_app *app);
XZ_API void xz_test_client_free(struct xz_test_client *tc);
/* Presents a fake client certificate with this hash ("SHA256:..."). */
XZ_API int xz_test_client_set_cert(struct xz_test_client *tc, const char *hash);
/* How long one request may take (default 60 s): then status 0. */
XZ_API void xz_test_client_set_timeout(struct xz_test_client *tc,
    double seconds);
/* The loop requests run on (for test backends that share it). */
XZ_API struct event_base *xz_test_client_base(const struct xz_test_client *tc);
/*
 * GET gemini://localhost + path; query (may be NULL) is percent-encoded
 * and appended. xz_test_request sends a raw URL line (CRLF added). NULL
 * only when out of memory. Free with xz_test_response_free.
 */
XZ_API struct xz_test_response *xz_test_get(struct xz_test_client *tc,
    const char *path);
XZ_API struct xz_test_response *xz_test_get_query(struct xz_test_client *tc,
    const char *path, const char *query);
XZ_API struct xz_test_response *xz_test_request(struct xz_test_client *tc,
    const char *line);
/*
 * A Titan upload of len bytes of data to titan://localhost + path, with
 * mime (NULL: left out, the server's text/gemini) and token (NULL: none);
 * len 0 is a delete. The body is written as the server reads it.
 */
XZ_API struct xz_test_response *xz_test_upload(struct xz_test_client *tc,
    const char *path, const void *data, size_t len, const char *mime,
    const char *token);
XZ_API void xz_test_response_free(struct xz_test_response *r);
XZ_API bool xz_test_is_success(const struct xz_test_response *r); /* 2x */
XZ_API bool xz_test_is_input_required(
    const struct xz_test_response *r);                             /* 1x */
XZ_API bool xz_test_is_redirect(const struct xz_test_response *r); /* 3x */
XZ_API bool xz_test_is_error(const struct xz_test_response *r);    /* 4x-6x */
XZ_API bool xz_test_is_certificate_required(const struct xz_test_response *r);
/* The meta of a 3x (the redirect URL) or of a 1x (the prompt); or NULL. */
XZ_API const char *xz_test_redirect_url(const struct xz_test_response *r);
XZ_API const char *xz_test_input_prompt(const struct xz_test_response *r);

/*
 * The program's configuration file, xitzin.conf (see xitzin.conf(5)).
 */
struct xz_config;

/*
 * Reads the INI file at path and checks what starting a server on it
 * would find wrong: listen addresses and ports, the user, the chroot
 * directory, the certificate and key (parsed and matched; neither file
 * is fine: generated at start). Returns NULL on failure, with every
 * error in errbuf, one "file:line: reason" a line (no final newline),
 * sorted by line: unknown or duplicate sections and keys, empty or bad
 * values, those checks, and the errors xz_config_apply would report.
 * Relative paths inside are taken from the file's directory.
 */
XZ_API struct xz_config *xz_config_load(const char *path, char *errbuf,
    size_t errlen);
/* The [server] options; valid while cfg lives. */
XZ_API const struct xz_server_opts *xz_config_server_opts(
    const struct xz_config *cfg);
/* The [server] log keys, for xz_log_open; valid while cfg lives. */
XZ_API const struct xz_log_opts *xz_config_log_opts(
    const struct xz_config *cfg);
/*
 * Sets [state] and mounts every [static|scgi|cgi PREFIX] section on app,
 * with a middleware for their client-certificate rules (require_cert,
 * allowed_certs) when a section has one; app owns what it needs. Each
 * [host NAME] gets an app of its own, which cfg owns, with its [state
 * NAME] and [static|scgi|cgi NAME PREFIX] sections: free cfg only after
 * the server when the file has [host] sections (xz_config_add_sites).
 * On failure, every error in errbuf as xz_config_load writes them.
 */
XZ_API int xz_config_apply(struct xz_config *cfg, struct xz_app *app,
    char *errbuf, size_t errlen);
/*
 * After xz_config_apply: each [host] section becomes a site of srv
 * (xz_server_add_site) with its app, names and certificate (generated
 * for all its names when neither file exists). XZ_OK, or the error with
 * "file:line: [host NAME]: reason" in errbuf.
 */
XZ_API int xz_config_add_sites(struct xz_config *cfg, struct xz_server *srv,
    char *errbuf, size_t errlen);
XZ_API void xz_config_free(struct xz_config *cfg);

#ifdef __cplusplus
}
#endif
#endif /* XITZIN_H */
