package shmvar_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmvar/shmvar/go-peer/examplespb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
)

func TestShouldStartEmptyAndCommitSets(t *testing.T) {
	key := testKey(t)
	v := mustCreateCounter(t, key)
	got, err := v.Get()
	if err != nil || got.GetValue() != 0 {
		t.Fatalf("Get on a new segment = %v, %v; want the empty Counter", got, err)
	}
	if err := v.Set(&examplespb.Counter{Value: 41, LastWriter: "test"}); err != nil {
		t.Fatal(err)
	}
	if g, _ := v.Generation(); g != 1 {
		t.Fatalf("generation after one set = %d, want 1", g)
	}
	// A second attachment sees the same value: the memory is shared.
	other, err := shmvar.Open[*examplespb.Counter](key, shmvar.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	got, err = other.Get()
	if err != nil || got.GetValue() != 41 || got.GetLastWriter() != "test" {
		t.Fatalf("Get through a second attachment = %v, %v", got, err)
	}
}

func TestShouldCountEveryUpdateFromManyGoroutines(t *testing.T) {
	v := mustCreateCounter(t, testKey(t))
	const workers, each = 4, 2000
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := v.Update(func(c *examplespb.Counter) (*examplespb.Counter, error) {
					c.Value++
					return c, nil
				}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got, _ := v.Get()
	if got.GetValue() != workers*each {
		t.Fatalf("value = %d, want %d", got.GetValue(), workers*each)
	}
	if g, _ := v.Generation(); g != workers*each {
		t.Fatalf("generation = %d, want %d", g, workers*each)
	}
}

func TestShouldCommitNothingWhenUpdateFunctionFails(t *testing.T) {
	v := mustCreateCounter(t, testKey(t))
	v.Set(&examplespb.Counter{Value: 5})
	boom := errors.New("boom")
	_, err := v.Update(func(c *examplespb.Counter) (*examplespb.Counter, error) {
		c.Value = 99
		return nil, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update error = %v, want boom", err)
	}
	func() {
		defer func() { recover() }()
		v.Update(func(c *examplespb.Counter) (*examplespb.Counter, error) { panic("in fn") })
	}()
	got, _ := v.Get()
	if g, _ := v.Generation(); got.GetValue() != 5 || g != 1 {
		t.Fatalf("after failed updates value=%d generation=%d, want 5 and 1", got.GetValue(), g)
	}
	// The lock was released both times: a bounded update goes through at once.
	if _, err := v.TryUpdate(100*time.Millisecond, func(c *examplespb.Counter) (*examplespb.Counter, error) { return c, nil }); err != nil {
		t.Fatalf("lock not released after failed update: %v", err)
	}
}

func TestShouldRefuseValuesLargerThanCapacity(t *testing.T) {
	key := testKey(t)
	v, err := shmvar.Create[*examplespb.Counter](key, shmvar.Options{Capacity: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	err = v.Set(&examplespb.Counter{Value: 1, LastWriter: "far too long for eight bytes"})
	if !errors.Is(err, shmvar.ErrTooLarge) || !strings.Contains(err.Error(), "capacity=8") {
		t.Fatalf("Set of a too large value: %v", err)
	}
	if g, _ := v.Generation(); g != 0 {
		t.Fatalf("generation moved to %d after a refused set", g)
	}
}

func TestShouldReportErrnoAndKey(t *testing.T) {
	key := testKey(t)
	mustCreateCounter(t, key)
	_, err := shmvar.Create[*examplespb.Counter](key, shmvar.Options{})
	if !errors.Is(err, unix.EEXIST) {
		t.Fatalf("second Create: %v, want EEXIST", err)
	}
	var e *shmvar.Error
	if !errors.As(err, &e) || e.Key != key || e.Op != "shmget" || !strings.Contains(err.Error(), "ipcrm -M") {
		t.Fatalf("error %v does not name shmget, the key and the fix", err)
	}
	_, err = shmvar.Open[*examplespb.Counter](testKey(t), shmvar.Options{})
	if !errors.Is(err, unix.ENOENT) {
		t.Fatalf("Open of a missing key: %v, want ENOENT", err)
	}
	_, err = shmvar.Create[*examplespb.Counter](key, shmvar.Options{Capacity: shmvar.MaxCapacity + 1})
	if !errors.Is(err, shmvar.ErrInvalidArgument) {
		t.Fatalf("Create with too large capacity: %v", err)
	}
}

func TestShouldRefuseWrongType(t *testing.T) {
	key := testKey(t)
	mustCreateCounter(t, key)
	_, err := shmvar.Open[*examplespb.AllTypes](key, shmvar.Options{})
	if !errors.Is(err, shmvar.ErrTypeMismatch) || !strings.Contains(err.Error(), "segment holds shmvar.examples.v1.Counter, asked for shmvar.examples.v1.AllTypes") {
		t.Fatalf("Open as the wrong type: %v", err)
	}
}

func TestShouldFailAfterClose(t *testing.T) {
	key := testKey(t)
	v := mustCreateCounter(t, key)
	v.Close()
	if _, err := v.Get(); !errors.Is(err, shmvar.ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if err := v.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestShouldRemoveSegment(t *testing.T) {
	key := testKey(t)
	v, err := shmvar.Create[*examplespb.Counter](key, shmvar.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.SysvShmGet(int(key), 0, 0); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("segment still there after Remove: %v", err)
	}
}

func TestShouldReadAnyTypeThroughStoredSchema(t *testing.T) {
	key := testKey(t)
	_, sample := mustCreateAllTypes(t, key)
	dyn, err := shmvar.OpenAny(key, shmvar.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer dyn.Close()
	got, err := dyn.Get()
	if err != nil {
		t.Fatal(err)
	}
	// Compare through the wire: the dynamic message must encode to the same value.
	b, _ := proto.Marshal(got)
	back := &examplespb.AllTypes{}
	if err := proto.Unmarshal(b, back); err != nil || !proto.Equal(back, sample) {
		t.Fatalf("dynamic read differs: %v", err)
	}
	if err := dyn.Set(got); !errors.Is(err, shmvar.ErrInvalidArgument) {
		t.Fatalf("Set through a read-only attachment: %v", err)
	}
}

func TestShouldTimeOutNamingLiveHolderAndTakeOverDeadOne(t *testing.T) {
	key := testKey(t)
	v := mustCreateCounter(t, key)

	// A live holder: a second attachment, which is another attachment even
	// in the same process. It is never robbed.
	other, err := shmvar.Open[*examplespb.Counter](key, shmvar.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if other.Identity() == v.Identity() || other.Identity() == 0 {
		t.Fatalf("identities 0x%x and 0x%x: want two distinct ones", v.Identity(), other.Identity())
	}
	poke(t, key, func(mem []byte) { putWord(mem, shmvar.LockWordOffset, other.Identity()) })
	_, err = v.TryUpdate(50*time.Millisecond, func(c *examplespb.Counter) (*examplespb.Counter, error) { return c, nil })
	var e *shmvar.Error
	want := fmt.Sprintf("held by attachment %d, pid %d, which is alive", other.Identity()>>32, os.Getpid())
	if !errors.Is(err, shmvar.ErrTimeout) || !errors.As(err, &e) || e.Holder != int32(os.Getpid()) || !strings.Contains(err.Error(), want) {
		t.Fatalf("TryUpdate against a live holder: %v; want a timeout saying %q", err, want)
	}
	err = v.TryMutate(50*time.Millisecond, func(c *examplespb.Counter) error { c.Value = 99; return nil })
	if !errors.Is(err, shmvar.ErrTimeout) || !errors.As(err, &e) || e.Holder != int32(os.Getpid()) {
		t.Fatalf("TryMutate against a live holder: %v", err)
	}

	// The same holder detached: its entry is free, so its word names a dead attachment.
	other.Close()
	if _, err := v.TryUpdate(time.Second, func(c *examplespb.Counter) (*examplespb.Counter, error) {
		c.Value++
		return c, nil
	}); err != nil {
		t.Fatalf("TryUpdate after the holder died: %v", err)
	}
	if c, err := v.Get(); err != nil || c.Value != 1 {
		t.Fatalf("after a timed-out TryMutate and one update: %v, %v; want value 1", c, err)
	}
	st, _ := v.Lock()
	if st.Takeovers != 1 || st.Word != 0 {
		t.Fatalf("lock state after takeover = %+v, want one takeover and a free lock", st)
	}
}

func TestShouldCloseSafelyWhileOtherGoroutinesUseTheVariable(t *testing.T) {
	v := mustCreateCounter(t, testKey(t))
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, err := v.Update(func(c *examplespb.Counter) (*examplespb.Counter, error) {
					c.Value++
					return c, nil
				}); err != nil {
					if !errors.Is(err, shmvar.ErrClosed) {
						t.Errorf("Update during Close: %v", err)
					}
					return
				}
				if _, err := v.Get(); err != nil && !errors.Is(err, shmvar.ErrClosed) {
					t.Errorf("Get during Close: %v", err)
					return
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := v.Remove(); !errors.Is(err, shmvar.ErrClosed) {
		t.Fatalf("Remove after Close: %v", err)
	}
}

func TestEphemeralSegmentGoesWithItsLastUser(t *testing.T) {
	key := testKey(t)
	v, err := shmvar.Create[*examplespb.Counter](key, shmvar.Options{Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	// Marked for removal: no new process can find it by key, but it works.
	if _, err := unix.SysvShmGet(int(key), 0, 0); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("ephemeral segment still found by key: %v", err)
	}
	if err := v.Set(&examplespb.Counter{Value: 3}); err != nil {
		t.Fatal(err)
	}
	info, err := v.Stat()
	if err != nil || !info.Removed {
		t.Fatalf("Stat of an ephemeral segment: %+v, %v; want Removed", info, err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.SysvShmCtl(info.ID, unix.IPC_STAT, &unix.SysvShmDesc{}); err == nil {
		t.Fatal("ephemeral segment outlived its last user")
	}
}

func TestGetEncodedReturnsTheStoredBytes(t *testing.T) {
	v := mustCreateCounter(t, testKey(t))
	want := &examplespb.Counter{Value: 7, LastWriter: "ü"}
	v.Set(want)
	raw, err := v.GetEncoded()
	if err != nil {
		t.Fatal(err)
	}
	got := &examplespb.Counter{}
	if err := proto.Unmarshal(raw, got); err != nil || !proto.Equal(got, want) {
		t.Fatalf("GetEncoded decodes to %v, %v", got, err)
	}
}

// Each attachment caches the value it last committed or read; a commit
// through another attachment must make it read the slot again.
func TestShouldSeeEveryOtherAttachmentsCommitDespiteCache(t *testing.T) {
	vars := twoAttachments(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := int64(1); i <= 3000; i++ {
		w := vars[rng.IntN(2)]
		if rng.IntN(2) == 0 {
			got, err := w.Update(func(c *examplespb.Counter) (*examplespb.Counter, error) {
				c.Value++
				return c, nil
			})
			if err != nil || got.Value != i {
				t.Fatalf("update %d: value %d, %v", i, got.GetValue(), err)
			}
		} else if err := w.Mutate(func(c *examplespb.Counter) error {
			if c.Value != i-1 {
				return fmt.Errorf("mutate %d found %d", i, c.Value)
			}
			c.Value++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for j, r := range vars {
			for k := rng.IntN(3); k >= 0; k-- { // repeated reads fill the cache
				if c, err := r.Get(); err != nil || c.Value != i {
					t.Fatalf("after update %d, attachment %d read %d, %v", i, j, c.GetValue(), err)
				}
			}
		}
	}
}

// Get and Update hand out values the caller owns: changing them must not
// change what the variable holds or what its cache serves.
func TestShouldHandCallersTheirOwnCopies(t *testing.T) {
	v := mustCreateCounter(t, testKey(t))
	if err := v.Set(&examplespb.Counter{Value: 1}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		got, err := v.Get()
		if err != nil || got.Value != 1 {
			t.Fatalf("Get: %d, %v", got.GetValue(), err)
		}
		got.Value = 99
	}
	for want := int64(2); want <= 4; want++ {
		got, err := v.Update(func(c *examplespb.Counter) (*examplespb.Counter, error) {
			c.Value++
			return c, nil
		})
		if err != nil || got.Value != want {
			t.Fatalf("Update: %d, %v; want %d", got.GetValue(), err, want)
		}
		got.Value = 1000
		if c, err := v.Get(); err != nil || c.Value != want {
			t.Fatalf("Get after Update: %d, %v; want %d", c.GetValue(), err, want)
		}
	}
}

// Mutate reuses the Var's own message: a failed fn must leave no trace of
// its changes, and concurrent callers must not share the message.
func TestShouldMutateInPlaceAndForgetFailedChanges(t *testing.T) {
	v := mustCreateCounter(t, testKey(t))
	inc := func(c *examplespb.Counter) error { c.Value++; return nil }
	for i := 0; i < 3; i++ {
		if err := v.Mutate(inc); err != nil {
			t.Fatal(err)
		}
	}
	boom := errors.New("boom")
	if err := v.Mutate(func(c *examplespb.Counter) error { c.Value = 1000; c.LastWriter = "half"; return boom }); !errors.Is(err, boom) {
		t.Fatalf("Mutate: %v, want boom", err)
	}
	func() {
		defer func() { recover() }()
		v.Mutate(func(c *examplespb.Counter) error { c.Value = 2000; panic("fn panics") })
	}()
	if c, err := v.Get(); err != nil || c.Value != 3 || c.LastWriter != "" {
		t.Fatalf("after failed mutations: %v, %v; want value 3", c, err)
	}
	if err := v.Mutate(func(c *examplespb.Counter) error {
		if c.Value != 3 {
			return fmt.Errorf("Mutate sees %d, want 3", c.Value)
		}
		return inc(c)
	}); err != nil {
		t.Fatal(err)
	}
	const goroutines, each = 4, 500
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := v.Mutate(inc); err != nil {
					t.Error(err)
					return
				}
				if _, err := v.Get(); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if c, err := v.Get(); err != nil || c.Value != 4+goroutines*each {
		t.Fatalf("after concurrent Mutate: %v, %v; want %d", c, err, 4+goroutines*each)
	}
}

// The value is the number of commits, so a Get must return one committed
// between the generations read just before and just after it: a cached value
// paired with the wrong generation would fall outside.
func TestShouldNeverServeAValueFromAnotherGenerationUnderConcurrency(t *testing.T) {
	vars := twoAttachments(t)
	const each = 3000
	var writers, readers sync.WaitGroup
	var stop atomic.Bool
	failures := make(chan string, 4)
	for _, v := range vars {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := 0; i < each; i++ {
				var err error
				if i%2 == 0 {
					err = v.Mutate(func(c *examplespb.Counter) error { c.Value++; return nil })
				} else {
					_, err = v.Update(func(c *examplespb.Counter) (*examplespb.Counter, error) { c.Value++; return c, nil })
				}
				if err != nil {
					failures <- err.Error()
					return
				}
			}
		}()
		readers.Add(1)
		go func() {
			defer readers.Done()
			for !stop.Load() {
				before, _ := v.Generation()
				c, err := v.Get()
				after, _ := v.Generation()
				if err != nil || uint64(c.Value) < before || uint64(c.Value) > after {
					failures <- fmt.Sprintf("read %d (%v) between generations %d and %d", c.GetValue(), err, before, after)
					return
				}
			}
		}()
	}
	writers.Wait()
	stop.Store(true)
	readers.Wait()
	close(failures)
	for f := range failures {
		t.Fatal(f)
	}
	if c, err := vars[0].Get(); err != nil || c.Value != 2*each {
		t.Fatalf("final value %d, %v; want %d", c.GetValue(), err, 2*each)
	}
}
