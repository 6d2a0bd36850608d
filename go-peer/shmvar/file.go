package shmvar

import (
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The second backing: the same segment layout in a memory-mapped file, a
// path under /dev/shm for a fast name-addressed segment, or a regular file
// when the value must outlive a reboot. Everything but how the memory is
// obtained, released and removed is shared with System V segments.

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
	case unix.EEXIST:
		e.Detail = "the file already exists; remove it with 'rm --file " + path + "'"
	case unix.ENOENT:
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
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, mode)
	if err != nil {
		return nil, fileNativeError("open", path, err)
	}
	fail := func(op string, err error) (*Var[T], error) {
		unix.Unlink(path)
		unix.Close(fd)
		if e, ok := err.(*Error); ok {
			return nil, e
		}
		return nil, fileNativeError(op, path, err)
	}
	if err := unix.Fchmod(fd, mode); err != nil { // the umask must not widen or narrow what was asked
		return fail("fchmod", err)
	}
	if err := unix.Ftruncate(fd, int64(geo.segmentLength)); err != nil {
		return fail("ftruncate", err)
	}
	mem, err := unix.Mmap(fd, 0, int(geo.segmentLength), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fail("mmap", err)
	}
	initialise(mem, geo, raw)
	v := &Var[T]{path: path, semID: -1, fd: fd, geo: geo, desc: desc, codec: codecOf[T](mt), mem: mem, wait: opts.Wait,
		lk: locker{keeper: fileLocks{path, fd}, index: -1}, closer: newCloser()}
	if err := v.lk.claim(mem); err != nil {
		unix.Munmap(mem)
		err.(*Error).Path = path
		return fail("", err)
	}
	return v, nil
}

func openFile[T proto.Message](path string, opts Options) (*Var[T], error) {
	flags, prot := unix.O_RDWR, unix.PROT_READ|unix.PROT_WRITE
	if opts.ReadOnly {
		flags, prot = unix.O_RDONLY, unix.PROT_READ
	}
	fd, err := unix.Open(path, flags|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fileNativeError("open", path, err)
	}
	// The descriptor stays open while attached: its open file description
	// carries this attachment's lock on its entry.
	keep := false
	defer func() {
		if !keep {
			unix.Close(fd)
		}
	}()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fileNativeError("fstat", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fileError("open", path, ErrNotShmvar, "not a regular file")
	}
	if st.Size < int64(AttachmentTableOffset) {
		return nil, fileError("open", path, ErrCorrupt, "file too small: size=%d, header needs %d", st.Size, AttachmentTableOffset)
	}
	if st.Size > int64(MaxCapacity)*3 {
		return nil, fileError("open", path, ErrCorrupt, "file size=%d is larger than any shmvar segment", st.Size)
	}
	if refused := checkOwnerAndMode(st.Uid, st.Uid, st.Mode, opts, "file"); refused != "" {
		return nil, fileError("open", path, ErrPermission, "%s", refused)
	}
	mem, err := unix.Mmap(fd, 0, int(st.Size), prot, unix.MAP_SHARED)
	if err != nil {
		return nil, fileNativeError("mmap", path, err)
	}
	v, err := newVar[T](0, -1, mem, opts)
	if err == nil {
		v.path, v.fd, v.lk.keeper = path, fd, fileLocks{path, fd}
		if !opts.ReadOnly {
			err = v.lk.claim(mem)
		}
	}
	if err != nil {
		unix.Munmap(mem)
		err.(*Error).Path = path
		return nil, err
	}
	keep = true
	return v, nil
}

// fileInfo is IPC_STAT's counterpart for a mapped file.
func fileInfo(path string) (segmentInfo, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return segmentInfo{}, fileNativeError("stat", path, err)
	}
	return segmentInfo{ID: -1, Size: uint64(st.Size), UID: st.Uid, GID: st.Gid, Mode: st.Mode & 0o777}, nil
}
