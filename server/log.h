/*
 * log.h -- operator logs: one line per event on stderr.
 *
 * A line is an event name plus key/value fields, printed either as
 * key=value text or as one JSON object, so the same call site serves both
 * --log-format text and json:
 *
 *   log_begin(LL_INFO, "job_created");
 *   log_str("job", id);
 *   log_int("tasks", T);
 *   log_end();
 *
 * The level is tested in log_begin(); a filtered event costs one compare and
 * the field calls are no-ops. The loop thread is the only caller (the line
 * is built in a static buffer). Never pass a secret (tokens) to these.
 */
#ifndef LWD_LOG_H
#define LWD_LOG_H

enum { LL_DEBUG = 0, LL_INFO = 1, LL_WARN = 2, LL_ERROR = 3 };
enum { LOG_FMT_TEXT = 0, LOG_FMT_JSON = 1 };

void log_setup(int level, int format);
/* "debug", "info", "warn" (or "warning"), "error": the level, else -1. */
int log_parse_level(const char *s);
/* "text" or "json": the format, else -1. */
int log_parse_format(const char *s);
int log_enabled(int level);

void log_begin(int level, const char *event);
void log_str(const char *key, const char *val);
void log_int(const char *key, long long v);
void log_dbl(const char *key, double v);
void log_end(void);

/* One event with a single "msg" field. */
void log_msg(int level, const char *event, const char *msg);

/* SIGHUP: reopen the log destination (stderr is inherited: nothing to do). */
void log_reopen(void);

#endif /* LWD_LOG_H */
