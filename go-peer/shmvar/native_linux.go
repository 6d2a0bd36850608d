//go:build linux && (amd64 || arm64)

package shmvar

import (
	"errors"
	"fmt"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The system calls, on Linux (see native.go): System V shared memory and
// semaphores, open-file-description locks, futexes and the mapped file.

func shmGet(key uint32, size uint64, flags int) (int, error) {
	id, err := unix.SysvShmGet(int(key), int(size), flags)
	if err != nil {
		return 0, nativeError("shmget", key, err, flags&ipcCreat != 0, size)
	}
	return id, nil
}

func shmStat(key uint32, id int) (SegmentInfo, error) {
	var desc unix.SysvShmDesc
	if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &desc); err != nil {
		return SegmentInfo{}, nativeError("shmctl(IPC_STAT)", key, err, false, 0)
	}
	return SegmentInfo{
		ID: id, Size: desc.Segsz, UID: desc.Perm.Uid, GID: desc.Perm.Gid, CUID: desc.Perm.Cuid,
		Mode: desc.Perm.Mode & 0o777, Cpid: desc.Cpid, Lpid: desc.Lpid, Nattach: desc.Nattch,
		Removed: desc.Perm.Mode&shmDest != 0,
	}, nil
}

func shmAttach(key uint32, id int, readOnly bool) ([]byte, error) {
	flags := 0
	if readOnly {
		flags = unix.SHM_RDONLY
	}
	mem, err := unix.SysvShmAttach(id, 0, flags)
	if err != nil {
		return nil, nativeError("shmat", key, err, false, 0)
	}
	return mem, nil
}

func shmDetach(key uint32, mem []byte) error {
	if err := unix.SysvShmDetach(mem); err != nil {
		return nativeError("shmdt", key, err, false, 0)
	}
	return nil
}

func shmRemove(key uint32, id int) error {
	if _, err := unix.SysvShmCtl(id, unix.IPC_RMID, nil); err != nil {
		return nativeError("shmctl(IPC_RMID)", key, err, false, 0)
	}
	return nil
}

// shmDest is SHM_DEST from linux/shm.h: the segment is marked for removal.
const shmDest = 0o1000

// System V semaphores: x/sys/unix has the system call numbers but no
// wrappers. semGetval is GETVAL from include/uapi/linux/sem.h.
const semGetval = 12

func semGet(key uint32, nsems int, flags int) (int, error) {
	id, _, errno := unix.Syscall(unix.SYS_SEMGET, uintptr(key), uintptr(nsems), uintptr(flags))
	if errno != 0 {
		return -1, semError("semget", key, errno)
	}
	return int(id), nil
}

// semOp applies ops atomically: all of them or none.
func semOp(id int, ops ...sembuf) syscall.Errno {
	_, _, errno := unix.Syscall(unix.SYS_SEMOP, uintptr(id), uintptr(unsafe.Pointer(&ops[0])), uintptr(len(ops)))
	return errno
}

// semValue returns semaphore n of the set.
func semValue(id, n int) (int, syscall.Errno) {
	v, _, errno := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), uintptr(n), semGetval, 0, 0, 0)
	return int(v), errno
}

func semStat(key uint32, id int) (semInfo, error) {
	// struct semid64_ds: ipc64_perm (uid@4, cuid@12, mode@20; 48 bytes), then
	// the times, then sem_nsems, whose place differs between x86-64 and the
	// asm-generic layout of arm64.
	var buf [128]byte
	if _, _, errno := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), 0, unix.IPC_STAT, uintptr(unsafe.Pointer(&buf[0])), 0, 0); errno != 0 {
		return semInfo{}, semError("semctl(IPC_STAT)", key, errno)
	}
	return semInfo{UID: le.Uint32(buf[4:]), CUID: le.Uint32(buf[12:]), Mode: le.Uint32(buf[20:]) & 0o777,
		Count: le.Uint64(buf[semNsemsOffset:])}, nil
}

func semRemove(key uint32, id int) error {
	if _, _, errno := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), 0, unix.IPC_RMID, 0, 0, 0); errno != 0 {
		return semError("semctl(IPC_RMID)", key, errno)
	}
	return nil
}

// ofdLock sets (lock) or clears an open-file-description lock on the byte
// at off.
func ofdLock(fd int, off int, lock bool) error {
	typ := int16(unix.F_UNLCK)
	if lock {
		typ = unix.F_WRLCK
	}
	return unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &unix.Flock_t{Type: typ, Whence: 0, Start: int64(off), Len: 1})
}

// ofdLocked reports whether an open file description other than fd's holds
// a lock on the byte at off; ok is false when the kernel could not say.
func ofdLocked(fd int, off int) (locked, ok bool) {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: int64(off), Len: 1}
	if err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_GETLK, &lk); err != nil {
		return false, false
	}
	return lk.Type != unix.F_UNLCK, true
}

// Futexes on 32-bit words of the segment. They are shared futexes (no
// FUTEX_PRIVATE_FLAG): the kernel keys them by the shared page, so a waker in
// one process reaches a sleeper in another.
const (
	futexWait = 0 // FUTEX_WAIT
	futexWake = 1 // FUTEX_WAKE
)

// futexSleep sleeps while the word at off holds val, for at most d; it
// returns early on a wake, a signal, or a changed word.
func futexSleep(mem []byte, off int, val uint32, d time.Duration) {
	ts := unix.NsecToTimespec(d.Nanoseconds())
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(&mem[off])), futexWait, uintptr(val),
		uintptr(unsafe.Pointer(&ts)), 0, 0)
}

// futexWakeUp wakes up to n sleepers on the word at off.
func futexWakeUp(mem []byte, off int, n int) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(&mem[off])), futexWake, uintptr(n), 0, 0, 0)
}

func errnoName(errno syscall.Errno) string {
	if name := unix.ErrnoName(errno); name != "" {
		return name
	}
	return fmt.Sprintf("errno %d", int(errno))
}

// The mapped file (file.go).

// createNewFile creates path, which must not exist, for reading and writing.
func createNewFile(path string, mode uint32) (int, error) {
	return unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, mode)
}

// openExistingFile opens path without following a symbolic link, and
// without blocking on a FIFO (which fstat then refuses).
func openExistingFile(path string, readOnly bool) (int, error) {
	flags := unix.O_RDWR
	if readOnly {
		flags = unix.O_RDONLY
	}
	return unix.Open(path, flags|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
}

func fileStatOf(st *unix.Stat_t) fileStat {
	return fileStat{Size: st.Size, UID: st.Uid, GID: st.Gid, Mode: st.Mode & 0o777, Regular: st.Mode&unix.S_IFMT == unix.S_IFREG}
}

func fstat(fd int) (fileStat, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fileStat{}, err
	}
	return fileStatOf(&st), nil
}

func stat(path string) (fileStat, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fileStat{}, err
	}
	return fileStatOf(&st), nil
}

func fchmod(fd int, mode uint32) error { return unix.Fchmod(fd, mode) }

// mmap maps length bytes of fd, shared.
func mmap(fd int, length int, readOnly bool) ([]byte, error) {
	prot := unix.PROT_READ | unix.PROT_WRITE
	if readOnly {
		prot = unix.PROT_READ
	}
	return unix.Mmap(fd, 0, length, prot, unix.MAP_SHARED)
}

func munmap(mem []byte) error { return unix.Munmap(mem) }

func msync(mem []byte) error { return unix.Msync(mem, unix.MS_SYNC) }

func closeFile(fd int) { unix.Close(fd) }

func unlink(path string) error { return unix.Unlink(path) }

// reserve gives the new file fd its length with every block allocated
// (posix_fallocate), so that no later store into the mapping can fault for
// lack of space (SIGBUS): a full file system fails the create with ENOSPC
// instead. A file system without fallocate gets its blocks written with
// zeros, as glibc's posix_fallocate does.
func reserve(fd int, length int64) error {
	err := unix.Fallocate(fd, 0, 0, length)
	if !errors.Is(err, unix.EOPNOTSUPP) {
		return err
	}
	if err := unix.Ftruncate(fd, length); err != nil {
		return err
	}
	zeros := make([]byte, 64<<10)
	for off := int64(0); off < length; {
		n, err := unix.Pwrite(fd, zeros[:min(int64(len(zeros)), length-off)], off)
		if err != nil {
			return err
		}
		off += int64(n)
	}
	return nil
}
