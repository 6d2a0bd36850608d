package shmvar_test

import (
	"bytes"
	"errors"
	"math/rand"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shmvar/shmvar/go-peer/shmvar"
)

// TestJavaReaderSurvivesHostileMutator flips random bytes all over a segment
// from this process while bin/java-peer check reads and re-opens it in a
// loop: the Java side may only report validation errors, never crash.
// CrashTest.java's twin does the reverse with bin/go-peer.
func TestJavaReaderSurvivesHostileMutator(t *testing.T) {
	key := testKey(t)
	mustCreateAllTypes(t, key)

	cmd := exec.Command(javaPeer(t), "check", "--key", shmvar.FormatKey(key), "--duration", "3s")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r := rand.New(rand.NewSource(time.Now().UnixNano()))
		poke(t, key, func(mem []byte) {
			// Mostly scribble where peers legitimately write (the lock and
			// generation lines and the slots), now and then anywhere; every
			// few flips put the segment back so that some reads and opens
			// can succeed between the attacks.
			slot0 := int(le.Uint64(mem[shmvar.Slot0OffsetOffset:]))
			pristine := append([]byte(nil), mem...)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var at int
				switch r.Intn(10) {
				case 0:
					at = r.Intn(len(mem))
				case 1, 2:
					at = shmvar.LockWordOffset + r.Intn(shmvar.HeaderLength-shmvar.LockWordOffset)
				default:
					at = slot0 + r.Intn(len(mem)-slot0)
				}
				mem[at] ^= byte(1 + r.Intn(255))
				if i%20 == 0 {
					time.Sleep(50 * time.Microsecond) // the damage stands for a while
					copy(mem, pristine)
					time.Sleep(50 * time.Microsecond)
				}
			}
		})
	}()
	err := cmd.Wait()
	close(stop)
	wg.Wait()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	}
	m := regexp.MustCompile(`check: reads=(\d+) ok=(\d+)`).FindStringSubmatch(stdout.String())
	if (code != 0 && code != 1) || m == nil || strings.Count(stderr.String(), "\n") > 1 {
		t.Fatalf("java-peer check under a hostile mutator: exit %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
	}
	if reads, _ := strconv.Atoi(m[1]); reads < 100 {
		t.Fatalf("java-peer check made only %d reads", reads)
	}
	t.Logf("%s", strings.TrimSpace(stdout.String()))
}
