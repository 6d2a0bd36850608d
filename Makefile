# The front door. `make demo` and `make test` do all set-up on a machine with
# a JDK (17+), Maven and Go; Maven brings protoc and the Java libraries, the Go
# module proxy brings the Go ones.

SHELL   := /bin/bash
.SHELLFLAGS := -o pipefail -c
GO      ?= go
MVN     ?= mvn -B -q
PROTOC  := target/tools/protoc
GOFLAGS_TEST ?= -count=1
COUNT   ?= 1000000
# make demo BACKING=etcd: increments per language
ETCD_COUNT ?= 2000
FUZZTIME ?= 10s
KILLS   ?= 1000
DIFF_CASES ?= 100000
DIFF_SEED  ?= random
PREFIX  ?= /usr/local
BUILD   ?= build

.PHONY: consumers build test stress fuzz-diff bench demo generate clean go-build java-build install

build: go-build java-build

# bin/go-peer is built from the etcd module with the one file that links the
# etcd backend in (go-peer/etcd/cmd/go-peer-etcd), so that the core module
# needs nothing of etcd; bin/etcd-dev runs a throwaway etcd server.
go-build:
	cd go-peer/etcd && $(GO) build -tags etcd_backend -overlay cmd/go-peer-etcd/overlay.json -o ../../bin/go-peer github.com/shmvar/shmvar/go-peer/cmd/go-peer
	cd go-peer/etcd && $(GO) build -o ../../bin/etcd-dev ./cmd/etcd-dev

# Compiles the Maven modules (java/shmvar the library, java/cli the command,
# java/bench), generating the Java protobuf code with Maven's protoc, and
# packages target/java-peer.jar, which bin/java-peer runs.
java-build:
	$(MVN) package -DskipTests
	chmod +x $(PROTOC)

# The consumer projects, built as a user's would be: the library installed in
# the local Maven repository, java/consumer against it on protobuf 3.25 and
# 4.x (target/consumer-pb3, -pb4), go-peer/consumer into bin/inventory.
# java/tests' ConsumerTest runs them all at once on one variable.
PROTOBUF4 := $(shell sed -n 's:.*<protobuf.version>\(.*\)</protobuf.version>.*:\1:p' pom.xml | head -1)
consumers:
	$(MVN) install -DskipTests -pl java/shmvar -am
	$(MVN) -f java/consumer/pom.xml package -Dconsumer.build.directory=$(abspath target/consumer-pb3)
	$(MVN) -f java/consumer/pom.xml package -Dprotobuf.version=$(PROTOBUF4) -Dconsumer.build.directory=$(abspath target/consumer-pb4)
	cd go-peer/consumer && $(GO) build -o ../../bin/inventory .

# Installs both commands under $(PREFIX) (default /usr/local; PREFIX=$$HOME/.local
# needs no root): bin/go-peer, bin/java-peer and the jar it runs
# (share/shmvar/java-peer.jar), and bash and zsh completion for both. Builds
# first; BUILD= installs what is already built.
install: $(BUILD)
	install -d $(PREFIX)/bin $(PREFIX)/share/shmvar $(PREFIX)/share/bash-completion/completions $(PREFIX)/share/zsh/site-functions
	install -m 755 bin/go-peer bin/java-peer $(PREFIX)/bin/
	install -m 644 target/java-peer.jar $(PREFIX)/share/shmvar/java-peer.jar
	install -m 644 proto/cli/completion/shmvar-peer.bash $(PREFIX)/share/bash-completion/completions/go-peer
	install -m 644 proto/cli/completion/shmvar-peer.bash $(PREFIX)/share/bash-completion/completions/java-peer
	install -m 644 proto/cli/completion/_shmvar-peer $(PREFIX)/share/zsh/site-functions/_shmvar-peer

# Java tests (cross-language ones start bin/go-peer), then Go tests
# (cross-language ones start bin/java-peer; go-peer/bench, the bench's own
# module, checks its generated code and its gRPC owner), the etcd backing's
# tests against a real embedded server (go-peer/etcd), then a check that no
# System V segment or semaphore set was left behind.
test:
	@mkdir -p target && ipcs -m -s | awk '/^0x/ {print $$1, $$2}' | sort > target/ipcs-before.txt
	$(MAKE) go-build consumers
	mvn -B --no-transfer-progress -Pcross-language verify | grep -E '^\[(INFO|WARNING|ERROR)\] (Tests run|T E S T S|BUILD|FAIL|ERROR|Running)|^\[ERROR\]' ; exit $${PIPESTATUS[0]}
	cd go-peer && PROTOC=$(abspath $(PROTOC)) $(GO) test $(GOFLAGS_TEST) ./...
	cd go-peer/bench && PROTOC=$(abspath $(PROTOC)) $(GO) test $(GOFLAGS_TEST) ./...
	cd go-peer/metrics && $(GO) test $(GOFLAGS_TEST) ./...
	cd go-peer/consumer && $(GO) test $(GOFLAGS_TEST) ./...
	cd go-peer && $(GO) test -run '^$$' -fuzz=FuzzOpenAndGet -fuzztime=$(FUZZTIME) -fuzzminimizetime=100x ./shmvar
	cd go-peer/etcd && $(GO) test $(GOFLAGS_TEST) ./...
	@ipcs -m -s | awk '/^0x/ {print $$1, $$2}' | sort > target/ipcs-after.txt; \
	  left=$$(comm -13 target/ipcs-before.txt target/ipcs-after.txt); \
	  if [ -n "$$left" ]; then echo "make test left System V segments or semaphore sets behind (key id): $$left"; exit 1; fi; \
	  echo "ipcs -m -s: no segment or semaphore set left behind"

# The crash tests with $(KILLS) kills each way, a longer fuzz run, and the
# figures: kills, torn reads, lost commits, takeover time p50/p99/max.
stress: build
	cd go-peer && SHMVAR_KILLS=$(KILLS) $(GO) test -count=1 -timeout 60m -v -run 'TestKillJavaHolderWhileGoWaits' ./shmvar | grep -E 'kills=|^(ok|FAIL|---)'
	SHMVAR_KILLS=$(KILLS) mvn -B -q -Pcross-language verify -Dtest=CrashTest#killGoHolderWhileJavaWaits -Dsurefire.failIfNoSpecifiedTests=false | grep -E 'kills=|FAIL|ERROR\]  '
	cd go-peer && $(GO) test -run '^$$' -fuzz=FuzzOpenAndGet -fuzztime=2m -fuzzminimizetime=100x ./shmvar

# Differential fuzzing: $(DIFF_CASES) mutated corpus images through both
# peers' conformance testees side by side, with a random seed (printed; pass
# DIFF_SEED=N to replay). Prints "cases=N disagreements=M" and each
# disagreement's case file; any disagreement fails.
fuzz-diff: build
	cd go-peer && SHMVAR_DIFF_CASES=$(DIFF_CASES) SHMVAR_DIFF_SEED=$(DIFF_SEED) $(GO) test -count=1 -timeout 60m -v \
	  -run '^TestDifferentialFuzz$$' ./shmvar | sed -E 's/^ +difffuzz_test.go:[0-9]+: //' | grep -vE '^(=== RUN|PASS$$|FAIL$$)'

# Java against the Go process it starts: ping-pong (shm spin/park, Unix
# socket, raw-word floor), contended throughput, gRPC over a Unix socket,
# JMH and go test -bench, cost against value size, readers beside a writer,
# parked-waiter CPU. Writes target/bench.json, bench.txt, bench-latency.svg,
# bench-size.svg. QUICK=1 gives the same keys in under 90 s, build included.
# The Go half is go-peer/bench, a module of its own (gRPC stays out of the
# library's go.mod); the Java half is java/bench.
# Then the etcd figures on a throwaway server (go-peer/etcd/cmd/etcd-bench):
# get, update, watch latency, contended updates/s from both languages;
# writes target/bench-etcd.json.
bench: go-build
	cd go-peer/bench && $(GO) build -o ../../bin/bench-peer ./cmd/bench-peer
	$(MVN) -pl java/bench -am compile dependency:build-classpath -Dmdep.outputFile=$(abspath target/bench-classpath.txt) -Dmdep.includeScope=runtime
	cd go-peer && $(GO) test -run '^$$' -bench 'Update|Mutate|Get' -benchmem -benchtime=$(if $(QUICK),200ms,1s) -count=$(if $(QUICK),3,5) ./shmvar > ../target/go-bench.txt
	java -XX:+UseSerialGC -cp java/bench/target/classes:$$(cat target/bench-classpath.txt) io.shmvar.Bench $(if $(QUICK),--quick)
	cd go-peer/etcd && $(GO) build -o ../../target/etcd-bench ./cmd/etcd-bench
	$(MAKE) java-build
	target/etcd-bench --root . --json target/bench-etcd.json $(if $(QUICK),--quick)

# Go and Java increment one counter at the same time; Ctrl-C stops both and
# removes the segment. BACKING=etcd does it on a throwaway etcd (bin/etcd-demo).
demo: build
ifeq ($(BACKING),etcd)
	bin/etcd-demo $(ETCD_COUNT)
else
	bin/go-peer demo --count $(COUNT) --java bin/java-peer
endif

# Regenerates the committed Go code from proto/ with the same protoc Maven uses
# (and the descriptor.proto of Maven's protobuf-java, which protocol.proto imports):
# the library's in go-peer/shmvarpb, the bench's (and its gRPC service) in
# go-peer/bench/benchpb, the Go consumer's in go-peer/consumer (which imports
# timestamp.proto, from the same protobuf-java jar).
generate:
	$(MVN) -N generate-sources
	chmod +x $(PROTOC)
	cd go-peer && $(GO) build -o ../target/tools/protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go
	$(PROTOC) --plugin=protoc-gen-go=target/tools/protoc-gen-go --go_out=go-peer \
	  --go_opt=module=github.com/shmvar/shmvar/go-peer -Iproto -Itarget/tools/include proto/shmvar/v1/*.proto proto/shmvar/examples/v1/*.proto proto/shmvar/cli/v1/*.proto
	cp proto/cli/commands.json go-peer/cmd/go-peer/commands.json
	cd go-peer && $(GO) test -count=1 -run TestCompletionScriptsAreFresh ./cmd/go-peer -update
	cd go-peer/bench && $(GO) build -o ../../target/tools/protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc
	$(PROTOC) --plugin=protoc-gen-go=target/tools/protoc-gen-go --plugin=protoc-gen-go-grpc=target/tools/protoc-gen-go-grpc \
	  --go_out=go-peer/bench --go_opt=module=github.com/shmvar/shmvar/go-peer/bench \
	  --go-grpc_out=go-peer/bench --go-grpc_opt=module=github.com/shmvar/shmvar/go-peer/bench -Iproto proto/bench/v1/*.proto
	$(PROTOC) --plugin=protoc-gen-go=target/tools/protoc-gen-go --go_out=go-peer/consumer --go_opt=module=example.com/acme/inventory \
	  -Igo-peer/consumer/proto -Itarget/tools/include go-peer/consumer/proto/acme/inventory/v1/*.proto

clean:
	rm -rf target bin/go-peer bin/bench-peer bin/etcd-dev
