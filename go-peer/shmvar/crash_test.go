package shmvar_test

// Crash tests with the real Java process as the victim: kill -9 of a Java
// holder while Go waits, and SIGSTOP of a Java holder past Go's timeout.
// The Java tests (CrashTest.java) do the reverse with bin/go-peer.
// SHMVAR_KILLS sets the number of kills (make stress sets 1000).

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shmvar/shmvar/go-peer/examplespb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// victim is a process of the other language incrementing the counter and
// printing "committed N" after each commit.
type victim struct {
	cmd     *exec.Cmd
	commits atomic.Int64 // lines seen: commits it surely made
	done    chan struct{}
	stderr  bytes.Buffer
}

func startVictim(t *testing.T, key int32, inPidNamespace bool, extra ...string) *victim {
	t.Helper()
	args := append([]string{javaPeer(t), "incr", "--key", shmvar.FormatKey(key), "--count", "1000000000", "--print-each", "--quiet", "--timeout", "30s"}, extra...)
	if inPidNamespace {
		// pid 1 of a PID namespace of its own; killing unshare kills it (--kill-child).
		args = append([]string{"unshare", "--pid", "--fork", "--kill-child", "--mount-proc"}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	v := &victim{cmd: cmd, done: make(chan struct{})}
	cmd.Env = append(os.Environ(), "SHMVAR_JAVA_OPTS=-XX:TieredStopAtLevel=1")
	cmd.Stderr = &v.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(v.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "committed ") {
				v.commits.Add(1)
			}
		}
	}()
	return v
}

type killStats struct {
	kills, nsKills, heldAtKill, torn, lost, phantom int
	takeover                                        []time.Duration
}

func (s *killStats) String() string {
	sort.Slice(s.takeover, func(i, j int) bool { return s.takeover[i] < s.takeover[j] })
	pct := func(p float64) time.Duration {
		if len(s.takeover) == 0 {
			return 0
		}
		return s.takeover[int(p*float64(len(s.takeover)-1))]
	}
	return fmt.Sprintf("kills=%d (in another PID namespace: %d) held-at-kill=%d torn-reads=%d lost-commits=%d phantom-commits=%d takeover p50=%v p99=%v max=%v",
		s.kills, s.nsKills, s.heldAtKill, s.torn, s.lost, s.phantom, pct(0.5), pct(0.99), pct(1))
}

func TestKillJavaHolderWhileGoWaits(t *testing.T) {
	key := testKey(t)
	v := mustCreateCounter(t, key)
	stats := &killStats{}
	rounds := envInt("SHMVAR_KILLS", 50)

	// A reader checks, all along, that every value decodes and the
	// generation never goes back.
	stopReader := make(chan struct{})
	var readerWG sync.WaitGroup
	var readerErr atomic.Value
	readerWG.Add(1)
	go func() {
		defer readerWG.Done()
		var last uint64
		for {
			select {
			case <-stopReader:
				return
			default:
			}
			g, _ := v.Generation()
			if _, err := v.Get(); err != nil {
				stats.torn++
				readerErr.Store(err)
			}
			if g < last {
				readerErr.Store(fmt.Errorf("generation went back from %d to %d", last, g))
			}
			last = g
		}
	}()
	defer func() {
		close(stopReader)
		readerWG.Wait()
		if err, _ := readerErr.Load().(error); err != nil {
			t.Errorf("reader: %v", err)
		}
		t.Logf("java holder killed while go waits: %s", stats)
		if stats.torn != 0 || stats.lost != 0 || stats.phantom != 0 {
			t.Errorf("%s", stats)
		}
	}()

	for round := 0; round < rounds; round++ {
		before, _ := v.Get()
		var extra []string
		if round%2 == 1 {
			extra = []string{"--hold", "200us"} // the victim holds the lock nearly all the time
		}
		// Every fourth victim is pid 1 of a PID namespace of its own, as in a pod.
		inNamespace := round%4 == 3
		vic := startVictim(t, key, inNamespace, extra...)
		// Go waits on the same lock, committing its own increments.
		var goCommits atomic.Int64
		stopWaiter := make(chan struct{})
		waiterErr := make(chan error, 1)
		go func() {
			for {
				select {
				case <-stopWaiter:
					waiterErr <- nil
					return
				default:
				}
				if _, err := v.TryUpdate(20*time.Second, func(c *examplespb.Counter) (*examplespb.Counter, error) {
					c.Value++
					return c, nil
				}); err != nil {
					waiterErr <- err
					return
				}
				goCommits.Add(1)
			}
		}()
		// Kill at a random point after the victim got going.
		target := int64(1 + rand.Intn(300))
		for deadline := time.Now().Add(30 * time.Second); vic.commits.Load() < target; {
			if time.Now().After(deadline) {
				vic.cmd.Process.Kill()
				t.Fatalf("round %d: victim made %d commits in 30s", round, vic.commits.Load())
			}
			time.Sleep(100 * time.Microsecond)
		}
		pid := vic.cmd.Process.Pid
		vic.cmd.Process.Signal(syscall.SIGKILL)
		killed := time.Now()
		stats.kills++
		if inNamespace {
			stats.nsKills++
		}
		lock, _ := v.Lock()
		held := lock.Word != 0 && lock.Word != v.Identity() // the victim is the only other attachment
		if held {
			stats.heldAtKill++
			for {
				now, _ := v.Lock()
				if now.Word != lock.Word {
					stats.takeover = append(stats.takeover, time.Since(killed))
					break
				}
				if time.Since(killed) > 10*time.Second {
					t.Fatalf("round %d: lock of dead pid %d not taken over in 10s", round, pid)
				}
				time.Sleep(20 * time.Microsecond)
			}
		}
		// All its output first: Wait closes the pipe and would drop what is unread.
		<-vic.done
		vic.cmd.Wait()
		// The waiter goes on after the death.
		after := goCommits.Load()
		for deadline := time.Now().Add(10 * time.Second); goCommits.Load() == after; {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: waiter made no progress after the kill", round)
			}
			time.Sleep(50 * time.Microsecond)
		}
		close(stopWaiter)
		if err := <-waiterErr; err != nil {
			t.Fatalf("round %d: waiter: %v", round, err)
		}
		now, err := v.Get()
		if err != nil {
			t.Fatalf("round %d: value unreadable after the kill: %v", round, err)
		}
		// The victim committed what it printed, plus perhaps one it had no time to print.
		victimCommits := now.GetValue() - before.GetValue() - goCommits.Load()
		seen := vic.commits.Load()
		if victimCommits < seen {
			stats.lost += int(seen - victimCommits)
		}
		if victimCommits > seen+1 {
			stats.phantom += int(victimCommits - seen - 1)
			t.Logf("round %d: victim committed %d, printed %d; held at kill: %v; its stderr: %q", round, victimCommits, seen, held, vic.stderr.String())
		}
		if g, _ := v.Generation(); g != uint64(now.GetValue()) {
			t.Fatalf("round %d: generation %d != value %d: a commit was lost or doubled", round, g, now.GetValue())
		}
	}
}

func TestStoppedJavaHolderIsNeverRobbed(t *testing.T) {
	key := testKey(t)
	v := mustCreateCounter(t, key)
	cmd := exec.Command(javaPeer(t), "incr", "--key", shmvar.FormatKey(key), "--count", "3", "--hold", "300ms", "--quiet")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	pid := cmd.Process.Pid
	var word uint64
	for deadline := time.Now().Add(30 * time.Second); ; {
		st, _ := v.Lock()
		if st.Word != 0 && int(st.Holder.Pid) == pid {
			word = st.Word
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("java-peer never took the lock")
		}
		time.Sleep(100 * time.Microsecond)
	}
	cmd.Process.Signal(syscall.SIGSTOP)
	_, err := v.TryUpdate(200*time.Millisecond, func(c *examplespb.Counter) (*examplespb.Counter, error) { return c, nil })
	var e *shmvar.Error
	if !errors.Is(err, shmvar.ErrTimeout) || !errors.As(err, &e) || int(e.Holder) != pid {
		cmd.Process.Signal(syscall.SIGCONT)
		t.Fatalf("TryUpdate against a stopped holder: %v; want a timeout naming pid %d", err, pid)
	}
	time.Sleep(500 * time.Millisecond) // well past the timeout and the holder's own hold
	if st, _ := v.Lock(); st.Word != word || st.Takeovers != 0 {
		cmd.Process.Signal(syscall.SIGCONT)
		t.Fatalf("stopped holder was robbed: %+v", st)
	}
	cmd.Process.Signal(syscall.SIGCONT)
	if _, err := v.TryUpdate(20*time.Second, func(c *examplespb.Counter) (*examplespb.Counter, error) {
		c.Value++
		return c, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("java-peer after SIGCONT: %v", err)
	}
	got, _ := v.Get()
	g, _ := v.Generation()
	if got.GetValue() != 4 || g != 4 {
		t.Fatalf("value=%d generation=%d, want 4 and 4: a commit was lost or made twice", got.GetValue(), g)
	}
}
