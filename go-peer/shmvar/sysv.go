package shmvar

import (
	"errors"
	"syscall"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The first backing: a System V shared-memory segment under a key, with a
// semaphore set under the same key that keeps the attachments' liveness.
// The Java twin is io.shmvar.SysvMapping.

// sysvMapping is an attached System V segment.
type sysvMapping struct {
	unshrinkable // a segment cannot shrink under its attachments; errors carry its key
	key          uint32
	id           int // the segment's id
	semID        int // the segment's semaphore set, or -1 if not known
	mem          []byte
}

func (m *sysvMapping) memory() []byte { return m.mem }

func (m *sysvMapping) stat() (SegmentInfo, error) { return shmStat(m.key, m.id) }

func (m *sysvMapping) keeper() keeper {
	if m.semID < 0 {
		return nil
	}
	return semaphores{m.key, m.semID}
}

// sync does nothing: a System V segment lives in memory only.
func (m *sysvMapping) sync() error { return nil }

// remove marks the segment for removal, which the kernel carries out at the
// last detach, and removes its semaphore set.
func (m *sysvMapping) remove() error {
	err := shmRemove(m.key, m.id)
	if err == nil && m.semID >= 0 {
		// Its own set, by id: a set under the key may belong to a newer segment.
		if serr := semRemove(m.key, m.semID); !errors.Is(serr, syscall.EINVAL) && !errors.Is(serr, syscall.EIDRM) {
			err = serr
		}
	}
	return err
}

// detach detaches the segment. When the detach leaves the segment destroyed
// (it was marked for removal, as an ephemeral one is, and this was its last
// attachment, or another's detach was), its semaphore set goes too, which
// the kernel would otherwise keep. Asking after the detach, by id, leaves
// no gap for two last closers to both miss.
func (m *sysvMapping) detach() error {
	err := shmDetach(m.key, m.mem)
	if m.semID >= 0 {
		if _, serr := shmStat(m.key, m.id); errors.Is(serr, syscall.EINVAL) || errors.Is(serr, syscall.EIDRM) {
			semRemove(m.key, m.semID)
		}
	}
	return err
}

func create[T proto.Message](key uint32, mt protoreflect.MessageType, opts Options) (*Var[T], error) {
	if key == ipcPrivate {
		return nil, newError("create", key, ErrInvalidArgument, "key 0 is IPC_PRIVATE, which no other process can open; pick a non-zero key")
	}
	capacity, mode, err := capacityAndMode(opts)
	if err != nil {
		return nil, newError("create", key, ErrInvalidArgument, "%v", err)
	}
	desc, raw, geo, err := describe(key, mt, capacity)
	if err != nil {
		return nil, err
	}
	id, err := shmGet(key, geo.segmentLength, ipcCreat|ipcExcl|int(mode))
	if err != nil {
		return nil, err
	}
	semID, err := createSemSet(key, mode)
	if err != nil {
		shmRemove(key, id)
		return nil, err
	}
	mem, err := shmAttach(key, id, false)
	if err != nil {
		shmRemove(key, id)
		semRemove(key, semID)
		return nil, err
	}
	fillHeader(mem, geo, raw)
	signalReady(mem)
	m := &sysvMapping{key: key, id: id, semID: semID, mem: mem}
	v := wrap[T](m, key, geo, desc, codecOf[T](mt), opts)
	v.lk.keeper = m.keeper()
	err = v.lk.claim(mem)
	if err == nil && opts.Ephemeral {
		err = shmRemove(key, id)
	}
	if err != nil {
		v.lk.unclaim()
		shmDetach(key, mem)
		shmRemove(key, id)
		semRemove(key, semID)
		return nil, err
	}
	return v, nil
}

// createSemSet makes the attachment semaphores of a new segment under key.
// A set already there is left over from a removed segment (the caller has
// just created the only segment under key): it is removed if no attachment
// holds one of its entries.
func createSemSet(key uint32, mode uint32) (int, error) {
	id, err := semGet(key, AttachmentCount, ipcCreat|ipcExcl|int(mode))
	if !errors.Is(err, syscall.EEXIST) {
		return id, err
	}
	old, gerr := semGet(key, 0, 0)
	if gerr == nil {
		if info, serr := semStat(key, old); serr != nil || info.Count != uint64(AttachmentCount) {
			return -1, err // not a set of ours
		}
		for i := 0; i < AttachmentCount; i++ {
			if v, errno := semValue(old, i); errno != 0 || v != 0 {
				e := err.(*Error)
				e.Detail = "a semaphore set with this key is still used by attachments of a removed segment"
				return -1, e
			}
		}
		if rerr := semRemove(key, old); rerr != nil {
			return -1, rerr
		}
	}
	return semGet(key, AttachmentCount, ipcCreat|ipcExcl|int(mode))
}

// openSemSet finds the attachment semaphores of the segment under key and
// applies the segment's owner and mode checks to them.
func openSemSet(key uint32, opts Options) (int, error) {
	id, err := semGet(key, 0, 0)
	if errors.Is(err, syscall.ENOENT) {
		return -1, newError("open", key, ErrCorrupt, "no semaphore set under this key (it keeps the attachments' liveness)")
	}
	if err != nil {
		return -1, err
	}
	info, err := semStat(key, id)
	if err != nil {
		return -1, err
	}
	if info.Count != uint64(AttachmentCount) {
		return -1, newError("open", key, ErrCorrupt, "semaphore set has %d semaphores, want %d", info.Count, AttachmentCount)
	}
	if refused := checkOwnerAndMode(info.UID, info.CUID, info.Mode, opts, "semaphore set"); refused != "" {
		return -1, newError("open", key, ErrPermission, "%s", refused)
	}
	return id, nil
}

func open[T proto.Message](key uint32, opts Options) (*Var[T], error) {
	if key == ipcPrivate {
		return nil, newError("open", key, ErrInvalidArgument, "key 0 is IPC_PRIVATE; pass the key the segment was created with")
	}
	id, err := shmGet(key, 0, 0)
	if err != nil {
		return nil, err
	}
	info, err := shmStat(key, id)
	if err != nil {
		return nil, err
	}
	if err := checkSegmentSize(key, info.Size); err != nil {
		return nil, err
	}
	if refused := checkOwnerAndMode(info.UID, info.CUID, info.Mode, opts, "segment"); refused != "" {
		return nil, newError("open", key, ErrPermission, "%s", refused)
	}
	mem, err := shmAttach(key, id, opts.ReadOnly)
	if err != nil {
		return nil, err
	}
	m := &sysvMapping{key: key, id: id, semID: -1, mem: mem}
	v, err := newVar[T](m, key, opts)
	if err != nil {
		shmDetach(key, mem)
		return nil, err
	}
	if opts.ReadOnly {
		// Liveness is only reported, so the set is looked up, not required.
		if semID, err := semGet(key, 0, 0); err == nil {
			m.semID = semID
			v.lk.keeper = m.keeper()
		}
	} else {
		m.semID, err = openSemSet(key, opts)
		if err == nil {
			v.lk.keeper = m.keeper()
			err = v.lk.claim(mem)
		}
	}
	if err == nil && opts.Ephemeral {
		err = shmRemove(key, id)
	}
	if err != nil {
		v.lk.unclaim()
		shmDetach(key, mem)
		return nil, err
	}
	return v, nil
}

// RemoveKey removes the segment under key and its semaphore set without
// validating them, for segments too damaged to open, and a semaphore set
// left alone under a key. The kernel frees the segment at the last detach.
// It fails with unix.ENOENT when there is neither.
func RemoveKey(key uint32) error {
	id, err := shmGet(key, 0, 0)
	if err == nil {
		err = shmRemove(key, id)
	}
	semID, serr := semGet(key, 0, 0)
	if serr == nil {
		serr = semRemove(key, semID)
	}
	switch {
	case errors.Is(err, syscall.ENOENT) && errors.Is(serr, syscall.ENOENT):
		return err
	case errors.Is(err, syscall.ENOENT):
		return serr
	case err == nil && errors.Is(serr, syscall.ENOENT):
		return nil
	case err == nil:
		return serr
	}
	return err
}

// semaphores keeps the entries of a System V segment: semaphore i of the set
// under the segment's key is 1 while entry i is claimed, and SEM_UNDO makes
// the kernel lower it when the claimer dies, however it dies.
type semaphores struct {
	key uint32
	id  int
}

func (s semaphores) claim(i int) (bool, error) {
	errno := semOp(s.id, sembuf{uint16(i), 0, ipcNowait}, sembuf{uint16(i), 1, semUndo | ipcNowait})
	switch errno {
	case 0:
		return true, nil
	case syscall.EAGAIN:
		return false, nil
	}
	return false, semError("semop", s.key, errno)
}

func (s semaphores) release(i int) error {
	if errno := semOp(s.id, sembuf{uint16(i), -1, semUndo | ipcNowait}); errno != 0 {
		return semError("semop", s.key, errno)
	}
	return nil
}

func (s semaphores) held(i int) bool {
	v, errno := semValue(s.id, i)
	return errno != 0 || v != 0
}
