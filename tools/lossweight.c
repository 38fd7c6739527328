/*
 * lossweight -- the command-line tool.
 *
 *   lossweight replay [--quiet-errors]   JSON lines in: a job spec, then one input per step
 *                                        (a report body without rank); one decision per
 *                                        line out.
 *   lossweight methods [--pretty]        the method table, the document GET /v1/methods serves
 *   lossweight check [--json] DATA_DIR   will a lossweightd data directory recover, and what
 *                                        is in it (read-only; tools/check.c)
 *
 * replay is how users try a method offline on a logged run and how the
 * reference vectors are checked: it parses with the daemon's own wire code
 * (server/wire.c) and steps the same library, so a job's history fed to it
 * reproduces the daemon's decisions bit for bit.
 *
 * A bad input line is reported on stderr with its line number and field;
 * nothing is printed for it, the job is unchanged (exactly as the daemon
 * answers a bad report with a 4xx), the remaining lines are still replayed,
 * and the exit status is 2. A bad spec line ends the run with status 2.
 */
#include "check.h"
#include "lossweight.h"
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fputs("usage: lossweight replay < lines.jsonl\n"
          "       lossweight methods [--pretty]\n",
          f);
    check_usage(f);
    fputs("       lossweight --version | --help\n"
          "\n"
          "replay: the first line is a job spec (the body of PUT /v1/jobs/{job}), every\n"
          "        later line one step's input (a report body; \"rank\" is ignored). Prints\n"
          "        one decision per step: {\"step\":..,\"weights\":[..],\"method\":..,\"status\":\"decided\"}.\n"
          "        A bad line: a message with its line number on stderr, nothing printed for\n"
          "        it, the job unchanged; the exit status is then 2.\n"
          "methods: prints every weighting method with its inputs, parameters and state.\n"
          "check:   reads a lossweightd data directory as the daemon's start-up would\n"
          "         (the same code), changing nothing, and prints the snapshot used, the\n"
          "         segments replayed, every job (method, tasks, world_size, decided and\n"
          "         open steps) and a verdict: ok; torn tail (the daemon would drop it on\n"
          "         start: still status 0); corrupt (the daemon would refuse to start:\n"
          "         file, offset, reason; status 1). --json: the same as one JSON document.\n"
          "         --max-tasks, --max-world, --history: as given to lossweightd (a job\n"
          "         beyond its limits does not load; defaults are the daemon's). A daemon\n"
          "         running on the directory is noted, and the check still runs.\n"
          "         Status: 0 recovers, 1 would not (or unreadable), 2 usage error.\n",
          f);
}

static int cmd_methods(int argc, char **argv)
{
    int pretty = argc > 2 && strcmp(argv[2], "--pretty") == 0;
    cJSON *doc = wire_methods_json();
    char *s = pretty ? cJSON_Print(doc) : wire_print(doc);
    cJSON_Delete(doc);
    if (!s) {
        fputs("lossweight: out of memory\n", stderr);
        return 1;
    }
    puts(s);
    free(s);
    return 0;
}

static void line_error(size_t lineno, const lw_error *err)
{
    if (err->field[0])
        fprintf(stderr, "lossweight: line %zu: field %s: %s\n", lineno, err->field,
                err->message);
    else
        fprintf(stderr, "lossweight: line %zu: %s\n", lineno, err->message);
}

static int cmd_replay(void)
{
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t n;
    lw_job *job = NULL;
    wire_spec spec;
    double *buf = NULL, *w = NULL;
    int status = 0;
    lw_error err;

    while ((n = getline(&line, &cap, stdin)) > 0) {
        lineno++;
        const char *p = line;
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            p++;
        if (!*p)
            continue;
        cJSON *json = cJSON_ParseWithLength(line, (size_t)n);
        if (!json) {
            fprintf(stderr, "lossweight: line %zu: not valid JSON\n", lineno);
            if (!job) {
                status = 2;
                break;
            }
            status = 2;
            continue;
        }
        if (!job) {
            int rc = wire_parse_spec(json, NULL, &spec, &err);
            if (rc == 0) {
                rc = lw_job_create(&spec.lib, &job, &err);
                if (rc)
                    wire_spec_free(&spec);
            }
            cJSON_Delete(json);
            if (rc) {
                line_error(lineno, &err);
                status = 2;
                break;
            }
            size_t T = lw_job_tasks(job);
            buf = malloc(wire_report_buf_len(T) * sizeof(double));
            w = malloc(T * sizeof(double));
            if (!buf || !w) {
                fputs("lossweight: out of memory\n", stderr);
                status = 1;
                break;
            }
            continue;
        }
        size_t T = lw_job_tasks(job);
        wire_report r;
        int rc = wire_parse_report(json, T, 0, buf, &r, &err);
        cJSON_Delete(json);
        if (rc == 0) {
            lw_input in = wire_report_input(&r);
            rc = lw_job_step(job, &in, w, &err);
        }
        if (rc) {
            line_error(lineno, &err);
            status = 2;
            continue;
        }
        cJSON *out = cJSON_CreateObject();
        char stepbuf[32]; /* the step as an exact integer */
        snprintf(stepbuf, sizeof stepbuf, "%lld", (long long)r.step);
        cJSON_AddItemToObject(out, "step", cJSON_CreateRaw(stepbuf));
        cJSON_AddItemToObject(out, "weights", wire_doubles(w, T));
        cJSON_AddStringToObject(out, "method", lw_job_method(job)->name);
        cJSON_AddStringToObject(out, "status", "decided");
        char *s = wire_print(out);
        cJSON_Delete(out);
        if (!s) {
            fputs("lossweight: out of memory\n", stderr);
            status = 1;
            break;
        }
        puts(s);
        free(s);
    }
    if (!job && status == 0 && lineno == 0) {
        fputs("lossweight: no job spec on stdin\n", stderr);
        status = 2;
    }
    if (job) {
        lw_job_free(job);
        wire_spec_free(&spec);
    }
    free(buf);
    free(w);
    free(line);
    if (fflush(stdout) != 0)
        status = 1;
    return status;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("lossweight %s\n", LW_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "replay") == 0)
        return cmd_replay();
    if (strcmp(argv[1], "methods") == 0)
        return cmd_methods(argc, argv);
    if (strcmp(argv[1], "check") == 0)
        return cmd_check(argc - 1, argv + 1);
    fprintf(stderr, "lossweight: unknown command \"%s\"\n", argv[1]);
    usage(stderr);
    return 2;
}
