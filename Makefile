# vcm — build, test, bench. `make help` lists the targets.
CC      ?= gcc
BUILD   ?= build
OPT     ?= -O3 -march=native
# -fno-math-errno: nothing here reads errno after a math call, and without it GCC keeps
# sqrtf scalar (AdamW's loop ran 2.5x slower); sqrt is correctly rounded either way.
CFLAGS  ?= -std=c11 $(OPT) -fno-math-errno -fopenmp -g -Wall -Wextra -D_GNU_SOURCE -I.
LDLIBS  ?= -lopenblas -ljansson -lz -lcurl -lm
LDFLAGS ?= -fopenmp

# Open MPI for data-parallel training (docs/CLUSTER.md): found through Open MPI's mpicc,
# used by train/mpi.c alone. VCM_MPI=0 builds without it (vcm train is then one process).
MPICC   ?= mpicc
VCM_MPI ?= $(if $(shell command -v $(MPICC) 2>/dev/null),1,0)
ifeq ($(VCM_MPI),1)
MPI_CFLAGS := -DVCM_MPI $(shell $(MPICC) --showme:compile 2>/dev/null)
# as-needed: only programs that call the dist_* functions load libmpi
MPI_LIBS   := -Wl,--as-needed $(shell $(MPICC) --showme:link 2>/dev/null) -Wl,--no-as-needed
endif

LIBDIRS  := base tensor nn vit lm model data train distill
LIB_SRC  := $(foreach d,$(LIBDIRS),$(wildcard $(d)/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
TOOL_SRC := $(wildcard tools/*.c)
TOOL_OBJ := $(TOOL_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_SRC := $(wildcard bench/bench_*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
EXAMPLE_SRC := $(wildcard examples/*.c)
EXAMPLE_BIN := $(EXAMPLE_SRC:examples/%.c=$(BUILD)/examples/%)

# make install (README, "Install"). DESTDIR stages the tree (packaging, tests/test_install.sh).
PREFIX     ?= /usr/local
DESTDIR    ?=
bindir     ?= $(PREFIX)/bin
libdir     ?= $(PREFIX)/lib
includedir ?= $(PREFIX)/include
datadir    ?= $(PREFIX)/share
VCM_VERSION ?= 0.1
# `=`, not `:=`: worked out only by the install rules, not on every make.
# vcm-<command> for every X(name, ...) of tools/tools.h, so a new command is installed too
# ("X." for "X(": make would count that parenthesis)
VCM_CMDS = $(shell sed -n 's/^[[:space:]]*X.\([a-z_][a-z0-9_]*\),.*/\1/p' tools/tools.h)
# each folder's public header and what it includes (gcc -MM; system headers left out)
PUB_HDR  = $(wildcard $(foreach d,$(LIBDIRS),$(d)/$(d).h))
INST_HDR = $(sort $(filter %.h,$(shell $(CC) $(CFLAGS) -MM $(PUB_HDR))))

.PHONY: all deps test test-asan fuzz test-ref bench demo results clean help install uninstall examples
all: $(BUILD)/vcm $(TEST_BIN) $(BENCH_BIN) $(EXAMPLE_BIN)

help:
	@echo "make deps       install the Debian packages the project needs (as root)"
	@echo "make            build build/vcm, the tests, the benchmarks and the examples"
	@echo "make demo       synthetic world -> tokenizer -> train nano -> eval -> generate"
	@echo "make test       unit + integration tests (ends with 'N passed, N failed')"
	@echo "make test-asan  the tests under AddressSanitizer + UndefinedBehaviorSanitizer"
	@echo "make fuzz       libFuzzer harnesses (clang, ASan+UBSan) for FUZZ_SECONDS (60) each"
	@echo "make test-ref   compare against goldens in VCM_GOLDEN_DIR (from tests/ref/ops.py)"
	@echo "make bench      speed against PyTorch and the OpenBLAS peak"
	@echo "make examples   build examples/*.c against build/libvcm.a (make does it too)"
	@echo "make install    vcm, vcm-<command>, libvcm.a, headers, vcm.pc under PREFIX (/usr/local; DESTDIR stages)"
	@echo "make uninstall  remove what make install put there (same PREFIX and DESTDIR)"

deps:
	sh scripts/deps.sh

# The stamp holds the compiler and flags: changing them (a new flag here, OPT=... on the
# command line) rebuilds everything instead of mixing objects built two ways.
$(shell mkdir -p $(BUILD) && echo '$(CC) $(CFLAGS)' | cmp -s - $(BUILD)/cflags || echo '$(CC) $(CFLAGS)' > $(BUILD)/cflags)
$(BUILD)/%.o: %.c $(BUILD)/cflags
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# train/mpi.c alone sees mpi.h; the stamp rebuilds it when VCM_MPI or the flags change.
$(shell mkdir -p $(BUILD) && echo 'VCM_MPI=$(VCM_MPI) $(MPI_CFLAGS)' | cmp -s - $(BUILD)/mpi.flags || echo 'VCM_MPI=$(VCM_MPI) $(MPI_CFLAGS)' > $(BUILD)/mpi.flags)
$(BUILD)/train/mpi.o: train/mpi.c $(BUILD)/mpi.flags $(BUILD)/cflags
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(MPI_CFLAGS) -MMD -MP -c $< -o $@

# .incbin'd files are not in the compiler's dependency lists
$(BUILD)/distill/prompt_builtin.o: distill/prompt_v1.txt

# stb_image_write's JPEG bit writer shifts a signed int past its top bit (only the low
# 24 bits are used); not our code, so the sanitizer build leaves shifts there unchecked.
$(BUILD)/data/stb_impl.o: CFLAGS += -fno-sanitize=shift

$(BUILD)/libvcm.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/vcm: $(TOOL_OBJ) $(BUILD)/libvcm.a
	$(CC) $(LDFLAGS) $(TOOL_OBJ) $(BUILD)/libvcm.a $(MPI_LIBS) $(LDLIBS) -o $@

$(BUILD)/tests/%: tests/%.c tests/test.h $(BUILD)/libvcm.a $(BUILD)/cflags
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP $< $(BUILD)/libvcm.a $(LDFLAGS) $(MPI_LIBS) $(LDLIBS) -o $@

$(BUILD)/bench/%: bench/%.c $(BUILD)/libvcm.a $(BUILD)/cflags
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP $< $(BUILD)/libvcm.a $(LDFLAGS) $(MPI_LIBS) $(LDLIBS) -o $@

# The examples against the in-tree library, so that `make` keeps them compiling;
# tests/test_install.sh builds them against an installed tree with pkg-config.
examples: $(EXAMPLE_BIN)
$(BUILD)/examples/%: examples/%.c $(BUILD)/libvcm.a $(BUILD)/cflags
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP $< $(BUILD)/libvcm.a $(LDFLAGS) $(MPI_LIBS) $(LDLIBS) -o $@

# libvcm.a is static only, so Libs carries every library it needs (a program linked
# with `pkg-config --libs vcm` needs nothing else; no Libs.private/Requires.private).
# Paths under PREFIX are written as ${prefix}/..., so --define-variable=prefix moves them.
pcdir = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))
install: $(BUILD)/vcm $(BUILD)/libvcm.a
	install -d $(DESTDIR)$(bindir) $(DESTDIR)$(libdir)/pkgconfig $(DESTDIR)$(datadir)/vcm
	install -m 755 $(BUILD)/vcm $(DESTDIR)$(bindir)/vcm
	for c in $(VCM_CMDS); do ln -sf vcm $(DESTDIR)$(bindir)/vcm-$$c || exit 1; done
	install -m 644 $(BUILD)/libvcm.a $(DESTDIR)$(libdir)/libvcm.a
	for h in $(INST_HDR); do install -D -m 644 $$h $(DESTDIR)$(includedir)/vcm/$$h || exit 1; done
	install -m 644 distill/prompt_v1.txt $(DESTDIR)$(datadir)/vcm/prompt_v1.txt
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(call pcdir,$(libdir))' 'includedir=$(call pcdir,$(includedir))' \
	  'datadir=$(call pcdir,$(datadir))' '' 'Name: vcm' \
	  'Description: localized visual commonsense models in C (tensor, layers, student, data, tools)' \
	  'Version: $(VCM_VERSION)' 'Cflags: -I$${includedir}/vcm' \
	  'Libs: -L$${libdir} -lvcm -fopenmp $(strip $(MPI_LIBS) $(LDLIBS))' >$(DESTDIR)$(libdir)/pkgconfig/vcm.pc

# Exactly what install wrote; the folders it made go only when empty.
uninstall:
	rm -f $(DESTDIR)$(bindir)/vcm $(foreach c,$(VCM_CMDS),$(DESTDIR)$(bindir)/vcm-$(c))
	rm -f $(DESTDIR)$(libdir)/libvcm.a $(DESTDIR)$(libdir)/pkgconfig/vcm.pc $(DESTDIR)$(datadir)/vcm/prompt_v1.txt
	rm -f $(addprefix $(DESTDIR)$(includedir)/vcm/,$(INST_HDR))
	rmdir $(addprefix $(DESTDIR)$(includedir)/vcm/,$(sort $(dir $(INST_HDR)))) $(DESTDIR)$(includedir)/vcm \
	  $(DESTDIR)$(datadir)/vcm 2>/dev/null || true

# test and demo are the README's two commands on a fresh machine: they install what is
# missing first (scripts/deps.sh is a quick no-op once everything is there).
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
test:
	@sh scripts/deps.sh
	@$(MAKE) --no-print-directory -j$(JOBS) $(BUILD)/vcm $(TEST_BIN)
	@sh tests/run.sh $(BUILD)

# Sanitizers: a separate build tree, the same tests. Leak checking stays on; only what
# Open MPI itself never frees is suppressed (tests/lsan_mpi.supp names its libraries).
test-asan:
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan_mpi.supp $(MAKE) BUILD=$(BUILD)-asan OPT="-O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  LDFLAGS="-fopenmp -fsanitize=address,undefined" test

# libFuzzer harnesses (tests/fuzz/README.md): the library again, built by clang under
# ASan + UBSan in its own tree, then each harness run FUZZ_SECONDS on a copy of its seeds
# (found inputs stay out of git). Exits non-zero when any harness found a crash.
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_CFLAGS  := -std=c11 -g -O1 -fno-omit-frame-pointer -fopenmp -Wall -Wextra -D_GNU_SOURCE -I. \
                -fsanitize=address,undefined
FUZZ_BIN     := $(patsubst tests/fuzz/%.c,$(FUZZ_BUILD)/%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_OBJ     := $(LIB_SRC:%.c=$(FUZZ_BUILD)/%.o) $(FUZZ_BUILD)/tools/flags.o $(FUZZ_BUILD)/tools/infer_util.o
fuzz:
	@$(MAKE) --no-print-directory -j$(JOBS) $(FUZZ_BIN)
	@sh tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)
$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@
$(FUZZ_BUILD)/data/stb_impl.o: FUZZ_CFLAGS += -fno-sanitize=shift
$(FUZZ_BUILD)/distill/prompt_builtin.o: distill/prompt_v1.txt
$(FUZZ_BUILD)/libvcm.a: $(filter-out $(FUZZ_BUILD)/tools/%,$(FUZZ_OBJ))
	@rm -f $@
	ar rcs $@ $^
# every harness links the tools' flag parser too (only fuzz_flags uses it)
$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_BUILD)/libvcm.a $(filter $(FUZZ_BUILD)/tools/%,$(FUZZ_OBJ))
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(filter $(FUZZ_BUILD)/tools/%,$(FUZZ_OBJ)) \
	  $(FUZZ_BUILD)/libvcm.a $(LDLIBS) -o $@
-include $(FUZZ_OBJ:.o=.d)

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
	rm -rf build build-asan build-fuzz

-include $(LIB_OBJ:.o=.d) $(TOOL_OBJ:.o=.d) $(TEST_BIN:=.d) $(BENCH_BIN:=.d) $(EXAMPLE_BIN:=.d)
