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
	selfIdentity uint64
)

// Identity returns this process's lock word.
func Identity() uint64 {
	selfOnce.Do(func() {
		pid := int32(os.Getpid())
		st, _ := readProcStat(pid)
		selfIdentity = lockWord(pid, st.startTime)
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
	return st.startTime&0xffffffff == word&0xffffffff
}

const (
	spinRounds   = 128  // busy loads before yielding
	yieldRounds  = 2048 // yields before sleeping
	maxBackoff   = time.Millisecond
	checkEvery   = time.Millisecond // how often a waiter checks deadline and holder liveness
)

// acquire takes the lock, waiting until deadline (zero: forever). It reports
// whether the lock was taken over from a dead holder.
func acquire(key int32, mem []byte, deadline time.Time) (tookOver bool, err error) {
	me := Identity()
	if cas64(mem, LockWordOffset, 0, me) {
		return false, nil
	}
	var (
		rounds    int
		backoff   = time.Microsecond
		nextCheck = time.Now().Add(checkEvery)
		lastGen   = load64(mem, GenerationOffset)
	)
	for {
		w := load64(mem, LockWordOffset)
		if w == 0 {
			if cas64(mem, LockWordOffset, 0, me) {
				add64(mem, ContendedCountOffset, 1)
				return false, nil
			}
			continue
		}
		rounds++
		switch {
		case rounds < spinRounds:
			// busy wait: the holder usually releases within a microsecond
		case rounds < spinRounds+yieldRounds:
			runtime.Gosched()
		default:
			time.Sleep(backoff)
			if backoff < maxBackoff {
				backoff *= 2
			}
		}
		if rounds%64 != 0 && rounds < spinRounds+yieldRounds {
			continue // reading the clock costs more than a spin round
		}
		now := time.Now()
		if now.Before(nextCheck) {
			continue
		}
		nextCheck = now.Add(checkEvery)
		// While commits go on, the lock is cycling, not stuck: stay in the
		// yield phase rather than sleep past every moment it is free.
		if g := load64(mem, GenerationOffset); g != lastGen {
			lastGen = g
			rounds = min(rounds, spinRounds)
			backoff = time.Microsecond
		}
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

// release frees the lock; it fails if the word no longer holds our identity,
// which means the lock was taken from us.
func release(key int32, mem []byte) error {
	if !cas64(mem, LockWordOffset, Identity(), 0) {
		return newError("unlock", key, ErrCorrupt, "lock word 0x%016x is not ours (0x%016x)", load64(mem, LockWordOffset), Identity())
	}
	return nil
}
