/*
 * test_strlist.c - "a, b c" lists: the server's hostnames and a
 * backend's app_state_keys.
 */
#include <criterion/criterion.h>

#include <string.h>

#include "xz_private.h"

static void
expect_split(const char *in, const char *const *want)
{
	char **list = strlist_split(in);
	size_t i;

	cr_assert_not_null(list, "'%s'", in);
	for (i = 0; want[i] != NULL; i++) {
		cr_assert_not_null(list[i], "'%s': item %zu missing", in, i);
		cr_expect_str_eq(list[i], want[i], "'%s': item %zu", in, i);
	}
	cr_expect_null(list[i], "'%s': more than %zu items", in, i);
	strlist_free(list);
}

Test(strlist, splits_on_commas_and_white_space)
{
	expect_split("db_url, api_key",
	    (const char *[]){ "db_url", "api_key", NULL });
	expect_split("a,b c\td\n e",
	    (const char *[]){ "a", "b", "c", "d", "e", NULL });
	expect_split("  Mixed.Case  ", (const char *[]){ "Mixed.Case", NULL });
	expect_split("x", (const char *[]){ "x", NULL });
	/* a,b,c,... : the most items a string of its length can hold */
	expect_split("a,b,c,d,e,f,g",
	    (const char *[]){ "a", "b", "c", "d", "e", "f", "g", NULL });
}

Test(strlist, empty_items_are_dropped)
{
	expect_split("", (const char *[]){ NULL });
	expect_split(" , ,,\t", (const char *[]){ NULL });
	expect_split(",a,,b,", (const char *[]){ "a", "b", NULL });
}

Test(strlist, free_takes_null)
{
	strlist_free(NULL);
}
