/*
 * test_tls.c - tls.c over an in-memory socket pair: certificate generation
 * and loading, handshakes with a GnuTLS client driven from here (both ends
 * non-blocking, polled), data both ways, close_notify, client-certificate
 * facts, session tickets and resumption.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#include "xz_private.h"

#define TLS13_ONLY "NORMAL:-VERS-ALL:+VERS-TLS1.3"
#define TLS12_ONLY "NORMAL:-VERS-ALL:+VERS-TLS1.2"

static char dir[64]; /* this test's own directory, removed afterwards */

static void
setup(void)
{
	umask(022);
	snprintf(dir, sizeof(dir), "/tmp/xz_test_tls_XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void
rm_tree(const char *path)
{
	struct dirent *e;
	char sub[512];
	DIR *d;

	if ((d = opendir(path)) != NULL) {
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 ||
			    strcmp(e->d_name, "..") == 0)
				continue;
			snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
			rm_tree(sub);
		}
		closedir(d);
	}
	remove(path);
}

static void
teardown(void)
{
	rm_tree(dir);
}

TestSuite(tls, .init = setup, .fini = teardown, .timeout = 60);

/* dir/name, in one of a few rotating buffers. */
static const char *
in_dir(const char *name)
{
	static char bufs[4][256];
	static int next;
	char *b = bufs[next++ % 4];

	snprintf(b, sizeof(bufs[0]), "%s/%s", dir, name);
	return b;
}

static struct tls_ctx *
ctx_at(const char *cert, const char *key, const char *host, bool ed25519)
{
	struct tls_opts o = { in_dir(cert), in_dir(key), host, ed25519, NULL };
	char err[512] = "";
	struct tls_ctx *ctx = tls_ctx_new(&o, err, sizeof(err));

	cr_assert_not_null(ctx, "tls_ctx_new: %s", err);
	return ctx;
}

static struct tls_ctx *
ctx_make(void)
{
	return ctx_at("cert.pem", "key.pem", "localhost", false);
}

/* tls_ctx_new must fail; returns its message. */
static const char *
ctx_fails(const char *cert, const char *key)
{
	static char err[512];
	struct tls_opts o = { in_dir(cert), in_dir(key), "localhost", false,
		NULL };

	err[0] = '\0';
	cr_assert_null(tls_ctx_new(&o, err, sizeof(err)));
	cr_assert_neq(err[0], '\0');
	return err;
}

static void
read_all(const char *path, gnutls_datum_t *d)
{
	cr_assert_eq(gnutls_load_file(path, d), 0, "%s", path);
}

static gnutls_x509_crt_t
crt_load(const char *path)
{
	gnutls_datum_t pem;
	gnutls_x509_crt_t crt;

	read_all(path, &pem);
	cr_assert_eq(gnutls_x509_crt_init(&crt), 0);
	cr_assert_eq(gnutls_x509_crt_import(crt, &pem, GNUTLS_X509_FMT_PEM), 0);
	gnutls_free(pem.data);
	return crt;
}

static void
write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

/*
 * A certificate made here, as a client would: self-signed when issuer is
 * NULL. dn is an RFC 4514 string; usage 0 means no keyUsage extension.
 */
struct keypair {
	gnutls_x509_crt_t crt;
	gnutls_x509_privkey_t key;
};

static void
keypair_make_usage(struct keypair *kp, const char *dn,
    const struct keypair *issuer, time_t not_before, time_t not_after,
    unsigned int usage)
{
	unsigned char serial[] = { 0x01, 0x02, 0x03 };
	const char *errpos;

	cr_assert_eq(gnutls_x509_privkey_init(&kp->key), 0);
	cr_assert_eq(gnutls_x509_privkey_generate2(kp->key, GNUTLS_PK_ECDSA,
	                 GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0,
	                 NULL, 0),
	    0);
	cr_assert_eq(gnutls_x509_crt_init(&kp->crt), 0);
	cr_assert_eq(gnutls_x509_crt_set_version(kp->crt, 3), 0);
	cr_assert_eq(gnutls_x509_crt_set_serial(kp->crt, serial, 3), 0);
	cr_assert_eq(gnutls_x509_crt_set_dn(kp->crt, dn, &errpos), 0);
	cr_assert_eq(gnutls_x509_crt_set_activation_time(kp->crt, not_before),
	    0);
	cr_assert_eq(gnutls_x509_crt_set_expiration_time(kp->crt, not_after),
	    0);
	cr_assert_eq(gnutls_x509_crt_set_key(kp->crt, kp->key), 0);
	if (usage != 0)
		cr_assert_eq(gnutls_x509_crt_set_key_usage(kp->crt, usage), 0);
	cr_assert_eq(gnutls_x509_crt_sign2(kp->crt,
	                 issuer ? issuer->crt : kp->crt,
	                 issuer ? issuer->key : kp->key, GNUTLS_DIG_SHA256, 0),
	    0);
}

static void
keypair_make(struct keypair *kp, const char *dn, const struct keypair *issuer,
    time_t not_before, time_t not_after)
{
	keypair_make_usage(kp, dn, issuer, not_before, not_after, 0);
}

static void
keypair_free(struct keypair *kp)
{
	gnutls_x509_crt_deinit(kp->crt);
	gnutls_x509_privkey_deinit(kp->key);
}

/* "SHA256:" + hex of crt's DER, through GnuTLS's incremental hash API. */
static void
expected_hash(gnutls_x509_crt_t crt, char out[72])
{
	gnutls_datum_t der;
	gnutls_hash_hd_t h;
	unsigned char md[32];
	int i;

	cr_assert_eq(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der),
	    0);
	cr_assert_eq(gnutls_hash_init(&h, GNUTLS_DIG_SHA256), 0);
	cr_assert_eq(gnutls_hash(h, der.data, der.size), 0);
	gnutls_hash_deinit(h, md);
	gnutls_free(der.data);
	snprintf(out, 72, "SHA256:");
	for (i = 0; i < 32; i++)
		snprintf(out + 7 + (size_t)i * 2, 3, "%02x", md[i]);
}

static time_t
utc(int y, int mo, int d, int h, int mi, int s)
{
	struct tm tm = { .tm_year = y - 1900,
		.tm_mon = mo - 1,
		.tm_mday = d,
		.tm_hour = h,
		.tm_min = mi,
		.tm_sec = s };

	return timegm(&tm);
}

/*
 * A connection: our server on sfd, a GnuTLS client on cfd.
 */
struct pair {
	int sfd, cfd;
	struct tls_conn *tc;
	gnutls_session_t cs;
	gnutls_certificate_credentials_t ccred;
};

static unsigned tickets_seen;

static int
count_tickets(gnutls_session_t s, unsigned htype, unsigned when,
    unsigned incoming, const gnutls_datum_t *msg)
{
	if (incoming)
		tickets_seen++;
	return 0;
}

/* Extra gnutls_init() flags for the next clients (GNUTLS_KEY_SHARE_TOP). */
static unsigned client_flags;

static void
pair_open(struct pair *p, struct tls_ctx *ctx, const char *prio,
    const struct keypair *client)
{
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cr_assert_eq(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	cr_assert_eq(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
	p->sfd = sv[0];
	p->cfd = sv[1];
	cr_assert_not_null(p->tc = tls_conn_new(ctx, p->sfd));

	cr_assert_eq(gnutls_certificate_allocate_credentials(&p->ccred), 0);
	if (client != NULL)
		cr_assert_eq(gnutls_certificate_set_x509_key(p->ccred,
		                 (gnutls_x509_crt_t *)&client->crt, 1,
		                 client->key),
		    0);
	cr_assert_eq(gnutls_init(&p->cs, GNUTLS_CLIENT | GNUTLS_NONBLOCK |
	                                     GNUTLS_NO_SIGNAL | client_flags),
	    0);
	cr_assert_eq(
	    gnutls_priority_set_direct(p->cs, prio ? prio : "NORMAL", NULL), 0);
	cr_assert_eq(
	    gnutls_credentials_set(p->cs, GNUTLS_CRD_CERTIFICATE, p->ccred), 0);
	gnutls_transport_set_int(p->cs, p->cfd);
	gnutls_handshake_set_hook_function(p->cs,
	    GNUTLS_HANDSHAKE_NEW_SESSION_TICKET, GNUTLS_HOOK_POST,
	    count_tickets);
}

static void
pair_close(struct pair *p)
{
	tls_conn_free(p->tc);
	gnutls_deinit(p->cs);
	gnutls_certificate_free_credentials(p->ccred);
	close(p->sfd);
	close(p->cfd);
}

static short
events_for(int want)
{
	return want == TLS_WANT_WRITE ? POLLOUT : POLLIN;
}

/* Both sides are stuck: wait until one of their sockets is ready. */
static void
wait_either(struct pair *p, short sev, short cev)
{
	struct pollfd fds[2] = { { p->sfd, sev, 0 }, { p->cfd, cev, 0 } };

	cr_assert_gt(poll(fds, 2, 5000), 0, "deadlock: nobody can progress");
}

static short
client_events(struct pair *p)
{
	return gnutls_record_get_direction(p->cs) ? POLLOUT : POLLIN;
}

/* Runs both handshakes to completion (the server's result returned). */
static int
handshake_result(struct pair *p)
{
	int s = TLS_WANT_READ, c = GNUTLS_E_AGAIN, i;

	for (i = 0; i < 1000 && (s < 0 || c < 0); i++) {
		if (s == TLS_WANT_READ || s == TLS_WANT_WRITE)
			s = tls_conn_handshake(p->tc);
		if (c == GNUTLS_E_AGAIN)
			c = gnutls_handshake(p->cs);
		if (s != TLS_WANT_READ && s != TLS_WANT_WRITE && s != TLS_DONE)
			return s;
		cr_assert(c == 0 || c == GNUTLS_E_AGAIN, "client: %s",
		    gnutls_strerror(c));
		if (s < 0 && c < 0)
			wait_either(p, events_for(s), client_events(p));
		else if (s < 0)
			wait_either(p, events_for(s), 0);
	}
	cr_assert_eq(c, 0);
	return s;
}

static void
handshake(struct pair *p)
{
	int s = handshake_result(p);

	cr_assert_eq(s, TLS_DONE, "server: %d %s", s, tls_conn_strerror(p->tc));
}

static void
client_send(struct pair *p, const char *data, size_t len)
{
	ssize_t n;
	int i;

	for (i = 0; i < 1000; i++) {
		n = gnutls_record_send(p->cs, i ? NULL : data, i ? 0 : len);
		if (n != GNUTLS_E_AGAIN) {
			cr_assert_eq(n, (ssize_t)len, "%s",
			    gnutls_strerror((int)n));
			return;
		}
	}
	cr_assert_fail("client send never completed");
}

/* Reads until it has len bytes or the result is not data. */
static ssize_t
server_read(struct pair *p, char *buf, size_t len)
{
	size_t got = 0;
	ssize_t n = 0;
	int i;

	for (i = 0; i < 1000 && got < len; i++) {
		n = tls_conn_read(p->tc, buf + got, len - got);
		if (n > 0)
			got += (size_t)n;
		else if (n == TLS_WANT_READ || n == TLS_WANT_WRITE)
			wait_either(p, events_for((int)n), 0);
		else
			return n;
	}
	return (ssize_t)got;
}

static ssize_t
client_recv(struct pair *p, char *buf, size_t len)
{
	ssize_t n;
	int i;

	for (i = 0; i < 1000; i++) {
		if ((n = gnutls_record_recv(p->cs, buf, len)) != GNUTLS_E_AGAIN)
			return n;
		wait_either(p, 0, POLLIN);
	}
	cr_assert_fail("client recv never completed");
	return -1;
}

static void
server_write_all(struct pair *p, const char *data, size_t len)
{
	size_t off = 0;
	ssize_t n;
	int i;

	for (i = 0; i < 1000 && off < len; i++) {
		n = tls_conn_write(p->tc, data + off, len - off);
		if (n > 0)
			off += (size_t)n;
		else
			cr_assert_eq(n, TLS_WANT_WRITE, "%s",
			    tls_conn_strerror(p->tc));
	}
	cr_assert_eq(off, len);
}

static void
server_bye(struct pair *p)
{
	int r, i;

	for (i = 0; i < 1000; i++) {
		if ((r = tls_conn_bye(p->tc)) == TLS_DONE)
			return;
		cr_assert(r == TLS_WANT_READ || r == TLS_WANT_WRITE);
		wait_either(p, events_for(r), 0);
	}
	cr_assert_fail("bye never completed");
}

/* After "20 text/gemini\r\n" was written: close_notify, client reads. */
static void
serve_and_close_after(struct pair *p)
{
	char buf[64];

	server_bye(p);
	cr_assert_eq(client_recv(p, buf, sizeof(buf)), 16);
	cr_assert_eq(memcmp(buf, "20 text/gemini\r\n", 16), 0);
	cr_assert_eq(client_recv(p, buf, sizeof(buf)), 0, "no close_notify");
}

/* A response, close_notify, and the client reads to the end. */
static void
serve_and_close(struct pair *p)
{
	server_write_all(p, "20 text/gemini\r\n", 16);
	serve_and_close_after(p);
}

/*
 * Certificates: generation and loading.
 */

Test(tls, generates_on_first_run)
{
	struct tls_ctx *ctx;
	gnutls_datum_t first, second;
	struct stat st;

	ctx = ctx_at("certs/sub/cert.pem", "keys/key.pem", "localhost", false);
	tls_ctx_free(ctx);
	cr_assert_eq(stat(in_dir("keys/key.pem"), &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0600);
	cr_assert_eq(stat(in_dir("certs/sub/cert.pem"), &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0644);
	cr_assert_eq(stat(in_dir("certs/sub"), &st), 0);
	cr_assert(S_ISDIR(st.st_mode));
	cr_assert_eq(st.st_mode & 07777, 0755);

	read_all(in_dir("certs/sub/cert.pem"), &first);
	ctx = ctx_at("certs/sub/cert.pem", "keys/key.pem", "other", false);
	tls_ctx_free(ctx);
	read_all(in_dir("certs/sub/cert.pem"), &second);
	cr_assert_eq(first.size, second.size, "regenerated");
	cr_assert_eq(memcmp(first.data, second.data, first.size), 0);
	gnutls_free(first.data);
	gnutls_free(second.data);
}

Test(tls, generated_key_is_pkcs8_pem)
{
	gnutls_datum_t key;

	tls_ctx_free(ctx_make());
	read_all(in_dir("key.pem"), &key);
	cr_assert_eq(memcmp(key.data, "-----BEGIN PRIVATE KEY-----", 27), 0);
	gnutls_free(key.data);
}

Test(tls, generated_cert_fields)
{
	gnutls_x509_crt_t crt;
	char buf[256];
	size_t size = sizeof(buf);
	unsigned int critical, usage, bits;
	time_t now = time(NULL);

	tls_ctx_free(ctx_at("cert.pem", "key.pem", "gem.example", false));
	crt = crt_load(in_dir("cert.pem"));
	cr_assert_eq(gnutls_x509_crt_get_version(crt), 3);
	cr_assert_eq(gnutls_x509_crt_get_dn_by_oid(crt,
	                 GNUTLS_OID_X520_COMMON_NAME, 0, 0, buf, &size),
	    0);
	cr_assert_str_eq(buf, "gem.example");
	size = sizeof(buf);
	cr_assert_eq(
	    gnutls_x509_crt_get_subject_alt_name(crt, 0, buf, &size, &critical),
	    GNUTLS_SAN_DNSNAME);
	cr_assert_str_eq(buf, "gem.example");
	size = sizeof(buf);
	cr_assert_eq(
	    gnutls_x509_crt_get_subject_alt_name(crt, 1, buf, &size, NULL),
	    GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE);

	cr_assert_eq(
	    gnutls_x509_crt_get_basic_constraints(crt, NULL, NULL, NULL), 0,
	    "must not be a CA");
	cr_assert_eq(gnutls_x509_crt_get_key_usage(crt, &usage, NULL), 0);
	cr_assert_eq(usage, GNUTLS_KEY_DIGITAL_SIGNATURE);
	size = sizeof(buf);
	cr_assert_eq(
	    gnutls_x509_crt_get_key_purpose_oid(crt, 0, buf, &size, NULL), 0);
	cr_assert_str_eq(buf, GNUTLS_KP_TLS_WWW_SERVER);

	cr_assert_eq(gnutls_x509_crt_get_pk_algorithm(crt, &bits),
	    GNUTLS_PK_ECDSA);
	cr_assert_eq(bits, 256);
	size = sizeof(buf);
	cr_assert_eq(gnutls_x509_crt_get_serial(crt, buf, &size), 0);
	cr_assert_geq(size, 15);

	cr_assert_leq(
	    labs(gnutls_x509_crt_get_activation_time(crt) - (now - 86400)), 5);
	cr_assert_geq(gnutls_x509_crt_get_expiration_time(crt),
	    now + 3649L * 86400);
	cr_assert_leq(gnutls_x509_crt_get_expiration_time(crt),
	    now + 3660L * 86400);
	cr_assert_eq(gnutls_x509_crt_check_issuer(crt, crt), 1);
	gnutls_x509_crt_deinit(crt);
}

static void
assert_ip_san(const char *host, const unsigned char *ip, size_t iplen)
{
	gnutls_x509_crt_t crt;
	char buf[64];
	size_t size = sizeof(buf);

	tls_ctx_free(ctx_at("cert.pem", "key.pem", host, false));
	crt = crt_load(in_dir("cert.pem"));
	cr_assert_eq(
	    gnutls_x509_crt_get_subject_alt_name(crt, 0, buf, &size, NULL),
	    GNUTLS_SAN_IPADDRESS);
	cr_assert_eq(size, iplen);
	cr_assert_eq(memcmp(buf, ip, iplen), 0);
	size = sizeof(buf);
	cr_assert_eq(gnutls_x509_crt_get_dn_by_oid(crt,
	                 GNUTLS_OID_X520_COMMON_NAME, 0, 0, buf, &size),
	    0);
	cr_assert_str_eq(buf, host);
	gnutls_x509_crt_deinit(crt);
}

Test(tls, generated_ipv4_san)
{
	static const unsigned char ip[4] = { 127, 0, 0, 1 };

	assert_ip_san("127.0.0.1", ip, 4);
}

Test(tls, generated_ipv6_san)
{
	static const unsigned char ip[16] = { [15] = 1 };

	assert_ip_san("::1", ip, 16);
}

Test(tls, generated_name_list)
{
	gnutls_x509_crt_t crt;
	char buf[64];
	size_t size = sizeof(buf);

	tls_ctx_free(
	    ctx_at("cert.pem", "key.pem", " a.example ,b.example,,", false));
	crt = crt_load(in_dir("cert.pem"));
	cr_assert_eq(gnutls_x509_crt_get_dn_by_oid(crt,
	                 GNUTLS_OID_X520_COMMON_NAME, 0, 0, buf, &size),
	    0);
	cr_assert_str_eq(buf, "a.example");
	size = sizeof(buf);
	cr_assert_eq(
	    gnutls_x509_crt_get_subject_alt_name(crt, 0, buf, &size, NULL),
	    GNUTLS_SAN_DNSNAME);
	cr_assert_str_eq(buf, "a.example");
	size = sizeof(buf);
	cr_assert_eq(
	    gnutls_x509_crt_get_subject_alt_name(crt, 1, buf, &size, NULL),
	    GNUTLS_SAN_DNSNAME);
	cr_assert_str_eq(buf, "b.example");
	size = sizeof(buf);
	cr_assert_lt(
	    gnutls_x509_crt_get_subject_alt_name(crt, 2, buf, &size, NULL), 0);
	gnutls_x509_crt_deinit(crt);
}

Test(tls, generated_without_hostname_is_localhost)
{
	gnutls_x509_crt_t crt;
	char buf[64];
	size_t size = sizeof(buf);

	tls_ctx_free(ctx_at("cert.pem", "key.pem", NULL, false));
	crt = crt_load(in_dir("cert.pem"));
	cr_assert_eq(gnutls_x509_crt_get_dn_by_oid(crt,
	                 GNUTLS_OID_X520_COMMON_NAME, 0, 0, buf, &size),
	    0);
	cr_assert_str_eq(buf, "localhost");
	gnutls_x509_crt_deinit(crt);
}

Test(tls, ed25519_generation_and_handshakes)
{
	struct tls_ctx *ctx = ctx_at("c.pem", "k.pem", "localhost", true);
	gnutls_x509_crt_t crt = crt_load(in_dir("c.pem"));
	struct pair p;

	cr_assert_eq(gnutls_x509_crt_get_pk_algorithm(crt, NULL),
	    GNUTLS_PK_EDDSA_ED25519);
	cr_assert_eq(gnutls_x509_crt_get_signature_algorithm(crt),
	    GNUTLS_SIGN_EDDSA_ED25519);
	gnutls_x509_crt_deinit(crt);

	pair_open(&p, ctx, TLS13_ONLY, NULL);
	handshake(&p);
	cr_assert_str_eq(tls_conn_version(p.tc), "TLSv1.3");
	serve_and_close(&p);
	pair_close(&p);

	pair_open(&p, ctx, TLS12_ONLY, NULL);
	handshake(&p);
	cr_assert_str_eq(tls_conn_version(p.tc), "TLSv1.2");
	serve_and_close(&p);
	pair_close(&p);
	tls_ctx_free(ctx);
}

Test(tls, missing_key_is_named)
{
	const char *err;

	tls_ctx_free(ctx_at("cert.pem", "key.pem", "localhost", false));
	cr_assert_eq(unlink(in_dir("key.pem")), 0);
	err = ctx_fails("cert.pem", "key.pem");
	cr_assert_eq(strncmp(err, in_dir("key.pem"), strlen(in_dir("key.pem"))),
	    0, "%s", err);
	cr_assert_not_null(strstr(err, "not found"), "%s", err);
	cr_assert_neq(access(in_dir("cert.pem"), F_OK), -1, "cert removed");
}

Test(tls, missing_cert_is_named)
{
	const char *err;

	tls_ctx_free(ctx_at("cert.pem", "key.pem", "localhost", false));
	cr_assert_eq(unlink(in_dir("cert.pem")), 0);
	err = ctx_fails("cert.pem", "key.pem");
	cr_assert_eq(
	    strncmp(err, in_dir("cert.pem"), strlen(in_dir("cert.pem"))), 0,
	    "%s", err);
	cr_assert_not_null(strstr(err, "not found"), "%s", err);
	cr_assert_eq(access(in_dir("key.pem"), F_OK), 0, "key removed");
}

Test(tls, bad_key_is_named)
{
	const char *err;

	tls_ctx_free(ctx_make());
	write_text(in_dir("key.pem"), "not a key\n");
	err = ctx_fails("cert.pem", "key.pem");
	cr_assert_eq(strncmp(err, in_dir("key.pem"), strlen(in_dir("key.pem"))),
	    0, "%s", err);
}

Test(tls, bad_cert_is_named)
{
	const char *err;

	tls_ctx_free(ctx_make());
	write_text(in_dir("cert.pem"), "-----BEGIN CERTIFICATE-----\nAAAA\n"
	                               "-----END CERTIFICATE-----\n");
	err = ctx_fails("cert.pem", "key.pem");
	cr_assert_eq(
	    strncmp(err, in_dir("cert.pem"), strlen(in_dir("cert.pem"))), 0,
	    "%s", err);
}

Test(tls, mismatched_pair)
{
	const char *err;

	tls_ctx_free(ctx_at("a.crt", "a.key", "a", false));
	tls_ctx_free(ctx_at("b.crt", "b.key", "b", false));
	err = ctx_fails("a.crt", "b.key");
	cr_assert_eq(strncmp(err, in_dir("a.crt"), strlen(in_dir("a.crt"))), 0,
	    "%s", err);
	cr_assert_not_null(strstr(err, "does not match"), "%s", err);
}

Test(tls, failed_generation_leaves_no_key)
{
	struct tls_opts o = { "/proc/xz-no-such-dir/cert.pem",
		in_dir("key.pem"), "localhost", false, NULL };
	char err[512] = "";

	cr_assert_null(tls_ctx_new(&o, err, sizeof(err)));
	cr_assert_eq(strncmp(err, "/proc/xz-no-such-dir", 20), 0, "%s", err);
	cr_assert_eq(access(in_dir("key.pem"), F_OK), -1, "a lone key left");
}

/*
 * Handshakes and data.
 */

Test(tls, handshake_tls13)
{
	struct tls_ctx *ctx = ctx_make();
	struct pair p;

	pair_open(&p, ctx, TLS13_ONLY ":-CIPHER-ALL:+AES-256-GCM", NULL);
	cr_assert_str_eq(tls_conn_version(p.tc), "unknown");
	handshake(&p);
	cr_assert_str_eq(tls_conn_version(p.tc), "TLSv1.3");
	cr_assert_str_eq(tls_conn_cipher(p.tc), "TLS_AES_256_GCM_SHA384");
	serve_and_close(&p);
	pair_close(&p);

	pair_open(&p, ctx, TLS13_ONLY ":-CIPHER-ALL:+CHACHA20-POLY1305", NULL);
	handshake(&p);
	cr_assert_str_eq(tls_conn_cipher(p.tc), "TLS_CHACHA20_POLY1305_SHA256");
	pair_close(&p);
	tls_ctx_free(ctx);
}

Test(tls, handshake_tls12)
{
	struct tls_ctx *ctx = ctx_make();
	struct pair p;

	pair_open(&p, ctx, TLS12_ONLY ":-CIPHER-ALL:+AES-128-GCM", NULL);
	handshake(&p);
	cr_assert_str_eq(tls_conn_version(p.tc), "TLSv1.2");
	cr_assert_str_eq(tls_conn_cipher(p.tc),
	    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
	cr_assert_str_eq(tls_conn_cipher(p.tc), gnutls_ciphersuite_get(p.cs));
	serve_and_close(&p);
	pair_close(&p);
	tls_ctx_free(ctx);
}

Test(tls, tls11_refused)
{
	struct tls_ctx *ctx = ctx_make();
	struct pair p;
	int r;

	pair_open(&p, ctx, "NORMAL:-VERS-ALL:+VERS-TLS1.1", NULL);
	/* The client may refuse to start at all; drive only the server. */
	(void)gnutls_handshake(p.cs);
	r = tls_conn_handshake(p.tc);
	cr_assert_eq(r, TLS_ERROR, "%d", r);
	cr_assert_neq(strcmp(tls_conn_strerror(p.tc), "no error"), 0);
	pair_close(&p);
	tls_ctx_free(ctx);
}

Test(tls, not_tls_is_an_error)
{
	struct tls_ctx *ctx = ctx_make();
	struct pair p;
	int r;

	char buf[16];

	pair_open(&p, ctx, NULL, NULL);
	cr_assert_eq(write(p.cfd, "gemini://x/\r\n", 13), 13);
	r = tls_conn_handshake(p.tc);
	cr_assert_eq(r, TLS_ERROR, "%d", r);
	cr_assert_not_null(strstr(tls_conn_strerror(p.tc), "not a TLS"));
	/* Nothing goes back, not even an alert. */
	cr_assert_eq(read(p.cfd, buf, sizeof(buf)), -1);
	cr_assert_eq(errno, EAGAIN);
	pair_close(&p);
	tls_ctx_free(ctx);
}

static bool
client_readable(struct pair *p)
{
	struct pollfd pfd = { p->cfd, POLLIN, 0 };

	return poll(&pfd, 1, 0) == 1;
}

/*
 * A short answer leaves in one send(): after the handshake nothing
 * follows until the response (the ticket waits for it), and once the
 * response is complete its last record waits for close_notify.
 */
Test(tls, short_answer_leaves_with_ticket_and_close_notify)
{
	struct tls_ctx *ctx = ctx_make();
	struct pair p;

	pair_open(&p, ctx, TLS13_ONLY, NULL);
	tickets_seen = 0;
	handshake(&p);
	cr_assert_not(client_readable(&p), "ticket sent alone");
	tls_conn_last(p.tc);
	server_write_all(&p, "20 text/gemini\r\n", 16);
	cr_assert_not(client_readable(&p), "record sent before close_notify");
	serve_and_close_after(&p);
	cr_assert_eq(tickets_seen, 1);
	pair_close(&p);
	tls_ctx_free(ctx);
}

/* Without tls_conn_last (a handler still at work) a record leaves at once. */
Test(tls, record_of_an_unfinished_answer_leaves_at_once)
{
	struct tls_ctx *ctx = ctx_make();
	struct pair p;

	pair_open(&p, ctx, TLS13_ONLY, NULL);
	handshake(&p);
	server_write_all(&p, "20 text/gemini\r\n", 16);
	cr_assert(client_readable(&p));
	serve_and_close_after(&p);
	pair_close(&p);
	tls_ctx_free(ctx);
}

/*
 * Key shares: a client that sends one share (GNUTLS_KEY_SHARE_TOP, as
 * OpenSSL, Go and Python do) gets that group when we take it, with no
 * HelloRetryRequest, whatever else it lists.
 */
static void
check_group(const char *groups, gnutls_group_t want, bool retried)
{
	struct tls_ctx *ctx = ctx_make();
	char prio[256];
	struct pair p;

	snprintf(prio, sizeof(prio), "%s:-GROUP-ALL:%s", TLS13_ONLY, groups);
	client_flags = GNUTLS_KEY_SHARE_TOP;
	pair_open(&p, ctx, prio, NULL);
	client_flags = 0;
	handshake(&p);
	cr_assert_eq(gnutls_group_get(p.cs), want, "%s: got %s", groups,
	    gnutls_group_get_name(gnutls_group_get(p.cs)));
	cr_assert_eq(tls_conn_retried(p.tc), retried, "%s", groups);
	serve_and_close(&p);
	pair_close(&p);
	tls_ctx_free(ctx);
}

Test(tls, x25519_share_with_p256_listed_is_taken)
{
	check_group("+GROUP-X25519:+GROUP-SECP256R1", GNUTLS_GROUP_X25519,
	    false);
}

Test(tls, p256_share_with_x25519_listed_is_taken)
{
	check_group("+GROUP-SECP256R1:+GROUP-X25519", GNUTLS_GROUP_SECP256R1,
	    false);
}

Test(tls, p384_and_x448_shares_are_taken)
{
	check_group("+GROUP-SECP384R1:+GROUP-X25519", GNUTLS_GROUP_SECP384R1,
	    false);
	check_group("+GROUP-X448:+GROUP-SECP256R1", GNUTLS_GROUP_X448, false);
}

Test(tls, retry_only_without_a_usable_share)
{
	check_group("+GROUP-FFDHE2048:+GROUP-SECP256R1:+GROUP-X25519",
	    GNUTLS_GROUP_X25519, true);
}

Test(tls, ffdhe_only_is_refused)
{
	struct tls_ctx *ctx = ctx_make();
	struct pair p;
	int s, c, i;

	pair_open(&p, ctx, TLS13_ONLY ":-GROUP-ALL:+GROUP-FFDHE2048", NULL);
	for (i = 0, s = TLS_WANT_READ, c = GNUTLS_E_AGAIN;
	     i < 100 && (s == TLS_WANT_READ || s == TLS_WANT_WRITE); i++) {
		if (c == GNUTLS_E_AGAIN)
			c = gnutls_handshake(p.cs);
		s = tls_conn_handshake(p.tc);
	}
	cr_assert_eq(s, TLS_ERROR, "%d", s);
	pair_close(&p);
	tls_ctx_free(ctx);
}

Test(tls, client_gone_during_handshake_is_eof)
{
	struct tls_ctx *ctx = ctx_make();
	struct pair p;

	pair_open(&p, ctx, NULL, NULL);
	cr_assert_eq(gnutls_handshake(p.cs), GNUTLS_E_AGAIN); /* ClientHello */
	cr_assert_eq(tls_conn_handshake(p.tc), TLS_WANT_READ);
	shutdown(p.cfd, SHUT_WR);
	cr_assert_eq(tls_conn_handshake(p.tc), TLS_EOF);
	pair_close(&p);
	tls_ctx_free(ctx);
}

Test(tls, data_both_ways)
{
	struct tls_ctx *ctx = ctx_make();
	char buf[64];
	struct pair p;

	pair_open(&p, ctx, NULL, NULL);
	handshake(&p);
	cr_assert_eq(tls_conn_read(p.tc, buf, sizeof(buf)), TLS_WANT_READ);
	client_send(&p, "gemini://localhost/\r\n", 21);
	cr_assert_eq(server_read(&p, buf, 21), 21);
	cr_assert_eq(memcmp(buf, "gemini://localhost/\r\n", 21), 0);
	serve_and_close(&p);
	pair_close(&p);
	tls_ctx_free(ctx);
}

/* What a short read leaves of a record comes with the next read. */
Test(tls, rest_of_record_after_short_read)
{
	struct tls_ctx *ctx = ctx_make();
	char buf[100];
	struct pair p;

	pair_open(&p, ctx, NULL, NULL);
	handshake(&p);
	client_send(&p, "0123456789abcdefghij", 20);
	cr_assert_eq(server_read(&p, buf, 5), 5);
	cr_assert_eq(tls_conn_read(p.tc, buf, sizeof(buf)), 15);
	cr_assert_eq(memcmp(buf, "56789abcdefghij", 15), 0);
	cr_assert_eq(tls_conn_read(p.tc, buf, sizeof(buf)), TLS_WANT_READ);
	pair_close(&p);
	tls_ctx_free(ctx);
}

/*
 * The server writes 1 MiB while the client reads only when the server is
 * blocked, so the socket fills and writes resume after TLS_WANT_WRITE.
 */
Test(tls, one_mib_through_want_write)
{
	struct tls_ctx *ctx = ctx_make();
	size_t total = 1 << 20, sent = 0, got = 0, i;
	unsigned char *out = malloc(total), *in = malloc(total);
	int wants = 0, loops;
	ssize_t n = 0, r;
	struct pair p;

	for (i = 0; i < total; i++)
		out[i] = (unsigned char)(i * 7 + i / 251);
	pair_open(&p, ctx, NULL, NULL);
	handshake(&p);
	for (loops = 0; got < total && loops < 100000; loops++) {
		if (sent < total) {
			n = tls_conn_write(p.tc, out + sent, total - sent);
			cr_assert(n > 0 || n == TLS_WANT_WRITE, "%zd %s", n,
			    tls_conn_strerror(p.tc));
			cr_assert_leq(n, 16384);
			if (n > 0)
				sent += (size_t)n;
			else
				wants++;
		}
		if (sent < total && n > 0)
			continue; /* keep filling the socket */
		r = gnutls_record_recv(p.cs, in + got, total - got);
		cr_assert(r > 0 || r == GNUTLS_E_AGAIN, "%s",
		    gnutls_strerror((int)r));
		if (r > 0)
			got += (size_t)r;
		else
			wait_either(&p, sent < total ? POLLOUT : 0, POLLIN);
	}
	cr_assert_eq(got, total);
	cr_assert_eq(memcmp(in, out, total), 0);
	cr_assert_gt(wants, 0, "the socket never filled");
	pair_close(&p);
	tls_ctx_free(ctx);
	free(in);
	free(out);
}

Test(tls, bye_sends_close_notify)
{
	struct tls_ctx *ctx = ctx_make();
	char buf[16];
	struct pair p;

	pair_open(&p, ctx, NULL, NULL);
	handshake(&p);
	server_bye(&p);
	cr_assert_eq(client_recv(&p, buf, sizeof(buf)), 0);
	pair_close(&p);
	tls_ctx_free(ctx);
}

Test(tls, client_close_notify_is_eof)
{
	struct tls_ctx *ctx = ctx_make();
	char buf[16];
	struct pair p;

	pair_open(&p, ctx, NULL, NULL);
	handshake(&p);
	cr_assert_eq(gnutls_bye(p.cs, GNUTLS_SHUT_WR), 0);
	cr_assert_eq(server_read(&p, buf, sizeof(buf)), TLS_EOF);
	cr_assert_str_eq(tls_conn_strerror(p.tc), "received close_notify");
	pair_close(&p);
	tls_ctx_free(ctx);
}

Test(tls, client_vanishing_is_eof)
{
	struct tls_ctx *ctx = ctx_make();
	char buf[16];
	struct pair p;

	pair_open(&p, ctx, NULL, NULL);
	handshake(&p);
	shutdown(p.cfd, SHUT_WR);
	cr_assert_eq(server_read(&p, buf, sizeof(buf)), TLS_EOF);
	pair_close(&p);
	tls_ctx_free(ctx);
}

Test(tls, write_to_closed_peer_is_error)
{
	struct tls_ctx *ctx = ctx_make();
	struct pair p;
	ssize_t n;

	pair_open(&p, ctx, NULL, NULL);
	handshake(&p);
	close(p.cfd);
	p.cfd = open("/dev/null", O_RDONLY); /* for pair_close */
	n = tls_conn_write(p.tc, "20 x\r\n", 6);
	cr_assert_eq(n, TLS_ERROR);
	cr_assert_not_null(strstr(tls_conn_strerror(p.tc), "Broken pipe"), "%s",
	    tls_conn_strerror(p.tc));
	pair_close(&p);
	tls_ctx_free(ctx);
}

Test(tls, renegotiation_refused)
{
	struct tls_ctx *ctx = ctx_make();
	char buf[16];
	struct pair p;

	pair_open(&p, ctx, TLS12_ONLY, NULL);
	handshake(&p);
	cr_assert_eq(gnutls_handshake(p.cs), GNUTLS_E_AGAIN); /* ClientHello */
	cr_assert_eq(server_read(&p, buf, sizeof(buf)), TLS_ERROR);
	cr_assert_str_eq(tls_conn_strerror(p.tc), "renegotiation refused");
	pair_close(&p);
	tls_ctx_free(ctx);
}

/*
 * Client certificates.
 */

static void
assert_alice(const struct xz_cert *cert, const struct keypair *kp)
{
	char hash[72];

	expected_hash(kp->crt, hash);
	cr_assert(cert->present);
	cr_assert_str_eq(cert->hash, hash);
	cr_assert_str_eq(cert->subject, "CN=alice,O=Example");
	cr_assert_str_eq(cert->issuer, "CN=alice,O=Example");
	cr_assert_str_eq(cert->cn, "alice");
	cr_assert_str_eq(cert->not_before, "2026-01-02T03:04:05Z");
	cr_assert_str_eq(cert->not_after, "2036-06-07T08:09:10Z");
}

static void
self_signed_client(const char *prio)
{
	struct tls_ctx *ctx = ctx_make();
	struct keypair alice;
	struct xz_cert cert;
	struct pair p;

	keypair_make(&alice, "CN=alice,O=Example", NULL,
	    utc(2026, 1, 2, 3, 4, 5), utc(2036, 6, 7, 8, 9, 10));
	pair_open(&p, ctx, prio, &alice);
	handshake(&p);
	cr_assert_eq(tls_conn_peer_cert(p.tc, &cert), XZ_OK);
	assert_alice(&cert, &alice);
	cert_clear(&cert);
	cr_assert_not(cert.present);
	cr_assert_null(cert.subject);
	cr_assert_eq(cert.hash[0], '\0');
	serve_and_close(&p);
	pair_close(&p);
	keypair_free(&alice);
	tls_ctx_free(ctx);
}

Test(tls, self_signed_client_cert_tls13)
{
	self_signed_client(TLS13_ONLY);
}

Test(tls, self_signed_client_cert_tls12)
{
	self_signed_client(TLS12_ONLY);
}

Test(tls, issued_client_cert_without_cn)
{
	struct tls_ctx *ctx = ctx_make();
	time_t now = time(NULL);
	struct keypair ca, nameless;
	struct xz_cert cert;
	char hash[72];
	struct pair p;

	keypair_make(&ca, "CN=Test CA", NULL, now - 10, now + 86400);
	keypair_make(&nameless, "O=Nameless", &ca, now - 10, now + 86400);
	pair_open(&p, ctx, NULL, &nameless);
	handshake(&p);
	cr_assert_eq(tls_conn_peer_cert(p.tc, &cert), XZ_OK);
	expected_hash(nameless.crt, hash);
	cr_assert(cert.present);
	cr_assert_str_eq(cert.hash, hash);
	cr_assert_str_eq(cert.subject, "O=Nameless");
	cr_assert_str_eq(cert.issuer, "CN=Test CA");
	cr_assert_null(cert.cn);
	cert_clear(&cert);
	pair_close(&p);
	keypair_free(&nameless);
	keypair_free(&ca);
	tls_ctx_free(ctx);
}

/*
 * A self-signed certificate marked for certificate signing only: GnuTLS
 * servers refuse it (key usage violation) unless told otherwise, and
 * tls.c does so under TLS 1.3. The client must be told to sign anyway.
 */
static int
cert_sign_only_client(const char *prio)
{
	struct tls_ctx *ctx = ctx_make();
	time_t now = time(NULL);
	struct keypair ca_like;
	struct xz_cert cert;
	struct pair p;
	int r;

	keypair_make_usage(&ca_like, "CN=bob", NULL, now - 10, now + 86400,
	    GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN);
	pair_open(&p, ctx, prio, &ca_like);
	if ((r = handshake_result(&p)) == TLS_DONE) {
		cr_assert_eq(tls_conn_peer_cert(p.tc, &cert), XZ_OK);
		cr_assert_str_eq(cert.cn, "bob");
		cert_clear(&cert);
	}
	pair_close(&p);
	keypair_free(&ca_like);
	tls_ctx_free(ctx);
	return r;
}

Test(tls, sign_only_client_cert_accepted_tls13)
{
	cr_assert_eq(cert_sign_only_client(
	                 TLS13_ONLY ":%DEBUG_ALLOW_KEY_USAGE_VIOLATIONS"),
	    TLS_DONE);
}

/* A known limit: relaxing this under 1.2 would cost extended master secret. */
Test(tls, sign_only_client_cert_refused_tls12)
{
	cr_assert_eq(cert_sign_only_client(
	                 TLS12_ONLY ":%DEBUG_ALLOW_KEY_USAGE_VIOLATIONS"),
	    TLS_ERROR);
}

Test(tls, tls12_keeps_extended_master_secret)
{
	struct tls_ctx *ctx = ctx_make();
	struct pair p;

	pair_open(&p, ctx, TLS12_ONLY, NULL);
	handshake(&p);
	cr_assert(gnutls_session_ext_master_secret_status(p.cs));
	pair_close(&p);
	tls_ctx_free(ctx);
}

Test(tls, no_client_cert)
{
	struct tls_ctx *ctx = ctx_make();
	struct xz_cert cert;
	struct pair p;

	pair_open(&p, ctx, NULL, NULL);
	handshake(&p);
	memset(&cert, 0xff, sizeof(cert)); /* filled regardless */
	cr_assert_eq(tls_conn_peer_cert(p.tc, &cert), XZ_OK);
	cr_assert_not(cert.present);
	cr_assert_null(cert.subject);
	cr_assert_null(cert.cn);
	cert_clear(&cert);
	pair_close(&p);
	tls_ctx_free(ctx);
}

/*
 * Session tickets: one per TLS 1.3 connection, resumed ones included (a
 * TLS 1.3 ticket is used once); under TLS 1.2 a resumed connection gets
 * none from GnuTLS and the client keeps its ticket. A resumed connection
 * still knows the client's certificate: it travels in the ticket.
 */
static void
resume_once(struct tls_ctx *ctx, const struct keypair *alice,
    gnutls_datum_t *sd, const char *prio, unsigned want_tickets)
{
	struct xz_cert cert;
	struct pair p;

	pair_open(&p, ctx, prio, alice);
	cr_assert_eq(gnutls_session_set_data(p.cs, sd->data, sd->size), 0);
	tickets_seen = 0;
	handshake(&p);
	cr_assert(gnutls_session_is_resumed(p.cs), "not resumed");
	cr_assert_eq(tls_conn_peer_cert(p.tc, &cert), XZ_OK);
	assert_alice(&cert, alice);
	cert_clear(&cert);
	serve_and_close(&p);
	cr_assert_eq(tickets_seen, want_tickets);
	if (want_tickets > 0) {
		gnutls_free(sd->data);
		cr_assert_eq(gnutls_session_get_data2(p.cs, sd), 0);
	}
	pair_close(&p);
}

static void
resumption(const char *prio, unsigned resumed_tickets)
{
	struct tls_ctx *ctx = ctx_make();
	struct keypair alice;
	gnutls_datum_t sd;
	struct pair p;

	keypair_make(&alice, "CN=alice,O=Example", NULL,
	    utc(2026, 1, 2, 3, 4, 5), utc(2036, 6, 7, 8, 9, 10));
	pair_open(&p, ctx, prio, &alice);
	tickets_seen = 0;
	handshake(&p);
	cr_assert_not(gnutls_session_is_resumed(p.cs));
	serve_and_close(&p);
	cr_assert_eq(tickets_seen, 1);
	cr_assert_eq(gnutls_session_get_data2(p.cs, &sd), 0);
	pair_close(&p);

	resume_once(ctx, &alice, &sd, prio, resumed_tickets);
	resume_once(ctx, &alice, &sd, prio, resumed_tickets);

	gnutls_free(sd.data);
	keypair_free(&alice);
	tls_ctx_free(ctx);
}

Test(tls, one_ticket_and_resumption_tls13)
{
	resumption(TLS13_ONLY, 1);
}

Test(tls, ticket_resumption_tls12)
{
	resumption(TLS12_ONLY, 0);
}

Test(tls, other_ctx_cannot_resume)
{
	struct tls_ctx *a = ctx_at("a.crt", "a.key", "localhost", false);
	struct tls_ctx *b = ctx_at("b.crt", "b.key", "localhost", false);
	gnutls_datum_t sd;
	struct pair p;

	pair_open(&p, a, TLS13_ONLY, NULL);
	handshake(&p);
	serve_and_close(&p);
	cr_assert_eq(gnutls_session_get_data2(p.cs, &sd), 0);
	pair_close(&p);

	pair_open(&p, b, TLS13_ONLY, NULL);
	cr_assert_eq(gnutls_session_set_data(p.cs, sd.data, sd.size), 0);
	handshake(&p);
	cr_assert_not(gnutls_session_is_resumed(p.cs), "foreign ticket taken");
	pair_close(&p);
	gnutls_free(sd.data);
	tls_ctx_free(a);
	tls_ctx_free(b);
}

/*
 * Shared ticket keys: contexts built from the same key file (instances
 * on other processes or machines) open each other's tickets, TLS 1.3
 * and 1.2; a different file's are refused (a full handshake).
 */
static struct tls_ctx *
ctx_keyed(const char *cert, const char *keyfile)
{
	struct tls_opts o = { in_dir(cert), in_dir("shared.key"), "localhost",
		false, keyfile ? in_dir(keyfile) : NULL };
	char err[512] = "";
	struct tls_ctx *ctx = tls_ctx_new(&o, err, sizeof(err));

	cr_assert_not_null(ctx, "tls_ctx_new: %s", err);
	return ctx;
}

static const char *
ctx_keyed_fails(const char *keyfile)
{
	static char err[512];
	struct tls_opts o = { in_dir("kc.crt"), in_dir("kc.key"), "localhost",
		false, in_dir(keyfile) };

	err[0] = '\0';
	cr_assert_null(tls_ctx_new(&o, err, sizeof(err)));
	cr_assert_neq(err[0], '\0');
	return err;
}

/* Resumed on b with a ticket that a issued? */
static bool
resumes_across(struct tls_ctx *a, struct tls_ctx *b, const char *prio)
{
	gnutls_datum_t sd;
	struct pair p;
	bool resumed;

	pair_open(&p, a, prio, NULL);
	handshake(&p);
	serve_and_close(&p);
	cr_assert_eq(gnutls_session_get_data2(p.cs, &sd), 0);
	pair_close(&p);

	pair_open(&p, b, prio, NULL);
	cr_assert_eq(gnutls_session_set_data(p.cs, sd.data, sd.size), 0);
	handshake(&p);
	resumed = gnutls_session_is_resumed(p.cs);
	serve_and_close(&p);
	pair_close(&p);
	gnutls_free(sd.data);
	return resumed;
}

static void
write_key(const char *name)
{
	char err[512] = "";

	cr_assert_eq(tls_ticket_key_write(in_dir(name), err, sizeof(err)), 0,
	    "%s", err);
}

Test(tls, shared_ticket_key_resumes_on_the_other_ctx)
{
	struct tls_ctx *a, *b, *c;

	write_key("tickets.key");
	write_key("other.key");
	a = ctx_keyed("a.crt", "tickets.key");
	b = ctx_keyed("a.crt", "tickets.key");
	c = ctx_keyed("a.crt", "other.key");
	cr_assert(resumes_across(a, b, TLS13_ONLY), "TLS 1.3 a -> b");
	cr_assert(resumes_across(b, a, TLS13_ONLY), "TLS 1.3 b -> a");
	cr_assert(resumes_across(a, b, TLS12_ONLY), "TLS 1.2 a -> b");
	cr_assert_not(resumes_across(a, c, TLS13_ONLY), "other key, 1.3");
	cr_assert_not(resumes_across(a, c, TLS12_ONLY), "other key, 1.2");
	tls_ctx_free(a);
	tls_ctx_free(b);
	tls_ctx_free(c);
}

Test(tls, ticket_key_file_is_new_private_and_64_bytes)
{
	struct stat st;
	char err[512] = "";

	write_key("t.key");
	cr_assert_eq(stat(in_dir("t.key"), &st), 0);
	cr_assert_eq(st.st_size, TLS_TICKET_KEY_SIZE);
	cr_assert_eq(st.st_mode & 0777, 0600);
	/* Never over an existing file: rotation writes a new one. */
	cr_assert_eq(tls_ticket_key_write(in_dir("t.key"), err, sizeof(err)),
	    -1);
	cr_assert(strstr(err, "t.key: File exists") != NULL, "%s", err);
}

Test(tls, ticket_key_file_refused_when_bad)
{
	char big[TLS_TICKET_KEY_SIZE + 1];
	const char *e;
	int fd;

	e = ctx_keyed_fails("missing.key");
	cr_assert(strstr(e, "missing.key: No such file") != NULL, "%s", e);

	write_text(in_dir("short.key"), "0123456789");
	chmod(in_dir("short.key"), 0600);
	e = ctx_keyed_fails("short.key");
	cr_assert(strstr(e, "short.key: 10 bytes, a ticket key has 64") != NULL,
	    "%s", e);

	memset(big, 'x', sizeof(big));
	fd = open(in_dir("long.key"), O_WRONLY | O_CREAT, 0600);
	cr_assert_eq(write(fd, big, sizeof(big)), (ssize_t)sizeof(big));
	close(fd);
	e = ctx_keyed_fails("long.key");
	cr_assert(strstr(e, "65 bytes") != NULL, "%s", e);

	write_key("open.key");
	chmod(in_dir("open.key"), 0644);
	e = ctx_keyed_fails("open.key");
	cr_assert(strstr(e, "open.key: mode 0644 lets others read it") != NULL,
	    "%s", e);
	/* Group access is the operator's choice (instances in one group). */
	chmod(in_dir("open.key"), 0640);
	tls_ctx_free(ctx_keyed("kd.crt", "open.key"));
}

Test(tls, free_null_is_noop)
{
	tls_ctx_free(NULL);
	tls_conn_free(NULL);
	cert_clear(NULL);
}

/*
 * Hostile certificate text: every text field is escaped (RFC 4514
 * hexpairs for what may not be shown), whatever the certificate holds.
 */

static void
assert_escaped(const char *in, size_t len, const char *want)
{
	char *out = cert_text_escape(in, len);

	cr_assert_not_null(out);
	cr_assert_str_eq(out, want, "input %zu bytes", len);
	free(out);
}

/* in is a string literal: its bytes, NULs included, up to the last. */
#define ESCAPED(in, want) assert_escaped((in), sizeof(in) - 1, (want))

Test(tls, escape_keeps_printable_utf8_and_dn_escapes)
{
	ESCAPED("", "");
	ESCAPED("CN=alice,O=Example", "CN=alice,O=Example");
	ESCAPED("CN=a\\,b\\\\c\\\"d", "CN=a\\,b\\\\c\\\"d");
	ESCAPED("CN=Lu\xc4\x8di\xc4\x87 \xf0\x9f\x98\x80 \xe2\x82\xac",
	    "CN=Lu\xc4\x8di\xc4\x87 \xf0\x9f\x98\x80 \xe2\x82\xac");
	ESCAPED("CN=\\ #a\\ ", "CN=\\ #a\\ ");
}

Test(tls, escape_control_bytes)
{
	ESCAPED("a\nb\rc\x1b[31md\x7f"
	        "e\tf",
	    "a\\0ab\\0dc\\1b[31md\\7fe\\09f");
	ESCAPED("a\0b", "a\\00b");
	/* C1 controls are UTF-8 too: U+009B is a terminal's CSI. */
	ESCAPED("a\xc2\x9b"
	        "31m\xc2\x85",
	    "a\\c2\\9b31m\\c2\\85");
	ESCAPED("\xc2\xa0", "\xc2\xa0"); /* U+00A0 is shown */
}

Test(tls, escape_invalid_utf8)
{
	ESCAPED("x\xff\xfey", "x\\ff\\fey");
	ESCAPED("\xc3", "\\c3");                         /* truncated */
	ESCAPED("\xc3(", "\\c3(");                       /* bad continuation */
	ESCAPED("\xc0\xaf", "\\c0\\af");                 /* overlong '/' */
	ESCAPED("\xe0\x80\xaf", "\\e0\\80\\af");         /* overlong */
	ESCAPED("\xed\xa0\x80", "\\ed\\a0\\80");         /* surrogate */
	ESCAPED("\xf4\x90\x80\x80", "\\f4\\90\\80\\80"); /* >10FFFF */
	ESCAPED("\xe2\x82", "\\e2\\82");
}

Test(tls, escape_bidi_and_line_separators)
{
	ESCAPED("a\xe2\x80\xae"
	        "b",
	    "a\\e2\\80\\aeb"); /* U+202E */
	ESCAPED("\xe2\x80\xa8\xe2\x80\xa9", "\\e2\\80\\a8\\e2\\80\\a9");
	ESCAPED("\xe2\x81\xa6\xe2\x80\x8f", "\\e2\\81\\a6\\e2\\80\\8f");
	ESCAPED("\xe2\x80\x94", "\xe2\x80\x94"); /* an em dash */
}

Test(tls, escape_backslash_before_hidden_byte)
{
	/* The escape's backslash gives way to the hexpair: one escape. */
	ESCAPED("a\\\nb", "a\\0ab");
	ESCAPED("a\\\\\nb", "a\\\\\\0ab");
	ESCAPED("a\\", "a\\5c");
	ESCAPED("\\\xff", "\\ff");
}

/* A self-signed certificate with a raw CN value (tag + bytes) and more. */
static void
keypair_make_raw(struct keypair *kp, unsigned char tag, const void *cn,
    size_t cnlen, time_t not_before, time_t not_after, size_t padding)
{
	unsigned char der[512], *ext;
	size_t n = 0;

	cr_assert_lt(cnlen, 128);
	der[n++] = tag;
	der[n++] = (unsigned char)cnlen;
	memcpy(der + n, cn, cnlen);
	n += cnlen;
	cr_assert_eq(gnutls_x509_privkey_init(&kp->key), 0);
	cr_assert_eq(gnutls_x509_privkey_generate2(kp->key, GNUTLS_PK_ECDSA,
	                 GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0,
	                 NULL, 0),
	    0);
	cr_assert_eq(gnutls_x509_crt_init(&kp->crt), 0);
	cr_assert_eq(gnutls_x509_crt_set_version(kp->crt, 3), 0);
	cr_assert_eq(gnutls_x509_crt_set_serial(kp->crt, "\x01", 1), 0);
	cr_assert_eq(gnutls_x509_crt_set_dn_by_oid(kp->crt,
	                 GNUTLS_OID_X520_COMMON_NAME, 1, der, n),
	    0);
	cr_assert_eq(gnutls_x509_crt_set_dn_by_oid(kp->crt,
	                 GNUTLS_OID_X520_ORGANIZATION_NAME, 0, "Q\"uote's", 8),
	    0);
	cr_assert_eq(gnutls_x509_crt_set_issuer_dn_by_oid(kp->crt,
	                 GNUTLS_OID_X520_COMMON_NAME, 1, der, n),
	    0);
	cr_assert_eq(gnutls_x509_crt_set_activation_time(kp->crt, not_before),
	    0);
	cr_assert_eq(gnutls_x509_crt_set_expiration_time(kp->crt, not_after),
	    0);
	if (padding > 0) {
		/* An OCTET STRING of padding bytes in a private extension. */
		cr_assert_not_null(ext = calloc(1, padding + 5));
		ext[0] = 0x04;
		ext[1] = 0x83;
		ext[2] = (unsigned char)(padding >> 16);
		ext[3] = (unsigned char)(padding >> 8);
		ext[4] = (unsigned char)padding;
		cr_assert_eq(gnutls_x509_crt_set_extension_by_oid(kp->crt,
		                 "1.3.6.1.4.1.55555.1", ext, padding + 5, 0),
		    0);
		free(ext);
	}
	cr_assert_eq(gnutls_x509_crt_set_key(kp->crt, kp->key), 0);
	/* The issuer DN is the subject's: sign2 with itself keeps both. */
	cr_assert_eq(gnutls_x509_crt_sign2(kp->crt, kp->crt, kp->key,
	                 GNUTLS_DIG_SHA256, 0),
	    0);
}

/* The facts the server reads from kp over a TLS 1.3 handshake. */
static void
peer_facts(const struct keypair *kp, struct xz_cert *cert)
{
	struct tls_ctx *ctx = ctx_make();
	struct pair p;

	pair_open(&p, ctx, TLS13_ONLY, kp);
	handshake(&p);
	cr_assert_eq(tls_conn_peer_cert(p.tc, cert), XZ_OK);
	pair_close(&p);
	tls_ctx_free(ctx);
}

Test(tls, hostile_cn_is_escaped_everywhere)
{
	static const char cn[] = "ev\"il\n\rX\x1b[2J\x7f'\xff\xfe\xc2\x9b";
	struct keypair kp;
	struct xz_cert cert;

	keypair_make_raw(&kp, 0x0c, cn, sizeof(cn) - 1, time(NULL) - 10,
	    time(NULL) + 86400, 0);
	peer_facts(&kp, &cert);
	cr_assert_str_eq(cert.cn,
	    "ev\\\"il\\0a\\0dX\\1b[2J\\7f'\\ff\\fe\\c2\\9b");
	cr_assert_str_eq(cert.subject,
	    "O=Q\\\"uote's,CN=ev\\\"il\\0a\\0dX\\1b[2J\\7f'\\ff\\fe\\c2\\9b");
	cr_assert_str_eq(cert.issuer, cert.subject); /* self-signed */
	cert_clear(&cert);
	keypair_free(&kp);
}

Test(tls, non_utf8_string_types_stay_printable)
{
	struct keypair kp;
	struct xz_cert cert;
	const char *c;

	/* A T61String: GnuTLS shows it in hex (RFC 4514's #hex form). */
	keypair_make_raw(&kp, 0x14, "x\xff\nz", 4, time(NULL) - 10,
	    time(NULL) + 86400, 0);
	peer_facts(&kp, &cert);
	for (c = cert.subject; *c != '\0'; c++)
		cr_assert(*c >= 0x20 && *c < 0x7f, "raw byte in %s",
		    cert.subject);
	cr_assert_not_null(cert.cn);
	cr_assert_str_eq(cert.cn, "\\#78ff0a7a");
	cert_clear(&cert);
	keypair_free(&kp);
}

/*
 * Dates: GnuTLS says 1970-01-01 for anything earlier; the DER says the
 * real date. 1960 is a UTCTime, 2080 a GeneralizedTime (RFC 5280).
 */
Test(tls, dates_before_1970_and_after_2049)
{
	struct keypair kp;
	struct xz_cert cert;

	keypair_make_raw(&kp, 0x0c, "old", 3, utc(1960, 3, 4, 5, 6, 7),
	    utc(2080, 1, 2, 3, 4, 5), 0);
	peer_facts(&kp, &cert);
	cr_assert_str_eq(cert.not_before, "1960-03-04T05:06:07Z");
	cr_assert_str_eq(cert.not_after, "2080-01-02T03:04:05Z");
	cert_clear(&cert);
	keypair_free(&kp);
}

/* A certificate's outer DER around a validity of two given times. */
static size_t
der_cert(unsigned char *out, const char *t1, const char *t2, bool version)
{
	unsigned char v[64], tbs[256];
	size_t vn = 0, tn = 0, l1 = strlen(t1), l2 = strlen(t2), n = 0;

	v[vn++] = l1 == 13 ? 0x17 : 0x18;
	v[vn++] = (unsigned char)l1;
	memcpy(v + vn, t1, l1);
	vn += l1;
	v[vn++] = l2 == 13 ? 0x17 : 0x18;
	v[vn++] = (unsigned char)l2;
	memcpy(v + vn, t2, l2);
	vn += l2;
	if (version) {
		memcpy(tbs + tn, "\xa0\x03\x02\x01\x02", 5);
		tn += 5;
	}
	memcpy(tbs + tn,
	    "\x02\x01\x01" /* serial */
	    "\x30\x00"     /* signature */
	    "\x30\x81\x00",
	    8); /* issuer, long form */
	tn += 8;
	tbs[tn++] = 0x30;
	tbs[tn++] = (unsigned char)vn;
	memcpy(tbs + tn, v, vn);
	tn += vn;
	out[n++] = 0x30;
	out[n++] = 0x82;
	out[n++] = 0;
	out[n++] = (unsigned char)(tn + 2);
	out[n++] = 0x30;
	out[n++] = (unsigned char)tn;
	memcpy(out + n, tbs, tn);
	return n + tn;
}

Test(tls, validity_forms)
{
	unsigned char der[512];
	char nb[21], na[21];
	size_t n;

	n = der_cert(der, "491231235959Z", "500101000000Z", true);
	cr_assert_eq(cert_validity(der, n, nb, na), 0);
	cr_assert_str_eq(nb, "2049-12-31T23:59:59Z");
	cr_assert_str_eq(na, "1950-01-01T00:00:00Z");
	n = der_cert(der, "19010203040506Z", "99991231235959Z", false);
	cr_assert_eq(cert_validity(der, n, nb, na), 0);
	cr_assert_str_eq(nb, "1901-02-03T04:05:06Z");
	cr_assert_str_eq(na, "9999-12-31T23:59:59Z");
	n = der_cert(der, "00010101000000Z", "691231235959Z" /* 1969 */, false);
	cr_assert_eq(cert_validity(der, n, nb, na), 0);
	cr_assert_str_eq(nb, "0001-01-01T00:00:00Z");
	cr_assert_str_eq(na, "1969-12-31T23:59:59Z");
}

Test(tls, validity_refuses_what_rfc5280_does_not_allow)
{
	static const char *const bad[][2] = {
		{ "4912312359Z", "500101000000Z" },       /* no seconds */
		{ "491231235959+0100", "500101000000Z" }, /* offset */
		{ "491331235959Z", "500101000000Z" },     /* month 13 */
		{ "490031235959Z", "500101000000Z" },     /* day 0 */
		{ "491231245959Z", "500101000000Z" },     /* hour 24 */
		{ "4912312359a9Z", "500101000000Z" },     /* not a digit */
		{ "19010203040506Z", "2001020304050.Z" },
	};
	unsigned char der[512];
	char nb[21], na[21];
	size_t i, n, cut;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = der_cert(der, bad[i][0], bad[i][1], true);
		cr_assert_eq(cert_validity(der, n, nb, na), -1, "%zu", i);
	}
	/* Every truncation of a good one is refused, never read past. */
	n = der_cert(der, "491231235959Z", "500101000000Z", true);
	for (cut = 0; cut < n; cut++) {
		unsigned char *copy = malloc(cut + 1);

		memcpy(copy, der, cut);
		cr_assert_eq(cert_validity(copy, cut, nb, na), -1, "%zu", cut);
		free(copy);
	}
	/* A length of 5 bytes, a multi-byte tag, indefinite length. */
	cr_assert_eq(cert_validity("\x30\x85\x00\x00\x00\x00\x01", 7, nb, na),
	    -1);
	cr_assert_eq(cert_validity("\x3f\x01\x00", 3, nb, na), -1);
	cr_assert_eq(cert_validity("\x30\x80\x00\x00", 4, nb, na), -1);
}

/*
 * A client certificate too large for a session ticket (TICKET_MAX_CERT,
 * 48 KiB): TLS 1.3 serves it without a ticket, TLS 1.2 refuses it
 * before making one. Just under, both keep their tickets.
 */
static void
big_client(const char *prio, size_t padding, unsigned want_tickets)
{
	struct tls_ctx *ctx = ctx_make();
	struct keypair kp;
	struct xz_cert cert;
	gnutls_datum_t sd;
	struct pair p;

	keypair_make_raw(&kp, 0x0c, "big", 3, time(NULL) - 10,
	    time(NULL) + 86400, padding);
	pair_open(&p, ctx, prio, &kp);
	tickets_seen = 0;
	handshake(&p);
	cr_assert_eq(tls_conn_peer_cert(p.tc, &cert), XZ_OK);
	cr_assert_str_eq(cert.cn, "big");
	cert_clear(&cert);
	serve_and_close(&p);
	cr_assert_eq(tickets_seen, want_tickets);
	cr_assert_eq(gnutls_session_get_data2(p.cs, &sd), 0);
	pair_close(&p);

	/* The next connection resumes, or does a full handshake. */
	pair_open(&p, ctx, prio, &kp);
	cr_assert_eq(gnutls_session_set_data(p.cs, sd.data, sd.size), 0);
	handshake(&p);
	cr_assert_eq(gnutls_session_is_resumed(p.cs), want_tickets > 0);
	cr_assert_eq(tls_conn_peer_cert(p.tc, &cert), XZ_OK);
	cr_assert_str_eq(cert.cn, "big");
	cert_clear(&cert);
	serve_and_close(&p);
	pair_close(&p);
	gnutls_free(sd.data);
	keypair_free(&kp);
	tls_ctx_free(ctx);
}

Test(tls, client_cert_100k_tls13_served_without_ticket)
{
	big_client(TLS13_ONLY, 100 * 1024, 0);
}

Test(tls, client_cert_45k_keeps_tickets)
{
	big_client(TLS13_ONLY, 45 * 1024, 1);
	big_client(TLS12_ONLY, 45 * 1024, 1);
}

Test(tls, client_cert_100k_tls12_refused_cleanly)
{
	struct tls_ctx *ctx = ctx_make();
	struct keypair kp;
	struct pair p;
	int s = TLS_WANT_READ, c = GNUTLS_E_AGAIN, i;

	keypair_make_raw(&kp, 0x0c, "big", 3, time(NULL) - 10,
	    time(NULL) + 86400, 100 * 1024);
	pair_open(&p, ctx, TLS12_ONLY, &kp);
	for (i = 0; i < 1000 && (s == TLS_WANT_READ || s == TLS_WANT_WRITE);
	     i++) {
		s = tls_conn_handshake(p.tc);
		if (c == GNUTLS_E_AGAIN)
			c = gnutls_handshake(p.cs);
		if (s == TLS_WANT_READ || s == TLS_WANT_WRITE)
			wait_either(&p, events_for(s),
			    c == GNUTLS_E_AGAIN ? client_events(&p) : 0);
	}
	cr_assert_eq(s, TLS_ERROR);
	cr_assert_str_eq(tls_conn_strerror(p.tc),
	    "client certificate too large for TLS 1.2");
	/* The client hears why: bad_certificate. */
	while (c == GNUTLS_E_AGAIN) {
		wait_either(&p, 0, POLLIN);
		c = gnutls_handshake(p.cs);
	}
	cr_assert_eq(c, GNUTLS_E_FATAL_ALERT_RECEIVED, "%s",
	    gnutls_strerror(c));
	cr_assert_eq(gnutls_alert_get(p.cs), GNUTLS_A_BAD_CERTIFICATE);
	pair_close(&p);
	keypair_free(&kp);
	tls_ctx_free(ctx);
}
