package shmvar

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// Every call into the kernel goes through the functions this file declares
// the types of and native_linux.go implements, on the one platform the
// protocol runs on: Linux on a little-endian 64-bit CPU (amd64, arm64), as
// the Java side (io.shmvar.Native) insists too. native_other.go implements
// them on every other platform by failing with ErrUnsupportedPlatform, so
// that a program importing this package builds anywhere; the rest of the
// package is the same everywhere.

// SegmentInfo is what the kernel says about a segment (IPC_STAT) or a
// mapped file (fstat), as Var.Stat returns it.
type SegmentInfo struct {
	// ID is the segment's System V id (shmid), or -1 for a file.
	ID int
	// Size is the real size in bytes, which validation goes by.
	Size uint64
	// UID and GID are the owner's user and group.
	UID uint32
	GID uint32
	// CUID is the creator's uid, which keeps full access whoever the
	// owner; 0 for a file.
	CUID uint32
	// Mode is the permission bits.
	Mode uint32
	// Cpid is the creator's pid and Lpid the pid of the last shmat or shmdt,
	// in this process's PID namespace as the kernel reports them; 0 for a file.
	Cpid int32
	Lpid int32
	// Nattach is how many attachments the segment has; 0 for a file.
	Nattach uint64
	// Removed says the segment is marked for removal (SHM_DEST): it goes at
	// the last detach.
	Removed bool
}

// fileStat is what fstat(2) says about a mapped file.
type fileStat struct {
	Size    int64
	UID     uint32
	GID     uint32
	Mode    uint32 // permission bits
	Regular bool
}

// Linux's values of the flags this package passes to shmget, semget and
// semop (include/uapi/linux/ipc.h, sem.h).
const (
	ipcPrivate = 0
	ipcCreat   = 0o1000
	ipcExcl    = 0o2000
	ipcNowait  = 0o4000
	semUndo    = 0x1000
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

func semError(op string, key uint32, err error) *Error {
	e := &Error{Op: op, Key: key, Err: err}
	k := FormatKey(key)
	switch err {
	case syscall.EEXIST:
		e.Detail = "a semaphore set with this key already exists; remove it with 'rm --force --key " + k + "' or 'ipcrm -S " + k + "'"
	case syscall.ENOENT:
		e.Detail = "no semaphore set with this key"
	case syscall.ENOSPC:
		e.Detail = "a system-wide limit on semaphores is reached (/proc/sys/kernel/sem)"
	case syscall.EACCES, syscall.EPERM:
		e.Detail = "permission denied: the semaphore set's owner and mode do not let this user use it"
	case syscall.EIDRM, syscall.EINVAL:
		e.Detail = "the semaphore set was removed"
	}
	return e
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

// loadBytes copies n bytes of mem from start, which is 8-byte aligned, into
// dst (reused), with 8-byte atomic loads only: under the Go memory model
// every one of them is ordered before the reader's next atomic load, on
// every CPU. The last word may extend past start+n, still inside the slot
// (rounded up to 64 bytes), unless a header no peer writes put the slot's
// end at the segment's: then the last bytes are copied with plain loads.
func loadBytes(dst, mem []byte, start, n int) []byte {
	dst = slices.Grow(dst[:0], n)[:n]
	i := 0
	for ; i+8 <= n; i += 8 {
		le.PutUint64(dst[i:], load64(mem, start+i))
	}
	if i < n && start+i+8 <= len(mem) {
		var tail [8]byte
		le.PutUint64(tail[:], load64(mem, start+i))
		copy(dst[i:], tail[:n-i])
	} else if i < n {
		copy(dst[i:], mem[start+i:start+n])
	}
	return dst
}
