/*
 * test_crc32c.c -- the journal's checksum (server/crc32c.c): the published
 * CRC-32C check value and the RFC 3720 (iSCSI) test vectors, and that the
 * slice-by-8 loop and the SSE4.2 instruction (where the CPU has it; `hw`
 * is forced to each path in turn) agree with a bit-at-a-time reference
 * whatever the length, alignment and split of the input.
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

/* Run check on every path: slice-by-8 always, the instruction if the CPU
 * has it; the choice crc32c_init() made is put back afterwards. */
static void on_each_path(void (*check)(void))
{
    crc32c_init();
    int have = hw;
    for (int path = 0; path <= have; path++) {
        hw = path;
        check();
    }
    hw = have;
}

static void check_vectors(void)
{
    unsigned char b[32];
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

static void test_check_value_and_rfc3720_vectors(void **state)
{
    (void)state;
    on_each_path(check_vectors);
}

static void check_agree(void)
{
    unsigned char buf[300];
    uint32_t x = 12345;
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

static void test_any_length_alignment_and_split_agree(void **state)
{
    (void)state;
    on_each_path(check_agree);
}

/* On x86-64 the daemon must take the instruction when the CPU has it: the
 * path recovery's speed depends on. */
static void test_hardware_path_chosen_when_available(void **state)
{
    (void)state;
    crc32c_init();
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    assert_int_equal(crc32c_hardware(), __builtin_cpu_supports("sse4.2") != 0);
#else
    assert_int_equal(crc32c_hardware(), 0);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_value_and_rfc3720_vectors),
        cmocka_unit_test(test_any_length_alignment_and_split_agree),
        cmocka_unit_test(test_hardware_path_chosen_when_available),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
