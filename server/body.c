/*
 * body.c -- turning a request body into a cJSON tree, defensively.
 *
 * cJSON recurses once per nesting level (to its own limit of 1000), so a
 * body of a few kilobytes of '[' could cost a deep stack and time before any
 * of our checks run. We scan the bytes first, counting bracket depth outside
 * strings, and refuse anything nested deeper than LWD_JSON_MAX_DEPTH; no
 * document of the API is deeper than 4. Then cJSON parses with an explicit
 * length, and anything after the value but whitespace is an error (cJSON
 * would otherwise accept "{} trailing").
 *
 * Also refused: bytes that are not UTF-8 (a string we echo back must stay
 * valid JSON), objects with more than LWD_JSON_MAX_MEMBERS members (no
 * document of the API has more than a few dozen, and key loops downstream
 * may be quadratic), and duplicate keys anywhere (cJSON keeps both and the
 * first would win silently).
 */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LWD_JSON_MAX_MEMBERS 1024

int body_json_depth(const char *buf, size_t len)
{
    int depth = 0, max = 0, in_str = 0, esc = 0;
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (in_str) {
            if (esc)
                esc = 0;
            else if (c == '\\')
                esc = 1;
            else if (c == '"')
                in_str = 0;
            continue;
        }
        if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                max = depth;
            if (max > LWD_JSON_MAX_DEPTH)
                return max; /* no need to look further */
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return max;
}

/* Offset of the first byte that breaks UTF-8 (overlongs, surrogates and
 * code points above U+10FFFF included), or len if none. */
static size_t utf8_invalid_at(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t n;
        unsigned cp, min;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0)
            n = 1, cp = c & 0x1f, min = 0x80;
        else if ((c & 0xf0) == 0xe0)
            n = 2, cp = c & 0x0f, min = 0x800;
        else if ((c & 0xf8) == 0xf0)
            n = 3, cp = c & 0x07, min = 0x10000;
        else
            return i;
        for (size_t k = 1; k <= n; k++) {
            if (i + k >= len || (s[i + k] & 0xc0) != 0x80)
                return i;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return i;
        i += n + 1;
    }
    return len;
}

static int by_key(const void *a, const void *b)
{
    return strcmp((*(const cJSON *const *)a)->string, (*(const cJSON *const *)b)->string);
}

/* Member limits and duplicate keys, recursively (depth is already bounded). */
static int check_objects(const cJSON *it, lw_error *err)
{
    const cJSON *c;
    if (cJSON_IsObject(it)) {
        size_t n = 0;
        cJSON_ArrayForEach(c, it)
            n++;
        if (n > LWD_JSON_MAX_MEMBERS) {
            snprintf(err->message, sizeof err->message,
                     "an object has %zu members; at most %d", n, LWD_JSON_MAX_MEMBERS);
            return -1;
        }
        if (n > 1) {
            const cJSON *small[16]; /* every object of the API fits: no malloc per request */
            const cJSON **v = n <= 16 ? small : malloc(n * sizeof *v);
            size_t k = 0;
            if (!v) {
                snprintf(err->message, sizeof err->message, "out of memory");
                return -1;
            }
            cJSON_ArrayForEach(c, it)
                v[k++] = c;
            qsort(v, n, sizeof *v, by_key);
            for (k = 1; k < n; k++)
                if (strcmp(v[k - 1]->string, v[k]->string) == 0) {
                    snprintf(err->message, sizeof err->message, "key \"%.64s\" appears twice",
                             v[k]->string);
                    snprintf(err->field, sizeof err->field, "%.64s", v[k]->string);
                    if (v != small)
                        free(v);
                    return -1;
                }
            if (v != small)
                free(v);
        }
    }
    if (cJSON_IsObject(it) || cJSON_IsArray(it))
        cJSON_ArrayForEach(c, it)
            if (check_objects(c, err) != 0)
                return -1;
    return 0;
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static cJSON *fail(lw_error *err, const char *fmt, size_t at)
{
    err->code = LW_EINVAL;
    err->field[0] = '\0';
    snprintf(err->message, sizeof err->message, fmt, at);
    return NULL;
}

cJSON *body_parse(const char *buf, size_t len, lw_error *err)
{
    memset(err, 0, sizeof *err);
    size_t i = 0;
    while (i < len && is_ws(buf[i]))
        i++;
    if (i == len) {
        err->code = LW_EINVAL;
        snprintf(err->message, sizeof err->message, "the request needs a JSON body");
        return NULL;
    }
    if (memchr(buf, '\0', len))
        return fail(err, "the body holds a NUL byte (at offset %zu)",
                    (size_t)((const char *)memchr(buf, '\0', len) - buf));
    if (body_json_depth(buf, len) > LWD_JSON_MAX_DEPTH) {
        err->code = LW_EINVAL;
        snprintf(err->message, sizeof err->message, "JSON nested deeper than %d levels",
                 LWD_JSON_MAX_DEPTH);
        return NULL;
    }
    size_t bad = utf8_invalid_at((const unsigned char *)buf, len);
    if (bad != len)
        return fail(err, "the body is not UTF-8 (at byte %zu)", bad);
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!doc) {
        size_t at = end && end >= buf ? (size_t)(end - buf) : 0;
        const char *e = cJSON_GetErrorPtr();
        if (e && e >= buf && e <= buf + len)
            at = (size_t)(e - buf);
        return fail(err, "malformed JSON near byte %zu", at);
    }
    size_t k = end ? (size_t)(end - buf) : len;
    while (k < len && is_ws(buf[k]))
        k++;
    if (k != len) {
        cJSON_Delete(doc);
        return fail(err, "unexpected bytes after the JSON value (at byte %zu)", k);
    }
    if (check_objects(doc, err) != 0) {
        err->code = LW_EINVAL;
        cJSON_Delete(doc);
        return NULL;
    }
    return doc;
}
