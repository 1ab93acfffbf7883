# nhsrelay — see README.md.
GO        ?= go
BIN       := bin/nhsrelay
RUNDIR    ?= run
PKGS      := ./...
export PATH := $(PATH):/usr/sbin:/sbin:$(shell $(GO) env GOPATH)/bin

.PHONY: build run test tools bench lint fuzz clean

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

bench: tools build
	scripts/bench
	scripts/bench-notices

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet $(PKGS)
	@command -v staticcheck >/dev/null || $(GO) install honnef.co/go/tools/cmd/staticcheck@latest
	staticcheck $(PKGS)
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

clean:
	rm -rf bin
