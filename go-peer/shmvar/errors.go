package shmvar

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/shmvar/shmvar/go-peer/shmvarpb"
	"google.golang.org/protobuf/proto"
)

// Sentinel errors that an *Error wraps when the failure is not an errno or a
// context's error. There is one per kind of shmvarpb.ErrorKind
// (proto/shmvar/v1/protocol.proto), which gives its text; NATIVE and
// INTERRUPTED have none (see (*Error).Kind).
var (
	// ErrNotShmvar means the segment does not start with the shmvar magic.
	ErrNotShmvar = sentinel(shmvarpb.ErrorKind_NOT_SHMVAR)
	// ErrNotInitialised means the segment's header was still zero after the wait.
	ErrNotInitialised = sentinel(shmvarpb.ErrorKind_NOT_INITIALISED)
	// ErrLayoutVersion means the segment's layout major version differs from ours.
	ErrLayoutVersion = sentinel(shmvarpb.ErrorKind_LAYOUT_VERSION)
	// ErrTypeMismatch means the segment holds another payload type than asked for.
	ErrTypeMismatch = sentinel(shmvarpb.ErrorKind_TYPE_MISMATCH)
	// ErrCorrupt means a header, descriptor or slot failed validation.
	ErrCorrupt = sentinel(shmvarpb.ErrorKind_CORRUPT)
	// ErrTooLarge means an encoded value does not fit the segment's capacity.
	ErrTooLarge = sentinel(shmvarpb.ErrorKind_TOO_LARGE)
	// ErrTimeout means the lock was not acquired, or the generation did not
	// move, before the deadline.
	ErrTimeout = sentinel(shmvarpb.ErrorKind_TIMEOUT)
	// ErrLockLost means the lock was taken from its holder, which only a
	// peer that breaks the protocol can do; the holder committed nothing.
	ErrLockLost = sentinel(shmvarpb.ErrorKind_LOCK_LOST)
	// ErrAttachmentsFull means every entry of the attachment table is held
	// by a live writing attachment.
	ErrAttachmentsFull = sentinel(shmvarpb.ErrorKind_ATTACHMENTS_FULL)
	// ErrBusy means readers kept losing the race with writers until the deadline.
	ErrBusy = sentinel(shmvarpb.ErrorKind_BUSY)
	// ErrClosed means the variable was used after Close or Remove.
	ErrClosed = sentinel(shmvarpb.ErrorKind_CLOSED)
	// ErrPermission means the segment's owner or mode is not what the caller accepts.
	ErrPermission = sentinel(shmvarpb.ErrorKind_PERMISSION)
	// ErrInvalidArgument means a caller passed an unusable argument.
	ErrInvalidArgument = sentinel(shmvarpb.ErrorKind_INVALID_ARGUMENT)
	// ErrUnsupportedPlatform means this is not Linux on amd64 or arm64, the
	// only platforms the protocol runs on (little-endian, 64-bit): every
	// function that would attach fails with it. The Java side refuses such
	// hosts too, when io.shmvar.Native loads.
	ErrUnsupportedPlatform = sentinel(shmvarpb.ErrorKind_UNSUPPORTED_PLATFORM)
	// ErrUnavailable means a remote backing did not answer in time (the etcd
	// backing's ErrUnavailable matches it); shared memory never returns it.
	ErrUnavailable = sentinel(shmvarpb.ErrorKind_UNAVAILABLE)
)

// kindError is a sentinel: compared by identity, like errors.New's.
type kindError struct {
	kind shmvarpb.ErrorKind
	text string
}

func (e *kindError) Error() string { return e.text }

func sentinel(kind shmvarpb.ErrorKind) error {
	return &kindError{kind: kind, text: KindText(kind)}
}

// KindText returns the text that both languages print for kind, its
// (shmvar.v1.text) option in protocol.proto; "" for a kind without one.
func KindText(kind shmvarpb.ErrorKind) string {
	value := kind.Descriptor().Values().ByNumber(kind.Number())
	if value == nil {
		return ""
	}
	return proto.GetExtension(value.Options(), shmvarpb.E_Text).(string)
}

// Error is the error type of this package. Op names the failed call (a libc
// function such as "shmget", or an operation such as "open"), Key is the
// segment's key and Err is a syscall.Errno or one of the Err* sentinels.
type Error struct {
	Op     string
	Key    uint32
	Path   string // the mapped file, for file-backed variables
	Err    error
	Detail string // what a person can do about it, or what check failed
	Holder int32  // for ErrTimeout: the lock holder's pid, in its own PID namespace
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s key=%s: ", e.Op, FormatKey(e.Key))
	if e.Path != "" {
		s = fmt.Sprintf("%s file=%s: ", e.Op, e.Path)
	}
	if errno, ok := e.Err.(syscall.Errno); ok {
		s += fmt.Sprintf("%s (%s)", errno.Error(), errnoName(errno))
	} else {
		s += e.Err.Error()
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap returns the errno or sentinel, so errors.Is(err, syscall.EEXIST) works.
func (e *Error) Unwrap() error { return e.Err }

// Kind returns the kind of failure, as Java's ShmException.reason() does:
// NATIVE for an errno, INTERRUPTED for a context's error, the sentinel's kind
// otherwise, and ERROR_KIND_UNSPECIFIED for any other error.
func (e *Error) Kind() shmvarpb.ErrorKind {
	var k *kindError
	switch {
	case errors.As(e.Err, &k):
		return k.kind
	case errors.Is(e.Err, ErrUnavailable): // a backend's own error that matches it
		return shmvarpb.ErrorKind_UNAVAILABLE
	case Errno(e.Err) != 0:
		return shmvarpb.ErrorKind_NATIVE
	case errors.Is(e.Err, context.Canceled) || errors.Is(e.Err, context.DeadlineExceeded):
		return shmvarpb.ErrorKind_INTERRUPTED
	}
	return shmvarpb.ErrorKind_ERROR_KIND_UNSPECIFIED
}

// Errno returns the errno carried by err, or 0.
func Errno(err error) syscall.Errno {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return 0
}

// FormatKey formats a key the way ipcs prints it.
func FormatKey(key uint32) string { return fmt.Sprintf("0x%08x", key) }

// ParseKey reads a System V key the way both commands read --key K (README,
// "Commands"): decimal digits without a leading zero (1..4294967295), or 0x
// or 0X and hex digits in either case (0x1..0xffffffff). Anything else is
// refused: 0 (IPC_PRIVATE), a leading zero such as 010 (octal to some
// readers, decimal to others), 0o12, 0b1010, 1_0, a sign, spaces, or a
// number above 0xffffffff. The Java twin is the commands' KeyConverter.
func ParseKey(s string) (uint32, error) {
	digits, base := s, 10
	if len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		digits, base = s[2:], 16
	} else if len(s) > 1 && s[0] == '0' {
		digits = "" // a leading zero: refused as ambiguous
	}
	valid := digits != ""
	for _, c := range digits {
		valid = valid && (c >= '0' && c <= '9' || base == 16 && (c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'))
	}
	var n uint64
	var err error
	if valid {
		n, err = strconv.ParseUint(digits, base, 32)
	}
	if !valid || err != nil || n == 0 {
		return 0, fmt.Errorf("key %q is not a number in 1..0xffffffff: write it in decimal without a leading zero (1..4294967295) or as 0x-hex (0x1..0xffffffff)", s)
	}
	return uint32(n), nil
}

func newError(op string, key uint32, err error, format string, args ...any) *Error {
	return &Error{Op: op, Key: key, Err: err, Detail: fmt.Sprintf(format, args...)}
}

// nativeError turns a failed libc call into an *Error with advice a person
// can act on.
func nativeError(op string, key uint32, err error, creating bool, size uint64) *Error {
	errno, ok := err.(syscall.Errno)
	if !ok {
		return &Error{Op: op, Key: key, Err: err}
	}
	e := &Error{Op: op, Key: key, Err: errno}
	k := FormatKey(key)
	switch {
	case errno == syscall.EEXIST:
		e.Detail = "a segment with this key already exists; remove it with 'rm --key " + k + "' or 'ipcrm -M " + k + "'"
	case errno == syscall.ENOENT:
		e.Detail = "no segment with this key; create it with 'create --key " + k + "'"
	case errno == syscall.EINVAL && creating:
		e.Detail = fmt.Sprintf("size %d is outside the kernel's limits: shmmax=%s bytes (/proc/sys/kernel/shmmax), shmmin=1", size, kernelLimit("shmmax"))
	case errno == syscall.EINVAL && op == "shmget":
		e.Detail = "a segment with this key exists but is smaller than asked for"
	case errno == syscall.ENOSPC:
		e.Detail = fmt.Sprintf("a system-wide limit is reached: shmmni=%s segments or shmall=%s pages in all (/proc/sys/kernel)", kernelLimit("shmmni"), kernelLimit("shmall"))
	case errno == syscall.ENOMEM:
		e.Detail = "not enough memory for the segment"
	case errno == syscall.EACCES || errno == syscall.EPERM:
		e.Detail = "permission denied: the segment's owner and mode do not let this user use it"
	case errno == syscall.EIDRM:
		e.Detail = "the segment was removed"
	}
	return e
}

// KernelLimit reads one of the kernel's System V settings from
// /proc/sys/kernel (shmmax, shmall, shmmni, shm_rmid_forced...), or
// "unknown".
func KernelLimit(name string) string { return kernelLimit(name) }

// kernelLimit reads one of the kernel's System V limits, for error messages.
func kernelLimit(name string) string {
	b, err := os.ReadFile("/proc/sys/kernel/" + name)
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}
