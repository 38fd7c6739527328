/*
 * test_crc32c.c -- the journal's checksum (server/crc32c.c): the published
 * CRC-32C check value and the RFC 3720 (iSCSI) test vectors, and that the
 * slice-by-8 loop agrees with a bit-at-a-time reference whatever the
 * length, alignment and split of the input.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "crc32c.c"

/* Bit at a time, straight from the definition. */
static uint32_t crc_ref(const unsigned char *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return ~c;
}

static void test_check_value_and_rfc3720_vectors(void **state)
{
    (void)state;
    unsigned char b[32];
    crc32c_init();
    assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
    memset(b, 0, sizeof b);
    assert_int_equal(crc32c(0, b, 32), 0x8A9136AAu);
    memset(b, 0xFF, sizeof b);
    assert_int_equal(crc32c(0, b, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        b[i] = (unsigned char)i;
    assert_int_equal(crc32c(0, b, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        b[i] = (unsigned char)(31 - i);
    assert_int_equal(crc32c(0, b, 32), 0x113FDB5Cu);
    assert_int_equal(crc32c(0, b, 0), 0u);
}

static void test_any_length_alignment_and_split_agree(void **state)
{
    (void)state;
    unsigned char buf[300];
    uint32_t x = 12345;
    crc32c_init();
    for (size_t i = 0; i < sizeof buf; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (unsigned char)(x >> 16);
    }
    for (size_t off = 0; off < 8; off++)
        for (size_t n = 0; n + off <= 100; n++) {
            uint32_t want = crc_ref(buf + off, n);
            assert_int_equal(crc32c(0, buf + off, n), want);
            for (size_t cut = 0; cut <= n; cut += 7)
                assert_int_equal(crc32c(crc32c(0, buf + off, cut), buf + off + cut, n - cut),
                                 want);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_value_and_rfc3720_vectors),
        cmocka_unit_test(test_any_length_alignment_and_split_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
