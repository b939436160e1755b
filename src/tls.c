/*
 * tls.c - the server side of TLS, the only file that names GnuTLS.
 *
 * A tls_ctx owns what every handshake shares: the certificate and key
 * (generated on first run when neither file exists), the priority cache and
 * the session-ticket master key. It is read-only once built, so worker
 * threads may share one (GnuTLS credentials and priority caches may be used
 * by concurrent sessions); free it after its last connection.
 *
 * A tls_conn is one GnuTLS session on a non-blocking socket, driven by the
 * caller's event loop: each call does what the socket allows and says which
 * readiness it waits for (TLS_WANT_READ/WRITE). Client certificates are
 * requested and never verified: Gemini identifies a client by the hash of
 * its certificate (trust on first use), self-signed or not.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#include "xz_private.h"

/*
 * TLS 1.2 and 1.3 only (DESIGN.md), with GnuTLS's NORMAL ciphers in our
 * order, ours over the client's: AES-128-GCM first. Its hash, SHA-256,
 * runs in hardware (SHA-NI) where SHA-384 runs in software, and a
 * handshake hashes its transcript and derives its keys with the suite's
 * hash: with the AES-256-GCM-SHA384 most clients list first, SHA-512
 * compression was 7% of a full handshake's CPU, and this order took 13%
 * off both full and resumed handshakes (bench/). AES-128 matches the
 * P-256 key's 128-bit security; CHACHA20 comes next, for clients
 * without AES instructions.
 *
 * Key exchange: elliptic curves only, no FFDHE (a 2048-bit modular
 * exponentiation costs several times an X25519). The group order is set
 * per connection by tls_on_client_hello(); TLS_GROUPS is the order used
 * when the client sent no usable key share.
 */
#define TLS_PRIORITY_BASE                                                      \
	"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:"              \
	"+AES-128-GCM:+CHACHA20-POLY1305:+AES-256-GCM:+AES-128-CCM:"           \
	"+AES-256-CCM:+AES-128-CBC:+AES-256-CBC:-DHE-RSA:-DHE-DSS:"            \
	"%SERVER_PRECEDENCE:-GROUP-ALL"

/*
 * Our preference among key-exchange groups, with their TLS ids (RFC 8446,
 * 4.2.7). X25519 first: cheaper than P-256 ECDH in nettle, and the one
 * share that OpenSSL, Go and Python clients send.
 */
static const struct tls_group {
	const char *name; /* GnuTLS priority keyword */
	unsigned int id;
} tls_groups[] = {
	{ "GROUP-X25519", 29 },
	{ "GROUP-SECP256R1", 23 },
	{ "GROUP-SECP384R1", 24 },
	{ "GROUP-X448", 30 },
	{ "GROUP-SECP521R1", 25 },
};
#define TLS_NGROUPS (sizeof(tls_groups) / sizeof(tls_groups[0]))

/* The TLS id of the key_share extension (RFC 8446, 4.2). */
#define TLS_EXT_KEY_SHARE 51

/*
 * GNUTLS_NONBLOCK: never poll() inside GnuTLS (its handshake timeout would
 * otherwise wait on the socket). GNUTLS_NO_SIGNAL: MSG_NOSIGNAL, no
 * SIGPIPE. GNUTLS_NO_AUTO_SEND_TICKET: TLS 1.3 tickets are sent by
 * conn_queue_ticket(), one rather than GnuTLS's two.
 */
#define TLS_SESSION_FLAGS                                                      \
	(GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL |                  \
	    GNUTLS_NO_AUTO_SEND_TICKET)

/* The largest record plaintext (RFC 8446, 5.1; RFC 5246, 6.2.1). */
#define TLS_MAX_WRITE 16384

/*
 * Records GnuTLS writes are gathered in tc->out and sent once per call
 * (out_flush): a server flight is one send() rather than one per record.
 * Once the response is complete (tls_conn_last) less than this stays
 * there for close_notify to join, so that a short answer leaves in one
 * send() with the session ticket before it and close_notify after it. On
 * loopback each send() also pays for the receiver's TCP processing.
 */
#define TLS_HOLD_LAST TLS_MAX_WRITE

/*
 * What one recv() may bring in for GnuTLS to take from (tls_pull): a
 * client's whole flight (a ClientHello; a Finished with the request
 * behind it) fits, so it costs one call instead of two per record.
 */
#define TLS_READ_AHEAD 2048

/*
 * GnuTLS packs the client's certificate chain into the session ticket, and
 * a ticket's length has 16 bits (RFC 8446, 4.6.1; RFC 5077, 3.3): a chain
 * near 64 KiB made a malformed ticket (OpenSSL: "length mismatch"). Under
 * TLS 1.2 the ticket is a handshake message, which the chain then also
 * takes past GnuTLS's 128 KiB for a whole handshake (decode_error). GnuTLS
 * can neither store less in a ticket nor, under TLS 1.2, withdraw one the
 * ServerHello promised (RFC 5077's empty ticket). So a Certificate message
 * over this size gets no ticket under TLS 1.3, and is refused under
 * TLS 1.2 with bad_certificate before the ticket is made.
 */
#define TICKET_MAX_CERT 49152

#define CERT_MAX_FILE (1024L * 1024) /* PEM files longer are refused */
#define CERT_DAYS 3650               /* generated certificates: ~10 years */
#define DAY 86400

/* A site's certificate and key, loaded once (tls_cert_new). */
struct tls_cert {
	gnutls_certificate_credentials_t cred;
	char fingerprint[7 + 64 + 1]; /* SHA256: + hex of the DER */
};

struct tls_ctx {
	/*
	 * The certificate a session starts with (the default site's), and
	 * the one that may replace it once the ClientHello's SNI is read.
	 */
	struct tls_cert *cert;
	bool owns_cert; /* tls_ctx_new loaded it */
	struct tls_cert *(*pick)(void *arg, const char *sni);
	void *pick_arg;
	/*
	 * prio[i] lists tls_groups[i] first, then the others in our order:
	 * with %SERVER_PRECEDENCE GnuTLS picks the first group the client
	 * supports, so the session gets the cache whose first group is our
	 * favourite among the key shares the client sent.
	 */
	gnutls_priority_t prio[TLS_NGROUPS];
	/* Master key: GnuTLS derives the rotating ticket keys from it. */
	gnutls_datum_t ticket_key;
};

enum conn_phase {
	PHASE_HANDSHAKE, /* gnutls_handshake() until it returns 0 */
	PHASE_OPEN,
};

struct tls_conn {
	gnutls_session_t s;
	struct tls_ctx *ctx;
	int fd;
	enum conn_phase phase;
	unsigned int
	    hellos;    /* ClientHellos seen: 2 after a HelloRetryRequest */
	bool received; /* any byte has come from the client */
	bool not_tls;  /* its first byte was not a TLS handshake record */
	unsigned int cert_size; /* the client's Certificate message, bytes */
	/* Encrypted, not yet sent: out[ooff..olen). NULL when empty. */
	unsigned char *out;
	size_t ooff, olen, ocap;
	ssize_t taken;   /* a write's count, returned once out is sent */
	bool ticket_due; /* TLS 1.3: a ticket goes before the first record */
	bool last;       /* the response is complete: bye comes next */
	bool bye_queued; /* close_notify is in out */
	char err[160];   /* tls_conn_strerror() */
	/* Received, not yet taken by GnuTLS: rbuf[roff..rlen). */
	size_t roff, rlen;
	unsigned char rbuf[TLS_READ_AHEAD];
};

static int
fail(char *err, size_t errlen, const char *what, const char *why)
{
	if (errlen > 0)
		snprintf(err, errlen, "%s: %s", what, why);
	return -1;
}

/*
 * Certificate generation.
 */

static char *
trim(char *s)
{
	char *end;

	s += strspn(s, " \t");
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	return s;
}

/* An IPv4/IPv6 literal is an iPAddress name (RFC 5280, 4.2.1.6). */
static int
crt_add_name(gnutls_x509_crt_t crt, const char *name, bool first)
{
	unsigned char ip[16];
	int ret;

	if (first &&
	    (ret = gnutls_x509_crt_set_dn_by_oid(crt,
	         GNUTLS_OID_X520_COMMON_NAME, 0, name, strlen(name))) < 0)
		return ret;
	if (inet_pton(AF_INET, name, ip) == 1)
		return gnutls_x509_crt_set_subject_alt_name(crt,
		    GNUTLS_SAN_IPADDRESS, ip, 4, GNUTLS_FSAN_APPEND);
	if (inet_pton(AF_INET6, name, ip) == 1)
		return gnutls_x509_crt_set_subject_alt_name(crt,
		    GNUTLS_SAN_IPADDRESS, ip, 16, GNUTLS_FSAN_APPEND);
	return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME,
	    name, strlen(name), GNUTLS_FSAN_APPEND);
}

/*
 * hostname may list names ("example.org, gem.example.org"): the first is the
 * CN, every one is a subjectAltName. None at all means "localhost".
 */
static int
crt_set_names(gnutls_x509_crt_t crt, const char *hostname)
{
	char *copy, *tok, *save = NULL;
	int ret = 0, n = 0;

	if ((copy = strdup(hostname != NULL ? hostname : "")) == NULL)
		return GNUTLS_E_MEMORY_ERROR;
	for (tok = strtok_r(copy, ",", &save); tok != NULL && ret >= 0;
	     tok = strtok_r(NULL, ",", &save)) {
		if (*(tok = trim(tok)) != '\0')
			ret = crt_add_name(crt, tok, n++ == 0);
	}
	free(copy);
	if (ret >= 0 && n == 0)
		ret = crt_add_name(crt, "localhost", true);
	return ret;
}

/* A random positive serial of 16 octets (RFC 5280, 4.1.2.2). */
static int
crt_set_serial(gnutls_x509_crt_t crt)
{
	unsigned char serial[16];
	int ret;

	if ((ret = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial))) < 0)
		return ret;
	serial[0] = (serial[0] & 0x7f) | 0x40;
	return gnutls_x509_crt_set_serial(crt, serial, sizeof(serial));
}

/*
 * A self-signed leaf for a server (RFC 5280): v3, valid from a day ago
 * (clocks drift) for ~10 years, not a CA, signatures only, serverAuth.
 */
static int
crt_fill(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key,
    const struct tls_opts *opts)
{
	time_t now = time(NULL);
	int ret;

	if ((ret = gnutls_x509_crt_set_version(crt, 3)) < 0 ||
	    (ret = crt_set_serial(crt)) < 0 ||
	    (ret = gnutls_x509_crt_set_activation_time(crt, now - DAY)) < 0 ||
	    (ret = gnutls_x509_crt_set_expiration_time(crt,
	         now + (time_t)CERT_DAYS * DAY)) < 0 ||
	    (ret = gnutls_x509_crt_set_key(crt, key)) < 0 ||
	    (ret = gnutls_x509_crt_set_basic_constraints(crt, 0, -1)) < 0 ||
	    (ret = gnutls_x509_crt_set_key_usage(crt,
	         GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0 ||
	    (ret = gnutls_x509_crt_set_key_purpose_oid(crt,
	         GNUTLS_KP_TLS_WWW_SERVER, 0)) < 0 ||
	    (ret = crt_set_names(crt, opts->hostname)) < 0)
		return ret;
	/* Ed25519's own hash is SHA-512 (RFC 8032, 5.1). */
	return gnutls_x509_crt_sign2(crt, crt, key,
	    opts->ed25519 ? GNUTLS_DIG_SHA512 : GNUTLS_DIG_SHA256, 0);
}

/* The key as unencrypted PKCS #8, which every TLS library reads. */
static int
export_pem(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key,
    gnutls_datum_t *kpem, gnutls_datum_t *cpem)
{
	int ret;

	ret = gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL,
	    GNUTLS_PKCS_PLAIN, kpem);
	if (ret < 0)
		return ret;
	return gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, cpem);
}

/* A new key and certificate as PEM; the caller frees both, even on error. */
static int
gen_pem(const struct tls_opts *opts, gnutls_datum_t *kpem, gnutls_datum_t *cpem)
{
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
	int curve = opts->ed25519 ? GNUTLS_ECC_CURVE_ED25519 :
	                            GNUTLS_ECC_CURVE_SECP256R1;
	int ret;

	if ((ret = gnutls_x509_privkey_init(&key)) < 0)
		return ret;
	ret = gnutls_x509_privkey_generate2(key,
	    opts->ed25519 ? GNUTLS_PK_EDDSA_ED25519 : GNUTLS_PK_ECDSA,
	    GNUTLS_CURVE_TO_BITS(curve), 0, NULL, 0);
	if (ret >= 0 && (ret = gnutls_x509_crt_init(&crt)) >= 0) {
		if ((ret = crt_fill(crt, key, opts)) >= 0)
			ret = export_pem(crt, key, kpem, cpem);
		gnutls_x509_crt_deinit(crt);
	}
	gnutls_x509_privkey_deinit(key);
	return ret;
}

/* mkdir -p of path's directory, each created 0755. */
static int
mkdir_parents(const char *path, char *err, size_t errlen)
{
	char *dir, *p;
	int ret = 0;

	if ((dir = strdup(path)) == NULL)
		return fail(err, errlen, path, strerror(ENOMEM));
	for (p = dir + 1; ret == 0 && (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (mkdir(dir, 0755) == -1 && errno != EEXIST)
			ret = fail(err, errlen, dir, strerror(errno));
		*p = '/';
	}
	free(dir);
	return ret;
}

/*
 * Creates path with its final mode from the start (O_EXCL: never through
 * a file or link someone else put there), so the key is never readable by
 * others, not even for a moment. A failed write leaves no file behind.
 */
static int
write_new_file(const char *path, const gnutls_datum_t *d, mode_t mode,
    char *err, size_t errlen)
{
	size_t off = 0;
	ssize_t n;
	int fd, saved = 0;

	if (mkdir_parents(path, err, errlen) == -1)
		return -1;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd == -1)
		return fail(err, errlen, path, strerror(errno));
	while (off < d->size && saved == 0) {
		if ((n = write(fd, d->data + off, d->size - off)) >= 0)
			off += (size_t)n;
		else if (errno != EINTR)
			saved = errno;
	}
	if (close(fd) == -1 && saved == 0)
		saved = errno; /* e.g. NFS reports a full disk only here */
	if (saved == 0)
		return 0;
	unlink(path);
	return fail(err, errlen, path, strerror(saved));
}

/* A lone key would block the next run (one file missing): none is left. */
static int
write_pair(const struct tls_opts *opts, const gnutls_datum_t *kpem,
    const gnutls_datum_t *cpem, char *err, size_t errlen)
{
	if (write_new_file(opts->key_file, kpem, 0600, err, errlen) == -1)
		return -1;
	if (write_new_file(opts->cert_file, cpem, 0644, err, errlen) == -1) {
		unlink(opts->key_file);
		return -1;
	}
	return 0;
}

static int
generate(const struct tls_opts *opts, char *err, size_t errlen)
{
	gnutls_datum_t kpem = { NULL, 0 }, cpem = { NULL, 0 };
	int ret;

	if ((ret = gen_pem(opts, &kpem, &cpem)) < 0)
		ret = fail(err, errlen, opts->cert_file, gnutls_strerror(ret));
	else
		ret = write_pair(opts, &kpem, &cpem, err, errlen);
	if (kpem.data != NULL) {
		gnutls_memset(kpem.data, 0, kpem.size);
		gnutls_free(kpem.data);
	}
	gnutls_free(cpem.data);
	return ret;
}

/* 1 when path exists, 0 when it does not, -1 (err set) when stat fails. */
static int
file_exists(const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (stat(path, &st) == 0)
		return 1;
	if (errno == ENOENT)
		return 0;
	return fail(err, errlen, path, strerror(errno));
}

/* 1: both files exist, 0: neither, -1 (err set): one alone, or stat fails. */
static int
files_state(const struct tls_opts *opts, char *err, size_t errlen)
{
	int c, k;

	if ((c = file_exists(opts->cert_file, err, errlen)) == -1 ||
	    (k = file_exists(opts->key_file, err, errlen)) == -1)
		return -1;
	if (c == k)
		return c;
	if (errlen > 0)
		snprintf(err, errlen,
		    "%s: not found, but %s exists (give both files, or "
		    "neither to generate a new pair)",
		    c ? opts->key_file : opts->cert_file,
		    c ? opts->cert_file : opts->key_file);
	return -1;
}

/* Both files are there afterwards, or -1: generates when neither is. */
static int
files_ready(const struct tls_opts *opts, char *err, size_t errlen)
{
	int state = files_state(opts, err, errlen);

	return state == 0 ? generate(opts, err, errlen) : state == 1 ? 0 : -1;
}

/*
 * Loading.
 */

static int
read_file(const char *path, gnutls_datum_t *d, char *err, size_t errlen)
{
	struct stat st;
	size_t off = 0;
	ssize_t n = 0;
	int fd, saved;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return fail(err, errlen, path, strerror(errno));
	if (fstat(fd, &st) == -1)
		st.st_size = -1;
	if (st.st_size < 0 || st.st_size > CERT_MAX_FILE) {
		saved = st.st_size < 0 ? errno : EFBIG;
		close(fd);
		return fail(err, errlen, path, strerror(saved));
	}
	if ((d->data = malloc((size_t)st.st_size + 1)) == NULL) {
		close(fd);
		return fail(err, errlen, path, strerror(ENOMEM));
	}
	while (off < (size_t)st.st_size) {
		n = read(fd, d->data + off, (size_t)st.st_size - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	saved = errno;
	close(fd);
	d->size = (unsigned int)off;
	return n == -1 ? fail(err, errlen, path, strerror(saved)) : 0;
}

static void
datum_wipe(gnutls_datum_t *d)
{
	if (d->data != NULL) {
		gnutls_memset(d->data, 0, d->size);
		free(d->data);
	}
	d->data = NULL;
	d->size = 0;
}

/*
 * Each file is parsed alone first, so that an error names its file (and
 * because GnuTLS 3.7.9 leaks a certificate structure when
 * gnutls_certificate_set_x509_key_mem2 meets a malformed one).
 */
static int
cert_check(const gnutls_datum_t *pem)
{
	gnutls_x509_crt_t *list = NULL;
	unsigned int n = 0, i;
	int ret;

	ret = gnutls_x509_crt_list_import2(&list, &n, pem, GNUTLS_X509_FMT_PEM,
	    0);
	for (i = 0; i < n; i++)
		gnutls_x509_crt_deinit(list[i]);
	gnutls_free(list);
	return ret;
}

static int
key_check(const gnutls_datum_t *pem)
{
	gnutls_x509_privkey_t key;
	int ret;

	if ((ret = gnutls_x509_privkey_init(&key)) < 0)
		return ret;
	ret =
	    gnutls_x509_privkey_import2(key, pem, GNUTLS_X509_FMT_PEM, NULL, 0);
	gnutls_x509_privkey_deinit(key);
	return ret;
}

static int
ctx_load(gnutls_certificate_credentials_t cred, const struct tls_opts *opts,
    char *err, size_t errlen)
{
	gnutls_datum_t cert = { NULL, 0 }, key = { NULL, 0 };
	int ret = -1;

	if (read_file(opts->cert_file, &cert, err, errlen) == -1 ||
	    read_file(opts->key_file, &key, err, errlen) == -1)
		goto out;
	if ((ret = cert_check(&cert)) < 0) {
		ret = fail(err, errlen, opts->cert_file, gnutls_strerror(ret));
		goto out;
	}
	if ((ret = key_check(&key)) < 0) {
		ret = fail(err, errlen, opts->key_file, gnutls_strerror(ret));
		goto out;
	}
	ret = gnutls_certificate_set_x509_key_mem2(cred, &cert, &key,
	    GNUTLS_X509_FMT_PEM, NULL, 0);
	if (ret == GNUTLS_E_CERTIFICATE_KEY_MISMATCH && errlen > 0)
		snprintf(err, errlen, "%s: does not match the key in %s",
		    opts->cert_file, opts->key_file);
	else if (ret < 0)
		fail(err, errlen, opts->cert_file, gnutls_strerror(ret));
	ret = ret < 0 ? -1 : 0;
out:
	datum_wipe(&cert);
	datum_wipe(&key);
	return ret;
}

int
tls_check_files(const struct tls_opts *opts, char *err, size_t errlen)
{
	gnutls_certificate_credentials_t cred;
	int state, ret;

	if ((state = files_state(opts, err, errlen)) != 1)
		return state == 0 ? XZ_OK : XZ_EINVAL; /* 0: to be generated */
	if ((ret = gnutls_certificate_allocate_credentials(&cred)) < 0) {
		fail(err, errlen, "TLS credentials", gnutls_strerror(ret));
		return XZ_ENOMEM;
	}
	ret = ctx_load(cred, opts, err, errlen);
	gnutls_certificate_free_credentials(cred);
	return ret == 0 ? XZ_OK : XZ_EINVAL;
}

/* "SHA256:" and the hex of the certificate's DER, as clients pin it. */
static int
cert_fingerprint(struct tls_cert *tc)
{
	gnutls_datum_t der = { NULL, 0 };
	unsigned char md[32];
	size_t i;
	int ret;

	if ((ret = gnutls_certificate_get_crt_raw(tc->cred, 0, 0, &der)) < 0 ||
	    (ret = gnutls_hash_fast(GNUTLS_DIG_SHA256, der.data, der.size,
	         md)) < 0)
		return ret;
	memcpy(tc->fingerprint, "SHA256:", 7);
	for (i = 0; i < sizeof(md); i++)
		snprintf(tc->fingerprint + 7 + 2 * i, 3, "%02x", md[i]);
	return 0;
}

struct tls_cert *
tls_cert_new(const struct tls_opts *opts, char *err, size_t errlen)
{
	struct tls_cert *tc;
	int ret;

	if (files_ready(opts, err, errlen) == -1)
		return NULL;
	if ((tc = calloc(1, sizeof(*tc))) == NULL) {
		fail(err, errlen, opts->cert_file, strerror(ENOMEM));
		return NULL;
	}
	if ((ret = gnutls_certificate_allocate_credentials(&tc->cred)) < 0) {
		tc->cred = NULL;
		fail(err, errlen, "TLS credentials", gnutls_strerror(ret));
		goto fail;
	}
	if (ctx_load(tc->cred, opts, err, errlen) == -1)
		goto fail;
	if ((ret = cert_fingerprint(tc)) < 0) {
		fail(err, errlen, opts->cert_file, gnutls_strerror(ret));
		goto fail;
	}
	return tc;
fail:
	tls_cert_free(tc);
	return NULL;
}

void
tls_cert_free(struct tls_cert *tc)
{
	if (tc == NULL)
		return;
	if (tc->cred != NULL)
		gnutls_certificate_free_credentials(tc->cred);
	free(tc);
}

const char *
tls_cert_fingerprint(const struct tls_cert *tc)
{
	return tc->fingerprint;
}

/* TLS_PRIORITY_BASE, then tls_groups[first], then the others in order. */
static int
ctx_priority(gnutls_priority_t *prio, size_t first, char *err, size_t errlen)
{
	char spec[512];
	const char *errpos = NULL;
	size_t i, len;
	int ret;

	len = (size_t)snprintf(spec, sizeof(spec), "%s:+%s", TLS_PRIORITY_BASE,
	    tls_groups[first].name);
	for (i = 0; i < TLS_NGROUPS && len < sizeof(spec); i++)
		if (i != first)
			len += (size_t)snprintf(spec + len, sizeof(spec) - len,
			    ":+%s", tls_groups[i].name);
	if ((ret = gnutls_priority_init(prio, spec, &errpos)) < 0) {
		*prio = NULL;
		return fail(err, errlen, "TLS priority", gnutls_strerror(ret));
	}
	return 0;
}

static int
ctx_priorities(struct tls_ctx *ctx, char *err, size_t errlen)
{
	size_t i;

	for (i = 0; i < TLS_NGROUPS; i++)
		if (ctx_priority(&ctx->prio[i], i, err, errlen) == -1)
			return -1;
	return 0;
}

/*
 * Session-ticket master keys shared by several instances. GnuTLS derives
 * the key that seals tickets from the master key and the clock (a new one
 * each rotation period, the previous one still accepted), so instances
 * with the same master key seal and open each other's tickets, TLS 1.2
 * (RFC 5077) and 1.3 (RFC 8446, 4.6.1) alike. The file is the key's
 * TLS_TICKET_KEY_SIZE raw bytes: what `xitzin -k` or `openssl rand`
 * writes. Whoever reads it can decrypt every resumed session's traffic
 * secrets, so a file others may read or write is refused.
 */
static int
ticket_key_read(gnutls_datum_t *key, const char *path, char *err, size_t errlen)
{
	gnutls_datum_t raw = { NULL, 0 };
	struct stat st;
	char why[80];

	if (stat(path, &st) == 0 && (st.st_mode & (S_IRWXO)) != 0) {
		snprintf(why, sizeof(why),
		    "mode %04o lets others read it (chmod 600)",
		    (unsigned)(st.st_mode & 07777));
		return fail(err, errlen, path, why);
	}
	if (read_file(path, &raw, err, errlen) == -1)
		return -1;
	if (raw.size != TLS_TICKET_KEY_SIZE) {
		snprintf(why, sizeof(why),
		    "%u bytes, a ticket key has %d (xitzin -k FILE)", raw.size,
		    TLS_TICKET_KEY_SIZE);
		datum_wipe(&raw);
		return fail(err, errlen, path, why);
	}
	if ((key->data = gnutls_malloc(raw.size)) == NULL) {
		datum_wipe(&raw);
		return fail(err, errlen, path, strerror(ENOMEM));
	}
	memcpy(key->data, raw.data, raw.size);
	key->size = raw.size;
	datum_wipe(&raw);
	return 0;
}

int
tls_ticket_key_check(const char *path, char *err, size_t errlen)
{
	gnutls_datum_t key = { NULL, 0 };

	if (ticket_key_read(&key, path, err, errlen) == -1)
		return XZ_EINVAL;
	datum_wipe(&key);
	return XZ_OK;
}

int
tls_ticket_key_write(const char *path, char *err, size_t errlen)
{
	gnutls_datum_t key = { NULL, 0 };
	int ret;

	if ((ret = gnutls_session_ticket_key_generate(&key)) < 0)
		return fail(err, errlen, "TLS session tickets",
		    gnutls_strerror(ret));
	if (key.size != TLS_TICKET_KEY_SIZE)
		ret = fail(err, errlen, "TLS session tickets",
		    "unexpected key size");
	else
		ret = write_new_file(path, &key, 0600, err, errlen);
	gnutls_memset(key.data, 0, key.size);
	gnutls_free(key.data);
	return ret;
}

/* Everything a handshake needs that can be shared: done once, here. */
static int
ctx_init(struct tls_ctx *ctx, const struct tls_opts *opts, char *err,
    size_t errlen)
{
	int ret;

	if (opts->cert_file != NULL) {
		if ((ctx->cert = tls_cert_new(opts, err, errlen)) == NULL)
			return -1;
		ctx->owns_cert = true;
	}
	if (ctx_priorities(ctx, err, errlen) == -1)
		return -1;
	if (opts->ticket_key_file != NULL)
		return ticket_key_read(&ctx->ticket_key, opts->ticket_key_file,
		    err, errlen);
	if ((ret = gnutls_session_ticket_key_generate(&ctx->ticket_key)) < 0)
		return fail(err, errlen, "TLS session tickets",
		    gnutls_strerror(ret));
	return 0;
}

struct tls_ctx *
tls_ctx_new(const struct tls_opts *opts, char *err, size_t errlen)
{
	struct tls_ctx *ctx;

	if ((ctx = calloc(1, sizeof(*ctx))) == NULL) {
		fail(err, errlen, "TLS context", strerror(ENOMEM));
		return NULL;
	}
	if (ctx_init(ctx, opts, err, errlen) == -1) {
		tls_ctx_free(ctx);
		return NULL;
	}
	return ctx;
}

void
tls_ctx_free(struct tls_ctx *ctx)
{
	size_t i;

	if (ctx == NULL)
		return;
	if (ctx->owns_cert)
		tls_cert_free(ctx->cert);
	for (i = 0; i < TLS_NGROUPS; i++)
		if (ctx->prio[i] != NULL)
			gnutls_priority_deinit(ctx->prio[i]);
	if (ctx->ticket_key.data != NULL) {
		gnutls_memset(ctx->ticket_key.data, 0, ctx->ticket_key.size);
		gnutls_free(ctx->ticket_key.data);
	}
	free(ctx);
}

void
tls_ctx_set_certs(struct tls_ctx *ctx, struct tls_cert *dflt,
    struct tls_cert *(*pick)(void *arg, const char *sni), void *arg)
{
	if (ctx->owns_cert)
		tls_cert_free(ctx->cert);
	ctx->owns_cert = false;
	ctx->cert = dflt;
	ctx->pick = pick;
	ctx->pick_arg = arg;
}

/*
 * Connections.
 */

/*
 * Virtual hosts: the certificate is the one of the site the client named
 * (SNI, RFC 6066, 3), chosen after the ClientHello is read and before
 * GnuTLS picks a certificate for the cipher suite. Without a pick (one
 * site) the session keeps the default it started with, at no cost.
 */
static int
conn_pick_cert(gnutls_session_t s, struct tls_conn *tc)
{
	char name[256];
	size_t n = sizeof(name) - 1;
	unsigned type;
	struct tls_cert *cert;

	if (gnutls_server_name_get(s, name, &n, &type, 0) != 0 ||
	    type != GNUTLS_NAME_DNS)
		n = 0;
	name[n < sizeof(name) ? n : sizeof(name) - 1] = '\0';
	cert = tc->ctx->pick(tc->ctx->pick_arg, n > 0 ? name : NULL);
	if (cert == NULL || cert == tc->ctx->cert)
		return 0;
	return gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cert->cred);
}

/*
 * TOFU accepts any client certificate, but GnuTLS refuses one whose
 * keyUsage lacks digitalSignature (GNUTLS_E_KEY_USAGE_VIOLATION), such as
 * a self-signed certificate marked for certificate signing only; OpenSSL
 * servers that skip verification accept it. The only switch is the whole
 * compatibility mode, which under TLS 1.2 would also turn off extended
 * master secret and encrypt-then-MAC (RFC 7627, RFC 7366). So it is set
 * once TLS 1.3 is chosen, where those don't exist: after the ClientHello,
 * before the client's Certificate arrives.
 */
static int
conn_client_hello(gnutls_session_t s)
{
	struct tls_conn *tc = gnutls_session_get_ptr(s);
	int ret;

	if (tc->ctx->pick != NULL && (ret = conn_pick_cert(s, tc)) < 0)
		return ret;
	if (gnutls_protocol_get_version(s) == GNUTLS_TLS1_3)
		gnutls_session_enable_compatibility_mode(s);
	return 0;
}

/* The client's Certificate message, before GnuTLS reads it: its size. */
static int
conn_client_cert(gnutls_session_t s, const gnutls_datum_t *msg)
{
	struct tls_conn *tc = gnutls_session_get_ptr(s);

	tc->cert_size = msg->size;
	if (msg->size > TICKET_MAX_CERT &&
	    gnutls_protocol_get_version(s) == GNUTLS_TLS1_2)
		return GNUTLS_E_CERTIFICATE_ERROR;
	return 0;
}

/*
 * Key shares: the client's key_share extension is a list of (group,
 * key) entries (RFC 8446, 4.2.8); *best is lowered to the index in
 * tls_groups of each entry whose group we support.
 */
static int
ext_find_key_shares(void *arg, unsigned int type, const unsigned char *data,
    unsigned int size)
{
	size_t *best = arg, i;
	unsigned int listlen, group, keylen;

	if (type != TLS_EXT_KEY_SHARE || size < 2)
		return 0;
	listlen = (unsigned int)data[0] << 8 | data[1];
	data += 2;
	size = listlen < size - 2 ? listlen : size - 2;
	while (size >= 4) {
		group = (unsigned int)data[0] << 8 | data[1];
		keylen = (unsigned int)data[2] << 8 | data[3];
		if (keylen > size - 4)
			break; /* malformed: GnuTLS's own parser refuses it */
		for (i = 0; i < *best; i++)
			if (tls_groups[i].id == group)
				*best = i;
		data += 4 + keylen;
		size -= 4 + keylen;
	}
	return 0;
}

/*
 * Before GnuTLS reads a ClientHello: the session takes the priority
 * cache that puts first our favourite among the groups the client sent
 * a key share for, so the server never asks for another share (a
 * HelloRetryRequest, one more round trip) when one it sent is usable.
 * No usable share (or a TLS 1.2 client, which sends none) keeps our
 * default order. A second ClientHello is the answer to a retry.
 */
size_t
tls_key_share_pick(const void *hello, size_t len)
{
	gnutls_datum_t msg = { (unsigned char *)(uintptr_t)hello,
		(unsigned int)len };
	size_t best = TLS_NGROUPS;

	if (len > UINT32_MAX)
		return TLS_NGROUPS;
	(void)gnutls_ext_raw_parse(&best, ext_find_key_shares, &msg,
	    GNUTLS_EXT_RAW_FLAG_TLS_CLIENT_HELLO);
	return best;
}

static int
tls_on_client_hello(gnutls_session_t s, const gnutls_datum_t *msg)
{
	struct tls_conn *tc = gnutls_session_get_ptr(s);
	size_t best;

	if (++tc->hellos > 1)
		return 0; /* after our retry: GnuTLS checks the new share */
	best = tls_key_share_pick(msg->data, msg->size);
	if (best < TLS_NGROUPS && best > 0)
		return gnutls_priority_set(s, tc->ctx->prio[best]);
	return 0;
}

/* Handshake messages as they arrive, before GnuTLS reads them. */
static int
tls_on_handshake_msg(gnutls_session_t s, unsigned int htype, unsigned when,
    unsigned int incoming, const gnutls_datum_t *msg)
{
	if (!incoming)
		return 0;
	if (htype == GNUTLS_HANDSHAKE_CLIENT_HELLO)
		return tls_on_client_hello(s, msg);
	if (htype == GNUTLS_HANDSHAKE_CERTIFICATE_PKT)
		return conn_client_cert(s, msg);
	return 0;
}

/*
 * A connection must open with a TLS handshake record (content type 22,
 * RFC 8446, 5.1). One that doesn't, such as a plaintext Gemini request,
 * gets no answer at all: an alert would be bytes a plaintext client takes
 * for a reply (the gemini-diagnostics TLSRequired check counts it as
 * one). The pull error keeps GnuTLS from sending an alert.
 */
static bool
tls_plaintext(struct tls_conn *tc)
{
	tc->received = true;
	if (tc->rbuf[0] == 22)
		return false;
	tc->not_tls = true;
	errno = EPROTO;
	return true;
}

/*
 * GnuTLS pulls a record in two reads, its 5-byte header and then its
 * body: left to recv() that is two system calls per record, and a
 * handshake has several records. Here one recv() takes what the socket
 * holds (up to TLS_READ_AHEAD) and the rest is handed out from rbuf; a
 * read as large as the buffer goes straight to the caller. rbuf only ever
 * holds bytes GnuTLS will ask for next, so the socket's readiness still
 * tells when to call again: a call returns EAGAIN only with rbuf empty.
 */
static ssize_t
tls_pull(gnutls_transport_ptr_t ptr, void *buf, size_t len)
{
	struct tls_conn *tc = ptr;
	ssize_t n;

	if (tc->roff == tc->rlen) {
		if (len >= sizeof(tc->rbuf) && tc->received)
			return recv(tc->fd, buf, len, 0);
		if ((n = recv(tc->fd, tc->rbuf, sizeof(tc->rbuf), 0)) <= 0)
			return n; /* errno is recv's, as GnuTLS expects */
		tc->roff = 0;
		tc->rlen = (size_t)n;
		if (!tc->received && tls_plaintext(tc))
			return -1;
	}
	n = (ssize_t)(tc->rlen - tc->roff < len ? tc->rlen - tc->roff : len);
	memcpy(buf, tc->rbuf + tc->roff, (size_t)n);
	tc->roff += (size_t)n;
	return n;
}

/* GnuTLS asks whether a read would find data (ms 0: don't wait). */
static int
tls_pull_timeout(gnutls_transport_ptr_t ptr, unsigned int ms)
{
	struct tls_conn *tc = ptr;
	struct pollfd pfd = { .fd = tc->fd, .events = POLLIN };

	if (tc->roff < tc->rlen)
		return 1;
	return poll(&pfd, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms);
}

/* Keeps "what: why" (or "why" when what is NULL) for tls_conn_strerror. */
static int
conn_error(struct tls_conn *tc, int result, const char *what, const char *why)
{
	snprintf(tc->err, sizeof(tc->err), "%s%s%s", what ? what : "",
	    what ? ": " : "", why);
	return result;
}

/* Records out: into tc->out, which out_flush() sends. */
static ssize_t
tls_push(gnutls_transport_ptr_t ptr, const giovec_t *iov, int iovcnt)
{
	struct tls_conn *tc = ptr;
	size_t total = 0, need, cap;
	unsigned char *p;
	int i;

	for (i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	need = tc->olen + total;
	if (need > tc->ocap) {
		cap = tc->ocap ? tc->ocap : 2048;
		while (cap < need)
			cap *= 2;
		if ((p = realloc(tc->out, cap)) == NULL) {
			errno = ENOMEM;
			return -1;
		}
		tc->out = p;
		tc->ocap = cap;
	}
	for (i = 0; i < iovcnt; i++) {
		memcpy(tc->out + tc->olen, iov[i].iov_base, iov[i].iov_len);
		tc->olen += iov[i].iov_len;
	}
	return (ssize_t)total;
}

/*
 * Sends what tls_push gathered: 0 once all is sent (the buffer is freed:
 * an idle connection holds none), TLS_WANT_WRITE when the socket is full,
 * TLS_ERROR. Never SIGPIPE.
 */
static int
out_flush(struct tls_conn *tc)
{
	ssize_t n;

	while (tc->ooff < tc->olen) {
		n = send(tc->fd, tc->out + tc->ooff, tc->olen - tc->ooff,
		    MSG_NOSIGNAL);
		if (n > 0)
			tc->ooff += (size_t)n;
		else if (n == -1 && errno == EINTR)
			continue;
		else if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return TLS_WANT_WRITE;
		else
			return conn_error(tc, TLS_ERROR, "write",
			    strerror(n == 0 ? EPIPE : errno));
	}
	free(tc->out);
	tc->out = NULL;
	tc->ooff = tc->olen = tc->ocap = 0;
	return 0;
}

/*
 * Per session only what GnuTLS keeps per session: the shared priority
 * cache, credentials and ticket key are referenced, not rebuilt.
 */
static int
conn_init(struct tls_conn *tc, struct tls_ctx *ctx)
{
	int ret;

	if ((ret = gnutls_init(&tc->s, TLS_SESSION_FLAGS)) < 0) {
		tc->s = NULL;
		return ret;
	}
	if ((ret = gnutls_priority_set(tc->s, ctx->prio[0])) < 0 ||
	    (ret = gnutls_credentials_set(tc->s, GNUTLS_CRD_CERTIFICATE,
	         ctx->cert->cred)) < 0 ||
	    (ret = gnutls_session_ticket_enable_server(tc->s,
	         &ctx->ticket_key)) < 0)
		return ret;
	/*
	 * Ask for a client certificate, don't require one. Nothing verifies
	 * its chain: no verify function or trust list is ever set, so a
	 * self-signed certificate is accepted like any other (GnuTLS still
	 * checks the CertificateVerify signature, RFC 8446, 4.4.3).
	 */
	gnutls_certificate_server_set_request(tc->s, GNUTLS_CERT_REQUEST);
	gnutls_handshake_set_post_client_hello_function(tc->s,
	    conn_client_hello);
	/* One hook per session: it passes each message on by its type. */
	gnutls_handshake_set_hook_function(tc->s, GNUTLS_HANDSHAKE_ANY,
	    GNUTLS_HOOK_PRE, tls_on_handshake_msg);
	/* conn.c owns the timeouts: one clock, the event loop's. */
	gnutls_handshake_set_timeout(tc->s, 0);
	return 0;
}

struct tls_conn *
tls_conn_new(struct tls_ctx *ctx, int fd)
{
	struct tls_conn *tc;

	if ((tc = calloc(1, sizeof(*tc))) == NULL)
		return NULL;
	tc->ctx = ctx;
	if (conn_init(tc, ctx) < 0) {
		tls_conn_free(tc);
		return NULL;
	}
	tc->fd = fd;
	gnutls_session_set_ptr(tc->s, tc);
	gnutls_transport_set_ptr(tc->s, tc);
	gnutls_transport_set_pull_function(tc->s, tls_pull);
	gnutls_transport_set_pull_timeout_function(tc->s, tls_pull_timeout);
	gnutls_transport_set_vec_push_function(tc->s, tls_push);
	return tc;
}

void
tls_conn_free(struct tls_conn *tc)
{
	if (tc == NULL)
		return;
	if (tc->s != NULL)
		gnutls_deinit(tc->s);
	free(tc->out);
	free(tc);
}

/*
 * Maps a negative GnuTLS return to enum tls_result. Read errno first: it
 * is the socket call's, made last inside GnuTLS. AGAIN means the socket
 * would block, in the direction gnutls_record_get_direction() reports (a
 * TLS 1.3 read may have to write, e.g. a KeyUpdate, RFC 8446, 4.6.3).
 */
static int
conn_result(struct tls_conn *tc, int ret)
{
	int saved = errno;

	switch (ret) {
	case GNUTLS_E_AGAIN:
	case GNUTLS_E_INTERRUPTED:
		return gnutls_record_get_direction(tc->s) ? TLS_WANT_WRITE :
		                                            TLS_WANT_READ;
	case GNUTLS_E_PREMATURE_TERMINATION:
		return conn_error(tc, TLS_EOF, NULL,
		    "closed without close_notify");
	case GNUTLS_E_PULL_ERROR:
		if (saved == ECONNRESET)
			return conn_error(tc, TLS_EOF, NULL, strerror(saved));
		return conn_error(tc, TLS_ERROR, "read", strerror(saved));
	case GNUTLS_E_PUSH_ERROR:
		return conn_error(tc, TLS_ERROR, "write", strerror(saved));
	case GNUTLS_E_FATAL_ALERT_RECEIVED:
		return conn_error(tc, TLS_ERROR, "received alert",
		    gnutls_alert_get_name(gnutls_alert_get(tc->s)));
	case GNUTLS_E_CERTIFICATE_ERROR:
		if (tc->cert_size > TICKET_MAX_CERT)
			return conn_error(tc, TLS_ERROR, NULL,
			    "client certificate too large for TLS 1.2");
		return conn_error(tc, TLS_ERROR, NULL, gnutls_strerror(ret));
	case GNUTLS_E_REHANDSHAKE:
		/* TLS 1.2 only; Gemini has no use for renegotiation. */
		return conn_error(tc, TLS_ERROR, NULL, "renegotiation refused");
	default:
		return conn_error(tc, TLS_ERROR, NULL, gnutls_strerror(ret));
	}
}

/*
 * One TLS 1.3 ticket per connection rather than GnuTLS's default two: a
 * Gemini client makes one request per connection, one after the other, and
 * each resumed connection brings it a fresh ticket (tickets are single use,
 * RFC 8446, C.4). It goes out with the first record of the response, in
 * the same send(), not alone after the handshake: a client reads it while
 * it reads the answer. TLS 1.2 sends its ticket within the handshake (RFC
 * 5077). None when the client's certificate would not fit
 * (TICKET_MAX_CERT).
 */
static int
conn_queue_ticket(struct tls_conn *tc)
{
	if (!tc->ticket_due)
		return 0;
	tc->ticket_due = false;
	if (tc->cert_size > TICKET_MAX_CERT)
		return 0;
	return gnutls_session_ticket_send(tc->s, 1, 0);
}

static int
conn_handshake_failed(struct tls_conn *tc, int ret)
{
	int result = conn_result(tc, ret);

	if (tc->not_tls)
		return conn_error(tc, TLS_ERROR, NULL,
		    "not a TLS handshake (a plaintext request?)");

	/*
	 * Tell the client why (RFC 8446, 6.2), best effort: a full socket
	 * loses the alert, and none goes to a peer that is gone or that
	 * sent its own.
	 */
	if (result == TLS_ERROR && ret != GNUTLS_E_FATAL_ALERT_RECEIVED &&
	    ret != GNUTLS_E_PUSH_ERROR && ret != GNUTLS_E_PULL_ERROR)
		(void)gnutls_alert_send_appropriate(tc->s, ret);
	return result;
}

/*
 * Our push never blocks (it gathers), so GnuTLS's AGAIN always waits for
 * the client's next flight: what it wrote before is sent first.
 */
/*
 * The handshake ended on the client's Finished and we had nothing to send
 * back (TLS 1.3: the ticket waits for the answer; TLS 1.2 resumption). A
 * client with Nagle's algorithm on (Python's ssl and OpenSSL's s_client,
 * by default) holds its request until that Finished is acknowledged, and
 * the kernel, with nothing of ours to carry the ACK, delays it: 40 ms
 * added to every such request. So unless the request is already here
 * (one more read-ahead, which the request's read then takes from rbuf),
 * acknowledge now: a bare ACK for a client that sent both at once would
 * cost the server CPU for nothing.
 */
static void
ack_unless_request_here(struct tls_conn *tc)
{
	int one = 1;
	ssize_t n;

	if (tc->roff < tc->rlen)
		return;
	if ((n = recv(tc->fd, tc->rbuf, sizeof(tc->rbuf), 0)) > 0) {
		tc->roff = 0;
		tc->rlen = (size_t)n;
		return;
	}
	/* EOF or an error: the request's read meets it again; no ACK due. */
	if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
		return;
	(void)setsockopt(tc->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
}

int
tls_conn_handshake(struct tls_conn *tc)
{
	int ret, flushed;
	bool sent;

	if ((flushed = out_flush(tc)) != 0)
		return flushed;
	if (tc->phase == PHASE_HANDSHAKE) {
		/* Warnings don't end a handshake (GnuTLS caps them). */
		do
			ret = gnutls_handshake(tc->s);
		while (ret == GNUTLS_E_WARNING_ALERT_RECEIVED);
		if (ret < 0 && ret != GNUTLS_E_AGAIN &&
		    ret != GNUTLS_E_INTERRUPTED) {
			ret = conn_handshake_failed(tc, ret);
			(void)out_flush(tc); /* the alert, best effort */
			return ret;
		}
		sent = tc->olen > tc->ooff;
		if ((flushed = out_flush(tc)) != 0)
			return flushed;
		if (ret < 0)
			return TLS_WANT_READ;
		tc->phase = PHASE_OPEN;
		tc->ticket_due =
		    gnutls_protocol_get_version(tc->s) == GNUTLS_TLS1_3;
		if (!sent)
			ack_unless_request_here(tc);
	}
	return TLS_DONE;
}

bool
tls_conn_retried(const struct tls_conn *tc)
{
	return tc->hellos > 1;
}

bool
tls_conn_resumed(const struct tls_conn *tc)
{
	return gnutls_session_is_resumed(tc->s) != 0;
}

ssize_t
tls_conn_read(struct tls_conn *tc, void *buf, size_t len)
{
	ssize_t n;

	/* A warning alert consumes a record: retrying ends with the input. */
	do
		n = gnutls_record_recv(tc->s, buf, len);
	while (n == GNUTLS_E_WARNING_ALERT_RECEIVED);
	/*
	 * A read may have written (a KeyUpdate's answer): sent now if the
	 * socket takes it, else with the next write or close_notify.
	 */
	if (tc->olen > tc->ooff)
		(void)out_flush(tc);
	if (n > 0)
		return n;
	if (n == 0)
		return conn_error(tc, TLS_EOF, NULL, "received close_notify");
	return conn_result(tc, (int)n);
}

void
tls_conn_last(struct tls_conn *tc)
{
	tc->last = true;
}

/*
 * The record is encrypted into tc->out at once; when the socket cannot
 * take all of it, the call says TLS_WANT_WRITE and keeps the count it
 * took, which the next call returns once the rest is sent (so buf is
 * never read again).
 */
ssize_t
tls_conn_write(struct tls_conn *tc, const void *buf, size_t len)
{
	ssize_t n;
	int ret;

	if ((ret = out_flush(tc)) != 0)
		return ret;
	if (tc->taken > 0) {
		n = tc->taken;
		tc->taken = 0;
		return n;
	}
	if ((ret = conn_queue_ticket(tc)) < 0)
		return conn_result(tc, ret);
	n = gnutls_record_send(tc->s, buf,
	    len < TLS_MAX_WRITE ? len : TLS_MAX_WRITE);
	if (n <= 0)
		return conn_result(tc, (int)n);
	if (tc->last && tc->olen - tc->ooff < TLS_HOLD_LAST)
		return n; /* close_notify joins it */
	if ((ret = out_flush(tc)) == TLS_WANT_WRITE)
		tc->taken = n;
	return ret != 0 ? ret : n;
}

/*
 * GNUTLS_SHUT_WR: send close_notify (after any queued record) and don't
 * wait for the client's; Gemini closes after one response (RFC 8446, 6.1
 * allows closing without reading the peer's close_notify).
 */
int
tls_conn_bye(struct tls_conn *tc)
{
	int ret;

	if (!tc->bye_queued) {
		if ((ret = gnutls_bye(tc->s, GNUTLS_SHUT_WR)) != 0)
			return conn_result(tc, ret);
		tc->bye_queued = true;
	}
	return (ret = out_flush(tc)) != 0 ? ret : TLS_DONE;
}

/*
 * Client certificates.
 */

/*
 * Certificate text as it may be shown. GnuTLS prints DNs per RFC 4514 but
 * escapes only a DN's own specials (",+\"\\<>;"), so a subject may still
 * hold raw control bytes (a LF ends an environment or log line, an ESC
 * starts a terminal sequence), bytes that are not UTF-8, and characters
 * that rearrange or break a displayed line. Each byte of those becomes
 * \XX (lowercase hex), RFC 4514's own escape (2.4): the result is still an
 * RFC 4514 string, and a parser of one gets the certificate's bytes back.
 */

/*
 * The length of the UTF-8 character at s that may be shown as it is, or
 * 0 when its first byte is to be escaped: a C0 or C1 control or DEL; an
 * overlong form, a surrogate or a truncated sequence (RFC 3629, 4); the
 * bidirectional formatting characters and the line and paragraph
 * separators (U+200E-F, U+202A-E, U+2066-9, U+2028-9).
 */
static size_t
shown_len(const unsigned char *s, size_t len)
{
	/* The least code point of each length: shorter forms are overlong. */
	static const unsigned int least[] = { 0, 0, 0x80, 0x800, 0x10000 };
	unsigned int cp, i, n;

	if (s[0] < 0x80)
		return s[0] >= 0x20 && s[0] != 0x7f ? 1 : 0;
	n = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : 2;
	if (s[0] < 0xc2 || s[0] > 0xf4 || len < n)
		return 0;
	cp = s[0] & (0x7fu >> n);
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < least[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
	    cp <= 0x9f || cp == 0x200e || cp == 0x200f ||
	    (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069))
		return 0;
	return n;
}

char *
cert_text_escape(const char *text, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)text;
	size_t i = 0, o = 0, n;
	char *out;

	if ((out = malloc(3 * len + 1)) == NULL)
		return NULL;
	while (i < len) {
		/*
		 * A backslash opens an escape (GnuTLS escapes its own): the
		 * pair is copied whole, or, when what it escapes is to be
		 * shown as hex, the hex alone says it.
		 */
		if (s[i] == '\\' && i + 1 < len &&
		    (n = shown_len(s + i + 1, len - i - 1)) > 0) {
			memcpy(out + o, s + i, n + 1);
			o += n + 1;
			i += n + 1;
			continue;
		}
		if (s[i] == '\\')
			i++;
		if (i == len) { /* a backslash at the end: escaped itself */
			memcpy(out + o, "\\5c", 3);
			o += 3;
		} else if ((n = shown_len(s + i, len - i)) > 0) {
			memcpy(out + o, s + i, n);
			o += n;
			i += n;
		} else {
			out[o++] = '\\';
			out[o++] = hex[s[i] >> 4];
			out[o++] = hex[s[i] & 0xf];
			i++;
		}
	}
	out[o] = '\0';
	return out;
}

/* "" when the DN is empty or GnuTLS can't print it; NULL on ENOMEM. */
static char *
dn_dup(gnutls_x509_crt_t crt, bool issuer)
{
	gnutls_datum_t dn = { NULL, 0 };
	char *s;
	int ret;

	ret = issuer ? gnutls_x509_crt_get_issuer_dn3(crt, &dn, 0) :
	               gnutls_x509_crt_get_dn3(crt, &dn, 0);
	if (ret == GNUTLS_E_MEMORY_ERROR)
		return NULL;
	s = ret < 0 ? strdup("") : cert_text_escape((char *)dn.data, dn.size);
	gnutls_free(dn.data);
	return s;
}

/* The first CN; none (or one GnuTLS can't decode) leaves *cn NULL. */
static int
cn_dup(gnutls_x509_crt_t crt, char **cn)
{
	size_t size = 0;
	char *raw;
	int ret;

	*cn = NULL;
	ret = gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0,
	    0, NULL, &size);
	if (ret != GNUTLS_E_SHORT_MEMORY_BUFFER)
		return XZ_OK;
	if ((raw = calloc(1, ++size)) == NULL)
		return XZ_ENOMEM;
	ret = gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0,
	    0, raw, &size);
	if (ret == 0 && (*cn = cert_text_escape(raw, size)) == NULL)
		ret = GNUTLS_E_MEMORY_ERROR;
	free(raw);
	return ret == GNUTLS_E_MEMORY_ERROR ? XZ_ENOMEM : XZ_OK;
}

/* 2026-01-02T03:04:05Z, or "" when t is not a representable time. */
static void
iso_time(time_t t, char out[21])
{
	struct tm tm;

	if (t == (time_t)-1 || gmtime_r(&t, &tm) == NULL ||
	    strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		out[0] = '\0';
}

/*
 * The validity dates are read from the DER: GnuTLS reports any date
 * before 1970 as time 0, 1970-01-01. Only the outer structure is walked,
 * of a certificate GnuTLS has already parsed.
 */

/*
 * The DER element at *p, before end: its tag, and its contents in
 * [*v, *v + *vlen); *p moves past it. One-byte tags and definite lengths
 * of up to 4 bytes, all a certificate's outer structure uses.
 */
static int
der_next(const unsigned char **p, const unsigned char *end, unsigned int *tag,
    const unsigned char **v, size_t *vlen)
{
	const unsigned char *q = *p;
	size_t len, n;

	if (end - q < 2 || (q[0] & 0x1f) == 0x1f)
		return -1;
	*tag = *q++;
	len = *q++;
	if (len & 0x80) {
		n = len & 0x7f;
		if (n == 0 || n > 4 || (size_t)(end - q) < n)
			return -1;
		for (len = 0; n > 0; n--)
			len = len << 8 | *q++;
	}
	if (len > (size_t)(end - q))
		return -1;
	*v = q;
	*vlen = len;
	*p = q + len;
	return 0;
}

/* Two decimal digits at s, or -1. */
static int
two_digits(const unsigned char *s)
{
	if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
		return -1;
	return (s[0] - '0') * 10 + (s[1] - '0');
}

/*
 * UTCTime YYMMDDHHMMSSZ (YY under 50 is 20YY, RFC 5280, 4.1.2.5.1) or
 * GeneralizedTime YYYYMMDDHHMMSSZ (4.1.2.5.2), the forms RFC 5280 allows,
 * as 2026-01-02T03:04:05Z.
 */
static int
der_time(unsigned int tag, const unsigned char *v, size_t len, char out[21])
{
	int f[7], i, year;
	char buf[80];

	if (!((tag == 0x17 && len == 13) || (tag == 0x18 && len == 15)) ||
	    v[len - 1] != 'Z')
		return -1;
	for (i = 0; i < (int)(len - 1) / 2; i++)
		if ((f[i] = two_digits(v + 2 * i)) == -1)
			return -1;
	if (tag == 0x17)
		year = f[0] < 50 ? 2000 + f[0] : 1900 + f[0];
	else
		year = f[0] * 100 + f[1];
	i = tag == 0x17 ? 1 : 2; /* month, day, hour, minute, second */
	if (f[i] < 1 || f[i] > 12 || f[i + 1] < 1 || f[i + 1] > 31 ||
	    f[i + 2] > 23 || f[i + 3] > 59 || f[i + 4] > 60)
		return -1;
	/* The fields are in range: 20 bytes; buf's size quiets the compiler. */
	snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02dZ", year, f[i],
	    f[i + 1], f[i + 2], f[i + 3], f[i + 4]);
	memcpy(out, buf, 21);
	return 0;
}

int
cert_validity(const void *der, size_t len, char not_before[21],
    char not_after[21])
{
	const unsigned char *p = der, *end = p + len, *v;
	unsigned int tag;
	size_t vlen;
	int i;

	/* Certificate ::= SEQUENCE { tbsCertificate SEQUENCE, ... } */
	for (i = 0; i < 2; i++) {
		if (der_next(&p, end, &tag, &v, &vlen) == -1 || tag != 0x30)
			return -1;
		p = v;
		end = v + vlen;
	}
	/* [0] version (optional), serialNumber, signature, issuer */
	if (der_next(&p, end, &tag, &v, &vlen) == -1 ||
	    (tag == 0xa0 && der_next(&p, end, &tag, &v, &vlen) == -1) ||
	    tag != 0x02 || der_next(&p, end, &tag, &v, &vlen) == -1 ||
	    tag != 0x30 || der_next(&p, end, &tag, &v, &vlen) == -1 ||
	    tag != 0x30)
		return -1;
	/* validity SEQUENCE { notBefore Time, notAfter Time } */
	if (der_next(&p, end, &tag, &v, &vlen) == -1 || tag != 0x30)
		return -1;
	p = v;
	end = v + vlen;
	if (der_next(&p, end, &tag, &v, &vlen) == -1 ||
	    der_time(tag, v, vlen, not_before) == -1 ||
	    der_next(&p, end, &tag, &v, &vlen) == -1 ||
	    der_time(tag, v, vlen, not_after) == -1)
		return -1;
	return 0;
}

static int
cert_fill(struct xz_cert *cert, gnutls_x509_crt_t crt,
    const gnutls_datum_t *der)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[32];
	size_t i;

	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, der->data, der->size, md) < 0)
		return XZ_ENOMEM;
	memcpy(cert->hash, "SHA256:", 7);
	for (i = 0; i < sizeof(md); i++) {
		cert->hash[7 + 2 * i] = hex[md[i] >> 4];
		cert->hash[8 + 2 * i] = hex[md[i] & 0xf];
	}
	cert->hash[7 + 2 * sizeof(md)] = '\0';
	if ((cert->subject = dn_dup(crt, false)) == NULL ||
	    (cert->issuer = dn_dup(crt, true)) == NULL ||
	    cn_dup(crt, &cert->cn) != XZ_OK)
		return XZ_ENOMEM;
	/* A form GnuTLS takes and RFC 5280 doesn't: GnuTLS's reading. */
	if (cert_validity(der->data, der->size, cert->not_before,
	        cert->not_after) == -1) {
		iso_time(gnutls_x509_crt_get_activation_time(crt),
		    cert->not_before);
		iso_time(gnutls_x509_crt_get_expiration_time(crt),
		    cert->not_after);
	}
	cert->present = true;
	return XZ_OK;
}

int
tls_conn_peer_cert(struct tls_conn *tc, struct xz_cert *cert)
{
	const gnutls_datum_t *der;
	gnutls_x509_crt_t crt;
	unsigned int n = 0;
	int ret;

	memset(cert, 0, sizeof(*cert));
	/* The first is the client's own; the rest, its chain, is unused. */
	if ((der = gnutls_certificate_get_peers(tc->s, &n)) == NULL || n == 0)
		return XZ_OK;
	if (gnutls_x509_crt_init(&crt) < 0)
		return XZ_ENOMEM;
	if (gnutls_x509_crt_import(crt, &der[0], GNUTLS_X509_FMT_DER) < 0)
		ret = XZ_EPARSE;
	else
		ret = cert_fill(cert, crt, &der[0]);
	gnutls_x509_crt_deinit(crt);
	if (ret != XZ_OK)
		cert_clear(cert);
	return ret;
}

void
cert_clear(struct xz_cert *cert)
{
	if (cert == NULL)
		return;
	free(cert->subject);
	free(cert->issuer);
	free(cert->cn);
	memset(cert, 0, sizeof(*cert));
}

const char *
tls_conn_version(struct tls_conn *tc)
{
	if (tc->phase == PHASE_HANDSHAKE)
		return "unknown"; /* GnuTLS would name the highest enabled */
	switch (gnutls_protocol_get_version(tc->s)) {
	case GNUTLS_TLS1_3:
		return "TLSv1.3";
	case GNUTLS_TLS1_2:
		return "TLSv1.2";
	default:
		return "unknown";
	}
}

const char *
tls_conn_cipher(struct tls_conn *tc)
{
	const char *name;

#if GNUTLS_VERSION_NUMBER >= 0x030703
	/* The IANA name, e.g. TLS_AES_256_GCM_SHA384 (since GnuTLS 3.7.3). */
	name = gnutls_ciphersuite_get(tc->s);
#else
	/* GnuTLS's own name (ECDHE_ECDSA_AES_256_GCM_SHA384); 1.2 only. */
	name = gnutls_cipher_suite_get_name(gnutls_kx_get(tc->s),
	    gnutls_cipher_get(tc->s), gnutls_mac_get(tc->s));
#endif
	return name != NULL ? name : "unknown";
}

const char *
tls_conn_sni(struct tls_conn *tc, char *buf, size_t len)
{
	size_t n = len - 1;
	unsigned type;

	if (tc->phase == PHASE_HANDSHAKE ||
	    gnutls_server_name_get(tc->s, buf, &n, &type, 0) != 0 ||
	    type != GNUTLS_NAME_DNS)
		return NULL;
	buf[n < len ? n : len - 1] = '\0';
	return buf;
}

const char *
tls_conn_strerror(struct tls_conn *tc)
{
	return tc->err[0] != '\0' ? tc->err : "no error";
}
