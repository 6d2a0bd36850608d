package shmvar

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file holds every call into the kernel: System V shared memory, the
// process identity used by the lock, and atomic access to the mapped words.

// segmentInfo is what IPC_STAT says about a segment.
type segmentInfo struct {
	ID      int
	Size    uint64
	UID     uint32
	GID     uint32
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
		ID: id, Size: desc.Segsz, UID: desc.Perm.Uid, GID: desc.Perm.Gid,
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

// procStat is the part of /proc/<pid>/stat the lock needs.
type procStat struct {
	state     byte
	startTime uint64 // clock ticks after boot
}

// procUnknown is what readProcStat returns when it cannot tell: the lock
// must then treat the holder as alive.
var procUnknown = procStat{state: '?'}

// readProcStat parses /proc/<pid>/stat; ok is false when the process is
// gone, and the state is procUnknown when the file could not be read for
// another reason.
func readProcStat(pid int32) (procStat, bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/stat")
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH) {
		return procStat{}, false
	}
	if err != nil {
		return procUnknown, true
	}
	// comm may hold spaces and parentheses: the fields start after the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return procUnknown, true
	}
	fields := bytes.Fields(data[i+1:])
	// fields[0] is field 3 (state); starttime is field 22.
	if len(fields) < 20 || len(fields[0]) != 1 {
		return procUnknown, true
	}
	start, err := strconv.ParseUint(string(fields[19]), 10, 64)
	if err != nil {
		return procUnknown, true
	}
	return procStat{state: fields[0][0], startTime: start}, true
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
