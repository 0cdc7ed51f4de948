/* data/ — files to batches: corpus / region-mapping / annotation / multiple-choice
 * readers (jsonl, jsonl.gz), images (stb), region handling, drawing, and the
 * synthetic world behind `vcm synth`.
 *
 * The public header of the folder. It is organised in sections, one per part;
 * data/ does not include tensor/ (the batch hand-off passes plain float arrays). */
#ifndef VCM_DATA_H
#define VCM_DATA_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ================================================================ records and readers
 * (data/jsonl*.c, data/corpus*.c, data/regions*.c) */

/* ================================================================ images and drawing
 * (data/image*.c, data/draw*.c) */

/* ================================================================ synthetic world
 * (data/synth*.c) */

#endif
