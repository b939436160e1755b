/*
 * test_titan.c - Titan uploads through the app and the connection: C
 * routes reading the body as it arrives or whole, tokens, deletes, the
 * 59s (not enabled here, too large, no size), and an upload cut short
 * (the client closes, or stalls past request_timeout) dropped with the
 * handler cancelled. The SCGI and CGI bodies are test_scgi's and
 * test_cgi's, over real backends, and the e2e tests'.
 */
#include <criterion/criterion.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "xz_private.h"
#include "scgi_pairs.h"

/* What the streaming route saw. */
struct seen {
	size_t bytes;
	unsigned long sum; /* of the bytes, so that order and content count */
	size_t most_held;  /* the largest upload buffer it ever met */
	int calls, cancels;
};

static void
stream_cancel(struct xz_request *req, void *arg)
{
	((struct seen *)arg)->cancels++;
}

static void
stream_data(struct xz_request *req, void *arg)
{
	struct seen *s = arg;
	unsigned char buf[4096];
	char body[128];
	ssize_t n, i;

	s->calls++;
	if (req->upload != NULL &&
	    evbuffer_get_length(req->upload) > s->most_held)
		s->most_held = evbuffer_get_length(req->upload);
	while ((n = xz_upload_read(req, buf, sizeof(buf))) > 0) {
		s->bytes += (size_t)n;
		for (i = 0; i < n; i++)
			s->sum += buf[i];
	}
	if (n != 0)
		return; /* XZ_EAGAIN: the next bytes come to this callback */
	snprintf(body, sizeof(body), "%s %zu %lu %s %s", xz_param(req, "name"),
	    s->bytes, s->sum, xz_upload_mime(req),
	    xz_upload_token(req) ? xz_upload_token(req) : "-");
	xz_gemtext(req, body);
}

static int
stream_route(struct xz_request *req, void *arg)
{
	xz_request_on_cancel(req, stream_cancel, arg);
	xz_upload_on_data(req, stream_data, arg);
	stream_data(req, arg);
	return XZ_OK;
}

static int
whole_route(struct xz_request *req, void *arg)
{
	size_t len;
	const char *body = xz_upload_body(req, &len);
	char out[256];

	cr_assert_not_null(body);
	if (xz_upload_size(req) == 0)
		return xz_gemtext(req, "deleted");
	snprintf(out, sizeof(out), "%zu:%.*s", len, (int)len, body);
	return xz_gemtext(req, out);
}

static int
page(struct xz_request *req, void *arg)
{
	return xz_gemtext(req, "page");
}

static struct xz_app *
titan_app(struct seen *s)
{
	static const char *const tokens[] = { "s3cret", "other", NULL };
	struct xz_app *app = xz_app_new();

	cr_assert_not_null(app);
	cr_assert_eq(xz_titan_route(app, "/up/{name}", stream_route, s), XZ_OK);
	cr_assert_eq(xz_titan_route_opts(app, "/whole",
	                 &(struct xz_titan_opts){ .max_upload_size = 100,
	                     .tokens = tokens,
	                     .whole = true },
	                 whole_route, NULL),
	    XZ_OK);
	cr_assert_eq(xz_route(app, "/whole", page, NULL), XZ_OK);
	cr_assert_eq(xz_route(app, "/gemini-only", page, NULL), XZ_OK);
	return app;
}

static unsigned char *
pattern_bytes(size_t len, unsigned long *sum)
{
	unsigned char *b = malloc(len);
	size_t i;

	cr_assert_not_null(b);
	*sum = 0;
	for (i = 0; i < len; i++) {
		b[i] = (unsigned char)(i * 7 + i / 251);
		*sum += b[i];
	}
	return b;
}

Test(titan, streamed_route_gets_every_byte_in_a_bounded_window)
{
	struct seen s = { 0 };
	struct xz_app *app = titan_app(&s);
	struct xz_test_client *tc = xz_test_client_new(app);
	size_t len = 3 * 1024 * 1024 + 17;
	unsigned long sum;
	unsigned char *data = pattern_bytes(len, &sum);
	struct xz_test_response *r;
	char want[128];

	r = xz_test_upload(tc, "/up/a.bin", data, len, "application/x-t",
	    "tok en");
	cr_assert_eq(r->status, 20, "%d %s", r->status, r->meta);
	snprintf(want, sizeof(want), "a.bin %zu %lu application/x-t tok en",
	    len, sum);
	cr_assert_str_eq((char *)r->body, want);
	cr_assert_leq(s.most_held, XZ_UPLOAD_WINDOW);
	cr_assert_gt(s.calls, 2); /* it came in pieces */
	cr_assert_eq(s.cancels, 0);
	xz_test_response_free(r);
	free(data);
	xz_test_client_free(tc);
	xz_app_free(app);
}

Test(titan, mime_defaults_to_text_gemini)
{
	struct seen s = { 0 };
	struct xz_app *app = titan_app(&s);
	struct xz_test_client *tc = xz_test_client_new(app);
	struct xz_test_response *r =
	    xz_test_upload(tc, "/up/x", "hi", 2, NULL, NULL);

	cr_assert_eq(r->status, 20);
	cr_assert_str_eq((char *)r->body, "x 2 209 text/gemini -");
	xz_test_response_free(r);
	xz_test_client_free(tc);
	xz_app_free(app);
}

Test(titan, whole_route_tokens_and_delete)
{
	struct xz_app *app = titan_app(NULL);
	struct xz_test_client *tc = xz_test_client_new(app);
	struct xz_test_response *r;

	r = xz_test_upload(tc, "/whole", "hello", 5, "text/plain", "s3cret");
	cr_assert_eq(r->status, 20);
	cr_assert_str_eq((char *)r->body, "5:hello");
	xz_test_response_free(r);

	r = xz_test_upload(tc, "/whole", "hello", 5, NULL, NULL);
	cr_assert_eq(r->status, 60);
	cr_assert_str_eq(r->meta, "Token required");
	cr_assert(xz_test_is_certificate_required(r));
	xz_test_response_free(r);

	r = xz_test_upload(tc, "/whole", "hello", 5, NULL, "wrong");
	cr_assert_eq(r->status, 61);
	cr_assert_str_eq(r->meta, "Token not authorised");
	xz_test_response_free(r);

	r = xz_test_upload(tc, "/whole", NULL, 0, NULL, "other");
	cr_assert_eq(r->status, 20);
	cr_assert_str_eq((char *)r->body, "deleted");
	xz_test_response_free(r);

	/* The same path still has its Gemini page. */
	r = xz_test_get(tc, "/whole");
	cr_assert_str_eq((char *)r->body, "page");
	xz_test_response_free(r);
	xz_test_client_free(tc);
	xz_app_free(app);
}

Test(titan, refusals_are_59_with_a_reason)
{
	struct seen s = { 0 };
	struct xz_app *app = titan_app(&s);
	struct xz_test_client *tc = xz_test_client_new(app);
	static char big[101];
	struct xz_test_response *r;

	r = xz_test_upload(tc, "/gemini-only", "x", 1, NULL, NULL);
	cr_assert_eq(r->status, 59);
	cr_assert_str_eq(r->meta, "Titan not accepted here");
	xz_test_response_free(r);

	r = xz_test_upload(tc, "/nowhere", "x", 1, NULL, NULL);
	cr_assert_eq(r->status, 59);
	cr_assert_str_eq(r->meta, "Titan not accepted here");
	xz_test_response_free(r);

	r = xz_test_upload(tc, "/whole", big, sizeof(big), NULL, "s3cret");
	cr_assert_eq(r->status, 59);
	cr_assert_str_eq(r->meta, "Upload larger than 100 bytes");
	xz_test_response_free(r);

	/* A Gemini request never meets a Titan route. */
	r = xz_test_get(tc, "/up/a");
	cr_assert_eq(r->status, 51);
	xz_test_response_free(r);

	r = xz_test_request(tc, "titan://localhost/up/a;mime=text/plain");
	cr_assert_eq(r->status, 59);
	cr_assert_str_eq(r->meta, "Bad request");
	xz_test_response_free(r);

	r = xz_test_request(tc, "titan://localhost/up/a;size=-1");
	cr_assert_eq(r->status, 59);
	xz_test_response_free(r);

	r = xz_test_request(tc, "titan://elsewhere/up/a;size=1");
	cr_assert_eq(r->status, 53);
	xz_test_response_free(r);
	cr_assert_eq(s.calls, 0);
	xz_test_client_free(tc);
	xz_app_free(app);
}

/* A connection of our own, to cut an upload short. */

static void
on_closed(struct xz_conn *c, void *arg)
{
	*(bool *)arg = true;
}

static void
run_cut_upload(bool stall)
{
	struct seen s = { 0 };
	struct xz_app *app = titan_app(&s);
	struct event_base *base = event_base_new();
	struct site_set *sites = site_set_new();
	const char *why;
	struct conn_cfg cfg = { .sites = sites,
		.io = &test_client_io,
		.port = 1965,
		.request_timeout = 0.3,
		.write_timeout = 5 };
	static const char req[] = "titan://localhost/up/cut;size=100000\r\n"
	                          "first bytes";
	bool closed = false;
	int sv[2], i;

	cr_assert_eq(site_set_add(sites, "localhost", app, NULL, &why, NULL, 0),
	    XZ_OK);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cr_assert_not_null(
	    conn_new(base, sv[0], &cfg, NULL, on_closed, &closed));
	cr_assert_eq(write(sv[1], req, sizeof(req) - 1),
	    (ssize_t)sizeof(req) - 1);
	for (i = 0; i < 20; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	cr_assert_not(closed);
	cr_assert_eq(s.bytes, strlen("first bytes"));
	if (!stall)
		close(sv[1]);
	for (i = 0; i < 400 && !closed; i++)
		event_base_loop(base, EVLOOP_ONCE);
	cr_assert(closed, "the cut upload was dropped");
	cr_assert_eq(s.cancels, 1, "the handler was told");
	if (stall)
		close(sv[1]);
	event_base_free(base);
	site_set_free(sites);
	xz_app_free(app);
}

Test(titan, client_closing_mid_upload_is_dropped)
{
	run_cut_upload(false);
}

Test(titan, client_stalling_past_request_timeout_is_dropped)
{
	run_cut_upload(true);
}

/*
 * SCGI: a backend on the test client's loop that reads the netstring,
 * then CONTENT_LENGTH bytes of body (at most read_max held, so that it
 * can be slower than the client), and answers with what it got.
 */
struct backend {
	struct evconnlistener *lev;
	struct bufferevent *bev;
	int port;
	struct pairs p;
	bool have_header;
	size_t want, got, read_max;
	unsigned long sum;
	bool close_early; /* closes after the header, reading no body */
};

static void
backend_answer(struct backend *b)
{
	char out[512];
	const char *tok = pairs_get(&b->p, "TITAN_TOKEN");

	snprintf(out, sizeof(out),
	    "Status: 20 text/plain\r\n\r\n%zu %lu %s %s %s", b->got, b->sum,
	    pairs_get(&b->p, "CONTENT_TYPE"),
	    pairs_get(&b->p, "REQUEST_METHOD"), tok ? tok : "-");
	bufferevent_write(b->bev, out, strlen(out));
	bufferevent_disable(b->bev, EV_READ);
}

static void
backend_read(struct bufferevent *bev, void *arg)
{
	struct backend *b = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	unsigned char buf[8192];
	int n;

	if (!b->have_header) {
		size_t len = evbuffer_get_length(in), blen = 0, i;
		const char *p = (const char *)evbuffer_pullup(in, -1);

		for (i = 0; i < len && p[i] >= '0' && p[i] <= '9'; i++)
			blen = blen * 10 + (size_t)(p[i] - '0');
		if (i >= len || len < i + 1 + blen + 1)
			return;
		scgi_decode(p, i + 1 + blen + 1, &b->p);
		evbuffer_drain(in, i + 1 + blen + 1);
		b->have_header = true;
		b->want = strtoul(pairs_get(&b->p, "CONTENT_LENGTH"), NULL, 10);
		/* A slow backend: libevent holds at most read_max of it. */
		bufferevent_setwatermark(bev, EV_READ, 0, b->read_max);
		if (b->close_early) {
			bufferevent_free(b->bev);
			b->bev = NULL;
			return;
		}
	}
	while (b->got < b->want &&
	       (n = evbuffer_remove(in, buf, sizeof(buf))) > 0) {
		for (int i = 0; i < n; i++)
			b->sum += buf[i];
		b->got += (size_t)n;
	}
	if (b->got == b->want)
		backend_answer(b);
}

static void
backend_event(struct bufferevent *bev, short what, void *arg)
{
}

static void
backend_write(struct bufferevent *bev, void *arg)
{
	struct backend *b = arg;

	if (b->got == b->want && b->have_header) {
		bufferevent_free(b->bev);
		b->bev = NULL;
	}
}

static void
backend_accept(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int len, void *arg)
{
	struct backend *b = arg;

	if (b->bev != NULL)
		bufferevent_free(b->bev);
	b->have_header = false; /* a new request */
	b->got = b->want = 0;
	b->sum = 0;
	b->bev = bufferevent_socket_new(evconnlistener_get_base(l), fd,
	    BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(b->bev, backend_read, backend_write, backend_event,
	    b);
	bufferevent_enable(b->bev, EV_READ);
}

static void
backend_listen(struct backend *b, struct event_base *base)
{
	struct sockaddr_in sin = { 0 };
	socklen_t len = sizeof(sin);

	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	b->lev = evconnlistener_new_bind(base, backend_accept, b,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 4,
	    (struct sockaddr *)&sin, sizeof(sin));
	cr_assert_not_null(b->lev);
	cr_assert_eq(getsockname(evconnlistener_get_fd(b->lev),
	                 (struct sockaddr *)&sin, &len),
	    0);
	b->port = ntohs(sin.sin_port);
	if (b->read_max == 0)
		b->read_max = 1 << 20;
}

static void
scgi_upload_run(struct backend *b, size_t len)
{
	struct xz_app *app = xz_app_new();
	struct xz_test_client *tc = xz_test_client_new(app);
	unsigned long sum;
	unsigned char *data = pattern_bytes(len, &sum);
	struct xz_test_response *r;
	char want[128];

	backend_listen(b, xz_test_client_base(tc));
	cr_assert_eq(xz_scgi(app, "/api",
	                 &(struct xz_scgi_opts){ .host = "127.0.0.1",
	                     .port = b->port,
	                     .titan = true,
	                     .max_upload_size = 64 << 20 }),
	    XZ_OK);
	cr_assert_eq(
	    xz_scgi(app, "/ro",
	        &(struct xz_scgi_opts){ .host = "127.0.0.1", .port = b->port }),
	    XZ_OK);
	r = xz_test_upload(tc, "/api/file", data, len, "image/png", "t k");
	if (b->close_early) {
		cr_assert_eq(r->status, 43, "%d %s", r->status, r->meta);
		cr_assert_str_eq(r->meta, "SCGI backend error");
	} else {
		cr_assert_eq(r->status, 20, "%d %s", r->status, r->meta);
		snprintf(want, sizeof(want), "%zu %lu image/png POST t k", len,
		    sum);
		cr_assert_str_eq((char *)r->body, want);
		cr_assert_str_eq(pairs_get(&b->p, "SCRIPT_NAME"), "/api");
		cr_assert_str_eq(pairs_get(&b->p, "PATH_INFO"), "/file");
	}
	xz_test_response_free(r);

	/* A mount without .titan takes none. */
	r = xz_test_upload(tc, "/ro/file", "x", 1, NULL, NULL);
	cr_assert_eq(r->status, 59);
	cr_assert_str_eq(r->meta, "Titan not accepted here");
	xz_test_response_free(r);
	r = xz_test_upload(tc, "/api/file", data, 0, NULL, NULL);
	cr_assert_eq(r->status, b->close_early ? 43 : 20);
	xz_test_response_free(r);
	if (b->bev != NULL)
		bufferevent_free(b->bev);
	evconnlistener_free(b->lev);
	free(data);
	xz_test_client_free(tc);
	xz_app_free(app);
}

Test(titan_scgi, the_body_follows_the_header)
{
	struct backend b = { 0 };

	scgi_upload_run(&b, 5 * 1024 * 1024 + 3);
}

Test(titan_scgi, a_slow_backend_paces_the_upload)
{
	struct backend b = { .read_max = 1000 };

	scgi_upload_run(&b, 300 * 1000 + 1);
}

Test(titan_scgi, a_backend_that_closes_early_is_a_43)
{
	struct backend b = { .close_early = true };

	scgi_upload_run(&b, 4 * 1024 * 1024);
}

/* xitzin.conf: titan and max_upload_size in [scgi] (and [cgi]). */
static struct xz_app *
conf_app(const char *text, char *err, size_t errlen, bool *loaded)
{
	char path[] = "/tmp/xitzin-titan-conf-XXXXXX";
	int fd = mkstemp(path);
	struct xz_config *cfg;
	struct xz_app *app = xz_app_new();
	int rc = XZ_EINVAL;

	cr_assert_neq(fd, -1);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	cfg = xz_config_load(path, err, errlen);
	if (cfg != NULL)
		rc = xz_config_apply(cfg, app, err, errlen);
	*loaded = rc == XZ_OK;
	xz_config_free(cfg);
	unlink(path);
	return app;
}

Test(titan_config, keys_reach_the_mounts)
{
	char err[512] = "";
	bool ok;
	struct xz_app *app =
	    conf_app("[scgi /up]\nhost = 127.0.0.1\nport = 1\n"
	             "titan = true\nmax_upload_size = 2K\n"
	             "[scgi /no]\nhost = 127.0.0.1\nport = 1\n",
	        err, sizeof(err), &ok);
	struct xz_test_client *tc;
	struct xz_test_response *r;
	static char big[2049];

	cr_assert(ok, "%s", err);
	tc = xz_test_client_new(app);
	r = xz_test_upload(tc, "/up/f", "0123456789", 10, NULL, NULL);
	cr_assert_eq(r->status, 43); /* admitted: port 1 refuses */
	cr_assert_str_eq(r->meta, "Failed to connect to SCGI backend");
	xz_test_response_free(r);
	r = xz_test_upload(tc, "/up/f", big, sizeof(big), NULL, NULL);
	cr_assert_eq(r->status, 59);
	cr_assert_str_eq(r->meta, "Upload larger than 2048 bytes");
	xz_test_response_free(r);
	r = xz_test_upload(tc, "/no/f", "x", 1, NULL, NULL);
	cr_assert_eq(r->status, 59);
	cr_assert_str_eq(r->meta, "Titan not accepted here");
	xz_test_response_free(r);
	xz_test_client_free(tc);
	xz_app_free(app);
}

Test(titan_config, bad_values_are_refused)
{
	static const char *const bad[][2] = {
		{ "[scgi /a]\nhost = h\nport = 1\ntitan = maybe\n",
		    ":4: titan" },
		{ "[scgi /a]\nhost = h\nport = 1\nmax_upload_size = 0\n",
		    ":4: max_upload_size" },
		{ "[scgi /a]\nhost = h\nport = 1\nmax_upload_size = -1\n",
		    ":4: max_upload_size" },
	};
	char err[512];
	bool ok;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		xz_app_free(conf_app(bad[i][0], err, sizeof(err), &ok));
		cr_assert_not(ok, "%s", bad[i][0]);
		cr_assert(strstr(err, bad[i][1]) != NULL, "%s", err);
	}
}

/*
 * CGI: the upload on the script's stdin. The scripts are sh, reading
 * with the tools a CGI author would (head -c, wc, cksum).
 */
static void
cgi_script(const char *dir, const char *name, const char *body)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	cr_assert_not_null(f = fopen(path, "w"));
	fputs(body, f);
	fclose(f);
	cr_assert_eq(chmod(path, 0755), 0);
}

static void
cgi_cleanup(const char *dir)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

Test(titan_cgi, the_upload_is_the_scripts_stdin)
{
	char dir[] = "/tmp/xz-titan-cgi-XXXXXX";
	struct xz_app *app = xz_app_new();
	struct xz_test_client *tc;
	struct xz_test_response *r;
	size_t len = 2 * 1024 * 1024 + 5;
	unsigned long sum;
	unsigned char *data = pattern_bytes(len, &sum);
	char want[256], *cmd;
	FILE *p;

	cr_assert_not_null(mkdtemp(dir));
	/* Echoes what it read, and how the variables describe it. */
	cgi_script(dir, "up",
	    "#!/bin/sh\n"
	    "n=$(head -c \"$CONTENT_LENGTH\" | cksum)\n"
	    "printf '20 text/plain\\r\\n%s|%s|%s|%s|%s' \"$n\" "
	    "\"$CONTENT_LENGTH\" \"$CONTENT_TYPE\" \"$REQUEST_METHOD\" "
	    "\"${TITAN_TOKEN:-none}\"\n");
	/* Answers without reading a byte of it. */
	cgi_script(dir, "deaf", "#!/bin/sh\nprintf '20 text/plain\\r\\nno'\n");
	cr_assert_eq(xz_cgi(app, "/cgi", dir,
	                 &(struct xz_backend_config){ .titan = true,
	                     .max_upload_size = 8 << 20 }),
	    XZ_OK, "%s", xz_app_error(app));
	cr_assert_eq(xz_cgi(app, "/ro", dir, NULL), XZ_OK);
	tc = xz_test_client_new(app);

	/* What cksum says of the same bytes. */
	cr_assert_neq(asprintf(&cmd, "cksum < %s/data", dir), -1);
	cr_assert_not_null(p = fopen(strchr(cmd, '<') + 2, "w"));
	cr_assert_eq(fwrite(data, 1, len, p), len);
	fclose(p);
	cr_assert_not_null(p = popen(cmd, "r"));
	cr_assert_not_null(fgets(want, sizeof(want), p));
	pclose(p);
	free(cmd);
	want[strcspn(want, "\n")] = '\0';
	snprintf(want + strlen(want), sizeof(want) - strlen(want),
	    "|%zu|application/x-y|POST|k", len);

	r = xz_test_upload(tc, "/cgi/up", data, len, "application/x-y", "k");
	cr_assert_eq(r->status, 20, "%d %s", r->status, r->meta);
	cr_assert_str_eq((char *)r->body, want);
	xz_test_response_free(r);

	r = xz_test_upload(tc, "/cgi/up", NULL, 0, NULL, NULL);
	cr_assert_eq(r->status, 20, "%d %s", r->status, r->meta);
	cr_assert(strstr((char *)r->body, "|0|text/gemini|POST|none") != NULL,
	    "%s", r->body);
	xz_test_response_free(r);

	r = xz_test_upload(tc, "/cgi/deaf", data, len, NULL, NULL);
	cr_assert_eq(r->status, 20, "%d %s", r->status, r->meta);
	cr_assert_str_eq((char *)r->body, "no");
	xz_test_response_free(r);

	r = xz_test_upload(tc, "/ro/up", "x", 1, NULL, NULL);
	cr_assert_eq(r->status, 59);
	xz_test_response_free(r);
	xz_test_client_free(tc);
	xz_app_free(app);
	free(data);
	cgi_cleanup(dir);
}
