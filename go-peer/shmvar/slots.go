package shmvar

import (
	"math"
	"reflect"
	"sync"
	"time"

	"github.com/shmvar/shmvar/go-peer/shmvarpb"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The slots (PROTOCOL.md, "Reading (no lock)" and "Writing (under the lock)"):
// the seqlock read that copies and checks the active slot, parsing the copy,
// and the commit that encodes into the inactive slot and publishes it.

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

// load copies, checks and decodes the active slot; it returns the value and
// the generation it was committed at. With cached, the caller holds cache.mu
// and the copy goes to the Var's own buffer, else to a pooled one.
func (v *Var[T]) load(mem []byte, op string, cached bool) (T, uint64, error) {
	var zero T
	bp := &v.cache.buf
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

// scratch holds copy buffers for reads; Unmarshal copies what it keeps, so a
// buffer is free again once the value is decoded.
var scratch = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

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
	changeParker().unpark(mem, math.MaxInt32)
	return nil
}
