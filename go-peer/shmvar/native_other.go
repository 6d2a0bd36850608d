//go:build !(linux && (amd64 || arm64))

package shmvar

import (
	"fmt"
	"runtime"
	"syscall"
	"time"
)

// The system calls, on every platform but Linux on amd64 and arm64 (see
// native.go): each fails with ErrUnsupportedPlatform, so Create, Open,
// CreateFile, OpenFile and RemoveKey do, and no Var ever exists here. The
// protocol needs a little-endian 64-bit CPU (its atomic words are in the
// CPU's order) and Linux's System V semaphores, futexes and
// open-file-description locks.

func unsupported() error {
	return fmt.Errorf("%w: shmvar runs on linux/amd64 and linux/arm64, this is %s/%s", ErrUnsupportedPlatform, runtime.GOOS, runtime.GOARCH)
}

func shmGet(key uint32, size uint64, flags int) (int, error) {
	return 0, nativeError("shmget", key, unsupported(), false, 0)
}

func shmStat(key uint32, id int) (SegmentInfo, error) {
	return SegmentInfo{}, nativeError("shmctl(IPC_STAT)", key, unsupported(), false, 0)
}

func shmAttach(key uint32, id int, readOnly bool) ([]byte, error) {
	return nil, nativeError("shmat", key, unsupported(), false, 0)
}

func shmDetach(key uint32, mem []byte) error {
	return nativeError("shmdt", key, unsupported(), false, 0)
}

func shmRemove(key uint32, id int) error {
	return nativeError("shmctl(IPC_RMID)", key, unsupported(), false, 0)
}

func semGet(key uint32, nsems int, flags int) (int, error) {
	return -1, semError("semget", key, unsupported())
}

func semOp(id int, ops ...sembuf) syscall.Errno { return syscall.ENOSYS }

func semValue(id, n int) (int, syscall.Errno) { return 0, syscall.ENOSYS }

func semStat(key uint32, id int) (semInfo, error) {
	return semInfo{}, semError("semctl(IPC_STAT)", key, unsupported())
}

func semRemove(key uint32, id int) error { return semError("semctl(IPC_RMID)", key, unsupported()) }

func ofdLock(fd int, off int, lock bool) error { return unsupported() }

func ofdLocked(fd int, off int) (locked, ok bool) { return false, false }

func futexSleep(mem []byte, off int, val uint32, d time.Duration) { time.Sleep(d) }

func futexWakeUp(mem []byte, off int, n int) {}

func errnoName(errno syscall.Errno) string { return fmt.Sprintf("errno %d", int(errno)) }

func createNewFile(path string, mode uint32) (int, error) { return -1, unsupported() }

func openExistingFile(path string, readOnly bool) (int, error) { return -1, unsupported() }

func fstat(fd int) (fileStat, error) { return fileStat{}, unsupported() }

func stat(path string) (fileStat, error) { return fileStat{}, unsupported() }

func fchmod(fd int, mode uint32) error { return unsupported() }

func mmap(fd int, length int, readOnly bool) ([]byte, error) { return nil, unsupported() }

func munmap(mem []byte) error { return unsupported() }

func msync(mem []byte) error { return unsupported() }

func closeFile(fd int) {}

func unlink(path string) error { return unsupported() }

func reserve(fd int, length int64) error { return unsupported() }

func copySlot(dst, mem []byte, start, n int) []byte { return loadBytes(dst, mem, start, n) }
