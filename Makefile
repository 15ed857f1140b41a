# Verge — build, test and run. `make help` lists the targets.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

GO ?= go
VERSION ?= $(shell git describe --tags --match 'v*' 2>/dev/null || echo v0.0.0-dev)
LDFLAGS := -s -w -X github.com/verge-edge/verge/internal/version.Version=$(VERSION)
# Same list as internal/version.BuildTags (why there).
GOTAGS := grpcnotrace

# Pinned tools, run from the Go module proxy (no global installs).
CONTROLLER_GEN_VERSION := v0.23.0
GOLANGCI_LINT_VERSION := v2.15.0
TOOLS_BIN := $(CURDIR)/.bin

DATA_DIR ?= .verge
EDGE_NODES ?= 1
TEST_TIMEOUT ?= 25m
EDGE_PLATFORMS := linux/amd64 linux/arm64 linux/arm/v7

.PHONY: help build controlplane test test-unit up down lint generate release clean

help: ## show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## build verge, verge-cloud, verge-edge and the other programs into bin/ (static)
	CGO_ENABLED=0 $(GO) build -tags '$(GOTAGS)' -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/...

controlplane: ## build (once per pin) the upstream Kubernetes binaries the tests and `verge up` run
	$(GO) run ./cmd/verge controlplane build

test: controlplane ## unit and integration tests on a real control plane
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

test-unit: ## only the tests that need no control plane
	$(GO) test -race -count=1 -short ./...

up: build ## start a local Verge cluster in the foreground (Ctrl-C stops it)
	bin/verge up --data-dir $(DATA_DIR) --edge-nodes $(EDGE_NODES)

down: ## stop the cluster `make up` started
	bin/verge down --data-dir $(DATA_DIR)

lint: ## gofmt, go vet, golangci-lint, go.mod tidiness
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	cd tools/controlplane && $(GO) vet ./...
	$(GO) mod tidy -diff
	cd tools/controlplane && $(GO) mod tidy -diff
	GOBIN=$(TOOLS_BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	$(TOOLS_BIN)/golangci-lint run ./...

generate: ## regenerate deepcopy code and CRD manifests from api/
	$(GO) run sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION) \
		object paths=./api/... \
		crd paths=./api/... output:crd:artifacts:config=api/crds

release: ## cross-compile static verge-edge binaries into dist/
	@for p in $(EDGE_PLATFORMS); do \
		os=$${p%%/*}; rest=$${p#*/}; arch=$${rest%%/*}; variant=$${rest#$$arch}; variant=$${variant#/}; \
		out=dist/verge-edge-$$os-$$arch$${variant}; echo "building $$out"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch GOARM=$${variant#v} $(GO) build -tags '$(GOTAGS)' -trimpath -ldflags '$(LDFLAGS)' -o $$out ./cmd/verge-edge; \
	done

clean: ## remove build outputs (not the control-plane cache or .verge)
	rm -rf bin dist
