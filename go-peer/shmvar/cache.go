package shmvar

import (
	"sync"

	"google.golang.org/protobuf/proto"
)

// valueCache is the last value a Var committed or decoded, and its
// generation (PROTOCOL.md, "Caching a decoded value"): while the segment's
// generation still reads gen, Get copies val and Update takes it, instead of
// copying, checking and decoding the slot; Mutate changes it in place.
// Keeping a copy costs about what it saves, so a Var keeps one only when the
// generation it finds is one it has seen before (seen: it committed or read
// it), that is when no other process is writing between its own
// operations. Operations take mu with TryLock (an update for its whole
// length) and go the long way when another goroutine has it.
type valueCache struct {
	mu   sync.Mutex
	gen  uint64
	val  proto.Message // nil when empty; never handed out while cached
	seen uint64
	buf  []byte // copies of the slot, for whoever holds mu
	// commits counts this Var's commits made while holding mu (Stats).
	commits uint64
}

// lookup returns the cached value if it is the one committed at generation
// g: a copy, or with take the cached message itself, which leaves the cache
// empty. On a miss, keep says whether a copy of the value at g is worth
// keeping: g is a generation this Var has seen. The caller holds cache.mu.
func (v *Var[T]) lookup(g uint64, take bool) (value T, hit, keep bool) {
	c := &v.cache
	if c.val == nil || c.gen != g {
		return value, false, c.seen == g
	}
	if take {
		value, c.val = c.val.(T), nil
		return value, true, true
	}
	m := v.newValue()
	proto.Merge(m, c.val)
	return m.(T), true, true
}

// own returns the Var's own message holding the value committed at g, for
// Mutate to change in place: the cached one, or the active slot decoded into
// it (reused, so that nothing is allocated). The cache stays empty until
// remember gives the message back with a committed value. The caller holds
// cache.mu and the lock.
func (v *Var[T]) own(mem []byte, op string, g uint64) (T, error) {
	c := &v.cache
	m, hit := c.val, c.val != nil && c.gen == g
	c.val = nil
	if !hit {
		if m == nil {
			m = v.newValue()
		} else {
			proto.Reset(m)
		}
		data, _, err := v.read(mem, op, c.buf[:0])
		c.buf = data[:0]
		if err == nil {
			err = v.decodeInto(data, m, op)
		}
		if err != nil {
			var zero T
			return zero, err
		}
	}
	return m.(T), nil
}

// remember notes generation g as seen and, with keep, caches value as the
// one committed at g: a copy, or with own value itself (the Var's own
// message, from own). The caller holds cache.mu.
func (v *Var[T]) remember(g uint64, value T, keep, own bool) {
	c := &v.cache
	c.seen = g
	if !keep {
		return
	}
	c.gen = g
	if own {
		c.val = value
		return
	}
	if c.val == nil {
		c.val = v.newValue()
	} else {
		proto.Reset(c.val)
	}
	proto.Merge(c.val, value)
}
