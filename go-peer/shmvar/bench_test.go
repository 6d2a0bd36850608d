package shmvar_test

import (
	"testing"

	"github.com/shmvar/shmvar/go-peer/shmvarpb"
)

// Uncontended cost of an update (lock, read, encode, commit, unlock) and of
// a lock-free get of the Counter. make bench reports them.
func BenchmarkUpdate(b *testing.B) {
	v := mustCreateCounter(b, testKey(b))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := v.Update(func(c *shmvarpb.Counter) (*shmvarpb.Counter, error) {
			c.Value++
			return c, nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGet(b *testing.B) {
	v := mustCreateCounter(b, testKey(b))
	v.Set(&shmvarpb.Counter{Value: 12345, LastWriter: "bench"})
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
		if _, err := vars[i&1].Update(func(c *shmvarpb.Counter) (*shmvarpb.Counter, error) {
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
		if err := v.Mutate(func(c *shmvarpb.Counter) error {
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
		if err := vars[i&1].Mutate(func(c *shmvarpb.Counter) error {
			c.Value++
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}
