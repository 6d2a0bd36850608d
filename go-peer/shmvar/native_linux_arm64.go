//go:build linux && (amd64 || arm64)

package shmvar

// semNsemsOffset is where sem_nsems lies in the asm-generic struct semid64_ds.
const semNsemsOffset = 64

// copySlot copies a slot's payload for read. A plain load may be satisfied
// after a later acquire load on arm64 (acquire orders only what follows
// it), so a copy made with memmove could be torn by a writer yet pass the
// re-check of the generation and be refused as corrupt. Go has no load
// fence to put before that re-check; loadBytes makes every load of the
// copy an atomic (acquire, LDAR) load, which the re-check cannot pass.
func copySlot(dst, mem []byte, start, n int) []byte { return loadBytes(dst, mem, start, n) }
