package shmvar_test

import (
	"testing"

	"github.com/shmvar/shmvar/go-peer/examplespb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
)

// Uncontended cost of an update (lock, read, encode, commit, unlock) and of
// a lock-free get of the Counter. make bench reports them.
func BenchmarkUpdate(b *testing.B) {
	v := mustCreateCounter(b, testKey(b))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := v.Update(func(c *examplespb.Counter) (*examplespb.Counter, error) {
			c.Value++
			return c, nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGet(b *testing.B) {
	v := mustCreateCounter(b, testKey(b))
	v.Set(&examplespb.Counter{Value: 12345, LastWriter: "bench"})
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := v.Get(); err != nil {
			b.Fatal(err)
		}
	}
}

// An update right after another attachment's commit, so the cache is stale:
// copy, check and decode included, as in a ping-pong (without the cache-line
// transfers between cores: both attachments run on one goroutine).
func BenchmarkUpdateUncached(b *testing.B) {
	vars := twoAttachments(b)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := vars[i&1].Update(func(c *examplespb.Counter) (*examplespb.Counter, error) {
			c.Value++
			return c, nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// Mutate: the update that allocates nothing, on the Var's own message.
func BenchmarkMutate(b *testing.B) {
	v := mustCreateCounter(b, testKey(b))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := v.Mutate(func(c *examplespb.Counter) error {
			c.Value++
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// Mutate right after another attachment's commit: decode into the Var's own
// message included.
func BenchmarkMutateUncached(b *testing.B) {
	vars := twoAttachments(b)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := vars[i&1].Mutate(func(c *examplespb.Counter) error {
			c.Value++
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// GetEncoded of a 64 KiB value: the slot copy of a read (it always re-reads,
// bypassing the cache), checksum included.
func BenchmarkGetEncodedLarge(b *testing.B) {
	v, err := shmvar.Create[*examplespb.AllTypes](testKey(b), shmvar.Options{Capacity: 80 << 10})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { v.Close() })
	if err := v.Set(&examplespb.AllTypes{FBytes: make([]byte, 64<<10)}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(64 << 10)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := v.GetEncoded(); err != nil {
			b.Fatal(err)
		}
	}
}
