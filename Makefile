# nhsrelay — see README.md.
GO        ?= go
BIN       := bin/nhsrelay
RUNDIR    ?= run
PKGS      := ./...
export PATH := $(PATH):/usr/sbin:/sbin:$(shell $(GO) env GOPATH)/bin

.PHONY: build run test tools bench lint fuzz clean deb

build:
	$(GO) build -o $(BIN) ./cmd/nhsrelay

# make run: a development instance with a dev CA and a sample directory in ./run.
run: build
	@[ -f $(RUNDIR)/nhsrelay.toml ] || ./$(BIN) init $(RUNDIR)
	./$(BIN) serve -c $(RUNDIR)/nhsrelay.toml

tools:
	@scripts/ensure-tools

# make test: the full suite, real servers on loopback. Fuzz seeds run as tests.
test: tools
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout 15m $(PKGS)
	cd deploy/mkdeb && $(GO) vet ./... && $(GO) test -count=1 -timeout 5m ./...

bench: tools build
	scripts/bench

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet $(PKGS)
	@command -v staticcheck >/dev/null || $(GO) install honnef.co/go/tools/cmd/staticcheck@latest
	staticcheck $(PKGS)
	cd deploy/mkdeb && $(GO) vet ./... && staticcheck ./...
	scripts/check-imports

# make fuzz: each fuzz target for FUZZTIME; new crashers land in testdata/fuzz/.
FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list $(PKGS)); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

# make deb: the Debian package (bin/nhsrelay_VERSION_ARCH.deb), built by
# deploy/mkdeb with nfpm as a library. See README, "Run it in production".
DEB_VERSION ?= 0.1.0+git$(shell git log -1 --format=%cd.%h --date=format:%Y%m%d 2>/dev/null || echo 0)
DEB_ARCH    ?= $(shell $(GO) env GOARCH)
deb:
	CGO_ENABLED=0 GOOS=linux GOARCH=$(DEB_ARCH) $(GO) build -trimpath -o bin/deb/nhsrelay ./cmd/nhsrelay
	cd deploy/mkdeb && $(GO) run . -bin ../../bin/deb/nhsrelay -repo ../.. -version $(DEB_VERSION) -arch $(DEB_ARCH) \
		-o ../../bin/nhsrelay_$(DEB_VERSION)_$(DEB_ARCH).deb

clean:
	rm -rf bin
