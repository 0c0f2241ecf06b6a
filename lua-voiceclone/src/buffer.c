/*
 * Growable byte buffers in C memory, for what must never be a Lua string
 * (a request body holds the secret key) or must outlive a Lua call (an
 * answer arriving while Lua runs something else). Wiped before reuse.
 */
#include <stdlib.h>
#include <string.h>
#include "vc.h"

/* Grows by moving, never realloc: the old block may hold the key, and is
 * wiped before it is freed. */
int vc_buffer_add(vc_buffer *b, const char *s, size_t n) {
    if (n == 0) return 0;   /* libcurl may pass no bytes; b->data may still be NULL */
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 1024;
        char *data;
        while (cap - b->len < n) {
            if (cap > (size_t)-1 / 2) return -1;
            cap *= 2;
        }
        data = malloc(cap);
        if (!data) return -1;
        if (b->data) {
            memcpy(data, b->data, b->len);
            vc_wipe(b->data, b->cap);
            free(b->data);
        }
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return 0;
}

int vc_buffer_put(void *buffer, const char *s, size_t n) {
    return vc_buffer_add(buffer, s, n);
}

/* memset through a volatile pointer: the compiler may not drop a wipe of
 * memory it sees freed later, nor turn it into a byte loop. */
static void *(*const volatile wipe_memset)(void *, int, size_t) = memset;

void vc_wipe(void *p, size_t n) {
    wipe_memset(p, 0, n);
}

void vc_buffer_wipe(vc_buffer *b) {
    if (b->data) vc_wipe(b->data, b->len);
    b->len = 0;
}

void vc_buffer_free(vc_buffer *b) {
    vc_buffer_wipe(b);
    free(b->data);
    b->data = NULL;
    b->cap = 0;
}
