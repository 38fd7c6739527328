/*
 * report_load.c -- a small single-threaded HTTP load generator for
 * durability_bench.sh, with redis-benchmark's client model (one thread,
 * epoll, N keep-alive connections, one request in flight on each), so
 * lossweightd and redis-server can be compared with the same kind of
 * client as well as with wrk's thread-per-connection model.
 *
 * Connection i posts the reports of job PREFIX-i (world_size 1, created
 * beforehand) for steps 0, 1, 2, ...: nothing conflicts. Every answer must
 * be HTTP 2xx with a Content-Length body; anything else is counted and
 * makes the exit status 1. Prints "requests N seconds S rps R non2xx K".
 *
 *   report_load HOST PORT CONNECTIONS SECONDS PREFIX
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct conn {
    int fd;
    long step;
    char in[8192];
    size_t got;
} conn;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *host, *prefix;
static int port;

static int send_req(conn *c, int i)
{
    char body[256], req[768];
    int bl = snprintf(body, sizeof body,
                      "{\"rank\":0,\"step\":%ld,\"losses\":[0.%03ld,1.%03ld,2.5,0.75]}", c->step,
                      c->step % 997, c->step % 991);
    int n = snprintf(req, sizeof req,
                     "POST /v1/jobs/%s-%d/reports HTTP/1.1\r\nHost: %s:%d\r\n"
                     "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                     prefix, i, host, port, bl, body);
    c->step++;
    c->got = 0;
    return send(c->fd, req, (size_t)n, MSG_NOSIGNAL) == n ? 0 : -1;
}

/* A whole response in c->in? 1 and *status; 0: need more; -1: malformed. */
static int parse(conn *c, int *status)
{
    c->in[c->got] = '\0';
    char *end = strstr(c->in, "\r\n\r\n");
    if (!end)
        return 0;
    if (sscanf(c->in, "HTTP/1.%*d %d", status) != 1)
        return -1;
    char *cl = strcasestr(c->in, "\r\ncontent-length:");
    if (!cl || cl > end)
        return -1;
    long len = atol(cl + 17);
    return (size_t)(end + 4 - c->in) + (size_t)len <= c->got ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: report_load HOST PORT CONNECTIONS SECONDS PREFIX\n");
        return 2;
    }
    host = argv[1], port = atoi(argv[2]), prefix = argv[5];
    int nc = atoi(argv[3]);
    double secs = atof(argv[4]);
    conn *cs = calloc((size_t)nc, sizeof *cs);
    int ep = epoll_create1(0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (!cs || ep < 0 || inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "report_load: setup failed\n");
        return 2;
    }
    for (int i = 0; i < nc; i++) {
        int one = 1;
        cs[i].fd = socket(AF_INET, SOCK_STREAM, 0);
        if (cs[i].fd < 0 || connect(cs[i].fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
            perror("report_load: connect");
            return 2;
        }
        setsockopt(cs[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
    }
    long done = 0, bad = 0;
    double t0 = now(), stop = t0 + secs;
    for (int i = 0; i < nc; i++)
        if (send_req(&cs[i], i) != 0) {
            perror("report_load: send");
            return 2;
        }
    int open = nc;
    struct epoll_event evs[256];
    while (open > 0) {
        int n = epoll_wait(ep, evs, 256, 1000);
        if (n < 0 && errno != EINTR)
            break;
        for (int k = 0; k < n; k++) {
            int i = (int)evs[k].data.u32, st;
            conn *c = &cs[i];
            ssize_t r = recv(c->fd, c->in + c->got, sizeof c->in - 1 - c->got, 0);
            if (r <= 0) {
                fprintf(stderr, "report_load: connection %d closed\n", i);
                return 1;
            }
            c->got += (size_t)r;
            int p = parse(c, &st);
            if (p == 0)
                continue;
            if (p < 0 || st < 200 || st > 299) {
                bad++;
                if (bad < 5)
                    fprintf(stderr, "report_load: %.200s\n", c->in);
            }
            done++;
            if (now() >= stop) {
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                open--;
            } else if (send_req(c, i) != 0) {
                perror("report_load: send");
                return 1;
            }
        }
    }
    double dt = now() - t0;
    printf("requests %ld seconds %.3f rps %.1f non2xx %ld\n", done, dt, (double)done / dt, bad);
    free(cs);
    return bad ? 1 : 0;
}
