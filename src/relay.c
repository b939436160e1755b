/*
 * relay.c - a backend's answer relayed to the client: what SCGI and CGI
 * share once the backend is reached.
 *
 * The answer comes through a bufferevent, read buffer_size bytes at a
 * time. Its header, in any of the three shapes, is parsed by
 * response_parse_backend(); a bad one is never passed on. Then:
 *
 * - with max_response_size, the whole answer (header included) is held
 *   until the backend closes, so that "too large" can still become an
 *   error status; it is sent in one go;
 * - with no limit, the body streams: bytes move (not copied) into the
 *   connection's output, and reading stops while more than RELAY_HIGH
 *   bytes wait for the client, until they fall to RELAY_LOW. Memory stays
 *   constant whatever the size.
 *
 * Before the header is out, a failure is an error answer (43 or 42 with
 * the cfg's metas, the details in the log). After, the only honest thing
 * left is to cut the connection without close_notify.
 */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "xz_private.h"

/* As static.c's ceiling: what a slow reader can pin. */
#define RELAY_HIGH (64 * 1024) /* pending bytes that pause the backend */
#define RELAY_LOW (16 * 1024)  /* ... and that resume it */

struct relay {
	struct xz_request *req;
	struct bufferevent *bev;
	const struct relay_cfg *cfg;
	void (*done)(enum relay_end, void *);
	void *arg;
	bool header_sent; /* the header went to the client */
	int status;       /* the backend's header, once parsed */
	char *meta;
	size_t hdrlen;
	struct event *ev_max; /* max_duration, when set */
};

static void relay_on_read(struct bufferevent *, void *);
static void relay_on_eof(struct relay *);
static void relay_on_event(struct bufferevent *, short, void *);

static void
relay_free(struct relay *r)
{
	if (r->ev_max != NULL)
		event_free(r->ev_max);
	free(r->meta);
	if (r->bev != NULL)
		bufferevent_free(r->bev);
	free(r);
}

/* The request is answered and ended: free, then tell the owner. */
static void
relay_finish(struct relay *r, enum relay_end how)
{
	void (*done)(enum relay_end, void *) = r->done;
	void *arg = r->arg;

	relay_free(r);
	if (done != NULL)
		done(how, arg);
}

/*
 * An error answer, possible only while no header has gone out (a cut
 * stream after). The backend is at fault unless the answer was only too
 * big for our limit.
 */
static void
relay_fail(struct relay *r, const char *meta, const char *detail)
{
	log_warnx("%s: %s: %s", r->cfg->name, xz_request_url(r->req), detail);
	if (r->header_sent)
		request_abort(r->req, "backend failed mid-response");
	else
		xz_respond(r->req, r->cfg->error_status, meta);
	relay_finish(r,
	    meta == r->cfg->meta_too_big ? RELAY_FAILED : RELAY_BACKEND_FAILED);
}

/*
 * A backend that went away without a byte of answer (killed, restarted,
 * or the connection never accepted: a reset from its listen queue) has
 * answered nothing, so nothing reached the client: with
 * unanswered_returns the request goes back to the owner, who may try
 * another backend. True when it did (r is then freed).
 */
static bool
relay_unanswered(struct relay *r, const char *detail)
{
	if (!r->cfg->unanswered_returns || r->header_sent ||
	    evbuffer_get_length(bufferevent_get_input(r->bev)) != 0)
		return false;
	log_warnx("%s: %s: %s, before answering", r->cfg->name,
	    xz_request_url(r->req), detail);
	relay_finish(r, RELAY_UNANSWERED);
	return true;
}

/*
 * Parses the header at the front of in, once: a bad one is caught as soon
 * as it arrives, held answer or not. Returns XZ_OK (status, meta and
 * hdrlen kept), XZ_EAGAIN, or XZ_EPARSE after answering the error.
 */
static int
relay_parse(struct relay *r, struct evbuffer *in)
{
	size_t len = evbuffer_get_length(in);
	size_t want =
	    len < XZ_MAX_BACKEND_HEADER + 1 ? len : XZ_MAX_BACKEND_HEADER + 1;
	const char *why = NULL;
	int rc;

	if (r->meta != NULL)
		return XZ_OK;
	rc = response_parse_backend(
	    (const char *)evbuffer_pullup(in, (ssize_t)want), want, &r->status,
	    &r->meta, &r->hdrlen, &why);
	if (rc == XZ_EAGAIN)
		return XZ_EAGAIN;
	if (rc != XZ_OK) {
		relay_fail(r, r->cfg->meta_bad,
		    why != NULL ? why : "bad header");
		return XZ_EPARSE;
	}
	return XZ_OK;
}

/* Sends the parsed header (through middleware): XZ_OK or answered. */
static int
relay_send_header(struct relay *r, struct evbuffer *in)
{
	int rc;

	evbuffer_drain(in, r->hdrlen);
	if ((rc = xz_reply(r->req, r->status, r->meta)) != XZ_OK) {
		relay_fail(r, r->cfg->meta_bad, xz_strerror(rc));
		return XZ_EPARSE;
	}
	r->header_sent = true;
	return XZ_OK;
}

/* Moves the body to the client (no copy); false once it takes no body. */
static bool
relay_move_body(struct relay *r, struct evbuffer *in)
{
	if (request_write_buffer(r->req, in) != XZ_OK) {
		/* Not 2x (or middleware made it so): nothing to send. */
		evbuffer_drain(in, evbuffer_get_length(in));
		return false;
	}
	return true;
}

static void
relay_resume(struct xz_request *req, void *arg)
{
	struct relay *r = arg;

	bufferevent_enable(r->bev, EV_READ);
}

static void
relay_stream(struct relay *r, struct evbuffer *in)
{
	if (!r->header_sent &&
	    (relay_parse(r, in) != XZ_OK || relay_send_header(r, in) != XZ_OK))
		return;
	if (!relay_move_body(r, in)) {
		xz_end(r->req);
		relay_finish(r, RELAY_OK);
		return;
	}
	if (xz_pending(r->req) > RELAY_HIGH) {
		/* The client is slower than the backend: let it catch up. */
		bufferevent_disable(r->bev, EV_READ);
		xz_on_drain(r->req, RELAY_LOW, relay_resume, r);
	}
}

/*
 * The bufferevent reads one buffer_size chunk per loop turn: a backend
 * with 100 KB ready would take a dozen turns (and as many epoll rounds).
 * Read on from the same descriptor, still a chunk per read(2), until it
 * runs dry or in holds budget bytes. Returns 1 at end of stream, -1 on an
 * error (errno set), 0 otherwise.
 */
static int
relay_read_more(struct relay *r, struct evbuffer *in, size_t budget)
{
	evutil_socket_t fd = bufferevent_getfd(r->bev);
	size_t chunk = r->cfg->buffer_size > 0 ? r->cfg->buffer_size : 8192;
	struct evbuffer_iovec v;
	ssize_t n = 1;
	int rc = 0, saved;

	/* A bufferevent keeps its input's end frozen but while it reads
	 * itself (bufferevent_sock.c does the same around its read). */
	evbuffer_unfreeze(in, 0);
	while (evbuffer_get_length(in) < budget) {
		if (evbuffer_reserve_space(in, (ev_ssize_t)chunk, &v, 1) < 1) {
			errno = ENOMEM;
			rc = -1;
			break;
		}
		n = read(fd, v.iov_base, v.iov_len < chunk ? v.iov_len : chunk);
		if (n <= 0) {
			if (n == 0)
				rc = 1;
			else if (errno != EAGAIN && errno != EINTR)
				rc = -1;
			break;
		}
		v.iov_len = (size_t)n;
		evbuffer_commit_space(in, &v, 1);
	}
	saved = errno; /* read's, for the caller's log line */
	evbuffer_freeze(in, 0);
	errno = saved;
	return rc;
}

static void
relay_on_read(struct bufferevent *bev, void *arg)
{
	struct relay *r = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t max = r->cfg->max_response_size;
	int more = relay_read_more(r, in, max == 0 ? RELAY_HIGH : max + 1);

	if (more < 0) {
		char detail[128];

		snprintf(detail, sizeof(detail), "read: %s", strerror(errno));
		if (!relay_unanswered(r, detail))
			relay_fail(r, r->cfg->meta_bad, detail);
		return;
	}
	if (more > 0) {
		relay_on_eof(r);
		return;
	}
	if (max == 0) {
		relay_stream(r, in);
		return;
	}
	if (relay_parse(r, in) == XZ_EPARSE)
		return;
	if (evbuffer_get_length(in) > max)
		relay_fail(r, r->cfg->meta_too_big, "answer over the limit");
}

/* The backend closed: the held (or last streamed) answer is complete. */
static void
relay_on_eof(struct relay *r)
{
	struct evbuffer *in = bufferevent_get_input(r->bev);
	size_t max = r->cfg->max_response_size;

	if (max > 0 && evbuffer_get_length(in) > max) {
		relay_fail(r, r->cfg->meta_too_big, "answer over the limit");
		return;
	}
	if (!r->header_sent) {
		int rc;

		if (relay_unanswered(r, "closed"))
			return;
		rc = relay_parse(r, in);
		if (rc == XZ_EAGAIN)
			relay_fail(r, r->cfg->meta_bad,
			    evbuffer_get_length(in) == 0 ?
			        "closed without answering" :
			        "closed in the middle of the header");
		if (rc != XZ_OK || relay_send_header(r, in) != XZ_OK)
			return;
	}
	(void)relay_move_body(r, in);
	xz_end(r->req);
	relay_finish(r, RELAY_OK);
}

static void
relay_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct relay *r = arg;

	if (what & BEV_EVENT_EOF) {
		relay_on_eof(r);
	} else if (what & BEV_EVENT_TIMEOUT) {
		metrics_backend_failed(r->cfg->backend_id, METRICS_TIMEOUT);
		relay_fail(r, r->cfg->meta_timeout,
		    (what & BEV_EVENT_READING) ? "silent past the timeout" :
		                                 "took no request bytes");
	} else if (what & BEV_EVENT_ERROR) {
		char detail[128];

		snprintf(detail, sizeof(detail), "connection error: %s",
		    strerror(errno));
		/*
		 * A reset is never taken for the end of an answer: held, it
		 * could hide a truncated body behind a clean 2x.
		 */
		if (!relay_unanswered(r, detail))
			relay_fail(r, r->cfg->meta_bad, detail);
	}
}

/* A backend that drips one byte per interval never trips the per-wait
 * timeout: this bounds the whole answer. */
static void
relay_on_max_duration(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;

	metrics_backend_failed(r->cfg->backend_id, METRICS_TIMEOUT);
	relay_fail(r, r->cfg->meta_timeout, "answer took over max_duration");
}

struct relay *
relay_new(struct xz_request *req, struct bufferevent *bev,
    const struct relay_cfg *cfg, void (*done)(enum relay_end, void *),
    void *arg)
{
	struct relay *r = calloc(1, sizeof(*r));
	struct timeval tv;

	if (r == NULL) {
		bufferevent_free(bev);
		return NULL;
	}
	r->req = req;
	r->bev = bev;
	r->cfg = cfg;
	r->done = done;
	r->arg = arg;
	if (cfg->max_duration > 0) {
		r->ev_max = evtimer_new(bufferevent_get_base(bev),
		    relay_on_max_duration, r);
		tv = xz_timeval(cfg->max_duration);
		if (r->ev_max == NULL || evtimer_add(r->ev_max, &tv) == -1) {
			relay_free(r);
			return NULL;
		}
	}
	tv = xz_timeval(cfg->timeout);
	/*
	 * Reading only: nothing is written through bev (SCGI has sent its
	 * request already), and the read end of a CGI script's stdout pipe
	 * never becomes writable, so a write timeout would fire on a script
	 * still talking.
	 */
	bufferevent_set_timeouts(bev, &tv, NULL);
	if (cfg->buffer_size > 0)
		bufferevent_set_max_single_read(bev, cfg->buffer_size);
	bufferevent_setcb(bev, relay_on_read, NULL, relay_on_event, r);
	bufferevent_enable(bev, EV_READ);
	return r;
}

void
relay_cancel(struct relay *r)
{
	if (r != NULL)
		relay_free(r);
}
