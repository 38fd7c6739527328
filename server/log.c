/*
 * log.c -- the line builder behind log.h.
 *
 * Each event is assembled in a static buffer and written with a single
 * write(2) to stderr, so lines from one process never interleave. Values
 * are cut at LOG_VALUE_MAX bytes to keep a line bounded whatever a client
 * sent (job ids and paths are the only client-supplied strings logged).
 * Text values are quoted when they hold spaces, quotes, '=' or control
 * characters; JSON values are escaped per RFC 8259.
 */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 8192
#define LOG_VALUE_MAX 512

static struct {
    int level;
    int format;
    int active; /* between log_begin and log_end of an enabled event */
    size_t len;
    char buf[LOG_LINE_MAX];
} L = {LL_INFO, LOG_FMT_TEXT, 0, 0, ""};

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_setup(int level, int format)
{
    L.level = level;
    L.format = format;
}

int log_parse_level(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, level_names[i]) == 0)
            return i;
    if (strcasecmp(s, "warning") == 0)
        return LL_WARN;
    return -1;
}

int log_parse_format(const char *s)
{
    if (strcmp(s, "text") == 0)
        return LOG_FMT_TEXT;
    if (strcmp(s, "json") == 0)
        return LOG_FMT_JSON;
    return -1;
}

int log_enabled(int level) { return level >= L.level; }

/* Append n bytes, keeping room for the closing "}\n". */
static void put(const char *s, size_t n)
{
    size_t room = sizeof L.buf - 3 - L.len;
    if (n > room)
        n = room;
    memcpy(L.buf + L.len, s, n);
    L.len += n;
}

static void puts_(const char *s) { put(s, strlen(s)); }

/* v[0 .. n) in double quotes, '"' and '\\' backslashed; control bytes as
 * \u00XX (JSON) or \xXX (text, which also escapes DEL). */
static void put_quoted(const char *v, size_t n, int json)
{
    puts_("\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            put(esc, 2);
        } else if (c < 0x20 || (!json && c == 0x7f)) {
            put(esc, (size_t)snprintf(esc, sizeof esc, json ? "\\u%04x" : "\\x%02x", c));
        } else {
            put((const char *)&c, 1);
        }
    }
    puts_("\"");
}

static void put_json_string(const char *v) { put_quoted(v, strnlen(v, LOG_VALUE_MAX), 1); }

static void put_text_value(const char *v)
{
    size_t n = strnlen(v, LOG_VALUE_MAX);
    int quote = n == 0;
    for (size_t i = 0; i < n && !quote; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f)
            quote = 1;
    }
    if (quote)
        put_quoted(v, n, 0);
    else
        put(v, n);
}

/* key, separator; the value follows. */
static void put_key(const char *key)
{
    if (L.format == LOG_FMT_JSON) {
        puts_(",");
        put_json_string(key);
        puts_(":");
    } else {
        puts_(" ");
        puts_(key);
        puts_("=");
    }
}

void log_begin(int level, const char *event)
{
    L.active = level >= L.level;
    if (!L.active)
        return;
    struct timespec ts;
    struct tm tm;
    char when[40];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t k = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + k, sizeof when - k, ".%03ldZ", ts.tv_nsec / 1000000);
    L.len = 0;
    if (L.format == LOG_FMT_JSON) {
        puts_("{\"ts\":\"");
        puts_(when);
        puts_("\",\"level\":\"");
        puts_(level_names[level]);
        puts_("\",\"event\":");
        put_json_string(event);
    } else {
        puts_(when);
        puts_(" level=");
        puts_(level_names[level]);
        puts_(" event=");
        put_text_value(event);
    }
}

void log_str(const char *key, const char *val)
{
    if (!L.active)
        return;
    put_key(key);
    if (!val)
        val = "";
    if (L.format == LOG_FMT_JSON)
        put_json_string(val);
    else
        put_text_value(val);
}

void log_int(const char *key, long long v)
{
    char b[32];
    if (!L.active)
        return;
    put_key(key);
    snprintf(b, sizeof b, "%lld", v);
    puts_(b);
}

void log_dbl(const char *key, double v)
{
    char b[40];
    if (!L.active)
        return;
    put_key(key);
    if (v != v || v - v != 0) /* NaN/Inf are not JSON numbers */
        snprintf(b, sizeof b, L.format == LOG_FMT_JSON ? "null" : "nan");
    else
        snprintf(b, sizeof b, "%.6g", v);
    puts_(b);
}

void log_end(void)
{
    if (!L.active)
        return;
    if (L.format == LOG_FMT_JSON)
        L.buf[L.len++] = '}';
    L.buf[L.len++] = '\n';
    const char *p = L.buf;
    size_t n = L.len;
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break; /* nowhere to report a failing stderr */
        p += w;
        n -= (size_t)w;
    }
    L.active = 0;
}

void log_msg(int level, const char *event, const char *msg)
{
    log_begin(level, event);
    log_str("msg", msg);
    log_end();
}

void log_reopen(void)
{
    log_msg(LL_INFO, "log_reopen", "logs go to stderr; nothing to reopen");
}
