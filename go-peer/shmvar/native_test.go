package shmvar

import (
	"bytes"
	"testing"
)

// loadBytes copies what copy does, whatever the length, up to the end of mem.
func TestLoadBytes(t *testing.T) {
	mem := make([]byte, 256+64)
	for i := range mem {
		mem[i] = byte(i*7 + 1)
	}
	var buf []byte
	for _, start := range []int{0, 16, 256} {
		for n := 0; start+n <= len(mem); n++ {
			buf = loadBytes(buf, mem, start, n)
			if !bytes.Equal(buf, mem[start:start+n]) {
				t.Fatalf("loadBytes(start=%d, n=%d) = %x, want %x", start, n, buf, mem[start:start+n])
			}
		}
	}
}
