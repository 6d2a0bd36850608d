package shmvar

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shmvar/shmvar/go-peer/shmvarpb"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Var is a protobuf value of type T shared through a System V segment. Its
// methods are safe for concurrent use by several goroutines. The Java twin
// is io.shmvar.SharedVariable.
type Var[T proto.Message] struct {
	key uint32  // the System V segment's key, which errors name; 0 for other backings
	m   mapping // where the memory comes from: a segment, a file (mapping.go)
	// faults: the mapping can fault (a file that shrinks), so operations
	// guard their accesses; decided once, so that the others pay nothing.
	faults bool
	lk     locker // this attachment's entry and lock identity
	geo    geometry
	desc   *shmvarpb.SegmentDescriptor
	codec
	readOnly bool
	wait     WaitStrategy

	users   atomic.Int64 // operations in flight, plus closedBit once closing
	mem     []byte       // unmapped once closing has waited for users
	closer  closer       // what Close tells waiters and waits for (wait.go)
	sleeper sleeper      // the one goroutine that sleeps in the kernel for AwaitChange

	cache valueCache // the last value committed or decoded (cache.go)

	// This Var's share of Stats: time spent waiting for the lock, and
	// commits made without the cache (another goroutine had it; those made
	// with it are cache.commits, which costs no atomic operation), and
	// cache.commits as Stats last read it.
	lockWait      atomic.Int64
	commits       atomic.Uint64
	cachedCommits atomic.Uint64
}

// Create makes a new segment under key holding the empty value of T. It
// fails with unix.EEXIST if the key is taken.
func Create[T proto.Message](key uint32, opts Options) (*Var[T], error) {
	var zero T
	return create[T](key, zero.ProtoReflect().Type(), opts)
}

// CreateOf is Create for a type chosen at run time, such as one found by
// name in protoregistry.GlobalTypes.
func CreateOf(key uint32, mt protoreflect.MessageType, opts Options) (*Var[proto.Message], error) {
	return create[proto.Message](key, mt, opts)
}

// Open attaches to the segment under key, validates it and checks that it
// holds values of type T.
func Open[T proto.Message](key uint32, opts Options) (*Var[T], error) {
	return typed(open[T](key, opts))
}

// OpenOrCreate attaches to the segment under key if there is one holding T,
// as Open does, or else creates it holding the empty value of T, as Create
// does; created says which. Concurrent callers, in any processes, agree: one
// creates and the others open what it created (Create is exclusive; Open
// waits up to InitWait for a creator that has not finished). If the segment
// vanishes between the two, it tries again, a few times. It refuses
// ReadOnly, since it may have to create. The Java twin is
// SharedVariable.openOrCreate.
func OpenOrCreate[T proto.Message](key uint32, opts Options) (v *Var[T], created bool, err error) {
	return openOrCreate(opts, func() (*Var[T], error) { return Create[T](key, opts) },
		func() (*Var[T], error) { return Open[T](key, opts) },
		func(format string) error { return newError("open", key, ErrInvalidArgument, format, "OpenOrCreate") })
}

// openOrCreateAttempts bounds how often OpenOrCreate goes round when what
// it could not create was gone by the time it opened.
const openOrCreateAttempts = 8

// openOrCreate is OpenOrCreate and OpenOrCreateFile: create, and on EEXIST
// open; retried while the open finds nothing (the segment or file was
// removed in between).
func openOrCreate[T proto.Message](opts Options, create, open func() (*Var[T], error), invalid func(string) error) (*Var[T], bool, error) {
	if opts.ReadOnly {
		return nil, false, invalid("%s may create, which a ReadOnly attachment cannot")
	}
	var err error
	for attempt := 0; attempt < openOrCreateAttempts; attempt++ {
		v, cerr := create()
		if cerr == nil {
			return v, true, nil
		}
		if !errors.Is(cerr, syscall.EEXIST) {
			return nil, false, cerr
		}
		v, err = open()
		if err == nil {
			return v, false, nil
		}
		if !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.EIDRM) && !errors.Is(err, syscall.EINVAL) {
			return nil, false, err
		}
		// Gone between the two, or (a leftover semaphore set in use) never
		// there to open: the creation's error says more.
		err = cerr
	}
	return nil, false, err
}

// typed switches a freshly opened v, which newVar checked holds T, from the
// stored schema's dynamic type to T's compiled one.
func typed[T proto.Message](v *Var[T], err error) (*Var[T], error) {
	if err != nil {
		return nil, err
	}
	var zero T
	v.codec = codecOf[T](zero.ProtoReflect().Type())
	return v, nil
}

// OpenAny attaches to the segment under key and decodes values with the
// schema stored in it, as dynamicpb messages.
func OpenAny(key uint32, opts Options) (*Var[proto.Message], error) {
	return open[proto.Message](key, opts)
}

// wrap makes a Var over m, whose memory holds a segment of geometry geo and
// descriptor desc, attached for writing; errors name key. Its locker has no
// keeper yet: the caller sets m's once m knows it, and claims an entry.
func wrap[T proto.Message](m mapping, key uint32, geo geometry, desc *shmvarpb.SegmentDescriptor, c codec, opts Options) *Var[T] {
	_, faults := m.(*fileMapping)
	return &Var[T]{key: key, m: m, faults: faults, geo: geo, desc: desc, codec: c, mem: m.memory(), wait: opts.Wait, lk: locker{key: key, index: -1}, closer: newCloser()}
}

// newVar validates m's memory, an attached segment or any image of one, and
// wraps it.
func newVar[T proto.Message](m mapping, key uint32, opts Options) (*Var[T], error) {
	mem := m.memory()
	// The lines before the attachment table are enough to tell the version:
	// a version-1 segment may be smaller than a version-2 header.
	if err := checkSegmentSize(key, uint64(len(mem))); err != nil {
		return nil, err
	}
	version, err := checkVersion(key, mem, initWait(opts))
	if err != nil {
		return nil, err
	}
	geo, err := readGeometry(key, mem)
	if err != nil {
		return nil, err
	}
	desc, mt, err := readDescriptor(key, mem, geo, version)
	if err != nil {
		return nil, err
	}
	// A typed open checks the type here, before it claims an entry or marks
	// the segment for removal: a refused open changes nothing.
	var zero T
	if reflect.TypeOf(zero) != nil {
		if want := zero.ProtoReflect().Descriptor().FullName(); desc.GetMessageType() != string(want) {
			return nil, newError("open", key, ErrTypeMismatch, "segment holds %s, asked for %s", desc.GetMessageType(), want)
		}
	}
	v := wrap[T](m, key, geo, desc, codecOf[proto.Message](mt), opts)
	v.readOnly = opts.ReadOnly
	return v, nil
}

// Key returns the segment's key.
func (v *Var[T]) Key() uint32 { return v.key }

// Descriptor returns the descriptor stored in the segment at creation.
func (v *Var[T]) Descriptor() *shmvarpb.SegmentDescriptor { return v.desc }

// MessageType returns the type values are decoded as.
func (v *Var[T]) MessageType() protoreflect.MessageType { return v.mtype }

// Capacity returns the most bytes an encoded value may take.
func (v *Var[T]) Capacity() int { return int(v.geo.capacity) }

// Generation returns the number of values committed since creation.
func (v *Var[T]) Generation() (_ uint64, err error) {
	mem, err := v.use("generation")
	if err != nil {
		return 0, err
	}
	defer v.done()
	if v.faults {
		defer v.recoverFault("generation", v.m.guard(), &err)
	}
	return load64(mem, GenerationOffset), nil
}

// Get returns a copy of the last committed value. It takes no lock.
func (v *Var[T]) Get() (T, error) {
	value, err := v.get()
	return value, v.tag(err)
}

// tag names the file of a file-backed variable in its errors.
func (v *Var[T]) tag(err error) error {
	if e, ok := err.(*Error); ok {
		v.m.name(e)
	}
	return err
}

// GetEncoded returns the last committed value exactly as it is encoded in
// the segment, after the same checks as Get (CRC32C, and that it decodes).
func (v *Var[T]) GetEncoded() (_ []byte, err error) {
	mem, err := v.use("get")
	if err != nil {
		return nil, v.tag(err)
	}
	defer v.done()
	if v.faults {
		defer v.recoverFault("get", v.m.guard(), &err)
	}
	data, _, err := v.read(mem, "get", nil)
	if err == nil {
		_, err = v.decode(data, "get")
	}
	return data, v.tag(err)
}

func (v *Var[T]) get() (_ T, err error) {
	var zero T
	mem, err := v.use("get")
	if err != nil {
		return zero, err
	}
	defer v.done()
	if v.faults {
		defer v.recoverFault("get", v.m.guard(), &err)
	}
	if !v.cache.mu.TryLock() { // another goroutine uses the cache: go the long way
		value, _, err := v.load(mem, "get", false)
		return value, err
	}
	defer v.cache.mu.Unlock()
	g := load64(mem, GenerationOffset)
	value, hit, keep := v.lookup(g, false)
	if hit {
		return value, nil
	}
	value, g2, err := v.load(mem, "get", true)
	if err == nil {
		v.remember(g2, value, keep && g2 == g, false)
	}
	return value, err
}

// Set commits value, waiting for the lock as long as it takes.
func (v *Var[T]) Set(value T) error {
	_, err := v.update(nil, time.Time{}, "set", replace, func(T) (T, error) { return value, nil }, nil)
	return v.tag(err)
}

// Update commits fn(current) under the lock and returns it. fn gets its own
// copy of the current value and may modify and return it. When fn returns an
// error or panics, nothing is committed and the lock is released.
func (v *Var[T]) Update(fn func(current T) (T, error)) (T, error) {
	value, err := v.update(nil, time.Time{}, "update", copied, fn, nil)
	return value, v.tag(err)
}

// TryUpdate is Update that gives up with ErrTimeout if the lock is not free
// within timeout; the error names the holder's pid.
func (v *Var[T]) TryUpdate(timeout time.Duration, fn func(current T) (T, error)) (T, error) {
	value, err := v.update(nil, time.Now().Add(timeout), "update", copied, fn, nil)
	return value, v.tag(err)
}

// Mutate commits the changes fn makes to the current value, under the lock,
// and allocates nothing: m is the Var's own message, kept from one call to
// the next (and served, as a copy, by Get), so fn must not keep m or
// anything inside it past its return; copy with proto.Clone what it needs.
// When fn returns an error or panics, nothing is committed. Update is the
// variant that hands out values the caller owns. While another goroutine
// uses the Var's message, Mutate works on a fresh copy, like Update.
func (v *Var[T]) Mutate(fn func(m T) error) error {
	_, err := v.update(nil, time.Time{}, "update", inPlace, nil, fn)
	return v.tag(err)
}

// TryMutate is Mutate that gives up with ErrTimeout if the lock is not free
// within timeout; the error names the holder's pid.
func (v *Var[T]) TryMutate(timeout time.Duration, fn func(m T) error) error {
	_, err := v.update(nil, time.Now().Add(timeout), "update", inPlace, nil, fn)
	return v.tag(err)
}

// Stats are the counters of a variable, for metrics (shmvarprom, in the
// metrics module, exports them to Prometheus). Generation,
// ContendedAcquisitions and Takeovers are the segment's, counted by every
// attachment of every process; Commits and LockWait are this Var's. The
// Java twin is SharedVariable.stats().
type Stats struct {
	// Generation is the number of values committed since creation.
	Generation uint64
	// Commits is the number of values this Var committed.
	Commits uint64
	// ContendedAcquisitions is the number of lock acquisitions that had to wait.
	ContendedAcquisitions uint64
	// Takeovers is the number of lock acquisitions taken over from a dead holder.
	Takeovers uint64
	// LockWait is how long this Var's updates waited for the lock, in all.
	LockWait time.Duration
}

// Stats returns the variable's counters. It takes no lock and does not
// fail: once the Var is closed, or when the segment cannot be read (a file
// truncated under it), the segment's counters read 0.
func (v *Var[T]) Stats() (s Stats) {
	s = Stats{Commits: v.commits.Load() + v.readCachedCommits(), LockWait: time.Duration(v.lockWait.Load())}
	mem, err := v.use("stats")
	if err != nil {
		return s
	}
	defer v.done()
	if v.faults {
		var ignored error
		defer v.recoverFault("stats", v.m.guard(), &ignored)
	}
	g, contended, takeovers := load64(mem, GenerationOffset), load64(mem, ContendedCountOffset), load64(mem, TakeoverCountOffset)
	s.Generation, s.ContendedAcquisitions, s.Takeovers = g, contended, takeovers
	return s
}

// readCachedCommits returns cache.commits, read under the cache's mutex. An
// update holds that mutex for its whole length, lock wait included, so when
// it stays busy this returns what the last call read: never less.
func (v *Var[T]) readCachedCommits() uint64 {
	n := uint64(0)
	for i := 0; i < 1000; i++ {
		if v.cache.mu.TryLock() {
			n = v.cache.commits
			v.cache.mu.Unlock()
			break
		}
		runtime.Gosched()
	}
	for {
		last := v.cachedCommits.Load()
		if n <= last {
			return last
		}
		if v.cachedCommits.CompareAndSwap(last, n) {
			return n
		}
	}
}

// LockState describes the lock word and its counters.
type LockState struct {
	Word uint64
	// Holder is the attachment named by a non-zero Word, and HolderAlive
	// what the kernel says of it (true when it cannot say).
	Holder      Attachment
	HolderAlive bool
	// LivenessKnown is false when this attachment has no kernel object to
	// ask (a read-only attachment that found no semaphore set): HolderAlive
	// is then true, as for the lock, but means nothing.
	LivenessKnown bool
	Contended     uint64
	Takeovers     uint64
}

// HolderString describes the holder for people: "attachment 3, pid 1234",
// or "attachment 3, pid 1 in another PID namespace".
func (s LockState) HolderString() string {
	if s.Holder.Index >= AttachmentCount {
		return fmt.Sprintf("attachment %d, which does not exist", s.Holder.Index)
	}
	return fmt.Sprintf("attachment %d, %s", s.Holder.Index, s.Holder)
}

// HolderLiveness is "alive", "dead" or "liveness unknown", for people.
func (s LockState) HolderLiveness() string {
	switch {
	case !s.LivenessKnown:
		return "liveness unknown"
	case s.HolderAlive:
		return "alive"
	}
	return "dead"
}

// Lock returns a snapshot of the lock word and counters.
func (v *Var[T]) Lock() (_ LockState, err error) {
	mem, err := v.use("inspect")
	if err != nil {
		return LockState{}, err
	}
	defer v.done()
	if v.faults {
		defer v.recoverFault("inspect", v.m.guard(), &err)
	}
	s := LockState{Word: load64(mem, LockWordOffset), Contended: load64(mem, ContendedCountOffset), Takeovers: load64(mem, TakeoverCountOffset),
		LivenessKnown: v.lk.keeper != nil}
	if s.Word != 0 {
		if i := int(s.Word >> 32); i < AttachmentCount {
			s.Holder = attachmentAt(mem, i)
		} else {
			s.Holder = Attachment{Index: i, OtherNamespace: true}
		}
		s.HolderAlive = v.lk.alive(mem, s.Word)
	}
	return s, nil
}

// Attachments lists the entries of the attachment table held by live
// writing attachments (this one included), in table order. With no kernel
// object to ask (see LockState.LivenessKnown), it lists every entry ever
// claimed.
func (v *Var[T]) Attachments() (_ []Attachment, err error) {
	mem, err := v.use("inspect")
	if err != nil {
		return nil, err
	}
	defer v.done()
	if v.faults {
		defer v.recoverFault("inspect", v.m.guard(), &err)
	}
	var live []Attachment
	for i := 0; i < AttachmentCount; i++ {
		if load32(mem, entryOffset(i)+AttachmentIncarnationOffset) == 0 {
			continue // never claimed
		}
		if i == v.lk.index || v.lk.keeper == nil || v.lk.keeper.held(i) {
			live = append(live, attachmentAt(mem, i))
		}
	}
	return live, nil
}

// Identity returns this attachment's lock word: what the lock word holds
// while it holds the lock. It is 0 for a read-only attachment.
func (v *Var[T]) Identity() uint64 { return v.lk.me }

// Stat asks the kernel about the segment or file.
func (v *Var[T]) Stat() (SegmentInfo, error) { return v.m.stat() }

// Path returns the mapped file of a file-backed variable, or "".
func (v *Var[T]) Path() string { return v.m.path() }

// Sync flushes a file-backed variable to its file (msync); after it returns,
// the last committed value survives a crash of the machine. It does nothing
// for System V segments, which live in memory only.
func (v *Var[T]) Sync() error {
	if _, err := v.use("sync"); err != nil {
		return v.tag(err)
	}
	defer v.done()
	return v.m.sync()
}

// detach gives back this attachment's entry and releases the memory
// (mapping.detach).
func (v *Var[T]) detach() error {
	err := v.lk.unclaim()
	if derr := v.m.detach(); err == nil {
		err = derr
	}
	return err
}

// Close detaches the segment, after operations in flight end; it stays in
// the system for other processes.
func (v *Var[T]) Close() error {
	if !v.closing() {
		return nil
	}
	return v.detach()
}

// Remove marks the segment for removal, which the kernel carries out at the
// last detach, removes its semaphore set, and detaches it (for a file: unlinks
// and unmaps it).
func (v *Var[T]) Remove() error {
	if !v.closing() {
		return v.tag(newError("remove", v.key, ErrClosed, ""))
	}
	// The entry goes back first: removing a segment removes the semaphores
	// that keep it.
	uerr := v.lk.unclaim()
	err := v.m.remove()
	if err == nil {
		err = uerr
	}
	if derr := v.detach(); err == nil {
		err = derr
	}
	return err
}

// updateKind is what a locked update hands its function and what the cache
// keeps.
type updateKind int

const (
	// replace commits a value that does not depend on the current one (Set):
	// fn gets the zero T.
	replace updateKind = iota
	// copied hands fn a value the caller owns (Update); the cache keeps a copy
	// of what fn returns.
	copied
	// inPlace hands mutate the Var's own message (Mutate), which the cache
	// keeps.
	inPlace
)

// update is the one locked path of Set, Update and Mutate and their
// variants: under the lock, it commits fn(current), or current as mutate
// (Mutate's function, for kind inPlace; nil otherwise) changed it, waiting
// until deadline (zero: forever) or until ctx (nil: none) is done.
func (v *Var[T]) update(ctx context.Context, deadline time.Time, op string, kind updateKind, fn func(T) (T, error), mutate func(T) error) (_ T, err error) {
	var zero T
	mem, err := v.use(op)
	if err != nil {
		return zero, err
	}
	defer v.done()
	if v.faults {
		defer v.recoverFault(op, v.m.guard(), &err)
	}
	if v.readOnly {
		return zero, newError(op, v.key, ErrInvalidArgument, "segment is attached read-only")
	}
	// The cache is this goroutine's for the whole update, or not at all.
	cached := v.cache.mu.TryLock()
	if cached {
		defer v.cache.mu.Unlock()
	}
	next, g, keep, err := v.locked(ctx, mem, deadline, op, kind, fn, mutate, cached)
	if err != nil {
		return zero, err
	}
	if cached {
		// After the release: the pair stays right even if another commit follows.
		v.remember(g, next, keep, kind == inPlace)
		v.cache.commits++
	} else {
		v.commits.Add(1)
	}
	return next, nil
}

// locked commits fn(current), or current changed by mutate, under the lock,
// which it releases even when they panic, and returns the value with the
// generation it was committed at.
func (v *Var[T]) locked(ctx context.Context, mem []byte, deadline time.Time, op string, kind updateKind, fn func(T) (T, error), mutate func(T) error, cached bool) (next T, g uint64, keep bool, err error) {
	waited, err := v.lk.acquire(mem, deadline, v.wait, v.stopper(ctx, op))
	if waited != 0 {
		v.lockWait.Add(int64(waited))
	}
	if err != nil {
		return next, 0, false, err
	}
	defer func() {
		if rerr := v.release(mem); err == nil {
			err = rerr
		}
	}()
	g = load64(mem, GenerationOffset)
	var current T
	switch {
	case kind == replace:
	case kind == inPlace && cached:
		current, err = v.own(mem, op, g)
		keep = true
	default:
		hit := false
		if cached {
			current, hit, keep = v.lookup(g, true)
		}
		if !hit {
			current, _, err = v.load(mem, op, cached)
		}
	}
	if err != nil {
		return next, 0, false, err
	}
	if mutate != nil {
		next, err = current, mutate(current)
	} else {
		next, err = fn(current)
	}
	if err != nil {
		return next, 0, false, err
	}
	if err = v.commit(mem, g, next, op); err != nil {
		return next, 0, false, err
	}
	return next, g + 1, keep, nil
}

// release frees the lock after an operation. For a file whose lock line
// went with a truncation, it gives up instead of faulting again: the
// operation's own error says what happened.
func (v *Var[T]) release(mem []byte) (err error) {
	if v.faults {
		defer v.recoverFault("unlock", v.m.guard(), &err)
	}
	return v.lk.release(mem)
}
