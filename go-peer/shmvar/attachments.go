package shmvar

import (
	"fmt"
	"os"
)

// The attachment table (PROTOCOL.md, "Attachments"): each writing attachment
// claims an entry whose liveness the kernel keeps, and the lock word names
// the entry, so that a waiter judges a holder by what the kernel says of it,
// never by a pid. The Java twin is io.shmvar.Attachments.

// keeper is how a backing keeps, in the kernel, which attachment entries
// belong to live processes.
type keeper interface {
	// claim takes entry i for this attachment; ok is false when a live
	// attachment holds it.
	claim(i int) (ok bool, err error)
	// release gives entry i back.
	release(i int) error
	// held reports whether a live attachment holds entry i. When the kernel
	// cannot say, it answers true: a peer never robs a holder it cannot see.
	held(i int) bool
}

func entryOffset(i int) int { return AttachmentTableOffset + i*AttachmentLength }

// claim takes the first free entry of the attachment table and records this
// process in it, for people; it returns the attachment's identity.
func (l *locker) claim(mem []byte) error {
	for i := 0; i < AttachmentCount; i++ {
		ok, err := l.keeper.claim(i)
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
	return l.keeper.release(i)
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
	case l.keeper == nil:
		return true
	}
	return l.keeper.held(i)
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
