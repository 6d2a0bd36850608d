package benchpb_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGeneratedCodeIsFresh regenerates the bench's Go code from
// proto/bench with the protoc that Maven fetched (make test passes its path
// in PROTOC) and fails when the committed files differ: run make generate.
func TestGeneratedCodeIsFresh(t *testing.T) {
	protoc := os.Getenv("PROTOC")
	if protoc == "" {
		t.Skip("PROTOC is not set; make test sets it to Maven's protoc")
	}
	if _, err := os.Stat(protoc); err != nil {
		t.Fatalf("PROTOC=%s: %v (run make build first)", protoc, err)
	}
	tmp := t.TempDir()
	for _, plugin := range []string{"google.golang.org/protobuf/cmd/protoc-gen-go", "google.golang.org/grpc/cmd/protoc-gen-go-grpc"} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(tmp, filepath.Base(plugin)), plugin).CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", plugin, err, out)
		}
	}
	files, _ := filepath.Glob("../../../proto/bench/v1/*.proto")
	const module = "module=github.com/shmvar/shmvar/go-peer/bench"
	args := append([]string{"--plugin=protoc-gen-go=" + filepath.Join(tmp, "protoc-gen-go"),
		"--plugin=protoc-gen-go-grpc=" + filepath.Join(tmp, "protoc-gen-go-grpc"),
		"--go_out=" + tmp, "--go_opt=" + module, "--go-grpc_out=" + tmp, "--go-grpc_opt=" + module,
		"-I../../../proto"}, files...)
	if out, err := exec.Command(protoc, args...).CombinedOutput(); err != nil {
		t.Fatalf("protoc: %v\n%s", err, out)
	}
	generated, _ := filepath.Glob(filepath.Join(tmp, "benchpb", "*.pb.go"))
	committed, _ := filepath.Glob("*.pb.go")
	if len(generated) != len(committed) {
		t.Fatalf("protoc generates %d files, %d are committed: run make generate", len(generated), len(committed))
	}
	for _, g := range generated {
		want, _ := os.ReadFile(g)
		got, err := os.ReadFile(filepath.Base(g))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run make generate", filepath.Base(g))
		}
	}
}
