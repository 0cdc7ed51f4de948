/* The simulated annotators: three independent votes per record. Each vote is right
 * (accept a good record, reject a faulty one) with a probability that depends on how
 * visible the fault is: filler is obvious, an invented colour or a hallucinated
 * object needs a careful look at the picture. The majority of three is right with
 * p^3 + 3 p^2 (1 - p): 0.97 for p = 0.90, 0.90 for p = 0.80 (docs/SYNTH.md). */
#include "data/synth_internal.h"

double synth_vote_accuracy(int fault) {
    switch (fault) {
    case F_NONE: return 0.90;
    case F_WRONG_REGION: return 0.82;
    case F_INVENTED_ATTRIBUTE: return 0.80;
    case F_DISAGREE: return 0.88;
    case F_GENERIC: return 0.95;
    case F_HALLUCINATED_OBJECT: return 0.80;
    case F_MISDESCRIBED: return 0.78;
    }
    return 0.5;
}

void synth_votes(int fault, SRng *r, int votes[3]) {
    double p = synth_vote_accuracy(fault);
    int truth_accept = fault == F_NONE;
    for (int i = 0; i < 3; i++) {
        int right = srng_unif(r) < p;
        votes[i] = right ? truth_accept : !truth_accept;
    }
}
