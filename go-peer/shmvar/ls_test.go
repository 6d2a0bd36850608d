package shmvar_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shmvar/shmvar/go-peer/shmvar"
)

// TestLsListsOursFromEitherLanguageAndNotForeignOnes makes a segment with Go,
// a file with Java, and a foreign segment and file of another format, and
// checks what both commands' ls lists.
func TestLsListsOursFromEitherLanguageAndNotForeignOnes(t *testing.T) {
	ours := testKey(t)
	mustCreateCounter(t, ours)
	dir := t.TempDir()
	file := filepath.Join(dir, "java.svar")
	mustRunJava(t, "create", "--file", file, "--type", "shmvar.examples.v1.AllTypes")
	foreignKey := rawSegment(t, 8192, func(mem []byte) { copy(mem, "some other program's segment") })
	foreignFile := filepath.Join(dir, "foreign.bin")
	os.WriteFile(foreignFile, []byte("SVARbut not really a shmvar file, only its magic"), 0o600)

	goOut, err := exec.Command(goPeerBin(t), "ls", "--dir", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("go-peer ls: %v: %s", err, goOut)
	}
	javaOut := mustRunJava(t, "ls", "--dir", dir)
	for name, out := range map[string]string{"go-peer": string(goOut), "java-peer": javaOut} {
		if !strings.Contains(out, "key="+shmvar.FormatKey(ours)+" ") || !strings.Contains(out, "shmvar.examples.v1.Counter") {
			t.Errorf("%s ls misses the Go segment %s:\n%s", name, shmvar.FormatKey(ours), out)
		}
		if !strings.Contains(out, "file="+file+" ") || !strings.Contains(out, "shmvar.examples.v1.AllTypes") {
			t.Errorf("%s ls misses Java's file %s:\n%s", name, file, out)
		}
		if strings.Contains(out, shmvar.FormatKey(foreignKey)) || strings.Contains(out, foreignFile) {
			t.Errorf("%s ls lists a foreign segment or file:\n%s", name, out)
		}
	}
}
