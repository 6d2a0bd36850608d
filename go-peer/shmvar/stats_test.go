package shmvar_test

import (
	"testing"
	"time"

	"github.com/shmvar/shmvar/go-peer/examplespb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
)

func incr(c *examplespb.Counter) (*examplespb.Counter, error) { c.Value++; return c, nil }

// TestStatsCountCommitsWaitsAndTakeovers: the segment's counters are every
// attachment's, Commits and LockWait each Var's own.
func TestStatsCountCommitsWaitsAndTakeovers(t *testing.T) {
	key := testKey(t)
	v := mustCreateCounter(t, key)
	other, err := shmvar.Open[*examplespb.Counter](key, shmvar.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s := v.Stats(); s != (shmvar.Stats{}) {
		t.Fatalf("Stats of a new segment = %+v, want all zero", s)
	}
	for _, err := range []error{
		first(v.Update(incr)), first(v.Update(incr)),
		other.Mutate(func(c *examplespb.Counter) error { c.Value++; return nil }),
		other.Set(&examplespb.Counter{Value: 10}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}

	// A contended acquisition: v waits for a holder for about 30 ms.
	release := holdLock(t, key)
	done := make(chan error)
	go func() { done <- first(v.Update(incr)) }()
	time.Sleep(30 * time.Millisecond)
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// A takeover: the lock word names an attachment that is gone.
	gone, err := shmvar.Open[*examplespb.Counter](key, shmvar.Options{})
	if err != nil {
		t.Fatal(err)
	}
	id := gone.Identity()
	gone.Close()
	poke(t, key, func(mem []byte) { putWord(mem, shmvar.LockWordOffset, id) })
	if err := first(v.Update(incr)); err != nil {
		t.Fatal(err)
	}

	s, o := v.Stats(), other.Stats()
	lock, _ := v.Lock()
	if s.Generation != 6 || s.Commits != 4 || s.Takeovers != 1 || s.ContendedAcquisitions != lock.Contended || s.ContendedAcquisitions < 2 {
		t.Fatalf("v.Stats() = %+v (lock %+v); want generation 6, 4 commits, 1 takeover, at least 2 contended", s, lock)
	}
	if s.LockWait < 25*time.Millisecond || s.LockWait > 10*time.Second {
		t.Fatalf("v.Stats().LockWait = %v; want about 30ms", s.LockWait)
	}
	if o.Generation != 6 || o.Commits != 2 || o.LockWait != 0 || o.Takeovers != 1 {
		t.Fatalf("other.Stats() = %+v; want generation 6, 2 commits, no wait, 1 takeover", o)
	}
	other.Close()
	if c := other.Stats(); c != (shmvar.Stats{Commits: 2}) {
		t.Fatalf("Stats after Close = %+v; want only this Var's 2 commits", c)
	}
}

// first drops a value, keeping the error.
func first[T any](_ T, err error) error { return err }

// TestStatsCountEveryCommitOfConcurrentGoroutines: goroutines of one Var
// commit with and without its cache while Stats is read; Commits never goes
// back and ends exact.
func TestStatsCountEveryCommitOfConcurrentGoroutines(t *testing.T) {
	const goroutines, each = 4, 500
	v := mustCreateCounter(t, testKey(t))
	done := make(chan struct{})
	errs := make(chan error, goroutines)
	for i := 0; i < goroutines; i++ {
		go func() {
			for j := 0; j < each; j++ {
				var err error
				if j%2 == 0 {
					err = first(v.Update(incr))
				} else {
					err = v.Mutate(func(c *examplespb.Counter) error { c.Value++; return nil })
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	go func() {
		defer close(done)
		last := uint64(0)
		for g, _ := v.Generation(); g < goroutines*each; g, _ = v.Generation() {
			if c := v.Stats().Commits; c < last {
				t.Errorf("Commits went back from %d to %d", last, c)
				return
			} else {
				last = c
			}
		}
	}()
	for i := 0; i < goroutines; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	<-done
	if s := v.Stats(); s.Commits != goroutines*each || s.Generation != goroutines*each {
		t.Fatalf("Stats = %+v; want %d commits and generation %d", s, goroutines*each, goroutines*each)
	}
}
