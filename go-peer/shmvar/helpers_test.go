package shmvar_test

import (
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/shmvar/shmvar/go-peer/examplespb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/encoding/prototext"
)

// testKey returns a key no segment uses and removes whatever segment and
// semaphore set hold it when the test ends.
func testKey(t testing.TB) int32 {
	t.Helper()
	for {
		key := int32(0x5b000000 | rand.Int31n(0xffffff))
		if _, err := unix.SysvShmGet(int(key), 0, 0); errors.Is(err, unix.ENOENT) {
			t.Cleanup(func() { removeIfPresent(key) })
			return key
		}
	}
}

// removeIfPresent removes the segment under key and its semaphore set.
func removeIfPresent(key int32) { shmvar.RemoveKey(key) }

// poke attaches the segment under key raw and lets f change its bytes, as a
// buggy or hostile peer would.
func poke(t testing.TB, key int32, f func(mem []byte)) {
	t.Helper()
	id, err := unix.SysvShmGet(int(key), 0, 0)
	if err != nil {
		t.Fatalf("shmget: %v", err)
	}
	mem, err := unix.SysvShmAttach(id, 0, 0)
	if err != nil {
		t.Fatalf("shmat: %v", err)
	}
	defer unix.SysvShmDetach(mem)
	f(mem)
}

// rawSegment creates a segment of size bytes filled by fill, bypassing the library.
func rawSegment(t testing.TB, size int, fill func(mem []byte)) int32 {
	t.Helper()
	key := testKey(t)
	id, err := unix.SysvShmGet(int(key), size, unix.IPC_CREAT|unix.IPC_EXCL|0o600)
	if err != nil {
		t.Fatalf("shmget: %v", err)
	}
	if fill != nil {
		mem, err := unix.SysvShmAttach(id, 0, 0)
		if err != nil {
			t.Fatalf("shmat: %v", err)
		}
		fill(mem)
		unix.SysvShmDetach(mem)
	}
	return key
}

// repoRoot is the repository's root directory.
func repoRoot(t testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// allTypesSample is proto/testdata/alltypes.txtpb, which the Java tests read too.
func allTypesSample(t testing.TB) (*examplespb.AllTypes, string) {
	t.Helper()
	text, err := os.ReadFile(filepath.Join(repoRoot(t), "proto", "testdata", "alltypes.txtpb"))
	if err != nil {
		t.Fatal(err)
	}
	m := &examplespb.AllTypes{}
	if err := prototext.Unmarshal(text, m); err != nil {
		t.Fatalf("alltypes.txtpb: %v", err)
	}
	return m, string(text)
}

func mustCreateCounter(t testing.TB, key int32) *shmvar.Var[*examplespb.Counter] {
	t.Helper()
	v, err := shmvar.Create[*examplespb.Counter](key, shmvar.Options{})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// mustCreateAllTypes creates an AllTypes segment under key holding the
// shared sample, which it returns too.
func mustCreateAllTypes(t testing.TB, key int32) (*shmvar.Var[*examplespb.AllTypes], *examplespb.AllTypes) {
	t.Helper()
	sample, _ := allTypesSample(t)
	v, err := shmvar.Create[*examplespb.AllTypes](key, shmvar.Options{})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { v.Close() })
	if err := v.Set(sample); err != nil {
		t.Fatalf("Set: %v", err)
	}
	return v, sample
}

// twoAttachments creates a Counter segment and attaches to it twice: each
// attachment's commits leave the other's cache stale.
func twoAttachments(t testing.TB) [2]*shmvar.Var[*examplespb.Counter] {
	t.Helper()
	key := testKey(t)
	v := mustCreateCounter(t, key)
	other, err := shmvar.Open[*examplespb.Counter](key, shmvar.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { other.Close() })
	return [2]*shmvar.Var[*examplespb.Counter]{v, other}
}

// increment adds 1 to the counter n times, each under the lock.
func increment(t testing.TB, v *shmvar.Var[*examplespb.Counter], n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if _, err := v.TryUpdate(10*time.Second, func(c *examplespb.Counter) (*examplespb.Counter, error) {
			c.Value++
			return c, nil
		}); err != nil {
			t.Fatalf("increment %d of %d: %v", i+1, n, err)
		}
	}
}
