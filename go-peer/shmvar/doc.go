// Package shmvar shares one protobuf-typed variable between processes through
// a System V shared-memory segment, or through a memory-mapped file with the
// same layout (CreateFile, OpenFile).
//
// A segment holds a fixed header, a protobuf-encoded SegmentDescriptor that
// names the payload type and carries its schema, and two slots for the
// encoded value. Writers take a spinlock word in the segment, write the
// inactive slot and publish it by advancing the generation word; readers take
// no lock and retry when the generation moves under them. The layout is
// declared once in proto/shmvar/v1/layout.proto; proto/PROTOCOL.md in
// the repository describes it precisely, and the Java library
// (io.shmvar.SharedVariable) implements the same protocol.
//
// The segment is untrusted input: every length is read once, bounds-checked,
// copied, checksummed and only then parsed. Errors are *Error values that wrap
// either a unix.Errno or one of the Err* sentinels, so errors.Is works:
//
//	v, err := shmvar.Open[*examplespb.Counter](0x5eed, shmvar.Options{})
//	if errors.Is(err, unix.ENOENT) { ... }
//
// Get and Update hand out values the caller owns; Mutate changes the Var's
// own message in place and allocates nothing, for hot loops. Each Var caches
// the value it last committed or read while the generation stays put.
//
// The files mirror the Java classes: layout.go (LayoutDescriptor), lock.go
// (SpinLock, WaitStrategy), variable.go (SharedVariable), file.go (the file
// backing, SharedVariable.createFile/openFile), native*.go (Native) and
// errors.go (ShmException).
//
// The protocol runs on Linux on amd64 and arm64 (native_linux.go). On any
// other platform the package builds, with the same API, and everything that
// would attach fails with ErrUnsupportedPlatform (native_other.go).
package shmvar
