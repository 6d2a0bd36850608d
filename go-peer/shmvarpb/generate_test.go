package shmvarpb_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGeneratedCodeIsFresh regenerates the Go code from proto/ with the
// protoc that Maven fetched (make test passes its path in PROTOC) and fails
// when the committed files differ: run make generate.
func TestGeneratedCodeIsFresh(t *testing.T) {
	protoc := os.Getenv("PROTOC")
	if protoc == "" {
		t.Skip("PROTOC is not set; make test sets it to Maven's protoc")
	}
	if _, err := os.Stat(protoc); err != nil {
		t.Fatalf("PROTOC=%s: %v (run make build first)", protoc, err)
	}
	os.Chmod(protoc, 0o755)
	tmp := t.TempDir()
	plugin := filepath.Join(tmp, "protoc-gen-go")
	build := exec.Command("go", "build", "-o", plugin, "google.golang.org/protobuf/cmd/protoc-gen-go")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building protoc-gen-go: %v\n%s", err, out)
	}
	// Each proto package and the Go package generated from it.
	for _, pkg := range []struct{ proto, gopkg string }{
		{"shmvar/v1", "shmvarpb"}, {"shmvar/examples/v1", "examplespb"}, {"shmvar/cli/v1", "clipb"},
	} {
		files, _ := filepath.Glob(filepath.Join("../../proto", pkg.proto, "*.proto"))
		args := append([]string{"--plugin=protoc-gen-go=" + plugin, "--go_out=" + tmp,
			"--go_opt=module=github.com/shmvar/shmvar/go-peer", "-I../../proto",
			// google/protobuf/descriptor.proto, which make build unpacks next to protoc
			"-I" + filepath.Join(filepath.Dir(protoc), "include")}, files...)
		if out, err := exec.Command(protoc, args...).CombinedOutput(); err != nil {
			t.Fatalf("protoc: %v\n%s", err, out)
		}
		generated, _ := filepath.Glob(filepath.Join(tmp, pkg.gopkg, "*.pb.go"))
		committed, _ := filepath.Glob(filepath.Join("..", pkg.gopkg, "*.pb.go"))
		if len(generated) != len(committed) {
			t.Fatalf("protoc generates %d files in %s, %d are committed: run make generate", len(generated), pkg.gopkg, len(committed))
		}
		for _, g := range generated {
			want, _ := os.ReadFile(g)
			got, err := os.ReadFile(filepath.Join("..", pkg.gopkg, filepath.Base(g)))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s/%s is stale: run make generate", pkg.gopkg, filepath.Base(g))
			}
		}
	}
}
