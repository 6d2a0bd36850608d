package etcdvar_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	etcdvar "github.com/shmvar/shmvar/go-peer/etcd"
	"github.com/shmvar/shmvar/go-peer/examplespb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
)

// TestShouldRunASharedMemoryProgramOnEtcd runs code written against
// shmvar.Variable, as for a segment, on an etcd:// address.
func TestShouldRunASharedMemoryProgramOnEtcd(t *testing.T) {
	address := shared(t).address(t)
	ctx := context.Background()
	opts := shmvar.AddressOptions{Backend: etcdvar.Options{Serializable: false}}
	v, err := shmvar.CreateAt[*examplespb.Counter](ctx, address, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	w, err := shmvar.OpenAt[*examplespb.Counter](ctx, address, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for range 10 {
		if err := w.Mutate(func(c *examplespb.Counter) error { c.Value++; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if c, err := v.Get(); err != nil || c.GetValue() != 10 {
		t.Fatalf("Get through the seam: %v, %v; want 10", c, err)
	}
	if g, err := v.AwaitChange(3, 0); err != nil || g != 10 {
		t.Fatalf("AwaitChange(3) after 10 commits: %d, %v; want 10 at once", g, err)
	}
	any, err := shmvar.OpenAnyAt(ctx, address, opts)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := any.Get(); err != nil || !strings.Contains(fmt.Sprint(m), "10") {
		t.Fatalf("OpenAnyAt: %v, %v", m, err)
	}
	any.Close()
	if _, err := shmvar.OpenAt[*examplespb.Point](ctx, address, opts); !errors.Is(err, shmvar.ErrTypeMismatch) {
		t.Fatalf("open as Point: %v; want ErrTypeMismatch", err)
	}
	if err := shmvar.RemoveAt(ctx, address, opts); err != nil {
		t.Fatal(err)
	}
	if _, err := shmvar.OpenAt[*examplespb.Counter](ctx, address, opts); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("open after remove: %v; want ENOENT", err)
	}
}
