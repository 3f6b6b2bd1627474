# ferry — top-level targets. `make demo` and `make test` work on a fresh
# Debian 12 machine as root: `deps` installs what is missing.
SWIFT ?= swift
SWIFT_FLAGS ?=
APT_PKGS := libelf-dev libbsd-dev gcc make iproute2 python3-pip openssl memcached redis-server redis-tools nginx-light
.PHONY: all deps build test demo bench clean kernel-check vm-pkgs vm-deps vm-test vm-smoke guest-test fuzz

all: build

deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi
	@python3 -c 'import ziglang' 2>/dev/null || pip install -q ziglang 2>/dev/null || pip install -q --break-system-packages ziglang

build: deps
	$(SWIFT) build $(SWIFT_FLAGS)

test: deps kernel-check
	$(SWIFT) build --build-tests $(SWIFT_FLAGS)
	$(SWIFT) test --skip-build $(SWIFT_FLAGS)
	SWIFT=$(SWIFT) sh scripts/fuzz.sh $(FUZZ_TEST_SECONDS)

# libFuzzer over the decoders of hostile input (image reader, directory and
# stream, metadata-first stream, wire frames and page batches, handshake):
# FUZZ_SECONDS per target, seeds from valid images; what fails is saved in
# Tests/FuzzCorpus/<target>/, whose inputs also replay in every run (and in
# FerryFuzzTests). `make test` runs FUZZ_TEST_SECONDS per target (0: none);
# its first build of .build/fuzz builds the dependencies again (minutes).
# Options (scripts/fuzz.sh): FERRY_FUZZ=fuzzer,address for ASan too.
FUZZ_SECONDS ?= 60
FUZZ_TEST_SECONDS ?= 10
fuzz: deps
	SWIFT=$(SWIFT) sh scripts/fuzz.sh $(FUZZ_SECONDS)

# FreeBSD module: Linux unit tests + compile-check against FreeBSD headers,
# and the CFerryFreeBSD shim cross-compiled and linked for FreeBSD (zig).
kernel-check: deps
	sh kernel/check.sh

demo: build
	bash scripts/demo.sh

# Checkpoint/restore benchmark, live migration, and the scaling sweeps with
# their CSVs and pictures in bench/results/ (docs/performance.md). Variables,
# from the command line or the environment: SIZES="16 256 1024" RUNS=5
# CRIU=/path/to/criu, SWEEPS=… POINTS_<SWEEP>=… HOGS=2 (bench/scale_bench.py)
bench: deps
	$(SWIFT) build -c release --product ferry $(SWIFT_FLAGS)
	$(MAKE) -s -C Tests/Workloads OUT="$(CURDIR)/.build/workloads"
	FERRY=.build/release/ferry WL=.build/workloads python3 bench/cr_bench.py
	FERRY=.build/release/ferry WL=.build/workloads bash bench/migrate_bench.sh
	FERRY=.build/release/ferry WL=.build/workloads python3 bench/scale_bench.py

# VM-pair runs (vm/README.md): host ⇄ Debian 12 guests (kernel 6.1, other CPU
# models) under qemu TCG; prints crossing, workload, transport, result,
# downtime. Not part of `make test`: it takes minutes. FREEBSD_IMAGE=... adds FreeBSD.
VM_APT_PKGS := qemu-system-x86 busybox-static cpio
VM_FERRY := .build/release/ferry
vm-pkgs: deps
	@missing=""; for p in $(VM_APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi

vm-deps: vm-pkgs
	$(SWIFT) build -c release --static-swift-stdlib --product ferry $(SWIFT_FLAGS)

vm-test: vm-deps
	FERRY=$(VM_FERRY) bash vm/run.sh

# What CI runs after `make test`: guest A only, one live host → guest
# migration (ferry migrate/serve, mutual TLS, pre-copy) of a workload that
# checks itself there. Bounded (VM_SMOKE_TIMEOUT s, guest build included);
# the whole console log is printed if the guest does not boot.
VM_SMOKE_TIMEOUT ?= 900
vm-smoke: vm-deps
	FERRY=$(VM_FERRY) VM_GUESTS=A VM_TRANSPORTS=live VM_CASES='^host A clock_loop pass$$' \
	  VM_CONSOLE_TAIL=+1 VM_BOOT_WAIT=300 timeout -k 30 $(VM_SMOKE_TIMEOUT) bash vm/run.sh

# The test bundle on Debian 12's own kernel (6.1, cgroup v2 only): a qemu guest
# runs it on this host's userland, read-only over 9p under a tmpfs overlay
# (vm/guest-test.sh; results in docs/kernel-6.1.md). Not part of `make test`:
# under TCG the whole suite takes long. GUEST_TEST_ARGS="--filter CheckTests"
# runs one suite; the output lands in vm/logs/guest-test-RUN/tests.log.
GUEST_TEST_ARGS ?=
guest-test: vm-pkgs
	$(SWIFT) build --build-tests $(SWIFT_FLAGS)
	bash vm/guest-test.sh $(GUEST_TEST_ARGS)

clean:
	rm -rf .build
