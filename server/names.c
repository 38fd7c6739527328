/*
 * names.c -- small rules and JSON nodes every part of the daemon shares,
 * kept apart from router.c so that code linked without the route table
 * (recovery's fuzz target, tests/fuzz/fuzz_journal.c) uses the same ones.
 */
#include "server.h"

#include <stdint.h>

int job_id_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

int job_id_valid(const char *id)
{
    size_t n = 0;
    for (; id[n]; n++)
        if (!job_id_char(id[n]))
            return 0;
    return n >= 1 && n <= LWD_JOB_ID_MAX;
}

cJSON *json_int(int64_t v)
{
    /* by hand: snprintf("%lld") was a visible share of a decision's cost */
    char b[24], *p = b + sizeof b;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    *--p = '\0';
    do
        *--p = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        *--p = '-';
    return cJSON_CreateRaw(p);
}

cJSON *json_double(double v)
{
    cJSON *a = wire_doubles(&v, 1);
    cJSON *x = a ? cJSON_DetachItemFromArray(a, 0) : NULL;
    cJSON_Delete(a);
    return x;
}
