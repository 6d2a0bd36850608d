package shmvar_test

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/shmvar/shmvar/go-peer/examplespb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
)

// The protocol runs on Linux on amd64 and arm64 only, but a program that
// imports shmvar must build anywhere (native_other.go fails at run time
// with ErrUnsupportedPlatform): on a macOS or Windows laptop, on a
// big-endian CPU (s390x) and on a 32-bit one (386).
func TestBuildsOnOtherPlatforms(t *testing.T) {
	for _, target := range []struct{ goos, goarch, verb string }{
		{"darwin", "arm64", "build"},
		{"windows", "amd64", "build"},
		{"linux", "s390x", "build"},
		{"linux", "386", "vet"},
	} {
		name := target.goos + "/" + target.goarch
		t.Run(strings.ReplaceAll(name, "/", "_"), func(t *testing.T) {
			args := []string{target.verb, "./..."}
			if target.verb == "vet" {
				args = []string{"vet", "./shmvar"}
			}
			cmd := exec.Command("go", args...)
			cmd.Dir = ".." // the module
			cmd.Env = append(os.Environ(), "GOOS="+target.goos, "GOARCH="+target.goarch, "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("GOOS=%s GOARCH=%s go %s: %v\n%s", target.goos, target.goarch, strings.Join(args, " "), err, out)
			}
		})
	}
	// A linux/386 binary runs here, if the kernel runs 32-bit programs:
	// there the stubs must fail as documented.
	if runtime.GOOS == "linux" && runtime.GOARCH == "amd64" {
		cmd := exec.Command("go", "test", "-count=1", "-run", "^TestUnsupportedPlatform$", "-v", ".")
		cmd.Env = append(os.Environ(), "GOARCH=386", "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		switch {
		case strings.Contains(string(out), "exec format error"):
			t.Logf("linux/386 programs do not run here; TestUnsupportedPlatform not run")
		case err != nil || !strings.Contains(string(out), "--- PASS: TestUnsupportedPlatform"):
			t.Errorf("GOARCH=386 go test -run TestUnsupportedPlatform: %v\n%s", err, out)
		}
	}
}

// TestUnsupportedPlatform runs where the protocol does not (TestBuildsOnOtherPlatforms
// runs it as linux/386): everything that would attach fails with ErrUnsupportedPlatform.
func TestUnsupportedPlatform(t *testing.T) {
	if runtime.GOOS == "linux" && (runtime.GOARCH == "amd64" || runtime.GOARCH == "arm64") {
		t.Skip("a supported platform")
	}
	const key = 0x5d000001
	_, err := shmvar.Create[*examplespb.Counter](key, shmvar.Options{})
	if !errors.Is(err, shmvar.ErrUnsupportedPlatform) {
		t.Errorf("Create: %v, want ErrUnsupportedPlatform", err)
	}
	_, err = shmvar.OpenAny(key, shmvar.Options{})
	if !errors.Is(err, shmvar.ErrUnsupportedPlatform) {
		t.Errorf("OpenAny: %v, want ErrUnsupportedPlatform", err)
	}
	_, err = shmvar.CreateFile[*examplespb.Counter](filepath.Join(t.TempDir(), "v"), shmvar.Options{})
	if !errors.Is(err, shmvar.ErrUnsupportedPlatform) {
		t.Errorf("CreateFile: %v, want ErrUnsupportedPlatform", err)
	}
	if err := shmvar.RemoveKey(key); !errors.Is(err, shmvar.ErrUnsupportedPlatform) {
		t.Errorf("RemoveKey: %v, want ErrUnsupportedPlatform", err)
	}
	t.Log(err)
}

// The exported API is the same on every platform: files with a build
// constraint (the native_* files) declare nothing exported.
func TestPlatformFilesExportNothing(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		constrained := false
		for _, c := range f.Comments {
			constrained = constrained || (c.Pos() < f.Package && strings.HasPrefix(c.List[0].Text, "//go:build"))
		}
		if !constrained {
			continue
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Name.IsExported() {
					t.Errorf("%s: %s is exported: declare it in a file every platform builds", name, d.Name.Name)
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						if s.Name.IsExported() {
							t.Errorf("%s: %s is exported: declare it in a file every platform builds", name, s.Name.Name)
						}
					case *ast.ValueSpec:
						for _, n := range s.Names {
							if n.IsExported() {
								t.Errorf("%s: %s is exported: declare it in a file every platform builds", name, n.Name)
							}
						}
					}
				}
			}
		}
	}
}
