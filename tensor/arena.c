/* The activation arena: blocks of memory handed out by bumping a pointer.
 * reset() rewinds to the first block and keeps every block, so after the first
 * training step the arena has grown to what a step needs and no more malloc happens. */
#include "tensor.h"

#include <stdlib.h>
#include <string.h>

struct ArenaBlock {
    ArenaBlock *next;
    size_t size, used;
    char *mem;
};

#define ARENA_ALIGN 64

static ArenaBlock *arena_block_new(size_t size) {
    ArenaBlock *b = malloc(sizeof *b);
    if (!b) return NULL;
    b->mem = aligned_alloc(ARENA_ALIGN, (size + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN);
    if (!b->mem) { free(b); return NULL; }
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

int arena_init(Arena *a, size_t block_size) {
    memset(a, 0, sizeof *a);
    a->block_size = block_size ? block_size : (size_t)64 << 20;
    a->blocks = a->head = arena_block_new(a->block_size);
    if (!a->blocks) return vcm_fail(VCM_ERR, "out of memory: arena block of %zu bytes", a->block_size);
    return VCM_OK;
}

void *arena_alloc(Arena *a, size_t bytes) {
    size_t need = (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    if (need == 0) need = ARENA_ALIGN;
    if (!a->head) { vcm_fail(VCM_ERR, "arena used before arena_init"); return NULL; }
    /* Walk forward through blocks kept from earlier steps before making a new one. */
    while (a->head->used + need > a->head->size) {
        if (!a->head->next) {
            size_t size = need > a->block_size ? need : a->block_size;
            ArenaBlock *b = arena_block_new(size);
            if (!b) { vcm_fail(VCM_ERR, "out of memory: arena block of %zu bytes", size); return NULL; }
            a->head->next = b;
        }
        a->head = a->head->next;
    }
    void *p = a->head->mem + a->head->used;
    a->head->used += need;
    a->used += need;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}

void arena_reset(Arena *a) {
    for (ArenaBlock *b = a->blocks; b; b = b->next) b->used = 0;
    a->head = a->blocks;
    a->used = 0;
}

void arena_free(Arena *a) {
    ArenaBlock *b = a->blocks;
    while (b) {
        ArenaBlock *next = b->next;
        free(b->mem);
        free(b);
        b = next;
    }
    memset(a, 0, sizeof *a);
}
