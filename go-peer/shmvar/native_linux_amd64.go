//go:build linux && (amd64 || arm64)

package shmvar

// semNsemsOffset is where sem_nsems lies in x86-64's struct semid64_ds.
const semNsemsOffset = 80
