/* Deterministic initialisation. Element i of parameter `name` gets a value that
 * depends only on (seed, name, i): a counter-based generator, so the result is the same
 * for any thread count, any declaration order and any other parameters in the model.
 *
 * Generator: splitmix64 of (key + counter), key = splitmix64 chain over the seed and
 * the FNV-1a hash of the name; normal numbers by Box–Muller in double. The double
 * result is rounded to float, which absorbs the last-ulp differences libm's log/cos
 * could have across machines. */
#include "nn.h"

#include <math.h>
#include <string.h>

static uint64_t splitmix64(uint64_t x) { return vcm_hash64(x); }

uint64_t nn_param_key(uint64_t seed, const char *name) {
    uint64_t h = 0xCBF29CE484222325ULL; /* FNV-1a */
    for (const unsigned char *s = (const unsigned char *)name; *s; s++) {
        h ^= *s;
        h *= 0x100000001B3ULL;
    }
    return splitmix64(splitmix64(seed) ^ h);
}

/* (0, 1]: never 0, so the log is finite. */
static double uniform_open0(uint64_t x) { return (double)((x >> 11) + 1) * (1.0 / 9007199254740992.0); }

double nn_normal_at(uint64_t key, uint64_t i) {
    double u1 = uniform_open0(splitmix64(key + 2 * i));
    double u2 = uniform_open0(splitmix64(key + 2 * i + 1));
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
}

float nn_resid_std(int n_layers) {
    return n_layers > 0 ? (float)(NN_INIT_STD / sqrt(2.0 * n_layers)) : NN_INIT_STD;
}

int params_init_weights(ParamStore *ps, uint64_t seed) {
    if (!ps->params) return vcm_fail(VCM_ERR, "params_init_weights before params_alloc");
    for (int k = 0; k < ps->n_params; k++) {
        Param *p = ps->p[k];
        float *d = p->t.data;
        size_t n = p->t.n;
        if (p->init == NN_INIT_ZEROS) {
            memset(d, 0, n * sizeof(float));
        } else if (p->init == NN_INIT_ONES) {
            for (size_t i = 0; i < n; i++) d[i] = 1.0f;
        } else {
            uint64_t key = nn_param_key(seed, p->name);
            double std = p->init_std;
            #pragma omp parallel for schedule(static) if (n > 65536)
            for (size_t i = 0; i < n; i++) d[i] = (float)(std * nn_normal_at(key, i));
        }
    }
    return VCM_OK;
}
