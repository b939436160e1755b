/*
 * test_site.c - site.c: which site a name belongs to (exact, one-label
 * wildcard, "*"), the default for SNI, and the names a set refuses.
 */
#include <criterion/criterion.h>

#include <string.h>

#include "xz_private.h"

/* Stand-ins: the set only keeps the pointers. */
static struct xz_app *const app_a = (struct xz_app *)1;
static struct xz_app *const app_b = (struct xz_app *)2;
static struct xz_app *const app_w = (struct xz_app *)3;
static struct xz_app *const app_d = (struct xz_app *)4;

static struct site_set *
sample(void)
{
	struct site_set *set = site_set_new();
	const char *why;

	cr_assert_not_null(set);
	cr_assert_eq(site_set_add(set, "localhost", app_d, NULL, &why, NULL, 0),
	    XZ_OK);
	cr_assert_eq(site_set_add(set, "A.example, www.a.example.", app_a, NULL,
	                 &why, NULL, 0),
	    XZ_OK);
	cr_assert_eq(site_set_add(set, "b.example", app_b, NULL, &why, NULL, 0),
	    XZ_OK);
	cr_assert_eq(site_set_add(set, "*.w.example, *.b.example", app_w, NULL,
	                 &why, NULL, 0),
	    XZ_OK);
	return set;
}

static struct xz_app *
app_of(const struct site *s)
{
	return s != NULL ? s->app : NULL;
}

Test(site, exact_names_first_then_one_label_wildcards)
{
	struct site_set *set = sample();

	cr_assert_eq(app_of(site_for_name(set, "a.example")), app_a);
	cr_assert_eq(app_of(site_for_name(set, "WWW.A.EXAMPLE")), app_a);
	cr_assert_eq(app_of(site_for_name(set, "a.example.")), app_a);
	cr_assert_eq(app_of(site_for_name(set, "b.example")), app_b);
	cr_assert_eq(app_of(site_for_name(set, "x.w.example")), app_w);
	/* An exact name wins over a wildcard that also matches. */
	cr_assert_eq(app_of(site_for_name(set, "x.b.example")), app_w);
	cr_assert_null(site_for_name(set, "w.example"));
	cr_assert_null(site_for_name(set, "y.x.w.example"));
	cr_assert_null(site_for_name(set, ".w.example"));
	cr_assert_null(site_for_name(set, "nope.example"));
	cr_assert_null(site_for_name(set, ""));
	cr_assert_null(site_for_name(set, NULL));
	cr_assert_eq(site_set_count(set), 4);
	site_set_free(set);
}

Test(site, sni_falls_back_to_the_default)
{
	struct site_set *set = sample();

	cr_assert_eq(app_of(site_for_sni(set, NULL)), app_d);
	cr_assert_eq(app_of(site_for_sni(set, "nope.example")), app_d);
	cr_assert_eq(app_of(site_for_sni(set, "b.example")), app_b);
	cr_assert_eq(app_of(site_for_sni(set, "q.w.example")), app_w);
	site_set_free(set);
}

Test(site, star_is_the_fallback_for_any_host)
{
	struct site_set *set = sample();
	const char *why;

	cr_assert_eq(site_set_add(set, "*", app_b, NULL, &why, NULL, 0), XZ_OK);
	cr_assert_eq(app_of(site_for_name(set, "nope.example")), app_b);
	cr_assert_eq(app_of(site_for_name(set, "a.example")), app_a);
	cr_assert_eq(app_of(site_for_sni(set, "nope.example")), app_b);
	site_set_free(set);
}

Test(site, refuses_bad_and_shared_names)
{
	static const struct {
		const char *names, *why, *bad;
	} cases[] = {
		{ "", "no name given", "" },
		{ " , ", "no name given", "" },
		{ "*.*.example", "a wildcard is '*.' and a name (one label)",
		    "*.*.example" },
		{ "a.*.example", "a wildcard is '*.' and a name (one label)",
		    "a.*.example" },
		{ "*example", "a wildcard is '*.' and a name (one label)",
		    "*example" },
		{ "a..example", "an empty label", "a..example" },
		{ ".example", "an empty label", ".example" },
		{ "new.example, B.Example", "a name is in two sites",
		    "b.example" },
		{ "x.example, x.example.", "a name given twice", "x.example" },
	};
	struct site_set *set = sample();
	const char *why;
	char bad[64];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		cr_assert_eq(site_set_add(set, cases[i].names, app_a, NULL,
		                 &why, bad, sizeof(bad)),
		    XZ_EINVAL, "%s", cases[i].names);
		cr_assert_str_eq(why, cases[i].why, "%s", cases[i].names);
		cr_assert_str_eq(bad, cases[i].bad, "%s", cases[i].names);
	}
	cr_assert_eq(site_set_count(set), 4); /* nothing was added */
	cr_assert_null(site_for_name(set, "new.example"));
	site_set_free(set);
}

Test(site, empty_set_and_null_free)
{
	struct site_set *set = site_set_new();

	cr_assert_null(site_for_sni(set, "a.example"));
	cr_assert_null(site_set_get(set, 0));
	site_set_free(set);
	site_set_free(NULL);
}
