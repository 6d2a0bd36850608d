package shmvar_test

// Cross-language tests: they start the real Java process, bin/java-peer,
// which make build (or make test) builds first.

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shmvar/shmvar/go-peer/examplespb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

func javaPeer(t testing.TB) string {
	t.Helper()
	root := repoRoot(t)
	if _, err := os.Stat(filepath.Join(root, "target", "java-peer.jar")); err != nil {
		t.Fatalf("target/java-peer.jar is missing: run 'make build' (make test does) first")
	}
	return filepath.Join(root, "bin", "java-peer")
}

// runJava runs bin/java-peer and returns its stdout, stderr and exit status.
func runJava(t testing.TB, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(javaPeer(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("java-peer %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

func mustRunJava(t testing.TB, args ...string) string {
	t.Helper()
	out, errOut, code := runJava(t, args...)
	if code != 0 {
		t.Fatalf("java-peer %v: exit %d: %s", args, code, errOut)
	}
	return out
}

func TestJavaShouldReadAllTypesWrittenByGo(t *testing.T) {
	key := testKey(t)
	_, sample := mustCreateAllTypes(t, key)
	k := shmvar.FormatKey(key)
	binary := &examplespb.AllTypes{}
	if err := proto.Unmarshal([]byte(mustRunJava(t, "get", "--key", k, "--format", "binary")), binary); err != nil {
		t.Fatalf("java-peer get --format binary does not decode: %v", err)
	}
	if !proto.Equal(binary, sample) {
		t.Fatalf("Java read back, as binary:\n%v\nwant:\n%v", binary, sample)
	}
	text := &examplespb.AllTypes{}
	if err := prototext.Unmarshal([]byte(mustRunJava(t, "get", "--key", k, "--format", "text")), text); err != nil {
		t.Fatalf("java-peer get --format text does not parse: %v", err)
	}
	if !proto.Equal(text, sample) {
		t.Fatalf("Java read back, as text:\n%v\nwant:\n%v", text, sample)
	}
}

func TestGoShouldReadAllTypesWrittenByJavaInASegmentJavaCreated(t *testing.T) {
	key := testKey(t)
	sample, text := allTypesSample(t)
	k := shmvar.FormatKey(key)
	mustRunJava(t, "create", "--key", k, "--type", "shmvar.examples.v1.AllTypes")
	mustRunJava(t, "set", "--key", k, text)
	v, err := shmvar.Open[*examplespb.AllTypes](key, shmvar.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Remove()
	if creator := v.Descriptor().GetCreator(); creator != "java" {
		t.Fatalf("descriptor creator = %q, want java", creator)
	}
	got, err := v.Get()
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, sample) {
		t.Fatalf("Go read back:\n%v\nwant:\n%v", got, sample)
	}
}

func TestGoAndJavaIncrementsShouldSumExactlyWithGoAsCreator(t *testing.T) {
	const each = 100000
	key := testKey(t)
	v := mustCreateCounter(t, key)
	java := exec.Command(javaPeer(t), "incr", "--key", shmvar.FormatKey(key), "--count", strconv.Itoa(each), "--quiet")
	var javaOut bytes.Buffer
	java.Stdout, java.Stderr = &javaOut, &javaOut
	if err := java.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until Java's first increment lands, so that both really run at once.
	for deadline := time.Now().Add(20 * time.Second); ; {
		if g, _ := v.Generation(); g > 0 {
			break
		}
		if time.Now().After(deadline) {
			java.Process.Kill()
			t.Fatalf("java-peer made no increment in 20s: %s", javaOut.String())
		}
		time.Sleep(time.Millisecond)
	}
	increment(t, v, each)
	if err := java.Wait(); err != nil {
		t.Fatalf("java-peer incr: %v: %s", err, javaOut.String())
	}
	got, _ := v.Get()
	g, _ := v.Generation()
	if got.GetValue() != 2*each || g != 2*each {
		t.Fatalf("value=%d generation=%d, want both %d", got.GetValue(), g, 2*each)
	}
	t.Logf("java: %s", strings.TrimSpace(javaOut.String()))
}

func TestJavaShouldRefuseBadSegmentsWithOneLine(t *testing.T) {
	key := testKey(t)
	mustCreateCounter(t, key)
	k := shmvar.FormatKey(key)
	check := func(want string, args ...string) {
		t.Helper()
		out, errOut, code := runJava(t, args...)
		if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, want) {
			t.Fatalf("java-peer %v: exit %d, stdout %q, stderr %q; want exit 1 and one line containing %q", args, code, out, errOut, want)
		}
	}
	check("payload type mismatch: segment holds shmvar.examples.v1.Counter, asked for shmvar.examples.v1.AllTypes", "get", "--key", k, "--type", "shmvar.examples.v1.AllTypes")
	poke(t, key, func(mem []byte) { le.PutUint32(mem[shmvar.LayoutVersionOffset:], 3<<16|3) })
	check("layout version mismatch: app=2.0 segment=3.3", "get", "--key", k)
	garbage := rawSegment(t, 4096, func(mem []byte) { copy(mem, "definitely not a shmvar segment") })
	check("not a shmvar segment", "inspect", "--key", shmvar.FormatKey(garbage))
	check("refusing to remove it", "rm", "--key", shmvar.FormatKey(garbage))
}
