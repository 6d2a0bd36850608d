package shmvar_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/shmvar/shmvar/go-peer/examplespb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
)

// countTo is a program written against the Variable interface: it runs
// unchanged whatever the address names.
func countTo(t *testing.T, address string, n int64) {
	t.Helper()
	ctx := context.Background()
	v, err := shmvar.CreateAt[*examplespb.Counter](ctx, address, shmvar.AddressOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	w, err := shmvar.OpenAt[*examplespb.Counter](ctx, address, shmvar.AddressOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := int64(0); i < n; i++ {
		if _, err := w.Update(func(c *examplespb.Counter) (*examplespb.Counter, error) { c.Value++; return c, nil }); err != nil {
			t.Fatal(err)
		}
	}
	if g, err := v.Generation(); err != nil || g != uint64(n) {
		t.Fatalf("%s: generation %d, %v; want %d", address, g, err, n)
	}
	any, err := shmvar.OpenAnyAt(ctx, address, shmvar.AddressOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := any.Get(); err != nil || !strings.Contains(fmt.Sprint(m), fmt.Sprint(n)) {
		t.Fatalf("%s: OpenAnyAt reads %v, %v; want value %d", address, m, err, n)
	}
	any.Close()
	if _, err := shmvar.CreateAt[*examplespb.Counter](ctx, address, shmvar.AddressOptions{}); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("%s: second create: %v; want EEXIST", address, err)
	}
	if _, err := shmvar.OpenAt[*examplespb.Point](ctx, address, shmvar.AddressOptions{}); !errors.Is(err, shmvar.ErrTypeMismatch) {
		t.Fatalf("%s: open as Point: %v; want ErrTypeMismatch", address, err)
	}
	if err := shmvar.RemoveAt(ctx, address, shmvar.AddressOptions{}); err != nil {
		t.Fatalf("%s: remove: %v", address, err)
	}
	if _, err := shmvar.OpenAt[*examplespb.Counter](ctx, address, shmvar.AddressOptions{}); err == nil {
		t.Fatalf("%s: open after remove succeeded", address)
	}
}

func TestShouldRunOneProgramOnEveryLocalAddress(t *testing.T) {
	countTo(t, fmt.Sprintf("shm:0x%x", uint32(testKey(t))), 10)
	countTo(t, "file:"+filepath.Join(t.TempDir(), "counter"), 10)
}

func TestShouldRefuseAddressesItCannotReachInOneLine(t *testing.T) {
	for address, want := range map[string]string{
		"0x5eed":          "no scheme",
		"shm:010":         "leading zero",
		"shm:":            "is not a number",
		"file:":           "no path",
		"etcd://h:1/x":    `import _ "github.com/shmvar/shmvar/go-peer/etcd"`,
		"redis://h:1/x":   `no backend for scheme "redis"`,
		"shm:0x1ffffffff": "is not a number",
	} {
		_, err := shmvar.OpenAt[*examplespb.Counter](context.Background(), address, shmvar.AddressOptions{})
		if !errors.Is(err, shmvar.ErrInvalidArgument) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: %v; want one line of invalid argument", address, err)
			continue
		}
		if want == "leading zero" {
			want = "without a leading zero"
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v; want it to say %q", address, err, want)
		}
	}
	if got := shmvar.Schemes(); strings.Join(got, ",") != "file,shm" {
		t.Errorf("Schemes() = %v without a backend imported; want [file shm]", got)
	}
}
