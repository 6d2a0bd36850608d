package shmvar

import (
	"runtime"
	"runtime/debug"
)

// A mapping is where a variable's memory comes from (PROTOCOL.md,
// "Backings"): a System V segment (sysv.go), a memory-mapped file (file.go)
// or private memory (memory.go, for tests and fuzzing). A Var holds one and
// runs the protocol over its memory without asking which it is; whatever
// differs between backings is a method here. The Java twin is
// io.shmvar.Mapping.
type mapping interface {
	// memory is the segment's bytes, attached or mapped, 8-byte aligned.
	memory() []byte
	// stat asks the kernel about the segment or file: its real size, owner,
	// creator and mode.
	stat() (SegmentInfo, error)
	// keeper is what keeps the liveness of the attachment table's entries
	// (semaphores, file locks), or nil when there is nothing to ask.
	keeper() keeper
	// sync makes the memory durable; a no-op for backings that live in
	// memory only.
	sync() error
	// remove removes the backing's name (key, path), so that no new process
	// finds it; attachments keep the memory until they detach. The caller
	// has given its attachment entry back.
	remove() error
	// detach releases the memory and whatever this attachment holds open;
	// the caller has given its attachment entry back.
	detach() error
	// name makes an error say which segment it is about: a file-backed one
	// names its path (a System V one is named by the key it already has).
	name(e *Error)
	// path is the mapped file, or "".
	path() string
	// guard starts an operation that touches the memory: a backing whose
	// accesses can fault (a truncated file) turns faults into panics, which
	// the operation's deferred Var.recoverFault turns into onFault's error.
	guard() guarded
	// onFault is the error a fault while touching the memory becomes (the
	// file was truncated); only called for a guarded operation.
	onFault(op string) error
	// stillMapped fails when the memory can no longer be touched (a file
	// truncated below its mapping); waits call it between their sleeps.
	stillMapped(op string) error
}

// guarded is what guard returns: whether the operation runs with faults
// turned into panics, and the setting to restore after it.
type guarded struct{ on, old bool }

// recoverFault, deferred by each operation after guard, restores the
// goroutine's setting and turns a fault into the mapping's error; any other
// panic goes on. It does nothing for an unguarded operation. (A method of
// Var, not of the mapping: a pointer to err passed through an interface
// would move every operation's error to the heap.)
func (v *Var[T]) recoverFault(op string, g guarded, err *error) {
	if !g.on {
		return
	}
	debug.SetPanicOnFault(g.old)
	r := recover()
	if r == nil {
		return
	}
	if _, ok := r.(runtime.Error); !ok {
		panic(r)
	}
	if _, ok := r.(interface{ Addr() uintptr }); !ok {
		panic(r)
	}
	*err = v.m.onFault(op)
}

// unshrinkable is what a mapping that cannot shrink under its attachments,
// and whose errors need no path, embeds: no guard, no fault, no name to add.
type unshrinkable struct{}

func (unshrinkable) name(*Error)              {}
func (unshrinkable) path() string             { return "" }
func (unshrinkable) guard() guarded           { return guarded{} }
func (unshrinkable) onFault(string) error     { return nil }
func (unshrinkable) stillMapped(string) error { return nil }
