# relaybox build and test entry points. `make test` is what CI runs.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN     := bin/relaybox
FUZZTIME ?= 5s

export CGO_ENABLED := 0

.PHONY: all build run demo test vet unit fuzz fuzz-long bench clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/relaybox

# The relay on built-in defaults: 127.0.0.1:2525, data in ./relaybox-data,
# no upstream (mail is held until one is configured).
run: build
	./$(BIN) run

# The whole path on one machine: relay on 127.0.0.1:2525 plus a local
# STARTTLS upstream that prints what it receives.
demo: build
	./$(BIN) demo

# Every test: vet (also for Windows), unit and end-to-end tests (they build
# the real binary and drive it with curl and python3), a short fuzz run, the
# suite under qemu as ARMv6 and arm64 (skipped loudly without
# qemu-user-static), and the release builds checked.
test: vet unit fuzz test-arm dist check-dist

vet:
	$(GO) vet ./...
	GOOS=windows $(GO) vet ./...

# relaybox's tests, then the patched copies' (bbolt: those of the code its patch
# touches, third_party/bbolt/RELAYBOX.md).
unit:
	$(GO) test -count=1 ./...
	cd third_party/go-smtp && $(GO) test -count=1 ./...
	cd third_party/bbolt && $(GO) test -count=1 -short -run 'TestDB|TestTx|TestBucket|TestNode|TestOpen|TestSimulate|TestLargePage' .

fuzz:
	GO='$(GO)' scripts/fuzz.sh internal/policy FuzzParseAddress $(FUZZTIME)
	GO='$(GO)' scripts/fuzz.sh internal/policy FuzzRecipientSMTPUTF8 $(FUZZTIME)
	GO='$(GO)' scripts/fuzz.sh internal/smtpd FuzzCRLFWriter $(FUZZTIME)

# Longer runs, and the patched go-smtp DATA reader against the original
# (its seeds and a table of every buffer size run in `make unit`).
fuzz-long:
	$(MAKE) fuzz FUZZTIME=5m
	GO='$(GO)' scripts/fuzz.sh third_party/go-smtp FuzzRelayboxDataReader 5m

# Accept throughput and fsyncs per message (figures, not pass/fail).
bench: build
	$(GO) test -run '^$$' -bench . -benchtime 2s ./internal/spool ./internal/smtpd

clean:
	rm -rf bin

# dist/ is a directory: without .PHONY, make would call it up to date.
.PHONY: dist check-dist test-arm

# Release artifacts in dist/: static binaries for linux/arm v6 and v7,
# linux/arm64, linux/amd64 and windows/amd64 (scripts/cross-build.sh); the
# Debian packages relaybox_<version>_{armhf,arm64,amd64}.deb built with nfpm
# and relaybox-<version>-windows-amd64.zip (scripts/package.sh); SHA256SUMS
# over all of them.
dist:
	VERSION='$(VERSION)' GO='$(GO)' scripts/cross-build.sh dist
	VERSION='$(VERSION)' GO='$(GO)' scripts/package.sh dist

# Each dist/ binary exists, is under 12 MiB, static, for the right
# GOOS/GOARCH/GOARM, CGO off, version stamped (scripts/check-dist.sh); each
# package has the right control fields, files, conffiles and scripts, and
# its binary runs and validates the packaged config (scripts/check-packages.sh).
check-dist:
	GO='$(GO)' scripts/check-dist.sh dist
	GO='$(GO)' scripts/check-packages.sh dist

# The suite (short) under qemu-user as ARMv6 (Pi Zero/1) and arm64; says
# loudly how to install qemu-user-static when it is missing, and exits 0.
test-arm:
	GO='$(GO)' scripts/test-arm.sh
