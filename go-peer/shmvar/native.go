package shmvar

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file holds every call into the kernel: System V shared memory and
// semaphores, open-file-description locks, and atomic access to the mapped
// words.

// segmentInfo is what IPC_STAT says about a segment.
type segmentInfo struct {
	ID      int
	Size    uint64
	UID     uint32
	GID     uint32
	CUID    uint32 // the creator's uid, which keeps full access whoever the owner
	Mode    uint32 // permission bits
	Cpid    int32
	Lpid    int32
	Nattach uint64
	Removed bool // marked for removal (SHM_DEST): it goes at the last detach
}

func shmGet(key int32, size uint64, flags int) (int, error) {
	id, err := unix.SysvShmGet(int(key), int(size), flags)
	if err != nil {
		return 0, nativeError("shmget", key, err, flags&unix.IPC_CREAT != 0, size)
	}
	return id, nil
}

func shmStat(key int32, id int) (segmentInfo, error) {
	var desc unix.SysvShmDesc
	if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &desc); err != nil {
		return segmentInfo{}, nativeError("shmctl(IPC_STAT)", key, err, false, 0)
	}
	return segmentInfo{
		ID: id, Size: desc.Segsz, UID: desc.Perm.Uid, GID: desc.Perm.Gid, CUID: desc.Perm.Cuid,
		Mode: desc.Perm.Mode & 0o777, Cpid: desc.Cpid, Lpid: desc.Lpid, Nattach: desc.Nattch,
		Removed: desc.Perm.Mode&shmDest != 0,
	}, nil
}

func shmAttach(key int32, id int, readOnly bool) ([]byte, error) {
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

func shmDetach(key int32, mem []byte) error {
	if err := unix.SysvShmDetach(mem); err != nil {
		return nativeError("shmdt", key, err, false, 0)
	}
	return nil
}

func shmRemove(key int32, id int) error {
	if _, err := unix.SysvShmCtl(id, unix.IPC_RMID, nil); err != nil {
		return nativeError("shmctl(IPC_RMID)", key, err, false, 0)
	}
	return nil
}

// shmDest is SHM_DEST from linux/shm.h: the segment is marked for removal.
const shmDest = 0o1000

// System V semaphores: x/sys/unix has the system call numbers but no
// wrappers. Linux's values (include/uapi/linux/ipc.h, sem.h).
const (
	ipcNowait = 0o4000
	semUndo   = 0x1000
	semGetval = 12
)

// sembuf is struct sembuf.
type sembuf struct {
	num uint16
	op  int16
	flg int16
}

// semInfo is what IPC_STAT says about a semaphore set.
type semInfo struct {
	UID, CUID, Mode uint32
	Count           uint64
}

func semGet(key int32, nsems int, flags int) (int, error) {
	id, _, errno := unix.Syscall(unix.SYS_SEMGET, uintptr(key), uintptr(nsems), uintptr(flags))
	if errno != 0 {
		return -1, semError("semget", key, errno)
	}
	return int(id), nil
}

// semOp applies ops atomically: all of them or none.
func semOp(id int, ops ...sembuf) unix.Errno {
	_, _, errno := unix.Syscall(unix.SYS_SEMOP, uintptr(id), uintptr(unsafe.Pointer(&ops[0])), uintptr(len(ops)))
	return errno
}

// semValue returns semaphore n of the set.
func semValue(id, n int) (int, unix.Errno) {
	v, _, errno := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), uintptr(n), semGetval, 0, 0, 0)
	return int(v), errno
}

func semStat(key int32, id int) (semInfo, error) {
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

func semRemove(key int32, id int) error {
	if _, _, errno := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), 0, unix.IPC_RMID, 0, 0, 0); errno != 0 {
		return semError("semctl(IPC_RMID)", key, errno)
	}
	return nil
}

func semError(op string, key int32, errno unix.Errno) *Error {
	e := &Error{Op: op, Key: key, Err: errno}
	k := FormatKey(key)
	switch errno {
	case unix.EEXIST:
		e.Detail = "a semaphore set with this key already exists; remove it with 'rm --force --key " + k + "' or 'ipcrm -S " + k + "'"
	case unix.ENOENT:
		e.Detail = "no semaphore set with this key"
	case unix.ENOSPC:
		e.Detail = "a system-wide limit on semaphores is reached (/proc/sys/kernel/sem)"
	case unix.EACCES, unix.EPERM:
		e.Detail = "permission denied: the semaphore set's owner and mode do not let this user use it"
	case unix.EIDRM, unix.EINVAL:
		e.Detail = "the semaphore set was removed"
	}
	return e
}

// ofdLock sets or clears (typ unix.F_WRLCK or unix.F_UNLCK) an
// open-file-description lock on the byte at off.
func ofdLock(fd int, off int, typ int16) error {
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

var (
	pidNamespaceOnce sync.Once
	pidNamespace     uint64
)

// ownPidNamespace returns the inode number of this process's PID namespace
// (/proc/self/ns/pid reads "pid:[N]"), or 0 if it cannot be read. It is
// shown to people only: nothing is decided by it.
func ownPidNamespace() uint64 {
	pidNamespaceOnce.Do(func() {
		link, err := os.Readlink("/proc/self/ns/pid")
		if err != nil || !strings.HasPrefix(link, "pid:[") || !strings.HasSuffix(link, "]") {
			return
		}
		if n, err := strconv.ParseUint(link[5:len(link)-1], 10, 64); err == nil {
			pidNamespace = n
		}
	})
	return pidNamespace
}

// Atomic access to 8-byte aligned words of the mapped segment. The segment is
// page aligned and every atomic offset is a multiple of 8 (see layout.go).

func word64(mem []byte, off int) *uint64 { return (*uint64)(unsafe.Pointer(&mem[off])) }

func load64(mem []byte, off int) uint64 { return atomic.LoadUint64(word64(mem, off)) }

func store64(mem []byte, off int, v uint64) { atomic.StoreUint64(word64(mem, off), v) }

func cas64(mem []byte, off int, old, new uint64) bool {
	return atomic.CompareAndSwapUint64(word64(mem, off), old, new)
}

func add64(mem []byte, off int, delta uint64) { atomic.AddUint64(word64(mem, off), delta) }

func load32(mem []byte, off int) uint32 {
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&mem[off])))
}

func store32(mem []byte, off int, v uint32) {
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&mem[off])), v)
}

func add32(mem []byte, off int, delta int32) uint32 {
	return atomic.AddUint32((*uint32)(unsafe.Pointer(&mem[off])), uint32(delta))
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
