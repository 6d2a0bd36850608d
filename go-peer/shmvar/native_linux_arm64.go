//go:build linux && (amd64 || arm64)

package shmvar

// semNsemsOffset is where sem_nsems lies in the asm-generic struct semid64_ds.
const semNsemsOffset = 64
