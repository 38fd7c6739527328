/*
 * test_wire_numbers.c -- server/wire.c prints doubles with an exact 128-bit
 * integer fast path (format_double); it must give the same bytes as the
 * glibc reference (the shortest of %.15g/%.16g/%.17g that strtod reads back)
 * for every double, and what it prints must read back to the same bits.
 * Differential: random bit patterns, the magnitudes weights and losses
 * have, decimal fractions, and the neighbourhoods of powers of two and ten
 * where rounding carries and the gaps change.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

void wire_format_double_both(double d, char *fast, char *libc, size_t n);

static uint64_t rng = 88172645463325252ull;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static long differ;

static void same(double d)
{
    char a[64], b[64];
    if (!isfinite(d) || d == 0.0)
        return;
    wire_format_double_both(d, a, b, sizeof a);
    if (strcmp(a, b) != 0 || strtod(a, NULL) != d) {
        if (differ < 10)
            fprintf(stderr, "%.17g: fast %s, libc %s\n", d, a, b);
        differ++;
    }
}

static void test_random_bit_patterns(void **state)
{
    (void)state;
    differ = 0;
    for (int i = 0; i < 300000; i++) {
        uint64_t x = next();
        double d;
        memcpy(&d, &x, sizeof d);
        same(d);
    }
    assert_int_equal(differ, 0);
}

static void test_weights_and_losses(void **state)
{
    (void)state;
    differ = 0;
    for (int i = 0; i < 300000; i++) {
        uint64_t x = next();
        double u = (double)(x >> 11) / 9007199254740992.0;
        same(u);                                   /* [0, 1) */
        same(u * 8.0);                             /* weights summing to T */
        same(-u * 3.0);
        same(u * pow(10, (int)(x % 60) - 30));     /* every magnitude of the fast range */
        same(ldexp((double)((x >> 11) | 1), (int)((x >> 3) % 240) - 170));
    }
    assert_int_equal(differ, 0);
}

static void test_decimal_fractions(void **state)
{
    (void)state;
    differ = 0;
    for (int i = 0; i < 200000; i++) {
        uint64_t x = next();
        same((double)(int64_t)(x % 2000001 - 1000000) / 1000.0);
        same((double)(int64_t)(x % 200001 - 100000) * pow(10, (int)((x >> 40) % 40) - 20));
        same((double)(x % 100000) / (double)(1 + (x >> 50) % 1000));
    }
    assert_int_equal(differ, 0);
}

static void test_powers_of_two_and_ten(void **state)
{
    (void)state;
    differ = 0;
    for (int ex = -1074; ex <= 1023; ex++) {
        double d = nextafter(nextafter(ldexp(1.0, ex), 0), 0);
        for (int k = 0; k < 5; k++, d = nextafter(d, INFINITY))
            same(d), same(-d);
    }
    for (int ex = -30; ex <= 40; ex++) {
        double d = nextafter(nextafter(pow(10, ex), 0), 0);
        for (int k = 0; k < 5; k++, d = nextafter(d, INFINITY))
            same(d), same(-d);
        /* 9.99..9 at every precision: rounding carries into the exponent */
        for (int p = 14; p <= 18; p++)
            same((1.0 - pow(10, -p)) * pow(10, ex));
    }
    static const double edge[] = {
        0.1, 0.2, 0.3, 0.30000000000000004, 1.0 / 3, 2.0 / 3, 0.5, 1.5, 2.5, 4.35, 1e-5,
        9.9999999999999991e-06, 1e-4, 99999999999999.99, 999999999999999.9, 1e15, 1e16,
        9007199254740992.0, 9007199254740993.0, 123456789012345678.0, 1e21, 1e22, 1e23,
        5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 99.999999999999986};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++)
        same(edge[i]), same(-edge[i]);
    assert_int_equal(differ, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_bit_patterns),
        cmocka_unit_test(test_weights_and_losses),
        cmocka_unit_test(test_decimal_fractions),
        cmocka_unit_test(test_powers_of_two_and_ten),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
