package shmvar

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/shmvar/shmvar/go-peer/shmvarpb"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Variable is what a shared variable does whatever holds it: a System V
// segment or a mapped file (*Var), or a backend reached by address such as
// etcd (package github.com/shmvar/shmvar/go-peer/etcd). A program written
// against Variable runs on any of them by changing the address it gives to
// CreateAt, OpenAt or OpenAnyAt.
type Variable[T proto.Message] interface {
	// Get returns a copy of the last committed value.
	Get() (T, error)
	// GetEncoded returns the last committed value as encoded.
	GetEncoded() ([]byte, error)
	// Set commits value.
	Set(value T) error
	SetContext(ctx context.Context, value T) error
	// Update commits fn(current), exclusively: no commit lands between the
	// current value fn sees and the one it returns.
	Update(fn func(current T) (T, error)) (T, error)
	UpdateContext(ctx context.Context, fn func(current T) (T, error)) (T, error)
	// TryUpdate is Update that gives up with ErrTimeout after timeout.
	TryUpdate(timeout time.Duration, fn func(current T) (T, error)) (T, error)
	// Mutate commits the changes fn makes to the current value; fn must not
	// keep m past its return.
	Mutate(fn func(m T) error) error
	MutateContext(ctx context.Context, fn func(m T) error) error
	TryMutate(timeout time.Duration, fn func(m T) error) error
	// Generation returns the number of values committed since creation.
	Generation() (uint64, error)
	// AwaitChange waits until the generation moves past after.
	AwaitChange(after uint64, timeout time.Duration) (uint64, error)
	AwaitChangeContext(ctx context.Context, after uint64) (uint64, error)
	// Descriptor returns the schema record stored at creation.
	Descriptor() *shmvarpb.SegmentDescriptor
	// MessageType returns the type values are decoded as.
	MessageType() protoreflect.MessageType
	// Capacity returns the most bytes an encoded value may take.
	Capacity() int
	// Sync makes the last commit durable where the backing is not already.
	Sync() error
	// Close lets go of the variable, which stays for others.
	Close() error
	// Remove deletes the variable and closes it.
	Remove() error
}

// Both the compiled and the dynamic shared-memory variables are Variables.
var (
	_ Variable[*shmvarpb.SegmentDescriptor] = (*Var[*shmvarpb.SegmentDescriptor])(nil)
	_ Variable[proto.Message]               = (*Var[proto.Message])(nil)
)

// AddressOptions configure CreateAt, OpenAt, OpenAnyAt and RemoveAt.
type AddressOptions struct {
	// Options apply to shm: and file: addresses; other backends honour
	// Capacity and ReadOnly and ignore what has no meaning for them.
	Options
	// Backend holds the options of the address's backend (etcdvar.Options
	// for etcd://), or nil for its defaults.
	Backend any
}

// Scheme is a backend of variables reached by addresses "NAME://...",
// registered under NAME with RegisterScheme, in the way of database/sql's
// drivers. Its variables hold values of mt, a compiled type when the
// caller asked for one, else the type the stored schema describes.
type Scheme interface {
	// Create makes a new variable of type mt at address.
	Create(ctx context.Context, address string, mt protoreflect.MessageType, opts AddressOptions) (Variable[proto.Message], error)
	// Open opens the variable at address; with mt non-nil it refuses one of
	// another type with ErrTypeMismatch, with nil it decodes with the stored schema.
	Open(ctx context.Context, address string, mt protoreflect.MessageType, opts AddressOptions) (Variable[proto.Message], error)
	// Remove deletes the variable at address.
	Remove(ctx context.Context, address string, opts AddressOptions) error
}

var (
	schemesMu sync.RWMutex
	schemes   = map[string]Scheme{}
)

// RegisterScheme makes addresses "name://..." reach s. A backend package
// calls it from init, so that importing it for its side effect (import _
// "github.com/shmvar/shmvar/go-peer/etcd") is enough. It panics when name is
// shm, file, already registered, or s is nil, as sql.Register does.
func RegisterScheme(name string, s Scheme) {
	schemesMu.Lock()
	defer schemesMu.Unlock()
	switch {
	case s == nil:
		panic("shmvar: RegisterScheme of a nil Scheme for " + name)
	case name == "shm" || name == "file" || schemes[name] != nil:
		panic("shmvar: RegisterScheme called twice for " + name)
	}
	schemes[name] = s
}

// Schemes lists the address schemes this program reaches, shm and file included.
func Schemes() []string {
	schemesMu.RLock()
	defer schemesMu.RUnlock()
	names := []string{"file", "shm"}
	for name := range schemes {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// location is a parsed address: a key, a path, or another backend's.
type location struct {
	key    uint32
	file   string
	scheme Scheme
}

// parseAddress reads "shm:K" (K as ParseKey reads it), "file:PATH" (or
// "file://PATH") and "NAME://..." for a registered NAME.
func parseAddress(op, address string) (location, error) {
	scheme, rest, ok := strings.Cut(address, ":")
	switch {
	case !ok || scheme == "":
		return location{}, addressError(op, address, "no scheme: write shm:KEY, file:PATH or NAME://... (%s)", strings.Join(Schemes(), ", "))
	case scheme == "shm":
		key, err := ParseKey(rest)
		if err != nil {
			return location{}, addressError(op, address, "%v", err)
		}
		return location{key: key}, nil
	case scheme == "file":
		path := strings.TrimPrefix(rest, "//")
		if path == "" {
			return location{}, addressError(op, address, "no path after file:")
		}
		return location{file: path}, nil
	}
	schemesMu.RLock()
	s := schemes[scheme]
	schemesMu.RUnlock()
	if s == nil {
		hint := ""
		if scheme == "etcd" {
			hint = `; import _ "github.com/shmvar/shmvar/go-peer/etcd" to reach etcd`
		}
		return location{}, addressError(op, address, "no backend for scheme %q (this program knows %s)%s", scheme, strings.Join(Schemes(), ", "), hint)
	}
	return location{scheme: s}, nil
}

func addressError(op, address, format string, args ...any) *Error {
	return &Error{Op: op, Path: address, Err: ErrInvalidArgument, Detail: fmt.Sprintf(format, args...)}
}

// CreateAt makes a new variable of type T at address: "shm:0x5eed" (a
// System V segment), "file:/dev/shm/name" (a mapped file) or
// "etcd://host:port,host:port/prefix/name" once the etcd backend is
// imported. It fails with an error that errors.Is syscall.EEXIST when the
// address is taken.
func CreateAt[T proto.Message](ctx context.Context, address string, opts AddressOptions) (Variable[T], error) {
	var zero T
	v, err := CreateAtOf(ctx, address, zero.ProtoReflect().Type(), opts)
	if err != nil {
		return nil, err
	}
	return typedVariable[T](v), nil
}

// CreateAtOf is CreateAt for a type chosen at run time.
func CreateAtOf(ctx context.Context, address string, mt protoreflect.MessageType, opts AddressOptions) (Variable[proto.Message], error) {
	loc, err := parseAddress("create", address)
	if err != nil {
		return nil, err
	}
	switch {
	case loc.scheme != nil:
		return loc.scheme.Create(ctx, address, mt, opts)
	case loc.file != "":
		return nilIfError(CreateFileOf(loc.file, mt, opts.Options))
	}
	return nilIfError(CreateOf(loc.key, mt, opts.Options))
}

// OpenAt opens the variable at address (see CreateAt) and checks that it
// holds values of type T (ErrTypeMismatch otherwise).
func OpenAt[T proto.Message](ctx context.Context, address string, opts AddressOptions) (Variable[T], error) {
	loc, err := parseAddress("open", address)
	if err != nil {
		return nil, err
	}
	switch {
	case loc.file != "":
		return nilIfError(OpenFile[T](loc.file, opts.Options))
	case loc.scheme == nil:
		return nilIfError(Open[T](loc.key, opts.Options))
	}
	var zero T
	v, err := loc.scheme.Open(ctx, address, zero.ProtoReflect().Type(), opts)
	if err != nil {
		return nil, err
	}
	return typedVariable[T](v), nil
}

// OpenAnyAt opens the variable at address and decodes its values with the
// schema stored with it, as dynamicpb messages.
func OpenAnyAt(ctx context.Context, address string, opts AddressOptions) (Variable[proto.Message], error) {
	loc, err := parseAddress("open", address)
	if err != nil {
		return nil, err
	}
	switch {
	case loc.scheme != nil:
		return loc.scheme.Open(ctx, address, nil, opts)
	case loc.file != "":
		return nilIfError(OpenAnyFile(loc.file, opts.Options))
	}
	return nilIfError(OpenAny(loc.key, opts.Options))
}

// RemoveAt deletes the variable at address without validating it.
func RemoveAt(ctx context.Context, address string, opts AddressOptions) error {
	loc, err := parseAddress("remove", address)
	if err != nil {
		return err
	}
	switch {
	case loc.scheme != nil:
		return loc.scheme.Remove(ctx, address, opts)
	case loc.file != "":
		v, err := OpenAnyFile(loc.file, opts.Options)
		if err != nil {
			return err
		}
		return v.Remove()
	}
	return RemoveKey(loc.key)
}

// nilIfError keeps a nil *Var from turning into a non-nil Variable.
func nilIfError[T proto.Message](v *Var[T], err error) (Variable[T], error) {
	if err != nil {
		return nil, err
	}
	return v, nil
}

// typedVariable presents a backend's Variable[proto.Message], whose values
// are T's, as a Variable[T].
func typedVariable[T proto.Message](v Variable[proto.Message]) Variable[T] {
	if t, ok := v.(Variable[T]); ok {
		return t
	}
	return typedVar[T]{v}
}

type typedVar[T proto.Message] struct{ Variable[proto.Message] }

// Unwrap returns the backend's variable, for what it offers beyond
// Variable (etcdvar's Conflicts, say).
func (t typedVar[T]) Unwrap() Variable[proto.Message] { return t.Variable }

func (t typedVar[T]) as(m proto.Message, err error) (T, error) {
	value, _ := m.(T)
	return value, err
}

func (t typedVar[T]) wrap(fn func(T) (T, error)) func(proto.Message) (proto.Message, error) {
	return func(m proto.Message) (proto.Message, error) {
		next, err := fn(m.(T))
		return next, err
	}
}

func (t typedVar[T]) mutator(fn func(T) error) func(proto.Message) error {
	return func(m proto.Message) error { return fn(m.(T)) }
}

func (t typedVar[T]) Get() (T, error)   { return t.as(t.Variable.Get()) }
func (t typedVar[T]) Set(value T) error { return t.Variable.Set(value) }
func (t typedVar[T]) SetContext(ctx context.Context, value T) error {
	return t.Variable.SetContext(ctx, value)
}
func (t typedVar[T]) Update(fn func(T) (T, error)) (T, error) {
	return t.as(t.Variable.Update(t.wrap(fn)))
}
func (t typedVar[T]) UpdateContext(ctx context.Context, fn func(T) (T, error)) (T, error) {
	return t.as(t.Variable.UpdateContext(ctx, t.wrap(fn)))
}
func (t typedVar[T]) TryUpdate(timeout time.Duration, fn func(T) (T, error)) (T, error) {
	return t.as(t.Variable.TryUpdate(timeout, t.wrap(fn)))
}
func (t typedVar[T]) Mutate(fn func(T) error) error { return t.Variable.Mutate(t.mutator(fn)) }
func (t typedVar[T]) MutateContext(ctx context.Context, fn func(T) error) error {
	return t.Variable.MutateContext(ctx, t.mutator(fn))
}
func (t typedVar[T]) TryMutate(timeout time.Duration, fn func(T) error) error {
	return t.Variable.TryMutate(timeout, t.mutator(fn))
}

// ValueCodec encodes, checks and decodes the values of one variable exactly
// as the shared-memory backings do (PROTOCOL.md, "Values"), for backends
// that keep the encoded value elsewhere.
type ValueCodec struct {
	desc *shmvarpb.SegmentDescriptor
	c    codec
}

// Describe builds the descriptor a new variable of type mt stores (the
// same record as a segment's) and its deterministic encoding. Errors are
// *Error values wrapping ErrInvalidArgument or ErrTooLarge.
func Describe(mt protoreflect.MessageType, capacity int) (*shmvarpb.SegmentDescriptor, []byte, error) {
	desc, raw, _, err := describe(0, mt, capacity)
	return desc, raw, err
}

// NewValueCodec checks a stored descriptor (its schema must build, as an
// opener's check) and returns the codec for its values: of the compiled type
// mt, which must have the stored type's name (else ErrTypeMismatch), or with
// mt nil of the dynamic type the schema describes. Errors wrap ErrCorrupt or
// ErrTypeMismatch and carry the detail.
func NewValueCodec(desc *shmvarpb.SegmentDescriptor, mt protoreflect.MessageType) (*ValueCodec, error) {
	stored, err := messageTypeFromSchema(desc)
	if err != nil {
		return nil, &Error{Op: "open", Err: ErrCorrupt, Detail: err.Error()}
	}
	if mt == nil {
		return &ValueCodec{desc: desc, c: codecOf[proto.Message](stored)}, nil
	}
	if want := mt.Descriptor().FullName(); desc.GetMessageType() != string(want) {
		return nil, &Error{Op: "open", Err: ErrTypeMismatch, Detail: fmt.Sprintf("variable holds %s, asked for %s", desc.GetMessageType(), want)}
	}
	return &ValueCodec{desc: desc, c: codecOf[proto.Message](mt)}, nil
}

// MessageType returns the type values are decoded as.
func (c *ValueCodec) MessageType() protoreflect.MessageType { return c.c.mtype }

// New returns an empty value.
func (c *ValueCodec) New() proto.Message { return c.c.newValue() }

// Decode decodes data, with the nesting limit readers apply; an error wraps ErrCorrupt.
func (c *ValueCodec) Decode(data []byte) (m proto.Message, err error) {
	m = c.c.newValue()
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, &Error{Op: "get", Err: ErrCorrupt, Detail: fmt.Sprintf("value does not decode as %s: %v", c.desc.GetMessageType(), r)}
		}
	}()
	if err := c.c.unmarshal.Unmarshal(data, m); err != nil {
		return nil, &Error{Op: "get", Err: ErrCorrupt, Detail: fmt.Sprintf("value does not decode as %s: %v", c.desc.GetMessageType(), err)}
	}
	return m, nil
}

// Encode checks value as a commit does (its type, its nesting, the
// capacity) and encodes it; an error wraps ErrInvalidArgument,
// ErrTypeMismatch or ErrTooLarge.
func (c *ValueCodec) Encode(value proto.Message) ([]byte, error) {
	if value == nil {
		return nil, &Error{Op: "update", Err: ErrInvalidArgument, Detail: "value is nil"}
	}
	if d := value.ProtoReflect().Descriptor(); d != c.c.mtype.Descriptor() && d.FullName() != protoreflect.FullName(c.desc.GetMessageType()) {
		return nil, &Error{Op: "update", Err: ErrTypeMismatch, Detail: fmt.Sprintf("value is %s, variable holds %s", d.FullName(), c.desc.GetMessageType())}
	}
	if c.c.deep && nestingDepth(value.ProtoReflect(), MaxNestingDepth) > MaxNestingDepth {
		return nil, &Error{Op: "update", Err: ErrInvalidArgument, Detail: fmt.Sprintf("value nests deeper than %d levels, which readers refuse (PROTOCOL.md, \"Values\"); nothing was committed", MaxNestingDepth)}
	}
	out, err := c.c.marshal.Marshal(value)
	if err != nil {
		return nil, &Error{Op: "update", Err: ErrInvalidArgument, Detail: fmt.Sprintf("value does not encode: %v", err)}
	}
	if uint64(len(out)) > c.desc.GetCapacity() {
		return nil, &Error{Op: "update", Err: ErrTooLarge, Detail: fmt.Sprintf("encoded size=%d, capacity=%d", len(out), c.desc.GetCapacity())}
	}
	return out, nil
}
