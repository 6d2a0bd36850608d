//go:build linux && (amd64 || arm64)

package main

import (
	"bytes"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shmvar/shmvar/go-peer/shmvar"
)

// TestJavaPeerPrintsNoWarningsOnEachJDK runs bin/java-peer on the JDK 17 of
// the PATH and on JDK 25 (SHMVAR_JAVA): create, incr and get print what they
// should and nothing else, no JVM warnings (native access, sun.misc.Unsafe).
func TestJavaPeerPrintsNoWarningsOnEachJDK(t *testing.T) {
	javaPeer, err := filepath.Abs(filepath.Join("..", "..", "..", "bin", "java-peer"))
	if err != nil {
		t.Fatal(err)
	}
	jdk25 := os.Getenv("SHMVAR_JDK25")
	if jdk25 == "" {
		jdk25 = "/usr/lib/jvm/temurin-25-jdk-amd64"
	}
	if _, err := os.Stat(filepath.Join(jdk25, "bin", "java")); err != nil {
		t.Fatalf("JDK 25 is missing at %s (set SHMVAR_JDK25): %v", jdk25, err)
	}
	for name, java := range map[string]string{"PATH": "java", "25": filepath.Join(jdk25, "bin", "java")} {
		key := uint32(0x5f000000 | rand.Int31n(0xffffff))
		k := shmvar.FormatKey(key)
		for _, args := range [][]string{{"create", "--key", k}, {"incr", "--key", k, "--count", "3"}, {"get", "--key", k}} {
			cmd := exec.Command(javaPeer, args...)
			cmd.Env = append(os.Environ(), "SHMVAR_JAVA="+java)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				shmvar.RemoveKey(key)
				t.Fatalf("JDK %s: java-peer %s: %v: %s", name, strings.Join(args, " "), err, stderr.String())
			}
			if stderr.Len() != 0 || strings.Contains(stdout.String(), "WARNING") {
				shmvar.RemoveKey(key)
				t.Fatalf("JDK %s: java-peer %s printed more than its output:\n%s%s", name, strings.Join(args, " "), stderr.String(), stdout.String())
			}
			if args[0] == "get" && !strings.Contains(stdout.String(), "value: 3") {
				t.Errorf("JDK %s: get printed %q", name, stdout.String())
			}
		}
		if err := shmvar.RemoveKey(key); err != nil {
			t.Fatal(err)
		}
	}
}
