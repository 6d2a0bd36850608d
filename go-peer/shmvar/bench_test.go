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
