/*
 * xz_private.h - declarations shared between the files of libxitzin.
 * One section per source file, in the README's reading order.
 */
#ifndef XZ_PRIVATE_H
#define XZ_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "xitzin.h"

struct evbuffer;
struct event_base;

#define XZ_MAX_URL 1024	 /* bytes of a request URL, CRLF not counted */
#define XZ_MAX_META 1024 /* bytes of a response meta */

/*
 * log.c: the server's log on stderr. The library itself never prints: these
 * are silent until log_init() turns them on (the program does).
 */
void log_init(int verbose);
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_access(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * request.c: the Gemini request line and its URL.
 */
struct xz_url {
	char *raw;    /* the URL as received, NUL-terminated */
	char *scheme; /* lower-cased */
	char *host;   /* lower-cased; IPv6 literals without brackets */
	int port;     /* -1 when the URL names none */
	char *path;   /* percent-decoded, dot segments removed; "" when none */
	char *query;  /* raw (still percent-encoded); NULL when absent */
};

/*
 * Parses a request URL of len bytes (the line without its CRLF). Returns 0
 * and fills u (release with url_clear), or 59 with *why set to a static
 * reason for the log: not UTF-8, a control byte or space, relative URL,
 * userinfo, fragment, empty, over XZ_MAX_URL bytes, bad port, %00 in the
 * path, a path that climbs above the root. The scheme and host are not
 * judged here (that is the server's 53).
 */
int url_parse(struct xz_url *u, const char *line, size_t len,
    const char **why);
void url_clear(struct xz_url *u);

/*
 * Percent-decodes in[0..len) into a new NUL-terminated string (*out, with
 * its length in *outlen, which may count inner NULs). Returns XZ_OK or
 * XZ_EPARSE for a malformed escape, XZ_ENOMEM.
 */
int url_decode(const char *in, size_t len, char **out, size_t *outlen);

/*
 * Removes "." and ".." segments from an absolute decoded path in place
 * (RFC 3986, 5.2.4). Returns XZ_EPARSE when ".." would climb above "/".
 */
int url_remove_dots(char *path);

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
	const char *hostname;  /* CN and subjectAltName when generating */
	bool ed25519;	       /* generate Ed25519 rather than ECDSA P-256 */
};

/* What a client certificate says (Gemini: never chain-verified). */
struct xz_cert {
	bool present;
	char hash[7 + 64 + 1]; /* "SHA256:" + lowercase hex of the DER */
	char *subject;	       /* one-line DNs (RFC 4514) */
	char *issuer;
	char *cn;		/* subject CN; NULL when none */
	char not_before[21]; /* 2026-01-02T03:04:05Z */
	char not_after[21];
};
void cert_clear(struct xz_cert *cert);

/*
 * Loads the certificate and key; when neither file exists, generates a
 * self-signed one for hostname (key file mode 0600) first. NULL with a
 * reason in err on failure.
 */
struct tls_ctx *tls_ctx_new(const struct tls_opts *opts, char *err,
    size_t errlen);
void tls_ctx_free(struct tls_ctx *ctx);

/* A server session on a connected non-blocking socket (not taken). */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx, int fd);
void tls_conn_free(struct tls_conn *tc);
/* TLS_DONE, TLS_WANT_READ/WRITE, TLS_EOF or TLS_ERROR. */
int tls_conn_handshake(struct tls_conn *tc);
/* Bytes read (> 0), or TLS_WANT_*, TLS_EOF, TLS_ERROR. */
ssize_t tls_conn_read(struct tls_conn *tc, void *buf, size_t len);
/*
 * Bytes taken (> 0), or TLS_WANT_*, TLS_ERROR. After TLS_WANT_* call again
 * with the same buffer once the socket is ready.
 */
ssize_t tls_conn_write(struct tls_conn *tc, const void *buf, size_t len);
/* Sends close_notify: TLS_DONE, TLS_WANT_*, or TLS_ERROR. */
int tls_conn_bye(struct tls_conn *tc);
/* Fills cert from the client's certificate (present false when none). */
int tls_conn_peer_cert(struct tls_conn *tc, struct xz_cert *cert);
const char *tls_conn_version(struct tls_conn *tc); /* "TLSv1.3" */
const char *tls_conn_cipher(struct tls_conn *tc);  /* IANA name */
const char *tls_conn_strerror(struct tls_conn *tc); /* the last error */

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
 * malformed or would not be a valid Gemini header (response_valid).
 */
int response_parse_backend(const char *buf, size_t len, int *status,
    char **meta, size_t *hdrlen, const char **why);

/* The longest backend header accepted before XZ_EPARSE. */
#define XZ_MAX_BACKEND_HEADER 8192

/*
 * cgienv.c: the variable set of a CGI or SCGI request (one builder for
 * both), and its encodings.
 */
struct cgienv_src {
	const char *url;	 /* GEMINI_URL */
	const char *host;	 /* SERVER_NAME */
	int server_port;	 /* SERVER_PORT */
	const char *script_name; /* SCRIPT_NAME */
	const char *path_info;	 /* PATH_INFO, decoded */
	const char *query;	 /* QUERY_STRING, raw; NULL when none */
	const char *remote_addr; /* REMOTE_ADDR, REMOTE_HOST */
	const struct xz_cert *cert;
	const char *tls_version;
	const char *tls_cipher;
	/* app_state_keys and their values (NULL value: not set) */
	const char *const *state_keys;
	const char *const *state_values;
	size_t nstate;
	bool inherit_environment;
};

/* An ordered set of unique names with values. */
struct cgienv {
	char **names;
	char **values;
	size_t len, cap;
};

/*
 * Builds the set of DESIGN.md: request variables first, then XITZIN_<KEY>
 * for each state key, then (inherit_environment) the parent environment
 * where it does not override. Returns XZ_OK or XZ_ENOMEM.
 */
int cgienv_build(struct cgienv *env, const struct cgienv_src *src);
void cgienv_clear(struct cgienv *env);
/* The value of name, or NULL. */
const char *cgienv_get(const struct cgienv *env, const char *name);
/* Appends "len:data," to out. */
int netstring_add(struct evbuffer *out, const void *data, size_t len);
/*
 * Appends the SCGI request header: a netstring of CONTENT_LENGTH (0)
 * first, SCGI=1 second, then env's pairs with empty values left out, and
 * no body.
 */
int cgienv_scgi_header(struct evbuffer *out, const struct cgienv *env);
/*
 * A NULL-ended "NAME=value" array for execve (QUERY_STRING always set,
 * empty or not); free with cgienv_envp_free().
 */
char **cgienv_envp(const struct cgienv *env);
void cgienv_envp_free(char **envp);

#endif /* XZ_PRIVATE_H */
