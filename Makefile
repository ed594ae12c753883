# Build, test and benchmark the store, its CLI and its driver plugins.
# Every executable lands in bin/: the CLI finds its driver plugins next to itself.
GO        ?= go
BIN       := bin
DRIVERS   := $(notdir $(wildcard plugins/*))
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
# Size of the layer the plugin-boundary benchmark pushes through (make bench BENCH_SIZE=256MiB for a quick look).
BENCH_SIZE ?= 1GiB

.PHONY: all build test bench proto demo clean vet

all: build

build:
	@mkdir -p $(BIN)
	@if [ -d cmd/containers-storage ] && ls cmd/containers-storage/*.go >/dev/null 2>&1; then \
		$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/containers-storage ./cmd/containers-storage; fi
	@for d in $(DRIVERS); do \
		if ls plugins/$$d/*.go >/dev/null 2>&1; then \
			$(GO) build -o $(BIN)/containers-storage-driver-$$d ./plugins/$$d || exit 1; fi; done

vet:
	$(GO) vet ./...

# The whole suite. Root-only tests (mounts, loop devices, zfs-fuse) run when run as root and skip
# with a reason otherwise. Packages run one at a time: several of them mount file systems and
# start the zfs-fuse daemon, which is one per machine.
test: build
	$(GO) vet ./...
	$(GO) test -count=1 -p 1 -timeout 60m ./...

bench: build
	bash scripts/bench.sh $(BENCH_SIZE)

proto:
	bash pluginapi/proto/gen.sh

demo: build
	bash scripts/demo.sh

clean:
	rm -rf $(BIN)
