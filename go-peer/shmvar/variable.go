package shmvar

import (
	"context"
	"fmt"
	"math"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shmvar/shmvar/go-peer/shmvarpb"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Options configure Create and Open. The zero value gives the defaults.
type Options struct {
	// Capacity is the most bytes an encoded value may take (Create only);
	// 0 means DefaultCapacity.
	Capacity int
	// Mode is the segment's permission bits (Create only); 0 means 0600.
	Mode os.FileMode
	// InitWait is how long Open waits for a creator that has not finished
	// writing the header; 0 means the protocol's default, one second.
	InitWait time.Duration
	// ReadOnly attaches the segment read-only (Open only); writes then fail.
	ReadOnly bool
	// AnyOwner accepts a segment owned by another user (Open only). By
	// default Open refuses one whose owner is not this process's user.
	AnyOwner bool
	// AnyMode accepts a world-writable segment (Open only), which any user
	// of the machine could corrupt; by default Open refuses it.
	AnyMode bool
	// Ephemeral marks the segment for removal as soon as it is attached:
	// the kernel frees it when the last process detaches or dies, and no
	// new process can open it by key from then on. Set it on the last peer
	// to open, or on a creator whose segment nobody else needs to find.
	Ephemeral bool
	// Wait is how lock waits and AwaitChange wait: SpinThenPark (the
	// default) or Spin.
	Wait WaitStrategy
}

// Var is a protobuf value of type T shared through a System V segment. Its
// methods are safe for concurrent use by several goroutines. The Java twin
// is io.shmvar.SharedVariable.
type Var[T proto.Message] struct {
	key int32   // the System V segment's key, which errors name; 0 for other backings
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

	// The last value this Var committed or decoded, and its generation
	// (PROTOCOL.md, "Caching"): while the segment's generation still reads
	// cacheGen, Get copies cacheVal and Update takes it, instead of copying,
	// checking and decoding the slot. Keeping a copy costs about what it
	// saves, so a Var keeps one only when the generation it finds is one it
	// has seen before (seenGen: it committed or read it), that is when no
	// other process is writing between its own operations. Operations take
	// cacheMu with TryLock (an update for its whole length) and go the long
	// way when another goroutine has it.
	cacheMu  sync.Mutex
	cacheGen uint64
	cacheVal proto.Message // nil when empty; never handed out while cached
	seenGen  uint64
	buf      []byte // copies of the slot, for whoever holds cacheMu
}

// Create makes a new segment under key holding the empty value of T. It
// fails with unix.EEXIST if the key is taken.
func Create[T proto.Message](key int32, opts Options) (*Var[T], error) {
	var zero T
	return create[T](key, zero.ProtoReflect().Type(), opts)
}

// CreateOf is Create for a type chosen at run time, such as one found by
// name in protoregistry.GlobalTypes.
func CreateOf(key int32, mt protoreflect.MessageType, opts Options) (*Var[proto.Message], error) {
	return create[proto.Message](key, mt, opts)
}

// Open attaches to the segment under key, validates it and checks that it
// holds values of type T.
func Open[T proto.Message](key int32, opts Options) (*Var[T], error) {
	return typed(open[T](key, opts))
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

// capacityAndMode applies the defaults of Options.Capacity and Options.Mode.
func capacityAndMode(opts Options) (int, uint32, error) {
	capacity := opts.Capacity
	if capacity == 0 {
		capacity = DefaultCapacity
	}
	if capacity < 0 || capacity > MaxCapacity {
		return 0, 0, fmt.Errorf("capacity=%d outside 1..%d", capacity, MaxCapacity)
	}
	mode := uint32(opts.Mode.Perm())
	if mode == 0 {
		mode = 0o600
	}
	return capacity, mode, nil
}

// checkOwnerAndMode applies the owner and mode checks of Open: both the owner
// and the creator must be this process's user; what is "segment",
// "semaphore set" or "file".
func checkOwnerAndMode(uid, cuid, mode uint32, opts Options, what string) string {
	euid := uint32(os.Geteuid())
	if !opts.AnyOwner && uid != euid {
		return fmt.Sprintf("%s is owned by uid %d, this process runs as uid %d; accept it with AnyOwner (--any-owner)", what, uid, euid)
	}
	if !opts.AnyOwner && cuid != euid {
		// The creator keeps full access whoever it makes the owner (IPC_SET).
		return fmt.Sprintf("%s is owned by uid %d (created by uid %d), this process runs as uid %d; accept it with AnyOwner (--any-owner)", what, uid, cuid, euid)
	}
	if !opts.AnyMode && mode&0o002 != 0 {
		return fmt.Sprintf("%s mode %04o lets any user write it; accept it with AnyMode (--any-mode)", what, mode&0o777)
	}
	return ""
}

// codec is how a Var makes, encodes and decodes its values.
type codec struct {
	mtype protoreflect.MessageType
	// newValue makes an empty value: a plain allocation for generated types,
	// the stored schema's dynamic type otherwise.
	newValue func() proto.Message
	// compiled: values are T, a generated type whose descriptor the segment's
	// was checked against, so commit need not check each one.
	compiled bool
	// deep: values of mtype can nest deeper than MaxNestingDepth (a
	// recursive type), so commit measures each one.
	deep      bool
	marshal   proto.MarshalOptions
	unmarshal proto.UnmarshalOptions
}

// codecOf returns the fastest codec for values of mt held as T.
func codecOf[T proto.Message](mt protoreflect.MessageType) codec {
	// Without required fields the initialisation checks cannot fail; skip them.
	partial := !hasRequired(mt.Descriptor(), map[protoreflect.FullName]bool{})
	c := codec{
		mtype:    mt,
		newValue: func() proto.Message { return mt.New().Interface() },
		deep:     staticDepth(mt.Descriptor(), map[protoreflect.FullName]int{}) > MaxNestingDepth,
		marshal:  proto.MarshalOptions{AllowPartial: partial},
		// RecursionLimit counts the top-level message, MaxNestingDepth does
		// not (as protobuf-java's limit); Merge, as values are new: no reset.
		unmarshal: proto.UnmarshalOptions{RecursionLimit: MaxNestingDepth + 1, Merge: true, AllowPartial: partial},
	}
	var zero T
	if rt := reflect.TypeOf(zero); rt != nil && rt.Kind() == reflect.Pointer {
		elem := rt.Elem()
		c.newValue = func() proto.Message { return reflect.New(elem).Interface().(proto.Message) }
		c.compiled = true
	}
	return c
}

// staticDepth is the deepest a value of md can nest (PROTOCOL.md, "Values"),
// or MaxNestingDepth+1 if it can nest deeper: through a recursive type, or
// extensions, which the descriptor does not bound.
func staticDepth(md protoreflect.MessageDescriptor, memo map[protoreflect.FullName]int) int {
	if d, ok := memo[md.FullName()]; ok {
		return d
	}
	unbounded := MaxNestingDepth + 1
	memo[md.FullName()] = unbounded // while on the stack: a cycle is unbounded
	deepest := 0
	if md.ExtensionRanges().Len() > 0 {
		deepest = unbounded
	}
	fields := md.Fields()
	for i := 0; i < fields.Len() && deepest < unbounded; i++ {
		fd := fields.Get(i)
		switch {
		case fd.IsMap():
			deepest = max(deepest, 1) // the entry
			if v := fd.MapValue().Message(); v != nil {
				deepest = max(deepest, 2+staticDepth(v, memo))
			}
		case fd.Message() != nil:
			deepest = max(deepest, 1+staticDepth(fd.Message(), memo))
		}
	}
	deepest = min(deepest, unbounded)
	memo[md.FullName()] = deepest
	return deepest
}

// nestingDepth is how deep m nests (PROTOCOL.md, "Values"): 0 for a message
// with no message set in it, 1 more for each message field value, group and
// map entry on the way down. It stops measuring below limit, returning more
// than limit for a value deeper than that.
func nestingDepth(m protoreflect.Message, limit int) int {
	if limit < 0 {
		return 0
	}
	deepest := 0
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			deepest = max(deepest, 1) // the entry
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(_ protoreflect.MapKey, e protoreflect.Value) bool {
					deepest = max(deepest, 2+nestingDepth(e.Message(), limit-2))
					return deepest <= limit
				})
			}
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len() && deepest <= limit; i++ {
				deepest = max(deepest, 1+nestingDepth(l.Get(i).Message(), limit-1))
			}
		case fd.Message() != nil:
			deepest = max(deepest, 1+nestingDepth(v.Message(), limit-1))
		}
		return deepest <= limit
	})
	return deepest
}

// hasRequired reports whether md or a message type it contains has a
// required field.
func hasRequired(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) bool {
	if seen[md.FullName()] {
		return false
	}
	seen[md.FullName()] = true
	if md.RequiredNumbers().Len() > 0 {
		return true
	}
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		if sub := fields.Get(i).Message(); sub != nil && hasRequired(sub, seen) {
			return true
		}
	}
	return false
}

// OpenAny attaches to the segment under key and decodes values with the
// schema stored in it, as dynamicpb messages.
func OpenAny(key int32, opts Options) (*Var[proto.Message], error) {
	return open[proto.Message](key, opts)
}

// describe builds the descriptor of a new segment and its geometry.
func describe(key int32, mt protoreflect.MessageType, capacity int) (*shmvarpb.SegmentDescriptor, []byte, geometry, error) {
	schema, err := schemaOf(mt.Descriptor())
	if err != nil {
		return nil, nil, geometry{}, newError("create", key, ErrInvalidArgument, "schema of %s: %v", mt.Descriptor().FullName(), err)
	}
	desc := &shmvarpb.SegmentDescriptor{
		LayoutVersion:    LayoutVersion,
		MessageType:      string(mt.Descriptor().FullName()),
		Schema:           schema,
		Capacity:         uint64(capacity),
		CreatorPid:       int32(os.Getpid()),
		CreatedUnixNanos: time.Now().UnixNano(),
		Creator:          "go",
	}
	// Never create what openers refuse (a type that redefines a well-known type, say).
	if _, err := messageTypeFromSchema(desc); err != nil {
		return nil, nil, geometry{}, newError("create", key, ErrInvalidArgument, "%v", err)
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(desc)
	if err != nil || len(raw) > MaxDescriptorLength {
		return nil, nil, geometry{}, newError("create", key, ErrTooLarge, "descriptor of %d bytes exceeds %d", len(raw), MaxDescriptorLength)
	}
	return desc, raw, newGeometry(uint64(capacity), uint64(len(raw))), nil
}

// initialise writes the header and descriptor into zeroed memory.
func initialise(mem []byte, geo geometry, raw []byte) {
	le.PutUint32(mem[MagicOffset:], Magic)
	le.PutUint32(mem[HeaderLengthOffset:], uint32(HeaderLength))
	le.PutUint64(mem[CapacityOffset:], geo.capacity)
	le.PutUint64(mem[DescriptorOffsetOffset:], geo.descriptorOffset)
	le.PutUint64(mem[DescriptorLengthOffset:], geo.descriptorLength)
	le.PutUint64(mem[Slot0OffsetOffset:], geo.slot[0])
	le.PutUint64(mem[Slot1OffsetOffset:], geo.slot[1])
	le.PutUint64(mem[SegmentLengthOffset:], geo.segmentLength)
	copy(mem[geo.descriptorOffset:], raw)
	le.PutUint32(mem[DescriptorCrcOffset:], crc32c(raw))
	// Slot 0 holds the empty value (length 0, CRC 0) for generation 0; the
	// kernel zero-fills new segments, so only the version word is left: it
	// goes last, with release semantics, and makes the segment valid.
	store32(mem, LayoutVersionOffset, LayoutVersion)
}

// initWait applies the default of Options.InitWait.
func initWait(opts Options) time.Duration {
	if opts.InitWait == 0 {
		return defaultInitWait
	}
	return opts.InitWait
}

// wrap makes a Var over m, whose memory holds a segment of geometry geo and
// descriptor desc, attached for writing; errors name key. Its locker has no
// keeper yet: the caller sets m's once m knows it, and claims an entry.
func wrap[T proto.Message](m mapping, key int32, geo geometry, desc *shmvarpb.SegmentDescriptor, c codec, opts Options) *Var[T] {
	_, faults := m.(*fileMapping)
	return &Var[T]{key: key, m: m, faults: faults, geo: geo, desc: desc, codec: c, mem: m.memory(), wait: opts.Wait, lk: locker{key: key, index: -1}, closer: newCloser()}
}

// newVar validates m's memory, an attached segment or any image of one, and
// wraps it.
func newVar[T proto.Message](m mapping, key int32, opts Options) (*Var[T], error) {
	mem := m.memory()
	geo, version, err := readGeometry(key, mem, initWait(opts))
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
func (v *Var[T]) Key() int32 { return v.key }

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
	if !v.cacheMu.TryLock() { // another goroutine uses the cache: go the long way
		value, _, err := v.load(mem, "get", false)
		return value, err
	}
	defer v.cacheMu.Unlock()
	g := load64(mem, GenerationOffset)
	value, hit, keep := v.lookup(g, false)
	if hit {
		return value, nil
	}
	value, g2, err := v.load(mem, "get", true)
	if err == nil {
		v.remember(g2, value, keep && g2 == g)
	}
	return value, err
}

// load copies, checks and decodes the active slot; it returns the value and
// the generation it was committed at. With cached, the caller holds cacheMu
// and the copy goes to the Var's own buffer, else to a pooled one.
func (v *Var[T]) load(mem []byte, op string, cached bool) (T, uint64, error) {
	var zero T
	bp := &v.buf
	if !cached {
		bp = scratch.Get().(*[]byte)
		defer scratch.Put(bp)
	}
	data, g, err := v.read(mem, op, (*bp)[:0])
	*bp = data[:0]
	if err != nil {
		return zero, 0, err
	}
	value, err := v.decode(data, op)
	return value, g, err
}

// lookup returns the cached value if it is the one committed at generation
// g: a copy, or with take the cached message itself, which leaves the cache
// empty. On a miss, keep says whether a copy of the value at g is worth
// keeping: g is a generation this Var has seen. The caller holds cacheMu.
func (v *Var[T]) lookup(g uint64, take bool) (value T, hit, keep bool) {
	if v.cacheVal == nil || v.cacheGen != g {
		return value, false, v.seenGen == g
	}
	if take {
		value, v.cacheVal = v.cacheVal.(T), nil
		return value, true, true
	}
	m := v.newValue()
	proto.Merge(m, v.cacheVal)
	return m.(T), true, true
}

// remember notes generation g as seen and, with keep, caches a copy of
// value as the one committed at g. The caller holds cacheMu.
func (v *Var[T]) remember(g uint64, value T, keep bool) {
	v.seenGen = g
	if !keep {
		return
	}
	if v.cacheVal == nil {
		v.cacheVal = v.newValue()
	} else {
		proto.Reset(v.cacheVal)
	}
	proto.Merge(v.cacheVal, value)
	v.cacheGen = g
}

// scratch holds copy buffers for reads; Unmarshal copies what it keeps, so a
// buffer is free again once the value is decoded.
var scratch = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// Set commits value, waiting for the lock as long as it takes.
func (v *Var[T]) Set(value T) error {
	_, err := v.update(nil, time.Time{}, "set", func(T) (T, error) { return value, nil }, false)
	return v.tag(err)
}

// Update commits fn(current) under the lock and returns it. fn gets its own
// copy of the current value and may modify and return it. When fn returns an
// error or panics, nothing is committed and the lock is released.
func (v *Var[T]) Update(fn func(current T) (T, error)) (T, error) {
	value, err := v.update(nil, time.Time{}, "update", fn, true)
	return value, v.tag(err)
}

// TryUpdate is Update that gives up with ErrTimeout if the lock is not free
// within timeout; the error names the holder's pid.
func (v *Var[T]) TryUpdate(timeout time.Duration, fn func(current T) (T, error)) (T, error) {
	value, err := v.update(nil, time.Now().Add(timeout), "update", fn, true)
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
	return v.tag(v.mutateBy(nil, time.Time{}, fn))
}

// TryMutate is Mutate that gives up with ErrTimeout if the lock is not free
// within timeout; the error names the holder's pid.
func (v *Var[T]) TryMutate(timeout time.Duration, fn func(m T) error) error {
	return v.tag(v.mutateBy(nil, time.Now().Add(timeout), fn))
}

func (v *Var[T]) mutateBy(ctx context.Context, deadline time.Time, fn func(m T) error) (err error) {
	if !v.cacheMu.TryLock() {
		_, err := v.update(ctx, deadline, "update", func(c T) (T, error) { return c, fn(c) }, true)
		return err
	}
	defer v.cacheMu.Unlock()
	mem, err := v.use("update")
	if err != nil {
		return err
	}
	defer v.done()
	if v.faults {
		defer v.recoverFault("update", v.m.guard(), &err)
	}
	if v.readOnly {
		return newError("update", v.key, ErrInvalidArgument, "segment is attached read-only")
	}
	return v.mutate(ctx, mem, deadline, fn)
}

// mutate is Mutate's work under the lock; the caller holds cacheMu.
func (v *Var[T]) mutate(ctx context.Context, mem []byte, deadline time.Time, fn func(T) error) (err error) {
	if _, err = v.lk.acquire(mem, deadline, v.wait, v.stopper(ctx, "update")); err != nil {
		return err
	}
	defer func() {
		if rerr := v.release(mem); err == nil {
			err = rerr
		}
	}()
	g := load64(mem, GenerationOffset)
	m, hit := v.cacheVal, v.cacheVal != nil && v.cacheGen == g
	v.cacheVal = nil // until m holds a committed value again
	if !hit {
		if m == nil {
			m = v.newValue()
		} else {
			proto.Reset(m)
		}
		data, _, err := v.read(mem, "update", v.buf[:0])
		v.buf = data[:0]
		if err != nil {
			return err
		}
		if err = v.decodeInto(data, m, "update"); err != nil {
			return err
		}
	}
	if err = fn(m.(T)); err != nil {
		return err
	}
	if err = v.commit(mem, g, m.(T), "update"); err != nil {
		return err
	}
	v.cacheVal, v.cacheGen, v.seenGen = m, g+1, g+1
	return nil
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

// SegmentInfo is what the kernel says about the segment (IPC_STAT).
type SegmentInfo = segmentInfo

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

// readRetryLimit bounds how long a reader keeps retrying while writers move
// the generation under it.
const readRetryLimit = time.Duration(shmvarpb.ProtocolTiming_READ_RETRY_LIMIT_MICROS) * us

// read copies the active slot's payload: the length is read once and
// bounds-checked, the bytes copied, the generation re-checked (retrying if it
// moved), then the slot's generation and CRC32C verified.
//
// Every load of the slot must be done before the second load of the
// generation (PROTOCOL.md, "Reading (no lock)"): the slot header's words are
// atomic loads, which Go orders, and copySlot copies the payload in an order
// that the CPU keeps (see native_linux_amd64.go and native_linux_arm64.go).
func (v *Var[T]) read(mem []byte, op string, buf []byte) ([]byte, uint64, error) {
	var deadline time.Time
	for attempt := 0; ; attempt++ {
		g1 := load64(mem, GenerationOffset)
		off := int(v.geo.slot[g1&1])
		n := uint64(load32(mem, off+SlotLengthOffset))
		if n <= v.geo.capacity {
			buf = copySlot(buf, mem, off+SlotHeaderLength, int(n))
		}
		crc := load32(mem, off+SlotCrcOffset)
		slotGen := load64(mem, off+SlotGenerationOffset)
		if g2 := load64(mem, GenerationOffset); g2 != g1 {
			if attempt == 0 {
				deadline = time.Now().Add(readRetryLimit)
			} else if attempt%64 == 0 && time.Now().After(deadline) {
				return buf, 0, newError(op, v.key, ErrBusy, "generation kept moving for %v", readRetryLimit)
			}
			continue
		}
		switch {
		case n > v.geo.capacity:
			return buf, 0, newError(op, v.key, ErrCorrupt, "slot %d length=%d exceeds capacity=%d", g1&1, n, v.geo.capacity)
		case slotGen != g1:
			return buf, 0, newError(op, v.key, ErrCorrupt, "slot %d generation=%d, header generation=%d", g1&1, slotGen, g1)
		case crc32c(buf) != crc:
			return buf, 0, newError(op, v.key, ErrCorrupt, "slot %d CRC32C mismatch at generation %d", g1&1, g1)
		}
		return buf, g1, nil
	}
}

func (v *Var[T]) decode(data []byte, op string) (value T, err error) {
	m := v.newValue()
	if err = v.decodeInto(data, m, op); err != nil {
		return value, err
	}
	return m.(T), nil
}

// decodeInto decodes data into m, which is empty.
func (v *Var[T]) decodeInto(data []byte, m proto.Message, op string) (err error) {
	defer func() {
		if r := recover(); r != nil { // a hostile schema may trip the dynamic decoder
			err = newError(op, v.key, ErrCorrupt, "value does not decode as %s: %v", v.desc.GetMessageType(), r)
		}
	}()
	if err := v.unmarshal.Unmarshal(data, m); err != nil {
		return newError(op, v.key, ErrCorrupt, "value does not decode as %s: %v", v.desc.GetMessageType(), err)
	}
	return nil
}

func (v *Var[T]) update(ctx context.Context, deadline time.Time, op string, fn func(T) (T, error), needCurrent bool) (_ T, err error) {
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
	cached := v.cacheMu.TryLock()
	if cached {
		defer v.cacheMu.Unlock()
	}
	next, g, keep, err := v.locked(ctx, mem, deadline, op, fn, needCurrent, cached)
	if err != nil {
		return zero, err
	}
	if cached {
		// After the release: the pair stays right even if another commit follows.
		v.remember(g, next, keep)
	}
	return next, nil
}

// locked commits fn(current) under the lock, which it releases even when fn
// panics, and returns the value with the generation it was committed at.
func (v *Var[T]) locked(ctx context.Context, mem []byte, deadline time.Time, op string, fn func(T) (T, error), needCurrent, cached bool) (next T, g uint64, keep bool, err error) {
	if _, err = v.lk.acquire(mem, deadline, v.wait, v.stopper(ctx, op)); err != nil {
		return next, 0, false, err
	}
	defer func() {
		if rerr := v.release(mem); err == nil {
			err = rerr
		}
	}()
	g = load64(mem, GenerationOffset)
	var current T
	if needCurrent {
		hit := false
		if cached {
			current, hit, keep = v.lookup(g, true)
		}
		if !hit {
			if current, _, err = v.load(mem, op, cached); err != nil {
				return next, 0, false, err
			}
		}
	}
	if next, err = fn(current); err != nil {
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

// commit encodes value straight into the inactive slot and publishes it by
// advancing the generation: the commit point.
func (v *Var[T]) commit(mem []byte, g uint64, value T, op string) error {
	if any(value) == nil {
		return newError(op, v.key, ErrInvalidArgument, "value is nil")
	}
	if !v.compiled {
		if d := value.ProtoReflect().Descriptor(); d != v.mtype.Descriptor() && d.FullName() != protoreflect.FullName(v.desc.GetMessageType()) {
			return newError(op, v.key, ErrTypeMismatch, "value is %s, segment holds %s", d.FullName(), v.desc.GetMessageType())
		}
	}
	// Readers refuse a value nested deeper than this: never commit one.
	if v.deep && nestingDepth(value.ProtoReflect(), MaxNestingDepth) > MaxNestingDepth {
		return newError(op, v.key, ErrInvalidArgument, "value nests deeper than %d levels, which readers refuse (PROTOCOL.md, \"Values\"); nothing was committed", MaxNestingDepth)
	}
	// A holder that lost the lock (to a peer that breaks the protocol) must
	// not write the slot the robber may have made active, nor publish.
	if err := v.lk.stillHeld(mem, op, g); err != nil {
		return err
	}
	next := g + 1
	off := v.geo.slot[next&1]
	start := off + uint64(SlotHeaderLength)
	payload := mem[start : start : start+v.geo.capacity]
	out, err := v.marshal.MarshalAppend(payload, value)
	if err != nil {
		return newError(op, v.key, ErrInvalidArgument, "value does not encode: %v", err)
	}
	if uint64(len(out)) > v.geo.capacity {
		return newError(op, v.key, ErrTooLarge, "encoded size=%d, capacity=%d", len(out), v.geo.capacity)
	}
	le.PutUint32(mem[off+uint64(SlotLengthOffset):], uint32(len(out)))
	le.PutUint32(mem[off+uint64(SlotCrcOffset):], crc32c(out))
	le.PutUint64(mem[off+uint64(SlotGenerationOffset):], next)
	if err := v.lk.stillHeld(mem, op, g); err != nil {
		return err
	}
	if !cas64(mem, GenerationOffset, g, next) {
		return newError(op, v.key, ErrLockLost, "generation moved from %d under the lock holder; nothing was committed", g)
	}
	if load32(mem, GenerationWaitersOffset) != 0 {
		add32(mem, GenerationFutexOffset, 1)
		futexWakeUp(mem, GenerationFutexOffset, math.MaxInt32)
	}
	return nil
}
