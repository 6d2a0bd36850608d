package shmvar_test

// Faults of the file backing: a full file system, a file truncated under
// its attachments, a FIFO at the path, a file still being created and one
// larger than any segment. Each is checked on the Go library and on both
// commands, which must answer with the same single line.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shmvar/shmvar/go-peer/examplespb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
	"golang.org/x/sys/unix"
)

// smallTmpfs mounts a tmpfs of size bytes (root only: CI runs as root) and
// unmounts it when the test ends.
func smallTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("this test needs to mount a small tmpfs (run as root): mount: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// runPeer runs one of the commands, killing it after limit, and returns its
// stdout, stderr and exit status (-1 if it had to be killed).
func runPeer(t *testing.T, bin string, limit time.Duration, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		return stdout.String(), stderr.String(), -1
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return stdout.String(), stderr.String(), exit.ExitCode()
	}
	if err != nil {
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return stdout.String(), stderr.String(), 0
}

func commands(t *testing.T) map[string]string {
	return map[string]string{"go-peer": goPeerBin(t), "java-peer": javaPeer(t)}
}

// wantOneLine checks that a command failed with exit status 1 and one line
// on stderr holding each of wants.
func wantOneLine(t *testing.T, what string, stderr string, code int, wants ...string) {
	t.Helper()
	if code != 1 || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("%s: exit %d, want 1 with one line on stderr: %q", what, code, stderr)
	}
	for _, w := range wants {
		if !strings.Contains(stderr, w) {
			t.Fatalf("%s: %q does not say %q", what, stderr, w)
		}
	}
}

func TestCreateFileOnFullFileSystemFailsWithENOSPCAndLeavesNothing(t *testing.T) {
	dir := smallTmpfs(t, "64k")
	path := filepath.Join(dir, "big.svar")
	// 2 x 100000 bytes of slots do not fit 64 KiB: ftruncate alone would
	// make a sparse file that faults at the first write to a slot.
	_, err := shmvar.CreateFile[*examplespb.Counter](path, shmvar.Options{Capacity: 100000})
	if !errors.Is(err, unix.ENOSPC) || !strings.Contains(err.Error(), "file="+path) {
		t.Fatalf("CreateFile on a full tmpfs: %v, want ENOSPC naming the file", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("CreateFile left the file behind: %v", err)
	}
	for name, bin := range commands(t) {
		_, stderr, code := runPeer(t, bin, time.Minute, "create", "--file", path, "--capacity", "100000")
		wantOneLine(t, name+" create on a full tmpfs", stderr, code, "ENOSPC", path)
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s create left the file behind: %v", name, err)
		}
		// The sizes differ (each language's descriptor names its creator),
		// and so does the case of strerror's text.
		wantOneLine(t, name, stderr, code, "fallocate file="+path, "(ENOSPC): no space left for the file's", "nothing was created")
	}
	// What fits is fully allocated: filling the slots cannot fault later.
	small := filepath.Join(dir, "small.svar")
	v, err := shmvar.CreateFile[*examplespb.Counter](small, shmvar.Options{Capacity: 8000})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Remove()
	var st unix.Stat_t
	if err := unix.Stat(small, &st); err != nil || st.Blocks*512 < st.Size {
		t.Fatalf("file of %d bytes has only %d blocks allocated (%v)", st.Size, st.Blocks, err)
	}
}

func TestTruncatedFileGivesAnErrorNotACrash(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int64{0, 4096} { // the whole file, or the slots only
		path := filepath.Join(dir, "truncated.svar")
		v, err := shmvar.CreateFile[*examplespb.Counter](path, shmvar.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Set(&examplespb.Counter{Value: 7}); err != nil {
			t.Fatal(err)
		}
		other, err := shmvar.OpenFile[*examplespb.Counter](path, shmvar.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, size); err != nil {
			t.Fatal(err)
		}
		if size > 0 {
			// The header's page survived, and one of the slots: of two
			// commits, one faults. The lock was released after it.
			err1, err2 := v.Set(&examplespb.Counter{Value: 8}), v.Set(&examplespb.Counter{Value: 9})
			if !errors.Is(err1, shmvar.ErrCorrupt) && !errors.Is(err2, shmvar.ErrCorrupt) {
				t.Fatalf("size %d: two Sets: %v, %v", size, err1, err2)
			}
			if s, err := other.Lock(); err != nil || s.Word != 0 {
				t.Fatalf("size %d: lock word 0x%x after a faulted update (%v)", size, s.Word, err)
			}
		} else {
			if _, err := other.Get(); !errors.Is(err, shmvar.ErrCorrupt) || !strings.Contains(err.Error(), "file was truncated under this attachment") {
				t.Fatalf("size %d: Get: %v", size, err)
			}
			if _, err := v.GetEncoded(); !errors.Is(err, shmvar.ErrCorrupt) {
				t.Fatalf("size %d: GetEncoded: %v", size, err)
			}
			if err := v.Set(&examplespb.Counter{Value: 8}); !errors.Is(err, shmvar.ErrCorrupt) {
				t.Fatalf("size %d: Set: %v", size, err)
			}
			if err := v.Mutate(func(c *examplespb.Counter) error { c.Value++; return nil }); !errors.Is(err, shmvar.ErrCorrupt) {
				t.Fatalf("size %d: Mutate: %v", size, err)
			}
			if _, err := v.AwaitChange(0, time.Millisecond); !errors.Is(err, shmvar.ErrCorrupt) {
				t.Fatalf("size %d: AwaitChange: %v", size, err)
			}
			if _, err := other.Lock(); !errors.Is(err, shmvar.ErrCorrupt) {
				t.Fatalf("size %d: Lock: %v", size, err)
			}
		}
		if err := other.Close(); err != nil {
			t.Fatal(err)
		}
		if err := v.Close(); err != nil {
			t.Fatal(err)
		}
		os.Remove(path)
	}
}

// TestTruncationUnderARunningCommand truncates the file under an incr of
// each command: it must end with one line naming the truncation, not die
// of SIGBUS, abort the JVM or hang.
func TestTruncationUnderARunningCommand(t *testing.T) {
	dir := t.TempDir()
	for name, bin := range commands(t) {
		path := filepath.Join(dir, name+".svar")
		v, err := shmvar.CreateFile[*examplespb.Counter](path, shmvar.Options{})
		if err != nil {
			t.Fatal(err)
		}
		v.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, bin, "incr", "--file", path, "--count", "1000000000", "--quiet")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		r, err := shmvar.OpenFile[*examplespb.Counter](path, shmvar.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		for g, _ := r.Generation(); g < 1000; g, _ = r.Generation() {
			time.Sleep(time.Millisecond)
		}
		r.Close()
		if err := os.Truncate(path, 4096); err != nil {
			t.Fatal(err)
		}
		err = cmd.Wait()
		timedOut := ctx.Err() != nil
		cancel()
		if timedOut {
			t.Fatalf("%s incr still running a minute after the truncation: %s", name, stderr.String())
		}
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		}
		wantOneLine(t, name+" incr with the file truncated under it", stderr.String(), code,
			"segment corrupt", "file was truncated under this attachment", path)
	}
}

func TestFIFOAtThePathIsRefusedNotWaitedOn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := shmvar.OpenAnyFile(path, shmvar.Options{ReadOnly: true}); !errors.Is(err, shmvar.ErrNotShmvar) {
		t.Fatalf("OpenAnyFile(FIFO): %v", err)
	}
	for name, bin := range commands(t) {
		for _, args := range [][]string{{"get"}, {"inspect"}, {"check", "--duration", "100ms"}, {"rm"}, {"set", "value: 1"}} {
			cmdArgs := append([]string{args[0], "--file", path}, args[1:]...)
			_, stderr, code := runPeer(t, bin, 30*time.Second, cmdArgs...)
			if code == -1 {
				t.Fatalf("%s %v blocked on the FIFO", name, cmdArgs)
			}
			wantOneLine(t, name+" "+args[0]+" on a FIFO", stderr, code, "not a regular file")
		}
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("%s rm removed the FIFO without --force: %v", name, err)
		}
	}
}

func TestEmptyFileIsWaitedForThenNotInitialised(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "empty.svar")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := shmvar.OpenAnyFile(path, shmvar.Options{InitWait: 200 * time.Millisecond})
	if !errors.Is(err, shmvar.ErrNotInitialised) || !strings.Contains(err.Error(), "magic and version are zero after 200ms") {
		t.Fatalf("OpenAnyFile(empty file): %v", err)
	}
	var outs []string
	for name, bin := range commands(t) {
		_, stderr, code := runPeer(t, bin, time.Minute, "get", "--file", path)
		wantOneLine(t, name+" get on an empty file", stderr, code, "segment not initialised", "magic and version are zero after 1s")
		outs = append(outs, stderr[strings.Index(stderr, ":"):])
	}
	if outs[0] != outs[1] {
		t.Fatalf("the commands disagree:\n%s%s", outs[0], outs[1])
	}

	// A creator that finishes within the wait is waited for.
	model := filepath.Join(dir, "model.svar")
	m, err := shmvar.CreateFile[*examplespb.Counter](model, shmvar.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	image, err := os.ReadFile(model)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(200 * time.Millisecond)
		os.WriteFile(path, image, 0o600)
	}()
	v, err := shmvar.OpenFile[*examplespb.Counter](path, shmvar.Options{})
	if err != nil {
		t.Fatalf("OpenFile of a file its creator finished within the wait: %v", err)
	}
	v.Close()
}

func TestSegmentsLargerThanTheLargestValidOneAreRefused(t *testing.T) {
	if want := uint64(537921152); shmvar.MaxSegmentLength != want { // 1536 + 1 MiB + 2 x align64(16 + 256 MiB)
		t.Fatalf("MaxSegmentLength = %d, want %d", shmvar.MaxSegmentLength, want)
	}
	// A valid file, made larger: sparse, so it costs no memory.
	path := filepath.Join(t.TempDir(), "huge.svar")
	v, err := shmvar.CreateFile[*examplespb.Counter](path, shmvar.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v.Close()
	if err := os.Truncate(path, 1<<30); err != nil {
		t.Fatal(err)
	}
	want := "segment size=1073741824 is larger than any shmvar segment (at most 537921152 bytes)"
	if _, err := shmvar.OpenAnyFile(path, shmvar.Options{}); !errors.Is(err, shmvar.ErrCorrupt) || !strings.Contains(err.Error(), want) {
		t.Fatalf("OpenAnyFile(1 GiB): %v", err)
	}
	for name, bin := range commands(t) {
		for _, args := range [][]string{{"get"}, {"incr", "--count", "1"}} {
			_, stderr, code := runPeer(t, bin, time.Minute, append([]string{args[0], "--file", path}, args[1:]...)...)
			wantOneLine(t, name+" "+args[0]+" on a 1 GiB file", stderr, code, want)
		}
	}
	// The same bound for a System V segment (not touched, so not paid for).
	size := int(shmvar.MaxSegmentLength) + 4096
	key := rawSegment(t, size, nil)
	wantSysV := "segment size=" + strconv.Itoa(size) + " is larger than any shmvar segment (at most 537921152 bytes)"
	if _, err := shmvar.OpenAny(key, shmvar.Options{}); !errors.Is(err, shmvar.ErrCorrupt) || !strings.Contains(err.Error(), wantSysV) {
		t.Fatalf("OpenAny(segment of %d bytes): %v", size, err)
	}
	_, stderr, code := runJava(t, "get", "--key", shmvar.FormatKey(key))
	wantOneLine(t, "java-peer get on a huge segment", stderr, code, wantSysV)
}

// TestTruncationUnderAWaitingCommand truncates a file while each command
// waits on it, for the lock (held by this process) and for a change: the
// wait ends with the truncation error, never with a crash.
func TestTruncationUnderAWaitingCommand(t *testing.T) {
	dir := t.TempDir()
	for name, bin := range commands(t) {
		for _, size := range []int64{0, 4096} {
			for _, wait := range [][]string{{"incr", "--count", "1", "--timeout", "60s"}, {"watch"}} {
				what := fmt.Sprintf("%s %s with the file truncated to %d bytes", name, wait[0], size)
				path := filepath.Join(dir, fmt.Sprintf("%s-%s-%d.svar", name, wait[0], size))
				v, err := shmvar.CreateFile[*examplespb.Counter](path, shmvar.Options{})
				if err != nil {
					t.Fatal(err)
				}
				held, release := make(chan struct{}), make(chan struct{})
				go v.Mutate(func(*examplespb.Counter) error { close(held); <-release; return errors.New("held only") })
				<-held
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				cmd := exec.CommandContext(ctx, bin, append(wait, "--file", path)...)
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				for live, _ := v.Attachments(); len(live) < 2; live, _ = v.Attachments() {
					time.Sleep(5 * time.Millisecond)
				}
				time.Sleep(300 * time.Millisecond) // it waits, parked
				if err := os.Truncate(path, size); err != nil {
					t.Fatal(err)
				}
				err = cmd.Wait()
				timedOut := ctx.Err() != nil
				cancel()
				close(release)
				v.Close()
				if timedOut {
					t.Fatalf("%s: still waiting a minute after the truncation: %s", what, stderr.String())
				}
				wantOneLine(t, what, stderr.String(), exitCode(t, err), "file was truncated under this attachment")
			}
		}
	}
}
