/* What each category looks like: a drawing from primitives inside the object's box, in
 * unit coordinates (u right, v down, the box is [0,1]^2). `col` is the object's colour
 * (the one its description names); details use fixed colours. Each silhouette is made
 * to stay recognisable when the 256x192 image is shrunk to 64x64: a few large parts,
 * high-contrast details (wheels, windows, stems), no thin lines that carry identity. */
#include "data/synth_internal.h"

#include <math.h>
#include <string.h>

static const uint8_t BLACK[3] = {25, 25, 28}, WHITE[3] = {250, 250, 250}, GREY[3] = {150, 150, 155},
                     DGREY[3] = {80, 80, 85}, BROWN[3] = {120, 75, 35}, DBROWN[3] = {80, 50, 25},
                     LEAF[3] = {35, 125, 40}, GLASS[3] = {175, 220, 245},
                     ORANGE[3] = {245, 140, 30}, YELLOW[3] = {250, 220, 50}, RED[3] = {215, 35, 35},
                     GREEN[3] = {40, 190, 70}, CREAM[3] = {245, 235, 205}, CONE[3] = {215, 170, 100};

static void darker(uint8_t out[3], const uint8_t in[3], int pct) {
    for (int i = 0; i < 3; i++) out[i] = (uint8_t)(in[i] * (100 - pct) / 100);
}
/* A contrasting detail colour: black on light colours, white on dark ones. */
static const uint8_t *contrast(const uint8_t c[3]) {
    return (c[0] * 3 + c[1] * 6 + c[2]) / 10 > 140 ? BLACK : WHITE;
}

static void apple(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    dc_ellipse(c, 0.36f, 0.6f, 0.36f, 0.4f, col);
    dc_ellipse(c, 0.64f, 0.6f, 0.36f, 0.4f, col);
    dc_rect(c, 0.46f, 0.0f, 0.55f, 0.26f, DBROWN);
    dc_ellipse(c, 0.7f, 0.12f, 0.17f, 0.08f, LEAF);
}

static void ball(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    dc_ellipse(c, 0.5f, 0.5f, 0.5f, 0.5f, col);
    dc_ellipse(c, 0.5f, 0.5f, 0.5f, 0.13f, WHITE);
    dc_ellipse(c, 0.5f, 0.5f, 0.13f, 0.5f, WHITE);
    dc_ellipse(c, 0.5f, 0.5f, 0.12f, 0.12f, col);
}

static void banana(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    float uv[40];
    int n = 0;
    for (int i = 0; i <= 9; i++) { /* outer arc left to right, then inner arc back */
        float t = (float)i / 9.0f;
        uv[n++] = t;
        uv[n++] = 0.15f + 0.85f * (1.0f - 4.0f * (t - 0.5f) * (t - 0.5f));
    }
    for (int i = 9; i >= 0; i--) {
        float t = (float)i / 9.0f;
        uv[n++] = 0.1f + 0.8f * t;
        uv[n++] = 0.1f + 0.5f * (1.0f - 4.0f * (t - 0.5f) * (t - 0.5f));
    }
    dc_poly(c, uv, 20, col);
    dc_rect(c, 0.0f, 0.08f, 0.1f, 0.22f, DBROWN);
    dc_rect(c, 0.9f, 0.08f, 1.0f, 0.22f, DBROWN);
}

static void carrot(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    dc_tri(c, 0.1f, 0.3f, 0.9f, 0.3f, 0.5f, 1.0f, col);
    dc_tri(c, 0.3f, 0.32f, 0.45f, 0.32f, 0.15f, 0.0f, LEAF);
    dc_tri(c, 0.42f, 0.32f, 0.58f, 0.32f, 0.5f, 0.0f, LEAF);
    dc_tri(c, 0.55f, 0.32f, 0.7f, 0.32f, 0.85f, 0.0f, LEAF);
}

static void mushroom(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    dc_rect(c, 0.34f, 0.45f, 0.66f, 1.0f, CREAM);
    float uv[24];
    for (int i = 0; i <= 10; i++) {
        float t = (float)i / 10.0f * 3.14159265f;
        uv[2 * i] = 0.5f - 0.5f * cosf(t);
        uv[2 * i + 1] = 0.55f - 0.55f * sinf(t);
    }
    dc_poly(c, uv, 11, col);
    dc_ellipse(c, 0.3f, 0.3f, 0.07f, 0.07f, WHITE);
    dc_ellipse(c, 0.62f, 0.2f, 0.08f, 0.08f, WHITE);
    dc_ellipse(c, 0.75f, 0.42f, 0.06f, 0.06f, WHITE);
}

static void cake(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    dc_rect(c, 0.0f, 0.35f, 1.0f, 1.0f, col);
    dc_rect(c, 0.0f, 0.3f, 1.0f, 0.42f, WHITE);
    dc_rect(c, 0.0f, 0.64f, 1.0f, 0.71f, WHITE);
    dc_rect(c, 0.45f, 0.08f, 0.55f, 0.3f, RED);
    dc_ellipse(c, 0.5f, 0.05f, 0.06f, 0.06f, YELLOW);
}

static void ice_cream(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    dc_tri(c, 0.12f, 0.45f, 0.88f, 0.45f, 0.5f, 1.0f, CONE);
    dc_line(c, 0.3f, 0.5f, 0.6f, 0.85f, 1.2f, DBROWN);
    dc_line(c, 0.7f, 0.5f, 0.4f, 0.85f, 1.2f, DBROWN);
    dc_ellipse(c, 0.5f, 0.3f, 0.45f, 0.3f, col);
}

static void pizza(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    dc_tri(c, 0.0f, 0.1f, 1.0f, 0.1f, 0.5f, 1.0f, col);
    dc_rect(c, 0.0f, 0.0f, 1.0f, 0.16f, BROWN);
    dc_ellipse(c, 0.35f, 0.3f, 0.09f, 0.08f, RED);
    dc_ellipse(c, 0.62f, 0.35f, 0.09f, 0.08f, RED);
    dc_ellipse(c, 0.5f, 0.6f, 0.08f, 0.07f, RED);
}

static void cup(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    uint8_t d[3];
    darker(d, col, 35);
    dc_ring(c, 0.78f, 0.5f, 0.2f, 0.24f, 0.12f, col);
    float body[8] = {0.02f, 0.08f, 0.72f, 0.08f, 0.64f, 1.0f, 0.1f, 1.0f};
    dc_poly(c, body, 4, col);
    dc_rect(c, 0.02f, 0.06f, 0.72f, 0.14f, d);
}

static void bottle(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    dc_rect(c, 0.05f, 0.38f, 0.95f, 1.0f, col);
    float sh[8] = {0.05f, 0.4f, 0.95f, 0.4f, 0.66f, 0.2f, 0.34f, 0.2f};
    dc_poly(c, sh, 4, col);
    dc_rect(c, 0.34f, 0.06f, 0.66f, 0.22f, col);
    dc_rect(c, 0.3f, 0.0f, 0.7f, 0.08f, DGREY);
    dc_rect(c, 0.05f, 0.58f, 0.95f, 0.76f, WHITE);
}

static void knife(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    float blade[8] = {0.0f, 0.85f, 0.12f, 0.15f, 0.6f, 0.15f, 0.6f, 0.85f};
    dc_poly(c, blade, 4, (const uint8_t[3]){200, 200, 210});
    dc_rect(c, 0.58f, 0.1f, 0.63f, 0.9f, DGREY);
    dc_rect(c, 0.63f, 0.2f, 1.0f, 0.8f, col);
    dc_ellipse(c, 0.74f, 0.5f, 0.025f, 0.09f, contrast(col));
    dc_ellipse(c, 0.89f, 0.5f, 0.025f, 0.09f, contrast(col));
}

static void bucket(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    dc_line(c, 0.08f, 0.32f, 0.3f, 0.02f, 2.0f, DGREY);
    dc_line(c, 0.3f, 0.02f, 0.7f, 0.02f, 2.0f, DGREY);
    dc_line(c, 0.7f, 0.02f, 0.92f, 0.32f, 2.0f, DGREY);
    float body[8] = {0.0f, 0.3f, 1.0f, 0.3f, 0.82f, 1.0f, 0.18f, 1.0f};
    dc_poly(c, body, 4, col);
    dc_rect(c, 0.0f, 0.28f, 1.0f, 0.38f, DGREY);
}

static void clock_(DrawCtx *c, const uint8_t *col, SRng *r) {
    dc_ellipse(c, 0.5f, 0.5f, 0.5f, 0.5f, col);
    dc_ellipse(c, 0.5f, 0.5f, 0.38f, 0.38f, WHITE);
    float a = (float)srng_unif(r) * 6.283f;
    dc_line(c, 0.5f, 0.5f, 0.5f, 0.18f, 2.0f, BLACK);
    dc_line(c, 0.5f, 0.5f, 0.5f + 0.22f * cosf(a), 0.5f + 0.22f * sinf(a), 2.0f, BLACK);
    dc_ellipse(c, 0.5f, 0.5f, 0.06f, 0.06f, BLACK);
}

static void lamp(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    dc_rect(c, 0.44f, 0.4f, 0.56f, 0.95f, DGREY);
    dc_ellipse(c, 0.5f, 0.95f, 0.35f, 0.05f, BLACK);
    float shade[8] = {0.22f, 0.0f, 0.78f, 0.0f, 1.0f, 0.42f, 0.0f, 0.42f};
    dc_poly(c, shade, 4, col);
}

static void book(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    uint8_t d[3];
    darker(d, col, 40);
    dc_rect(c, 0.0f, 0.0f, 1.0f, 1.0f, col);
    dc_rect(c, 0.0f, 0.0f, 0.16f, 1.0f, d);
    dc_rect(c, 0.88f, 0.04f, 1.0f, 0.96f, WHITE);
    dc_rect(c, 0.3f, 0.2f, 0.75f, 0.34f, YELLOW);
}

static void chair(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    uint8_t d[3];
    darker(d, col, 30);
    dc_rect(c, 0.0f, 0.0f, 0.18f, 1.0f, d);
    dc_rect(c, 0.0f, 0.05f, 0.2f, 0.55f, col);
    dc_rect(c, 0.0f, 0.5f, 1.0f, 0.62f, col);
    dc_rect(c, 0.84f, 0.6f, 1.0f, 1.0f, d);
    dc_rect(c, 0.4f, 0.6f, 0.52f, 0.92f, d);
}

static void table(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    uint8_t d[3];
    darker(d, col, 30);
    dc_rect(c, 0.0f, 0.0f, 1.0f, 0.18f, col);
    dc_rect(c, 0.06f, 0.18f, 0.16f, 1.0f, d);
    dc_rect(c, 0.84f, 0.18f, 0.94f, 1.0f, d);
    dc_rect(c, 0.06f, 0.18f, 0.94f, 0.26f, d);
}

static void candle(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    dc_rect(c, 0.15f, 0.35f, 0.85f, 1.0f, col);
    dc_rect(c, 0.46f, 0.25f, 0.54f, 0.36f, BLACK);
    dc_ellipse(c, 0.5f, 0.14f, 0.3f, 0.14f, ORANGE);
    dc_ellipse(c, 0.5f, 0.17f, 0.14f, 0.08f, YELLOW);
}

static void kite(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    uint8_t light[3];
    for (int i = 0; i < 3; i++) light[i] = (uint8_t)((col[i] + 2 * 255) / 3);
    dc_line(c, 0.5f, 0.6f, 0.4f, 0.8f, 1.5f, DGREY);
    dc_line(c, 0.4f, 0.8f, 0.55f, 1.0f, 1.5f, DGREY);
    dc_tri(c, 0.33f, 0.74f, 0.47f, 0.86f, 0.33f, 0.86f, col);
    dc_tri(c, 0.47f, 0.9f, 0.6f, 0.98f, 0.47f, 1.0f, col);
    /* two-tone diamond: quarters in the colour and a pale tint, like a real kite */
    dc_tri(c, 0.5f, 0.0f, 0.5f, 0.26f, 0.0f, 0.26f, col);
    dc_tri(c, 0.5f, 0.0f, 1.0f, 0.26f, 0.5f, 0.26f, light);
    dc_tri(c, 0.0f, 0.26f, 0.5f, 0.26f, 0.5f, 0.62f, light);
    dc_tri(c, 0.5f, 0.26f, 1.0f, 0.26f, 0.5f, 0.62f, col);
    dc_line(c, 0.5f, 0.0f, 0.5f, 0.62f, 2.0f, DBROWN);
    dc_line(c, 0.0f, 0.26f, 1.0f, 0.26f, 2.0f, DBROWN);
}

static void balloon(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    dc_line(c, 0.5f, 0.7f, 0.4f, 1.0f, 1.2f, DGREY);
    dc_tri(c, 0.42f, 0.74f, 0.58f, 0.74f, 0.5f, 0.66f, col);
    dc_ellipse(c, 0.5f, 0.35f, 0.5f, 0.35f, col);
    dc_ellipse(c, 0.33f, 0.2f, 0.08f, 0.08f, WHITE);
}

static void umbrella(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    dc_rect(c, 0.47f, 0.4f, 0.53f, 0.92f, BLACK);
    dc_line(c, 0.5f, 0.9f, 0.44f, 0.99f, 2.5f, BLACK);
    dc_line(c, 0.44f, 0.99f, 0.34f, 0.99f, 2.5f, BLACK);
    dc_line(c, 0.34f, 0.99f, 0.3f, 0.92f, 2.5f, BLACK);
    float uv[30];
    for (int i = 0; i <= 12; i++) {
        float t = (float)i / 12.0f * 3.14159265f;
        uv[2 * i] = 0.5f - 0.5f * cosf(t);
        uv[2 * i + 1] = 0.45f - 0.45f * sinf(t);
    }
    dc_poly(c, uv, 13, col);
    dc_line(c, 0.5f, 0.0f, 0.5f, 0.45f, 1.2f, contrast(col));
}

static void guitar(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    dc_rect(c, 0.4f, 0.0f, 0.6f, 0.5f, DBROWN);
    dc_rect(c, 0.32f, 0.0f, 0.68f, 0.08f, BLACK);
    dc_ellipse(c, 0.5f, 0.78f, 0.5f, 0.22f, col);
    dc_ellipse(c, 0.5f, 0.52f, 0.38f, 0.16f, col);
    dc_ellipse(c, 0.5f, 0.64f, 0.16f, 0.06f, BLACK);
    dc_rect(c, 0.3f, 0.86f, 0.7f, 0.9f, DBROWN);
}

static void hat(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    uint8_t d[3];
    darker(d, col, 30);
    dc_ellipse(c, 0.5f, 0.86f, 0.5f, 0.14f, d);
    dc_rect(c, 0.2f, 0.0f, 0.8f, 0.86f, col);
    dc_rect(c, 0.2f, 0.58f, 0.8f, 0.72f, col[0] > 150 && col[1] < 100 ? BLACK : RED);
}

static void car(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    float cab[8] = {0.18f, 0.48f, 0.3f, 0.05f, 0.68f, 0.05f, 0.84f, 0.48f};
    dc_poly(c, cab, 4, col);
    float w1[8] = {0.28f, 0.45f, 0.35f, 0.14f, 0.48f, 0.14f, 0.48f, 0.45f};
    float w2[8] = {0.54f, 0.45f, 0.54f, 0.14f, 0.65f, 0.14f, 0.76f, 0.45f};
    dc_poly(c, w1, 4, GLASS);
    dc_poly(c, w2, 4, GLASS);
    dc_rect(c, 0.0f, 0.45f, 1.0f, 0.8f, col);
    dc_rect(c, 0.93f, 0.5f, 1.0f, 0.6f, YELLOW);
    dc_ellipse(c, 0.23f, 0.8f, 0.11f, 0.2f, BLACK);
    dc_ellipse(c, 0.77f, 0.8f, 0.11f, 0.2f, BLACK);
    dc_ellipse(c, 0.23f, 0.8f, 0.05f, 0.09f, GREY);
    dc_ellipse(c, 0.77f, 0.8f, 0.05f, 0.09f, GREY);
}

static void bus(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    dc_rect(c, 0.0f, 0.0f, 1.0f, 0.84f, col);
    for (int i = 0; i < 5; i++) {
        float u = 0.05f + (float)i * 0.15f;
        dc_rect(c, u, 0.12f, u + 0.11f, 0.45f, GLASS);
    }
    dc_rect(c, 0.82f, 0.12f, 0.94f, 0.78f, GLASS);
    dc_rect(c, 0.0f, 0.58f, 1.0f, 0.64f, WHITE);
    dc_ellipse(c, 0.18f, 0.84f, 0.07f, 0.16f, BLACK);
    dc_ellipse(c, 0.72f, 0.84f, 0.07f, 0.16f, BLACK);
}

static void bicycle(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    dc_ring(c, 0.2f, 0.7f, 0.2f, 0.3f, 0.12f, BLACK);
    dc_ring(c, 0.8f, 0.7f, 0.2f, 0.3f, 0.12f, BLACK);
    dc_line(c, 0.2f, 0.7f, 0.42f, 0.3f, 3.0f, col);
    dc_line(c, 0.42f, 0.3f, 0.5f, 0.7f, 3.0f, col);
    dc_line(c, 0.2f, 0.7f, 0.5f, 0.7f, 3.0f, col);
    dc_line(c, 0.42f, 0.3f, 0.74f, 0.3f, 3.0f, col);
    dc_line(c, 0.74f, 0.3f, 0.5f, 0.7f, 3.0f, col);
    dc_line(c, 0.8f, 0.7f, 0.72f, 0.1f, 3.0f, col);
    dc_rect(c, 0.32f, 0.16f, 0.5f, 0.24f, BLACK);
    dc_rect(c, 0.64f, 0.05f, 0.84f, 0.12f, BLACK);
}

static void boat(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    dc_rect(c, 0.48f, 0.02f, 0.53f, 0.65f, DBROWN);
    dc_tri(c, 0.55f, 0.02f, 0.55f, 0.58f, 0.95f, 0.58f, WHITE);
    dc_tri(c, 0.46f, 0.12f, 0.46f, 0.58f, 0.14f, 0.58f, (const uint8_t[3]){235, 235, 225});
    float hull[8] = {0.0f, 0.62f, 1.0f, 0.62f, 0.82f, 1.0f, 0.18f, 1.0f};
    dc_poly(c, hull, 4, col);
    dc_rect(c, 0.02f, 0.62f, 0.98f, 0.69f, contrast(col));
}

static void airplane(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    uint8_t d[3];
    darker(d, col, 25);
    float wing1[8] = {0.38f, 0.5f, 0.62f, 0.5f, 0.44f, 1.0f, 0.32f, 1.0f};
    float wing2[8] = {0.38f, 0.5f, 0.62f, 0.5f, 0.44f, 0.0f, 0.32f, 0.0f};
    dc_poly(c, wing1, 4, d);
    dc_poly(c, wing2, 4, d);
    dc_tri(c, 0.0f, 0.15f, 0.12f, 0.5f, 0.0f, 0.5f, d);
    dc_ellipse(c, 0.5f, 0.5f, 0.5f, 0.13f, col);
    for (int i = 0; i < 5; i++) dc_ellipse(c, 0.6f + (float)i * 0.06f, 0.47f, 0.015f, 0.035f, GLASS);
}

static void fish(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    uint8_t d[3];
    darker(d, col, 25);
    dc_tri(c, 0.72f, 0.5f, 1.0f, 0.08f, 1.0f, 0.92f, d);
    dc_ellipse(c, 0.4f, 0.5f, 0.4f, 0.38f, col);
    dc_tri(c, 0.35f, 0.2f, 0.55f, 0.16f, 0.45f, 0.0f, d);
    dc_ellipse(c, 0.18f, 0.42f, 0.07f, 0.1f, WHITE);
    dc_ellipse(c, 0.17f, 0.42f, 0.035f, 0.05f, BLACK);
}

static void bird(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    uint8_t d[3];
    darker(d, col, 35);
    dc_line(c, 0.45f, 0.75f, 0.42f, 1.0f, 1.5f, ORANGE);
    dc_line(c, 0.55f, 0.75f, 0.58f, 1.0f, 1.5f, ORANGE);
    dc_tri(c, 0.25f, 0.5f, 0.0f, 0.3f, 0.0f, 0.6f, d);
    dc_ellipse(c, 0.48f, 0.55f, 0.3f, 0.23f, col);
    dc_ellipse(c, 0.76f, 0.32f, 0.15f, 0.2f, col);
    dc_tri(c, 0.88f, 0.26f, 1.0f, 0.34f, 0.88f, 0.4f, ORANGE);
    dc_tri(c, 0.3f, 0.45f, 0.62f, 0.48f, 0.38f, 0.15f, d);
    dc_ellipse(c, 0.8f, 0.28f, 0.03f, 0.04f, contrast(col));
}

static void duck(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    uint8_t d[3];
    darker(d, col, 15);
    dc_ellipse(c, 0.45f, 0.72f, 0.45f, 0.28f, col);
    dc_tri(c, 0.0f, 0.5f, 0.15f, 0.62f, 0.0f, 0.72f, col);
    dc_ellipse(c, 0.74f, 0.28f, 0.18f, 0.24f, col);
    dc_rect(c, 0.64f, 0.4f, 0.8f, 0.62f, col);
    float beak[8] = {0.88f, 0.3f, 1.0f, 0.32f, 1.0f, 0.4f, 0.88f, 0.42f};
    dc_poly(c, beak, 4, ORANGE);
    dc_ellipse(c, 0.4f, 0.66f, 0.2f, 0.1f, d);
    dc_ellipse(c, 0.78f, 0.22f, 0.035f, 0.045f, BLACK);
}

static void dog(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    uint8_t d[3];
    darker(d, col, 35);
    if (col[0] < 60) { d[0] = 90; d[1] = 90; d[2] = 90; }
    dc_line(c, 0.12f, 0.4f, 0.0f, 0.12f, 3.0f, col);
    dc_rect(c, 0.12f, 0.35f, 0.75f, 0.68f, col);
    dc_rect(c, 0.15f, 0.6f, 0.25f, 1.0f, col);
    dc_rect(c, 0.3f, 0.6f, 0.4f, 1.0f, col);
    dc_rect(c, 0.52f, 0.6f, 0.62f, 1.0f, col);
    dc_rect(c, 0.65f, 0.6f, 0.75f, 1.0f, col);
    dc_ellipse(c, 0.8f, 0.26f, 0.16f, 0.22f, col);
    dc_rect(c, 0.84f, 0.26f, 1.0f, 0.42f, col);
    dc_ellipse(c, 0.72f, 0.3f, 0.07f, 0.2f, d);
    dc_ellipse(c, 0.99f, 0.3f, 0.03f, 0.05f, BLACK);
    dc_ellipse(c, 0.86f, 0.2f, 0.03f, 0.04f, BLACK);
}

static void cat(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    dc_line(c, 0.7f, 0.95f, 0.98f, 0.7f, 3.0f, col);
    dc_line(c, 0.98f, 0.7f, 0.95f, 0.45f, 3.0f, col);
    dc_ellipse(c, 0.45f, 0.68f, 0.36f, 0.32f, col);
    dc_ellipse(c, 0.45f, 0.3f, 0.28f, 0.2f, col);
    dc_tri(c, 0.18f, 0.28f, 0.22f, 0.0f, 0.38f, 0.15f, col);
    dc_tri(c, 0.52f, 0.15f, 0.68f, 0.0f, 0.72f, 0.28f, col);
    dc_ellipse(c, 0.36f, 0.3f, 0.045f, 0.04f, GREEN);
    dc_ellipse(c, 0.56f, 0.3f, 0.045f, 0.04f, GREEN);
    dc_tri(c, 0.42f, 0.38f, 0.5f, 0.38f, 0.46f, 0.42f, (const uint8_t[3]){240, 120, 150});
}

static void butterfly(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    uint8_t d[3];
    darker(d, col, 25);
    dc_ellipse(c, 0.27f, 0.3f, 0.26f, 0.3f, col);
    dc_ellipse(c, 0.73f, 0.3f, 0.26f, 0.3f, col);
    dc_ellipse(c, 0.3f, 0.75f, 0.19f, 0.23f, d);
    dc_ellipse(c, 0.7f, 0.75f, 0.19f, 0.23f, d);
    dc_ellipse(c, 0.25f, 0.28f, 0.08f, 0.09f, WHITE);
    dc_ellipse(c, 0.75f, 0.28f, 0.08f, 0.09f, WHITE);
    dc_ellipse(c, 0.5f, 0.55f, 0.05f, 0.4f, BLACK);
    dc_line(c, 0.5f, 0.18f, 0.38f, 0.0f, 1.2f, BLACK);
    dc_line(c, 0.5f, 0.18f, 0.62f, 0.0f, 1.2f, BLACK);
}

static void turtle(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    uint8_t d[3];
    darker(d, col, 40);
    const uint8_t skin[3] = {150, 190, 100};
    dc_rect(c, 0.2f, 0.7f, 0.32f, 1.0f, skin);
    dc_rect(c, 0.62f, 0.7f, 0.74f, 1.0f, skin);
    dc_ellipse(c, 0.88f, 0.55f, 0.12f, 0.16f, skin);
    dc_tri(c, 0.08f, 0.7f, 0.0f, 0.8f, 0.1f, 0.82f, skin);
    float uv[26];
    for (int i = 0; i <= 12; i++) {
        float t = (float)i / 12.0f * 3.14159265f;
        uv[2 * i] = 0.47f - 0.42f * cosf(t);
        uv[2 * i + 1] = 0.8f - 0.8f * sinf(t);
    }
    dc_poly(c, uv, 13, col);
    dc_ellipse(c, 0.47f, 0.45f, 0.14f, 0.18f, d);
    dc_ellipse(c, 0.22f, 0.6f, 0.07f, 0.12f, d);
    dc_ellipse(c, 0.72f, 0.6f, 0.07f, 0.12f, d);
    dc_ellipse(c, 0.92f, 0.5f, 0.025f, 0.04f, BLACK);
}

static void tree(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    uint8_t d[3];
    darker(d, col, 25);
    dc_rect(c, 0.4f, 0.55f, 0.6f, 1.0f, BROWN);
    dc_ellipse(c, 0.5f, 0.36f, 0.5f, 0.34f, col);
    dc_ellipse(c, 0.3f, 0.48f, 0.2f, 0.14f, d);
    dc_ellipse(c, 0.7f, 0.45f, 0.2f, 0.14f, d);
    dc_ellipse(c, 0.5f, 0.2f, 0.18f, 0.12f, d);
}

static void flower(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    dc_rect(c, 0.45f, 0.4f, 0.55f, 1.0f, LEAF);
    dc_ellipse(c, 0.28f, 0.72f, 0.2f, 0.07f, LEAF);
    dc_ellipse(c, 0.72f, 0.62f, 0.2f, 0.07f, LEAF);
    for (int i = 0; i < 6; i++) {
        float a = (float)i * 1.0472f;
        dc_ellipse(c, 0.5f + 0.3f * cosf(a), 0.28f + 0.18f * sinf(a), 0.2f, 0.12f, col);
    }
    dc_ellipse(c, 0.5f, 0.28f, 0.16f, 0.1f, col[0] > 200 && col[1] > 200 ? ORANGE : YELLOW);
}

static void house(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    const uint8_t roof[3] = {150, 50, 40};
    dc_rect(c, 0.1f, 0.42f, 0.9f, 1.0f, col);
    dc_tri(c, 0.0f, 0.45f, 0.5f, 0.0f, 1.0f, 0.45f, col[0] > 200 && col[1] < 150 ? DGREY : roof);
    dc_rect(c, 0.42f, 0.66f, 0.58f, 1.0f, DBROWN);
    dc_rect(c, 0.17f, 0.55f, 0.35f, 0.72f, GLASS);
    dc_rect(c, 0.65f, 0.55f, 0.83f, 0.72f, GLASS);
    dc_rect(c, 0.255f, 0.55f, 0.265f, 0.72f, WHITE);
    dc_rect(c, 0.735f, 0.55f, 0.745f, 0.72f, WHITE);
}

static void traffic_light(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    dc_rect(c, 0.42f, 0.55f, 0.58f, 1.0f, DGREY);
    dc_rect(c, 0.0f, 0.0f, 1.0f, 0.6f, col);
    dc_ellipse(c, 0.5f, 0.1f, 0.33f, 0.075f, RED);
    dc_ellipse(c, 0.5f, 0.3f, 0.33f, 0.075f, YELLOW);
    dc_ellipse(c, 0.5f, 0.5f, 0.33f, 0.075f, GREEN);
}

static void person(DrawCtx *c, const uint8_t *col, SRng *r) {
    static const uint8_t skins[3][3] = {{240, 200, 165}, {200, 150, 110}, {130, 90, 60}};
    static const uint8_t pants[3][3] = {{40, 60, 120}, {50, 50, 55}, {110, 85, 60}};
    const uint8_t *skin = skins[srng_int(r, 3)], *leg = pants[srng_int(r, 3)];
    dc_rect(c, 0.26f, 0.58f, 0.47f, 1.0f, leg);
    dc_rect(c, 0.53f, 0.58f, 0.74f, 1.0f, leg);
    dc_line(c, 0.22f, 0.26f, 0.04f, 0.56f, 3.0f, skin);
    dc_line(c, 0.78f, 0.26f, 0.96f, 0.56f, 3.0f, skin);
    float body[8] = {0.2f, 0.22f, 0.8f, 0.22f, 0.76f, 0.62f, 0.24f, 0.62f};
    dc_poly(c, body, 4, col);
    dc_ellipse(c, 0.5f, 0.11f, 0.26f, 0.11f, skin);
    dc_rect(c, 0.26f, 0.0f, 0.74f, 0.05f, DBROWN);
}

static void box(DrawCtx *c, const uint8_t *col, SRng *r) {
    (void)r;
    uint8_t d[3];
    darker(d, col, 30);
    dc_rect(c, 0.0f, 0.2f, 1.0f, 1.0f, col);
    dc_tri(c, 0.0f, 0.2f, 0.22f, 0.0f, 0.5f, 0.2f, d);
    dc_tri(c, 0.5f, 0.2f, 0.78f, 0.0f, 1.0f, 0.2f, d);
    dc_rect(c, 0.43f, 0.2f, 0.57f, 1.0f, (const uint8_t[3]){210, 180, 120});
    dc_line(c, 0.0f, 0.2f, 1.0f, 0.2f, 1.5f, d);
}

static const struct { const char *name; SynthDrawFn fn; } shapes[] = {
    {"apple", apple}, {"ball", ball}, {"banana", banana}, {"carrot", carrot},
    {"mushroom", mushroom}, {"cake", cake}, {"ice cream", ice_cream}, {"pizza", pizza},
    {"cup", cup}, {"bottle", bottle}, {"knife", knife}, {"bucket", bucket},
    {"clock", clock_}, {"lamp", lamp}, {"book", book}, {"chair", chair},
    {"table", table}, {"candle", candle}, {"kite", kite}, {"balloon", balloon},
    {"umbrella", umbrella}, {"guitar", guitar}, {"hat", hat}, {"car", car},
    {"bus", bus}, {"bicycle", bicycle}, {"boat", boat}, {"airplane", airplane},
    {"fish", fish}, {"bird", bird}, {"duck", duck}, {"dog", dog},
    {"cat", cat}, {"butterfly", butterfly}, {"turtle", turtle}, {"tree", tree},
    {"flower", flower}, {"house", house}, {"traffic light", traffic_light}, {"person", person},
    {"box", box},
};

SynthDrawFn synth_shape(const char *name) {
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (!strcmp(shapes[i].name, name)) return shapes[i].fn;
    return NULL;
}
