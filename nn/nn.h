/* nn/ — parameters in one flat buffer, layers, AdamW, LR schedule, initialisation,
 * checkpoints. The public header of the folder. */
#ifndef VCM_NN_H
#define VCM_NN_H

#include "tensor/tensor.h"

#endif
