package shmvar

import (
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

// The lock word at LockWordOffset is 0 when free. A holder stores its
// identity, pid<<32 | (process start time in clock ticks & 0xffffffff), by
// compare-and-set from 0. A waiter that finds the holder's process gone, a
// zombie, or a different process under the same pid (start time differs)
// takes the lock over with one compare-and-set on the exact word it saw. A
// live holder is never robbed. The Java twin is io.shmvar.SpinLock.

var (
	selfOnce     sync.Once
	selfIdentity uint64 // 0 if /proc/self/stat could not be read
)

// Identity returns this process's lock word, or 0 if /proc/self/stat, which
// it is made from, cannot be read.
func Identity() uint64 {
	selfOnce.Do(func() {
		pid := int32(os.Getpid())
		if st, ok := readProcStat(pid); ok && st != procUnknown {
			selfIdentity = lockWord(pid, st.startTime)
		}
	})
	return selfIdentity
}

func lockWord(pid int32, startTicks uint64) uint64 {
	return uint64(uint32(pid))<<32 | startTicks&0xffffffff
}

// HolderPid returns the pid recorded in a lock word.
func HolderPid(word uint64) int32 { return int32(word >> 32) }

// HolderAlive reports whether the process recorded in a non-zero lock word
// still runs: same pid, same start time, and not a zombie.
func HolderAlive(word uint64) bool {
	if word == Identity() {
		return true
	}
	st, ok := readProcStat(HolderPid(word))
	if !ok || st.state == 'Z' || st.state == 'X' {
		return false
	}
	if st == procUnknown {
		return true // never rob a holder we cannot see
	}
	return st.startTime&0xffffffff == word&0xffffffff
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
func acquire(key int32, mem []byte, deadline time.Time, strategy WaitStrategy) (tookOver bool, err error) {
	me := Identity()
	if me == 0 {
		return false, newError("lock", key, ErrInvalidArgument, "cannot read /proc/self/stat, which the lock records")
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
		if w != me && !HolderAlive(w) {
			if cas64(mem, LockWordOffset, w, me) {
				add64(mem, TakeoverCountOffset, 1)
				add64(mem, ContendedCountOffset, 1)
				return true, nil
			}
			continue
		}
		if !deadline.IsZero() && now.After(deadline) {
			pid := HolderPid(w)
			return false, &Error{Op: "lock", Key: key, Err: ErrTimeout, Holder: pid,
				Detail: "held by pid " + strconv.Itoa(int(pid)) + ", which is alive"}
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
// if the word no longer holds our identity, which means the lock was taken
// from us.
func release(key int32, mem []byte) error {
	if !cas64(mem, LockWordOffset, Identity(), 0) {
		return newError("unlock", key, ErrCorrupt, "lock word 0x%016x is not ours (0x%016x)", load64(mem, LockWordOffset), Identity())
	}
	if load32(mem, LockWaitersOffset) != 0 {
		add32(mem, LockFutexOffset, 1)
		futexWakeUp(mem, LockFutexOffset, 1)
	}
	return nil
}
