/*
 * The HTTP transport: one libcurl multi handle per client, driven through
 * curl_multi_socket_action. Every request of a client shares its connection
 * cache (keep-alive, and HTTP/2 multiplexing where the server offers it),
 * up to max_in_flight at once.
 *
 * libcurl tells us which sockets to watch and when its next timeout is due
 * (on_socket, on_timer); vc_transport_drive polls exactly those, so the same
 * loop serves a blocking call, many tasks, and an outside event loop.
 *
 * Nothing here touches Lua: callbacks only copy bytes into C buffers, so a
 * Lua error can never cross libcurl's frames.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "vc.h"

/* A body larger than this is not an answer of this API: stop reading. */
#define VC_MAX_RESPONSE (16u * 1024u * 1024u)

/* New requests handed to libcurl per drive (see add_pending). */
#define START_PER_DRIVE 16

double vc_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- buffers ----------------------------------------------------------- */

int vc_buffer_add(vc_buffer *b, const char *s, size_t n) {
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 1024;
        char *data;
        while (cap - b->len < n) {
            if (cap > (size_t)-1 / 2) return -1;
            cap *= 2;
        }
        data = realloc(b->data, cap);
        if (!data) return -1;
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return 0;
}

void vc_buffer_wipe(vc_buffer *b) {
    /* volatile: the compiler may not drop a wipe of memory it sees freed later */
    volatile char *p = b->data;
    size_t i;
    for (i = 0; i < b->len; i++) p[i] = 0;
    b->len = 0;
}

void vc_buffer_free(vc_buffer *b) {
    vc_buffer_wipe(b);
    free(b->data);
    b->data = NULL;
    b->cap = 0;
}

/* ---- the sockets and the timer libcurl asks for ------------------------ */

static int grow_sockets(vc_transport *t) {
    int cap = t->sockets_cap ? t->sockets_cap * 2 : 16;
    struct pollfd *sockets = realloc(t->sockets, (size_t)cap * sizeof *sockets);
    struct pollfd *ready;
    if (!sockets) return -1;
    t->sockets = sockets;
    ready = realloc(t->ready, (size_t)cap * sizeof *ready);
    if (!ready) return -1;
    t->ready = ready;
    t->sockets_cap = cap;
    return 0;
}

/* socketp is the socket's index + 1 in t->sockets (0: not watched yet). */
static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp) {
    vc_transport *t = userp;
    intptr_t slot = (intptr_t)socketp;
    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (slot > 0 && slot <= t->nsockets) {
            t->sockets[slot - 1] = t->sockets[--t->nsockets];   /* the last one moves in */
            if (slot - 1 < t->nsockets)
                curl_multi_assign(t->multi, t->sockets[slot - 1].fd, (void *)slot);
        }
        return 0;
    }
    if (slot == 0) {
        if (t->nsockets == t->sockets_cap && grow_sockets(t) != 0) return -1;
        slot = ++t->nsockets;
        t->sockets[slot - 1].fd = s;
        curl_multi_assign(t->multi, s, (void *)slot);
    }
    t->sockets[slot - 1].events = (short)((what & CURL_POLL_IN ? POLLIN : 0) |
                                          (what & CURL_POLL_OUT ? POLLOUT : 0));
    t->sockets[slot - 1].revents = 0;
    return 0;
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp) {
    vc_transport *t = userp;
    (void)multi;
    t->timer_due = timeout_ms < 0 ? -1 : vc_now() + (double)timeout_ms / 1000.0;
    return 0;
}

/* ---- lifetime ---------------------------------------------------------- */

static void global_init_once(void) {
    /* Process-wide and not thread-safe before 7.84: done once, never undone
     * (a finalizer must not pull libcurl from under another user of it). */
    static int initialised = 0;
    if (!initialised) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        initialised = 1;
    }
}

int vc_transport_init(vc_transport *t, long timeout_ms, long connect_timeout_ms,
                      int max_in_flight, int multiplex) {
    static const char *const headers[] = {
        "Content-Type: application/json",
        "Accept: application/json",
        "Expect:",                   /* no 100-continue round trip */
    };
    size_t i;
    global_init_once();
    t->timeout_ms = timeout_ms;
    t->connect_timeout_ms = connect_timeout_ms;
    t->max_in_flight = max_in_flight;
    t->multiplex = multiplex;
    t->timer_due = -1;
    t->multi = curl_multi_init();
    if (!t->multi) return -1;
    curl_multi_setopt(t->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(t->multi, CURLMOPT_SOCKETDATA, t);
    curl_multi_setopt(t->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(t->multi, CURLMOPT_TIMERDATA, t);
    /* as many connections as requests in flight, and all kept for reuse */
    curl_multi_setopt(t->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)max_in_flight);
    curl_multi_setopt(t->multi, CURLMOPT_MAXCONNECTS, (long)max_in_flight);
    for (i = 0; i < sizeof headers / sizeof *headers; i++) {
        struct curl_slist *h = curl_slist_append(t->headers, headers[i]);
        if (!h) return -1;
        t->headers = h;
    }
    return 0;
}

void vc_transport_release(vc_transport *t) {
    while (t->transfers) {
        vc_transfer *x = t->transfers;
        t->transfers = x->next;
        if (x->easy) {
            if (x->in_multi) curl_multi_remove_handle(t->multi, x->easy);
            curl_easy_cleanup(x->easy);
        }
        if (x->sink) fclose(x->sink);   /* a download cut short: its temporary file stays */
        vc_buffer_free(&x->request);
        vc_buffer_free(&x->response);
        free(x);
    }
    if (t->multi) curl_multi_cleanup(t->multi);
    t->multi = NULL;
    curl_slist_free_all(t->headers);
    t->headers = NULL;
    t->idle = t->finished = t->finished_last = t->pending = t->pending_last = NULL;
    free(t->sockets);
    free(t->ready);
    t->sockets = t->ready = NULL;
    t->nsockets = t->sockets_cap = 0;
    t->in_flight = 0;
}

/* ---- transfers --------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata) {
    vc_transfer *x = userdata;
    size_t n = size * nmemb;
    if (x->sink) {   /* a download: straight to its file */
        if (fwrite(data, 1, n, x->sink) == n) return n;
        x->write_failed = 1;
        return 0;
    }
    if (x->response.len + n > VC_MAX_RESPONSE) {
        x->too_large = 1;
        return 0;   /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    return vc_buffer_add(&x->response, data, n) == 0 ? n : 0;
}

/* max_in_flight requests are on the wire: wait for one to end. */
int vc_transport_full(const vc_transport *t) {
    return t->in_flight >= t->max_in_flight;
}

/* An idle transfer, or NULL when the transport is full or memory ran out. */
vc_transfer *vc_transport_acquire(vc_transport *t) {
    vc_transfer *x = t->idle;
    if (vc_transport_full(t)) return NULL;
    if (x) {
        t->idle = x->next_idle;
    } else {
        x = calloc(1, sizeof *x);
        if (!x) return NULL;
        x->easy = curl_easy_init();
        if (!x->easy) {
            free(x);
            return NULL;
        }
        /* an API answer is small: a 16 KiB read buffer per request is waste */
        curl_easy_setopt(x->easy, CURLOPT_BUFFERSIZE, 4096L);
        x->next = t->transfers;
        t->transfers = x;
    }
    x->busy = 1;
    x->request.len = x->response.len = 0;
    x->errbuf[0] = '\0';
    x->result = CURLE_OK;
    x->status = 0;
    x->done = x->too_large = x->in_task = x->queued = x->write_failed = 0;
    x->sink = NULL;
    return x;
}

/* Gives x back for the next request; its response stays readable until then. */
void vc_transport_recycle(vc_transport *t, vc_transfer *x) {
    vc_buffer_wipe(&x->request);
    if (!x->busy) return;
    x->busy = 0;
    x->next_idle = t->idle;
    t->idle = x;
}

/* The transfers tasks wait on that ended since the last call. */
vc_transfer *vc_transport_finished(vc_transport *t) {
    vc_transfer *list = t->finished;
    t->finished = t->finished_last = NULL;
    return list;
}

static void finished(vc_transfer *x, CURLcode result) {
    x->result = result;
    x->done = 1;
    /* NUL-terminated, so the body can be read as a C string */
    if (vc_buffer_add(&x->response, "", 1) == 0) x->response.len--;
    else if (x->result == CURLE_OK) x->result = CURLE_OUT_OF_MEMORY;
}

/* Options every request shares; then the request is handed to libcurl. */
static void start(vc_transport *t, vc_transfer *x) {
    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_USERAGENT, "lua-voiceclone/" VC_VERSION);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, t->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);     /* never SIGALRM a host */
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    /* Over TLS, wait for a connection that may turn out HTTP/2 and multiplex
     * rather than open another; plain HTTP/1.1 never multiplexes. */
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, (long)t->multiplex);
    /* handed to libcurl by the next drive, a few at a time */
    x->next_pending = NULL;
    if (t->pending) t->pending_last->next_pending = x;
    else t->pending = x;
    t->pending_last = x;
    t->in_flight++;
}

/* An API call: POSTs x->request as JSON; x->done once it ended. */
void vc_transport_start(vc_transport *t, vc_transfer *x, CURLU *url) {
    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_CURLU, url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->request.data);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->request.len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, t->timeout_ms);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 0L);
    start(t, x);
}

/* A download: GETs url into x->sink. A file may take long: instead of a
 * total time limit, it fails when nothing arrives for the client's timeout. */
void vc_transport_get(vc_transport *t, vc_transfer *x, const char *url) {
    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_CURLU, NULL);          /* else it wins over CURLOPT_URL */
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);   /* storage often redirects */
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 0L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (t->timeout_ms + 999) / 1000);
    start(t, x);
}

/* x ended: its result is in, and a task waiting on it will be told. */
static void ended(vc_transport *t, vc_transfer *x, CURLcode result) {
    finished(x, result);
    t->in_flight--;
    if (x->in_task) {   /* kept in the order they ended */
        x->queued = 1;
        x->next_finished = NULL;
        if (t->finished) t->finished_last->next_finished = x;
        else t->finished = x;
        t->finished_last = x;
    }
}

static void collect_finished(vc_transport *t) {
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(t->multi, &left))) {
        vc_transfer *x;
        if (msg->msg != CURLMSG_DONE) continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &x->status);
        /* back to the connection cache at once, for the next request */
        curl_multi_remove_handle(t->multi, x->easy);
        x->in_multi = 0;
        ended(t, x, msg->data.result);
    }
}

/* Hands libcurl at most START_PER_DRIVE new requests: each may open a
 * connection, and a thousand connects in one call would stall a frame. */
static void add_pending(vc_transport *t) {
    int n;
    for (n = 0; n < START_PER_DRIVE && t->pending; n++) {
        vc_transfer *x = t->pending;
        t->pending = x->next_pending;
        if (curl_multi_add_handle(t->multi, x->easy) == CURLM_OK) x->in_multi = 1;
        else ended(t, x, CURLE_FAILED_INIT);
    }
    if (!t->pending) t->pending_last = NULL;
}

/* Waits up to `wait` seconds for a watched socket or libcurl's timer, then
 * lets libcurl act on what is ready. Transfers that ended are marked done. */
void vc_transport_drive(vc_transport *t, double wait) {
    int i, nready = 0, running, timeout_ms;
    add_pending(t);
    if (t->pending) wait = 0;   /* more to hand over at once */
    if (t->timer_due >= 0) {
        double until = t->timer_due - vc_now();
        if (until < wait) wait = until > 0 ? until : 0;
    }
    timeout_ms = wait > 0 ? (int)ceil(wait * 1000) : 0;
    if (poll(t->sockets, (nfds_t)t->nsockets, timeout_ms) > 0) {
        /* acting on a socket may change t->sockets: act on a copy */
        for (i = 0; i < t->nsockets; i++)
            if (t->sockets[i].revents) t->ready[nready++] = t->sockets[i];
        for (i = 0; i < nready; i++) {
            short r = t->ready[i].revents;
            int mask = (r & (POLLIN | POLLHUP) ? CURL_CSELECT_IN : 0) |
                       (r & POLLOUT ? CURL_CSELECT_OUT : 0) |
                       (r & (POLLERR | POLLNVAL) ? CURL_CSELECT_ERR : 0);
            curl_multi_socket_action(t->multi, t->ready[i].fd, mask, &running);
        }
    }
    if (t->timer_due >= 0 && vc_now() >= t->timer_due) {
        t->timer_due = -1;   /* libcurl sets a new one if it needs it */
        curl_multi_socket_action(t->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    collect_finished(t);
}

/* Drives until x is done: a blocking call. */
void vc_transport_wait(vc_transport *t, vc_transfer *x) {
    while (!x->done) vc_transport_drive(t, 1.0);
}
