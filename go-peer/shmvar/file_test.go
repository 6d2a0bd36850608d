package shmvar_test

// The file backing: the same layout, protocol and cross-language checks as
// System V segments, on a file under /dev/shm and on a regular file.

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmvar/shmvar/go-peer/examplespb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
)

// fileDirs are the two kinds of place a file-backed variable lives.
func fileDirs(t *testing.T) map[string]string {
	shm, err := os.MkdirTemp("/dev/shm", "shmvar-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	return map[string]string{"devshm": shm, "regular": t.TempDir()}
}

func goPeerBin(t testing.TB) string { return filepath.Join(repoRoot(t), "bin", "go-peer") }

func TestFileBackingAcrossLanguages(t *testing.T) {
	for kind, dir := range fileDirs(t) {
		t.Run(kind, func(t *testing.T) {
			path := filepath.Join(dir, "counter.svar")
			v, err := shmvar.CreateFile[*examplespb.Counter](path, shmvar.Options{})
			if err != nil {
				t.Fatal(err)
			}
			const each = 100000
			java := exec.Command(javaPeer(t), "incr", "--file", path, "--count", strconv.Itoa(each), "--quiet")
			var out bytes.Buffer
			java.Stdout, java.Stderr = &out, &out
			if err := java.Start(); err != nil {
				t.Fatal(err)
			}
			for g, _ := v.Generation(); g == 0; g, _ = v.Generation() {
				time.Sleep(time.Millisecond)
			}
			increment(t, v, each)
			if err := java.Wait(); err != nil {
				t.Fatalf("java-peer incr --file: %v: %s", err, out.String())
			}
			if got, _ := v.Get(); got.GetValue() != 2*each {
				t.Fatalf("value = %d, want %d", got.GetValue(), 2*each)
			}
			if err := v.Remove(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("file still there after Remove: %v", err)
			}

			// All types, written by Java into a file Java created, read by Go.
			sample, text := allTypesSample(t)
			all := filepath.Join(dir, "all.svar")
			mustRunJava(t, "create", "--file", all, "--type", "shmvar.examples.v1.AllTypes")
			mustRunJava(t, "set", "--file", all, "--sync", text)
			a, err := shmvar.OpenFile[*examplespb.AllTypes](all, shmvar.Options{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := a.Get()
			if err != nil || !proto.Equal(got, sample) {
				t.Fatalf("Go read back from Java's file: %v\n%v", err, got)
			}
			a.Remove()

			// A file of another format gets one clear line, and is left alone.
			garbage := filepath.Join(dir, "garbage")
			os.WriteFile(garbage, bytes.Repeat([]byte("not shmvar "), 100), 0o600)
			_, errOut, code := runJava(t, "get", "--file", garbage)
			if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "not a shmvar segment") {
				t.Fatalf("java-peer get --file garbage: exit %d: %q", code, errOut)
			}
			if _, err := shmvar.OpenAnyFile(garbage, shmvar.Options{}); !errors.Is(err, shmvar.ErrNotShmvar) || !strings.Contains(err.Error(), "file="+garbage) {
				t.Fatalf("OpenAnyFile(garbage): %v", err)
			}
			if _, err := shmvar.CreateFile[*examplespb.Counter](garbage, shmvar.Options{}); !errors.Is(err, unix.EEXIST) {
				t.Fatalf("CreateFile over an existing file: %v", err)
			}
		})
	}
}

// TestFileValueSurvivesKillOfBothProcessesAndReopening kills a Java writer
// and then a Go writer of a regular file with kill -9 and re-opens the file
// afresh each time: it holds every commit the killed process reported.
func TestFileValueSurvivesKillOfBothProcessesAndReopening(t *testing.T) {
	path := filepath.Join(t.TempDir(), "durable.svar")
	v, err := shmvar.CreateFile[*examplespb.Counter](path, shmvar.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v.Close()
	var expected int64
	for _, peer := range [][]string{{javaPeer(t)}, {goPeerBin(t)}} {
		cmd := exec.Command(peer[0], "incr", "--file", path, "--count", "1000000000", "--sync", "--print-each", "--quiet")
		var out bytes.Buffer
		cmd.Stdout = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(30 * time.Second); strings.Count(out.String(), "\n") < 50; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s made no progress", peer[0])
			}
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		printed := int64(strings.Count(out.String(), "committed "))
		v, err := shmvar.OpenFile[*examplespb.Counter](path, shmvar.Options{})
		if err != nil {
			t.Fatalf("re-opening after kill -9 of %s: %v", peer[0], err)
		}
		got, err := v.Get()
		if err != nil {
			t.Fatalf("value unreadable after kill -9 of %s: %v", peer[0], err)
		}
		if got.GetValue() < expected+printed || got.GetValue() > expected+printed+1 {
			t.Fatalf("after kill -9 of %s: value %d, it reported %d commits on top of %d", peer[0], got.GetValue(), printed, expected)
		}
		expected = got.GetValue()
		v.Close()
	}
}
