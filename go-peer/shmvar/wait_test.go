package shmvar_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shmvar/shmvar/go-peer/examplespb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
)

// holdLock makes a second attachment of key hold the lock until the
// returned function is called.
func holdLock(t *testing.T, key int32) (release func()) {
	t.Helper()
	other, err := shmvar.Open[*examplespb.Counter](key, shmvar.Options{})
	if err != nil {
		t.Fatal(err)
	}
	held, done := make(chan struct{}), make(chan struct{})
	go func() {
		other.Mutate(func(*examplespb.Counter) error { close(held); <-done; return errors.New("nothing to commit") })
	}()
	<-held
	var once sync.Once
	release = func() { once.Do(func() { close(done); other.Close() }) }
	t.Cleanup(release)
	return release
}

// cpuTime is this process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestCloseWakesWaitersAndReturnsPromptly(t *testing.T) {
	key := testKey(t)
	mustCreateCounter(t, key)
	holdLock(t, key)
	v, err := shmvar.Open[*examplespb.Counter](key, shmvar.Options{})
	if err != nil {
		t.Fatal(err)
	}
	g, _ := v.Generation()
	errs := make(chan error, 6)
	for i := 0; i < 3; i++ {
		go func() {
			_, err := v.TryUpdate(20*time.Second, func(c *examplespb.Counter) (*examplespb.Counter, error) { return c, nil })
			errs <- err
		}()
		go func() {
			_, err := v.AwaitChange(g, 20*time.Second)
			errs <- err
		}()
	}
	time.Sleep(200 * time.Millisecond) // all six are waiting
	cpu, start := cpuTime(), time.Now()
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 6; i++ {
		if err := <-errs; !errors.Is(err, shmvar.ErrClosed) {
			t.Fatalf("a waiter of a closed variable: %v; want ErrClosed", err)
		}
	}
	took, spent := time.Since(start), cpuTime()-cpu
	if took > time.Second {
		t.Fatalf("Close and its waiters took %v; want them to end at once", took)
	}
	t.Logf("Close with six waiters: %v, %v of CPU", took, spent)
}

func TestContextCancelsWaits(t *testing.T) {
	key := testKey(t)
	v := mustCreateCounter(t, key)
	holdLock(t, key)
	g, _ := v.Generation()
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 4)
	go func() {
		_, err := v.UpdateContext(ctx, func(c *examplespb.Counter) (*examplespb.Counter, error) { return c, nil })
		errs <- err
	}()
	go func() { errs <- v.MutateContext(ctx, func(*examplespb.Counter) error { return nil }) }()
	go func() { errs <- v.SetContext(ctx, &examplespb.Counter{Value: 9}) }()
	go func() { _, err := v.AwaitChangeContext(ctx, g); errs <- err }()
	time.Sleep(100 * time.Millisecond)
	cancel()
	cancelled := time.Now()
	for i := 0; i < 4; i++ {
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Fatalf("a wait whose context was cancelled: %v; want context.Canceled", err)
		}
	}
	if took := time.Since(cancelled); took > 500*time.Millisecond {
		t.Fatalf("cancelled waits took %v to return", took)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer dcancel()
	if _, err := v.AwaitChangeContext(dctx, g); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("AwaitChangeContext past its deadline: %v", err)
	}
	if err := v.SetContext(dctx, &examplespb.Counter{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SetContext past its deadline: %v", err)
	}
	if g2, _ := v.Generation(); g2 != g {
		t.Fatalf("generation moved from %d to %d: a cancelled update committed", g, g2)
	}
}

// threads is the number of OS threads of this process.
func threads(t *testing.T) int {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if n, ok := strings.CutPrefix(line, "Threads:"); ok {
			v, _ := strconv.Atoi(strings.TrimSpace(n))
			return v
		}
	}
	t.Fatal("no Threads line in /proc/self/status")
	return 0
}

func TestChangeWaitersShareOneSleepInTheKernel(t *testing.T) {
	key := testKey(t)
	v := mustCreateCounter(t, key)
	g, _ := v.Generation()
	before := threads(t)
	const waiters = 50
	var wg sync.WaitGroup
	saw := make(chan uint64, waiters)
	for i := 0; i < waiters; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next, err := v.AwaitChange(g, 20*time.Second)
			if err != nil {
				t.Error(err)
			}
			saw <- next
		}()
	}
	time.Sleep(300 * time.Millisecond)
	during := threads(t)
	if err := v.Set(&examplespb.Counter{Value: 1}); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(saw)
	for next := range saw {
		if next != g+1 {
			t.Fatalf("a waiter saw generation %d, want %d", next, g+1)
		}
	}
	if during-before > 8 {
		t.Fatalf("%d goroutines waiting for a change took %d more threads (%d before, %d during); want them to share one sleep", waiters, during-before, before, during)
	}
	t.Logf("threads: %d before, %d while %d goroutines waited", before, during, waiters)
}

// TestCloseRacingAParkingWatcherIsPrompt closes a Var just as a goroutine
// goes to sleep for a change: the wake must not be lost (it used to be, and
// Close then waited for the sleep's full second).
func TestCloseRacingAParkingWatcherIsPrompt(t *testing.T) {
	key := testKey(t)
	mustCreateCounter(t, key)
	var worst time.Duration
	for round := 0; round < 2000; round++ {
		v, err := shmvar.Open[*examplespb.Counter](key, shmvar.Options{})
		if err != nil {
			t.Fatal(err)
		}
		g, _ := v.Generation()
		ended := make(chan error, 1)
		go func() { _, err := v.AwaitChange(g, 10*time.Second); ended <- err }()
		for spin := time.Now(); time.Since(spin) < time.Duration(round%60)*time.Microsecond; {
		}
		start := time.Now()
		v.Close()
		if err := <-ended; !errors.Is(err, shmvar.ErrClosed) {
			t.Fatalf("round %d: the watcher of a closed Var: %v", round, err)
		}
		worst = max(worst, time.Since(start))
	}
	if worst > 200*time.Millisecond {
		t.Fatalf("the slowest Close with a watcher going to sleep took %v", worst)
	}
	t.Logf("slowest of 2000 Close calls racing a parking watcher: %v", worst)
}
