//go:build linux && (amd64 || arm64)

package shmvar

// semNsemsOffset is where sem_nsems lies in x86-64's struct semid64_ds.
const semNsemsOffset = 80

// copySlot copies a slot's payload for read with a plain copy (memmove). On
// x86-64 (TSO) loads are not reordered with other loads, and the Go compiler
// does not move loads across sync/atomic calls, so every byte is loaded
// before the next load of the generation, as an acquire fence there would
// ensure. loadBytes would do too, at a cost for large values (see
// BenchmarkGetEncodedLarge).
func copySlot(dst, mem []byte, start, n int) []byte { return append(dst[:0], mem[start:start+n]...) }
