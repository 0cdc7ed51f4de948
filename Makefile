# vcm — build, test, bench. `make help` lists the targets.
CC      ?= gcc
BUILD   ?= build
OPT     ?= -O3 -march=native
CFLAGS  ?= -std=c11 $(OPT) -fopenmp -g -Wall -Wextra -D_GNU_SOURCE -I.
LDLIBS  ?= -lopenblas -ljansson -lz -lcurl -lm
LDFLAGS ?= -fopenmp

LIBDIRS  := tensor nn vit lm model data train distill
LIB_SRC  := $(foreach d,$(LIBDIRS),$(wildcard $(d)/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
TOOL_SRC := $(wildcard tools/*.c)
TOOL_OBJ := $(TOOL_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_SRC := $(wildcard bench/bench_*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: all deps test test-asan test-ref bench demo results clean help
all: $(BUILD)/vcm $(TEST_BIN) $(BENCH_BIN)

help:
	@echo "make deps       install the Debian packages the project needs (as root)"
	@echo "make            build build/vcm, the tests and the benchmarks"
	@echo "make demo       synthetic world -> tokenizer -> train nano -> eval -> generate"
	@echo "make test       unit + integration tests (ends with 'N passed, N failed')"
	@echo "make test-asan  the tests under AddressSanitizer + UndefinedBehaviorSanitizer"
	@echo "make test-ref   compare against goldens in VCM_GOLDEN_DIR (from tests/ref/ops.py)"
	@echo "make bench      speed against PyTorch and the OpenBLAS peak"

deps:
	sh scripts/deps.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# .incbin'd files are not in the compiler's dependency lists
$(BUILD)/distill/prompt_builtin.o: distill/prompt_v1.txt

$(BUILD)/libvcm.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/vcm: $(TOOL_OBJ) $(BUILD)/libvcm.a
	$(CC) $(LDFLAGS) $(TOOL_OBJ) $(BUILD)/libvcm.a $(LDLIBS) -o $@

$(BUILD)/tests/%: tests/%.c tests/test.h $(BUILD)/libvcm.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP $< $(BUILD)/libvcm.a $(LDFLAGS) $(LDLIBS) -o $@

$(BUILD)/bench/%: bench/%.c $(BUILD)/libvcm.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP $< $(BUILD)/libvcm.a $(LDFLAGS) $(LDLIBS) -o $@

# test and demo are the README's two commands on a fresh machine: they install what is
# missing first (scripts/deps.sh is a quick no-op once everything is there).
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
test:
	@sh scripts/deps.sh
	@$(MAKE) --no-print-directory -j$(JOBS) $(BUILD)/vcm $(TEST_BIN)
	@sh tests/run.sh $(BUILD)

# Sanitizers: a separate build tree, the same tests. Leak checking stays on.
test-asan:
	$(MAKE) BUILD=$(BUILD)-asan OPT="-O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  LDFLAGS="-fopenmp -fsanitize=address,undefined" test

test-ref: $(BUILD)/tests/test_ops_ref
	@test -n "$(VCM_GOLDEN_DIR)" || { echo "set VCM_GOLDEN_DIR=DIR (written by tests/ref/ops.py --out DIR)"; exit 2; }
	VCM_GOLDEN_DIR=$(VCM_GOLDEN_DIR) $(BUILD)/tests/test_ops_ref

bench: $(BUILD)/vcm $(BENCH_BIN)
	@sh bench/run.sh $(BUILD)

demo:
	@sh scripts/deps.sh
	@$(MAKE) --no-print-directory -j$(JOBS) $(BUILD)/vcm
	@sh scripts/demo.sh $(BUILD)

results: $(BUILD)/vcm
	@sh scripts/results.sh $(BUILD)

clean:
	rm -rf build build-asan

-include $(LIB_OBJ:.o=.d) $(TOOL_OBJ:.o=.d) $(TEST_BIN:=.d) $(BENCH_BIN:=.d)
