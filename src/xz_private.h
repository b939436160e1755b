/*
 * xz_private.h - declarations shared between the files of libxitzin.
 * One section per source file that shares anything, in the README's
 * source-tour order, which is also the order of use: a file calls only
 * files before it (scripts/callgraph.py shows the calls). server.c,
 * static.c, scgi.c, cgi.c and config.c share nothing private.
 */
#ifndef XZ_PRIVATE_H
#define XZ_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>

#include "xitzin.h"

struct evbuffer;
struct event;
struct event_base;
struct sockaddr;
struct xz_conn;

#define XZ_MAX_URL 1024  /* bytes of a request URL, CRLF not counted */
#define XZ_MAX_META 1024 /* bytes of a response meta */

/* Seconds (fractions allowed) as the timeval libevent takes. */
static inline struct timeval
xz_timeval(double seconds)
{
	struct timeval tv;

	tv.tv_sec = (time_t)seconds;
	tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
	return tv;
}

/*
 * log.c: the error and access logs (stderr, syslog, a file). The library
 * itself never prints: these are silent until xz_log_enable() turns them
 * on (the program does).
 */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One request, as conn.c saw it, for the access log. */
struct access_entry {
	const char *addr;      /* numeric client address */
	const char *url;       /* the request line as received: untrusted */
	const char *sni;       /* the name the client sent; NULL: none */
	const char *cert_hash; /* SHA256:...; NULL: no client certificate */
	int status;
	size_t bytes;
	double ms;
	const char *reason; /* why it ended early; NULL */
};
void log_access_entry(const struct access_entry *e);
/*
 * src into dst (NUL-ended, at most dstlen - 1 bytes, whole escapes only):
 * printable ASCII and valid UTF-8 as is, \\ \r \n \t, other bytes (controls,
 * ESC, invalid UTF-8, C1 and bidi controls) as \xHH; with quote, \" too.
 * Returns the length written.
 */
size_t log_escape(char *dst, size_t dstlen, const char *src, size_t srclen,
    bool quote);

/*
 * metrics.c: counters for operators, served in the Prometheus text format
 * (GET /metrics) with a health check (GET /health) over HTTP on the main
 * thread's loop. Each worker thread bumps its own counters (no lock);
 * a scrape sums them. The bumps (metrics_request ... metrics_rate_limited)
 * count for the worker the calling thread entered (metrics_worker_enter)
 * and do nothing on any other thread (the test client's).
 */
#define METRICS_MAX_NAMES 64 /* mounts, and backends; more: "other" */
#define METRICS_STATUSES 61  /* none, 10..69 */
#define METRICS_BUCKETS 12   /* latency buckets before +Inf */
struct metrics;
enum metrics_fail {
	METRICS_CONNECT,         /* refused, unreachable, no such socket */
	METRICS_CONNECT_TIMEOUT, /* the connect took longer than timeout */
	METRICS_TIMEOUT,         /* silent (or slow to take) past timeout */
	METRICS_NFAILS,
};
/*
 * XZ_OK when spec ("127.0.0.1:9165", "[::1]:9165") resolves to a loopback
 * address, or to any with allow_remote; XZ_EINVAL with the reason in err.
 */
int metrics_check_listen(const char *spec, bool allow_remote, char *err,
    size_t errlen);
/*
 * Counters for nworkers workers, and the listening socket bound on spec
 * (checked as metrics_check_listen; no SO_REUSEPORT: a second process is
 * refused). NULL with the reason in err.
 */
struct metrics *metrics_new(const char *spec, bool allow_remote, int nworkers,
    char *err, size_t errlen);
/* Serves HTTP on base (the main thread's) until metrics_stop. */
int metrics_start(struct metrics *m, struct event_base *base);
void metrics_stop(struct metrics *m); /* before base is freed */
void metrics_free(struct metrics *m); /* NULL is a no-op */
int metrics_port(const struct metrics *m);
/* The calling thread is worker i of m (m NULL: none) until _leave. */
void metrics_worker_enter(struct metrics *m, int worker);
void metrics_worker_leave(void);
/* From any thread: /health answers 503 from now; a reload took effect. */
void metrics_set_stopping(struct metrics *m);
void metrics_reload(struct metrics *m);
/*
 * A backend's id for metrics_backend_failed ("127.0.0.1:4000",
 * "unix:/run/app.sock"), given once when the backend is made; its
 * counters show from then on, zeros included. Never 0 but when full.
 */
int metrics_backend_id(const char *name);
/* The bumps, for the calling worker. mount: a prefix, "routes", "none". */
void metrics_request(int status, const char *mount, size_t bytes, double ms);
void metrics_conn_opened(void);
void metrics_conn_closed(void);
void metrics_handshake(bool resumed, bool retried);
void metrics_backend_failed(int backend, enum metrics_fail kind);
void metrics_rate_limited(void);
/* A CGI script was spawned (+1) or reaped (-1); any thread. */
void metrics_cgi_process(int delta);

/*
 * strlist.c: "a, b c" -> { "a", "b", "c", NULL }: items are separated by
 * commas and white space; empty items are dropped. NULL when out of
 * memory. Free with strlist_free (NULL is a no-op).
 */
char **strlist_split(const char *s);
void strlist_free(char **list);

/*
 * proxy.c: the PROXY protocol header (HAProxy's v1 text line or v2 binary
 * block) a load balancer sends before the client's bytes.
 */
enum proxy_mode {
	PROXY_OFF = 0, /* no header: the peer is the client */
	PROXY_V1,
	PROXY_V2,
	PROXY_ANY, /* either, told apart by the first byte */
};
#define PROXY_V1_MAX 107 /* the longest v1 line, CRLF included */
#define PROXY_MAX 1024   /* the longest header taken (v2 with its TLVs) */

struct proxy_hdr {
	size_t len;  /* the header's bytes: what follows is the client's */
	int version; /* 1 or 2 */
	bool local;  /* v2 LOCAL: the proxy's own connection (health check) */
	/*
	 * AF_INET or AF_INET6: the client's address and port (src) and the
	 * ones it reached (dst). AF_UNSPEC: the header names no client (v1
	 * UNKNOWN; v2 LOCAL, UNSPEC or a Unix socket): keep the peer's.
	 */
	int family;
	struct sockaddr_storage src, dst;
};

/*
 * Reads the header a connection opened with from its first len bytes
 * (mode not PROXY_OFF). XZ_OK: h is filled; the header is h->len bytes.
 * XZ_EAGAIN: every byte given belongs to a header not yet whole (read
 * more, never past it). XZ_EPARSE: not a valid header, as soon as the
 * bytes show it; *why (why may be NULL) a static reason. Strict: v1 is
 * "PROXY TCP4|TCP6 src dst sport dport" or "PROXY UNKNOWN ..." and CRLF
 * in at most 107 bytes, one space between fields; v2 is version 2, LOCAL
 * or PROXY, a stream family (UNSPEC, INET, INET6, UNIX), an address block
 * that fits and TLVs that fit it exactly, at most PROXY_MAX bytes in all.
 */
int proxy_parse(const void *buf, size_t len, enum proxy_mode mode,
    struct proxy_hdr *h, const char **why);
/* "v1", "v2", "any" -> PROXY_V1, PROXY_V2, PROXY_ANY; -1 otherwise. */
int proxy_mode_parse(const char *s);

/*
 * url.c: the Gemini request line and its URL.
 */
struct xz_url {
	char *raw;    /* the URL as received, NUL-terminated */
	char *scheme; /* lower-cased */
	char *host;   /* lower-cased; IPv6 literals without brackets */
	int port;     /* -1 when the URL names none */
	char *path;   /* percent-decoded, dot segments removed; "" when none */
	char *query;  /* raw (still percent-encoded); NULL when absent */
	/* titan:// only: the ";size=N;mime=T;token=X" after the path */
	bool titan;
	size_t size; /* bytes of the upload body; 0: a delete */
	char *mime;  /* decoded; "text/gemini" when not given */
	char *token; /* decoded; NULL when not given */
};

/*
 * Parses a request URL of len bytes (the line without its CRLF; it need
 * not be NUL-terminated). u need not be initialised. Returns:
 *   0          u is filled: release it with url_clear();
 *   59         a bad URL: empty, over XZ_MAX_URL bytes, not UTF-8
 *              (overlongs, surrogates, > U+10FFFF), a byte under 0x21 or
 *              0x7f, relative (no "scheme://"), a bad scheme, userinfo, a
 *              fragment, an empty or bad host (an unclosed '['), a bad
 *              port (0, > 65535, not digits), a malformed %-escape in path
 *              or query, %00 in the path, a path that climbs above "/";
 *              for titan://, a size that is missing or not a decimal
 *              number below 2^53, a parameter given twice, or a mime or
 *              token with %00;
 *   XZ_ENOMEM  (negative) out of memory.
 * On any non-zero return *why (when why is not NULL) is a static English
 * reason for the log, and u holds nothing (all zero: url_clear() is safe
 * and not needed). The scheme's and host's syntax is checked here; whether
 * they are ours is the server's 53.
 */
int url_parse(struct xz_url *u, const char *line, size_t len, const char **why);
/* Frees what u holds and zeroes it; safe on a zeroed u. */
void url_clear(struct xz_url *u);

/*
 * The length of the valid UTF-8 sequence at s (n > 0 bytes left), or 0:
 * no overlong forms, surrogates or code points over U+10FFFF (RFC 3629).
 * URLs and metas are checked with it.
 */
size_t utf8_len(const unsigned char *s, size_t n);

/*
 * Percent-decodes in[0..len) into a new NUL-terminated string (*out, with
 * its length in *outlen, which may count inner NULs). '+' stays '+'.
 * Returns XZ_OK, or XZ_EPARSE for a malformed escape or XZ_ENOMEM, both
 * with *out NULL.
 */
int url_decode(const char *in, size_t len, char **out, size_t *outlen);

/*
 * Removes "." and ".." segments from an absolute decoded path in place
 * (RFC 3986, 5.2.4); a final "." or ".." leaves a trailing '/'. "" stays
 * "". Returns XZ_EPARSE, with path left garbled, when ".." would climb
 * above "/" or the path is neither "" nor starts with '/'.
 */
int url_remove_dots(char *path);
/* Merges each run of '/' into one, in place: "//a//b" is "/a/b". */
void url_merge_slashes(char *path);

/*
 * response.c: response headers, ours and our backends'.
 */

/* True when status and meta make a valid Gemini header to send. */
bool response_valid(int status, const char *meta, size_t metalen);

/*
 * Parses the header of a backend's answer (SCGI or CGI) in any of its
 * three shapes: a Gemini line ("20 text/gemini\r\n"), a CGI header block
 * ("Status: 20 text/gemini\r\n...\r\n\r\n") or NPH
 * ("GEMINI 20 text/gemini\r\n...\r\n\r\n"). A bare LF ends a line too.
 * buf holds the len bytes received so far. Returns XZ_OK with *status,
 * *meta (malloc'd, NUL-terminated) and *hdrlen (bytes of buf the header
 * used: the body starts there); XZ_EAGAIN when more bytes are needed;
 * XZ_EPARSE, with *why set to a static reason, when the header is
 * malformed or would not be a valid Gemini header (response_valid);
 * XZ_ENOMEM. Unless XZ_OK, *meta is NULL and *status 0. why may be NULL.
 * A leading digit means a Gemini line, "GEMINI " NPH, anything else CGI.
 * CGI: without Status:, a Content-Type: alone means 20 with that type
 * (RFC 3875's document response); "Status: 2x" without meta takes the
 * Content-Type's value when there is one. Everything after the header is
 * the body, and never looked at.
 */
int response_parse_backend(const char *buf, size_t len, int *status,
    char **meta, size_t *hdrlen, const char **why);

/* The longest backend header accepted before XZ_EPARSE. */
#define XZ_MAX_BACKEND_HEADER 8192

/*
 * tls.c: GnuTLS sessions on non-blocking sockets, certificate generation,
 * client-certificate facts. The only file that names GnuTLS.
 */
struct tls_ctx;
struct tls_conn;

enum tls_result {
	TLS_DONE = 0,
	TLS_WANT_READ = -1,
	TLS_WANT_WRITE = -2,
	TLS_EOF = -3, /* the peer closed (cleanly or not) */
	TLS_ERROR = -4,
};

struct tls_opts {
	const char *cert_file; /* PEM */
	const char *key_file;  /* PEM */
	const char *hostname;  /* generating: "a, b" -> CN a, SANs a and b */
	bool ed25519;          /* generate Ed25519 rather than ECDSA P-256 */
	const char *ticket_key_file; /* NULL: a random master key */
};

/* What a client certificate says (Gemini: never chain-verified). */
struct xz_cert {
	bool present;
	char hash[7 + 64 + 1]; /* "SHA256:" + lowercase hex of the DER */
	char *subject;         /* one-line DNs (RFC 4514), escaped */
	char *issuer;
	char *cn;            /* subject CN; NULL when none */
	char not_before[21]; /* 2026-01-02T03:04:05Z */
	char not_after[21];
};
void cert_clear(struct xz_cert *cert);
/*
 * Certificate text (an RFC 4514 string, as GnuTLS prints it) made safe to
 * show: control bytes, DEL, C1 controls, bytes that are not UTF-8, bidi
 * controls and U+2028-9 become RFC 4514 hexpairs (\0a). A new string,
 * NULL when out of memory. Every text field of struct xz_cert is escaped.
 */
char *cert_text_escape(const char *text, size_t len);
/*
 * The validity dates of a DER certificate, as 2026-01-02T03:04:05Z, years
 * before 1970 included; -1 when it is not in RFC 5280's form.
 */
int cert_validity(const void *der, size_t len, char not_before[21],
    char not_after[21]);

/*
 * One site's certificate and key (opts' files and hostname; ed25519):
 * loaded as tls_ctx_new would, generated first when neither file exists.
 * NULL with "certs/x.crt: reason" in err. Read-only once made.
 */
struct tls_cert;
struct tls_cert *tls_cert_new(const struct tls_opts *opts, char *err,
    size_t errlen);
void tls_cert_free(struct tls_cert *tc); /* NULL is a no-op */
/* "SHA256:" + lowercase hex of the certificate's DER. */
const char *tls_cert_fingerprint(const struct tls_cert *tc);

/*
 * The shared part of every handshake: priorities, the ticket master key,
 * and (when opts->cert_file is set) the certificate and key, loaded as
 * tls_cert_new does. NULL with a reason in err ("certs/x.crt: reason") on
 * failure. A context may be shared by threads; free it after its last
 * connection.
 */
struct tls_ctx *tls_ctx_new(const struct tls_opts *opts, char *err,
    size_t errlen);
void tls_ctx_free(struct tls_ctx *ctx); /* NULL is a no-op */
/*
 * Virtual hosts: sessions start with dflt (borrowed; replaces the one
 * tls_ctx_new loaded); when pick is not NULL, it is called after each
 * ClientHello with the SNI (NULL: none) and returns the certificate to
 * use (NULL: dflt). Call before the first connection; pick runs on the
 * worker threads and must only read.
 */
void tls_ctx_set_certs(struct tls_ctx *ctx, struct tls_cert *dflt,
    struct tls_cert *(*pick)(void *arg, const char *sni), void *arg);
/* GnuTLS's session-ticket master key: 64 raw bytes. */
#define TLS_TICKET_KEY_SIZE 64
/*
 * Writes a new random ticket master key to path (mode 0600, never over an
 * existing file). 0, or -1 with "path: reason" in err.
 */
int tls_ticket_key_write(const char *path, char *err, size_t errlen);
/* The ticket key file as a start or reload would read it: XZ_OK or
 * XZ_EINVAL with the reason in err ("-t" checks it). */
int tls_ticket_key_check(const char *path, char *err, size_t errlen);
/*
 * What tls_ctx_new would say of opts' files, without generating or
 * keeping anything: XZ_OK when both parse and the key matches the
 * certificate, or when neither exists (they would be generated);
 * otherwise XZ_EINVAL with the reason in err ("x.crt: does not match
 * the key in x.key").
 */
int tls_check_files(const struct tls_opts *opts, char *err, size_t errlen);

/*
 * A server session on a connected non-blocking socket (not taken: close
 * it after tls_conn_free). NULL when out of memory.
 */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx, int fd);
void tls_conn_free(struct tls_conn *tc); /* NULL is a no-op */
/* TLS_DONE, TLS_WANT_READ/WRITE, TLS_EOF or TLS_ERROR. */
int tls_conn_handshake(struct tls_conn *tc);
/*
 * Of the key shares in a ClientHello body (handshake header removed),
 * the index in our group order of the one we prefer; the number of
 * groups we take (5) when none is usable or the message is malformed.
 */
size_t tls_key_share_pick(const void *hello, size_t len);
/* After TLS_DONE: true when the server sent a HelloRetryRequest. */
bool tls_conn_retried(const struct tls_conn *tc);
/* After TLS_DONE: true when the client resumed a session (a ticket). */
bool tls_conn_resumed(const struct tls_conn *tc);
/* Bytes read (> 0; len > 0), or TLS_WANT_*, TLS_EOF, TLS_ERROR. */
ssize_t tls_conn_read(struct tls_conn *tc, void *buf, size_t len);
/*
 * Bytes taken (> 0, at most one 16384-byte record; len > 0), or TLS_WANT_*,
 * TLS_ERROR. After TLS_WANT_* call again once the socket is ready, before
 * any other write: that call finishes the record already encrypted (buf is
 * not read again) and returns the count the first call took.
 */
ssize_t tls_conn_write(struct tls_conn *tc, const void *buf, size_t len);
/*
 * The response is complete: writes from now on may wait for close_notify
 * (tls_conn_bye, which the caller makes next) to leave in one send().
 */
void tls_conn_last(struct tls_conn *tc);
/* Sends close_notify: TLS_DONE, TLS_WANT_*, or TLS_ERROR. */
int tls_conn_bye(struct tls_conn *tc);
/*
 * Fills cert from the client's certificate (present false when none);
 * release with cert_clear. XZ_OK, XZ_ENOMEM or XZ_EPARSE.
 */
int tls_conn_peer_cert(struct tls_conn *tc, struct xz_cert *cert);
const char *tls_conn_version(struct tls_conn *tc); /* "TLSv1.3" */
const char *tls_conn_cipher(struct tls_conn *tc);  /* IANA name */
/* The host name the client sent (SNI) into buf; NULL when it sent none. */
const char *tls_conn_sni(struct tls_conn *tc, char *buf, size_t len);
const char *tls_conn_strerror(struct tls_conn *tc); /* the last error */

/*
 * site.c: the sites (virtual hosts) of a server, each its names, its app
 * and its certificate; the set is built before the workers start and only
 * read afterwards. The first site added is the default: a client that
 * sends no SNI, or an unknown one, gets its certificate.
 */
struct site {
	char **names;          /* lower-case, no final dot; NULL-ended */
	struct xz_app *app;    /* borrowed */
	struct tls_cert *cert; /* owned; NULL for the test client */
};
struct site_set;
struct site_set *site_set_new(void);
void site_set_free(struct site_set *set); /* NULL is a no-op */
/*
 * Adds a site for names ("a.example, *.a.example": exact names,
 * single-label "*." wildcards, "*" for any host at all), app (borrowed)
 * and cert (taken, freed even on failure; may be NULL). XZ_OK; XZ_EINVAL
 * with a static *why ("no name given", "a wildcard is '*.' and a name",
 * "a name is in two sites") or XZ_ENOMEM; *bad then names the offending
 * name (valid until the set is freed or the next call), or NULL.
 */
int site_set_add(struct site_set *set, const char *names, struct xz_app *app,
    struct tls_cert *cert, const char **why, char *bad, size_t badlen);
size_t site_set_count(const struct site_set *set);
const struct site *site_set_get(const struct site_set *set, size_t i);
/*
 * The site a host name belongs to: an exact name first, then a
 * "*.rest" wildcard for "label.rest", then a "*" site; NULL for none.
 * Case and a final dot do not matter.
 */
const struct site *site_for_name(const struct site_set *set, const char *host);
/* The site of a handshake's SNI (NULL: none): site_for_name or the default. */
const struct site *site_for_sni(const struct site_set *set, const char *sni);
/* tls_ctx_set_certs's pick over a site set (arg). */
struct tls_cert *site_pick_cert(void *arg, const char *sni);

/*
 * request.c: one request, from its parsed line to xz_end (accessors,
 * answering, drain, cancel). It reaches what carries it (conn.c, or a
 * unit test's stand-in) only through a request_carrier, and the app that
 * dispatched it only through a request_owner: it names neither.
 */
struct xz_request;

/* A handler (xz_handler_new): its ops are what answers a request. */
struct xz_handler {
	const struct xz_handler_ops *ops;
	void *state;
	bool titan;             /* takes Titan uploads (xz_backend_config) */
	size_t max_upload_size; /* when titan: the largest body taken */
	/*
	 * Optional: state still has work that outlives its requests (CGI
	 * processes being reaped on the workers' loops), so it may not be
	 * disposed of while those loops run (app_busy).
	 */
	bool (*busy)(void *state);
};

/* What a request may ask of whatever carries it; a const table. */
struct request_carrier {
	/* Where the response's bytes go (header and body). */
	struct evbuffer *(*output)(void *carrier);
	/* Bytes were added, or a drain callback is due: flush soon. */
	void (*kick)(void *carrier);
	/* The response is complete: flush, close_notify, close. */
	void (*end)(void *carrier);
	/*
	 * The response cannot complete: close without close_notify, from
	 * the carrier's own next event (safe inside a handler's callback).
	 */
	void (*abort)(void *carrier, const char *reason);
	/*
	 * Titan: the handler took upload bytes and has room for more:
	 * read the client again (may be NULL when there are no uploads).
	 */
	void (*resume)(void *carrier);
};

/* What a request needs from the app that dispatched it; a const table. */
struct request_owner {
	/*
	 * Middleware after hooks: may replace *status and *meta (malloc'd),
	 * or return REQUEST_REPLACED: the answer is discarded, another comes.
	 */
	int (*after)(struct xz_request *req, int *status, char **meta);
	/* request_clear: the request will read no more app state. */
	void (*leave)(struct xz_request *req);
};

/* request_owner.after's answer: a middleware answers instead. */
#define REQUEST_REPLACED 1

/* A middleware's per-request data (xz_request_set_mw_data). */
struct request_mw_data {
	const void *key;
	void *data;
	void (*free_fn)(void *);
};

struct xz_request {
	struct xz_app *app;                    /* set by app_dispatch */
	const struct request_owner *owner;     /* set by app_dispatch */
	const struct request_carrier *carrier; /* set by request_init */
	void *carrier_arg;
	struct event_base *base;
	struct xz_url url;
	int port;                /* the port the request arrived on */
	char remote_addr[64];    /* numeric, no port */
	int remote_port;         /* 0: unknown (the test client) */
	struct xz_cert cert;     /* the client's certificate facts */
	const char *tls_version; /* static strings; NULL without TLS */
	const char *tls_cipher;
	const char *mount; /* the matched mount prefix, or "" */
	/* For metrics: the mount ("/" the root's) or "routes"; NULL: none */
	const char *counted_as;
	const char *path_info; /* into url.path */
	char **param_names;    /* route parameters (names borrowed) */
	char **param_values;
	size_t nparams;
	char *input;                /* decoded query, made on demand */
	struct xz_handler *handler; /* the handler answering, if any */
	void *data;                 /* the handler's per-request data */
	int mw_depth;               /* middleware befores that let it through */
	int status;                 /* 0 until replied */
	char *meta;
	bool replied, ended;
	size_t drain_low;
	void (*drain_cb)(struct xz_request *, void *);
	void *drain_arg;
	void (*cancel_cb)(struct xz_request *, void *); /* a route's */
	void *cancel_arg;
	unsigned long state_period;      /* app_state_enter's, for the owner */
	struct request_mw_data *mw_data; /* freed by request_clear */
	size_t nmw_data;
	/*
	 * A middleware answers instead (xz_request_replace): the handler's
	 * answer is discarded (its writes dropped) until it ends or, from
	 * the loop, is cancelled; then alt answers, seen by the after hooks
	 * of the middlewares outside the one that replaced (alt_depth).
	 */
	int in_after;          /* 1 + the running after hook's index, or 0 */
	bool discarded;        /* the answer being made goes nowhere */
	bool discarded_done;   /* and its maker has ended it */
	struct xz_handler alt; /* what answers next (ops NULL: nothing) */
	struct xz_handler alt_running; /* what answers now, when replaced */
	xz_route_fn alt_fn;            /* xz_request_replace's */
	void *alt_arg;
	int alt_depth;
	struct event *alt_ev; /* the swap, from the loop */
	/*
	 * Titan: the upload body, in pieces as the carrier reads them. It
	 * holds at most upload_window bytes: the carrier reads no more
	 * until the handler takes some (xz_upload_read), which is the
	 * backpressure that keeps an upload in constant memory.
	 */
	struct evbuffer *upload;
	size_t upload_window;
	size_t upload_in;     /* body bytes the carrier has added so far */
	bool upload_admitted; /* a mount or route takes it: read the body */
	void (*upload_cb)(struct xz_request *, void *);
	void *upload_arg;
};

/* Bytes of an upload held for a handler before the client is paused. */
#define XZ_UPLOAD_WINDOW 65536

/*
 * Zeroes req and gives it its carrier (borrowed: outlives req) and the
 * carrier's argument. The carrier fills url, port, remote_addr, cert and
 * the TLS facts; app_dispatch the rest.
 */
void request_init(struct xz_request *req, const struct request_carrier *carrier,
    void *carrier_arg, struct event_base *base);
/* Frees what req holds and tells its owner (leave); zeroes it. */
void request_clear(struct xz_request *req);
/* The client went away before xz_end(): tells the handler (cancel). */
void request_cancel(struct xz_request *req);
/* Runs (once) the callback xz_request_on_cancel gave: the routes' cancel. */
void request_run_on_cancel(struct xz_request *req);
/* The carrier took bytes: runs the drain callback when it is due. */
void request_drained(struct xz_request *req, size_t pending);
/* A route parameter: name borrowed (the pattern's), value copied. */
int request_add_param(struct xz_request *req, char *name, const char *value,
    size_t len);
void request_drop_params(struct xz_request *req);
/*
 * Moves all of buf (no copy) into the response body: XZ_OK, XZ_ESTATE
 * when the response takes no body (not 2x, not replied, ended: buf is
 * left as it was), XZ_ENOMEM. The relay's way in.
 */
int request_write_buffer(struct xz_request *req, struct evbuffer *buf);
/*
 * Reads up to len bytes of fd at off straight into the response body.
 * Returns the bytes read (fewer at the end of the file), or an error.
 */
ssize_t request_read_file(struct xz_request *req, int fd, off_t off,
    size_t len);
/*
 * Titan, for the carrier: the upload's next len bytes from the client
 * (XZ_OK or XZ_ENOMEM); the handler's callback runs. request_upload_room
 * is how many more bytes the handler has room for now.
 */
int request_upload_add(struct xz_request *req, const void *data, size_t len);
size_t request_upload_room(const struct xz_request *req);
/*
 * Titan, for handlers inside the library: moves up to max upload bytes
 * into dst (no copy); returns the count (0 when none are there now).
 */
size_t request_upload_take(struct xz_request *req, struct evbuffer *dst,
    size_t max);
/* True when every byte of the upload has been taken by the handler. */
bool request_upload_done(const struct xz_request *req);

/*
 * For handlers: a streamed response that cannot complete (the backend
 * stalled or died after the header went out): the client's connection
 * ends without close_notify. Like xz_end, hands req back.
 */
void request_abort(struct xz_request *req, const char *reason);
/*
 * A discarded answer is over: its handler is cancelled unless it ended,
 * and req is ready to be answered again (not replied, no handler).
 */
void request_discard(struct xz_request *req);

/*
 * task.c: periodic tasks (xz_every) on a thread of their own. task_add
 * makes *tp on first use (XZ_EINVAL, XZ_ENOMEM or XZ_ESTATE with a static
 * *why). task_start (after the startup hooks) and task_stop (before the
 * shutdown hooks) pair up, and nest for test clients sharing an app;
 * XZ_EIO when the thread cannot start (logged). All accept NULL.
 */
struct tasks;
int task_add(struct tasks **tp, struct xz_app *app, double seconds,
    xz_task_fn fn, void *arg, const char **why);
int task_start(struct tasks *ts);
void task_stop(struct tasks *ts);
void task_free(struct tasks *ts);

/*
 * app.c: the app (routes, mounts, middleware, state, hooks) and dispatch.
 */

/* Sets the message xz_app_error() returns. */
void app_set_error(struct xz_app *app, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The arg of the first middleware registered with mw's hooks, or NULL. */
void *app_middleware_arg(const struct xz_app *app,
    const struct xz_middleware *mw);
/*
 * p is freed with free_fn when app is (p taken, and freed at once when
 * this fails: XZ_ENOMEM): what the app's middleware args point into.
 */
int app_adopt(struct xz_app *app, void *p, void (*free_fn)(void *));
/*
 * A handler constructor (xz_scgi_tcp, ...) failed with code (XZ_EINVAL,
 * XZ_ENOMEM): xz_handler_error() says why, and xz_mount(app, prefix,
 * NULL) hands both to the app.
 */
void handler_set_error(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/*
 * Gives req (request_init'ed, its URL parsed and its facts filled) to
 * app: it becomes the request's owner and a reader of app state until
 * request_clear; middleware, then the mount, the routes or 51 answer it.
 */
void app_dispatch(struct xz_app *app, struct xz_request *req);
/*
 * A request may read app state from now until app_state_leave: values
 * replaced in between are freed only after it (xz_state_set). app_dispatch
 * enters, request_clear leaves (through the owner table).
 * app_state_graves: the values waiting.
 */
unsigned long app_state_enter(struct xz_app *app);
void app_state_leave(struct xz_app *app, unsigned long period);
size_t app_state_graves(struct xz_app *app);
/* Runs startup hooks in order (XZ_OK or the first failure). */
int app_startup(struct xz_app *app);
/* Runs shutdown hooks in reverse order. */
void app_shutdown(struct xz_app *app);
/*
 * A mount's handler has work left outside any request (xz_handler.busy):
 * the app may not be freed yet while event loops run. After the last
 * request of the app is over, a busy app only becomes idle.
 */
bool app_busy(const struct xz_app *app);

/*
 * ratelimit.c: per-client token buckets (xz_rate_limit, which registers
 * its middleware (its state freed with the app: app_adopt) on its first call
 * and adds a rule per prefix). The rest is for tests: a rule alone, on an
 * explicit clock (milliseconds).
 */
#define RL_SLOTS 65536 /* clients remembered per rule: 2 MiB */
struct ratelimit;
struct rl_rule;
void ratelimit_free(struct ratelimit *rl); /* NULL is a no-op */
/* A client address as a table key (IPv4 v4-mapped). */
void ratelimit_key(const char *addr, unsigned char key[16]);
struct rl_rule *ratelimit_rule_new(const char *prefix, double rate,
    double burst);
void ratelimit_rule_free(struct rl_rule *r);
/* 0: let it through; else the seconds until it may (*log: say so now). */
double ratelimit_take(struct rl_rule *r, const unsigned char addr[16],
    uint64_t now_ms, bool *log);
/* The rule's whole memory, whatever the number of clients. */
size_t ratelimit_rule_bytes(const struct rl_rule *r);

/*
 * conn.c: one client connection's life, from the TLS handshake to
 * close_notify, over a transport it reaches through a table.
 */
struct tls_ctx;

/*
 * A transport: TLS on the socket (conn_io_tls, here) or plain bytes (the
 * test client's, testclient.c). Its session t is its own: conn.c never
 * looks inside. I/O calls return bytes, or enum tls_result's codes.
 */
struct conn_io {
	/* A session on fd (not taken) with ctx (conn_cfg.io_ctx); NULL: OOM. */
	void *(*open)(void *ctx, int fd);
	void (*close)(void *t);
	int (*handshake)(void *t); /* TLS_DONE at once without one */
	ssize_t (*read)(void *t, void *buf, size_t len);
	ssize_t (*write)(void *t, const void *buf, size_t len);
	/* Optional: what is queued now ends the response; bye follows. */
	void (*last)(void *t);
	int (*bye)(void *t); /* close_notify (or FIN) */
	/* Fills req's cert, tls_version and tls_cipher: XZ_OK or a code. */
	int (*peer)(void *t, struct xz_request *req);
	/* The last failure in the transport's own words, or fallback. */
	const char *(*strerror)(void *t, const char *fallback);
	/* Optional: the server name the client asked for (SNI) in buf, or NULL.
	 */
	const char *(*sni)(void *t, char *buf, size_t len);
};

/* GnuTLS on the socket; its ctx is a struct tls_ctx. */
extern const struct conn_io conn_io_tls;

/* What a connection needs from its listener; shared, read-only. */
struct conn_cfg {
	/*
	 * The sites: the SNI's site must be the request host's (else 53),
	 * and its app answers.
	 */
	const struct site_set *sites;
	const struct conn_io *io; /* the transport */
	void *io_ctx;             /* its open()'s ctx */
	int port;                 /* the listener's port */
	int public_port;          /* the port URLs carry; 0: port */
	double request_timeout;   /* handshake + request line */
	double write_timeout;     /* a client that takes no bytes */
	size_t send_min_rate;     /* bytes/s while output waits; 0: none */
	bool access_log;
	/*
	 * PROXY_OFF, or the PROXY header the connection must open with
	 * (read under request_timeout). Then proxied, when not NULL, runs
	 * with the client it names (the peer, when it names none) and
	 * conn_new's arg: false refuses it (a per-address limit).
	 */
	enum proxy_mode proxy;
	bool (*proxied)(const struct sockaddr *client, void *arg);
};

typedef void (*conn_closed_fn)(struct xz_conn *c, void *arg);

/*
 * A connection on fd (taken, made non-blocking) accepted from sa. closed
 * runs once, from conn_close(), just before c is freed. NULL on failure
 * (fd closed).
 */
struct xz_conn *conn_new(struct event_base *base, int fd,
    const struct conn_cfg *cfg, const struct sockaddr *sa,
    conn_closed_fn closed, void *arg);
/* Ends the connection now (idempotent); a handler still at work is
 * cancelled first. */
void conn_close(struct xz_conn *c, const char *reason);

/*
 * testclient.c: the in-process test client (xz_test_*), and the plain
 * transport it runs conn.c over: bytes as they are, no handshake; its
 * ctx (conn_cfg.io_ctx) is a client certificate hash or NULL.
 */
extern const struct conn_io test_client_io;

/*
 * server.c (for config.c's checks): XZ_OK when spec is a listen address
 * xz_server_new would take ("HOST:PORT", "[IPV6]:PORT", PORT 0..65535,
 * 0 for a free one); XZ_EINVAL with the reason in err otherwise.
 */
int server_check_listen(const char *spec, char *err, size_t errlen);

/*
 * admit.c: the global and per-address connection limits (0: none).
 */
struct admit;
struct admit_key {
	int family;
	unsigned char addr[16];
};
struct admit *admit_new(unsigned max_total, unsigned max_per_addr);
void admit_free(struct admit *a);
/*
 * Counts a connection from sa in (true), or refuses it (false). sa NULL
 * (a PROXY listener's peer, the proxy): the global count only, until
 * admit_address.
 */
bool admit_take(struct admit *a, const struct sockaddr *sa,
    struct admit_key *key);
/*
 * A connection taken with sa NULL now has its client, sa: counts it
 * against sa's address and makes key sa's (true), or refuses it (false,
 * key unchanged: admit_release still releases the global count).
 */
bool admit_address(struct admit *a, const struct sockaddr *sa,
    struct admit_key *key);
void admit_release(struct admit *a, const struct admit_key *key);
/*
 * The default global limit for a process allowed fd_limit descriptors
 * (RLIMIT_NOFILE; ULONG_MAX when unlimited) with fds_open already open:
 * (fd_limit - fds_open - 32) / 2, at least 1.
 */
unsigned admit_default_max(unsigned long fd_limit, unsigned long fds_open);

/*
 * generation.c: one generation of the configuration (server.c's reload):
 * the sites (names, apps, certificates), the TLS context, each
 * listener's conn_cfg, immutable once serving. A connection holds a
 * reference from accept to close; the server frees a generation once
 * none is left.
 */
struct generation_site { /* how a site was made, to make it again */
	char *names, *cert_file, *key_file;
	struct xz_app *app;
};
struct generation {
	unsigned refs;    /* atomic: the server, each worker, each connection */
	unsigned long id; /* 1 for the first, then one per reload */
	bool started;     /* its apps' shutdown hooks are ours to run */
	/* Run when it is freed (xz_server_reload's): frees the apps. */
	void (*release)(void *arg);
	void *release_arg;
	struct xz_server_opts opts; /* defaulted; strings below */
	char *hostname, *cert_file, *key_file, *ticket_key_file;
	struct site_set *sites;        /* [0]: the default site, opts' */
	struct generation_site *specs; /* one per site, in order */
	size_t nspecs;
	struct tls_ctx *tls;
	struct conn_cfg *cfgs; /* one per listener (ports[i]) */
	size_t ncfgs;
	TAILQ_ENTRY(generation) link; /* the server's retired ones */
};
/*
 * Reads the ticket key of o (defaulted, copied) and the certificate of
 * its default site, opts.hostname served by app (borrowed; set release
 * to free it). One reference, the caller's. NULL with the reason in err.
 */
struct generation *generation_new(const struct xz_server_opts *o,
    struct xz_app *app, const int *ports, size_t nports, char *err,
    size_t errlen);
/* One more site (xz_server_add_site), before g serves. */
int generation_add_site(struct generation *g, const char *names,
    struct xz_app *app, const char *cert_file, const char *key_file, char *err,
    size_t errlen);
struct xz_app *generation_app(const struct generation *g); /* default's */
/* Each app's startup hooks, once an app; undone when one fails. */
int generation_startup(struct generation *g);
/* Their shutdown hooks, the last started first (when started). */
void generation_shutdown(struct generation *g);
/* An app has work left on the workers' loops (app_busy). */
bool generation_busy(const struct generation *g);
/* Each site's names and certificate fingerprint, which TOFU clients pin. */
void generation_log_sites(const struct generation *g);
void generation_ref(struct generation *g);
/* true when that was the last reference. Any thread. */
bool generation_unref(struct generation *g);
bool generation_unused(struct generation *g);
/* Frees g, then runs its release; NULL is a no-op. */
void generation_free(struct generation *g);

/*
 * beneath.c (static.c and cgi.c): opens path (no "." or ".." segments)
 * under dirfd so that nothing, symlinks included, leads outside it:
 * openat2(RESOLVE_BENEATH); where the kernel lacks openat2, a walk that
 * follows no symlink at all. Returns the descriptor, or -1 with errno.
 */
int open_beneath(int dirfd, const char *path, int flags);
/* The walk alone (open_beneath's fallback), for the tests. */
int open_beneath_walk(int dirfd, const char *path, int flags);

/*
 * cgienv.c: the variable set of a CGI or SCGI request (one builder for
 * both), and its encodings.
 */
struct cgienv_src {
	const char *url;         /* GEMINI_URL */
	const char *host;        /* SERVER_NAME */
	int server_port;         /* SERVER_PORT */
	const char *script_name; /* SCRIPT_NAME */
	const char *path_info;   /* PATH_INFO, decoded */
	const char *query;       /* QUERY_STRING, raw; NULL when none */
	const char *remote_addr; /* REMOTE_ADDR, REMOTE_HOST */
	int remote_port;         /* REMOTE_PORT; 0: left out */
	const struct xz_cert *cert;
	const char *tls_version;
	const char *tls_cipher;
	/* app_state_keys and their values (NULL value: not set) */
	const char *const *state_keys;
	const char *const *state_values;
	size_t nstate;
	bool inherit_environment;
	/*
	 * A Titan upload: CONTENT_LENGTH, CONTENT_TYPE, REQUEST_METHOD
	 * POST, and TITAN_TOKEN when there is a token.
	 */
	bool upload;
	size_t content_length;
	const char *content_type;
	const char *token; /* NULL: none */
};

/* An ordered set of unique names with values. */
struct cgienv {
	char **names;
	char **values;
	size_t len, cap;
};

/*
 * Builds the set of DESIGN.md: request variables first, then XITZIN_<KEY>
 * for each state key (upper-cased, anything but A-Z 0-9 _ made _; empty
 * keys and NULL values skipped), then (inherit_environment) the parent
 * environment where it does not override. The parent may never supply a
 * name the request could have set (REMOTE_USER, AUTH_TYPE, TLS_*, the RFC
 * 3875 names, CONTENT_LENGTH, SCGI, a state key's XITZIN_ name), set or
 * not. env need not be initialised; release it with cgienv_clear(). Returns
 * XZ_OK or XZ_ENOMEM (env then empty).
 */
int cgienv_build(struct cgienv *env, const struct cgienv_src *src);
/*
 * The set for req going to a backend configured by cfg (its
 * app_state_keys, read from the app's state now, and
 * inherit_environment): the one request -> variables step of CGI and
 * SCGI. script_name and path_info are SCRIPT_NAME and PATH_INFO (a CGI
 * script's differ from the mount's). As cgienv_build.
 */
int cgienv_request(struct cgienv *env, struct xz_request *req,
    const char *script_name, const char *path_info,
    const struct xz_backend_config *cfg);
void cgienv_clear(struct cgienv *env);
/* The value of name, or NULL. */
const char *cgienv_get(const struct cgienv *env, const char *name);
/* Appends "len:data," to out, whole or not at all. */
int netstring_add(struct evbuffer *out, const void *data, size_t len);
/*
 * Appends the SCGI request header: a netstring of CONTENT_LENGTH (env's,
 * or 0) first, SCGI=1 second, then env's pairs with empty values left out, and
 * no body.
 */
int cgienv_scgi_header(struct evbuffer *out, const struct cgienv *env);
/*
 * A NULL-ended "NAME=value" array for execve (QUERY_STRING always set,
 * empty or not); free with cgienv_envp_free().
 */
char **cgienv_envp(const struct cgienv *env);
void cgienv_envp_free(char **envp);

/*
 * relay.c: a backend's answer (an SCGI socket, a CGI script's stdout)
 * relayed to the client; the part SCGI and CGI share. It reads through a
 * bufferevent, parses the header in any of the three shapes
 * (response_parse_backend), then either holds the whole answer to check
 * max_response_size, or, with no limit, streams it with backpressure: the
 * backend is read only as fast as the client takes the bytes.
 */
struct bufferevent;
struct relay;

struct relay_cfg {
	double timeout;           /* each wait for the backend's next bytes */
	double max_duration;      /* the whole answer; 0: no bound */
	size_t max_response_size; /* 0: unlimited, stream */
	size_t buffer_size;       /* read chunk */
	int error_status;         /* 43 (SCGI) or 42 (CGI) */
	const char *meta_timeout; /* "SCGI backend timeout", ... */
	const char *meta_too_big; /* "SCGI response exceeds maximum size" */
	const char *meta_bad;     /* "SCGI backend error" */
	const char *name;         /* for the log: "scgi /api" */
	int backend_id;           /* metrics_backend_id; 0: not counted */
	/*
	 * A backend that closes or resets the connection before a single
	 * byte of answer ends the relay with RELAY_UNANSWERED, the request
	 * untouched: another backend may take it (SCGI pools).
	 */
	bool unanswered_returns;
};

enum relay_end {
	RELAY_OK,     /* the backend's answer went out whole */
	RELAY_FAILED, /* the client got error_status (or a cut stream): an
	                 answer over the limit, or ours */
	RELAY_BACKEND_FAILED, /* the same, the backend's fault: silent past a
	                         timeout, a bad header, a reset or an early
	                         close (passive health counts it) */
	RELAY_UNANSWERED,     /* unanswered_returns: req not answered, still
	                         the caller's */
};

/*
 * Relays what bev (taken; reading enabled by the relay) brings to req.
 * cfg is borrowed and must outlive the relay. done runs once, when req
 * has been answered and ended (after that the caller must not touch
 * req), or with RELAY_UNANSWERED, req untouched; the relay has then
 * freed bev and itself. NULL when out of memory
 * (bev freed, nothing answered).
 */
struct relay *relay_new(struct xz_request *req, struct bufferevent *bev,
    const struct relay_cfg *cfg, void (*done)(enum relay_end how, void *arg),
    void *arg);
/* The client went away: frees bev and the relay; done does not run. */
void relay_cancel(struct relay *r);

/*
 * backend.c: what CGI and SCGI share before a request leaves: the one
 * config (xz_backend_config), checked and copied, and the relay's view.
 */
struct backend_kind {
	void (*defaults)(struct xz_backend_config *); /* xz_*_config_init */
	int error_status;         /* 43 (SCGI) or 42 (CGI) */
	const char *meta_timeout; /* "SCGI backend timeout", ... */
	const char *meta_too_big;
	const char *meta_bad;
};

/*
 * Checks cfg (NULL: kind's defaults) and copies it into dst, the state
 * keys too: dst owns them until backend_config_clear. XZ_OK; XZ_EINVAL
 * or XZ_ENOMEM with *why a static reason ("timeout must be greater than
 * 0", "out of memory"). On failure dst owns nothing. Checks the shared
 * fields only: max_processes is the CGI handler's.
 */
int backend_config_copy(struct xz_backend_config *dst,
    const struct xz_backend_config *cfg, const struct backend_kind *kind,
    const char **why);
/* Frees what backend_config_copy gave dst; safe on a zeroed dst. */
void backend_config_clear(struct xz_backend_config *cfg);
/* Gives a handler made for cfg its Titan settings (h may be NULL). */
void backend_handler_titan(struct xz_handler *h,
    const struct xz_backend_config *cfg);
/* The relay's view of cfg, with kind's metas; name is borrowed. */
void backend_relay_cfg(struct relay_cfg *r, const struct xz_backend_config *cfg,
    const struct backend_kind *kind, const char *name);

/*
 * pool.c: the choice among a mount's backends (least connections or
 * round robin), their passive health (max_fails, fail_timeout), their
 * connection slots (max_conns) and the queue for one; shared by the
 * worker threads through atomics, the queue under a mutex. Times are ms
 * of whatever monotonic clock the caller passes (unit tests pass their
 * own). Also the parser of a backend address string.
 */
#define POOL_MAX                                                               \
	64 /* backends in one pool: a request's tried set is a mask            \
	    */
struct pool;

/* Someone waiting for a slot; wake runs once, on any thread, under the
 * pool's lock (so it may only signal, e.g. event_active). */
struct pool_waiter {
	struct pool_waiter *next;
	void (*wake)(void *arg);
	void *arg;
	bool queued; /* in the queue (pool's lock) */
};

/* The defaults for the zero fields (max_fails 1, fail_timeout 10, ...). */
void pool_config_fill(struct xz_pool_config *cfg);
/* Why cfg cannot be used, or NULL. */
const char *pool_config_invalid(const struct xz_pool_config *cfg);
/* A pool of n (1..POOL_MAX) members, cfg copied (NULL: defaults); NULL
 * when out of memory or n is out of range. One member is never rested. */
struct pool *pool_new(size_t n, const struct xz_pool_config *cfg);
void pool_free(struct pool *p);
size_t pool_size(const struct pool *p);
const struct xz_pool_config *pool_config(const struct pool *p);
int pool_active(struct pool *p, size_t i);
bool pool_resting(struct pool *p, size_t i, int64_t now);
/*
 * The member to try, with a slot taken (give it back with pool_release),
 * skipping those in tried (bit i: member i) and those resting; -1 when
 * none, *busy then telling whether one was only full (wait: pool_wait)
 * rather than none left (the request fails).
 */
int pool_pick(struct pool *p, uint64_t tried, int64_t now, bool *busy);
/* Whether pool_pick would find a slot now (none is taken). */
bool pool_has_room(struct pool *p, uint64_t tried, int64_t now);
/* Gives member i's slot back; wakes the first waiter, if any. */
void pool_release(struct pool *p, size_t i);
/* Member i failed (connect, or closed without answering); true when
 * that made it rest for fail_timeout. The place a failure is counted. */
bool pool_failed(struct pool *p, size_t i, int64_t now);
/* Member i answered: its failures are forgotten. */
void pool_answered(struct pool *p, size_t i);
/* Queues w (at the front: a waiter woken too late); false when full. */
bool pool_wait(struct pool *p, struct pool_waiter *w, bool front);
/* Takes w out of the queue; woken: it was woken and will not take the
 * slot, which the next waiter then gets. w may then be freed. */
void pool_unwait(struct pool *p, struct pool_waiter *w, bool woken);
int pool_waiting(struct pool *p);

/* A backend's address as written: unix:PATH, host:port, [v6]:port. */
struct pool_addr {
	bool is_unix;
	char path[108]; /* sun_path's size */
	char host[256];
	int port;
};
/* XZ_OK, or XZ_EINVAL with the reason ("backend x: ...") in why. */
int pool_addr_parse(const char *spec, struct pool_addr *a, char *why,
    size_t whylen);

#endif /* XZ_PRIVATE_H */
