/*
 * request.c - one request's life once its line is read: what it says
 * (accessors, route parameters, input), answering it (xz_reply, xz_write,
 * xz_end and the helpers built on them), waiting for the client to drain
 * (xz_on_drain), and being cancelled when the client leaves.
 *
 * A request does not know what carries it: the connection (conn.c) or
 * any other carrier hands it a const table (struct request_carrier) at
 * request_init, as h2o's req->conn->callbacks. The app that dispatches
 * it (app.c) hands it another (struct request_owner) for the two things
 * it needs from above: middleware after hooks and the end of its reads of
 * app state. So this file calls neither conn.c nor app.c by name.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "xz_private.h"

void
request_init(struct xz_request *req, const struct request_carrier *carrier,
    void *carrier_arg, struct event_base *base)
{
	memset(req, 0, sizeof(*req));
	req->carrier = carrier;
	req->carrier_arg = carrier_arg;
	req->base = base;
	req->mount = "";
}

static struct evbuffer *
request_out(const struct xz_request *req)
{
	return req->carrier->output(req->carrier_arg);
}

static void
request_kick(struct xz_request *req)
{
	req->carrier->kick(req->carrier_arg);
}

void
request_clear(struct xz_request *req)
{
	size_t i;

	for (i = 0; i < req->nparams; i++)
		free(req->param_values[i]);
	free(req->param_names);
	free(req->param_values);
	free(req->input);
	free(req->meta);
	for (i = 0; i < req->nmw_data; i++)
		if (req->mw_data[i].free_fn != NULL)
			req->mw_data[i].free_fn(req->mw_data[i].data);
	free(req->mw_data);
	if (req->alt_ev != NULL)
		event_free(req->alt_ev);
	if (req->upload != NULL)
		evbuffer_free(req->upload);
	url_clear(&req->url);
	cert_clear(&req->cert);
	if (req->owner != NULL && req->owner->leave != NULL)
		req->owner->leave(req);
	memset(req, 0, sizeof(*req));
}

void
request_cancel(struct xz_request *req)
{
	if (req->handler != NULL && req->handler->ops->cancel != NULL)
		req->handler->ops->cancel(req, req->handler->state);
	req->handler = NULL;
	req->cancel_cb = NULL;
	req->ended = true;
}

void
request_run_on_cancel(struct xz_request *req)
{
	void (*cb)(struct xz_request *, void *) = req->cancel_cb;

	req->cancel_cb = NULL;
	if (cb != NULL)
		cb(req, req->cancel_arg);
}

void
xz_request_on_cancel(struct xz_request *req,
    void (*fn)(struct xz_request *, void *), void *arg)
{
	req->cancel_cb = fn;
	req->cancel_arg = arg;
}

void
request_drained(struct xz_request *req, size_t pending)
{
	void (*cb)(struct xz_request *, void *) = req->drain_cb;

	if (cb == NULL || pending > req->drain_low || req->ended)
		return;
	req->drain_cb = NULL; /* once; the handler sets it again */
	cb(req, req->drain_arg);
}

int
request_add_param(struct xz_request *req, char *name, const char *value,
    size_t len)
{
	char **names, **values;

	names = realloc(req->param_names, (req->nparams + 1) * sizeof(char *));
	if (names == NULL)
		return XZ_ENOMEM;
	req->param_names = names;
	values =
	    realloc(req->param_values, (req->nparams + 1) * sizeof(char *));
	if (values == NULL)
		return XZ_ENOMEM;
	req->param_values = values;
	if ((values[req->nparams] = strndup(value, len)) == NULL)
		return XZ_ENOMEM;
	names[req->nparams++] = name;
	return XZ_OK;
}

void
request_drop_params(struct xz_request *req)
{
	size_t i;

	for (i = 0; i < req->nparams; i++)
		free(req->param_values[i]);
	req->nparams = 0;
}

static bool
request_takes_body(const struct xz_request *req)
{
	return req->replied && !req->ended && req->status / 10 == 2;
}

void
request_discard(struct xz_request *req)
{
	struct xz_handler *h = req->handler;

	if (!req->discarded_done) {
		/* Still making the discarded answer: it stops here. */
		if (h != NULL && h->ops->cancel != NULL)
			h->ops->cancel(req, h->state);
		else if (h == NULL)
			request_run_on_cancel(req); /* a before hook's */
	}
	req->handler = NULL;
	req->data = NULL;
	req->cancel_cb = NULL;
	req->drain_cb = NULL;
	req->replied = req->discarded = req->discarded_done = false;
	req->status = 0;
	free(req->meta);
	req->meta = NULL;
}

/* The maker of a discarded answer is done with req (xz_end, abort). */
static void
request_discarded_end(struct xz_request *req)
{
	req->discarded_done = true;
	req->handler = NULL;
	req->cancel_cb = NULL;
	req->drain_cb = NULL;
}

int
xz_reply(struct xz_request *req, int status, const char *meta)
{
	struct evbuffer *out = request_out(req);
	char *m;
	int rc = XZ_OK;

	if (req->replied || req->ended)
		return XZ_ESTATE;
	if (meta == NULL)
		meta = "";
	if (!response_valid(status, meta, strlen(meta))) {
		log_warnx("invalid response %d \"%.64s\" on %s", status, meta,
		    req->url.raw);
		status = 40;
		meta = "Handler error";
	}
	if ((m = strdup(meta)) == NULL)
		rc = XZ_ENOMEM;
	else if (req->owner != NULL && req->owner->after != NULL)
		rc = req->owner->after(req, &status, &m);
	if (rc == REQUEST_REPLACED) {
		/* Nothing was written: a middleware answers instead. */
		free(m);
		req->replied = req->discarded = true;
		return XZ_OK;
	}
	if (rc != XZ_OK) {
		free(m);
		status = 40;
		m = NULL;
	}
	req->replied = true;
	req->status = status;
	req->meta = m;
	if (evbuffer_add_printf(out, "%d %s\r\n", status,
	        m != NULL ? m : "Server busy") < 0)
		return XZ_ENOMEM;
	request_kick(req);
	return XZ_OK;
}

int
xz_write(struct xz_request *req, const void *data, size_t len)
{
	if (req->discarded)
		return XZ_OK; /* a middleware answers instead */
	if (!request_takes_body(req))
		return XZ_ESTATE;
	if (evbuffer_add(request_out(req), data, len) == -1)
		return XZ_ENOMEM;
	request_kick(req);
	return XZ_OK;
}

int
xz_puts(struct xz_request *req, const char *s)
{
	return xz_write(req, s, strlen(s));
}

int
request_write_buffer(struct xz_request *req, struct evbuffer *buf)
{
	if (req->discarded)
		return evbuffer_drain(buf, evbuffer_get_length(buf));
	if (!request_takes_body(req))
		return XZ_ESTATE;
	if (evbuffer_add_buffer(request_out(req), buf) == -1)
		return XZ_ENOMEM;
	request_kick(req);
	return XZ_OK;
}

ssize_t
request_read_file(struct xz_request *req, int fd, off_t off, size_t len)
{
	struct evbuffer *out = request_out(req);
	struct evbuffer_iovec vec[2];
	ssize_t n, got = 0;
	int nvec, i;

	if (req->discarded)
		return (ssize_t)len; /* as if read: nobody will see it */
	if (!request_takes_body(req))
		return XZ_ESTATE;
	if ((nvec = evbuffer_reserve_space(out, (ev_ssize_t)len, vec, 2)) < 0)
		return XZ_ENOMEM;
	/* pread straight into the output buffer: no copy in between. */
	for (i = 0; i < nvec && (size_t)got < len; i++) {
		size_t want = vec[i].iov_len < len - (size_t)got ?
		                  vec[i].iov_len :
		                  len - (size_t)got;

		n = pread(fd, vec[i].iov_base, want, off + got);
		if (n < 0)
			return XZ_EIO;
		vec[i].iov_len = (size_t)n;
		got += n;
		if ((size_t)n < want) {
			nvec = ++i; /* the end of the file: commit this one */
			break;
		}
	}
	for (; i < nvec; i++) /* vectors left unfilled */
		vec[i].iov_len = 0;
	if (evbuffer_commit_space(out, vec, nvec) == -1)
		return XZ_ENOMEM;
	request_kick(req);
	return got;
}

void
xz_end(struct xz_request *req)
{
	if (req->ended)
		return;
	if (!req->replied)
		(void)xz_reply(req, 40, "Handler error");
	if (req->discarded) {
		request_discarded_end(req);
		return;
	}
	req->ended = true;
	req->handler = NULL;
	req->drain_cb = NULL;
	req->carrier->end(req->carrier_arg);
}

void
request_abort(struct xz_request *req, const char *reason)
{
	if (req->ended)
		return;
	if (req->discarded) {
		log_debug("discarded answer on %s aborted: %s", req->url.raw,
		    reason);
		request_discarded_end(req);
		return;
	}
	req->ended = true;
	req->handler = NULL;
	req->drain_cb = NULL;
	req->carrier->abort(req->carrier_arg, reason);
}

int
xz_respond(struct xz_request *req, int status, const char *meta)
{
	int rc = xz_reply(req, status, meta);

	xz_end(req);
	return rc;
}

int
xz_gemtext(struct xz_request *req, const char *body)
{
	int rc = xz_reply(req, 20, "text/gemini");

	if (rc == XZ_OK && req->status / 10 == 2)
		rc = xz_puts(req, body);
	xz_end(req);
	return rc;
}

const char *
xz_request_input(struct xz_request *req)
{
	size_t len;

	if (req->url.query == NULL)
		return NULL;
	if (req->input == NULL &&
	    url_decode(req->url.query, strlen(req->url.query), &req->input,
	        &len) != XZ_OK)
		return NULL;
	return req->input;
}

int
xz_input(struct xz_request *req, const char *prompt, bool sensitive)
{
	return xz_respond(req, sensitive ? 11 : 10, prompt);
}

int
xz_redirect(struct xz_request *req, const char *url, bool permanent)
{
	return xz_respond(req, permanent ? 31 : 30, url);
}

bool
xz_require_cert(struct xz_request *req)
{
	if (req->cert.present)
		return true;
	xz_respond(req, 60, "Certificate required");
	return false;
}

bool
xz_require_cert_in(struct xz_request *req, const char *const *hashes)
{
	const char *const *h;

	if (!xz_require_cert(req))
		return false;
	for (h = hashes; h != NULL && *h != NULL; h++)
		if (strcasecmp(*h, req->cert.hash) == 0)
			return true;
	xz_respond(req, 61, "Certificate not authorised");
	return false;
}

size_t
xz_pending(const struct xz_request *req)
{
	return evbuffer_get_length(request_out(req));
}

void
xz_on_drain(struct xz_request *req, size_t low,
    void (*cb)(struct xz_request *, void *), void *arg)
{
	req->drain_low = low;
	req->drain_cb = cb;
	req->drain_arg = arg;
	if (cb != NULL && xz_pending(req) <= low)
		request_kick(req); /* the next flush calls it */
}

const char *
xz_param(const struct xz_request *req, const char *name)
{
	size_t i, len = strlen(name);

	for (i = 0; i < req->nparams; i++) {
		const char *n = req->param_names[i] + 1; /* past '{' */

		if (strncmp(n, name, len) == 0 &&
		    (n[len] == '}' || n[len] == ':'))
			return req->param_values[i];
	}
	return NULL;
}

const char *
xz_request_url(const struct xz_request *req)
{
	return req->url.raw;
}

const char *
xz_request_path(const struct xz_request *req)
{
	return req->url.path;
}

const char *
xz_request_query(const struct xz_request *req)
{
	return req->url.query;
}

const char *
xz_request_host(const struct xz_request *req)
{
	return req->url.host;
}

int
xz_request_port(const struct xz_request *req)
{
	return req->port;
}

const char *
xz_request_remote_addr(const struct xz_request *req)
{
	return req->remote_addr;
}

const char *
xz_request_mount(const struct xz_request *req)
{
	return req->mount;
}

const char *
xz_request_path_info(const struct xz_request *req)
{
	return req->path_info != NULL ? req->path_info : req->url.path;
}

const char *
xz_request_cert_hash(const struct xz_request *req)
{
	return req->cert.present ? req->cert.hash : NULL;
}

struct event_base *
xz_request_base(const struct xz_request *req)
{
	return req->base;
}

void *
xz_request_data(const struct xz_request *req)
{
	return req->data;
}

void
xz_request_set_data(struct xz_request *req, void *data)
{
	req->data = data;
}

struct xz_app *
xz_request_app(const struct xz_request *req)
{
	return req->app;
}

void *
xz_request_mw_data(const struct xz_request *req, const void *key)
{
	size_t i;

	for (i = 0; i < req->nmw_data; i++)
		if (req->mw_data[i].key == key)
			return req->mw_data[i].data;
	return NULL;
}

int
xz_request_set_mw_data(struct xz_request *req, const void *key, void *data,
    void (*free_fn)(void *))
{
	struct request_mw_data *d;
	size_t i;

	if (key == NULL)
		return XZ_EINVAL;
	for (i = 0; i < req->nmw_data; i++) {
		d = &req->mw_data[i];
		if (d->key != key)
			continue;
		if (d->free_fn != NULL && d->data != data)
			d->free_fn(d->data);
		d->data = data;
		d->free_fn = free_fn;
		return XZ_OK;
	}
	d = realloc(req->mw_data, (req->nmw_data + 1) * sizeof(*d));
	if (d == NULL)
		return XZ_ENOMEM;
	req->mw_data = d;
	d[req->nmw_data++] = (struct request_mw_data){ key, data, free_fn };
	return XZ_OK;
}

/*
 * Titan uploads. The carrier adds the body as it reads it; the handler
 * takes it (xz_upload_read, request_upload_take); the carrier reads the
 * client only while the handler has room (request_upload_room), so an
 * upload never sits whole in memory unless a handler asks for it so.
 */
bool
xz_request_is_upload(const struct xz_request *req)
{
	return req->url.titan;
}

size_t
xz_upload_size(const struct xz_request *req)
{
	return req->url.titan ? req->url.size : 0;
}

const char *
xz_upload_mime(const struct xz_request *req)
{
	return req->url.titan ? req->url.mime : NULL;
}

const char *
xz_upload_token(const struct xz_request *req)
{
	return req->url.token;
}

static size_t
request_upload_held(const struct xz_request *req)
{
	return req->upload != NULL ? evbuffer_get_length(req->upload) : 0;
}

size_t
request_upload_room(const struct xz_request *req)
{
	size_t held = request_upload_held(req);
	size_t window =
	    req->upload_window ? req->upload_window : XZ_UPLOAD_WINDOW;

	return held < window ? window - held : 0;
}

int
request_upload_add(struct xz_request *req, const void *data, size_t len)
{
	void (*cb)(struct xz_request *, void *) = req->upload_cb;

	if (req->upload == NULL && (req->upload = evbuffer_new()) == NULL)
		return XZ_ENOMEM;
	if (len > 0 && evbuffer_add(req->upload, data, len) == -1)
		return XZ_ENOMEM;
	req->upload_in += len;
	if (cb != NULL && !req->ended)
		cb(req, req->upload_arg);
	return XZ_OK;
}

/* The handler took bytes: the carrier may read the client again. */
static void
request_upload_taken(struct xz_request *req)
{
	if (req->upload_in < req->url.size && request_upload_room(req) > 0 &&
	    req->carrier->resume != NULL && !req->ended)
		req->carrier->resume(req->carrier_arg);
}

size_t
request_upload_take(struct xz_request *req, struct evbuffer *dst, size_t max)
{
	int n;

	if (req->upload == NULL)
		return 0;
	n = evbuffer_remove_buffer(req->upload, dst, max);
	if (n <= 0)
		return 0;
	request_upload_taken(req);
	return (size_t)n;
}

bool
request_upload_done(const struct xz_request *req)
{
	return req->upload_in == req->url.size && request_upload_held(req) == 0;
}

ssize_t
xz_upload_read(struct xz_request *req, void *buf, size_t len)
{
	int n;

	if (!req->url.titan)
		return XZ_ESTATE;
	if (request_upload_done(req) || len == 0)
		return 0;
	if (request_upload_held(req) == 0)
		return XZ_EAGAIN;
	if ((n = evbuffer_remove(req->upload, buf, len)) <= 0)
		return XZ_EAGAIN;
	request_upload_taken(req);
	return n;
}

void
xz_upload_on_data(struct xz_request *req,
    void (*cb)(struct xz_request *, void *), void *arg)
{
	req->upload_cb = cb;
	req->upload_arg = arg;
}

const void *
xz_upload_body(struct xz_request *req, size_t *len)
{
	static const char none[1];

	*len = 0;
	if (!req->url.titan || req->upload_in != req->url.size)
		return NULL;
	if (req->upload == NULL || (*len = request_upload_held(req)) == 0)
		return none;
	return evbuffer_pullup(req->upload, -1);
}
