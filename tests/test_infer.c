/* Inference: the KV-cache path gives the full forward's logits at every position (0, 2,
 * 4 regions, padded region slots, every region input), teacher-forced scoring equals
 * the log-softmax of the full logits and the cache's own, sampling is a function of the
 * seed, and greedy decoding agrees with re-running the whole sequence.
 * The tiny student: image 32, patch 8, ViT d 32, decoder d 40, 2 + 2 layers, vocab 301. */
#include "model/model.h"
#include "tests/test.h"

static ModelConfig tiny_config(int region_input) {
    ModelConfig c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "tiny");
    c.image = 32; c.patch = 8;
    c.vit_d = 32; c.vit_layers = 2; c.vit_heads = 2;
    c.dec_d = 40; c.dec_layers = 2; c.dec_heads = 2;   /* 40, 301: remainders of the */
    c.vocab = 301; c.max_text = 24;                    /* 4-row × 16-lane matvec */
    c.region_input = region_input;
    return c;
}

/* A student whose weights are far from the tiny initial ones, so attention and logits
 * are not nearly uniform and a wrong cache would show. */
static int make_student(Student *m, int region_input, unsigned long long seed) {
    ModelConfig c = tiny_config(region_input);
    if (student_init(m, &c, seed)) return 1;
    for (size_t i = 0; i < m->ps.n; i++) m->ps.params[i] += 0.25f * test_uniform(&seed);
    return 0;
}

typedef struct TestBatch {
    Batch b;
    float images[3 * 32 * 32];
    float boxes[4 * MODEL_MAX_REGIONS];
    int n_regions[1];
    int32_t tokens[64], targets[64];
} TestBatch;

/* One sample: a random image, R region slots of which n are real, T tokens from ids. */
static void fill_batch(TestBatch *tb, int R, int n, const int32_t *ids, int T, unsigned long long seed) {
    memset(tb, 0, sizeof *tb);
    for (int i = 0; i < 3 * 32 * 32; i++) tb->images[i] = test_uniform(&seed);
    for (int k = 0; k < R; k++) {
        float x0 = 14.0f * (test_uniform(&seed) + 1.0f), y0 = 14.0f * (test_uniform(&seed) + 1.0f);
        float *bx = tb->boxes + 4 * k;
        bx[0] = x0; bx[1] = y0;
        bx[2] = x0 + 1.0f + 1.5f * (test_uniform(&seed) + 1.0f);
        bx[3] = y0 + 1.0f + 1.5f * (test_uniform(&seed) + 1.0f);
        if (k >= n) { bx[0] = bx[1] = 0; bx[2] = bx[3] = 8; }
    }
    tb->n_regions[0] = n;
    for (int t = 0; t < T; t++) {
        tb->tokens[t] = ids[t];
        tb->targets[t] = t + 1 < T ? ids[t + 1] : -1;
    }
    tb->b = (Batch){1, tb->images, R, tb->boxes, tb->n_regions, T, tb->tokens, tb->targets};
}

static void random_ids(int32_t *ids, int T, unsigned long long seed) {
    ids[0] = BPE_BOS;
    for (int t = 1; t < T; t++) ids[t] = (int32_t)(BPE_REGION0 + (test_rng_next(&seed) % (301 - BPE_REGION0)));
}

/* max |a − b| / max |b| over one row of logits. */
static double row_rel(const float *a, const float *b, int V) {
    double md = 0, mb = 1e-12;
    for (int i = 0; i < V; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > md) md = d;
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
    }
    return md / mb;
}

/* Full-forward logits of tb into out [T, V]. */
static int full_logits(Student *m, const Batch *b, float *out) {
    Graph g;
    if (graph_init(&g, 1 << 20)) return 1;
    g.grad_enabled = 0;
    Tensor *lg = student_logits(&g, m, b);
    int rc = lg && !g.failed ? 0 : 1;
    if (!rc) memcpy(out, lg->data, sizeof(float) * lg->n);
    graph_free(&g);
    return rc;
}

/* Prefill with the first p tokens, step the rest; every position's logits against the
 * full forward over (full_R, full_n) regions (the same boxes). */
static double kv_vs_full(Student *m, int R, int n, int full_R, int p, int T, unsigned long long seed) {
    int V = m->cfg.vocab;
    int32_t ids[64];
    random_ids(ids, T, seed);
    TestBatch full, pre;
    fill_batch(&full, full_R, n < full_R ? n : full_R, ids, T, seed);
    fill_batch(&pre, R, n, ids, p, seed);
    float *ref = malloc(sizeof(float) * (size_t)T * V);
    double worst = 1e9;
    Infer in;
    if (!ref || full_logits(m, &full.b, ref) || infer_init(&in, m)) { free(ref); return worst; }
    worst = 0;
    if (infer_prefill(&in, &pre.b)) worst = 1e9;
    else {
        double e = row_rel(in.kv.logits, ref + (size_t)(p - 1) * V, V);
        if (e > worst) worst = e;
        for (int t = p; t < T; t++) {
            if (infer_step(&in, ids[t])) { worst = 1e9; break; }
            e = row_rel(in.kv.logits, ref + (size_t)t * V, V);
            if (e > worst) worst = e;
        }
    }
    infer_free(&in);
    free(ref);
    return worst;
}

static void test_kv_equals_full_forward(void) {
    Student m;
    CHECK(make_student(&m, REGION_INPUT_ROI, 11) == 0);
    int regions[3] = {0, 2, 4};
    for (int i = 0; i < 3; i++) {
        int R = regions[i];
        for (int p = 1; p <= 6; p += 5) {
            double e = kv_vs_full(&m, R, R, R, p, 20, 100 + (unsigned)R);
            CHECK_MSG(e <= 1e-4, "%d regions, prefill %d: relative error %.3g", R, p, e);
        }
    }
    /* The whole text window: max_text tokens, the last one fed by a step. */
    double e = kv_vs_full(&m, 2, 2, 2, 3, m.cfg.max_text, 5);
    CHECK_MSG(e <= 1e-4, "full window: relative error %.3g", e);
    student_free(&m);
}

/* Padding region slots (R = 4, 2 real) are masked: the same logits as 2 slots. */
static void test_kv_masked_region_slots(void) {
    Student m;
    CHECK(make_student(&m, REGION_INPUT_ROI, 12) == 0);
    double e = kv_vs_full(&m, 4, 2, 2, 4, 16, 77);
    CHECK_MSG(e <= 1e-4, "padded slots: relative error %.3g", e);
    /* and the mask matters: 4 real regions give different logits */
    double diff = kv_vs_full(&m, 4, 4, 2, 4, 16, 77);
    CHECK_MSG(diff > 1e-3, "4 real regions vs 2: relative difference only %.3g", diff);
    student_free(&m);
}

static void test_kv_other_region_inputs(void) {
    int modes[2] = {REGION_INPUT_DRAW, REGION_INPUT_NONE};
    for (int i = 0; i < 2; i++) {
        Student m;
        CHECK(make_student(&m, modes[i], 13 + (unsigned)i) == 0);
        double e = kv_vs_full(&m, 0, 0, 0, 2, 14, 9);
        CHECK_MSG(e <= 1e-4, "%s: relative error %.3g", region_input_name(modes[i]), e);
        student_free(&m);
    }
}

/* Three texts of different lengths in one batch (padded with targets -1): the scored
 * log-probs equal log_softmax of the full logits, and the KV cache's own. */
static void test_scoring(void) {
    Student m;
    CHECK(make_student(&m, REGION_INPUT_ROI, 21) == 0);
    int V = m.cfg.vocab, B = 3, T = 15, len[3] = {15, 9, 4};
    int32_t ids[3][64];
    float images[3][3 * 32 * 32], boxes[3 * 2 * 4];
    int nreg[3] = {2, 1, 2};
    int32_t tokens[3 * 15], targets[3 * 15];
    unsigned long long s = 5;
    for (int i = 0; i < B; i++) {
        random_ids(ids[i], len[i], 40 + (unsigned)i);
        TestBatch one;
        fill_batch(&one, 2, nreg[i], ids[i], len[i], 60 + (unsigned)i);
        memcpy(images[i], one.images, sizeof images[i]);
        memcpy(boxes + 8 * i, one.boxes, sizeof(float) * 8);
        for (int t = 0; t < T; t++) {
            tokens[i * T + t] = t < len[i] ? ids[i][t] : BPE_PAD;
            targets[i * T + t] = t + 1 < len[i] ? ids[i][t + 1] : -1;
        }
    }
    (void)s;
    Batch b = {B, &images[0][0], 2, boxes, nreg, T, tokens, targets};
    Graph g;
    CHECK(graph_init(&g, 1 << 20) == 0);
    g.grad_enabled = 0;
    double lp[45];
    CHECK(student_target_logprobs(&g, &m, &b, lp) == VCM_OK);
    graph_reset(&g);
    Tensor *lg = student_logits(&g, &m, &b);
    CHECK(lg != NULL);
    for (int r = 0; lg && r < B * T; r++) {
        double want = targets[r] < 0 ? 0.0 : lm_log_softmax_at(lg->data + (size_t)r * V, V, targets[r]);
        CHECK_NEAR(lp[r], want, 1e-9);
    }
    /* Each row's sum against the KV cache fed one token at a time. */
    for (int i = 0; i < B; i++) {
        TestBatch one;
        fill_batch(&one, 2, nreg[i], ids[i], 1, 60 + (unsigned)i);
        Infer in;
        CHECK(infer_init(&in, &m) == 0);
        CHECK(infer_prefill(&in, &one.b) == 0);
        double kv = 0, sum = 0;
        CHECK(infer_continuation_logprob(&in, ids[i] + 1, len[i] - 1, &kv) == 0);
        CHECK(in.kv.text_len == len[i] - 1);   /* every token but the last fed */
        for (int t = 0; t < T; t++) sum += lp[i * T + t];
        CHECK_MSG(fabs(kv - sum) <= 1e-4 * fabs(sum) + 1e-5, "row %d: cache %.9g, scored %.9g", i, kv, sum);
        infer_free(&in);
    }
    graph_free(&g);
    student_free(&m);
}

static void test_sampling_is_deterministic(void) {
    Student m;
    CHECK(make_student(&m, REGION_INPUT_ROI, 31) == 0);
    int32_t ids[1] = {BPE_BOS};
    TestBatch tb;
    fill_batch(&tb, 2, 2, ids, 1, 3);
    Infer in;
    CHECK(infer_init(&in, &m) == 0);
    CHECK(infer_prefill(&in, &tb.b) == 0);
    GenParams p = {{1.0f, 50, 0.95f}, 16, 0, 2};
    int32_t a[32], b2[32], c[32];
    int na, nb, nc;
    double la, lb, lc;
    uint64_t r1 = 7, r2 = 7, r3 = 8;
    CHECK(infer_generate(&in, &p, &r1, a, 32, &na, &la) == 0);
    infer_rewind(&in);
    CHECK(infer_generate(&in, &p, &r2, b2, 32, &nb, &lb) == 0);
    CHECK(na == nb && na > 0 && !memcmp(a, b2, sizeof(int32_t) * (size_t)na) && la == lb);
    infer_rewind(&in);
    CHECK(infer_generate(&in, &p, &r3, c, 32, &nc, &lc) == 0);
    CHECK_MSG(nc != na || memcmp(a, c, sizeof(int32_t) * (size_t)na), "seed 8 gave the same text as seed 7");
    /* never drawn: <pad>, <bos>, mentions past the 2 regions */
    for (int i = 0; i < na; i++) CHECK(a[i] != BPE_PAD && a[i] != BPE_BOS && (a[i] < BPE_REGION0 + 2 || a[i] >= BPE_REGION0 + 16));
    /* the reported log-prob is the model's: the sum over the same tokens fed by hand */
    infer_rewind(&in);
    double lp = 0;
    for (int i = 0; i < na; i++) {
        lp += lm_log_softmax_at(in.kv.logits, m.cfg.vocab, a[i]);
        if (i + 1 < na) CHECK(infer_step(&in, a[i]) == 0);
    }
    CHECK_NEAR(lp, la, 1e-9);
    infer_free(&in);
    student_free(&m);
}

/* Greedy with the cache = argmax of the full forward re-run over the growing text. */
static void test_greedy_matches_full_forward(void) {
    Student m;
    CHECK(make_student(&m, REGION_INPUT_ROI, 41) == 0);
    int V = m.cfg.vocab;
    int32_t ids[64] = {BPE_BOS};
    TestBatch tb;
    fill_batch(&tb, 3, 3, ids, 1, 4);
    Infer in;
    CHECK(infer_init(&in, &m) == 0);
    CHECK(infer_prefill(&in, &tb.b) == 0);
    GenParams p = {{0.0f, 0, 0.0f}, 10, 0, -1};
    int32_t out[16];
    int n;
    double lp;
    uint64_t rng = 1;
    CHECK(infer_generate(&in, &p, &rng, out, 16, &n, &lp) == 0);
    CHECK(n >= 1);
    float *ref = malloc(sizeof(float) * 64 * (size_t)V);
    int T = 1;
    for (int i = 0; i < n && ref; i++) {
        TestBatch f;
        fill_batch(&f, 3, 3, ids, T, 4);
        CHECK(full_logits(&m, &f.b, ref) == 0);
        float *row = ref + (size_t)(T - 1) * V;
        int best = BPE_EOS;
        for (int v = BPE_EOS; v < V; v++) if (row[v] > row[best]) best = v;
        CHECK_MSG(best == out[i], "token %d: cache chose %d, full forward %d", i, out[i], best);
        ids[T++] = out[i];
    }
    free(ref);
    infer_free(&in);
    student_free(&m);
}

static void test_errors(void) {
    Student m;
    CHECK(make_student(&m, REGION_INPUT_ROI, 51) == 0);
    Infer in;
    CHECK(infer_init(&in, &m) == 0);
    CHECK(infer_step(&in, 5) != VCM_OK);              /* before prefill */
    int32_t ids[64];
    random_ids(ids, 24, 3);
    TestBatch tb;
    fill_batch(&tb, 0, 0, ids, 24, 3);
    CHECK(infer_prefill(&in, &tb.b) == VCM_OK);
    CHECK(infer_step(&in, 5) == VCM_EINPUT);         /* past max_text */
    fill_batch(&tb, 0, 0, ids, 2, 3);
    CHECK(infer_prefill(&in, &tb.b) == VCM_OK);
    CHECK(infer_step(&in, 301) == VCM_EINPUT);       /* outside the vocabulary */
    CHECK(infer_step(&in, -1) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "vocabulary");
    tb.tokens[1] = 999;
    CHECK(infer_prefill(&in, &tb.b) == VCM_EINPUT);
    infer_free(&in);
    student_free(&m);
}

int main(void) {
    vcm_threads_init(0);
    RUN(test_kv_equals_full_forward);
    RUN(test_kv_masked_region_slots);
    RUN(test_kv_other_region_inputs);
    RUN(test_scoring);
    RUN(test_sampling_is_deterministic);
    RUN(test_greedy_matches_full_forward);
    RUN(test_errors);
    return test_summary();
}
