/*
 * The HTTP transport: libcurl's multi interface, one per client, so every
 * request of a client shares one connection cache (keep-alive, and HTTP/2
 * multiplexing where the server offers it).
 *
 * Nothing here touches Lua: callbacks only copy bytes into C buffers, so a
 * Lua error can never cross libcurl's frames.
 */
#include <stdlib.h>
#include <string.h>
#include "vc.h"

/* A body larger than this is not an answer of this API: stop reading. */
#define VC_MAX_RESPONSE (16u * 1024u * 1024u)

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

static void global_init_once(void) {
    /* Process-wide and not thread-safe before 7.84: done once, never undone
     * (a finalizer must not pull libcurl from under another user of it). */
    static int initialised = 0;
    if (!initialised) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        initialised = 1;
    }
}

int vc_transport_init(vc_transport *t, long timeout_ms, long connect_timeout_ms) {
    static const char *const headers[] = {
        "Content-Type: application/json",
        "Accept: application/json",
        "Expect:",                   /* no 100-continue round trip */
    };
    size_t i;
    global_init_once();
    t->timeout_ms = timeout_ms;
    t->connect_timeout_ms = connect_timeout_ms;
    t->multi = curl_multi_init();
    if (!t->multi) return -1;
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
            if (t->multi) curl_multi_remove_handle(t->multi, x->easy);
            curl_easy_cleanup(x->easy);
        }
        vc_buffer_free(&x->request);
        vc_buffer_free(&x->response);
        free(x);
    }
    if (t->multi) curl_multi_cleanup(t->multi);
    t->multi = NULL;
    curl_slist_free_all(t->headers);
    t->headers = NULL;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata) {
    vc_transfer *x = userdata;
    size_t n = size * nmemb;
    if (x->response.len + n > VC_MAX_RESPONSE) {
        x->too_large = 1;
        return 0;   /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    return vc_buffer_add(&x->response, data, n) == 0 ? n : 0;
}

vc_transfer *vc_transport_acquire(vc_transport *t) {
    vc_transfer *x = t->transfers;
    while (x && x->busy) x = x->next;
    if (!x) {
        x = calloc(1, sizeof *x);
        if (!x) return NULL;
        x->easy = curl_easy_init();
        if (!x->easy) {
            free(x);
            return NULL;
        }
        x->next = t->transfers;
        t->transfers = x;
    }
    x->busy = 1;
    x->request.len = x->response.len = 0;
    x->errbuf[0] = '\0';
    x->result = CURLE_OK;
    x->status = 0;
    x->done = x->too_large = 0;
    return x;
}

/* Gives x back for the next request; its response stays readable until then. */
void vc_transport_recycle(vc_transfer *x) {
    vc_buffer_wipe(&x->request);
    x->busy = 0;
}

static void collect_finished(vc_transport *t) {
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(t->multi, &left))) {
        vc_transfer *x;
        if (msg->msg != CURLMSG_DONE) continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        x->result = msg->data.result;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &x->status);
        x->done = 1;
    }
}

/* Performs x to completion; x->result, x->status and x->response say how
 * it went. The request body must already be in x->request. */
void vc_transport_run(vc_transport *t, vc_transfer *x, const char *url) {
    CURL *e = x->easy;
    CURLMcode mc;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->request.data);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->request.len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "lua-voiceclone/0.1");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, t->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, t->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);     /* never SIGALRM a host */
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);      /* prefer multiplexing */

    mc = curl_multi_add_handle(t->multi, e);
    if (mc != CURLM_OK) {
        x->result = CURLE_FAILED_INIT;
        x->done = 1;
        return;
    }
    while (!x->done) {
        int running = 0;
        mc = curl_multi_perform(t->multi, &running);
        collect_finished(t);
        if (x->done || mc != CURLM_OK) break;
        curl_multi_poll(t->multi, NULL, 0, 1000, NULL);
    }
    if (!x->done) {   /* the multi handle itself failed */
        x->result = CURLE_FAILED_INIT;
        x->done = 1;
    }
    /* NUL-terminated, so the body can be read as a C string */
    if (vc_buffer_add(&x->response, "", 1) == 0) x->response.len--;
    else if (x->result == CURLE_OK) x->result = CURLE_OUT_OF_MEMORY;
    curl_multi_remove_handle(t->multi, e);
}
