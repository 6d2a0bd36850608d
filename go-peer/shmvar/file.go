package shmvar

import (
	"errors"
	"fmt"
	"runtime/debug"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The second backing: the same segment layout in a memory-mapped file, a
// path under /dev/shm for a fast name-addressed segment, or a regular file
// when the value must outlive a reboot. Everything but how the memory is
// obtained, released and removed is shared with System V segments. The Java
// twin is io.shmvar.FileMapping.

// fileMapping is a mapped file. Its descriptor stays open while attached:
// its open file description carries this attachment's lock on its entry.
type fileMapping struct {
	file string
	fd   int
	mem  []byte
}

func (m *fileMapping) memory() []byte { return m.mem }

// stat is IPC_STAT's counterpart for a mapped file.
func (m *fileMapping) stat() (SegmentInfo, error) {
	st, err := stat(m.file)
	if err != nil {
		return SegmentInfo{}, fileNativeError("stat", m.file, err)
	}
	return SegmentInfo{ID: -1, Size: uint64(st.Size), UID: st.UID, GID: st.GID, Mode: st.Mode}, nil
}

func (m *fileMapping) keeper() keeper { return fileLocks{m.file, m.fd} }

// sync flushes the mapping to the file (msync).
func (m *fileMapping) sync() error {
	if err := msync(m.mem); err != nil {
		return fileNativeError("msync", m.file, err)
	}
	return nil
}

// remove unlinks the file; attachments keep their mappings.
func (m *fileMapping) remove() error {
	if err := unlink(m.file); err != nil {
		return fileNativeError("unlink", m.file, err)
	}
	return nil
}

// detach unmaps the file and closes the descriptor, which drops its locks.
func (m *fileMapping) detach() error {
	var err error
	if uerr := munmap(m.mem); uerr != nil {
		err = fileNativeError("munmap", m.file, uerr)
	}
	closeFile(m.fd)
	return err
}

func (m *fileMapping) name(e *Error) { e.Path = m.file }

func (m *fileMapping) path() string { return m.file }

// CreateFile makes a new file at path holding the empty value of T, sized
// and laid out exactly as a System V segment. It fails with unix.EEXIST if
// the path exists.
func CreateFile[T proto.Message](path string, opts Options) (*Var[T], error) {
	var zero T
	return createFile[T](path, zero.ProtoReflect().Type(), opts)
}

// CreateFileOf is CreateFile for a type chosen at run time.
func CreateFileOf(path string, mt protoreflect.MessageType, opts Options) (*Var[proto.Message], error) {
	return createFile[proto.Message](path, mt, opts)
}

// OpenFile maps the file at path, validates it and checks that it holds T.
func OpenFile[T proto.Message](path string, opts Options) (*Var[T], error) {
	return typed(openFile[T](path, opts))
}

// OpenOrCreateFile is OpenOrCreate for a mapped file: it maps the file at
// path if it exists and holds T, or else creates it; created says which.
func OpenOrCreateFile[T proto.Message](path string, opts Options) (v *Var[T], created bool, err error) {
	return openOrCreate(opts, func() (*Var[T], error) { return CreateFile[T](path, opts) },
		func() (*Var[T], error) { return OpenFile[T](path, opts) },
		func(format string) error {
			return fileError("open", path, ErrInvalidArgument, format, "OpenOrCreateFile")
		})
}

// OpenAnyFile maps the file at path and decodes values with the stored schema.
func OpenAnyFile(path string, opts Options) (*Var[proto.Message], error) {
	return openFile[proto.Message](path, opts)
}

func fileError(op, path string, err error, format string, args ...any) *Error {
	e := newError(op, 0, err, format, args...)
	e.Path = path
	return e
}

func fileNativeError(op, path string, err error) *Error {
	e := nativeError(op, 0, err, false, 0)
	e.Path = path
	switch e.Err {
	case syscall.EEXIST:
		e.Detail = "the file already exists; remove it with 'rm --file " + path + "'"
	case syscall.ENOENT:
		e.Detail = "no such file; create it with 'create --file " + path + "'"
	}
	return e
}

func createFile[T proto.Message](path string, mt protoreflect.MessageType, opts Options) (*Var[T], error) {
	capacity, mode, err := capacityAndMode(opts)
	if err != nil {
		return nil, fileError("create", path, ErrInvalidArgument, "%v", err)
	}
	desc, raw, geo, err := describe(0, mt, capacity)
	if err != nil {
		err.(*Error).Path = path
		return nil, err
	}
	fd, err := createNewFile(path, mode)
	if err != nil {
		return nil, fileNativeError("open", path, err)
	}
	fail := func(op string, err error) (*Var[T], error) {
		unlink(path)
		closeFile(fd)
		if e, ok := err.(*Error); ok {
			return nil, e
		}
		return nil, fileNativeError(op, path, err)
	}
	if err := fchmod(fd, mode); err != nil { // the umask must not widen or narrow what was asked
		return fail("fchmod", err)
	}
	if err := reserve(fd, int64(geo.segmentLength)); err != nil {
		e := fileNativeError("fallocate", path, err)
		if errors.Is(err, syscall.ENOSPC) {
			e.Detail = fmt.Sprintf("no space left for the file's %d bytes on its file system; nothing was created", geo.segmentLength)
		}
		return fail("", e)
	}
	mem, err := mmap(fd, int(geo.segmentLength), false)
	if err != nil {
		return fail("mmap", err)
	}
	fillHeader(mem, geo, raw)
	signalReady(mem)
	m := &fileMapping{path, fd, mem}
	v := wrap[T](m, 0, geo, desc, codecOf[T](mt), opts)
	v.lk.keeper = m.keeper()
	if err := v.lk.claim(mem); err != nil {
		munmap(mem)
		err.(*Error).Path = path
		return fail("", err)
	}
	return v, nil
}

func openFile[T proto.Message](path string, opts Options) (*Var[T], error) {
	// O_NONBLOCK: opening a FIFO would otherwise block until a writer came;
	// it changes nothing for the regular file that fstat then insists on.
	fd, err := openExistingFile(path, opts.ReadOnly)
	if err != nil {
		return nil, fileNativeError("open", path, err)
	}
	// The descriptor stays open while attached: its open file description
	// carries this attachment's lock on its entry.
	keep := false
	defer func() {
		if !keep {
			closeFile(fd)
		}
	}()
	st, err := fstat(fd)
	if err != nil {
		return nil, fileNativeError("fstat", path, err)
	}
	if !st.Regular {
		return nil, fileError("open", path, ErrNotShmvar, "not a regular file")
	}
	// A creator sizes its file in one call (fallocate) after creating it
	// empty: an empty file may be one still being created, as a System V
	// segment with a zero version word is. Wait for it the same way.
	wait := initWait(opts)
	for deadline := time.Now().Add(wait); st.Size == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
		if st, err = fstat(fd); err != nil {
			return nil, fileNativeError("fstat", path, err)
		}
	}
	if st.Size == 0 {
		return nil, fileError("open", path, ErrNotInitialised, "%s", notInitialised(wait))
	}
	if err := checkSegmentSize(0, uint64(st.Size)); err != nil {
		err.(*Error).Path = path
		return nil, err
	}
	if refused := checkOwnerAndMode(st.UID, st.UID, st.Mode, opts, "file"); refused != "" {
		return nil, fileError("open", path, ErrPermission, "%s", refused)
	}
	mem, err := mmap(fd, int(st.Size), opts.ReadOnly)
	if err != nil {
		return nil, fileNativeError("mmap", path, err)
	}
	m := &fileMapping{path, fd, mem}
	v, err := newVar[T](m, 0, opts)
	if err == nil {
		v.lk.keeper = m.keeper()
		if !opts.ReadOnly {
			err = v.lk.claim(mem)
		}
	}
	if err != nil {
		munmap(mem)
		err.(*Error).Path = path
		return nil, err
	}
	keep = true
	return v, nil
}

// A process that truncates a mapped file makes every access past its new end
// fault (SIGBUS). Each operation on a file-backed variable that touches the
// mapping runs with debug.SetPanicOnFault (guard) and defers recoverFault,
// which turns such a fault into ErrCorrupt (onFault); the lock is released on the way if it
// was held and the lock word is still in the file (Var.release). No fstat is
// made on the way of an operation that does not fault.

func (m *fileMapping) guard() guarded { return guarded{true, debug.SetPanicOnFault(true)} }

// onFault describes the fault: the file was truncated.
func (m *fileMapping) onFault(op string) error {
	return truncatedError(op, m.file, m.fd, len(m.mem))
}

// stillMapped fails with the truncation error if the file is now shorter
// than its mapping.
func (m *fileMapping) stillMapped(op string) error {
	if st, err := fstat(m.fd); err == nil && st.Size < int64(len(m.mem)) {
		return truncatedError(op, m.file, m.fd, len(m.mem))
	}
	return nil
}

// truncatedError describes a file found shorter than its mapping.
func truncatedError(op, path string, fd, mapped int) *Error {
	size := int64(-1)
	if st, err := fstat(fd); err == nil {
		size = st.Size
	}
	return fileError(op, path, ErrCorrupt, "file was truncated under this attachment: size=%d, mapped=%d", size, mapped)
}

// fileLocks keeps the entries of a mapped file: an open-file-description
// lock on the entry's first byte, which the kernel drops when the last
// descriptor of the open file description closes, at the latest when the
// process dies.
type fileLocks struct {
	path string
	fd   int
}

func (s fileLocks) claim(i int) (bool, error) {
	err := ofdLock(s.fd, entryOffset(i), true)
	switch err {
	case nil:
		return true, nil
	case syscall.EAGAIN, syscall.EACCES:
		return false, nil
	}
	return false, fileNativeError("fcntl(F_OFD_SETLK)", s.path, err)
}

func (s fileLocks) release(i int) error {
	if err := ofdLock(s.fd, entryOffset(i), false); err != nil {
		return fileNativeError("fcntl(F_OFD_SETLK)", s.path, err)
	}
	return nil
}

func (s fileLocks) held(i int) bool {
	locked, ok := ofdLocked(s.fd, entryOffset(i))
	return !ok || locked
}
