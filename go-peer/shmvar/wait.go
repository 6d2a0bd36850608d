package shmvar

import (
	"context"
	"math"
	"runtime"
	"sync"
	"time"
)

// Waiting, cancelling and closing. Close wakes every goroutine of this Var
// that waits for the lock or for a change, and they fail at once with
// ErrClosed; a context cancels a wait the same way with its own error. Many
// goroutines waiting for a change share one sleep in the kernel: one of them
// sleeps on the futex, the others wait in Go for it to wake, so that they
// hold no thread.

// closedBit marks users once the variable is closing.
const closedBit = 1 << 62

// closer is what Close tells waiters and what it waits for.
type closer struct {
	closed    chan struct{} // closed when Close or Remove begins
	drained   chan struct{} // closed when the last operation in flight ends after that
	drainOnce *sync.Once
}

func newCloser() closer {
	return closer{closed: make(chan struct{}), drained: make(chan struct{}), drainOnce: new(sync.Once)}
}

// closing marks the variable closed, wakes its waiters and waits, without
// spinning, for operations in flight to end; it reports false if the
// variable was closed already.
func (v *Var[T]) closing() bool {
	if v.users.Add(closedBit)&closedBit != closedBit {
		v.users.Add(-closedBit) // someone closed it first
		return false
	}
	close(v.closer.closed)
	// Waiters of this process re-check at once and see the variable closed;
	// those of other processes wake for nothing and sleep again.
	v.wake(v.mem, LockFutexOffset)
	v.wake(v.mem, GenerationFutexOffset)
	if v.users.Load() != closedBit {
		<-v.closer.drained
	}
	return true
}

// wake wakes every sleeper on the futex word at off, after moving the word
// so that one about to sleep on its old value does not sleep through the
// wake. A read-only attachment cannot move it (its sleepers sleep in short
// turns); a fault while moving it (a truncated file) leaves it.
func (v *Var[T]) wake(mem []byte, off int) {
	if !v.readOnly {
		func() {
			var ignored error
			if v.faults {
				defer v.recoverFault("wake", v.m.guard(), &ignored)
			}
			add32(mem, off, 1)
		}()
	}
	futexWakeUp(mem, off, math.MaxInt32)
}

// use counts an operation in and returns the mapped memory; callers call
// done. It is cheaper than a lock on the hot path and still keeps Close from
// unmapping memory that an operation is reading.
func (v *Var[T]) use(op string) ([]byte, error) {
	if v.users.Add(1)&closedBit != 0 {
		v.done()
		return nil, newError(op, v.key, ErrClosed, "")
	}
	return v.mem, nil
}

// done counts an operation out; the last one to end after Close began lets
// Close go on.
func (v *Var[T]) done() {
	if v.users.Add(-1) == closedBit {
		v.closer.drainOnce.Do(func() { close(v.closer.drained) })
	}
}

// stopper returns what a wait asks between its sleeps: whether the variable
// is closing, or ctx (nil: none) is done.
func (v *Var[T]) stopper(ctx context.Context, op string) func() error {
	return func() error {
		if v.users.Load()&closedBit != 0 {
			return newError(op, v.key, ErrClosed, "closed while waiting")
		}
		// A file that shrank under the wait is refused before it faults.
		if err := v.m.stillMapped(op); err != nil {
			return err
		}
		if ctx != nil {
			if err := ctx.Err(); err != nil {
				return &Error{Op: op, Key: v.key, Err: err}
			}
		}
		return nil
	}
}

// UpdateContext is Update that gives up waiting for the lock when ctx is
// done, with an error that wraps ctx.Err() (errors.Is(err, context.Canceled)).
func (v *Var[T]) UpdateContext(ctx context.Context, fn func(current T) (T, error)) (T, error) {
	value, err := v.update(ctx, deadlineOf(ctx), "update", copied, fn, nil)
	return value, v.tag(err)
}

// MutateContext is Mutate that gives up waiting for the lock when ctx is done.
func (v *Var[T]) MutateContext(ctx context.Context, fn func(m T) error) error {
	_, err := v.update(ctx, deadlineOf(ctx), "update", inPlace, nil, fn)
	return v.tag(err)
}

// SetContext is Set that gives up waiting for the lock when ctx is done.
func (v *Var[T]) SetContext(ctx context.Context, value T) error {
	_, err := v.update(ctx, deadlineOf(ctx), "set", replace, func(T) (T, error) { return value, nil }, nil)
	return v.tag(err)
}

// deadlineOf is ctx's deadline, or zero; the wait also stops when ctx is
// done, and then reports ctx's error rather than ErrTimeout.
func deadlineOf(ctx context.Context) time.Time {
	d, ok := ctx.Deadline()
	if !ok {
		return time.Time{}
	}
	return d.Add(time.Millisecond) // let ctx.Err() speak first
}

// AwaitChange waits until the generation moves past after, or timeout
// passes, and returns the generation it saw; ErrTimeout if it did not move.
// With SpinThenPark a watcher sleeps on a futex that every commit wakes.
func (v *Var[T]) AwaitChange(after uint64, timeout time.Duration) (_ uint64, err error) {
	if v.faults {
		defer v.recoverFault("await", v.m.guard(), &err)
	}
	g, err := v.awaitChange(nil, after, time.Now().Add(timeout), timeout)
	return g, v.tag(err)
}

// AwaitChangeContext waits until the generation moves past after, or ctx is
// done, and returns the generation it saw; the error wraps ctx.Err().
func (v *Var[T]) AwaitChangeContext(ctx context.Context, after uint64) (_ uint64, err error) {
	if v.faults {
		defer v.recoverFault("await", v.m.guard(), &err)
	}
	deadline := time.Now().Add(365 * 24 * time.Hour)
	if d, ok := ctx.Deadline(); ok {
		deadline = d.Add(time.Millisecond) // let ctx.Err() speak first
	}
	g, err := v.awaitChange(ctx, after, deadline, time.Until(deadline))
	return g, v.tag(err)
}

// parker is a futex word of the segment and the count of its sleepers: the
// one way a lock waiter and a change watcher sleep in the kernel and are
// woken (PROTOCOL.md, "The lock" and "Change notification"). A sleeper reads
// the word, announces itself, re-checks its condition and sleeps on the word
// it read; a waker changes the state, then, if anyone is announced, moves the
// word and wakes. One of the two always sees the other: no wake-up is lost.
type parker struct{ futex, waiters int }

// lockParker is where lock waiters sleep until a release; changeParker is
// where change watchers sleep until a commit. (Functions, not variables, so
// that the offsets are constants where they are used.)
func lockParker() parker   { return parker{LockFutexOffset, LockWaitersOffset} }
func changeParker() parker { return parker{GenerationFutexOffset, GenerationWaitersOffset} }

// park sleeps on p for at most d unless blocked, asked after announcing
// this sleeper, says the wait is over.
func (p parker) park(mem []byte, d time.Duration, blocked func() bool) {
	seq := load32(mem, p.futex)
	add32(mem, p.waiters, 1)
	if blocked() {
		futexSleep(mem, p.futex, seq, d)
	}
	add32(mem, p.waiters, -1)
}

// unpark wakes up to n sleepers on p, if any is announced; it costs one
// load when none is.
func (p parker) unpark(mem []byte, n int) {
	if load32(mem, p.waiters) != 0 {
		p.wake(mem, n)
	}
}

func (p parker) wake(mem []byte, n int) {
	add32(mem, p.futex, 1)
	futexWakeUp(mem, p.futex, n)
}

// isDone reports whether ch (nil: never) is closed.
func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// sleeper lets one goroutine of a Var sleep in the kernel while the others
// wait for it in Go.
type sleeper struct {
	mu    sync.Mutex
	busy  bool          // a goroutine sleeps in the kernel
	woken chan struct{} // closed when its sleep ends
}

func (v *Var[T]) awaitChange(ctx context.Context, after uint64, deadline time.Time, timeout time.Duration) (uint64, error) {
	mem, err := v.use("await")
	if err != nil {
		return 0, err
	}
	defer v.done()
	var cancelled <-chan struct{}
	if ctx != nil && ctx.Done() != nil {
		cancelled = ctx.Done()
		// Wake the sleeper, which cannot select on ctx, when ctx is done.
		stop := context.AfterFunc(ctx, func() {
			if m, err := v.use("await"); err == nil {
				v.wake(m, GenerationFutexOffset)
				v.done()
			}
		})
		defer stop()
	}
	stop := v.stopper(ctx, "await")
	start := time.Now()
	for rounds := 1; ; rounds++ {
		if g := load64(mem, GenerationOffset); g != after {
			return g, nil
		}
		if rounds%32 != 0 {
			continue
		}
		now := time.Now()
		if err := stop(); err != nil {
			return after, err
		}
		switch {
		case now.After(deadline):
			return after, newError("await", v.key, ErrTimeout, "generation still %d after %v", after, timeout)
		case now.Sub(start) < spinFor:
		case v.wait == Spin:
			runtime.Gosched()
		default:
			v.sleep(mem, after, min(deadline.Sub(now), changeParkMax), cancelled)
			// Between turns, a file that shrank is refused before it faults.
			if err := v.m.stillMapped("await"); err != nil {
				return after, err
			}
		}
	}
}

// sleep waits for a commit, at most d: in the kernel if no other goroutine
// of this Var does, else for that goroutine to wake.
func (v *Var[T]) sleep(mem []byte, after uint64, d time.Duration, cancelled <-chan struct{}) {
	s := &v.sleeper
	s.mu.Lock()
	if s.busy {
		woken := s.woken
		s.mu.Unlock()
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-woken:
		case <-cancelled:
		case <-v.closer.closed:
		case <-t.C:
		}
		return
	}
	s.busy, s.woken = true, make(chan struct{})
	s.mu.Unlock()
	defer func() { // also after a fault: the followers must not wait for a sleeper that is gone
		s.mu.Lock()
		s.busy = false
		close(s.woken)
		s.mu.Unlock()
	}()
	if v.readOnly {
		// A read-only attachment cannot announce itself to committers, so
		// it sleeps on the futex in short turns instead of until woken.
		futexSleep(mem, GenerationFutexOffset, load32(mem, GenerationFutexOffset), min(d, readOnlyTurn))
	} else {
		// Close and a cancelled context move the futex word after they mark
		// their state: with the word read first (park), this either sees
		// their mark or sleeps on a word that has moved or will be woken.
		changeParker().park(mem, d, func() bool {
			return load64(mem, GenerationOffset) == after && v.users.Load()&closedBit == 0 && !isDone(cancelled)
		})
	}
}
