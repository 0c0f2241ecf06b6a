/*
 * The HTTP transport: one libcurl multi handle per client, driven through
 * curl_multi_socket_action. Every request of a client shares its connection
 * cache (keep-alive, and HTTP/2 multiplexing where the server offers it),
 * with at most max_in_flight on the wire; the others wait their turn in
 * order.
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
#include <strings.h>
#include <stdlib.h>
#include <string.h>
#include "vc.h"

/* A body larger than this is not an answer of this API: stop reading. */
#define MAX_RESPONSE (16u * 1024u * 1024u)
/* An idle transfer keeps a response buffer up to this size for the next one. */
#define KEEP_RESPONSE (16u * 1024u)
/* New requests handed to libcurl per drive (see hand_over): each may open a
 * connection, and a host's frame has a budget. */
#define START_PER_DRIVE 8

/* Where a transfer is in its life. IDLE, QUEUED and ENDED each have a list;
 * ENDED ones leave theirs (REPORTED) once the owner was told. A DETACHED
 * one belongs to its owner alone while its answer is read. */
typedef enum { IDLE, FILLING, QUEUED, RUNNING, ENDED, REPORTED, DETACHED } transfer_state;

struct vc_transfer {
    transfer_state state;
    void *owner;                   /* who is told when it ends; NULL while IDLE */
    CURL *easy;                    /* while RUNNING only: handles are pooled */
    vc_buffer body;                /* the request: holds the credentials */
    struct curl_slist *headers;    /* this attempt's, signed for the gateway; NULL: the shared ones */
    vc_buffer response;            /* NUL-terminated once ENDED */
    FILE *sink;                    /* a download's file, else the body goes to response */
    CURLU *route;                  /* an API call's parsed URL (the client's) */
    char errbuf[CURL_ERROR_SIZE];
    char retry_after[64];          /* the Retry-After header's value */
    CURLcode result;
    long status;
    int how;                       /* VC_REUSE or VC_FRESH_CONNECTION */
    int sign;                      /* signed for the gateway (t->options.gateway) */
    int too_large, write_failed;   /* why on_body stopped it */
    curl_off_t received, max_download;   /* a download's bytes so far, and its limit */
    double started, ended;         /* vc_now() */
    vc_transfer *prev, *next;      /* in the list of its state */
    vc_transfer *prev_all, *next_all;   /* every transfer but DETACHED ones */
};

typedef struct transfer_list {
    vc_transfer *head, *tail;
} transfer_list;

struct vc_transport {
    CURLM *multi;
    struct curl_slist *headers;
    vc_transport_options options;
    vc_transfer *all;
    transfer_list idle, queued, ended;
    int running;
    unsigned endings;              /* transfers ended so far (wraps) */
    CURL **easy_pool;              /* handles of ended transfers, kept warm */
    int easy_pooled;
    struct pollfd *sockets;        /* what libcurl wants watched */
    struct pollfd *ready;          /* scratch: the ones poll found ready */
    int nsockets, sockets_cap;
    double timer_due;              /* vc_now() when libcurl wants a timeout action; -1: none */
};

/* ---- lists ------------------------------------------------------------- */

static void list_push(transfer_list *l, vc_transfer *x) {
    x->next = NULL;
    x->prev = l->tail;
    if (l->tail) l->tail->next = x;
    else l->head = x;
    l->tail = x;
}

static void list_remove(transfer_list *l, vc_transfer *x) {
    if (x->prev) x->prev->next = x->next;
    else l->head = x->next;
    if (x->next) x->next->prev = x->prev;
    else l->tail = x->prev;
    x->prev = x->next = NULL;
}

static transfer_list *list_of(vc_transport *t, transfer_state state) {
    switch (state) {
    case IDLE: return &t->idle;
    case QUEUED: return &t->queued;
    case ENDED: return &t->ended;
    default: return NULL;
    }
}

static void set_state(vc_transport *t, vc_transfer *x, transfer_state state) {
    transfer_list *from = list_of(t, x->state), *to = list_of(t, state);
    if (from) list_remove(from, x);
    x->state = state;
    if (to) list_push(to, x);
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

/* The options a request's safety depends on, set on a probe handle: a libcurl
 * that refuses one (built without it, too old) is refused in turn. */
static const char *refuses_security(void) {
    CURL *e = curl_easy_init();
    const char *refused = NULL;
    if (!e) return "curl_easy_init";
    if (curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK)
        refused = "CURLOPT_PROTOCOLS_STR";
    else if (curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "https") != CURLE_OK)
        refused = "CURLOPT_REDIR_PROTOCOLS_STR";
    else if (curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK)
        refused = "CURLOPT_SSL_VERIFYPEER";
    else if (curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK)
        refused = "CURLOPT_SSL_VERIFYHOST";
    else if (curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L) != CURLE_OK ||
             curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L) != CURLE_OK)
        refused = "CURLOPT_FRESH_CONNECT";
    else if (curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)1) != CURLE_OK)
        refused = "CURLOPT_MAXFILESIZE_LARGE";
    curl_easy_cleanup(e);
    return refused;
}

vc_transport *vc_transport_new(const vc_transport_options *o, const char **refused) {
    static const char *const headers[] = {
        "Content-Type: application/json",
        "Accept: application/json",
        "Expect:",                   /* no 100-continue round trip */
    };
    vc_transport *t;
    size_t i;
    global_init_once();
    if ((*refused = refuses_security())) return NULL;
    t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->options = *o;
    t->timer_due = -1;
    t->multi = curl_multi_init();
    t->easy_pool = calloc((size_t)o->max_in_flight, sizeof *t->easy_pool);
    if (!t->multi || !t->easy_pool) {
        vc_transport_free(t, NULL);
        return NULL;
    }
    curl_multi_setopt(t->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(t->multi, CURLMOPT_SOCKETDATA, t);
    curl_multi_setopt(t->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(t->multi, CURLMOPT_TIMERDATA, t);
    /* as many connections as requests in flight, and all kept for reuse */
    curl_multi_setopt(t->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)o->max_in_flight);
    curl_multi_setopt(t->multi, CURLMOPT_MAXCONNECTS, (long)o->max_in_flight);
    for (i = 0; i < sizeof headers / sizeof *headers; i++) {
        struct curl_slist *h = curl_slist_append(t->headers, headers[i]);
        if (!h) {
            vc_transport_free(t, NULL);
            return NULL;
        }
        t->headers = h;
    }
    return t;
}

void vc_transfer_free(vc_transfer *x) {
    if (x->sink) fclose(x->sink);
    curl_slist_free_all(x->headers);
    vc_buffer_free(&x->body);
    vc_buffer_free(&x->response);
    free(x);
}

void vc_transport_free(vc_transport *t, void (*orphan)(void *owner)) {
    int i;
    if (!t) return;
    while (t->all) {
        vc_transfer *x = t->all;
        t->all = x->next_all;
        if (x->owner && orphan) orphan(x->owner);
        if (x->easy) {
            curl_multi_remove_handle(t->multi, x->easy);
            curl_easy_cleanup(x->easy);
        }
        vc_transfer_free(x);
    }
    for (i = 0; i < t->easy_pooled; i++) curl_easy_cleanup(t->easy_pool[i]);
    free(t->easy_pool);
    if (t->multi) curl_multi_cleanup(t->multi);
    curl_slist_free_all(t->headers);
    free(t->sockets);
    free(t->ready);
    free(t);
}

/* ---- transfers --------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata) {
    vc_transfer *x = userdata;
    size_t n = size * nmemb;
    if (x->sink) {   /* a download: straight to its file, up to max_download */
        x->received += (curl_off_t)n;
        if (x->received > x->max_download) {
            x->too_large = 1;
            return 0;
        }
        if (fwrite(data, 1, n, x->sink) == n) return n;
        x->write_failed = 1;
        return 0;
    }
    if (x->response.len + n > MAX_RESPONSE) {
        x->too_large = 1;
        return 0;   /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    return vc_buffer_add(&x->response, data, n) == 0 ? n : 0;
}

/* Keeps Retry-After (seconds or an HTTP date) for the retry policy. */
static size_t on_header(char *line, size_t size, size_t nitems, void *userdata) {
    static const char name[] = "retry-after:";
    vc_transfer *x = userdata;
    size_t n = size * nitems, i, len = sizeof name - 1;
    if (n > len && strncasecmp(line, name, len) == 0) {
        while (len < n && (line[len] == ' ' || line[len] == '\t')) len++;
        while (n > len && (line[n - 1] == '\r' || line[n - 1] == '\n' || line[n - 1] == ' ')) n--;
        for (i = 0; len + i < n && i < sizeof x->retry_after - 1; i++)
            x->retry_after[i] = line[len + i];
        x->retry_after[i] = '\0';
    }
    return size * nitems;
}

static void own(vc_transport *t, vc_transfer *x) {
    x->prev_all = NULL;
    x->next_all = t->all;
    if (t->all) t->all->prev_all = x;
    t->all = x;
}

vc_transfer *vc_transport_acquire(vc_transport *t, void *owner) {
    vc_transfer *x = t->idle.head;
    if (x) {
        list_remove(&t->idle, x);
    } else {
        x = calloc(1, sizeof *x);
        if (!x) return NULL;
        own(t, x);
    }
    x->state = FILLING;
    x->owner = owner;
    x->response.len = 0;
    x->errbuf[0] = x->retry_after[0] = '\0';
    x->result = CURLE_OK;
    x->status = 0;
    x->too_large = x->write_failed = 0;
    x->received = 0;
    x->started = x->ended = 0;
    x->sink = NULL;
    x->route = NULL;
    return x;
}

vc_buffer *vc_transfer_body(vc_transfer *x) {
    return &x->body;
}

static void submit(vc_transport *t, vc_transfer *x) {
    set_state(t, x, QUEUED);   /* handed to libcurl by a drive, in order */
}

void vc_transport_post(vc_transport *t, vc_transfer *x, CURLU *url, int how) {
    x->route = url;
    x->how = how;
    x->sign = t->options.gateway != NULL;
    submit(t, x);
}

/* The URL waits in the body buffer, which a GET does not use otherwise. */
int vc_transport_get(vc_transport *t, vc_transfer *x, const char *url, FILE *sink, int sign) {
    x->body.len = 0;
    if (vc_buffer_add(&x->body, url, strlen(url) + 1) != 0) return -1;
    x->sink = sink;
    x->how = VC_REUSE;
    x->sign = sign && t->options.gateway;
    x->max_download = t->options.max_download;
    submit(t, x);
    return 0;
}

int vc_transfer_done(const vc_transfer *x) {
    return x->state == ENDED || x->state == REPORTED;
}

void vc_transfer_outcome(const vc_transfer *x, vc_outcome *out) {
    out->result = x->result;
    out->status = x->status;
    out->too_large = x->too_large;
    out->write_failed = x->write_failed;
    out->error = x->errbuf[0] ? x->errbuf : curl_easy_strerror(x->result);
    out->retry_after = x->retry_after;
    out->seconds = x->ended > x->started ? x->ended - x->started : 0;
    out->secret = NULL;
    out->body = x->response.data ? x->response.data : "";
    out->len = x->response.len;
}

void vc_transfer_scrub(vc_transfer *x, const vc_secret *secret) {
    if (!x->response.data) return;
    vc_secret_scrub_bytes(secret, x->response.data, &x->response.len);
    x->response.data[x->response.len] = '\0';
}

int vc_transfer_close_sink(vc_transfer *x) {
    int failed = 0;
    if (x->sink) failed = fclose(x->sink) != 0;
    x->sink = NULL;
    return failed || x->write_failed ? -1 : 0;
}

/* An easy handle for x from the pool, set up with what every request shares. */
static CURL *take_easy(vc_transport *t) {
    CURL *e = t->easy_pooled ? t->easy_pool[--t->easy_pooled] : curl_easy_init();
    if (!e) return NULL;
    curl_easy_setopt(e, CURLOPT_USERAGENT, "lua-voiceclone/" VC_VERSION);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, t->options.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);     /* never SIGALRM a host */
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    /* Over TLS, wait for a connection that may turn out HTTP/2 and multiplex
     * rather than open another; plain HTTP/1.1 never multiplexes. */
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, (long)t->options.multiplex);
    return e;
}

static void give_back_easy(vc_transport *t, CURL *e) {
    if (t->easy_pooled < t->options.max_in_flight) t->easy_pool[t->easy_pooled++] = e;
    else curl_easy_cleanup(e);
}

/* CURLE_OK, or why the request cannot go safely: the options its safety
 * depends on are checked (vc_transport_new probed them once already). */
static CURLcode set_request(vc_transport *t, vc_transfer *x) {
    CURL *e = x->easy;
    int https = 0;
    CURLcode r;
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    if ((r = curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https")) ||
        (r = curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L)) ||
        (r = curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L)) ||
        (r = curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, (long)(x->how == VC_FRESH_CONNECTION))) ||
        (r = curl_easy_setopt(e, CURLOPT_FORBID_REUSE, (long)(x->how == VC_FRESH_CONNECTION))))
        return r;
    /* signed now, as it goes: a retry, or a request that waited its turn, is signed afresh */
    if (x->sign && !(x->headers = vc_gateway_sign(t->options.gateway, x->route ? t->headers : NULL)))
        return CURLE_OUT_OF_MEMORY;
    if (x->route) {   /* an API call: POST the body as JSON */
        curl_easy_setopt(e, CURLOPT_URL, NULL);
        curl_easy_setopt(e, CURLOPT_CURLU, x->route);
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body.data);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body.len);
        /* an API answer is small: a 16 KiB read buffer per request is waste */
        curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 4096L);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers ? x->headers : t->headers);
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, t->options.timeout_ms);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 0L);
        curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)0);
        return curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "https");   /* never followed */
    }
    /* A download: storage often redirects, never from https down to http;
     * a signed one is not followed, so the signature stays on the endpoint's
     * host. A stall as long as the client's timeout fails it, and so does
     * the whole taking longer than download_timeout or passing max_download. */
    https = strncasecmp(x->body.data, "https://", 8) == 0;   /* libcurl takes HTTPS:// too */
    if ((r = curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, https ? "https" : "http,https")) ||
        (r = curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, t->options.max_download)))
        return r;
    curl_easy_setopt(e, CURLOPT_CURLU, NULL);   /* else it wins over CURLOPT_URL */
    curl_easy_setopt(e, CURLOPT_URL, x->body.data);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, NULL);   /* a pooled handle's last body is gone */
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, (long)CURL_MAX_WRITE_SIZE);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, x->headers ? 0L : 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, t->options.download_timeout_ms);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (t->options.timeout_ms + 999) / 1000);
    return CURLE_OK;
}

/* x ended: its result is in, its handle goes back to the pool, and its
 * owner will be among the finished ones. */
static void end(vc_transport *t, vc_transfer *x, CURLcode result) {
    x->ended = vc_now();
    if (x->easy) {
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
        curl_multi_remove_handle(t->multi, x->easy);   /* its connection goes back to the cache */
        give_back_easy(t, x->easy);
        x->easy = NULL;
        t->running--;
    }
    curl_slist_free_all(x->headers);
    x->headers = NULL;
    x->result = result;
    t->endings++;
    /* NUL-terminated, so the body can be read as a C string */
    if (vc_buffer_add(&x->response, "", 1) == 0) x->response.len--;
    else if (x->result == CURLE_OK) x->result = CURLE_OUT_OF_MEMORY;
    set_state(t, x, ENDED);
}

void vc_transfer_detach(vc_transport *t, vc_transfer *x) {
    if (x->prev_all) x->prev_all->next_all = x->next_all;
    else t->all = x->next_all;
    if (x->next_all) x->next_all->prev_all = x->prev_all;
    set_state(t, x, DETACHED);
    x->owner = NULL;
}

void vc_transport_recycle(vc_transport *t, vc_transfer *x) {
    if (x->state == IDLE) return;
    if (x->state == DETACHED) own(t, x);
    if (x->state == RUNNING) {
        curl_multi_remove_handle(t->multi, x->easy);
        give_back_easy(t, x->easy);
        x->easy = NULL;
        t->running--;
    }
    if (x->sink) fclose(x->sink);
    x->sink = NULL;
    curl_slist_free_all(x->headers);
    x->headers = NULL;
    vc_buffer_wipe(&x->body);
    if (x->response.cap > KEEP_RESPONSE) vc_buffer_free(&x->response);
    else vc_buffer_wipe(&x->response);
    x->owner = NULL;
    set_state(t, x, IDLE);
}

static void collect_ended(vc_transport *t) {
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(t->multi, &left))) {
        vc_transfer *x;
        if (msg->msg != CURLMSG_DONE) continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        end(t, x, msg->data.result);
    }
}

/* Hands libcurl at most START_PER_DRIVE queued requests, within
 * max_in_flight: each may open a connection, and a thousand connects in one
 * call would stall a frame. */
static void hand_over(vc_transport *t) {
    int n;
    for (n = 0; n < START_PER_DRIVE && t->queued.head &&
                t->running < t->options.max_in_flight; n++) {
        vc_transfer *x = t->queued.head;
        CURLcode refused;
        set_state(t, x, RUNNING);
        x->started = vc_now();
        x->easy = take_easy(t);
        if (!x->easy) {
            end(t, x, CURLE_OUT_OF_MEMORY);
            continue;
        }
        t->running++;
        if ((refused = set_request(t, x)) != CURLE_OK) end(t, x, refused);
        else if (curl_multi_add_handle(t->multi, x->easy) != CURLM_OK) end(t, x, CURLE_FAILED_INIT);
    }
}

static int can_hand_over(const vc_transport *t) {
    return t->queued.head && t->running < t->options.max_in_flight;
}

static void act_on_timer(vc_transport *t) {
    int running;
    if (t->timer_due < 0 || vc_now() < t->timer_due) return;
    t->timer_due = -1;   /* libcurl sets a new one if it needs it */
    curl_multi_socket_action(t->multi, CURL_SOCKET_TIMEOUT, 0, &running);
}

void vc_transport_drive(vc_transport *t, double wait) {
    int i, nready = 0, running, timeout_ms;
    unsigned endings = t->endings;
    hand_over(t);
    act_on_timer(t);   /* a new request's "start now", before any waiting */
    /* On a kept-alive connection that start may have brought the whole
     * answer already: its owner is not to wait for a socket that stays
     * silent. Nor is anyone while more can be handed over. */
    collect_ended(t);
    if (t->endings != endings || can_hand_over(t)) wait = 0;
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
    act_on_timer(t);
    collect_ended(t);
}

int vc_transport_finished(const vc_transport *t) {
    const vc_transfer *x;
    int n = 0;
    for (x = t->ended.head; x; x = x->next) n++;
    return n;
}

void *vc_transport_take_finished(vc_transport *t) {
    vc_transfer *x = t->ended.head;
    if (!x) return NULL;
    set_state(t, x, REPORTED);
    return x->owner;
}

double vc_transport_due(const vc_transport *t) {
    double left;
    if (can_hand_over(t) || t->ended.head) return 0;
    if (t->timer_due < 0) return -1;
    left = t->timer_due - vc_now();
    return left > 0 ? left : 0;
}

int vc_transport_sockets(const vc_transport *t, const struct pollfd **sockets) {
    *sockets = t->sockets;
    return t->nsockets;
}
