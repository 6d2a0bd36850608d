package shmvar_test

// Signals and kernel settings, through both commands: a signalled incr
// abandons the increment it holds the lock for and releases it before
// exiting; watch exits 130 on SIGINT and 143 on SIGTERM; create refuses to
// make a segment that kernel.shm_rmid_forced would destroy at once.

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmvar/shmvar/go-peer/shmvar"
)

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

// TestSignalledIncrReleasesTheLockAndExits signals each command while it
// holds the lock (in a long --hold) and while it waits for a lock this
// process holds: either way it stops at once, commits nothing, leaves the
// lock free and exits 143 or 130.
func TestSignalledIncrReleasesTheLockAndExits(t *testing.T) {
	for _, peer := range []string{goPeerBin(t), javaPeer(t)} {
		for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
			for _, holding := range []bool{true, false} {
				name := fmt.Sprintf("%s/%v/holding=%v", filepath.Base(peer), sig, holding)
				t.Run(name, func(t *testing.T) { signalIncr(t, peer, sig, holding) })
			}
		}
	}
}

func signalIncr(t *testing.T, peer string, sig syscall.Signal, holding bool) {
	key := testKey(t)
	v := mustCreateCounter(t, key)
	args := []string{"incr", "--key", shmvar.FormatKey(key), "--count", "1", "--hold", "30s", "--timeout", "60s"}
	ready := func() bool { s, _ := v.Lock(); return s.Word != 0 } // it holds the lock
	release := func() {}
	if !holding {
		release = holdLock(t, key)
		ready = func() bool { live, _ := v.Attachments(); return len(live) == 3 } // creator, holder, incr
	}
	cmd := exec.Command(peer, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	for deadline := time.Now().Add(20 * time.Second); !ready(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("incr never got going: %s", out.String())
		}
	}
	time.Sleep(300 * time.Millisecond) // in its hold, or parked waiting for the lock
	cmd.Process.Signal(sig)
	signalled := time.Now()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("incr still runs 5 s after %v", sig)
	}
	want := 143
	if sig == syscall.SIGINT {
		want = 130
	}
	if code := exitCode(t, err); code != want || !strings.Contains(out.String(), "interrupted after 0 of 1 increments") {
		t.Fatalf("after %v: exit %d, output %q; want %d and 'interrupted after 0 of 1 increments'", sig, code, out.String(), want)
	}
	t.Logf("stopped %v after the signal", time.Since(signalled))
	release()
	s, _ := v.Lock()
	if g, _ := v.Generation(); s.Word != 0 || s.Takeovers != 0 || g != 0 {
		t.Fatalf("after a signalled incr: lock %+v, generation %d; want a released lock and nothing committed", s, g)
	}
}

func TestWatchExitsWithTheSignalsStatus(t *testing.T) {
	for _, peer := range []string{goPeerBin(t), javaPeer(t)} {
		for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
			t.Run(filepath.Base(peer)+"/"+sig.String(), func(t *testing.T) {
				key := testKey(t)
				v := mustCreateCounter(t, key)
				cmd := exec.Command(peer, "watch", "--key", shmvar.FormatKey(key))
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				defer cmd.Process.Kill()
				// Once it watches, it has claimed an attachment entry: two live ones.
				for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
					if live, _ := v.Attachments(); len(live) == 2 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("watch never attached: %s", out.String())
					}
				}
				time.Sleep(100 * time.Millisecond)
				cmd.Process.Signal(sig)
				want := 143
				if sig == syscall.SIGINT {
					want = 130
				}
				if code := exitCode(t, cmd.Wait()); code != want {
					t.Fatalf("watch after %v: exit %d (%q), want %d", sig, code, out.String(), want)
				}
			})
		}
	}
}

func TestCreateRefusesASegmentShmRmidForcedWouldDestroy(t *testing.T) {
	nsTools(t)
	var lines []string
	for _, peer := range []string{goPeerBin(t), javaPeer(t)} {
		for _, setting := range []string{"1", "0"} {
			// A new IPC namespace of its own: the setting and the segment go with it.
			cmd := exec.Command("unshare", "--ipc", "sh", "-c",
				`echo `+setting+` > /proc/sys/kernel/shm_rmid_forced && exec "$@"`, "sh", peer, "create", "--key", "0x5b5b5b5b")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			code := exitCode(t, cmd.Run())
			if setting == "0" {
				if code != 0 {
					t.Fatalf("%s create with shm_rmid_forced=0: exit %d: %s", filepath.Base(peer), code, stderr.String())
				}
				continue
			}
			if code != 1 || stdout.Len() != 0 || strings.Count(stderr.String(), "\n") != 1 || !strings.Contains(stderr.String(), "kernel.shm_rmid_forced=1") {
				t.Fatalf("%s create with shm_rmid_forced=1: exit %d, stdout %q, stderr %q; want one line naming the setting", filepath.Base(peer), code, stdout.String(), stderr.String())
			}
			lines = append(lines, strings.SplitN(stderr.String(), ": ", 2)[1])
		}
	}
	if lines[0] != lines[1] {
		t.Fatalf("the two commands say it differently:\n%s%s", lines[0], lines[1])
	}
}
