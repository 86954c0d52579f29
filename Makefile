# entrasync: the two commands are `make run` and `make test`.
# Everything they need is installed by the project's own scripts:
# Azurite from npm (pinned in internal/azurite), Go modules from go.mod, and
# for the console's browser tests Debian's chromium with the playwright-core
# pinned in internal/console/e2e.

SHELL     := /bin/bash
GO        ?= go
BIN       := bin
USERS     ?= 2000
PORT      ?= 7071
# The race detector would double the suite's time on 2 cores; run it on demand
# (it needs CGO_ENABLED=1).
TESTFLAGS ?=
# One build configuration for everything: the deployment binary must be static
# (CGO_ENABLED=0), and building tests, tools and it alike lets them share the
# build cache, so msgraph-sdk-go (~3 min, 4.5 GB) compiles once, not twice.
export CGO_ENABLED := 0

.PHONY: run test bench bench-micro package deploy install browser build vet clean simulate fuzz

## install: fetch Go modules and the pinned Azurite (npm ci); idempotent.
install:
	$(GO) mod download
	$(GO) run ./internal/cmd/azurite -install

## browser: Debian's chromium (apt) and the pinned playwright-core (npm ci)
## for the console's browser tests; idempotent, quick when installed.
browser:
	bash internal/console/e2e/install.sh

## build: the handler and the local tools.
build:
	$(GO) build -o $(BIN)/handler ./handler
	$(GO) build -o $(BIN)/ ./internal/cmd/...

## run: Azurite + Graph simulator + local Functions host + handler, a first
## sync of a generated tenant, then the API stays up on localhost:$(PORT).
run: install
	$(GO) build -o $(BIN)/localrun ./internal/cmd/localrun
	$(BIN)/localrun -users $(USERS) -port $(PORT)

## vet: static checks.
vet:
	$(GO) vet ./...

## test: vet and the whole suite; Azurite-backed tests start Azurite
## themselves; the console's browser test drives chromium.
test: install browser vet fuzz | $(BIN)
	$(GO) test $(TESTFLAGS) -count=1 -timeout 20m ./... 2>&1 | tee $(BIN)/test.log; \
	  status=$${PIPESTATUS[0]}; \
	  echo; echo "== summary"; grep -E '^(ok|FAIL|---)' $(BIN)/test.log | grep -v '^--- PASS' ; \
	  exit $$status

## fuzz: a short run of every fuzz target of the engine's decoders
## (FUZZTIME each; part of make test). A count, not a duration: with a
## duration, go test can fail with "context deadline exceeded" when the
## deadline falls while a worker of a loaded machine is still starting,
## although nothing was found (seen in CI on 2026-12-02).
FUZZTIME ?= 3000x
fuzz:
	@for f in dirsync:FuzzDecodeWorkItem dirsync:FuzzDecodeSettings dirsync:FuzzEscapeKey dirsync:FuzzUserAttributes rules:FuzzParse; do \
	  $(GO) test ./internal/$${f%%:*}/ -run '^$$' -fuzz "^$${f#*:}$$" -fuzztime $(FUZZTIME) || exit 1; done

## simulate: the engine's deterministic simulator over many seeds, for
## SIM_BUDGET (default 5m); prints seeds, faults injected and invariants
## checked. Replay one seed: SIM_SEED=n go test ./internal/dirsync/ -run TestSimulation -v
SIM_BUDGET ?= 5m
simulate:
	SIM_BUDGET=$(SIM_BUDGET) SIM_FIRST=$${SIM_FIRST:-1000} $(GO) test ./internal/dirsync/ -run '^TestSimulation$$' -count=1 -v -timeout 0 | grep -v '^=== RUN'

## bench: issue 17's end-to-end benchmark (not part of make test): for each
## tenant size in SIZES, floors (storage, Graph), a full sync, CHANGES changes
## and an incremental sync, a run-log CSV download; then a latency run. Through
## the local host, the handler, Azurite and the Graph simulator over HTTPS.
## Results in bench/results/<date>.json; docs/benchmarks.md explains them.
## Quick run: make bench SIZES=10000
SIZES     ?= 10000,100000
CHANGES   ?= 1000
BENCHFLAGS ?=
bench: install
	$(GO) build -o $(BIN)/bench ./internal/cmd/bench
	$(BIN)/bench -sizes $(SIZES) -changes $(CHANGES) $(BENCHFLAGS)

## bench-micro: the Go micro-benchmarks (go test -bench) of every package.
bench-micro: install
	$(GO) test -run '^$$' -bench . -benchmem ./...

## package: the deployment zip: host.json, one folder per function, and a
## linux/amd64 static handler binary, all at the zip's root.
package:
	$(GO) run ./internal/cmd/pack -out $(BIN)/entrasync.zip

## deploy: provision infra/ into your subscription and deploy the package with
## the Azure Developer CLI (`azd up`: infra/main.bicep, then the postprovision
## hook grants the Graph roles and deploys). Needs azd, az and a login; see
## docs/deploy.md. Not run by the tests.
deploy:
	azd up

clean:
	rm -rf $(BIN)

$(BIN):
	mkdir -p $(BIN)
