package shmvar_test

// One updater at a time where pods put peers: a holder and a waiter in
// different PID namespaces (both pid 1 if need be), a holder in a time
// namespace, a holder hidden by /proc's hidepid from a waiter of another
// user, a waiter short of file descriptors. Each scenario runs with a Go
// holder and a Java waiter and the reverse, through the real commands, and
// checks that the live holder is never robbed: the waiter times out naming
// it, and every reported increment is in the value. Needs root, unshare,
// mount, setpriv and prlimit, which CI has; a scenario that cannot get them
// fails saying so.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmvar/shmvar/go-peer/examplespb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
)

// nsTools checks for what the scenarios need and fails the test if missing.
func nsTools(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("the namespace tests need root (unshare, mount, setpriv, prlimit); running as uid %d", os.Geteuid())
	}
	for _, tool := range []string{"unshare", "setpriv", "prlimit", "mount", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the namespace tests need %s: %v", tool, err)
		}
	}
	if out, err := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "true").CombinedOutput(); err != nil {
		t.Fatalf("cannot make a PID namespace here: %v: %s", err, out)
	}
}

const (
	nobody = "65534"
	// hideFromOthers runs the rest of its arguments as another user, with a
	// /proc mounted hidepid=2 in a mount namespace of its own: no process of
	// another user is visible to it.
	hideFromOthers = `mount -t proc -o hidepid=2 proc /proc && exec setpriv --reuid=` + nobody + ` --regid=` + nobody + ` --clear-groups "$@"`
)

// wrapper is what a scenario puts in front of a peer's command line.
type wrapper func(lang string) []string

// peers are the two commands; public copies for scenarios that run as another user.
type peers struct{ goPeer, java []string }

func checkoutPeers(t *testing.T) peers {
	bin := goPeerBin(t)
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("bin/go-peer is missing: run 'make build' (make test does) first")
	}
	return peers{[]string{bin}, []string{javaPeer(t)}}
}

func publicPeers(t *testing.T) peers {
	goPeer, jar := publicCopies(t)
	return peers{[]string{goPeer}, []string{"java", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-jar", jar}}
}

func plain(string) []string { return nil }

func pidNamespace(string) []string {
	return []string{"unshare", "--pid", "--fork", "--kill-child", "--mount-proc"}
}

func timeNamespace(string) []string {
	return []string{"unshare", "--time", "--boottime", "100000", "--monotonic", "100000", "--fork", "--kill-child"}
}

func hiddenProcAsNobody(string) []string {
	return []string{"unshare", "--mount", "--fork", "--kill-child", "sh", "-c", hideFromOthers, "sh"}
}

// fewDescriptors is as few file descriptors as each runtime can start with.
func fewDescriptors(lang string) []string {
	n := "8"
	if lang == "java" {
		n = "40"
	}
	return []string{"prlimit", "--nofile=" + n + ":" + n}
}

func (p peers) command(lang string, wrap wrapper, args ...string) *exec.Cmd {
	peer := p.goPeer
	if lang == "java" {
		peer = p.java
	}
	argv := append(append(wrap(lang), peer...), args...)
	return exec.Command(argv[0], argv[1:]...)
}

// target is a segment or file the scenario's peers share.
type target struct {
	args  []string // --key K or --file F
	lock  func() shmvar.LockState
	value func() (int64, uint64)
}

func newTarget(t *testing.T, file bool, mode os.FileMode) target {
	t.Helper()
	var v *shmvar.Var[*examplespb.Counter]
	var args []string
	var err error
	if file {
		path := filepath.Join("/dev/shm", fmt.Sprintf("shmvar-ns-%d-%d", os.Getpid(), time.Now().UnixNano()))
		v, err = shmvar.CreateFile[*examplespb.Counter](path, shmvar.Options{Mode: mode})
		args = []string{"--file", path}
		t.Cleanup(func() { os.Remove(path) })
	} else {
		key := testKey(t)
		v, err = shmvar.Create[*examplespb.Counter](key, shmvar.Options{Mode: mode})
		args = []string{"--key", shmvar.FormatKey(key)}
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return target{
		args: args,
		lock: func() shmvar.LockState { s, _ := v.Lock(); return s },
		value: func() (int64, uint64) {
			c, err := v.Get()
			if err != nil {
				t.Fatal(err)
			}
			g, _ := v.Generation()
			return c.GetValue(), g
		},
	}
}

// startHolder starts holder and waits until it holds the lock, for at
// most 30 s; the channel gives the result of its Wait.
func startHolder(t *testing.T, tg target, holder *exec.Cmd, out *bytes.Buffer) (shmvar.LockState, <-chan error) {
	t.Helper()
	holder.Stdout, holder.Stderr = out, out
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill() })
	done := make(chan error, 1)
	go func() { done <- holder.Wait() }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		if s := tg.lock(); s.Word != 0 {
			return s, done
		}
		select {
		case err := <-done:
			t.Fatalf("the holder ended (%v) without taking the lock: %s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the holder never took the lock in 30 s: %s", out.String())
		}
	}
}

func TestLiveHolderIsNeverRobbedAcrossNamespaces(t *testing.T) {
	nsTools(t)
	scenarios := []struct {
		name           string
		holder, waiter wrapper
		file           bool
		mode           os.FileMode
		extra          []string // the trust flags of both
		asNobody       bool     // the waiter runs as another user: use public copies of the peers
	}{
		{name: "holder in a child PID namespace", holder: pidNamespace, waiter: plain},
		{name: "waiter in a child PID namespace", holder: plain, waiter: pidNamespace},
		{name: "each pid 1 in its own PID namespace", holder: pidNamespace, waiter: pidNamespace},
		{name: "file, holder in a child PID namespace", holder: pidNamespace, waiter: plain, file: true},
		{name: "holder in a time namespace", holder: timeNamespace, waiter: plain},
		{name: "holder hidden by hidepid=2 from another user", holder: plain, waiter: hiddenProcAsNobody,
			mode: 0o666, extra: []string{"--any-owner", "--any-mode"}, asNobody: true},
		{name: "waiter with few file descriptors", holder: plain, waiter: fewDescriptors},
	}
	for _, sc := range scenarios {
		for _, pair := range [][2]string{{"go", "java"}, {"java", "go"}} {
			holderLang, waiterLang := pair[0], pair[1]
			t.Run(fmt.Sprintf("%s/%s holds, %s waits", sc.name, holderLang, waiterLang), func(t *testing.T) {
				t.Parallel()
				tg := newTarget(t, sc.file, sc.mode)
				p := checkoutPeers(t)
				if sc.asNobody {
					p = publicPeers(t)
				}
				var holderOut bytes.Buffer
				holder := p.command(holderLang, sc.holder, append(append([]string{"incr", "--count", "1", "--hold", "4s"}, tg.args...), sc.extra...)...)
				held, holderDone := startHolder(t, tg, holder, &holderOut)

				args := append(append([]string{"incr", "--count", "1", "--timeout", "500ms"}, tg.args...), sc.extra...)
				waiter := p.command(waiterLang, sc.waiter, args...)
				var waiterOut, waiterErr bytes.Buffer
				waiter.Stdout, waiter.Stderr = &waiterOut, &waiterErr
				err := waiter.Run()
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.ExitCode() != 1 ||
					!strings.Contains(waiterErr.String(), "timed out: held by attachment") || !strings.Contains(waiterErr.String(), "which is alive") {
					t.Fatalf("waiter against a live holder: %v\nstdout: %s\nstderr: %s\nholder: %s", err, waiterOut.String(), waiterErr.String(), holderOut.String())
				}
				if now := tg.lock(); now.Word != held.Word || now.Takeovers != 0 {
					t.Fatalf("the live holder was robbed: held %+v, now %+v", held, now)
				}
				if err := <-holderDone; err != nil {
					t.Fatalf("holder: %v: %s", err, holderOut.String())
				}
				if v, g := tg.value(); v != 1 || g != 1 {
					t.Fatalf("value=%d generation=%d after one increment by the holder and none by the timed-out waiter", v, g)
				}
				t.Logf("waiter said: %s", strings.TrimSpace(waiterErr.String()))
			})
		}
	}
}

// TestKilledHolderInAnotherPidNamespaceIsTakenOver kills, with kill -9, a
// holder that is pid 1 of its own PID namespace, while a waiter of the other
// language waits outside: the kernel releases the dead holder's entry, and
// the waiter takes the lock over and commits.
func TestKilledHolderInAnotherPidNamespaceIsTakenOver(t *testing.T) {
	nsTools(t)
	for _, pair := range [][2]string{{"go", "java"}, {"java", "go"}} {
		holderLang, waiterLang := pair[0], pair[1]
		t.Run(holderLang+" holder killed, "+waiterLang+" waits", func(t *testing.T) {
			t.Parallel()
			tg := newTarget(t, false, 0)
			p := checkoutPeers(t)
			var holderOut bytes.Buffer
			holder := p.command(holderLang, pidNamespace, append([]string{"incr", "--count", "1", "--hold", "60s"}, tg.args...)...)
			held, holderDone := startHolder(t, tg, holder, &holderOut)
			if !held.Holder.OtherNamespace || held.Holder.Pid != 1 {
				t.Fatalf("holder is %+v; want pid 1 in another PID namespace", held.Holder)
			}
			waiter := p.command(waiterLang, plain, append([]string{"incr", "--count", "1", "--timeout", "20s"}, tg.args...)...)
			var waiterOut bytes.Buffer
			waiter.Stdout, waiter.Stderr = &waiterOut, &waiterOut
			if err := waiter.Start(); err != nil {
				t.Fatal(err)
			}
			defer waiter.Process.Kill()
			time.Sleep(300 * time.Millisecond)     // the waiter is waiting, or about to
			holder.Process.Signal(syscall.SIGKILL) // unshare dies; --kill-child kills pid 1 of the namespace
			killed := time.Now()
			<-holderDone
			for tg.lock().Word == held.Word {
				if time.Since(killed) > 10*time.Second {
					t.Fatalf("lock of a holder killed in another PID namespace not taken over in 10 s")
				}
				time.Sleep(100 * time.Microsecond)
			}
			took := time.Since(killed)
			if err := waiter.Wait(); err != nil {
				t.Fatalf("waiter: %v: %s", err, waiterOut.String())
			}
			if v, g := tg.value(); v != 1 || g != 1 {
				t.Fatalf("value=%d generation=%d; want the waiter's one increment (the holder died before committing)", v, g)
			}
			if s := tg.lock(); s.Takeovers != 1 || s.Word != 0 {
				t.Fatalf("lock after the takeover: %+v; want one takeover and a free lock", s)
			}
			t.Logf("taken over %v after the kill", took)
		})
	}
}
