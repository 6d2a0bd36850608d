package shmvar_test

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/shmvar/shmvar/go-peer/examplespb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
)

// TestKeysAboveTwoToThe31AreTheKernelsKeys: a key from 0x80000000 up is
// written as it is, and the kernel files the segment under that key (it
// prints key_t signed in /proc/sysvipc/shm).
func TestKeysAboveTwoToThe31AreTheKernelsKeys(t *testing.T) {
	key := 0x80000000 | testKey(t)
	t.Cleanup(func() { shmvar.RemoveKey(key) })
	v := mustCreateCounter(t, key)
	if v.Key() != key {
		t.Fatalf("Key() = %s, want %s", shmvar.FormatKey(v.Key()), shmvar.FormatKey(key))
	}
	parsed, err := shmvar.ParseKey(shmvar.FormatKey(key))
	if err != nil || parsed != key {
		t.Fatalf("ParseKey(FormatKey(%#x)) = %#x, %v", key, parsed, err)
	}
	w, err := shmvar.Open[*examplespb.Counter](parsed, shmvar.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Set(&examplespb.Counter{Value: 7}); err != nil {
		t.Fatal(err)
	}
	if c, err := v.Get(); err != nil || c.Value != 7 {
		t.Fatalf("Get = %v, %v; want 7", c, err)
	}
	info, err := v.Stat()
	if err != nil {
		t.Fatal(err)
	}
	table, err := os.ReadFile("/proc/sysvipc/shm")
	if err != nil {
		t.Skip(err)
	}
	want := strconv.Itoa(int(int32(key))) + " " + strconv.Itoa(info.ID) + " "
	found := false
	for _, line := range strings.Split(string(table), "\n") {
		found = found || strings.HasPrefix(strings.Join(strings.Fields(line), " ")+" ", want)
	}
	if !found {
		t.Fatalf("/proc/sysvipc/shm has no segment %d under key %d", info.ID, int32(key))
	}
}
