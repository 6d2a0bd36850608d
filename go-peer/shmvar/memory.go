package shmvar

// memoryMapping is private memory holding a segment image: the backing of
// tests and fuzzing, which no other process can attach. It has no kernel
// object: no liveness keeper, nothing to sync, remove or release. The Java
// twin is io.shmvar.MemoryMapping.
type memoryMapping struct {
	unshrinkable
	mem []byte
}

func (m memoryMapping) memory() []byte { return m.mem }

func (m memoryMapping) stat() (SegmentInfo, error) {
	return SegmentInfo{ID: -1, Size: uint64(len(m.mem))}, nil
}

func (memoryMapping) keeper() keeper { return nil }
func (memoryMapping) sync() error    { return nil }
func (memoryMapping) remove() error  { return nil }
func (memoryMapping) detach() error  { return nil }
