package shmvar

import (
	"runtime"
	"time"

	"github.com/shmvar/shmvar/go-peer/shmvarpb"
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

// locker is one attachment's side of the lock.
type locker struct {
	key    uint32
	keeper keeper // nil when liveness cannot be asked (a read-only attachment without the semaphore set)
	index  int    // the claimed entry, or -1 (read-only attachments claim none)
	me     uint64 // the lock word while this attachment holds it; 0 if it claimed no entry
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

// The protocol's timings, from enum ProtocolTiming in
// proto/shmvar/v1/protocol.proto (PROTOCOL.md, "The lock", "Change
// notification", "Reading" and "Opening"). The Java twins are SpinLock's,
// Waiting's and SharedVariable's *_NANOS constants.
const (
	us = time.Microsecond // the unit of ProtocolTiming

	spinFor         = time.Duration(shmvarpb.ProtocolTiming_SPIN_MICROS) * us              // busy waiting before yielding or parking
	checkEvery      = time.Duration(shmvarpb.ProtocolTiming_CHECK_EVERY_MICROS) * us       // how often a waiter checks deadline and holder liveness
	parkFor         = time.Duration(shmvarpb.ProtocolTiming_LOCK_PARK_MAX_MICROS) * us     // longest park, so liveness checks go on
	changeParkMax   = time.Duration(shmvarpb.ProtocolTiming_CHANGE_PARK_MAX_MICROS) * us   // longest sleep of a change watcher
	readOnlyTurn    = time.Duration(shmvarpb.ProtocolTiming_READ_ONLY_TURN_MICROS) * us    // the same, attached read-only
	defaultInitWait = time.Duration(shmvarpb.ProtocolTiming_INIT_WAIT_DEFAULT_MICROS) * us // Options.InitWait 0
)

// acquire takes the lock, waiting until deadline (zero: forever) or until
// stop, asked after every park or yield, returns an error (the variable was
// closed, the caller's context is done). It returns how long it waited: 0
// when the lock was free.
func (l *locker) acquire(mem []byte, deadline time.Time, strategy WaitStrategy, stop func() error) (waited time.Duration, err error) {
	me := l.me
	if me == 0 {
		return 0, newError("lock", l.key, ErrInvalidArgument, "segment is attached read-only")
	}
	if cas64(mem, LockWordOffset, 0, me) {
		return 0, nil
	}
	start := time.Now()
	nextCheck := start.Add(checkEvery)
	for rounds := 1; ; rounds++ {
		w := load64(mem, LockWordOffset)
		if w == 0 {
			if cas64(mem, LockWordOffset, 0, me) {
				add64(mem, ContendedCountOffset, 1)
				return since(start), nil
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
			// Parked until a release wakes it, at most parkFor, so that
			// liveness checks go on.
			d := parkFor
			if !deadline.IsZero() && deadline.Sub(now) < d {
				d = max(deadline.Sub(now), time.Microsecond)
			}
			lockParker().park(mem, d, func() bool { return load64(mem, LockWordOffset) != 0 })
		}
		if err := stop(); err != nil {
			return since(start), err
		}
		if now.Before(nextCheck) {
			continue
		}
		nextCheck = now.Add(checkEvery)
		if w != me && !l.alive(mem, w) {
			if cas64(mem, LockWordOffset, w, me) {
				add64(mem, TakeoverCountOffset, 1)
				add64(mem, ContendedCountOffset, 1)
				return since(start), nil
			}
			continue
		}
		if !deadline.IsZero() && now.After(deadline) {
			who, pid := holder(mem, w)
			return since(start), &Error{Op: "lock", Key: l.key, Err: ErrTimeout, Holder: pid,
				Detail: "held by " + who + ", which is alive"}
		}
	}
}

// since is how long ago start was, at least 1ns: a wait that happened is
// never counted as none.
func since(start time.Time) time.Duration { return max(time.Since(start), 1) }

// release frees the lock, waking one parked waiter if there is one; it fails
// with ErrLockLost if the word no longer holds our identity, which means the
// lock was taken from us.
func (l *locker) release(mem []byte) error {
	if !cas64(mem, LockWordOffset, l.me, 0) {
		return newError("unlock", l.key, ErrLockLost, "lock word 0x%016x is not ours (0x%016x)", load64(mem, LockWordOffset), l.me)
	}
	lockParker().unpark(mem, 1)
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
