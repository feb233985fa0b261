/*
 * idle_tunnels — opens N CONNECT tunnels through a proxy and leaves them idle
 * (bench/load.sh, measurement e: RSS per idle tunnel).
 *
 * Each tunnel: CONNECT HOST:PORT → 200 → a real TLS 1.3/1.2 ClientHello with
 * SNI = HOST (built here byte by byte, the same shape OpenSSL 3 sends) → the
 * origin's first flight (ServerHello...) is read and dropped → idle, as a client
 * that stalls mid-handshake. At most -p connects are in flight at once.
 * When every tunnel has its answer (or -w seconds passed) it prints
 *   ready opened=N replied=R failed=F
 * and holds the tunnels open, draining anything that arrives, until SIGTERM /
 * SIGINT or -h seconds. With -W a tunnel sends no ClientHello: it counts as
 * replied once its 200 arrived and waits there (measurement e0: a tunnel
 * before its ClientHello). Only 127.0.0.0/8 proxies are accepted.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
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

enum state { S_CONNECTING, S_CONNECT_SENT, S_HELLO_SENT, S_REPLIED, S_FAILED };

struct tunnel {
    int fd;
    enum state state;
    unsigned short have;
    char buf[1024];
};

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig) { (void)sig; stop_flag = 1; }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint8_t rnd8(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint8_t)(rng_state >> 32);
}

static uint8_t *put16(uint8_t *p, unsigned v) { *p++ = (uint8_t)(v >> 8); *p++ = (uint8_t)v; return p; }
static uint8_t *put_bytes(uint8_t *p, const uint8_t *b, size_t n) { memcpy(p, b, n); return p + n; }
static void patch16(uint8_t *at, size_t v) { at[0] = (uint8_t)(v >> 8); at[1] = (uint8_t)v; }

/* Writes a TLS ClientHello record for `sni` into out; returns its length. */
static size_t build_client_hello(uint8_t *out, const char *sni) {
    static const uint8_t suites[] = {0x13, 0x02, 0x13, 0x03, 0x13, 0x01, 0xc0, 0x2c, 0xc0, 0x30,
                                     0xcc, 0xa9, 0xcc, 0xa8, 0xc0, 0x2b, 0xc0, 0x2f, 0x00, 0xff};
    static const uint8_t sigalgs[] = {0x04, 0x03, 0x05, 0x03, 0x06, 0x03, 0x08, 0x07, 0x08, 0x08,
                                      0x08, 0x04, 0x08, 0x05, 0x08, 0x06, 0x04, 0x01, 0x05, 0x01,
                                      0x06, 0x01};
    size_t sni_len = strlen(sni);
    uint8_t *p = out;
    *p++ = 0x16; p = put16(p, 0x0301);           /* record: handshake, TLS 1.0 */
    uint8_t *rec_len = p; p += 2;
    *p++ = 0x01;                                  /* ClientHello */
    uint8_t *hs_len = p; p += 3;
    p = put16(p, 0x0303);
    for (int i = 0; i < 32; i++) *p++ = rnd8();   /* random */
    *p++ = 32;
    for (int i = 0; i < 32; i++) *p++ = rnd8();   /* legacy session id */
    p = put16(p, sizeof suites);
    p = put_bytes(p, suites, sizeof suites);
    *p++ = 1; *p++ = 0;                           /* null compression */
    uint8_t *ext_len = p; p += 2;
    uint8_t *ext_start = p;
    /* server_name */
    p = put16(p, 0x0000); p = put16(p, (unsigned)(sni_len + 5));
    p = put16(p, (unsigned)(sni_len + 3)); *p++ = 0; p = put16(p, (unsigned)sni_len);
    p = put_bytes(p, (const uint8_t *)sni, sni_len);
    /* ec_point_formats */
    p = put16(p, 0x000b); p = put16(p, 2); *p++ = 1; *p++ = 0;
    /* supported_groups: x25519, secp256r1, x448, secp521r1, secp384r1 */
    p = put16(p, 0x000a); p = put16(p, 12); p = put16(p, 10);
    p = put16(p, 0x001d); p = put16(p, 0x0017); p = put16(p, 0x001e);
    p = put16(p, 0x0019); p = put16(p, 0x0018);
    /* session_ticket, encrypt_then_mac, extended_master_secret: empty */
    p = put16(p, 0x0023); p = put16(p, 0);
    p = put16(p, 0x0016); p = put16(p, 0);
    p = put16(p, 0x0017); p = put16(p, 0);
    /* signature_algorithms */
    p = put16(p, 0x000d); p = put16(p, sizeof sigalgs + 2); p = put16(p, sizeof sigalgs);
    p = put_bytes(p, sigalgs, sizeof sigalgs);
    /* supported_versions: TLS 1.3, 1.2 */
    p = put16(p, 0x002b); p = put16(p, 5); *p++ = 4; p = put16(p, 0x0304); p = put16(p, 0x0303);
    /* psk_key_exchange_modes: psk_dhe_ke */
    p = put16(p, 0x002d); p = put16(p, 2); *p++ = 1; *p++ = 1;
    /* key_share: x25519 with 32 random bytes (any 32 bytes are a usable key) */
    p = put16(p, 0x0033); p = put16(p, 38); p = put16(p, 36);
    p = put16(p, 0x001d); p = put16(p, 32);
    for (int i = 0; i < 32; i++) *p++ = rnd8();
    patch16(ext_len, (size_t)(p - ext_start));
    size_t hs = (size_t)(p - hs_len - 3);
    hs_len[0] = (uint8_t)(hs >> 16); hs_len[1] = (uint8_t)(hs >> 8); hs_len[2] = (uint8_t)hs;
    patch16(rec_len, (size_t)(p - rec_len - 2));
    return (size_t)(p - out);
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
    if ((ntohl(sa->sin_addr.s_addr) >> 24) != 127) return -1;
    return 0;
}

int main(int argc, char **argv) {
    const char *addr = NULL, *target = NULL, *sni = NULL;
    long n = 5000, parallel = 128;
    double wait_s = 60, hold_s = 120;
    int opt, no_hello = 0;
    while ((opt = getopt(argc, argv, "a:T:s:n:p:w:h:W")) != -1) {
        switch (opt) {
        case 'a': addr = optarg; break;
        case 'T': target = optarg; break;
        case 's': sni = optarg; break;
        case 'n': n = atol(optarg); break;
        case 'p': parallel = atol(optarg); break;
        case 'w': wait_s = atof(optarg); break;
        case 'h': hold_s = atof(optarg); break;
        case 'W': no_hello = 1; break;
        default: goto usage;
        }
    }
    struct sockaddr_in sa;
    if (!addr || !target || parse_addr(addr, &sa) < 0 || n < 1 || n > 15000 || parallel < 1) goto usage;
    if (!sni) {
        static char host[256];
        snprintf(host, sizeof host, "%s", target);
        char *colon = strrchr(host, ':');
        if (colon) *colon = 0;
        sni = host;
    }
    rng_state ^= (uint64_t)getpid() * 0x2545f4914f6cdd1dull;
    char connect_req[600];
    int connect_len = snprintf(connect_req, sizeof connect_req,
                               "CONNECT %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: egressd-idle-tunnels\r\n\r\n",
                               target, target);
    if (connect_len <= 0 || (size_t)connect_len >= sizeof connect_req) goto usage;

    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct tunnel *t = calloc((size_t)n, sizeof *t);
    if (ep < 0 || !t) { perror("idle_tunnels"); return 1; }
    long next = 0, pending = 0, replied = 0, failed = 0;
    double start = now_s();
    int ready_printed = 0;
    struct epoll_event evs[512];
    char drain[16384];

    while (!stop_flag) {
        double now = now_s();
        if (now - start > hold_s) break;
        while (!ready_printed && next < n && pending < parallel) {
            struct tunnel *c = &t[next++];
            c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (c->fd < 0) { c->state = S_FAILED; failed++; continue; }
            int one = 1;
            setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
                close(c->fd); c->fd = -1; c->state = S_FAILED; failed++; continue;
            }
            c->state = S_CONNECTING;
            struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
            epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
            pending++;
        }
        if (!ready_printed && (replied + failed == n || now - start > wait_s)) {
            printf("ready opened=%ld replied=%ld failed=%ld seconds=%.2f\n", next, replied,
                   failed + (n - replied - failed), now - start);
            fflush(stdout);
            ready_printed = 1;
        }
        int k = epoll_wait(ep, evs, 512, 100);
        for (int i = 0; i < k; i++) {
            struct tunnel *c = evs[i].data.ptr;
            if (c->fd < 0) continue;
            int broken = 0;
            if (c->state == S_CONNECTING) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err || (evs[i].events & (EPOLLERR | EPOLLHUP))) broken = 1;
                else {
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                    if (send(c->fd, connect_req, (size_t)connect_len, MSG_NOSIGNAL) != connect_len) broken = 1;
                    else c->state = S_CONNECT_SENT;
                }
            } else if (c->state == S_CONNECT_SENT) {
                ssize_t r = recv(c->fd, c->buf + c->have, sizeof c->buf - 1 - c->have, 0);
                if (r <= 0) broken = !(r < 0 && errno == EAGAIN);
                else {
                    c->have = (unsigned short)(c->have + r);
                    c->buf[c->have] = 0;
                    char *end = strstr(c->buf, "\r\n\r\n");
                    if (end) {
                        if (c->have < 12 || atoi(c->buf + 9) != 200) broken = 1;
                        else if (no_hello) { c->state = S_REPLIED; replied++; pending--; }
                        else {
                            uint8_t hello[600];
                            size_t len = build_client_hello(hello, sni);
                            if (send(c->fd, hello, len, MSG_NOSIGNAL) != (ssize_t)len) broken = 1;
                            else c->state = S_HELLO_SENT;
                        }
                    } else if (c->have >= sizeof c->buf - 1) broken = 1;
                }
            } else {
                ssize_t r = recv(c->fd, drain, sizeof drain, 0);
                if (r == 0 || (r < 0 && errno != EAGAIN)) {
                    /* Closed after it was counted: the tunnel is gone, say so. */
                    if (c->state == S_REPLIED) { replied--; broken = 1; }
                    else broken = 1;
                } else if (r > 0 && c->state == S_HELLO_SENT) {
                    if ((uint8_t)drain[0] == 0x16) { c->state = S_REPLIED; replied++; pending--; }
                    else broken = 1; /* an alert or garbage instead of ServerHello */
                }
            }
            if (broken) {
                if (c->state != S_REPLIED) pending--;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->fd = -1;
                c->state = S_FAILED;
                failed++;
            }
        }
    }
    long open_now = 0;
    for (long i = 0; i < n; i++) {
        if (t[i].fd >= 0) { open_now++; close(t[i].fd); }
    }
    printf("done open_at_end=%ld replied=%ld failed=%ld\n", open_now, replied, failed);
    free(t);
    return 0;

usage:
    fprintf(stderr, "usage: idle_tunnels -a 127.x.y.z:PORT -T HOST:PORT [-s SNI] [-n N] [-p PARALLEL] [-W]\n"
                    "                    [-w ESTABLISH_SECONDS] [-h HOLD_SECONDS]\n");
    return 2;
}
