/*
 * test_backend.c - the config CGI and SCGI share: defaults, checks, the
 * copy that owns its state keys, and the relay's view of it.
 */
#include <criterion/criterion.h>

#include <math.h>
#include <string.h>

#include "xz_private.h"

static const struct backend_kind kind = {
	.defaults = xz_scgi_config_init,
	.error_status = 43,
	.meta_timeout = "T",
	.meta_too_big = "B",
	.meta_bad = "X",
};

Test(backend, the_two_defaults_differ_in_buffer_size_only)
{
	struct xz_backend_config s, c;

	memset(&s, 0xff, sizeof(s));
	memset(&c, 0, sizeof(c));
	xz_scgi_config_init(&s);
	xz_cgi_config_init(&c);
	/* SCGIConfig's defaults, kept exactly. */
	cr_expect_eq(s.timeout, 30.0);
	cr_expect_eq(s.max_response_size, 1048576);
	cr_expect_eq(s.buffer_size, 8192);
	cr_expect(!s.no_inherit_environment);
	cr_expect_null(s.app_state_keys);
	cr_expect_eq(s.max_duration, 0);
	cr_expect_eq(s.max_processes, 64);
	cr_expect_eq(c.buffer_size, 65536); /* a pipe's whole buffer */
	c.buffer_size = s.buffer_size;
	cr_expect_eq(c.timeout, s.timeout);
	cr_expect_eq(c.max_response_size, s.max_response_size);
	cr_expect_eq(c.no_inherit_environment, s.no_inherit_environment);
	cr_expect_eq(c.app_state_keys, s.app_state_keys);
	cr_expect_eq(c.max_duration, s.max_duration);
	cr_expect_eq(c.max_processes, s.max_processes);
}

/* As C callers write configs: a zero field is that field's default. */
Test(backend, zero_filled_is_the_kinds_defaults)
{
	static const struct backend_kind cgi = { .defaults =
		                                     xz_cgi_config_init };
	struct xz_backend_config zero = { 0 }, want, dst;
	const char *why = NULL;

	xz_scgi_config_init(&want);
	cr_assert_eq(backend_config_copy(&dst, &zero, &kind, &why), XZ_OK);
	cr_expect_eq(dst.timeout, 30.0);
	cr_expect_eq(dst.max_response_size, 1048576);
	cr_expect_eq(dst.buffer_size, 8192);
	cr_expect(!dst.no_inherit_environment); /* inherit: true */
	cr_expect_eq(dst.max_duration, 0);
	cr_expect_eq(dst.max_processes, 64);
	backend_config_clear(&dst);
	cr_assert_eq(backend_config_copy(&dst, &zero, &cgi, &why), XZ_OK);
	cr_expect_eq(dst.buffer_size, 65536);
	backend_config_clear(&dst);
	/* One field set: that field alone changes. */
	cr_assert_eq(backend_config_copy(&dst,
	                 &(struct xz_backend_config){ .timeout = 60 }, &kind,
	                 &why),
	    XZ_OK);
	cr_expect_eq(dst.timeout, 60.0);
	cr_expect_eq(dst.max_response_size, want.max_response_size);
	cr_expect_eq(dst.buffer_size, want.buffer_size);
	backend_config_clear(&dst);
	/* No limit is asked for by name, and the relay streams. */
	cr_assert_eq(backend_config_copy(&dst,
	                 &(struct xz_backend_config){
	                     .max_response_size = XZ_UNLIMITED },
	                 &kind, &why),
	    XZ_OK);
	cr_expect_eq(dst.max_response_size, XZ_UNLIMITED);
	backend_config_clear(&dst);
}

/* The one-call form of the issue, and both names for the same bytes. */
Test(backend, scgi_opts_take_the_fields_inline)
{
	struct xz_app *app = xz_app_new();
	struct xz_scgi_opts o = { .host = "127.0.0.1",
		.port = 4000,
		.timeout = 60 };

	cr_expect_eq(o.config.timeout, 60.0);
	cr_expect_eq(o.config.buffer_size, 0);
	o.config.buffer_size = 5;
	cr_expect_eq(o.buffer_size, 5);
	cr_expect_eq(xz_scgi(app, "/api",
	                 &(struct xz_scgi_opts){ .host = "127.0.0.1",
	                     .port = 4000,
	                     .timeout = 60 }),
	    XZ_OK, "%s", xz_app_error(app));
	xz_app_free(app);
}

Test(backend, null_is_the_kinds_defaults)
{
	struct xz_backend_config dst;
	const char *why = NULL;

	cr_assert_eq(backend_config_copy(&dst, NULL, &kind, &why), XZ_OK);
	cr_expect_eq(dst.buffer_size, 8192);
	cr_assert_not_null(dst.app_state_keys); /* an empty list */
	cr_expect_null(dst.app_state_keys[0]);
	backend_config_clear(&dst);
	cr_expect_null(dst.app_state_keys);
	backend_config_clear(&dst); /* twice: a no-op */
}

Test(backend, the_copy_owns_its_state_keys)
{
	char k0[] = "db_url", k1[] = "api-key";
	const char *keys[] = { k0, k1, NULL };
	struct xz_backend_config cfg, dst;
	const char *why = NULL;

	xz_cgi_config_init(&cfg);
	cfg.timeout = 2.5;
	cfg.app_state_keys = keys;
	cr_assert_eq(backend_config_copy(&dst, &cfg, &kind, &why), XZ_OK);
	k0[0] = 'X';
	keys[1] = "changed";
	cr_expect_eq(dst.timeout, 2.5);
	cr_expect_eq(dst.buffer_size, 65536);
	cr_expect_str_eq(dst.app_state_keys[0], "db_url");
	cr_expect_str_eq(dst.app_state_keys[1], "api-key");
	cr_expect_null(dst.app_state_keys[2]);
	backend_config_clear(&dst);
}

#define T "timeout must be greater than 0 (or 0: the default, 30)"
Test(backend, each_bad_field_has_its_reason)
{
	static const struct {
		double timeout, max_duration;
		size_t buffer_size;
		const char *why;
	} cases[] = {
		{ -1, 0, 1, T },
		{ NAN, 0, 1, T },
		{ INFINITY, 0, 1, T },
		{ 1, -1, 1, "max_duration must be 0 (off) or more" },
		{ 1, NAN, 1, "max_duration must be 0 (off) or more" },
		{ 1, INFINITY, 1, "max_duration must be 0 (off) or more" },
	};
	const char *keys[] = { "a", NULL };
	struct xz_backend_config cfg, dst;
	const char *why;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		xz_scgi_config_init(&cfg);
		cfg.timeout = cases[i].timeout;
		cfg.max_duration = cases[i].max_duration;
		cfg.buffer_size = cases[i].buffer_size;
		cfg.app_state_keys = keys;
		why = NULL;
		cr_expect_eq(backend_config_copy(&dst, &cfg, &kind, &why),
		    XZ_EINVAL, "case %zu", i);
		cr_expect_str_eq(why, cases[i].why, "case %zu", i);
		cr_expect_null(dst.app_state_keys, "case %zu", i);
		backend_config_clear(&dst);
	}
}

Test(backend, the_relay_sees_the_config_and_the_kinds_metas)
{
	struct xz_backend_config cfg;
	struct relay_cfg r;

	xz_scgi_config_init(&cfg);
	cfg.timeout = 7;
	cfg.max_duration = 9;
	cfg.max_response_size = XZ_UNLIMITED;
	cfg.buffer_size = 123;
	memset(&r, 0, sizeof(r));
	backend_relay_cfg(&r, &cfg, &kind, "scgi x");
	cr_expect_eq(r.timeout, 7);
	cr_expect_eq(r.max_duration, 9);
	cr_expect_eq(r.max_response_size, 0);
	cr_expect_eq(r.buffer_size, 123);
	cr_expect_eq(r.error_status, 43);
	cr_expect_str_eq(r.meta_timeout, "T");
	cr_expect_str_eq(r.meta_too_big, "B");
	cr_expect_str_eq(r.meta_bad, "X");
	cr_expect_str_eq(r.name, "scgi x");
}

/* Both handlers give the same reasons, each with its own prefix. */
Test(backend, both_handlers_refuse_alike)
{
	struct xz_app *app = xz_app_new();
	struct xz_backend_config cfg;
	struct xz_scgi_opts o = { .host = "127.0.0.1", .port = 4000 };

	xz_scgi_config_init(&cfg);
	cfg.timeout = -1;
	o.config = cfg;
	cr_expect_eq(xz_scgi(app, "/s", &o), XZ_EINVAL);
	cr_expect_str_eq(xz_app_error(app), "scgi /s: " T);
	cr_expect_eq(xz_cgi(app, "/c", "/tmp", &cfg), XZ_EINVAL);
	cr_expect_str_eq(xz_app_error(app), "cgi /c: " T);
	xz_cgi_config_init(&cfg);
	cfg.max_processes = -1; /* the CGI handler's own check */
	cr_expect_eq(xz_cgi(app, "/c", "/tmp", &cfg), XZ_EINVAL);
	cr_expect_str_eq(xz_app_error(app),
	    "cgi /c: max_processes must be at least 1");
	o.config = cfg; /* SCGI has no processes: max_processes unused */
	cr_expect_eq(xz_scgi(app, "/s", &o), XZ_OK);
	xz_app_free(app);
}
