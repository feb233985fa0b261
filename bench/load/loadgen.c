/*
 * loadgen — the load benchmark's own HTTP client (bench/load.sh).
 *
 * One thread, one epoll loop, C connections, bounded by time (-d) and by a
 * request count (-n). Modes:
 *   keepalive  GET TARGET on persistent connections (wrk's job; used when wrk
 *              is missing, e.g. in the smoke run)
 *   close      the same with "Connection: close": one request per connection
 *   connect    CONNECT HOST:PORT, then GET / with "Connection: close", read to
 *              EOF, close; without -T the GET goes straight to the address
 *              (the "direct" reference)
 * Output: one line of key=value pairs on stdout, e.g.
 *   mode=keepalive requests=123 seconds=1.00 rate=123.0 p50_us=80 p99_us=400
 *   s2xx=123 s403=0 sother=0 errors=0
 * Only 127.0.0.0/8 addresses are accepted (-a); anything else is refused.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum mode { M_KEEPALIVE, M_CLOSE, M_CONNECT };
enum phase { P_CONNECTING, P_CONNECT_SENT, P_REQ_SENT };

struct conn {
    int fd;
    enum phase phase;
    char req_out;          /* request written, waiting for the response */
    uint64_t t_start_ns;   /* request (or cycle) start */
    size_t have;           /* bytes in buf */
    char buf[16384];
    long body_left;        /* -1: unknown (read to EOF) */
    int head_done;
    int status;
    int server_close;      /* response said Connection: close */
};

static struct {
    enum mode mode;
    struct sockaddr_in addr;
    const char *target;     /* request target, e.g. http://h:p/ or / */
    const char *host;       /* Host header */
    const char *extra;      /* -A: one more header line (e.g. Proxy-Authorization: ...) */
    const char *tunnel;     /* CONNECT authority (connect mode) */
    int conns;
    double seconds;
    long max_requests;
    char request[1024];
    size_t request_len;
    char connect_req[512];
    size_t connect_len;
} cfg;

static struct {
    long done, s2xx, s403, sother, errors;
    uint32_t *lat;
    size_t lat_n, lat_cap;
} st;

static int ep;
static volatile sig_atomic_t stop_flag;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void on_signal(int sig) { (void)sig; stop_flag = 1; }

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen -m keepalive|close|connect -a 127.x.y.z:PORT [-r TARGET] [-H HOST]\n"
            "               [-T HOST:PORT] [-c CONNS] [-d SECONDS] [-n MAX_REQUESTS] [-A 'Name: value']\n");
    exit(2);
}

static int parse_addr(const char *s, struct sockaddr_in *sa) {
    char ip[64];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof ip) return -1;
    memcpy(ip, s, (size_t)(colon - s));
    ip[colon - s] = 0;
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, ip, &sa->sin_addr) != 1) return -1;
    /* Loopback only: this tool must never load anything off the machine. */
    if ((ntohl(sa->sin_addr.s_addr) >> 24) != 127) return -1;
    return 0;
}

static void record_latency(uint64_t ns) {
    if (st.lat_n == st.lat_cap) {
        size_t cap = st.lat_cap ? st.lat_cap * 2 : 1u << 16;
        uint32_t *p = realloc(st.lat, cap * sizeof *p);
        if (!p) return;
        st.lat = p;
        st.lat_cap = cap;
    }
    uint64_t us = ns / 1000;
    st.lat[st.lat_n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void conn_open(struct conn *c);

static void conn_close(struct conn *c) {
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
}

static void conn_fail(struct conn *c) {
    if (++st.errors >= 1000000) stop_flag = 1; /* the target is gone: stop */
    conn_close(c);
    if (!stop_flag) conn_open(c);
}

static void reset_response(struct conn *c) {
    c->have = 0;
    c->head_done = 0;
    c->body_left = -1;
    c->status = 0;
    c->server_close = 0;
}

static int send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1; /* requests are small: a full socket buffer is an error */
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void send_request(struct conn *c) {
    reset_response(c);
    if (cfg.mode != M_CONNECT) c->t_start_ns = now_ns();
    if (send_all(c->fd, cfg.request, cfg.request_len) < 0) { conn_fail(c); return; }
    c->phase = P_REQ_SENT;
}

static void conn_open(struct conn *c) {
    reset_response(c);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) { st.errors++; return; }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->t_start_ns = now_ns();
    c->phase = P_CONNECTING;
    int r = connect(c->fd, (struct sockaddr *)&cfg.addr, sizeof cfg.addr);
    if (r < 0 && errno != EINPROGRESS) { st.errors++; conn_close(c); return; }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) { st.errors++; conn_close(c); }
}

/* Parses the response head in c->buf; returns 1 when complete, 0 when more is
 * needed, -1 on garbage. Leaves body bytes at the front of buf. */
static int parse_head(struct conn *c) {
    char *end = memmem(c->buf, c->have, "\r\n\r\n", 4);
    if (!end) return c->have >= sizeof c->buf ? -1 : 0;
    size_t head_len = (size_t)(end - c->buf) + 4;
    if (c->have < 12 || memcmp(c->buf, "HTTP/1.", 7) != 0) return -1;
    c->status = atoi(c->buf + 9);
    c->body_left = -1;
    for (char *line = memchr(c->buf, '\n', head_len); line && line < end; line = memchr(line, '\n', (size_t)(end - line))) {
        line++;
        if (!strncasecmp(line, "content-length:", 15)) c->body_left = atol(line + 15);
        else if (!strncasecmp(line, "connection:", 11)) {
            const char *v = line + 11;
            while (*v == ' ') v++;
            if (!strncasecmp(v, "close", 5)) c->server_close = 1;
        }
    }
    memmove(c->buf, c->buf + head_len, c->have - head_len);
    c->have -= head_len;
    c->head_done = 1;
    return 1;
}

static void response_done(struct conn *c) {
    uint64_t t = now_ns();
    st.done++;
    if (c->status >= 200 && c->status < 300) st.s2xx++;
    else if (c->status == 403) st.s403++;
    else st.sother++;
    record_latency(t - c->t_start_ns);
    if (cfg.max_requests > 0 && st.done >= cfg.max_requests) stop_flag = 1;
    if (cfg.mode == M_KEEPALIVE && !c->server_close && !stop_flag) {
        send_request(c);
        return;
    }
    conn_close(c);
    if (!stop_flag) conn_open(c);
}

static void on_readable(struct conn *c) {
    for (;;) {
        if (c->have == sizeof c->buf) { conn_fail(c); return; } /* head too large */
        ssize_t r = recv(c->fd, c->buf + c->have, sizeof c->buf - c->have, 0);
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR) return;
            conn_fail(c);
            return;
        }
        if (r == 0) { /* EOF */
            if (c->phase == P_REQ_SENT && c->head_done && c->body_left < 0) response_done(c);
            else conn_fail(c);
            return;
        }
        c->have += (size_t)r;
        if (c->phase == P_CONNECT_SENT) {
            char *end = memmem(c->buf, c->have, "\r\n\r\n", 4);
            if (!end) continue;
            if (c->have < 12 || atoi(c->buf + 9) != 200) {
                c->status = atoi(c->buf + 9);
                /* A refused CONNECT counts as a finished (non-2xx) cycle. */
                st.done++;
                if (c->status == 403) st.s403++; else st.sother++;
                conn_close(c);
                if (!stop_flag) conn_open(c);
                return;
            }
            size_t head_len = (size_t)(end - c->buf) + 4;
            c->have -= head_len; /* nothing follows a 200 before we speak */
            send_request(c);
            if (c->fd < 0) return;
            continue;
        }
        if (!c->head_done) {
            int h = parse_head(c);
            if (h < 0) { conn_fail(c); return; }
            if (h == 0) continue;
        }
        if (c->body_left >= 0) {
            if ((long)c->have >= c->body_left) {
                c->have = 0;
                c->body_left = 0;
                response_done(c);
                return; /* a fresh request is in flight (or the conn is new) */
            }
            c->body_left -= (long)c->have;
            c->have = 0;
        } else {
            c->have = 0; /* EOF-delimited body: keep reading */
        }
    }
}

static void on_event(struct conn *c, uint32_t events) {
    if (c->phase == P_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err || (events & (EPOLLERR | EPOLLHUP))) { conn_fail(c); return; }
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        if (cfg.mode == M_CONNECT && cfg.tunnel) {
            if (send_all(c->fd, cfg.connect_req, cfg.connect_len) < 0) { conn_fail(c); return; }
            c->phase = P_CONNECT_SENT;
        } else {
            send_request(c);
        }
        return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) on_readable(c);
}

int main(int argc, char **argv) {
    cfg.mode = M_KEEPALIVE;
    cfg.target = "/";
    cfg.conns = 64;
    cfg.seconds = 10;
    cfg.max_requests = 100000000;
    const char *addr = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "m:a:r:H:T:c:d:n:A:")) != -1) {
        switch (opt) {
        case 'm':
            if (!strcmp(optarg, "keepalive")) cfg.mode = M_KEEPALIVE;
            else if (!strcmp(optarg, "close")) cfg.mode = M_CLOSE;
            else if (!strcmp(optarg, "connect")) cfg.mode = M_CONNECT;
            else usage();
            break;
        case 'a': addr = optarg; break;
        case 'r': cfg.target = optarg; break;
        case 'H': cfg.host = optarg; break;
        case 'A': cfg.extra = optarg; break;
        case 'T': cfg.tunnel = optarg; break;
        case 'c': cfg.conns = atoi(optarg); break;
        case 'd': cfg.seconds = atof(optarg); break;
        case 'n': cfg.max_requests = atol(optarg); break;
        default: usage();
        }
    }
    if (!addr || parse_addr(addr, &cfg.addr) < 0) {
        fprintf(stderr, "loadgen: -a must be a 127.0.0.0/8 address with a port\n");
        return 2;
    }
    if (cfg.conns < 1 || cfg.conns > 10000 || cfg.seconds <= 0 || cfg.seconds > 3600) usage();
    if (!cfg.host) cfg.host = addr;
    const char *conn_hdr = cfg.mode == M_KEEPALIVE ? "" : "Connection: close\r\n";
    /* In connect mode the GET inside the tunnel is origin-form. */
    const char *target = cfg.mode == M_CONNECT ? "/" : cfg.target;
    /* -A goes on the request the proxy judges: the CONNECT in connect mode. */
    const char *extra = cfg.extra && !cfg.tunnel ? cfg.extra : "";
    const char *extra_end = *extra ? "\r\n" : "";
    int n = snprintf(cfg.request, sizeof cfg.request,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: egressd-loadgen\r\n%s%s%s\r\n",
                     target, cfg.host, extra, extra_end, conn_hdr);
    if (n <= 0 || (size_t)n >= sizeof cfg.request) usage();
    cfg.request_len = (size_t)n;
    if (cfg.tunnel) {
        n = snprintf(cfg.connect_req, sizeof cfg.connect_req,
                     "CONNECT %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: egressd-loadgen\r\n%s%s\r\n",
                     cfg.tunnel, cfg.tunnel, cfg.extra ? cfg.extra : "", cfg.extra ? "\r\n" : "");
        if (n <= 0 || (size_t)n >= sizeof cfg.connect_req) usage();
        cfg.connect_len = (size_t)n;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    ep = epoll_create1(EPOLL_CLOEXEC);
    struct conn *conns = calloc((size_t)cfg.conns, sizeof *conns);
    if (ep < 0 || !conns) { perror("loadgen"); return 1; }
    uint64_t t0 = now_ns();
    uint64_t deadline = t0 + (uint64_t)(cfg.seconds * 1e9);
    for (int i = 0; i < cfg.conns; i++) {
        conns[i].fd = -1;
        conn_open(&conns[i]);
    }
    struct epoll_event evs[256];
    while (!stop_flag) {
        uint64_t t = now_ns();
        if (t >= deadline) break;
        int timeout_ms = (int)((deadline - t) / 1000000) + 1;
        if (timeout_ms > 100) timeout_ms = 100;
        int k = epoll_wait(ep, evs, 256, timeout_ms);
        for (int i = 0; i < k && !stop_flag; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->fd >= 0) on_event(c, evs[i].events);
        }
        /* Connections that failed to open (e.g. EMFILE) get another try. */
        for (int i = 0; i < cfg.conns && !stop_flag; i++)
            if (conns[i].fd < 0 && (st.errors < 1000000)) conn_open(&conns[i]);
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    uint32_t p50 = 0, p99 = 0;
    if (st.lat_n) {
        qsort(st.lat, st.lat_n, sizeof *st.lat, cmp_u32);
        p50 = st.lat[(st.lat_n - 1) / 2];
        p99 = st.lat[(size_t)((double)(st.lat_n - 1) * 0.99)];
    }
    const char *names[] = {"keepalive", "close", "connect"};
    printf("mode=%s requests=%ld seconds=%.3f rate=%.1f p50_us=%u p99_us=%u s2xx=%ld s403=%ld "
           "sother=%ld errors=%ld\n",
           names[cfg.mode], st.done, secs, secs > 0 ? (double)st.done / secs : 0.0, p50, p99,
           st.s2xx, st.s403, st.sother, st.errors);
    for (int i = 0; i < cfg.conns; i++) conn_close(&conns[i]);
    free(conns);
    free(st.lat);
    return 0;
}
