/*
 * Growable byte buffers in C memory, for what must never be a Lua string
 * (a request body holds the secret key) or must outlive a Lua call (an
 * answer arriving while Lua runs something else). Wiped before reuse.
 */
#include <stdlib.h>
#include <string.h>
#include "vc.h"

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

int vc_buffer_put(void *buffer, const char *s, size_t n) {
    return vc_buffer_add(buffer, s, n);
}

/* volatile: the compiler may not drop a wipe of memory it sees freed later */
void vc_wipe(void *p, size_t n) {
    volatile char *v = p;
    while (n--) *v++ = 0;
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
