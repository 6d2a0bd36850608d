package shmvar_test

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/shmvar/shmvar/go-peer/examplespb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
)

// TestOpenOrCreateCreatesOnceUnderARace starts many callers at once on one
// key: exactly one creates, and every increment lands in the one segment.
func TestOpenOrCreateCreatesOnceUnderARace(t *testing.T) {
	const callers = 16
	key := testKey(t)
	for round := 0; round < 5; round++ {
		var wg sync.WaitGroup
		start := make(chan struct{})
		vars := make([]*shmvar.Var[*examplespb.Counter], callers)
		created := make([]bool, callers)
		errs := make([]error, callers)
		for i := range vars {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				vars[i], created[i], errs[i] = shmvar.OpenOrCreate[*examplespb.Counter](key, shmvar.Options{})
				if errs[i] == nil {
					_, errs[i] = vars[i].Update(func(c *examplespb.Counter) (*examplespb.Counter, error) { c.Value++; return c, nil })
				}
			}()
		}
		close(start)
		wg.Wait()
		creators := 0
		for i := range vars {
			if errs[i] != nil {
				t.Fatalf("round %d, caller %d: %v", round, i, errs[i])
			}
			if created[i] {
				creators++
			}
		}
		if creators != 1 {
			t.Fatalf("round %d: %d callers created the segment, want exactly 1", round, creators)
		}
		for i, v := range vars {
			if c, err := v.Get(); err != nil || c.Value != callers {
				t.Fatalf("round %d, caller %d reads %v, %v; want value %d", round, i, c, err, callers)
			}
		}
		vars[0].Remove()
		for _, v := range vars[1:] {
			v.Close()
		}
	}
}

func TestOpenOrCreateOpensWhatIsThereAndRefusesAnotherType(t *testing.T) {
	key := testKey(t)
	v := mustCreateCounter(t, key)
	if err := v.Set(&examplespb.Counter{Value: 42}); err != nil {
		t.Fatal(err)
	}
	w, created, err := shmvar.OpenOrCreate[*examplespb.Counter](key, shmvar.Options{})
	if err != nil || created {
		t.Fatalf("OpenOrCreate of an existing segment: created=%v, %v; want it opened", created, err)
	}
	defer w.Close()
	if c, err := w.Get(); err != nil || c.Value != 42 {
		t.Fatalf("Get through the opened Var: %v, %v; want value 42", c, err)
	}
	if _, _, err := shmvar.OpenOrCreate[*examplespb.AllTypes](key, shmvar.Options{}); !errors.Is(err, shmvar.ErrTypeMismatch) {
		t.Fatalf("OpenOrCreate of a Counter segment as AllTypes: %v; want ErrTypeMismatch", err)
	}
	if _, _, err := shmvar.OpenOrCreate[*examplespb.Counter](key, shmvar.Options{ReadOnly: true}); !errors.Is(err, shmvar.ErrInvalidArgument) {
		t.Fatalf("OpenOrCreate ReadOnly: %v; want ErrInvalidArgument", err)
	}
}

func TestOpenOrCreateFileCreatesOnceUnderARace(t *testing.T) {
	const callers = 8
	path := filepath.Join(t.TempDir(), "counter.svar")
	var wg sync.WaitGroup
	start := make(chan struct{})
	vars := make([]*shmvar.Var[*examplespb.Counter], callers)
	created := make([]bool, callers)
	errs := make([]error, callers)
	for i := range vars {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			vars[i], created[i], errs[i] = shmvar.OpenOrCreateFile[*examplespb.Counter](path, shmvar.Options{})
			if errs[i] == nil {
				errs[i] = vars[i].Mutate(func(c *examplespb.Counter) error { c.Value++; return nil })
			}
		}()
	}
	close(start)
	wg.Wait()
	creators := 0
	for i, v := range vars {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		defer v.Close()
		if created[i] {
			creators++
		}
	}
	if c, err := vars[0].Get(); creators != 1 || err != nil || c.Value != callers {
		t.Fatalf("%d creators, value %v, %v; want 1 creator and value %d", creators, c, err, callers)
	}
}
