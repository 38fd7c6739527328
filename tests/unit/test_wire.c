/*
 * test_wire.c -- the wire format (server/wire.c) and the `lossweight` tool's
 * command-line contract: strict parsing with named fields, canonical specs,
 * bit-exact numbers, state documents, replay's error handling.
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
#include <sys/wait.h>
#include <unistd.h>

#include "lossweight.h"
#include "wire.h"

/* Parse a spec from text; returns the lw code and fills err. */
static int parse_spec_text(const char *text, wire_spec *s, lw_error *err)
{
    cJSON *j = cJSON_Parse(text);
    assert_non_null(j);
    int rc = wire_parse_spec(j, NULL, s, err);
    cJSON_Delete(j);
    return rc;
}

static void expect_spec_error(const char *text, const char *field)
{
    wire_spec s;
    lw_error err;
    int rc = parse_spec_text(text, &s, &err);
    if (rc == 0) {
        /* Some errors belong to the library (parameters, priors). */
        lw_job *job = NULL;
        rc = lw_job_create(&s.lib, &job, &err);
        lw_job_free(job);
        wire_spec_free(&s);
    }
    if (rc == 0 || strcmp(err.field, field) != 0)
        print_error("spec %s: rc %d field \"%s\" (%s), wanted field \"%s\"\n", text, rc, err.field,
                    err.message, field);
    assert_int_not_equal(rc, 0);
    assert_string_equal(err.field, field);
    assert_true(strlen(err.message) > 0);
}

static void test_spec_errors_name_the_field(void **state)
{
    (void)state;
    expect_spec_error("[]", "");
    expect_spec_error("{\"tasks\":[\"a\"]}", "method");
    expect_spec_error("{\"method\":\"ew\"}", "tasks");
    expect_spec_error("{\"tasks\":[],\"method\":\"ew\"}", "tasks");
    expect_spec_error("{\"tasks\":[\"a\"],\"method\":7}", "method");
    expect_spec_error("{\"tasks\":[\"a\"],\"method\":\"ew\",\"colour\":1}", "colour");
    expect_spec_error("{\"tasks\":[\"a\"],\"method\":\"ew\",\"method\":\"uw\"}", "method");
    expect_spec_error("{\"tasks\":[\"a\",\"a\"],\"method\":\"ew\"}", "tasks[1]");
    expect_spec_error("{\"tasks\":[\"a\",3],\"method\":\"ew\"}", "tasks[1]");
    expect_spec_error("{\"tasks\":[{\"nom\":\"a\"}],\"method\":\"ew\"}", "tasks[0].nom");
    expect_spec_error("{\"tasks\":[{\"label_var\":1}],\"method\":\"ew\"}", "tasks[0].name");
    expect_spec_error("{\"tasks\":[{\"name\":\"a\",\"class_freq\":[0.5,\"x\"]}],\"method\":\"ew\"}",
                      "tasks[0].class_freq[1]");
    expect_spec_error("{\"tasks\":[{\"name\":\"a\",\"classes\":1.5}],\"method\":\"ew\"}",
                      "tasks[0].classes");
    expect_spec_error("{\"tasks\":[\"a\"],\"method\":\"ew\",\"world_size\":0}", "world_size");
    expect_spec_error("{\"tasks\":[\"a\"],\"method\":\"ew\",\"world_size\":2.5}", "world_size");
    expect_spec_error("{\"tasks\":[\"a\"],\"method\":\"ew\",\"world_size\":2,\"min_ranks\":3}",
                      "min_ranks");
    expect_spec_error("{\"tasks\":[\"a\"],\"method\":\"ew\",\"sync\":\"lazy\"}", "sync");
    expect_spec_error("{\"tasks\":[\"a\"],\"method\":\"ew\",\"seed\":-1}", "seed");
    expect_spec_error("{\"tasks\":[\"a\"],\"method\":\"ew\",\"params\":[1]}", "params");
    expect_spec_error("{\"tasks\":[\"a\"],\"method\":\"ew\",\"params\":{\"x\":{}}}", "params.x");
    expect_spec_error("{\"tasks\":[\"a\"],\"method\":\"ew\",\"params\":{\"x\":1}}", "params.x");
    expect_spec_error("{\"tasks\":[\"a\"],\"method\":\"nope\"}", "method");
    expect_spec_error("{\"tasks\":[\"a\",\"b\"],\"method\":\"manual\",\"params\":{\"weights\":[1]}}",
                      "params.weights");
    expect_spec_error(
        "{\"tasks\":[\"a\",\"b\"],\"method\":\"manual\",\"params\":{\"weights\":[1,-1]}}",
        "params.weights[1]");
    expect_spec_error(
        "{\"tasks\":[\"a\",\"b\"],\"method\":\"manual\",\"params\":{\"normalize\":\"both\"}}",
        "params.normalize");
    expect_spec_error(
        "{\"tasks\":[\"a\",\"b\"],\"method\":\"manual\",\"params\":{\"normalize\":1}}",
        "params.normalize");
    expect_spec_error(
        "{\"tasks\":[\"a\",\"b\"],\"method\":\"manual\",\"params\":{\"weights\":[0,0]}}",
        "params.weights");
    /* 1e999 parses to infinity: never a parameter. */
    expect_spec_error(
        "{\"tasks\":[\"a\",\"b\"],\"method\":\"manual\",\"params\":{\"weights\":[1,1e999]}}",
        "params.weights[1]");
}

static char *canonical(const char *text)
{
    wire_spec s;
    lw_error err;
    lw_job *job;
    assert_int_equal(parse_spec_text(text, &s, &err), 0);
    assert_int_equal(lw_job_create(&s.lib, &job, &err), 0);
    cJSON *c = wire_spec_to_json(&s, job);
    char *out = wire_print(c);
    cJSON_Delete(c);
    lw_job_free(job);
    wire_spec_free(&s);
    return out;
}

static void test_canonical_spec_fills_defaults_and_ignores_order(void **state)
{
    (void)state;
    char *a = canonical("{\"tasks\":[\"ctr\",\"cvr\"],\"method\":\"manual\"}");
    char *b = canonical("{\"method\":\"manual\",\"params\":{\"normalize\":\"none\",\"weights\":[1,1]},"
                        "\"tasks\":[\"ctr\",\"cvr\"],\"world_size\":1,\"seed\":0}");
    assert_string_equal(a, b);
    assert_non_null(strstr(a, "\"normalize\":\"none\""));
    assert_non_null(strstr(a, "\"weights\":[1,1]"));
    assert_non_null(strstr(a, "\"sync\":\"barrier\""));
    assert_non_null(strstr(a, "\"barrier_timeout_ms\":60000"));
    assert_non_null(strstr(a, "\"min_ranks\":1"));
    char *c = canonical("{\"tasks\":[\"ctr\",\"cvr\"],\"method\":\"manual\",\"world_size\":4}");
    assert_string_not_equal(a, c);
    assert_non_null(strstr(c, "\"min_ranks\":4"));
    char *d = canonical("{\"tasks\":[{\"name\":\"ctr\",\"class_freq\":[0.97,0.03]},\"cvr\"],"
                        "\"method\":\"ew\"}");
    assert_non_null(strstr(d, "{\"name\":\"ctr\",\"class_freq\":[0.97,0.03]}"));
    free(a);
    free(b);
    free(c);
    free(d);
}

static void expect_report_error(const char *text, size_t T, int need_rank, const char *field)
{
    cJSON *j = cJSON_Parse(text);
    assert_non_null(j);
    double buf[64];
    wire_report r;
    lw_error err;
    int rc = wire_parse_report(j, T, need_rank, buf, &r, &err);
    cJSON_Delete(j);
    if (rc == 0 || strcmp(err.field, field) != 0)
        print_error("report %s: rc %d field \"%s\", wanted \"%s\"\n", text, rc, err.field, field);
    assert_int_equal(rc, LW_EINVAL);
    assert_string_equal(err.field, field);
}

static void test_report_errors_name_the_field(void **state)
{
    (void)state;
    expect_report_error("{\"step\":0,\"losses\":[1,2]}", 2, 1, "rank");
    expect_report_error("{\"rank\":0,\"losses\":[1,2]}", 2, 1, "step");
    expect_report_error("{\"rank\":-1,\"step\":0}", 2, 1, "rank");
    expect_report_error("{\"rank\":0,\"step\":1.5}", 2, 1, "step");
    expect_report_error("{\"rank\":0,\"step\":\"1\"}", 2, 1, "step");
    expect_report_error("{\"rank\":0,\"step\":0,\"losses\":[1]}", 2, 1, "losses");
    expect_report_error("{\"rank\":0,\"step\":0,\"losses\":[1,null]}", 2, 1, "losses[1]");
    expect_report_error("{\"rank\":0,\"step\":0,\"losses\":[1,1e999]}", 2, 1, "losses[1]");
    expect_report_error("{\"rank\":0,\"step\":0,\"grad_norm\":[1,1]}", 2, 1, "grad_norm");
    expect_report_error("{\"rank\":0,\"step\":0,\"gram\":[[1,0]]}", 2, 1, "gram");
    expect_report_error("{\"rank\":0,\"step\":0,\"gram\":[[1,0],[0]]}", 2, 1, "gram[1]");
    expect_report_error("{\"rank\":0,\"step\":0,\"gram\":[[1,0],[0,true]]}", 2, 1, "gram[1][1]");
    expect_report_error("{\"rank\":0,\"step\":0,\"epoch\":-2}", 2, 1, "epoch");
    expect_report_error("{\"rank\":0,\"step\":0,\"samples\":0}", 2, 1, "samples");
    expect_report_error("{\"rank\":0,\"step\":0,\"step\":1}", 2, 1, "step");
    expect_report_error("[1,2]", 2, 0, "");
}

static void test_report_parses_every_input(void **state)
{
    (void)state;
    cJSON *j = cJSON_Parse("{\"rank\":3,\"step\":1041,\"epoch\":2,\"losses\":[0.41,2.9],"
                           "\"grad_norms\":[0.8,5.1],\"gram\":[[0.64,-0.2],[-0.2,26.0]],"
                           "\"losses_after\":[0.4,2.8],\"samples\":32}");
    double buf[64];
    wire_report r;
    lw_error err;
    assert_int_equal(wire_parse_report(j, 2, 1, buf, &r, &err), 0);
    cJSON_Delete(j);
    assert_int_equal(r.rank, 3);
    assert_int_equal(r.step, 1041);
    assert_int_equal(r.epoch, 2);
    assert_true(r.has_samples && r.samples == 32);
    assert_true(r.losses[1] == 2.9 && r.grad_norms[0] == 0.8 && r.losses_after[1] == 2.8);
    assert_true(r.gram[1] == -0.2 && r.gram[2] == -0.2 && r.gram[3] == 26.0);
    lw_input in = wire_report_input(&r);
    cJSON *back = wire_input_to_json(&in, 2);
    char *s = wire_print(back);
    assert_string_equal(s, "{\"step\":1041,\"epoch\":2,\"losses\":[0.41,2.9],\"grad_norms\":[0.8,5.1],"
                           "\"gram\":[[0.64,-0.2],[-0.2,26]],\"losses_after\":[0.4,2.8]}");
    free(s);
    cJSON_Delete(back);
}

/* Every double survives print + parse bit for bit, and prints short. */
static void test_numbers_round_trip_bit_exact(void **state)
{
    (void)state;
    double v[2000];
    uint64_t x = 88172645463325252ULL;
    for (size_t i = 0; i < 2000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double u = (double)(x >> 11) * 0x1.0p-53;
        v[i] = (i % 3 == 0) ? u : (i % 3 == 1) ? (u - 0.5) * pow(10, (double)(i % 40) - 20)
                                               : u * 1e300;
    }
    v[0] = 0.1 + 0.2; /* cJSON's own printing turns this into 0.3 */
    v[1] = 5e-324;
    v[2] = 1.7976931348623157e308;
    cJSON *a = wire_doubles(v, 2000);
    char *s = wire_print(a);
    cJSON_Delete(a);
    cJSON *b = cJSON_Parse(s);
    assert_non_null(b);
    for (size_t i = 0; i < 2000; i++) {
        double got = cJSON_GetArrayItem(b, (int)i)->valuedouble;
        assert_memory_equal(&got, &v[i], sizeof got);
    }
    cJSON_Delete(b);
    free(s);
    cJSON *c = wire_doubles((double[]){0.5, 1, 0.1}, 3);
    s = wire_print(c);
    assert_string_equal(s, "[0.5,1,0.1]");
    free(s);
    cJSON_Delete(c);
}

static void test_methods_document_lists_the_table(void **state)
{
    (void)state;
    cJSON *doc = wire_methods_json();
    const cJSON *ms = cJSON_GetObjectItem(doc, "methods");
    assert_int_equal((size_t)cJSON_GetArraySize(ms), lw_method_count());
    for (size_t i = 0; i < lw_method_count(); i++) {
        const lw_method_info *m = lw_method_at(i);
        const cJSON *o = cJSON_GetArrayItem(ms, (int)i);
        assert_string_equal(cJSON_GetObjectItem(o, "name")->valuestring, m->name);
        assert_int_equal((size_t)cJSON_GetArraySize(cJSON_GetObjectItem(o, "params")), m->n_params);
        assert_true(strlen(cJSON_GetObjectItem(o, "summary")->valuestring) > 0);
        assert_true(cJSON_GetArraySize(cJSON_GetObjectItem(o, "inputs")) >= (m->servable ? 1 : 0));
        for (size_t k = 0; k < m->n_params; k++)
            assert_true(m->params[k].doc && strlen(m->params[k].doc) > 0);
    }
    cJSON_Delete(doc);
}

static void test_state_document_round_trip(void **state)
{
    (void)state;
    wire_spec s;
    lw_error err;
    lw_job *job, *copy;
    assert_int_equal(parse_spec_text("{\"tasks\":[\"a\",\"b\"],\"method\":\"manual\"}", &s, &err), 0);
    assert_int_equal(lw_job_create(&s.lib, &job, &err), 0);
    assert_int_equal(lw_job_create(&s.lib, &copy, &err), 0);
    double w[2];
    lw_input in = {.step = 0, .epoch = -1, .losses = (double[]){1, 2}};
    assert_int_equal(lw_job_step(job, &in, w, &err), 0);
    /* Trees built by wire_* hold raw number text: print and parse, as the
     * daemon does with a request body. */
    cJSON *built = wire_state_json(job);
    char *text = wire_print(built);
    cJSON_Delete(built);
    cJSON *st = cJSON_Parse(text);
    free(text);
    assert_int_equal(wire_state_from_json(st, copy, &err), 0);
    assert_int_equal(lw_job_steps_done(copy), 1);
    cJSON_AddItemToObject(st, "bogus", cJSON_CreateDoubleArray(w, 1));
    assert_int_equal(wire_state_from_json(st, copy, &err), LW_EINVAL);
    assert_string_equal(err.field, "state.bogus");
    cJSON_DeleteItemFromObject(st, "bogus");
    cJSON_DeleteItemFromObject(st, "steps_done");
    assert_int_equal(wire_state_from_json(st, copy, &err), LW_EINVAL);
    assert_string_equal(err.field, "state.steps_done");
    cJSON_Delete(st);
    lw_job_free(job);
    lw_job_free(copy);
    wire_spec_free(&s);
}

/* Run the tool with `input` on stdin; returns exit status, fills out/errout. */
static int run_tool(const char *args, const char *input, char *out, size_t outn, char *errout,
                    size_t errn)
{
    const char *tool = getenv("LW_TOOL");
    assert_non_null(tool);
    char in_path[] = "/tmp/lw-wire-in-XXXXXX", err_path[] = "/tmp/lw-wire-err-XXXXXX";
    int fd = mkstemp(in_path);
    assert_true(write(fd, input, strlen(input)) == (ssize_t)strlen(input));
    close(fd);
    close(mkstemp(err_path));
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s < %s 2> %s", tool, args, in_path, err_path);
    FILE *p = popen(cmd, "r");
    size_t n = fread(out, 1, outn - 1, p);
    out[n] = 0;
    int st = pclose(p);
    FILE *e = fopen(err_path, "r");
    n = fread(errout, 1, errn - 1, e);
    errout[n] = 0;
    fclose(e);
    unlink(in_path);
    unlink(err_path);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_tool_replay_bad_line_reports_and_continues(void **state)
{
    (void)state;
    char out[4096], err[4096];
    int rc = run_tool("replay",
                      "{\"tasks\":[\"a\",\"b\"],\"method\":\"manual\",\"params\":{\"weights\":[1,3]}}\n"
                      "{\"step\":0,\"losses\":[1,2]}\n"
                      "\n"
                      "{\"step\":1,\"losses\":[1,\"x\"]}\n"
                      "{\"step\":2,\"losses\":[1,2]\n"
                      "{\"step\":3,\"losses\":[1,2]}\n",
                      out, sizeof out, err, sizeof err);
    assert_int_equal(rc, 2);
    assert_string_equal(out, "{\"step\":0,\"weights\":[1,3],\"method\":\"manual\",\"status\":\"decided\"}\n"
                             "{\"step\":3,\"weights\":[1,3],\"method\":\"manual\",\"status\":\"decided\"}\n");
    assert_non_null(strstr(err, "line 4: field losses[1]"));
    assert_non_null(strstr(err, "line 5: not valid JSON"));
}

static void test_tool_replay_bad_spec_exits_2(void **state)
{
    (void)state;
    char out[4096], err[4096];
    int rc = run_tool("replay", "{\"tasks\":[\"a\"],\"method\":\"uw\",\"params\":{\"lr\":-1}}\n"
                                "{\"step\":0,\"losses\":[1]}\n",
                      out, sizeof out, err, sizeof err);
    assert_int_equal(rc, 2);
    assert_string_equal(out, "");
    assert_non_null(strstr(err, "line 1"));
    rc = run_tool("replay", "", out, sizeof out, err, sizeof err);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "no job spec"));
    rc = run_tool("frobnicate", "", out, sizeof out, err, sizeof err);
    assert_int_equal(rc, 2);
}

static void test_tool_methods_prints_the_document(void **state)
{
    (void)state;
    static char out[1 << 20];
    char err[4096];
    assert_int_equal(run_tool("methods", "", out, sizeof out, err, sizeof err), 0);
    cJSON *doc = cJSON_Parse(out);
    assert_non_null(doc);
    cJSON *mine = wire_methods_json();
    char *a = wire_print(doc), *b = wire_print(mine);
    assert_string_equal(a, b);
    free(a);
    free(b);
    cJSON_Delete(doc);
    cJSON_Delete(mine);
}

/* The spec the daemon echoes (every default filled in) must itself be a
 * valid spec that creates the same job: clients PUT it back, and state
 * documents carry it. Every servable method, default parameters, plus the
 * variants that switch parameter sets on. */
static void test_canonical_spec_recreates_the_same_job(void **state)
{
    (void)state;
    char text[512];
    for (size_t i = 0; i <= lw_method_count(); i++) {
        const lw_method_info *m = i < lw_method_count() ? lw_method_at(i) : NULL;
        if (m && !m->servable)
            continue;
        if (m)
            snprintf(text, sizeof text,
                     "{\"tasks\":[{\"name\":\"a\",\"label_var\":2},\"b\",\"c\"],"
                     "\"method\":\"%s\"}", m->name);
        else
            snprintf(text, sizeof text, "{\"tasks\":[\"a\",\"b\",\"c\"],\"method\":\"stch\","
                                        "\"params\":{\"variant\":\"linear\",\"mu\":0.5}}");
        if (m && strcmp(m->name, "prior_norm") == 0)
            snprintf(text, sizeof text,
                     "{\"tasks\":[{\"name\":\"a\",\"label_var\":2},{\"name\":\"b\","
                     "\"class_freq\":[0.9,0.1]},{\"name\":\"c\",\"prior_loss\":0.7}],"
                     "\"method\":\"prior_norm\"}");
        char *first = canonical(text);
        char *second = canonical(first);
        if (strcmp(first, second) != 0)
            print_error("%s\n%s\n", first, second);
        assert_string_equal(first, second);
        free(first);
        free(second);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_errors_name_the_field),
        cmocka_unit_test(test_canonical_spec_fills_defaults_and_ignores_order),
        cmocka_unit_test(test_report_errors_name_the_field),
        cmocka_unit_test(test_report_parses_every_input),
        cmocka_unit_test(test_numbers_round_trip_bit_exact),
        cmocka_unit_test(test_methods_document_lists_the_table),
        cmocka_unit_test(test_state_document_round_trip),
        cmocka_unit_test(test_tool_replay_bad_line_reports_and_continues),
        cmocka_unit_test(test_tool_replay_bad_spec_exits_2),
        cmocka_unit_test(test_tool_methods_prints_the_document),
        cmocka_unit_test(test_canonical_spec_recreates_the_same_job),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
