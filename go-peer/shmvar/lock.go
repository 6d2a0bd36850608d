package shmvar

import (
	"fmt"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// The lock word at LockWordOffset is 0 when free. A holder stores its
// attachment's identity, index<<32 | incarnation, by compare-and-set from 0.
// Each writing attachment claims an entry of the attachment table whose
// liveness the kernel keeps (a System V semaphore with SEM_UNDO, or an
// open-file-description lock on a byte of a mapped file), so a waiter can
// tell a dead holder from a live one whatever PID namespace, time namespace,
// user or /proc either runs in. A waiter that finds the holder dead takes
// the lock over with one compare-and-set on the exact word it saw; a live
// holder is never robbed. See PROTOCOL.md, "Attachments" and "The lock". The
// Java twin is io.shmvar.SpinLock.

// slots is how a backing keeps, in the kernel, which attachment entries
// belong to live processes.
type slots interface {
	// claim takes entry i for this attachment; ok is false when a live
	// attachment holds it.
	claim(i int) (ok bool, err error)
	// release gives entry i back.
	release(i int) error
	// held reports whether a live attachment holds entry i. When the kernel
	// cannot say, it answers true: a peer never robs a holder it cannot see.
	held(i int) bool
}

// semSlots keeps the entries of a System V segment: semaphore i of the set
// under the segment's key is 1 while entry i is claimed, and SEM_UNDO makes
// the kernel lower it when the claimer dies, however it dies.
type semSlots struct {
	key int32
	id  int
}

func (s semSlots) claim(i int) (bool, error) {
	errno := semOp(s.id, sembuf{uint16(i), 0, ipcNowait}, sembuf{uint16(i), 1, semUndo | ipcNowait})
	switch errno {
	case 0:
		return true, nil
	case unix.EAGAIN:
		return false, nil
	}
	return false, semError("semop", s.key, errno)
}

func (s semSlots) release(i int) error {
	if errno := semOp(s.id, sembuf{uint16(i), -1, semUndo | ipcNowait}); errno != 0 {
		return semError("semop", s.key, errno)
	}
	return nil
}

func (s semSlots) held(i int) bool {
	v, errno := semValue(s.id, i)
	return errno != 0 || v != 0
}

// fileSlots keeps the entries of a mapped file: an open-file-description
// lock on the entry's first byte, which the kernel drops when the last
// descriptor of the open file description closes, at the latest when the
// process dies.
type fileSlots struct {
	path string
	fd   int
}

func entryOffset(i int) int { return AttachmentTableOffset + i*AttachmentLength }

func (s fileSlots) claim(i int) (bool, error) {
	err := ofdLock(s.fd, entryOffset(i), unix.F_WRLCK)
	switch err {
	case nil:
		return true, nil
	case unix.EAGAIN, unix.EACCES:
		return false, nil
	}
	return false, fileNativeError("fcntl(F_OFD_SETLK)", s.path, err)
}

func (s fileSlots) release(i int) error {
	if err := ofdLock(s.fd, entryOffset(i), unix.F_UNLCK); err != nil {
		return fileNativeError("fcntl(F_OFD_SETLK)", s.path, err)
	}
	return nil
}

func (s fileSlots) held(i int) bool {
	locked, ok := ofdLocked(s.fd, entryOffset(i))
	return !ok || locked
}

// locker is one attachment's side of the lock.
type locker struct {
	key   int32
	slots slots  // nil when liveness cannot be asked (a read-only attachment without the semaphore set)
	index int    // the claimed entry, or -1 (read-only attachments claim none)
	me    uint64 // the lock word while this attachment holds it; 0 if it claimed no entry
}

// claim takes the first free entry of the attachment table and records this
// process in it, for people; it returns the attachment's identity.
func (l *locker) claim(mem []byte) error {
	for i := 0; i < AttachmentCount; i++ {
		ok, err := l.slots.claim(i)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		e := entryOffset(i)
		n := load32(mem, e+AttachmentIncarnationOffset) + 1
		if n == 0 {
			n = 1
		}
		store32(mem, e+AttachmentPidOffset, uint32(os.Getpid()))
		store64(mem, e+AttachmentPidNamespaceOffset, ownPidNamespace())
		store32(mem, e+AttachmentIncarnationOffset, n)
		l.index, l.me = i, uint64(i)<<32|uint64(n)
		return nil
	}
	return newError("open", l.key, ErrAttachmentsFull, "all %d attachment entries are held by live processes", AttachmentCount)
}

// unclaim gives the entry back; the caller no longer holds the lock.
func (l *locker) unclaim() error {
	if l.index < 0 {
		return nil
	}
	i := l.index
	l.index, l.me = -1, 0
	return l.slots.release(i)
}

// alive reports whether the attachment in a non-zero lock word is still
// attached: the entry it names still has its incarnation, and the kernel
// says a live process holds it.
func (l *locker) alive(mem []byte, w uint64) bool {
	i := int(w >> 32)
	switch {
	case l.me != 0 && w == l.me:
		return true
	case i >= AttachmentCount:
		return false // the word names no entry
	case load32(mem, entryOffset(i)+AttachmentIncarnationOffset) != uint32(w):
		return false // the entry was released and claimed again
	case l.slots == nil:
		return true
	}
	return l.slots.held(i)
}

// Attachment is an entry of the attachment table held by a live process.
type Attachment struct {
	Index int
	// Pid is the claimer's pid in its own PID namespace; OtherNamespace says
	// that namespace is not this process's, where the pid means another process.
	Pid            int32
	OtherNamespace bool
}

func (a Attachment) String() string {
	if a.OtherNamespace {
		return fmt.Sprintf("pid %d in another PID namespace", a.Pid)
	}
	return fmt.Sprintf("pid %d", a.Pid)
}

func attachmentAt(mem []byte, i int) Attachment {
	e := entryOffset(i)
	ns := load64(mem, e+AttachmentPidNamespaceOffset)
	return Attachment{Index: i, Pid: int32(load32(mem, e+AttachmentPidOffset)),
		OtherNamespace: ns == 0 || ns != ownPidNamespace()}
}

// holder describes the attachment named by lock word w, for messages.
func holder(mem []byte, w uint64) (string, int32) {
	i := int(w >> 32)
	if i >= AttachmentCount {
		return fmt.Sprintf("attachment %d, which does not exist", i), 0
	}
	a := attachmentAt(mem, i)
	return fmt.Sprintf("attachment %d, %s", i, a), a.Pid
}

// WaitStrategy says how a lock waiter, and a change watcher, waits.
type WaitStrategy int

const (
	// SpinThenPark spins briefly, then sleeps on a futex in the segment until
	// woken; the default.
	SpinThenPark WaitStrategy = iota
	// Spin never sleeps: it spins, then yields the processor, and so answers
	// fastest at the price of a busy core while it waits.
	Spin
)

func (s WaitStrategy) String() string {
	if s == Spin {
		return "spin"
	}
	return "park"
}

const (
	spinFor    = 20 * time.Microsecond // busy waiting before yielding or parking
	checkEvery = time.Millisecond      // how often a waiter checks deadline and holder liveness
	parkFor    = 2 * time.Millisecond  // longest park, so liveness checks go on
)

// acquire takes the lock, waiting until deadline (zero: forever). It reports
// whether the lock was taken over from a dead holder.
func (l *locker) acquire(mem []byte, deadline time.Time, strategy WaitStrategy) (tookOver bool, err error) {
	me := l.me
	if me == 0 {
		return false, newError("lock", l.key, ErrInvalidArgument, "segment is attached read-only")
	}
	if cas64(mem, LockWordOffset, 0, me) {
		return false, nil
	}
	start := time.Now()
	nextCheck := start.Add(checkEvery)
	for rounds := 1; ; rounds++ {
		w := load64(mem, LockWordOffset)
		if w == 0 {
			if cas64(mem, LockWordOffset, 0, me) {
				add64(mem, ContendedCountOffset, 1)
				return false, nil
			}
			continue
		}
		if rounds%32 != 0 {
			continue // busy wait: the holder usually releases within a microsecond
		}
		now := time.Now()
		switch {
		case now.Sub(start) < spinFor:
			continue
		case strategy == Spin:
			runtime.Gosched()
		default:
			park(mem, deadline, now)
		}
		if now.Before(nextCheck) {
			continue
		}
		nextCheck = now.Add(checkEvery)
		if w != me && !l.alive(mem, w) {
			if cas64(mem, LockWordOffset, w, me) {
				add64(mem, TakeoverCountOffset, 1)
				add64(mem, ContendedCountOffset, 1)
				return true, nil
			}
			continue
		}
		if !deadline.IsZero() && now.After(deadline) {
			who, pid := holder(mem, w)
			return false, &Error{Op: "lock", Key: l.key, Err: ErrTimeout, Holder: pid,
				Detail: "held by " + who + ", which is alive"}
		}
	}
}

// park sleeps on the lock futex until a release wakes it, at most parkFor.
// Announcing the waiter before re-checking the lock word, against a releaser
// that frees the word before reading the waiter count, means that one of the
// two always sees the other: no wake-up is lost.
func park(mem []byte, deadline, now time.Time) {
	d := parkFor
	if !deadline.IsZero() && deadline.Sub(now) < d {
		d = max(deadline.Sub(now), time.Microsecond)
	}
	seq := load32(mem, LockFutexOffset)
	add32(mem, LockWaitersOffset, 1)
	if load64(mem, LockWordOffset) != 0 {
		futexSleep(mem, LockFutexOffset, seq, d)
	}
	add32(mem, LockWaitersOffset, -1)
}

// release frees the lock, waking one parked waiter if there is one; it fails
// with ErrLockLost if the word no longer holds our identity, which means the
// lock was taken from us.
func (l *locker) release(mem []byte) error {
	if !cas64(mem, LockWordOffset, l.me, 0) {
		return newError("unlock", l.key, ErrLockLost, "lock word 0x%016x is not ours (0x%016x)", load64(mem, LockWordOffset), l.me)
	}
	if load32(mem, LockWaitersOffset) != 0 {
		add32(mem, LockFutexOffset, 1)
		futexWakeUp(mem, LockFutexOffset, 1)
	}
	return nil
}

// stillHeld checks, before and after a commit writes its slot, that this
// attachment still holds the lock and that the generation is still g: a
// holder that lost the lock must not publish.
func (l *locker) stillHeld(mem []byte, op string, g uint64) error {
	if w := load64(mem, LockWordOffset); w != l.me {
		return newError(op, l.key, ErrLockLost, "lock word is 0x%016x, not this attachment's 0x%016x; nothing was committed", w, l.me)
	}
	if now := load64(mem, GenerationOffset); now != g {
		return newError(op, l.key, ErrLockLost, "generation moved from %d to %d under the lock holder; nothing was committed", g, now)
	}
	return nil
}
