/* RoIAlign (vit/roi_align.c, through op_roi_align and the graph's backward) against
 * torchvision.ops.roi_align: the goldens written by tests/ref/roi_align.py (committed
 * in tests/ref/golden_roi; VCM_ROI_GOLDEN_DIR overrides). The reference is torchvision's
 * float32 kernel, which ours reproduces operation by operation, so the tolerance is
 * 1e-5 with the rule of docs/GOLDENS.md:
 *   rel = |ours - ref| / max(|ref|, 0.01 * RMS(ref tensor)). */
/* gcc 12 inlines golden_load here and then believes its out-parameters may be unset
 * (they are set on every success path); silence that false positive for the header. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "tests/golden.h"
#pragma GCC diagnostic pop
#include "tests/test.h"
#include "vit/vit.h"

#define ROI_TOL 1e-5

static const char *golden_dir(void) {
    const char *d = getenv("VCM_ROI_GOLDEN_DIR");
    return d && *d ? d : "tests/ref/golden_roi";
}

/* Worst rel of ours against ref (the golden rule); prints the worst element. */
static double worst_rel(const char *what, const float *ours, const GoldenArray *ref) {
    const float *r = ref->data;
    double ss = 0, worst = 0;
    size_t wi = 0;
    for (size_t i = 0; i < ref->n; i++) ss += (double)r[i] * r[i];
    double floor_ = 0.01 * sqrt(ss / (double)ref->n);
    for (size_t i = 0; i < ref->n; i++) {
        double e = floor_ == 0 ? (ours[i] == 0.0f ? 0 : INFINITY) : rel_err(ours[i], r[i], floor_);
        if (!(e <= worst)) { worst = isnan(e) ? INFINITY : e; wi = i; }
    }
    if (worst > ROI_TOL || getenv("VCM_REF_VERBOSE"))
        fprintf(stderr, "  %s: element %zu of %zu: ours %.9g ref %.9g (rel %.3g)\n", what, wi, ref->n,
                (double)ours[wi], (double)r[wi], worst);
    return worst;
}

static const GoldenArray *need(const GoldenCase *c, const char *name, int dtype, size_t n) {
    const GoldenArray *a = golden_find(c, name);
    if (!a || a->dtype != dtype || (n && a->n != n)) {
        fprintf(stderr, "  array \"%s\" missing or of the wrong type/size\n", name);
        return NULL;
    }
    return a;
}

/* One golden case through the graph: forward, then backward of sum(out * dout). */
static int run_case(const char *dir, const char *name, double *worst) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.vgd", dir, name);
    GoldenCase c;
    if (golden_load(path, &c)) { fprintf(stderr, "  %s\n", vcm_error()); return 0; }
    int ok = 0;
    const GoldenArray *feat = need(&c, "in.feat", GOLDEN_F32, 0), *boxes = need(&c, "boxes", GOLDEN_F32, 0);
    const GoldenArray *attr = need(&c, "attr", GOLDEN_I32, 6), *fattr = need(&c, "fattr", GOLDEN_F32, 1);
    const GoldenArray *out = need(&c, "out", GOLDEN_F32, 0), *dout = need(&c, "dout", GOLDEN_F32, 0);
    const GoldenArray *gfeat = need(&c, "grad.feat", GOLDEN_F32, 0);
    Graph g;
    if (!feat || !boxes || !attr || !fattr || !out || !dout || !gfeat || feat->ndim != 3 || boxes->ndim != 2 ||
        boxes->shape[1] != 5 || graph_init(&g, 1 << 20)) {
        golden_free(&c);
        return 0;
    }
    const int *a = attr->data;
    int R = boxes->shape[0];
    Tensor *x = tensor_3d(&g, feat->shape[0], feat->shape[1], feat->shape[2], 1);
    if (x) memcpy(x->data, feat->data, feat->n * sizeof(float));
    Tensor *y = op_roi_align(&g, x, a[0], a[1], boxes->data, R, a[2], a[3], *(float *)fattr->data, a[4], a[5]);
    if (y && y->grad && y->n == out->n && dout->n == y->n) {
        /* backward of sum(out * dout): seed the output gradient with dout, walk the tape. */
        memcpy(y->grad, dout->data, dout->n * sizeof(float));
        for (int i = g.n_nodes - 1; i >= 0; i--)
            if (g.nodes[i].backward && g.nodes[i].out->grad) g.nodes[i].backward(&g.nodes[i]);
        double e1 = worst_rel("out", y->data, out), e2 = worst_rel("grad.feat", x->grad, gfeat);
        *worst = e1 > e2 ? e1 : e2;
        ok = 1;
    } else {
        fprintf(stderr, "  forward failed or wrong size: %s\n", vcm_error());
    }
    graph_free(&g);
    golden_free(&c);
    return ok;
}

static void test_roi_align_matches_torchvision(void) {
    GoldenManifest m;
    const char *dir = golden_dir();
    int rc = golden_manifest_load(dir, &m);
    CHECK_MSG(rc == VCM_OK, "%s", vcm_error());
    if (rc) return;
    CHECK(m.n >= 8);
    for (int i = 0; i < m.n; i++) {
        double worst = INFINITY;
        int ok = run_case(dir, m.names[i], &worst);
        CHECK_MSG(ok && worst <= ROI_TOL, "%s: worst rel %.3g (tolerance %g)", m.names[i], worst, ROI_TOL);
        printf("  %-32s worst rel %.2g\n", m.names[i], worst);
    }
    golden_manifest_free(&m);
}

static void test_missing_dir_fails_clearly(void) {
    GoldenManifest m;
    CHECK(golden_manifest_load("/nonexistent/vcm-roi-goldens", &m) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "/nonexistent/vcm-roi-goldens/MANIFEST");
}

int main(void) {
    RUN(test_roi_align_matches_torchvision);
    RUN(test_missing_dir_fails_clearly);
    return test_summary();
}
