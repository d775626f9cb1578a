# SPDX-License-Identifier: GPL-2.0
#
# bmgnic: the NIC is the hypervisor.
#
#   make                 build bmgnic.ko and bmgnic_rme.ko (against the
#                        project's cached kernel, or KDIR=/path/to/tree)
#   make CLIPPY=1        the same, with clippy
#   make check           set-up, model tests, module build, KUnit and rack
#                        scenarios, then a debug-kernel pass; ends with
#                        "N passed, N failed"
#   make check-debug     every scenario on the debug kernel (KASAN,
#                        lockdep, ...), unscaled
#   make demo            boot the rack and show the NIC from every side
#   make setup           install what the project needs (idempotent)
#   make model           build the device model (qemu/)
#   make clean

TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
BMGNIC_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/bmgnic
export BMGNIC_CACHE
CARGO_TARGET_DIR ?= $(BMGNIC_CACHE)/cargo-target
export CARGO_TARGET_DIR
export LIBCLANG_PATH ?= /usr/lib/llvm-19/lib
export PATH := $(HOME)/.cargo/bin:$(PATH)

# Without KDIR, the project's own kernel (built and cached on demand).
ifeq ($(KDIR),)
KDIR_CMD = $$($(TOP)/scripts/build-kernel.sh)
else
KDIR_CMD = $(KDIR)
endif

.PHONY: all modules setup model check check-debug check-series demo clean

all: modules

modules:
	@kdir=$(KDIR_CMD) && $(TOP)/scripts/check-kdir.sh "$$kdir" && \
	$(MAKE) -C "$$kdir" M=$(TOP) $(if $(CLIPPY),CLIPPY=1) modules

setup:
	$(TOP)/scripts/setup.sh

model:
	cd $(TOP)/qemu && cargo build --release --locked

check:
	@python3 $(TOP)/tools/testing/check.py

check-debug:
	@python3 $(TOP)/tools/testing/check.py --debug

# The kernel-crate series applies with git am to a pristine tree and builds.
check-series:
	@$(TOP)/scripts/rust-series.sh check

demo:
	@python3 $(TOP)/tools/testing/vm/demo.py

clean:
	@kdir=$$(ls -dt $(BMGNIC_CACHE)/kernel/rack-*/build 2>/dev/null | head -n 1); \
	if [ -n "$(KDIR)$$kdir" ]; then $(MAKE) -C "$(or $(KDIR),$$kdir)" M=$(TOP) clean; fi
